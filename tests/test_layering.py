"""Imports go one way: types -> auth -> transport -> registry -> copy -> daemon."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LAYERS = ["types", "auth", "transport", "registry", "copy", "daemon"]
ROOT = Path(__file__).resolve().parent.parent / "mirror"


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mirror."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("mirror."):
                    found.add(alias.name.split(".")[1])
    return found


@pytest.mark.parametrize("layer", LAYERS)
def test_layer_imports_only_lower_layers(layer: str) -> None:
    allowed = set(LAYERS[: LAYERS.index(layer) + 1])
    for path in sorted((ROOT / layer).rglob("*.py")):
        bad = _imports(path) - allowed
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)} above layer {layer!r}"


def test_lower_layers_do_not_import_network_or_cloud_libraries() -> None:
    for path in sorted((ROOT / "types").rglob("*.py")):
        text = path.read_text()
        assert "import aiohttp" not in text and "aiobotocore" not in text, path
