"""What people read: the overview's data, the HTML page and its charts, `aiops status`, the
Prometheus gauges, Evidently's drift report, and Markdown for the Dagster UI."""
