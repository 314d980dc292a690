"""The lock files against the environment and pyproject.toml: a fresh install runs the tested stack."""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from mailroom.web.http_protocol import TESTED_UVICORN

ROOT = Path(__file__).resolve().parent.parent
#: What scripts/install installs into .venv, besides Mailroom itself.
INSTALLED_EXTRAS = ("dev", "postgres", "s3")


def _locked(name: str) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / name).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            package, sep, version = line.partition("==")
            assert sep, f"{name}: not an exact pin: {line!r}"
            pins[canonicalize_name(package)] = version
    return pins


def _project() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _requirements(*extras: str) -> list[Requirement]:
    project = _project()
    lines = list(project["dependencies"])  # type: ignore[call-overload]
    for extra in extras:
        lines += project["optional-dependencies"][extra]  # type: ignore[index]
    return [Requirement(line) for line in lines]


def test_every_installed_locked_package_has_its_locked_version() -> None:
    locked = _locked("constraints.txt")
    wrong = {}
    for dist in metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"])
        if name in locked and dist.version != locked[name]:
            wrong[name] = f"{dist.version} installed, {locked[name]} locked"
    assert not wrong, f"not the locked versions (run scripts/install): {wrong}"


def test_every_requirement_is_locked_within_its_range() -> None:
    locked = _locked("constraints.txt")
    for requirement in _requirements(*_project()["optional-dependencies"]):  # type: ignore[arg-type]
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{requirement.name} is not in constraints.txt: run scripts/lock"
        assert requirement.specifier.contains(locked[name], prereleases=True), (
            f"constraints.txt pins {name}=={locked[name]}, outside pyproject's {requirement}"
        )


def test_every_installed_requirement_is_present() -> None:
    for requirement in _requirements(*INSTALLED_EXTRAS):
        metadata.version(requirement.name)  # raises PackageNotFoundError when missing


def test_pyproject_admits_only_the_uvicorn_series_the_http_layer_was_tested_with() -> None:
    [uvicorn] = [r for r in _requirements() if r.name == "uvicorn"]
    major, minor = TESTED_UVICORN
    assert uvicorn.specifier.contains(f"{major}.{minor}.0")
    assert not uvicorn.specifier.contains(f"{major}.{minor + 1}.0")
    assert not uvicorn.specifier.contains(f"{major}.{minor - 1}.0")
    assert re.match(rf"{major}\.{minor}\.", _locked("constraints.txt")["uvicorn"])


@pytest.mark.skipif(not os.environ.get("MAILROOM_SBX_PYTHON"), reason="mesh-sandbox's venv not given")
def test_mesh_sandbox_venv_has_its_locked_versions() -> None:
    frozen = subprocess.run(
        [os.environ["MAILROOM_SBX_PYTHON"], "-m", "pip", "freeze", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    installed = dict(
        (canonicalize_name(name), version)
        for name, _, version in (line.partition("==") for line in frozen.splitlines() if "==" in line)
    )
    locked = _locked("constraints-sandbox.txt")
    wrong = {
        name: (installed.get(name), version)
        for name, version in locked.items()
        if installed.get(name) != version
    }
    assert not wrong, f"(installed, locked) in .venv-sandbox, run scripts/install: {wrong}"
