"""``streamrec bench``: throughput, latency and memory of the real pipeline on the embedded broker.

Why one long module: the broker, the worker processes it starts and the figures it merges are
one measurement; splitting it would pass its run's state between modules.

One run (:func:`run_bench`):

1. produces N synthetic clicks (keyed by session id) to a fresh topic with P partitions, or
   replays a real click log instead (``--dataset PATH --format F``: its events in time order, so
   a model's cost can be measured on a shop's own item-popularity head);
2. ``raw_events_per_s``: a bare kafka-python consume-and-decode loop over that topic (group-less,
   all partitions assigned, :func:`stream.events.decode` on every record) — the ceiling of any
   Python worker on this machine;
3. ``pipeline_events_per_s``: W ``streamrec worker`` processes in one group, each click scored,
   learned, recommended (top k), drift-monitored and counted in metrics, until all N are
   processed; then again with ``--recommendations-topic`` publishing every list
   (``pipeline_publish_events_per_s``), next to ``publish_ceiling_events_per_s``, kafka-python's
   own consume + decode + produce loop;
4. ``recommend_ms_p50/p99`` (model.recommend only), ``peak_rss_mb`` (the largest worker's VmHWM),
   ``rss_mb_at`` (worker VmHWM when half and all of the events were processed), prequential
   ``hit_rate_at_20`` / ``mrr_at_20`` over all workers.

Timing: pipeline throughput is N / (first batch received -> last batch processed, across workers,
from the workers' own monotonic clocks), so the group-join delay is excluded. With one worker the
topic is filled first and the worker reads it from the start. With W > 1 the workers are started
first on a fresh topic and the producer only starts once the group's assignment is stable (the
Tansu broker livelocks when a member leaves mid-rebalance, and a mid-run rebalance would move
partitions); the producer then runs beside the workers, so W > 1 figures include sharing the
CPU with it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from kafka import TopicPartition

from stream.evaluation.synthetic import SyntheticStream
from stream.events import Event, Invalid, decode
from stream.kafka import clients as kafka_io
from stream.kafka.broker import EmbeddedBroker, free_port
from stream.kafka.producer import produce_events
from stream.kafka.summary import vm_kb

#: Clicks a benchmark produces and processes (``streamrec bench --events``).
DEFAULT_EVENTS = 200_000

#: The keys of the ``--json`` line (tests pin them).
JSON_KEYS = (
    "model", "workers", "partitions", "events_produced", "events_processed", "raw_events_per_s",
    "pipeline_events_per_s", "pipeline_publish_events_per_s", "publish_ceiling_events_per_s",
    "recommend_ms_p50", "recommend_ms_p99", "peak_rss_mb", "rss_mb_at", "hit_rate_at_20", "mrr_at_20",
)


def session_memory_mb(model: str = "sr", sessions: int = 20_000, clicks: int = 5, items: int = 5_000,
                      seed: int = 0) -> float:
    """MB of resident memory per 100k live sessions of ``clicks`` clicks, in this process.

    Feeds ``sessions x clicks`` random clicks through a fresh :class:`~stream.processing.core.ClickProcessor`
    (no Kafka) twice: once to warm the model (then those sessions are dropped), once with new
    session ids kept live (TTL and cap above the test); the growth of VmRSS over the second pass,
    per 100k sessions, is what live sessions cost: the session store, each session's clicks and
    last list, and whatever per-session state the model keeps beyond its own caps.
    """
    import gc

    from stream.events import Event
    from stream.models import make_model
    from stream.processing.core import ClickProcessor
    from stream.state.sessions import SessionStore

    rng = np.random.default_rng(seed)
    picks = rng.integers(0, items, size=sessions * clicks).tolist()
    names = [f"i{i}" for i in range(items)]
    p = ClickProcessor(make_model(model))

    def feed(prefix: str, t0: float) -> None:
        p.sessions = SessionStore(ttl_s=1e9, max_sessions=sessions + 1)
        j = 0
        for s in range(sessions):
            sid = f"{prefix}{s}"
            for _ in range(clicks):
                p.process(Event(sid, names[picks[j]], t0 + j * 1e-3))
                j += 1

    import tracemalloc

    feed("w", 0.0)
    p.sessions = SessionStore()
    gc.collect()
    tracemalloc.start()
    try:
        feed("s", 1e6)
        gc.collect()
        held, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return round(held / 2**20 * 100_000 / sessions, 1)


# -- the pieces of a run ------------------------------------------------------------------------


def raw_consume(client: dict[str, Any], topic: str, n: int, publish_to: str | None = None,
                timeout_s: float = 300.0) -> float:
    """Events/s of a bare consume + decode loop (+ produce one small JSON per event when
    ``publish_to``), from the first record received to the ``n``-th."""
    consumer = kafka_io.make_consumer(client, group_id=None)
    producer = None
    if publish_to:  # like the worker: a one-partition topic, partition given (no key hashing)
        kafka_io.ensure_topic(client, publish_to, 1)
        producer = kafka_io.make_producer(client)
    parts = consumer.partitions_for_topic(topic) or set()
    tps = [TopicPartition(topic, p) for p in sorted(parts)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    seen = 0
    t0 = 0.0
    deadline = time.monotonic() + timeout_s
    dumps = orjson.dumps
    try:
        while seen < n and time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=500)
            if not batch:
                continue
            if not t0:
                t0 = time.monotonic()
            for records in batch.values():
                for rec in records:
                    ev = decode(rec.value, rec.key)
                    if producer is not None and type(ev) is not Invalid:
                        producer.send(publish_to, key=rec.key, partition=0, value=dumps(
                            {"session_id": ev.session_id, "timestamp": ev.timestamp,
                             "items": [ev.item_id] * 20}))
                seen += len(records)
            if producer is not None:
                producer.flush()
        elapsed = time.monotonic() - t0 if t0 else 0.0
    finally:
        consumer.close()
        if producer is not None:
            producer.close(5)
    if seen < n:
        raise RuntimeError(f"raw loop read {seen} of {n} events from {topic}")
    return round(n / elapsed, 1) if elapsed > 0 else 0.0


@dataclass
class WorkerProc:
    proc: subprocess.Popen[bytes]
    port: int
    summary_path: str
    log_path: str

    def health(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as r:
                return json.loads(r.read())
        except Exception:  # noqa: BLE001 - not up yet, degraded (503) or gone
            return None


@dataclass
class PipelineRun:
    """Merged figures of one pipeline run over all its workers."""

    events_processed: int = 0
    events_per_s: float = 0.0
    hit_rate: float = 0.0
    mrr: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    peak_rss_mb: float = 0.0
    rss_mb_at: dict[str, float] = field(default_factory=dict)
    per_worker: list[dict[str, Any]] = field(default_factory=list)


def _start_worker(bootstrap: str, topic: str, group: str, model: str, args: list[str], tmp: str,
                  i: int, learn_all: bool, rec_topic: str | None, max_events: int | None) -> WorkerProc:
    port = free_port()
    summary = os.path.join(tmp, f"{group}-{i}.json")
    log_path = os.path.join(tmp, f"{group}-{i}.log")
    cmd = [sys.executable, "-m", "stream.cli", "worker", "--bootstrap-servers", bootstrap,
           "--topic", topic, "--group", group, "--model", model, "--metrics-port", str(port),
           "--session-timeout-ms", "6000", "--idle-exit", "600", "--summary-json", summary,
           "--log-level", "WARNING", *args]
    if learn_all:
        cmd.append("--learn-all-partitions")
    if rec_topic:
        cmd += ["--recommendations-topic", rec_topic]
    if max_events is not None:
        cmd += ["--max-events", str(max_events)]
    out = open(log_path, "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    out.close()
    return WorkerProc(proc, port, summary, log_path)


def wait_stable_assignment(workers: list[WorkerProc], partitions: int, timeout_s: float = 90.0,
                           stable_s: float = 3.0) -> list[list[int]]:
    """Wait until the workers' assignments split all partitions and stay unchanged ``stable_s``."""
    deadline = time.monotonic() + timeout_s
    last: list[list[int]] | None = None
    since = 0.0
    while time.monotonic() < deadline:
        for w in workers:
            if w.proc.poll() is not None:
                raise RuntimeError(f"worker exited early: {Path(w.log_path).read_text()[-2000:]}")
        hs = [w.health() for w in workers]
        cur = [sorted(h["assigned_partitions"]) if h else [] for h in hs]
        flat = sorted(p for ps in cur for p in ps)
        ok = flat == list(range(partitions)) and all(cur[: min(len(workers), partitions)])
        now = time.monotonic()
        if ok and cur == last:
            if now - since >= stable_s:
                return cur
        else:
            since = now
        last = cur if ok else None
        time.sleep(0.25)
    raise RuntimeError(f"no stable assignment of {partitions} partitions over {len(workers)} workers "
                       f"within {timeout_s:.0f} s (last: {last})")


def _stop(workers: list[WorkerProc], timeout_s: float = 60.0) -> None:
    for w in workers:
        if w.proc.poll() is None:
            w.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for w in workers:
        try:
            w.proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            w.proc.kill()
            w.proc.wait(5)


def run_pipeline(bootstrap: str, topic: str, n: int, model: str, workers: int, partitions: int,
                 worker_args: list[str], tmp: str, produce: Any = None, rec_topic: str | None = None,
                 timeout_s: float = 1800.0) -> PipelineRun:
    """Run ``workers`` worker processes over ``topic`` until ``n`` events are processed.

    With ``produce`` (a callable), the workers start first on an empty topic and ``produce()`` is
    called once their assignment is stable; otherwise the topic already holds the events.
    """
    group = f"bench-{topic}-{'pub' if rec_topic else 'nopub'}-{free_port()}"
    single = workers == 1 and produce is None
    procs = [_start_worker(bootstrap, topic, group, model, worker_args, tmp, i, workers > 1, rec_topic,
                           n if single else None) for i in range(workers)]
    rss_at: dict[str, float] = {}
    marks = [n // 2, n]
    try:
        if produce is not None:
            wait_stable_assignment(procs, partitions)
            produce()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            done = [w.proc.poll() is not None for w in procs]
            hs = [w.health() for w in procs]
            processed = sum(h["events_processed"] for h in hs if h)
            while marks and processed >= marks[0]:
                hwm = [vm_kb("VmHWM", w.proc.pid) for w in procs]
                rss_at[str(marks.pop(0))] = round(max(h or 0 for h in hwm) / 1024.0, 1)
            if all(done) or (not single and processed >= n):
                break
            if any(done) and not single:
                raise RuntimeError(f"a worker exited early: {Path(procs[done.index(True)].log_path).read_text()[-2000:]}")
            time.sleep(0.5 if n > 20_000 else 0.2)
        else:
            raise RuntimeError(f"pipeline did not process {n} events within {timeout_s:.0f} s")
    finally:
        _stop(procs)
    summaries = []
    for w in procs:
        if not os.path.exists(w.summary_path):
            raise RuntimeError(f"worker wrote no summary (exit {w.proc.returncode}): "
                               f"{Path(w.log_path).read_text()[-2000:]}")
        summaries.append(json.loads(Path(w.summary_path).read_text()))
    active = [s for s in summaries if s["first_batch_at"] is not None]
    first = min(s["first_batch_at"] for s in active) if active else 0.0
    last = max(s["last_batch_at"] for s in active) if active else 0.0
    processed = sum(s["events_processed"] for s in summaries)
    preds = sum(s["predictions"] for s in summaries)
    lat = np.concatenate([np.load(w.summary_path + ".latency.npy") for w in procs]).astype(np.float64)
    for mark in marks:  # the end mark when the last poll missed it: the final peak
        rss_at[str(mark)] = max(s["peak_rss_mb"] for s in summaries)
    return PipelineRun(
        events_processed=processed,
        events_per_s=round(processed / (last - first), 1) if last > first else 0.0,
        hit_rate=sum(s["hits"] for s in summaries) / preds if preds else 0.0,
        mrr=sum(s["rr_sum"] for s in summaries) / preds if preds else 0.0,
        p50_ms=round(float(np.percentile(lat, 50)) * 1e3, 4) if len(lat) else 0.0,
        p99_ms=round(float(np.percentile(lat, 99)) * 1e3, 4) if len(lat) else 0.0,
        peak_rss_mb=max(s["peak_rss_mb"] for s in summaries),
        rss_mb_at=rss_at,
        per_worker=summaries,
    )


# -- the whole benchmark ------------------------------------------------------------------------


@dataclass
class BenchResult:
    model: str
    workers: int
    partitions: int
    events_produced: int
    events_processed: int
    raw_events_per_s: float
    pipeline_events_per_s: float
    pipeline_publish_events_per_s: float | None
    publish_ceiling_events_per_s: float | None
    recommend_ms_p50: float
    recommend_ms_p99: float
    peak_rss_mb: float
    rss_mb_at: dict[str, float]
    hit_rate_at_20: float
    mrr_at_20: float
    produce_events_per_s: float = 0.0
    events_processed_publish: int | None = None
    mb_per_100k_sessions: float | None = None
    per_worker: list[dict[str, Any]] = field(default_factory=list)
    timing: str = ""
    source: str = "synthetic"

    @property
    def pipeline_ratio(self) -> float | None:
        """Pipeline events/s as a share of the raw loop's in the same run (the issue's yardstick)."""
        if not self.raw_events_per_s:
            return None
        return round(self.pipeline_events_per_s / self.raw_events_per_s, 4)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "pipeline_ratio": self.pipeline_ratio}


def run_bench(
    events: int = DEFAULT_EVENTS,
    model: str = "sr",
    workers: int = 1,
    partitions: int = kafka_io.DEFAULT_PARTITIONS,
    seed: int = 0,
    publish: bool = True,
    raw: bool = True,
    worker_args: list[str] | None = None,
    bootstrap: str | None = None,
    log: Any = None,
    session_memory: bool = False,
    dataset: list[Event] | None = None,
    source: str = "synthetic",
    synthetic: dict[str, Any] | None = None,
) -> BenchResult:
    """One benchmark run (see the module docstring); ``bootstrap=None`` starts an embedded broker.

    ``dataset``: replay these events (a real click log, in stream order) instead of ``events``
    synthetic ones; ``source`` names them in the result. ``synthetic``: further
    :class:`~stream.evaluation.synthetic.SyntheticStream` arguments (the shop's shape).
    """
    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    if dataset is not None:
        events = len(dataset)
    wargs = list(worker_args or [])
    with contextlib.ExitStack() as stack:
        if bootstrap is None:
            bootstrap = stack.enter_context(EmbeddedBroker()).bootstrap
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="streamrec-bench-"))
        client = {"bootstrap_servers": bootstrap}
        run_id = f"{int(time.time())}-{free_port()}"
        topic = f"bench-{run_id}"

        def produce_to(t: str) -> Any:
            def go() -> float:
                clicks = dataset if dataset is not None else SyntheticStream(events=events, seed=seed, **(synthetic or {}))
                s = produce_events(client, t, clicks, partitions=partitions, total=events, show_progress=False)
                if s.events_produced != events:
                    raise RuntimeError(f"produced {s.events_produced} of {events}")
                say(f"produced {events:,} events to {t} at {s.events_per_s:,.0f}/s")
                return s.events_per_s
            return go

        produce_rate = produce_to(topic)()
        raw_rate = 0.0
        if raw:
            raw_rate = raw_consume(client, topic, events)
            say(f"raw consume+decode: {raw_rate:,.0f} events/s")

        def pipeline(rec_topic: str | None, suffix: str) -> PipelineRun:
            if workers == 1:
                return run_pipeline(bootstrap, topic, events, model, 1, partitions, wargs, tmp,
                                    rec_topic=rec_topic)
            t = f"{topic}-{suffix}"
            kafka_io.ensure_topic(client, t, partitions)
            return run_pipeline(bootstrap, t, events, model, workers, partitions, wargs, tmp,
                                produce=produce_to(t), rec_topic=rec_topic)

        run = pipeline(None, "w")
        say(f"pipeline ({model}, {workers} worker(s)): {run.events_per_s:,.0f} events/s, "
            f"processed {run.events_processed:,}, HR@20 {run.hit_rate:.4f}")
        pub: PipelineRun | None = None
        ceiling: float | None = None
        if publish:
            pub = pipeline(f"{topic}-recs", "wp")
            say(f"pipeline + publish: {pub.events_per_s:,.0f} events/s")
            if raw:
                ceiling = raw_consume(client, topic, events, publish_to=f"{topic}-ceiling")
                say(f"kafka-python consume+decode+produce ceiling: {ceiling:,.0f} events/s")
        per_session = session_memory_mb(model) if session_memory else None
        timing = ("events/s = events / (first batch received -> last batch processed) across workers; "
                  + ("topic filled before the worker started" if workers == 1 else
                     "workers started first, producer ran beside them once the assignment was stable"))
        return BenchResult(
            model=model, workers=workers, partitions=partitions, events_produced=events,
            events_processed=run.events_processed, raw_events_per_s=raw_rate,
            pipeline_events_per_s=run.events_per_s,
            pipeline_publish_events_per_s=pub.events_per_s if pub else None,
            publish_ceiling_events_per_s=ceiling,
            recommend_ms_p50=run.p50_ms, recommend_ms_p99=run.p99_ms,
            peak_rss_mb=max(run.peak_rss_mb, pub.peak_rss_mb if pub else 0.0),
            rss_mb_at=run.rss_mb_at, hit_rate_at_20=round(run.hit_rate, 5), mrr_at_20=round(run.mrr, 5),
            produce_events_per_s=round(produce_rate, 1),
            events_processed_publish=pub.events_processed if pub else None,
            mb_per_100k_sessions=per_session, per_worker=run.per_worker, timing=timing, source=source,
        )


def table(r: BenchResult) -> str:
    """The readable form of a result."""
    def ratio(x: float | None) -> str:
        return f"({x / r.raw_events_per_s:.2f}x raw)" if x and r.raw_events_per_s else ""

    rows: Iterator[tuple[str, str]] = iter([
        ("model / workers / partitions", f"{r.model} / {r.workers} / {r.partitions}"),
        ("events", r.source),
        ("events produced / processed", f"{r.events_produced:,} / {r.events_processed:,}"),
        ("raw consume+decode", f"{r.raw_events_per_s:,.0f} events/s"),
        ("pipeline", f"{r.pipeline_events_per_s:,.0f} events/s {ratio(r.pipeline_events_per_s)}"),
        ("pipeline + publish", "-" if r.pipeline_publish_events_per_s is None else
         f"{r.pipeline_publish_events_per_s:,.0f} events/s {ratio(r.pipeline_publish_events_per_s)}"),
        ("consume+decode+produce ceiling", "-" if r.publish_ceiling_events_per_s is None else
         f"{r.publish_ceiling_events_per_s:,.0f} events/s"),
        ("recommend p50 / p99", f"{r.recommend_ms_p50:.4f} / {r.recommend_ms_p99:.4f} ms"),
        ("peak RSS (largest worker)", f"{r.peak_rss_mb:.1f} MB"),
        ("RSS at events", ", ".join(f"{k}: {v:.1f} MB" for k, v in r.rss_mb_at.items())),
        ("HR@20 / MRR@20", f"{r.hit_rate_at_20:.4f} / {r.mrr_at_20:.4f}"),
        ("MB per 100k live sessions", "-" if r.mb_per_100k_sessions is None else f"{r.mb_per_100k_sessions:.1f}"),
    ])
    return "\n".join(f"{k:<32} {v}" for k, v in rows)


def json_line(r: BenchResult | dict[str, Any]) -> str:
    return json.dumps(r.as_dict() if isinstance(r, BenchResult) else r, separators=(",", ":"))


#: Figures a repeated benchmark reports as the median of its runs.
MEDIAN_KEYS = (
    "raw_events_per_s", "pipeline_events_per_s", "pipeline_publish_events_per_s",
    "publish_ceiling_events_per_s", "recommend_ms_p50", "recommend_ms_p99", "hit_rate_at_20",
    "mrr_at_20", "produce_events_per_s", "pipeline_ratio",
)


def _median(values: list[Any]) -> float | None:
    vals = [v for v in values if v is not None]
    return round(float(np.median(vals)), 5) if vals else None


def summarize(results: list[BenchResult]) -> dict[str, Any]:
    """One result for ``--repeat N`` runs: the :data:`JSON_KEYS` with medians of the figures
    (``pipeline_ratio`` is the median of the runs' ratios, not a ratio of medians), the fewest
    events processed, the largest RSS; ``runs`` holds each run's figures.

    >>> a = BenchResult("sr", 1, 4, 10, 10, 100.0, 40.0, None, None, 0.1, 0.2, 50.0, {"10": 50.0}, 0.5, 0.2)
    >>> b = BenchResult("sr", 1, 4, 10, 10, 80.0, 36.0, None, None, 0.1, 0.3, 60.0, {"10": 60.0}, 0.5, 0.2)
    >>> c = BenchResult("sr", 1, 4, 10, 9, 120.0, 42.0, None, None, 0.2, 0.4, 55.0, {"10": 55.0}, 0.5, 0.2)
    >>> s = summarize([a, b, c])
    >>> s["raw_events_per_s"], s["pipeline_events_per_s"], s["pipeline_ratio"], s["pipeline_ratios"]
    (100.0, 40.0, 0.4, [0.4, 0.45, 0.35])
    >>> s["events_processed"], s["peak_rss_mb"], s["rss_mb_at"], s["repeat"], len(s["runs"])
    (9, 60.0, {'10': 60.0}, 3, 3)
    """
    runs = [{k: v for k, v in r.as_dict().items() if k != "per_worker"} for r in results]
    out = dict(runs[0])
    for key in MEDIAN_KEYS:
        out[key] = _median([r[key] for r in runs])
    out["events_processed"] = min(r["events_processed"] for r in runs)
    pub = [r["events_processed_publish"] for r in runs if r["events_processed_publish"] is not None]
    out["events_processed_publish"] = min(pub) if pub else None
    out["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    out["rss_mb_at"] = {k: max(r["rss_mb_at"].get(k, 0.0) for r in runs) for k in runs[0]["rss_mb_at"]}
    out["pipeline_ratios"] = [r["pipeline_ratio"] for r in runs]
    out["repeat"] = len(runs)
    out["runs"] = runs
    return out


def repeat_table(results: list[BenchResult]) -> str:
    """Each run's headline figures on one line, then their medians."""
    def fmt(x: float | None, spec: str = ",.0f") -> str:
        return "-" if x is None else format(x, spec)

    s = summarize(results)
    head = f"{'run':<7}{'raw ev/s':>10}{'pipeline ev/s':>15}{'ratio':>8}{'+publish ev/s':>15}" \
           f"{'ceiling':>10}{'p50 / p99 ms':>18}{'HR@20':>8}{'RSS MB':>8}"
    lines = [f"{results[0].model}, {results[0].workers} worker(s), {results[0].partitions} partitions, "
             f"{results[0].events_produced:,} events ({results[0].source}), {len(results)} runs", head]
    for name, r in [*((str(i + 1), r) for i, r in enumerate(s["runs"])), ("median", s)]:
        lines.append(
            f"{name:<7}{fmt(r['raw_events_per_s']):>10}{fmt(r['pipeline_events_per_s']):>15}"
            f"{fmt(r['pipeline_ratio'], '.3f'):>8}{fmt(r['pipeline_publish_events_per_s']):>15}"
            f"{fmt(r['publish_ceiling_events_per_s']):>10}"
            f"{fmt(r['recommend_ms_p50'], '.4f') + ' / ' + fmt(r['recommend_ms_p99'], '.4f'):>18}"
            f"{fmt(r['hit_rate_at_20'], '.4f'):>8}{fmt(r['peak_rss_mb'], '.0f'):>8}")
    return "\n".join(lines)
