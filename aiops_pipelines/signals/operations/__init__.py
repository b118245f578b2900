"""Latency, throughput, errors and cost, and their anomalies (`operations_for_day`)."""
