"""The copy engine: plan, single-flight, streaming tee with verification, fan-out; synthetic
content and the large-transfer measurement built on the engine.

May import ``registry``, ``transport``, ``auth`` and ``types``; it emits events and knows no
metrics, config or command line.
"""
