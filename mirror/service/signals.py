"""Stop signals (SIGTERM, SIGINT) in every mode: handlers that only call back.

Every command that copies installs them for its whole run (``mirror sync`` once or as a service,
``mirror copy``), so that a stop is orderly: the report is written, multipart uploads are aborted
and upload sessions deleted. It matters twice over for PID 1 (a container's entry point without
an init): the kernel applies no default action to signals sent to the first process of a PID
namespace, so without a handler SIGTERM would be ignored until SIGKILL. The image runs ``tini``
as PID 1 anyway (deploy/Dockerfile); these handlers make mirror stop on its own as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

_pending: list[signal.Signals] = []  # received before a command's loop had its handlers


def _remember(signum: int, _frame: object) -> None:
    _pending.append(signal.Signals(signum))


@contextlib.contextmanager
def remembered_stop_signals() -> Iterator[None]:
    """From a command's first moment until its loop installs its handlers (the config is read,
    modules are imported meanwhile): a stop signal is remembered, not fatal, and handed to the
    first :func:`install_stop_signals`. The previous handlers are back after the block."""
    previous: dict[signal.Signals, object] = {}
    for sig in STOP_SIGNALS:
        with contextlib.suppress(ValueError, OSError):  # not the main thread: nothing to do
            previous[sig] = signal.signal(sig, _remember)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            with contextlib.suppress(ValueError, OSError, TypeError):
                signal.signal(sig, handler)  # type: ignore[arg-type]
        _pending.clear()


def install_stop_signals(callback: Callable[[signal.Signals], None]) -> list[signal.Signals]:
    """Call ``callback(signal)`` on SIGTERM or SIGINT from now on (on this loop); the signals
    whose handler could be installed (none off the main thread)."""
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in STOP_SIGNALS:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, callback, sig)
            installed.append(sig)
    for sig in _pending:  # one that came while the command was starting
        loop.call_soon(callback, sig)
    _pending.clear()
    return installed


@contextlib.contextmanager
def on_stop_signals(callback: Callable[[signal.Signals], None]) -> Iterator[None]:
    """Call ``callback(signal)`` on SIGTERM or SIGINT while the block runs (on this loop)."""
    installed = install_stop_signals(callback)
    try:
        yield
    finally:
        loop = asyncio.get_running_loop()
        for sig in installed:
            loop.remove_signal_handler(sig)


def exit_code(sig: signal.Signals) -> int:
    """The shell's convention for a process ended by ``sig``: 128 + its number."""
    return 128 + int(sig)
