"""The daemon: config, scheduling, run-once and serve, signals, metrics and health endpoints, CLI."""
