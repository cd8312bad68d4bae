"""mirror: container image mirroring and replication.

Layers, each importing only the ones listed before it:
``types`` -> ``auth`` -> ``transport`` -> ``registry`` -> ``copy`` -> ``daemon``.
"""

__version__ = "0.1.0"
