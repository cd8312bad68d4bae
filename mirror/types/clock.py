"""Injected time: every expiry and schedule decision takes a clock, so tests need not sleep."""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]
"""Returns wall-clock seconds since the epoch (like ``time.time``)."""

system_clock: Clock = time.time
