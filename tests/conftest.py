"""Shared fixtures: the real embedded broker (one per test module) and unique names."""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stream.kafka.broker import BrokerError, EmbeddedBroker

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"

_counter = itertools.count()


def data_path(*parts: str) -> Path:
    """A file under ../shared/data, or skip the test with the reason."""
    p = DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"real data not available: {p} is absent (the shared data folder sits beside the repo)")
    return p


@pytest.fixture(scope="module")
def broker() -> Iterator[EmbeddedBroker]:
    """A Tansu broker on a free loopback port for the whole test module."""
    log = os.environ.get("STREAMREC_TEST_BROKER_LOG")
    try:
        b = EmbeddedBroker(log_file=log).start()
    except BrokerError as exc:
        pytest.fail(f"the embedded broker could not start: {exc}")
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def unique() -> str:
    """A fresh suffix for topic and group names (Tansu keeps state for the broker's life)."""
    return f"{next(_counter)}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Any]:
    """Subprocesses a test starts (tests/test_prometheus_e2e.py ``Procs``), stopped at its end."""
    from tests.test_prometheus_e2e import Procs

    ps = Procs(tmp_path)
    try:
        yield ps
    finally:
        ps.stop()
