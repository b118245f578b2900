"""The Dagster wiring, and the only engine package that imports dagster: definitions, jobs
and schedules, resources, partitions, the publish helper assets share, the in-process runner."""
