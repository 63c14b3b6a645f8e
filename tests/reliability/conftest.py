"""Fixtures of the reliability suite, its summary table, and RELIABILITY.md's figures.

Environment:

``BEDROCK_TOKENS_SOAK=1``
    Soak mode: the concurrency and leak tests make tens of thousands of calls instead of a few
    thousand.
``BEDROCK_TOKENS_WRITE_RELIABILITY=1``
    Rewrite the generated blocks of RELIABILITY.md (the matrix, and the figures measured by
    this run) instead of only checking the matrix block.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any, Callable

import boto3
import pytest
from botocore.config import Config

from .support import FIGURES, WRITE_DOC, Watch, collection_at_safe_points, watching

_GROUP_KEY = "reliability_group"
_results: dict[str, Counter[str]] = {}


@pytest.fixture(scope="session")
def boto_session() -> Any:
    return boto3.session.Session()


@pytest.fixture
def make_client(bedrock_emulator: Any, boto_session: Any) -> Iterator[Callable[..., Any]]:
    """Clients bound to the emulator like ``bedrock_client``, with an optional read timeout;
    all closed after the test."""
    made: list[Any] = []

    def make(read_timeout: float | None = None, pool: int = 10) -> Any:
        config = Config(
            retries={"total_max_attempts": 1}, signature_version="v4", proxies={},
            read_timeout=read_timeout if read_timeout is not None else 60,
            max_pool_connections=pool,
        )
        client = boto_session.client(
            "bedrock-runtime", config=config, **bedrock_emulator.client_kwargs())
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def watch(bedrock_telemetry: Any) -> Iterator[Watch]:
    yield from watching(bedrock_telemetry)


@pytest.fixture(autouse=True)
def _collection_at_safe_points() -> Iterator[None]:
    with collection_at_safe_points():
        yield


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    group = dict(report.user_properties).get(_GROUP_KEY)
    if group is None:
        return
    if report.when == "call" or (report.when == "setup" and not report.passed):
        tally = _results.setdefault(str(group), Counter())
        tally["tried"] += 1
        tally["passed" if report.passed else "failed"] += 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _results:
        write = terminalreporter.write_line
        terminalreporter.section("bedrock-tokens fault matrix")
        write(f"{'fault group':<24}{'tried':>8}{'passed':>8}{'failed':>8}")
        total: Counter[str] = Counter()
        for group, tally in _results.items():
            total.update(tally)
            write(f"{group:<24}{tally['tried']:>8}{tally['passed']:>8}{tally['failed']:>8}")
        write(f"{'all':<24}{total['tried']:>8}{total['passed']:>8}{total['failed']:>8}")
    if FIGURES:
        terminalreporter.section("bedrock-tokens reliability figures")
        for key, value in FIGURES.items():
            terminalreporter.write_line(f"{key}: {value}")


def pytest_sessionfinish(session: pytest.Session) -> None:
    if WRITE_DOC and (FIGURES or _results):
        from .document import write_document

        write_document(FIGURES, {g: dict(t) for g, t in _results.items()})
