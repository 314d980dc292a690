"""Dependencies point inward: domain ← services ← web/cli; only web knows HTTP frameworks."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "mailroom"

#: package → prefixes its modules must not import
FORBIDDEN = {
    "domain": (
        "mailroom.services",
        "mailroom.storage",
        "mailroom.web",
        "mailroom.cli",
        "mailroom.auth",
        "fastapi",
        "starlette",
        "sqlalchemy",
        "uvicorn",
        "httpx",
    ),
    "auth": ("mailroom.services", "mailroom.storage", "mailroom.web", "mailroom.cli", "fastapi", "starlette"),
    "services": ("mailroom.web", "mailroom.cli", "fastapi", "starlette", "uvicorn"),
    "web": ("mailroom.storage", "mailroom.cli"),
    "storage": ("mailroom.services", "mailroom.web", "mailroom.cli", "fastapi", "starlette"),
}


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_respects_the_dependency_rule(package):
    offenders = [
        f"{path.relative_to(SRC)} imports {name}"
        for path in sorted((SRC / package).rglob("*.py"))
        for name in sorted(imports_of(path))
        if name.startswith(FORBIDDEN[package])
    ]
    assert offenders == []


def test_only_the_web_package_imports_http_frameworks():
    offenders = [
        f"{path.relative_to(SRC)} imports {name}"
        for path in sorted(SRC.rglob("*.py"))
        if "web" not in path.relative_to(SRC).parts
        for name in imports_of(path)
        if name.startswith(("fastapi", "starlette")) and path.name != "main.py"
    ]
    assert offenders == []
