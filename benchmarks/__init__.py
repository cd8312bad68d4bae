"""Benchmarks: mirror and its peers on the same loopback workloads (``python -m benchmarks.run``)."""
