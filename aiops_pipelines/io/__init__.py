"""Data in and results kept: prediction, outcome and reference sources (SQL or Parquet), late
label arrival, the monitoring store (SQLite or PostgreSQL) and MLflow tracking."""
