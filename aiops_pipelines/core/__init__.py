"""The shared vocabulary: the config schema, findings (signals, severities, levels, asset
names), errors a user can act on, checks, and how values compare and print."""
