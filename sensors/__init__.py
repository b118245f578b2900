"""Dagster sensors of aiops-pipelines: they turn events into runs."""
