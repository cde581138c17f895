"""The main job end to end on one machine: broker, topics, producer and worker, then a summary."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from stream.events import Event
from stream.kafka import clients as kafka_io
from stream.kafka.broker import EmbeddedBroker, free_port
from stream.kafka.producer import ProduceSummary, produce_events
from stream.kafka.worker import Worker, WorkerSettings
from stream.processing.core import ClickProcessor


@dataclass
class DemoResult:
    events_produced: int
    events_processed: int
    events_invalid: int
    hit_rate_at_20: float
    mrr_at_20: float
    predictions: int
    model: str
    elapsed_s: float
    events_per_s: float
    recommend_ms_p50: float
    recommend_ms_p99: float
    active_sessions: int
    bootstrap_servers: str
    metrics_url: str | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _live(worker: Worker, produced: list[int], total: int, stop: threading.Event) -> None:
    """One status line on stderr per second while the demo runs (only on a terminal)."""
    if not sys.stderr.isatty():
        return
    t0 = time.monotonic()
    while not stop.wait(1.0):
        p = worker.processor
        el = time.monotonic() - t0
        sys.stderr.write(
            f"\rproduced {produced[0]:>8,}/{total:,}  processed {p.events:>8,}  "
            f"HR@{p.k} {p.preq.window_hit_rate:.3f}  MRR@{p.k} {p.preq.window_mrr:.3f}  "
            f"sessions {len(p.sessions):>6,}  {p.events / el if el else 0:,.0f} ev/s ")
        sys.stderr.flush()
    sys.stderr.write("\n")


def run_demo(
    events: Iterable[Event],
    total: int,
    processor: ClickProcessor,
    model_name: str,
    bootstrap: str | None = None,
    client: dict | None = None,
    topic: str = kafka_io.DEFAULT_TOPIC,
    partitions: int = kafka_io.DEFAULT_PARTITIONS,
    lifecycle: Any = None,
    metrics_port: int | None = 0,
    recommendations_topic: str | None = None,
    idle_exit_s: float = 60.0,
) -> DemoResult:
    """Produce ``events`` into ``topic`` while one worker consumes them; returns the summary."""
    with contextlib.ExitStack() as stack:
        if bootstrap is None and client is None:
            broker = stack.enter_context(EmbeddedBroker())
            bootstrap = broker.bootstrap
        cfg = dict(client or {})
        cfg["bootstrap_servers"] = bootstrap or cfg.get("bootstrap_servers")
        run_id = f"{int(time.time())}-{free_port()}"
        topic = f"{topic}-{run_id}" if client is None else topic
        kafka_io.ensure_topic(cfg, topic, partitions)
        settings = WorkerSettings(
            client=cfg, topic=topic, group=f"streamrec-demo-{run_id}", model_name=model_name,
            recommendations_topic=recommendations_topic, metrics_port=metrics_port,
            max_events=total, idle_exit_s=idle_exit_s)
        worker = Worker(settings, processor, lifecycle=lifecycle)
        produced = [0]
        result: list[ProduceSummary] = []

        def counted() -> Iterable[Event]:
            for ev in events:
                produced[0] += 1
                yield ev

        failed: list[BaseException] = []

        def producer() -> None:
            try:
                result.append(produce_events(cfg, topic, counted(), partitions=partitions, total=total,
                                             show_progress=False))
            except BaseException as exc:  # noqa: BLE001 - reported below, after the worker stops
                failed.append(exc)
                worker.stop("producer failed")

        stop = threading.Event()
        t0 = time.monotonic()
        prod = threading.Thread(target=producer, name="demo-producer", daemon=True)
        live = threading.Thread(target=_live, args=(worker, produced, total, stop), daemon=True)
        prod.start()
        live.start()
        try:
            worker.install_signal_handlers()
        except ValueError:  # not the main thread (tests)
            pass
        summary = worker.run()
        stop.set()
        prod.join(30)
        live.join(2)
        elapsed = time.monotonic() - t0
        if failed:
            raise RuntimeError(f"the demo producer failed: {failed[0]!r}") from failed[0]
        p = worker.processor
        metrics_url = f"http://127.0.0.1:{worker.http.port}/metrics" if worker.http else None
        return DemoResult(
            events_produced=result[0].events_produced if result else produced[0],
            events_processed=summary.events_processed,
            events_invalid=summary.events_invalid,
            hit_rate_at_20=summary.hit_rate_at_k,
            mrr_at_20=summary.mrr_at_k,
            predictions=summary.predictions,
            model=model_name,
            elapsed_s=round(elapsed, 3),
            events_per_s=round(summary.events_processed / summary.elapsed_s, 1) if summary.elapsed_s else 0.0,
            recommend_ms_p50=round(p.latency.percentile(50) * 1e3, 4),
            recommend_ms_p99=round(p.latency.percentile(99) * 1e3, 4),
            active_sessions=len(p.sessions),
            bootstrap_servers=str(bootstrap),
            metrics_url=metrics_url,
        )
