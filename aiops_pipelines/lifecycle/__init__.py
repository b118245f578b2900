"""Acting on the verdicts through the MLflow registry: aliases (canary start, rollback,
promotion, restore), the retrain policy, and training a challenger."""
