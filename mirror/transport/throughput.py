"""Throughput measured per route, to predict how long a transfer will take."""

from __future__ import annotations

DEFAULT_BYTES_PER_SECOND = 50 * 1024 * 1024  # assumed until a route has been measured
MIN_SAMPLE_BYTES = 4 * 1024 * 1024


class ThroughputMeter:
    """An exponentially weighted estimate of bytes per second, per host."""

    def __init__(self, default: float = DEFAULT_BYTES_PER_SECOND, weight: float = 0.3) -> None:
        self.default = default
        self.weight = weight
        self._rate: dict[str, float] = {}

    def record(self, host: str, nbytes: int, seconds: float) -> None:
        if nbytes < MIN_SAMPLE_BYTES or seconds <= 0:
            return  # small transfers measure latency, not throughput
        rate = nbytes / seconds
        old = self._rate.get(host)
        self._rate[host] = rate if old is None else old + self.weight * (rate - old)

    def rate(self, host: str) -> float:
        return self._rate.get(host, self.default)

    def expected_seconds(self, host: str, nbytes: int) -> float:
        return nbytes / self.rate(host)
