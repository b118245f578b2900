"""Dagster assets of aiops-pipelines: thin wrappers that call the engine."""
