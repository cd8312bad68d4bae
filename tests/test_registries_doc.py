"""docs/REGISTRIES.md: every row of a "what differs" table names the tests that hold mirror to it,
and those tests exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "REGISTRIES.md"
TEST = re.compile(r"`(tests/test_\w+\.py)::(test_\w+)`")


def _tests_in(path: Path) -> set[str]:
    return {
        node.name
        for node in ast.parse(path.read_text()).body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_")
    }


def _behaviour_rows() -> list[str]:
    rows: list[str] = []
    in_table = False
    for line in DOC.read_text().splitlines():
        if line.startswith("| what differs |"):
            in_table = True
        elif not line.startswith("|"):
            in_table = False
        elif in_table and not line.startswith("|---"):
            rows.append(line)
    return rows


def test_every_row_names_tests_that_exist() -> None:
    rows = _behaviour_rows()
    assert len(rows) >= 20
    for row in rows:
        named = TEST.findall(row)
        assert named, f"no test named in: {row[:80]}"
        for file, name in named:
            assert name in _tests_in(ROOT / file), f"{file}::{name} does not exist"
