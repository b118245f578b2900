"""aiops-pipelines: monitoring of machine-learning models in production, daily per model.

The flow, room by room: `io` reads predictions, late outcomes and references and keeps the
results; `signals` computes each day's profile, drift, performance, operations and canary
verdict (each a `<signal>_for_day()` returning its metrics, findings and checks); `lifecycle`
acts on them through the MLflow registry (retrain, canary rollback and promotion); `alerting`
turns findings into notifications; `views` shows them. `core` holds the shared vocabulary.
Only `orchestration` (with the top-level `assets` and `sensors` packages) knows Dagster.
"""
