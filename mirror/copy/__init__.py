"""The copy engine: plan, single-flight, streaming tee with verification, fan-out."""
