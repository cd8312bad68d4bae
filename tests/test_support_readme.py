"""tests/support/README.md describes every module of tests/support (``name.py``, or
``tools/name.py`` for the interop wrappers)."""

from __future__ import annotations

from pathlib import Path

SUPPORT = Path(__file__).resolve().parent / "support"


def test_the_readme_names_every_support_module() -> None:
    readme = (SUPPORT / "README.md").read_text()
    modules = [p.relative_to(SUPPORT).as_posix() for p in sorted(SUPPORT.rglob("*.py"))]
    missing = [m for m in modules if not m.endswith("__init__.py") and f"`{m}" not in readme]
    assert not missing, f"tests/support/README.md does not describe {missing}"
