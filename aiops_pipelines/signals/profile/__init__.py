"""Feature profiles: mergeable summaries on the reference's fixed bins (`profile_for_day`)."""
