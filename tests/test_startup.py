"""Start-up: each command imports only what its own path uses.

A one-shot run (a CronJob's ``mirror sync --once``) pays for every import at every start, so
``--version`` loads no command, ``copy`` never loads the config models, and no run loads the
metrics library, a cloud SDK or the HTTP server unless it uses them. Checked by running the real
command in a fresh interpreter and listing the modules it loaded; never timing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mirror.cli.main import COMMANDS, build_parser, command_in
from tests.support.images import push_image

ROOT = Path(__file__).resolve().parent.parent
HEAVY = (
    "aiohttp",
    "aiohttp.web",
    "pydantic",
    "yaml",
    "prometheus_client",
    "google.auth",
    "aiobotocore",
    "croniter",
    "semantic_version",
)

_PROBE = """
import atexit, json, sys
def report():
    mods = sorted(m for m in sys.modules if m.startswith("mirror.cli."))
    heavy = [m for m in {heavy!r} if m in sys.modules]
    sys.__stdout__.write("\\nMODULES " + json.dumps({{"cli": mods, "heavy": heavy}}) + "\\n")
atexit.register(report)
from mirror.cli.main import main
raise SystemExit(main({argv!r}))
"""


def loaded(argv: list[str]) -> tuple[int, dict[str, Any], str]:
    """Run ``mirror ARGV`` in a fresh interpreter: exit code, modules loaded, stderr."""
    code = _PROBE.format(heavy=HEAVY, argv=argv)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    line = next(x for x in out.stdout.splitlines() if x.startswith("MODULES "))
    return out.returncode, json.loads(line[len("MODULES ") :]), out.stderr


def test_version_and_help_load_no_command() -> None:
    for argv in (["--version"], ["--help"]):
        code, mods, _ = loaded(argv)
        assert code == 0
        assert mods["cli"] == ["mirror.cli.collector", "mirror.cli.main"], mods
        assert mods["heavy"] == [], mods


def test_a_command_loads_only_its_own_module() -> None:
    code, mods, _ = loaded(["ls", "--help"])
    assert code == 0
    assert set(mods["cli"]) <= {
        "mirror.cli.collector",
        "mirror.cli.main",
        "mirror.cli.ls",
        "mirror.cli.options",
    }, mods


def test_command_in_finds_the_command_word() -> None:
    assert command_in(["sync", "--config", "x"]) == "sync"
    assert command_in(["--version"]) is None
    assert command_in(["-h", "copy", "a", "b"]) == "copy"
    assert command_in(["nope"]) is None
    assert command_in(["--", "copy"]) is None


def test_every_command_parses_as_before() -> None:
    """The full parser (every command's arguments) still builds, and each command parses alone."""
    full = build_parser("*")
    assert full.parse_args(["copy", "a", "b"]).command == "copy"
    for name in COMMANDS:
        with pytest.raises(SystemExit) as stop:
            build_parser(name).parse_args([name, "--help"])
        assert stop.value.code == 0


def test_copy_and_sync_once_load_neither_metrics_nor_cloud_sdks(registry_pair: Any, tmp_path: Path) -> None:
    src, dst = registry_pair
    push_image(src, "apps/web", "v1", seed="startup")
    code, mods, err = loaded(["copy", src.ref("apps/web", "v1"), dst.ref("apps/web", "v1"), "-q"])
    assert code == 0, err
    # The config models (pydantic, yaml) belong to sync; copy has no config file.
    for name in ("pydantic", "yaml", "prometheus_client", "google.auth", "aiobotocore", "aiohttp.web"):
        assert name not in mods["heavy"], mods
    config = tmp_path / "c.yaml"
    config.write_text(
        f"version: 1\njobs:\n  - name: apps\n    source: {src.host}/apps/*\n"
        f"    destinations: [{dst.host}/copy]\n"
    )
    code, mods, err = loaded(["sync", "--config", str(config), "--once"])
    assert code == 0, err
    for name in ("prometheus_client", "google.auth", "aiobotocore", "aiohttp.web", "croniter"):
        assert name not in mods["heavy"], mods
    assert "mirror.cli.copy" not in mods["cli"]


_GC_PROBE = """
import gc, json, sys
import mirror.cli.main as cli
seen = {{}}
def probe(parser, words):
    seen.update(enabled=gc.isenabled(), frozen=gc.get_freeze_count(), loaded="mirror.cli.sync" in sys.modules)
    return 0
cli._main = probe
{call}
seen["tracked"] = sum(len(gc.get_objects(generation=g)) for g in range(3))
print(json.dumps(seen))
"""


def _gc_seen(call: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", _GC_PROBE.format(call=call)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def test_the_mirror_process_loads_without_collections_then_freezes_what_loading_made() -> None:
    """The process entry (``python -m mirror`` and the installed command) keeps the collector
    off while the command's modules load, then freezes those objects and turns it back on; at
    exit what is left is frozen too. Checked on the collector's state, not on timings."""
    seen = _gc_seen(
        "import sys; sys.argv = ['mirror', 'sync', '--once']\nfrom mirror.__main__ import main\nmain()"
    )
    assert seen["loaded"] is True
    assert seen["enabled"] is True  # the run itself is collected as usual
    assert seen["frozen"] > 10_000  # the command's modules, classes and validators
    assert seen["tracked"] < 100  # at exit nearly everything is frozen: no final walk over it


def test_calling_main_in_a_program_leaves_its_collector_alone() -> None:
    seen = _gc_seen("cli.main(['sync', '--once'])")
    assert seen["enabled"] is True and seen["loaded"] is True
    assert seen["frozen"] == 0
    assert seen["tracked"] > 10_000


def test_the_installed_command_is_the_process_entry() -> None:
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["mirror"] == "mirror.__main__:main"
