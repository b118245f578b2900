"""Data and prediction drift computed on profiles, FDR-controlled (`drift_for_day`)."""
