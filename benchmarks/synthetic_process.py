"""A synthetic registry process (:mod:`benchmarks.synthetic_server`) as the scenarios use it:
started with its options, waited for until it prints ``READY <port>``, asked for its counters
(``/_stats``), and stopped. Each scenario says what it serves (a layer, a fleet, a sink)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks.measure import terminate

ROOT = Path(__file__).resolve().parent.parent


class SyntheticProcess:
    """``python -m benchmarks.synthetic_server ARGV``, stopped by itself after ``stop_after`` s."""

    def __init__(self, argv: list[str], *, stop_after: float, what: str = "synthetic server") -> None:
        cmd = [sys.executable, "-m", "benchmarks.synthetic_server", "--stop-after", str(stop_after), *argv]
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # a fleet's digests are indexed before READY
        if not line.startswith("READY "):
            terminate(self.proc)
            raise RuntimeError(f"{what} did not start")
        self.port = int(line.split()[1])
        self.host = f"127.0.0.1:{self.port}"

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://{self.host}/_stats", timeout=60) as resp:
            return json.loads(resp.read())  # type: ignore[no-any-return]

    def cpu_seconds(self) -> float:
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        terminate(self.proc)
