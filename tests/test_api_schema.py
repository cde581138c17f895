"""Schemathesis against the worker's own ``/openapi.json``: no 5xx, every response matches the schema."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import orjson
import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis comes with the test extras")
from hypothesis import HealthCheck, settings  # noqa: E402

from stream.events import Event  # noqa: E402
from stream.models import make_model  # noqa: E402
from stream.processing.core import ClickProcessor  # noqa: E402
from stream.serving.api import OPENAPI_BYTES, Api  # noqa: E402
from stream.serving.catalog import Catalog, ItemInfo  # noqa: E402
from stream.serving.http import HttpServer, Routes  # noqa: E402
from stream.serving.rules import Serving  # noqa: E402


@pytest.fixture(scope="module")
def server() -> Iterator[HttpServer]:
    p = ClickProcessor(make_model("vstan"), k=10, fetch=20)
    p.process_batch([Event(f"s{t % 13}", f"i{(t * 7) % 41}", float(t),
                           "purchase" if t % 11 == 0 else "view") for t in range(600)])
    cat = Catalog()
    for i in range(0, 41, 5):
        cat.apply(f"i{i}", ItemInfo(i % 2 == 0, "c"))
    health = (True, {"status": "ok"})
    srv = HttpServer(Routes(lambda: b"streamrec_up 1\n", lambda: health, p.recommendations, Api(Serving(p, cat))),
                     0).start()
    try:
        yield srv
    finally:
        srv.stop()


def test_served_document_is_the_one_tested(server: HttpServer) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/openapi.json", timeout=5) as r:
        assert orjson.loads(r.read()) == orjson.loads(OPENAPI_BYTES)


# the document /openapi.json serves (pinned above); loaded at collection, the server is a fixture
schema = schemathesis.openapi.from_dict(orjson.loads(OPENAPI_BYTES))


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_api_matches_its_schema(case, server: HttpServer) -> None:
    """Every check but negative-data rejection: the document promises printable ASCII ids, the
    server takes any printable string (ids on the click stream may be Unicode)."""
    case.call_and_validate(base_url=f"http://127.0.0.1:{server.port}",
                           excluded_checks=[schemathesis.checks.negative_data_rejection])
