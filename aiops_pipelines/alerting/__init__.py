"""From findings to people: alert rules (`rules`), the outbox (`outbox`) with a circuit
breaker per route (`breaker`), the channels (`channels`), and a model's alerts for a day
(`alerts_for_day`)."""
