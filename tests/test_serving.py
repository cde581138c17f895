"""Business rules, catalogue and request API: unit cases, then the real worker on the embedded broker."""

from __future__ import annotations

import argparse
import http.client
import threading
import time
from pathlib import Path

import orjson
import pytest

from stream.cli.serve_args import build_serving
from stream.evaluation.synthetic import SyntheticStream
from stream.events import Event
from stream.kafka import clients as kafka_io
from stream.kafka.producer import produce_events
from stream.kafka.worker import Worker, WorkerSettings
from stream.models import make_model
from stream.processing.core import ClickProcessor
from stream.serving.api import FALLBACK_HEADER, Api
from stream.serving.catalog import DELETED, Catalog, CatalogFollower, ItemInfo, decode
from stream.serving.http import HttpServer, Routes
from stream.serving.rules import ModelGate, Rules, Serving
from tests.kafka_read import read_topic

# -- rules ---------------------------------------------------------------------------------------


def _catalog() -> Catalog:
    c = Catalog()
    c.apply("a", ItemInfo(True, "shoes"))
    c.apply("b", ItemInfo(False, "shoes"))  # unavailable
    c.apply("c", ItemInfo(True, "hats"))
    c.apply("d", ItemInfo(True, "shoes"))
    c.apply("e", None)  # deleted
    return c


def test_each_rule_drops_its_items() -> None:
    r = Rules(_catalog(), denylist={"d"})
    items = ["a", "b", "c", "d", "e", "f"]
    assert r.apply(items, 10) == (["a", "c", "f"], 0)  # b unavailable, e deleted, d denied
    assert r.apply(items, 10, category="shoes") == (["a"], 0)  # f: category unknown
    assert r.apply(items, 10, purchased={"a"}) == (["c", "f"], 0)
    assert r.apply(items, 10, exclude={"c"}) == (["a", "f"], 0)
    assert r.apply(items, 10, seen={"a", "c"}) == (["a", "c", "f"], 0)  # seen only with exclude_seen
    assert Rules(_catalog(), exclude_seen=True).apply(items, 10, seen={"a", "c"}) == (["d", "f"], 0)


def test_rules_order_and_cut_before_fallback() -> None:
    r = Rules(_catalog(), denylist={"d"})
    # the first k allowed items, in the model's order
    assert r.apply(["f", "c", "a", "g"], 2) == (["f", "c"], 0)
    # short lists are filled from the fallback under the same rules, without repeats
    got, fb = r.apply(["b", "a"], 4, purchased={"x"}, fallback=["a", "b", "d", "x", "y", "z", "w"])
    assert got == ["a", "y", "z", "w"] and fb == 3
    # a fallback that runs out leaves the list short, and says how many it gave
    assert r.apply(["b"], 5, category="shoes", fallback=["a", "d", "b"]) == (["a"], 1)


def test_over_fetch_keeps_k_items() -> None:
    """The model ranks fetch > k items: a filtered list is still k long without the fallback."""
    p = ClickProcessor(make_model("sr"), k=3, fetch=6)
    for t, (s, i) in enumerate([("a", "x"), ("a", "y"), ("b", "x"), ("b", "z"), ("c", "x"), ("c", "w"),
                                ("d", "x"), ("d", "v"), ("e", "x"), ("e", "u")]):
        p.process(Event(s, i, float(t)))
    s = p.sessions.touch("q", 20.0)
    s.last_recs = p.model.recommend([p.items.get("x")], 20.0, p.fetch)
    assert len(s.last_recs) == 6
    cat = Catalog()
    cat.apply(p.items.name(s.last_recs[0]), ItemInfo(False))
    serving = Serving(p, cat)
    items, fb = serving.session_list("q", 3)  # type: ignore[misc]
    assert len(items) == 3 and fb == 0 and p.items.name(s.last_recs[0]) not in items
    assert len(serving.session_list("q", 6)[0]) == 5  # type: ignore[index]  # no popular items yet
    serving.popular.add([p.items.intern("t")])
    items, fb = serving.session_list("q", 6)  # type: ignore[misc]
    assert items[-1] == "t" and len(items) == 6 and fb == 1  # the last one from the fallback


def test_prequential_scores_the_unfiltered_list() -> None:
    """Fetching more than k does not change HR@k / MRR@k."""
    clicks = [Event(f"s{t % 7}", f"i{(t * 5) % 11}", float(t)) for t in range(300)]
    a, b = ClickProcessor(make_model("vstan"), k=5), ClickProcessor(make_model("vstan"), k=5, fetch=25)
    la, lb = a.process_batch(clicks), b.process_batch(clicks)
    assert [x for x in la] == [y[:5] for y in lb]
    assert (a.preq.hits, a.preq.rr_sum) == (b.preq.hits, b.preq.rr_sum)


def test_purchases_leave_the_session_and_served_hit_rate() -> None:
    p = ClickProcessor(make_model("sr"), k=5, fetch=10)
    serving = Serving(p)
    evs = [Event("a", "x", 1.0), Event("a", "y", 2.0), Event("b", "x", 3.0),
           Event("b", "y", 4.0, "purchase"), Event("c", "x", 5.0), Event("c", "y", 6.0)]
    served = serving.publish(evs, p.process_batch(evs))
    assert "y" in served[4]  # c has not bought y
    assert "y" not in served[3] and "y" not in serving.session_list("b", 5)[0]  # type: ignore[index]
    # SR has learned nothing before the first list of each session: those lists are the fallback,
    # the run's most clicked items (x and y, three clicks each), so every second click hits
    assert serving.served_predictions == 3 and serving.served_hits == 3
    assert serving.type_predictions["purchase"] == 1 and serving.type_hits["purchase"] == 1


# -- catalogue -----------------------------------------------------------------------------------


def test_catalogue_tombstones_and_bound() -> None:
    c = Catalog(max_items=3)
    assert c.apply("a", ItemInfo(True)) is None and c.apply("b", ItemInfo(False)) is None
    assert c.counts() == (1, 1)
    assert c.apply("a", None) is None  # tombstone: deleted, never served
    assert not c.allowed("a") and c.get("a") is None and c.items["a"] is DELETED and c.counts() == (0, 1)
    assert c.apply("a", ItemInfo(True)) is None and c.allowed("a")  # re-listed
    assert c.apply("c", ItemInfo(True)) is None
    assert c.apply("d", ItemInfo(True)) == "catalog_full"  # bounded; nothing deleted to forget
    c.apply("c", None)
    assert c.apply("d", ItemInfo(True)) is None and "c" not in c.items  # the deletion forgotten
    assert c.updates == 7  # a, b, a deleted, a, c, c deleted, d


@pytest.mark.parametrize(("key", "value", "reason"), [
    (None, b"{}", "bad_key"), (b"", b"{}", "bad_key"), (b"\xff", b"{}", "bad_key"),
    (b"i", b"x" * 9000, "too_large"), (b"i", b"\xff", "not_utf8"), (b"i", b"{", "bad_json"),
    (b"i", b"[]", "not_object"), (b"i", b'{"available": "maybe"}', "bad_available"),
    (b"i", b'{"category": 7}', "bad_category"), (b"i", b'{"price": "cheap"}', "bad_price"),
    (b"i", b'{"price": true}', "bad_price"),
])
def test_bad_catalogue_records_have_a_reason(key, value, reason) -> None:
    assert decode(key, value).reason == reason


def test_catalogue_files(tmp_path: Path) -> None:
    j = tmp_path / "c.jsonl"
    j.write_text('{"item_id": "a", "available": false, "category": "shoes", "price": 3}\n'
                 '{"item_id": "b"}\n\nnot json\n{"available": true}\n')
    c = Catalog()
    assert c.load_file(j) == (2, {"bad_json": 1, "bad_key": 1})
    assert not c.allowed("a") and c.allowed("b") and c.get("a").category == "shoes"  # type: ignore[union-attr]
    v = tmp_path / "c.csv"
    v.write_text("item_id,available,category,price\nx,false,hats,1.5\ny,true,,\nz,perhaps,,\n")
    c = Catalog()
    assert c.load_file(v) == (2, {"bad_available": 1})
    assert c.get("x") == ItemInfo(False, "hats", 1.5) and c.get("y") == ItemInfo(True, None, None)


def test_gate_runs_queued_queries_when_the_worker_is_quiet() -> None:
    g = ModelGate()
    assert g.call(lambda: 1) == 1  # free: at once
    g.hold()
    out: list[int] = []
    t = threading.Thread(target=lambda: out.append(g.call(lambda: 2)))
    t.start()
    time.sleep(0.05)
    assert not out  # held: queued
    g.serve()
    t.join(5)
    assert out == [2]
    g.release()
    assert g.call(lambda: 3) == 3


def test_basket_queries_read_the_models_copy_while_the_gate_is_held() -> None:
    """While a pipelined run holds the gate, ``POST /recommendations`` is answered at once from
    the kNN model's copy of the index (``recommend_concurrent``), with the live model's list, on
    the server's event loop; without a copy it goes to the pool and queues for the gate."""
    p = ClickProcessor(make_model("vstan"), k=5)
    p.split_queries()
    events = list(SyntheticStream(events=3_000, seed=4))
    p.process_batch(events)
    serving = Serving(p)
    basket = [events[-1].item_id, events[-2].item_id]
    live = serving.basket_list(basket, 5)  # the gate is free: the live model
    body = orjson.dumps({"items": basket, "k": 5})
    json_type = {"Content-Type": "application/json"}
    serving.gate.hold()
    try:
        assert serving.basket_list(basket, 5) == live
        assert serving.gate.waited_at == -float("inf")  # nothing queued
        # the server answers it on its event loop, without handing it to a pool thread
        code, headers, out = Api(serving).handle_now("POST", "/recommendations", json_type, body)  # type: ignore[misc]
        assert code == 200 and orjson.loads(out) == {"items": live[0], "fallback": live[1]}
    finally:
        serving.gate.release()
    q = ClickProcessor(make_model("vstan"), k=5)  # no run split yet: no copy
    q.process_batch(events)
    other = Serving(q)
    other.gate.hold()
    try:
        assert Api(other).handle_now("POST", "/recommendations", json_type, body) is None  # to the pool
        assert Api(other).handle_now("POST", "/recommendations", json_type, b"{")[0] == 400  # type: ignore[index]
        with pytest.raises(TimeoutError):
            other.gate.call(lambda: 1, timeout_s=0.05, meanwhile=lambda: q.model.recommend_concurrent([0], 0.0, 5))
    finally:
        other.gate.release()


def test_worker_opens_the_gate_between_slices_and_shortens_runs_while_queries_wait() -> None:
    """On the click-by-click path a queued model query is answered after the first
    GATE_EVERY_CLICKS clicks of a long run, not after the run; the lists are the run's own. While
    queries have been waiting, runs are cut to GATE_RUN_CLICKS."""
    from stream.kafka import worker as w

    events = list(SyntheticStream(events=4 * w.GATE_EVERY_CLICKS + 5, seed=3))
    proc = ClickProcessor(make_model("sr"), k=20)
    worker = Worker(WorkerSettings(client={}, topic="t", group="g", model_name="sr", metrics_port=0), proc)
    worker.serving = Serving(proc)
    gate = worker.serving.gate
    assert worker._run_clicks() == worker.s.poll_records  # nobody waited
    gate.hold()  # as the worker holds it while processing
    seen: list[int] = []
    t = threading.Thread(target=lambda: seen.append(gate.call(lambda: proc.events)))
    t.start()
    _wait(lambda: gate.waited_at > 0, 5, "the query to queue")
    lists = worker._process_opening_gate(events)
    t.join(5)
    gate.release()
    assert seen == [w.GATE_EVERY_CLICKS]
    assert lists == ClickProcessor(make_model("sr"), k=20).process_batch(events)
    assert worker._run_clicks() == min(worker.s.poll_records, w.GATE_RUN_CLICKS)


# -- request API ---------------------------------------------------------------------------------


@pytest.fixture
def api_server():
    p = ClickProcessor(make_model("vstan"), k=5, fetch=10)
    p.process_batch([Event(f"s{t % 9}", f"i{(t * 7) % 23}", float(t)) for t in range(400)])
    cat = Catalog()
    cat.apply("i3", ItemInfo(False))
    for i in range(23):
        if i != 3:
            cat.apply(f"i{i}", ItemInfo(True, "even" if i % 2 == 0 else "odd"))
    serving = Serving(p, cat)
    srv = HttpServer(Routes(lambda: b"", lambda: (True, {}), p.recommendations, Api(serving)), 0).start()
    try:
        yield srv
    finally:
        srv.stop()


def _req(srv: HttpServer, method: str, path: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, object, http.client.HTTPResponse]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        raw = r.read()
        return r.status, orjson.loads(raw) if raw else None, r
    finally:
        conn.close()


def test_api_routes(api_server) -> None:
    code, body, r = _req(api_server, "GET", "/recommendations/s1?k=4")
    assert code == 200 and isinstance(body, list) and len(body) == 4 and "i3" not in body
    assert r.getheader(FALLBACK_HEADER) == "0"
    code, body, r = _req(api_server, "GET", "/recommendations/s1?k=8&category=even&exclude=i0,i2")
    assert code == 200 and all(int(i[1:]) % 2 == 0 for i in body) and not {"i0", "i2"} & set(body)
    assert int(r.getheader(FALLBACK_HEADER)) >= 0
    code, body, _ = _req(api_server, "POST", "/recommendations",
                         orjson.dumps({"items": ["i1", "i8"], "k": 6, "exclude": ["i15"]}),
                         {"Content-Type": "application/json"})
    assert code == 200 and len(body["items"]) == 6 and "i3" not in body["items"]  # type: ignore[index]
    assert "i15" not in body["items"] and body["fallback"] >= 0  # type: ignore[index]
    code, body, _ = _req(api_server, "GET", "/items/i1/similar?k=3")
    assert code == 200 and len(body["items"]) == 3 and "i1" not in body["items"]  # type: ignore[index]
    assert _req(api_server, "GET", "/items/nope/similar")[0] == 404
    assert _req(api_server, "GET", "/recommendations/nobody")[0] == 404
    code, body, _ = _req(api_server, "GET", "/openapi.json")
    assert code == 200 and body["openapi"].startswith("3.")  # type: ignore[index]


@pytest.mark.parametrize(("method", "path", "body", "code", "field"), [
    ("GET", "/recommendations/s1?k=0", None, 400, "k"),
    ("GET", "/recommendations/s1?k=abc", None, 400, "k"),
    ("GET", "/recommendations/s1?k=1&k=2", None, 400, "k"),
    ("GET", "/recommendations/s1?colour=red", None, 400, "colour"),
    ("GET", "/recommendations/s1?category=", None, 400, "category"),
    ("GET", "/recommendations/%0A", None, 400, "session_id"),
    ("POST", "/recommendations", b"{", 400, "body"),
    ("POST", "/recommendations", b"[]", 400, "body"),
    ("POST", "/recommendations", b"{}", 400, "items"),
    ("POST", "/recommendations", b'{"items": "i1"}', 400, "items"),
    ("POST", "/recommendations", b'{"items": [1]}', 400, "items"),
    ("POST", "/recommendations", b'{"items": [], "k": 1000}', 400, "k"),
    ("POST", "/recommendations", b'{"items": [], "k": true}', 400, "k"),
    ("POST", "/recommendations", b'{"items": [], "exclude": {}}', 400, "exclude"),
    ("POST", "/recommendations", b'{"items": [], "category": 3}', 400, "category"),
    ("POST", "/recommendations", b'{"items": [], "extra": 1}', 400, "extra"),
    ("POST", "/recommendations", b"x" * 70_000, 413, "body"),
    ("PUT", "/recommendations", None, 405, "method"),
    ("PUT", "/recommendations", b"{}", 405, "method"),
    ("GET", "/recommendations/s1", b"{}", 413, "body"),
    ("POST", "/recommendations/s1", b"{}", 405, "method"),
    ("GET", "/items/i1/similar?category=x", None, 400, "category"),
    ("GET", "/admin/anything", None, 404, "path"),
])
def test_bad_requests_name_the_field(api_server, method, path, body, code, field) -> None:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    got, out, _ = _req(api_server, method, path, body, headers)
    assert got == code and out["field"] == field, out  # type: ignore[index]


def test_post_wrong_content_type(api_server) -> None:
    got, out, _ = _req(api_server, "POST", "/recommendations", b"items=i1", {"Content-Type": "text/plain"})
    assert got == 415 and out["field"] == "Content-Type"  # type: ignore[index]


def test_admin_routed_when_set() -> None:
    class Admin:
        def handle(self, method, path, headers, body):
            return 200, {}, orjson.dumps({"method": method, "path": path, "body": body.decode()})

    srv = HttpServer(Routes(lambda: b"", lambda: (True, {}), lambda s: None, admin=Admin()), 0).start()
    try:
        code, out, _ = _req(srv, "POST", "/admin/retrain?x=1", b'{"a": 1}', {"Content-Type": "application/json"})
        assert code == 200 and out == {"method": "POST", "path": "/admin/retrain?x=1", "body": '{"a": 1}'}
        assert _req(srv, "DELETE", "/admin/retrain")[0] == 405
    finally:
        srv.stop()


# -- the real worker on the embedded broker ---------------------------------------------------------


def _ns(**kw) -> argparse.Namespace:
    d = {"catalog": None, "catalog_topic": None, "denylist": None, "exclude_seen": False, "overfetch": 20,
         "max_items": 1_000_000, "max_sessions": 100_000}
    d.update(kw)
    return argparse.Namespace(**d)


def _get(port: int, path: str) -> tuple[int, object]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, orjson.loads(r.read())
    finally:
        conn.close()


def _wait(pred, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.broker
def test_catalogue_topic_and_purchases_on_the_real_worker(broker, unique) -> None:
    """10% of the items become unavailable mid-stream on the catalogue topic: from the next poll
    on no published list and no HTTP answer holds one; a purchased item never comes back in its
    session's lists."""
    cfg = {"bootstrap_servers": broker.bootstrap}
    topic, cat_topic, recs_topic = f"clicks-{unique}", f"catalog-{unique}", f"recs-{unique}"
    raw = list(SyntheticStream(events=8000, seed=11, n_items=300))
    events = [e._replace(event_type="purchase") if t % 9 == 4 else e for t, e in enumerate(raw)]
    first, second = events[:4000], events[4000:]
    items = sorted({e.item_id for e in events})
    kafka_io.ensure_topic(cfg, topic, 2)
    kafka_io.ensure_topic(cfg, cat_topic, 2)
    prod = kafka_io.make_producer(cfg)
    for it in items:
        prod.send(cat_topic, key=it.encode(), value=orjson.dumps({"available": True, "category": "c"}))
    prod.send(cat_topic, key=b"bad", value=b"{not json")  # dead-lettered
    prod.flush()
    produce_events(cfg, topic, first, partitions=2, show_progress=False)

    proc = ClickProcessor(make_model("vstan"), k=20)
    settings = WorkerSettings(client=cfg, topic=topic, group=f"g-{unique}", model_name="vstan",
                              recommendations_topic=recs_topic, metrics_port=0, poll_timeout_ms=100,
                              consumer_overrides={"session_timeout_ms": 6000})
    worker = Worker(settings, proc)
    serving = build_serving(_ns(catalog_topic=cat_topic), worker)
    assert serving.catalog.counts() == (len(items), 0)  # read whole before the first click
    errors: list[BaseException] = []

    def run() -> None:
        try:
            worker.run()
        except BaseException as e:  # noqa: BLE001 - reported by the test
            errors.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        _wait(lambda: proc.events >= len(first) and worker.http is not None, 120, "the first half")
        port = worker.http.port  # type: ignore[union-attr]
        gone = set(items[::10])  # 10% of the items
        for it in sorted(gone):
            if it == items[0]:
                prod.send(cat_topic, key=it.encode(), value=None)  # a tombstone deletes
            else:
                prod.send(cat_topic, key=it.encode(), value=orjson.dumps({"available": False}))
        prod.flush()
        _wait(lambda: serving.catalog.counts()[1] == len(gone) - 1 and not serving.catalog.allowed(items[0]),
              60, "the catalogue change to be applied")
        applied_at = proc.events  # every list from here on is filtered with the change
        assert applied_at == len(first)
        produce_events(cfg, topic, second, partitions=2, show_progress=False)
        sessions = sorted({e.session_id for e in second})
        answers = 0
        while proc.events < len(events):  # HTTP answers while the worker consumes
            for sid in sessions[:: max(1, len(sessions) // 50)]:
                code, body = _get(port, f"/recommendations/{sid}?k=20")
                if code == 200:
                    assert not gone & set(body), sid  # type: ignore[arg-type]
                    answers += 1
            if not t.is_alive():
                break
        for sid in sessions:
            code, body = _get(port, f"/recommendations/{sid}")
            assert code == 200 and len(body) == 20 and not gone & set(body)  # type: ignore[arg-type]
        assert answers > 0
    finally:
        worker.stop()
        t.join(60)
        prod.close()
    assert not errors, errors
    assert serving.follower is not None and serving.follower.bad == {"bad_json": 1}

    published = read_topic(cfg, recs_topic, len(events))
    assert len(published) == len(events)
    last_first = max(e.timestamp for e in first)
    by_session: dict[str, list[tuple[float, list[str]]]] = {}
    for rec in published:
        d = orjson.loads(rec.value)
        assert len(d["items"]) == 20
        if d["timestamp"] > last_first:
            assert not gone & set(d["items"]), d
        by_session.setdefault(d["session_id"], []).append((d["timestamp"], d["items"]))
    bought = {}
    for e in events:
        if e.event_type == "purchase":
            bought.setdefault(e.session_id, []).append((e.timestamp, e.item_id))
    checked = 0
    for sid, buys in bought.items():
        for ts, item in buys:
            for lts, lst in by_session.get(sid, []):
                if lts >= ts:
                    assert item not in lst, (sid, item)
                    checked += 1
    assert checked > 100
    dlq = read_topic(cfg, f"{topic}.dlq", 1)
    assert [dict(r.headers)["error"] for r in dlq] == [b"bad_json"]
    text = worker.metrics.exposition().decode()
    assert f'streamrec_catalog_items{{state="unavailable"}} {float(len(gone) - 1)}' in text
    assert 'streamrec_served_hit_rate{k="20"}' in text and "streamrec_catalog_updates_total" in text


@pytest.mark.broker
def test_catalogue_follower_reads_every_partition(broker, unique) -> None:
    cfg = {"bootstrap_servers": broker.bootstrap}
    topic = f"catalog-{unique}"
    kafka_io.ensure_topic(cfg, topic, 3)
    prod = kafka_io.make_producer(cfg)
    for i in range(30):
        prod.send(topic, key=f"i{i}".encode(), value=orjson.dumps({"available": i % 3 != 0}))
    prod.send(topic, key=b"i1", value=None)
    prod.flush()
    prod.close()
    f = CatalogFollower(Catalog(), cfg, topic)
    try:
        f.catch_up()
        assert f.catalog.counts() == (19, 10) and not f.catalog.allowed("i1")
    finally:
        f.close()


@pytest.mark.broker
def test_produce_catalog_loads_a_file_a_worker_then_follows(broker, unique, tmp_path, capsys) -> None:
    """``streamrec produce --catalog FILE``: good records reach the catalogue topic keyed by item id
    (created compacted), bad ones are counted and not sent; a worker following the topic has them."""
    import logging

    from stream.cli import main

    handlers = logging.getLogger().handlers[:]  # main() logs to the captured stderr: put them back
    topic = f"catalog-{unique}"
    first = tmp_path / "catalog.jsonl"
    first.write_text('{"item_id": "a", "available": true, "category": "shoes", "price": 19.9}\n'
                     '{"item_id": "b", "available": false}\n'
                     '{"item_id": "c", "price": "lots"}\n'  # bad_price
                     'not json\n'
                     '{"item_id": "d", "category": "hats"}\n')
    flags = ["--bootstrap-servers", broker.bootstrap, "--catalog-topic", topic]
    assert main(["produce", "--catalog", str(first), *flags]) == 0
    assert "produced 3 catalogue records" in capsys.readouterr().err
    sent = read_topic({"bootstrap_servers": broker.bootstrap}, topic, 3)
    assert sorted((r.key, orjson.loads(r.value)) for r in sent) == [
        (b"a", {"available": True, "category": "shoes", "price": 19.9}), (b"b", {"available": False}),
        (b"d", {"available": True, "category": "hats"})]

    cfg = {"bootstrap_servers": broker.bootstrap}
    settings = WorkerSettings(client=cfg, topic=f"clicks-{unique}", group=f"g-{unique}", model_name="sr",
                              metrics_port=0, poll_timeout_ms=100)
    worker = Worker(settings, ClickProcessor(make_model("sr"), k=20))
    try:
        serving = build_serving(_ns(catalog_topic=topic), worker)
        catalog = serving.catalog
        assert catalog.counts() == (2, 1) and catalog.get("a") == ItemInfo(True, "shoes", 19.9)
        assert catalog.get("c") is None and serving.follower.bad == {}  # nothing bad reached the topic
        update = tmp_path / "update.csv"
        update.write_text("item_id,available,category,price\na,false,shoes,18\ne,yes,,\n,true,x,1\n")
        assert main(["produce", "--catalog", str(update), *flags]) == 0
        assert "refused 1 (bad_key 1)" in capsys.readouterr().err
        _wait(lambda: (serving.poll_catalog(), catalog.counts())[1] == (2, 2), 30, "the update")
        assert not catalog.allowed("a") and catalog.allowed("e")
        with pytest.raises(SystemExit, match="no such catalogue file"):
            main(["produce", "--catalog", str(tmp_path / "nope.jsonl"), *flags])
    finally:
        worker.stop()
        logging.getLogger().handlers[:] = handlers
