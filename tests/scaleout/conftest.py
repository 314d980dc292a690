"""Scale-out tests: always on the PostgreSQL + S3 stack; "processes" are separate containers
(each with its own engine, connection pool and S3 client) or real server subprocesses."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from mailroom.container import Container
from mailroom.settings import Settings


@pytest.fixture
def stack() -> str:
    return "postgres"


@pytest.fixture
def other_processes(
    settings: Settings, container: Container, fresh_container: Callable[[Settings], Container]
) -> Iterator[Callable[[int], list[Container]]]:
    """``other_processes(n)`` → n more containers on the same database and bucket as ``container``."""
    made: list[Container] = []

    def make(count: int) -> list[Container]:
        more = [fresh_container(settings) for _ in range(count)]
        made.extend(more)
        return more

    yield make
    for built in made:
        built.close()
