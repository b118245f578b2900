"""Canary vs champion with an anytime-valid confidence sequence (`canary_for_day`)."""
