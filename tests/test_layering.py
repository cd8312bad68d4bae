"""Imports go one way: types -> auth -> transport -> registry -> copy -> jobs -> service -> cli.

``jobs`` (what to copy: config, mapping, filters, a pass) is used by both the service and the
command line; nothing but ``mirror/__main__.py`` imports the command line.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

LAYERS = ["types", "auth", "transport", "registry", "copy", "jobs", "service", "cli"]
ROOT = Path(__file__).resolve().parent.parent / "mirror"
MAX_LINES = 500


def _imports(path: Path) -> set[str]:
    """The rooms (``mirror.<room>``) that a file imports, at any depth of the file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mirror."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("mirror."):
                    found.add(alias.name.split(".")[1])
    return found


def _files(layer: str) -> list[Path]:
    return sorted((ROOT / layer).rglob("*.py"))


def test_every_room_is_listed() -> None:
    rooms = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert rooms == set(LAYERS)


def test_the_architecture_guide_names_every_file() -> None:
    """docs/ARCHITECTURE.md's rooms table lists each room's files (a package as ``pkg/`` with its
    files), and only files that exist."""
    guide = (ROOT.parent / "docs" / "ARCHITECTURE.md").read_text()
    rows = {
        cells[1].strip().strip("`"): set(re.findall(r"`([\w/]+\.py|\w+/)`", cells[2]))
        for cells in (line.split("|") for line in guide.splitlines() if line.startswith("| `"))
    }
    for layer in LAYERS:
        named = rows.get(layer, set())
        files = [p.relative_to(ROOT / layer) for p in _files(layer) if p.name != "__init__.py"]
        wanted = {p.name for p in files} | {f"{p.parts[0]}/" for p in files if len(p.parts) > 1}
        where = f"docs/ARCHITECTURE.md, room {layer}"
        assert not wanted - named, f"{where}: add {sorted(wanted - named)}"
        assert not named - wanted, f"{where}: no such file {sorted(named - wanted)}"


@pytest.mark.parametrize("layer", LAYERS)
def test_layer_imports_only_lower_layers(layer: str) -> None:
    allowed = set(LAYERS[: LAYERS.index(layer) + 1])
    for path in _files(layer):
        bad = _imports(path) - allowed
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)} above layer {layer!r}"


def test_only_the_entry_point_imports_the_command_line() -> None:
    importers = [
        path.relative_to(ROOT).as_posix()
        for path in sorted(ROOT.rglob("*.py"))
        if "cli" in _imports(path) and path.relative_to(ROOT).parts[0] != "cli"
    ]
    assert importers == ["__main__.py"]


@pytest.mark.parametrize("layer", ["service", "cli"])
def test_service_and_command_line_use_what_to_copy(layer: str) -> None:
    assert any("jobs" in _imports(path) for path in _files(layer))


@pytest.mark.parametrize("layer", LAYERS)
def test_room_says_what_it_is_for_and_may_import(layer: str) -> None:
    doc = ast.get_docstring(ast.parse((ROOT / layer / "__init__.py").read_text())) or ""
    assert doc, f"mirror/{layer}/__init__.py has no docstring"
    assert "import" in doc, f"mirror/{layer}/__init__.py does not say what the room may import"


def test_source_files_stay_small() -> None:
    big = {
        path.relative_to(ROOT).as_posix(): n
        for path in sorted(ROOT.rglob("*.py"))
        if (n := len(path.read_text().splitlines())) >= MAX_LINES
    }
    assert not big, f"files of {MAX_LINES} lines or more: {big}; split them by concern"


def test_lower_layers_do_not_import_network_or_cloud_libraries() -> None:
    for path in _files("types"):
        text = path.read_text()
        assert "import aiohttp" not in text and "aiobotocore" not in text, path
