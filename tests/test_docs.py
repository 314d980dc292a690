"""The user documentation against the code: settings, routes, commands and links."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
from fastapi.routing import APIRoute

from mailroom.settings import ENV_PREFIX, Settings, load_settings
from mailroom.web.app import create_app

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = (
    "index",
    "quickstart",
    "configuration",
    "cli",
    "admin-api",
    "mesh-compatibility",
    "json-api",
    "deployment",
    "operations",
    "codebase-map",
)


def _load_docs_gen() -> ModuleType:
    """``scripts/docs_gen.py`` by path: scripts/ is not a package and src/ stays free of it."""
    path = ROOT / "scripts" / "docs_gen.py"
    spec = importlib.util.spec_from_file_location("mailroom_docs_gen", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


docs_gen = _load_docs_gen()


def _read(page: str) -> str:
    return (DOCS / f"{page}.md").read_text(encoding="utf-8")


# -- configuration -------------------------------------------------------------------------------


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(Settings)])
def test_every_setting_is_documented(field: str) -> None:
    env = ENV_PREFIX + field.upper()
    assert re.search(rf"^\| `{env}` \|", _read("configuration"), re.MULTILINE), (
        f"{env} is missing from docs/configuration.md: run scripts/gen-config-docs"
    )


@pytest.mark.parametrize("page", ["config", "cli", "admin"])
def test_generated_pages_are_current(page: str) -> None:
    path, current, wanted = docs_gen.render(page)
    script = docs_gen.PAGES[page][1]
    assert current == wanted, f"{path.relative_to(ROOT)} is out of date: run {script}"


def test_documented_durations_are_valid_settings() -> None:
    """The defaults shown in the table can be pasted back into the environment."""
    for env, _shown, _help in docs_gen.setting_docs():
        field = docs_gen._fields()[env]
        if field.type == "timedelta":
            text = docs_gen.format_duration(getattr(Settings(), field.name))
            loaded = load_settings({env: text})
            assert getattr(loaded, field.name) == getattr(Settings(), field.name)


# -- command line --------------------------------------------------------------------------------


@pytest.mark.parametrize("command", docs_gen.cli_commands())
def test_every_command_is_documented(command: str) -> None:
    assert f"`{command}`" in _read("cli"), f"{command} is missing from docs/cli.md: run scripts/gen-cli-docs"


def test_cli_commands_are_found() -> None:
    commands = docs_gen.cli_commands()
    assert {"mailroom serve", "mailroom mailbox add", "mailroom workflow import"} <= set(commands)


# -- administration API --------------------------------------------------------------------------


def test_the_admin_reference_has_every_function_of_the_registry() -> None:
    """The generated reference (kept current by the test above) covers the whole registry."""
    text = _read("admin-api")
    functions = docs_gen.admin_functions()
    assert len(functions) >= 15
    for function in functions:
        assert f"#### `{function.name}`" in text, f"{function.name}: run scripts/gen-admin-docs"
        assert f"Privilege: `{function.privilege.value}`" in text
        for arg in function.args:
            assert f"| `{arg.name}` |" in text


def test_a_stale_admin_reference_is_found() -> None:
    """What the staleness check compares: a page missing a function is not what is generated."""
    _path, current, wanted = docs_gen.render("admin")
    stale = current.replace("#### `GetAuditLog`", "#### `GetAuditLogOld`")
    assert stale != current
    assert stale != wanted
    assert docs_gen.splice(stale, "scripts/gen-admin-docs", docs_gen.admin_block()) == wanted


# -- routes --------------------------------------------------------------------------------------


def _walk(routes: Iterable[object], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(method, path) of every API route, descending into included routers.

    Newer FastAPI keeps included routers as lazy ``_IncludedRouter`` entries holding the
    ``original_router`` and an ``include_context`` with its prefix; older versions copy the
    routes into ``app.routes``. Both are handled.
    """
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            context = getattr(route, "include_context", None)
            yield from _walk(inner.routes, prefix + (getattr(context, "prefix", "") or ""))
        elif isinstance(route, APIRoute):
            for method in sorted(route.methods):
                yield method, prefix + route.path


@pytest.fixture(scope="module")
def routes(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str]]:
    data_dir = tmp_path_factory.mktemp("docs-app")
    app = create_app(load_settings({}, data_dir=data_dir, shared_key="TestKey", sandbox=True))
    try:
        return sorted(set(_walk(app.routes)))
    finally:
        app.state.container.close()


def test_routes_are_found(routes: list[tuple[str, str]]) -> None:
    paths = {path for _method, path in routes}
    assert {"/_ping", "/admin/reset", "/messageexchange/{mailbox}/outbox"} <= paths
    assert len(routes) > 30


#: The pages that list routes, one a line (method and path): the MESH face's and the JSON faces'.
ROUTE_PAGES = ("mesh-compatibility", "json-api")


def test_every_route_is_documented(routes: list[tuple[str, str]]) -> None:
    lines = [line for page in ROUTE_PAGES for line in _read(page).splitlines()]
    missing = [
        f"{method} {path}"
        for method, path in routes
        if not any(f"`{path}`" in line and re.search(rf"\b{method}\b", line) for line in lines)
    ]
    assert not missing, (
        f"add to docs/mesh-compatibility.md or docs/json-api.md (method and path on one line): {missing}"
    )


# -- links ---------------------------------------------------------------------------------------

_LINK = re.compile(r"\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^(```|~~~)")


def _headings(text: str) -> set[str]:
    """GitHub-style anchors of the Markdown headings outside code blocks."""
    anchors = set()
    fenced = False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


def _anchors(path: Path) -> set[str]:
    return _headings(path.read_text(encoding="utf-8")) if path.suffix == ".md" else set()


def _documents() -> list[Path]:
    return [ROOT / "README.md", *(DOCS / f"{page}.md" for page in PAGES)]


@pytest.mark.parametrize("document", _documents(), ids=lambda p: p.name)
def test_local_links_resolve(document: Path) -> None:
    text = document.read_text(encoding="utf-8")
    broken = []
    for target in _LINK.findall(text):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        file_part, _, anchor = target.partition("#")
        linked = (document.parent / file_part).resolve() if file_part else document
        if not linked.exists() or (anchor and anchor not in _anchors(linked)):
            broken.append(target)
    assert not broken, f"broken links in {document.relative_to(ROOT)}: {broken}"


def test_readme_links_every_page() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert all(f"(docs/{page}.md)" in readme for page in PAGES)
