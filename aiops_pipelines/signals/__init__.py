"""One package per signal, each with a `<signal>_for_day()` entry point that takes what a day
needs and returns a result with its metric rows, findings (with evidence) and checks:
`profile`, `drift`, `performance`, `operations`, `canary`; `anomaly` is the seasonal anomaly
detector that operations and performance residuals share."""
