"""The long-running service: passes on schedules, HTTP endpoints, metrics, sharding, logging.

- ``daemon``: run jobs once, or serve: start each job when its schedule says, bounded graceful
  shutdown on SIGTERM/SIGINT;
- ``server``: the HTTP listener (``/metrics``, ``/healthz``, ``/readyz``, ``/shard``);
- ``metrics`` (+ ``labels``): Prometheus metrics fed by events; ``replication``: drift, lag,
  event and prune metrics;
- ``state``: what the service knows of each job now (last pass, lag, drift), for status pages;
  ``passes``: what it keeps of a pass for them; ``passlog``: what it logs of a pass;
- ``reconcile``: after a pass, the drift check (and prune);
- ``events`` (HTTP endpoints), ``dispatch`` (queue, coalesce, copy, measure the lag) and
  ``forward`` (hand an event to the replica that owns its repository): event triggers;
- ``lifecycle``: the bounded stop of a pass (grace, then abort) and skipped slots made visible;
  ``signals``: SIGTERM/SIGINT handlers for every mode (PID 1 included);
- ``shard``: which source repositories a replica owns;
- ``logs``: logging set-up (text or JSON lines, secrets redacted).

May import ``jobs``, ``copy``, ``registry``, ``transport``, ``auth`` and ``types``; never ``cli``.
"""
