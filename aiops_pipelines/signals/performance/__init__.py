"""Performance on late labels: realized, estimated, decay and residuals (`performance_for_day`)."""
