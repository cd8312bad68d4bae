"""mirror: container image mirroring and replication.

Rooms, each importing only the ones listed before it:
``types`` -> ``auth`` -> ``transport`` -> ``registry`` -> ``copy`` -> ``jobs`` -> ``service`` -> ``cli``.

``types`` holds pure values; ``auth`` credentials; ``transport`` HTTP with tokens, retries and
limits; ``registry`` the stores (registries, OCI layouts, S3) and what differs per registry kind;
``copy`` the engine; ``jobs`` what to copy (config, mapping, filters, a pass); ``service`` the
long-running daemon (schedules, HTTP endpoints, metrics, sharding); ``cli`` the commands.
"""

__version__ = "0.1.0"
