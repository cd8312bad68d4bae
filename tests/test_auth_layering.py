"""mirror.auth imports only mirror.types and third-party libraries; importing the provider
protocol (as the transport does) loads no cloud SDK."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import mirror.auth

AUTH_DIR = Path(mirror.auth.__file__).parent


def mirror_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("mirror"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mirror"):
            found.add(node.module)
    return found


def test_auth_imports_only_types_and_itself() -> None:
    files = sorted(AUTH_DIR.glob("*.py"))
    assert files
    for path in files:
        for module in mirror_imports(path):
            assert module.startswith(("mirror.types", "mirror.auth")), f"{path.name} imports {module}"


def test_credentials_module_is_light() -> None:
    code = (
        "import sys, mirror.auth.credentials\n"
        "heavy = [m for m in ('google.auth', 'aiobotocore', 'botocore', 'aiohttp') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
