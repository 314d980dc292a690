"""Fetch, prepare and run NHS's own mesh-client integration suite.

The PyPI sdist of ``mesh-client`` ships ``tests/mesh_sandbox_tests.py`` (the tests NHS run
against mesh-sandbox in docker-compose) plus ``tests/helpers.py``, ``tests/mailboxes.jsonl``
and ``tests/workflows.jsonl``. It does *not* ship the certificates: NHS generate
``tests/{ca,server,client}.{cert,key}.pem`` with ``scripts/create-test-certs-keys.sh``.
So we download the sdist (cached), extract only ``tests/``, and drop our generated PEM
files in under the names ``tests/helpers.py`` expects.

``tests/helpers.py`` hard-codes ``SANDBOX_ENDPOINT = https://localhost:8701``. A root
``conftest.py`` we write next to it re-points that endpoint when ``MESH_SANDBOX_URL`` is
set, so the suite can run against a free port; without the variable it runs unchanged.
NHS's files are never edited.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

from tests.support.certs import CertBundle

SUITE_FILE = "tests/mesh_sandbox_tests.py"
URL_ENV = "MESH_SANDBOX_URL"
SDIST_ENV = "MAILROOM_MESH_CLIENT_SDIST"  # optional: path to a local sdist (offline runs)
SUITE_TIMEOUT = 300.0

_PYTEST_INI = """\
[pytest]
# mirrors mesh-client's own [tool.pytest.ini_options]
python_classes = NoTestClassesPlease
python_files = *_tests.py
"""

_ROOT_CONFTEST = f'''\
"""Written by Mailroom's contract tests: optionally re-point NHS's hard-coded sandbox URL."""
import os

import tests.helpers as helpers

_url = os.environ.get("{URL_ENV}")
if _url:
    helpers.SANDBOX_ENDPOINT = helpers.SANDBOX_ENDPOINT._replace(url=_url)
'''


@dataclass(frozen=True)
class CaseResult:
    name: str
    outcome: str  # passed | failed | error | skipped
    message: str = ""


@dataclass(frozen=True)
class SuiteResult:
    returncode: int
    cases: tuple[CaseResult, ...]
    output: str = field(repr=False)

    def named(self, outcome: str) -> list[str]:
        return [case.name for case in self.cases if case.outcome == outcome]

    @property
    def passed(self) -> list[str]:
        return self.named("passed")

    @property
    def problems(self) -> list[CaseResult]:
        return [case for case in self.cases if case.outcome in ("failed", "error")]

    def summary(self) -> str:
        counts = {o: len(self.named(o)) for o in ("passed", "failed", "error", "skipped")}
        lines = [f"rc={self.returncode} " + ", ".join(f"{n} {o}" for o, n in counts.items())]
        lines += [f"  {c.outcome.upper()} {c.name}: {c.message}" for c in self.problems]
        return "\n".join(lines)


def installed_client_version() -> str:
    return version("mesh-client")


def fetch_sdist(client_version: str, cache_dir: Path) -> Path:
    """Path to ``mesh_client-{version}.tar.gz``: from $MAILROOM_MESH_CLIENT_SDIST, the cache, or pip."""
    override = os.environ.get(SDIST_ENV)
    if override:
        return Path(override)
    cached = sorted(cache_dir.glob(f"[Mm]esh[_-][Cc]lient-{client_version}.tar.gz"))
    if cached:
        return cached[0]
    cache_dir.mkdir(parents=True, exist_ok=True)
    # downloaded aside and renamed in, so a parallel test worker never opens a half-written file
    with tempfile.TemporaryDirectory(dir=cache_dir) as aside:
        command = [
            sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
            "--no-binary", ":all:", f"mesh-client=={client_version}", "-d", aside,
        ]  # fmt: skip
        subprocess.run(command, check=True, timeout=300)
        found = sorted(Path(aside).glob(f"[Mm]esh[_-][Cc]lient-{client_version}.tar.gz"))
        if not found:
            raise FileNotFoundError(f"pip download left no mesh-client {client_version} sdist in {aside}")
        kept = cache_dir / found[0].name
        os.replace(found[0], kept)
    return kept


def _tests_members(archive: tarfile.TarFile) -> list[tarfile.TarInfo]:
    members = []
    for member in archive.getmembers():
        parts = Path(member.name).parts
        if len(parts) >= 3 and parts[1] == "tests" and member.isfile():
            member.name = str(Path(*parts[1:]))  # strip the "mesh_client-X.Y.Z/" prefix
            members.append(member)
    return members


def prepare_suite(sdist: Path, dest: Path, pki: CertBundle) -> Path:
    """Extract ``tests/`` from the sdist into ``dest`` and add certs, pytest.ini and conftest."""
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(sdist) as archive:
        archive.extractall(dest, members=_tests_members(archive), filter="data")
    if not (dest / SUITE_FILE).is_file():
        raise FileNotFoundError(f"{sdist.name} has no {SUITE_FILE}")
    tests_dir = dest / "tests"
    for target, source in {
        "ca.cert.pem": pki.ca_cert,
        "client.cert.pem": pki.client_cert,
        "client.key.pem": pki.client_key,
        "server.cert.pem": pki.server_cert,
        "server.key.pem": pki.server_key,
    }.items():
        (tests_dir / target).write_bytes(source.read_bytes())
    (dest / "pytest.ini").write_text(_PYTEST_INI, encoding="utf-8")
    (dest / "conftest.py").write_text(_ROOT_CONFTEST, encoding="utf-8")
    return dest


def _parse_junit(path: Path) -> tuple[CaseResult, ...]:
    if not path.exists():
        return ()
    cases = []
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed"}.get(child.tag, child.tag)
                message = " ".join((child.get("message") or "").split())[:300]
                break
        cases.append(CaseResult(case.get("name", "?"), outcome, message))
    return tuple(cases)


def run_suite(suite_dir: Path, base_url: str | None, *, timeout: float = SUITE_TIMEOUT) -> SuiteResult:
    """Run NHS's sandbox suite in a fresh pytest process; ``base_url=None`` keeps their :8701."""
    junit = suite_dir / "junit.xml"
    junit.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "MESH_"))}
    if base_url:
        env[URL_ENV] = base_url
    command = [
        sys.executable, "-m", "pytest", SUITE_FILE,
        "-c", "pytest.ini", "--rootdir", str(suite_dir),
        "-p", "no:cacheprovider", "-q", "-rfE", f"--junitxml={junit}",
    ]  # fmt: skip
    completed = subprocess.run(
        command, cwd=suite_dir, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    return SuiteResult(completed.returncode, _parse_junit(junit), completed.stdout + completed.stderr)
