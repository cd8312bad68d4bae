"""aioresponses 0.7.x builds ClientResponse without aiohttp 3.14's ``stream_writer``
(pnuckowski/aioresponses#289): give it a finished writer for the test's duration."""

from __future__ import annotations

import inspect
from typing import Any

import aiohttp
import pytest


def let_aioresponses_build_responses(monkeypatch: pytest.MonkeyPatch) -> None:
    original = aiohttp.ClientResponse.__init__
    if "stream_writer" not in inspect.signature(original).parameters:
        return

    class _Finished:
        output_size = 0

    def init(self: aiohttp.ClientResponse, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", _Finished())
        original(self, *args, **kwargs)

    monkeypatch.setattr(aiohttp.ClientResponse, "__init__", init)
