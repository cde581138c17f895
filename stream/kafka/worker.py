"""The Kafka worker: poll, decode, dispatch to the per-click core, publish, commit.

Why one long module: the poll loop, its pipelining and its commits share the loop's state (the
pending run, the committed offsets, the rebalance record) and run on its one thread.

One consumer-group member. The loop keeps the at-least-once order:
process a batch -> flush what it produced (recommendations, dead letters) -> commit the next
offsets. With a session-kNN model a batch's compiled learning and queries run on a second
thread while the main thread takes the next poll (:class:`_Pending`), so its offsets are
committed one poll later; the main thread also answers a share of the batch's queries from a
copy of the index (:class:`SplitSteer`). The rebalance listener only records what changed
(kafka-python 3.x runs it on its IO thread, where blocking calls fail); the main loop acts on it.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson
from kafka import ConsumerRebalanceListener, TopicPartition

from monitoring.drift import exporter as drift_exporter
from monitoring.metrics import Metrics
from stream.config import log_event
from stream.events import Event, Invalid, decode
from stream.kafka import clients as kafka_io
from stream.kafka import membership
from stream.kafka.gcfreeze import GcFreezer
from stream.kafka.ordering import DEFAULT_MAX_WAIT_S, DEFAULT_ORDER, ORDERS, EventTimeMerge, Released
from stream.processing.core import ClickProcessor, Run, start_split
from stream.serving.admin import DEFAULT_ADMIN_PORT, AdminHandler, MainLoopCalls
from stream.serving.http import HttpServer, Routes
from stream.state import checkpoint as ckpt

log = logging.getLogger("streamrec.worker")


#: Records per group poll when every partition is also learned (``--learn-all-partitions``).
REPLICA_POLL_RECORDS = 1_000
#: The interpreter's GIL switch interval once a worker pipelines (``sys.setswitchinterval``).
PIPELINE_SWITCH_INTERVAL_S = 0.0005
#: Poll timeout while clicks wait for a lagging partition (its records are on their way).
HELD_POLL_TIMEOUT_MS = 10
#: Clicks between two openings of the serving gate on the click-by-click path: the request API's
#: model queries (POST /recommendations, /items/<id>/similar) wait at most this many clicks.
GATE_EVERY_CLICKS = 64
#: Clicks per pipelined run while the request API has model queries waiting (else a whole poll):
#: the gate opens between runs, so a query waits for at most one such run.
GATE_RUN_CLICKS = 256
#: Seconds after a model query had to wait during which runs stay short.
GATE_RECENT_S = 2.0
#: How much nicer than the HTTP thread a pipelined worker's two compute threads run (``--compute-nice``).
DEFAULT_COMPUTE_NICE = 5


def renice_thread(by: int) -> int:
    """Raise the calling thread's nice value by ``by`` (Linux schedules threads, so this leaves
    the process's other threads as they are; a negative ``by`` lowers it back where allowed);
    returns the amount applied, 0 where it cannot."""
    if by == 0 or not sys.platform.startswith("linux"):
        return 0
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + by)
    except OSError:
        return 0
    return by


#: ``streamrec worker``'s consumer group and HTTP port when its flags name none.
DEFAULT_GROUP = "streamrec"
DEFAULT_METRICS_PORT = 8000


def _event_time(value: Any) -> float | None:
    """The merge key of a decoded record: its event time (``None`` for a malformed one)."""
    return value.timestamp if type(value) is Event else None


@dataclass
class WorkerSettings:
    """Everything the worker loop needs besides the processor; ``streamrec worker``'s flags take
    their defaults from these fields."""

    client: dict[str, Any]
    topic: str
    group: str
    model_name: str = "model"
    recommendations_topic: str | None = None
    dead_letter_topic: str | None = None  # default: "<topic>.dlq"
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    poll_timeout_ms: int = 500
    max_events: int | None = None  # stop after this many valid events (demo, bench, tests)
    idle_exit_s: float | None = None  # stop after this long with nothing to read
    consumer_overrides: dict[str, Any] = field(default_factory=dict)
    state_dir: str | None = None  # checkpoints (stream/state/checkpoint.py); None: commit after every batch
    checkpoint_every_events: int = ckpt.EVERY_EVENTS
    checkpoint_every_seconds: float = ckpt.EVERY_SECONDS
    health_timeout_s: float = 15.0  # /healthz is degraded after this long without a broker answer
    commit_timeout_ms: int = 5_000  # a commit during a broker stall gives up (and retries later)
    learn_all_partitions: bool = False  # scale-out: also learn other members' clicks (stream/kafka/replica.py)
    pipeline: bool = True  # session-kNN: a poll's learning + queries overlap the next poll (see _Pending)
    compute_nice: int = DEFAULT_COMPUTE_NICE  # with HTTP on, the pipelined threads' nice above the server's
    click_order: str = DEFAULT_ORDER  # the partitions' clicks merged by event time, or as fetched
    max_order_wait_s: float = DEFAULT_MAX_WAIT_S  # how long a lagging partition that delivers nothing holds the rest
    admin_token: str | None = field(default=None, repr=False)  # None: the /admin/ routes are off
    admin_host: str = "127.0.0.1"  # the admin listener's address (stream/serving/admin.py)
    admin_port: int = DEFAULT_ADMIN_PORT

    def __post_init__(self) -> None:
        if self.click_order not in ORDERS:
            raise ValueError(f"click_order must be one of {', '.join(ORDERS)}, got {self.click_order!r}")

    @property
    def poll_records(self) -> int:
        """Records per poll and per release of the merge."""
        default = REPLICA_POLL_RECORDS if self.learn_all_partitions else kafka_io.CONSUMER_DEFAULTS["max_poll_records"]
        return int(self.consumer_overrides.get("max_poll_records", default))

    @property
    def dlq(self) -> str:
        return self.dead_letter_topic or f"{self.topic}.dlq"


def _timed(fn: Any, plan: Any, seconds: list[float]) -> Any:
    """``fn(plan)``, its duration appended to ``seconds`` (on the second thread)."""
    t0 = time.perf_counter()
    out = fn(plan)
    seconds.append(time.perf_counter() - t0)
    return out


@dataclass
class _Pending:
    """A poll's run whose compiled half (the model's ``run_batch``: the index's array work and
    the queries, without the GIL) runs on the worker's second thread. Meanwhile the main thread
    finishes the previous run (:meth:`ClickProcessor.finish`: scoring, monitor, publish), polls,
    decodes and plans the next one (the session store's half; the model's Python half waits until
    this run's compiled half is done). Its offsets advance when it is finished: one poll later,
    or whenever the loop drains (an empty poll, a checkpoint, a rebalance, the stop)."""

    run: Run
    model: Any
    future: Future[Any]
    done: list[tuple[TopicPartition, int, int]]
    keys: list[Any]
    parts: list[int | None]
    main_s: float = 0.0  # the main thread's time on its share of the queries (:class:`SplitSteer`)
    submitted: float = 0.0  # when the compiled half was handed to the second thread
    second_s: list[float] = field(default_factory=list)  # the second thread's time on it
    waited: float = 0.0  # the main thread's time waiting for it


class SplitSteer:
    """The share of a pipelined run's queries the main thread computes itself, on a copy of the
    index, after finishing the previous run (``split_batch``), steered so that both threads are
    busy for the same time.

    With ``Q`` both threads' time on a run's queries and ``O`` the main thread's other work in its
    cycle (finishing the previous run, polling, decoding, planning), the balance is
    ``O + share * Q = (1 - share) * Q``. ``Q`` and ``O`` are averaged over the last runs
    (exponentially, weight ``alpha``): a cycle finishes one run and plans another, of other
    sizes.

    >>> s = SplitSteer()
    >>> for _ in range(30):  # queries 70 us a click, 30 us of other work on the main thread
    ...     s.update(second_s=70 * (1 - s.share), main_s=70 * s.share, cycle_s=30 + 70 * s.share, waited_s=0)
    >>> round(s.share, 2)
    0.29
    """

    def __init__(self, share: float = 0.25, max_share: float = 0.6, alpha: float = 0.2) -> None:
        self.share = share
        self.max_share = max_share
        self.alpha = alpha
        self._q = self._o = 0.0

    def update(self, second_s: float, main_s: float, cycle_s: float, waited_s: float) -> None:
        """One run's times: the second thread's and the main thread's on its queries, the main
        thread's cycle (from handing it over to the next hand-over) and how long it waited."""
        a = self.alpha if self._q > 0.0 else 1.0
        self._q += a * (second_s + main_s - self._q)
        self._o += a * (max(0.0, cycle_s - main_s - waited_s) - self._o)
        if self._q > 0.0:
            target = (self._q - self._o) / (2.0 * self._q)
            self.share = min(self.max_share, max(0.0, target))


@dataclass
class WorkerSummary:
    events_processed: int
    events_invalid: int
    recommendations_published: int
    elapsed_s: float
    hit_rate_at_k: float
    mrr_at_k: float
    predictions: int


class _Listener(ConsumerRebalanceListener):
    """Records assignment changes for the main loop; never blocks (runs on the IO thread)."""

    def __init__(self) -> None:
        self.assigned: set[TopicPartition] = set()
        self.revoked: set[TopicPartition] = set()
        self.changes = 0
        self.lock = threading.Lock()

    def on_partitions_revoked(self, revoked: Any) -> None:
        with self.lock:
            self.revoked |= set(revoked)
            self.assigned -= set(revoked)
            self.changes += 1

    def on_partitions_assigned(self, assigned: Any) -> None:
        with self.lock:
            self.assigned |= set(assigned)
            self.changes += 1

    def on_partitions_lost(self, lost: Any) -> None:
        self.on_partitions_revoked(lost)


class Worker:
    """Runs ``processor`` over the click topic until stopped."""

    def __init__(self, settings: WorkerSettings, processor: ClickProcessor, metrics: Metrics | None = None,
                 lifecycle: Any = None) -> None:
        self.s = settings
        self.processor = processor
        self.metrics = metrics or Metrics(settings.model_name, processor.k)
        drift_exporter.register(self.metrics.registry, processor.monitor, lifecycle)
        #: The life of retraining due (monitoring.drift.lifecycle.Lifecycle): its actions are
        #: called from the main loop only.
        self.lifecycle = lifecycle
        self._running = True
        self._stop_reason = ""
        self.invalid = 0
        self.published = 0
        self._published_flushed = 0  # published lists already counted in the metric
        self.last_poll = time.monotonic()
        self.last_progress = time.monotonic()
        self.started = time.monotonic()
        self.http: HttpServer | None = None
        self.listener = _Listener()
        self._seen_changes = 0
        self.ckpt = ckpt.Checkpointer(settings.state_dir, settings.checkpoint_every_events,
                                      settings.checkpoint_every_seconds)
        if lifecycle is not None:  # its state (challenger, actions, promotions) survives a restart
            self.ckpt.register("lifecycle", lifecycle.state_dict, lifecycle.load_state_dict)
        self.broker_ok_at = time.monotonic()  # last sign of life from the broker
        self._consumer: Any = None
        self._owned: set[TopicPartition] = set()  # partitions whose state we hold (main loop's view)
        self._committed: dict[tuple[str, int], int] = {}  # what we last committed, per partition
        self.replica: Any = None  # stream.kafka.replica.Replica with learn_all_partitions
        self.first_batch_at: float | None = None  # monotonic; bench measures first -> last batch
        self.last_batch_at = 0.0
        self._pending: _Pending | None = None
        self._thread: ThreadPoolExecutor | None = None  # the model half of a pipelined poll
        self._reniced = 0  # how much nicer this thread runs while pipelining (renice_thread)
        self._steer = SplitSteer()  # the share of its queries the main thread computes
        self._producer: Any = None
        self.merge = EventTimeMerge(_event_time, max_wait_s=settings.max_order_wait_s,
                                    order=settings.click_order)
        self.serving: Any = None  # stream.serving.rules.Serving: business rules, catalogue, request API
        self.admin: AdminHandler | None = None  # the /admin/ routes (their own listener), None: off
        self.admin_http: HttpServer | None = None
        self.admin_calls = MainLoopCalls()  # the admin routes' actions, run between polls
        if settings.admin_token is not None:
            self.admin = AdminHandler(settings.admin_token, self.operator, self.admin_calls)
            self.metrics.registry.register(self.admin.collector())  # streamrec_admin_requests_total
        self._gate_held = False
        self._gc = GcFreezer()  # full GC passes off the long-lived state (HTTP tail latency)

    # -- control ------------------------------------------------------------------------------

    def stop(self, reason: str = "requested") -> None:
        self._stop_reason = self._stop_reason or reason
        self._running = False

    def install_signal_handlers(self) -> None:
        def handler(signum: int, _frame: Any) -> None:
            self.stop(signal.Signals(signum).name)

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    # -- HTTP -----------------------------------------------------------------------------------

    def health(self) -> tuple[bool, dict[str, Any]]:
        now = time.monotonic()
        poll_age = now - self.last_poll
        broker_age = now - membership.broker_contact(self._consumer, self.broker_ok_at)
        ok = poll_age < 30.0 and broker_age < self.s.health_timeout_s
        return ok, {
            "status": "ok" if ok else "degraded",
            "events_processed": self.processor.events,
            "assigned_partitions": sorted(tp.partition for tp in self.listener.assigned),
            "last_poll_age_s": round(poll_age, 3),
            "broker_silent_s": round(broker_age, 3),
            "model": self.s.model_name,
        }

    def start_http(self) -> None:
        if self.s.metrics_port is None:
            return
        api = None
        if self.serving is not None:
            from stream.serving.api import Api

            api = Api(self.serving)
        routes = Routes(self.metrics.exposition, self.health, self.processor.recommendations, api)
        self.http = HttpServer(routes, self.s.metrics_port, self.s.metrics_host).start()
        log_event(log, "http server listening", host=self.s.metrics_host, port=self.http.port)

    def start_admin(self) -> None:
        """The admin routes on their own listener (loopback unless ``--admin-host`` says otherwise)."""
        if self.admin is None:
            return
        routes = Routes(self.metrics.exposition, self.health, self.processor.recommendations, admin=self.admin)
        self.admin_http = HttpServer(routes, self.s.admin_port, self.s.admin_host).start()
        log_event(log, "admin server listening", host=self.s.admin_host, port=self.admin_http.port)

    def operator(self) -> Any:
        """What the admin routes act on: the lifecycle of retraining due, or None without one."""
        return self.lifecycle

    def _run_admin_calls(self) -> None:
        """The admin routes' queued actions, with the model quiet; a checkpoint after any that
        changed state, before they are answered (an answered action survives a crash)."""
        self._drain()
        self._gate(True)
        self.admin_calls.run_pending(after=self._save_after_action)

    def _save_after_action(self) -> None:
        if self.ckpt.enabled and self._consumer is not None:
            self._checkpoint_and_commit(self._consumer, force=True, snapshot=True)

    # -- the loop -------------------------------------------------------------------------------

    def run(self) -> WorkerSummary:
        s = self.s
        kafka_io.ensure_topic(s.client, s.dlq, 1)
        if s.recommendations_topic:
            kafka_io.ensure_topic(s.client, s.recommendations_topic, 1)
        if self.ckpt.load(self.processor) is not None:
            membership.rebase_metrics(self.metrics, self.processor)
            if self.lifecycle is not None:
                self.lifecycle.attach(self.processor)  # the restored monitor and model
                self.lifecycle.monitor.subscribe(self.lifecycle.on_due)  # a restored monitor has none
        self.metrics.flush(self.processor)
        self.processor.model.warm_up()  # compile before the first click, not on it
        overrides = dict(s.consumer_overrides)
        overrides["max_poll_records"] = s.poll_records
        consumer = kafka_io.make_consumer(s.client, group_id=s.group, **overrides)
        self._consumer = consumer
        producer = self._producer = kafka_io.make_producer(s.client)
        consumer.subscribe([s.topic], listener=self.listener)
        if s.learn_all_partitions:
            from stream.kafka.replica import Replica

            self.replica = Replica(self.processor, s.client, s.topic, merge=self.merge)
        self.start_http()
        self.start_admin()
        log_event(log, "worker started", topic=s.topic, group=s.group, model=s.model_name,
                  client=kafka_io.redacted(s.client))
        self.started = time.monotonic()
        try:
            merge = self.merge
            while self._running:
                if self.serving is not None:  # catalogue changes apply from this poll on
                    self.serving.poll_catalog()
                # with a poll in flight on the second thread, do not wait for more: finish it; with
                # clicks held for a lagging partition, wait only briefly: its records are coming
                timeout = (0 if self._pending is not None else
                           HELD_POLL_TIMEOUT_MS if merge.held() else s.poll_timeout_ms)
                run_clicks = self._run_clicks()
                batch = consumer.poll(timeout_ms=timeout, max_records=run_clicks)
                self.last_poll = time.monotonic()
                self._note_rebalance()
                if batch:
                    if self.first_batch_at is None:
                        self.first_batch_at = self.last_poll
                    self._receive(batch)
                    self.last_progress = self.broker_ok_at = self.last_poll
                if self.replica is not None:
                    self.replica.poll()
                released = merge.take(run_clicks)
                if released:
                    self._process(released, producer)
                    self.last_progress = self.last_poll
                elif self._pending is not None:
                    self._drain()
                if self.admin_calls.pending:
                    self._run_admin_calls()
                self._gate(self._pending is not None)
                self._gc.tick()
                self._checkpoint_and_commit(consumer, force=not self.ckpt.enabled and bool(released))
                self.metrics.flush(self.processor)
                self._update_lag(consumer)
                if s.max_events is not None and self.processor.events + self.invalid >= s.max_events:
                    self.stop("max-events reached")
                if s.idle_exit_s is not None and self.last_poll - self.last_progress > s.idle_exit_s:
                    self.stop("idle")
            self._drain()
            self._checkpoint_and_commit(consumer, force=True)  # clean stop: snapshot, commit, leave
        finally:
            self.admin_calls.close()
            self._gate(False)
            log_event(log, "worker stopping", reason=self._stop_reason or "error",
                      events=self.processor.events, invalid=self.invalid)
            try:
                producer.flush(10)
                producer.close(5)
            finally:
                if self.replica is not None:
                    self.replica.close()
                if self._thread is not None:
                    self._thread.shutdown(wait=True)
                    renice_thread(-self._reniced)  # the caller's thread as it was (if allowed)
                consumer.close()
                if self.http is not None:
                    self.http.stop()
                if self.admin_http is not None:
                    self.admin_http.stop()
        return self.summary()

    def summary(self) -> WorkerSummary:
        p = self.processor
        return WorkerSummary(
            events_processed=p.events,
            events_invalid=self.invalid,
            recommendations_published=self.published,
            elapsed_s=time.monotonic() - self.started,
            hit_rate_at_k=p.preq.hit_rate,
            mrr_at_k=p.preq.mrr,
            predictions=p.preq.predictions,
        )

    def _receive(self, batch: dict[TopicPartition, list[Any]]) -> None:
        """The poll's records the state does not have yet, decoded, into the merge."""
        merge, fresh = self.merge, self.ckpt.fresh
        for tp, records in batch.items():
            records = fresh(tp, records)  # drop what the (restored) state already has
            merge.add(tp, records, [decode(rec.value, rec.key) for rec in records])

    def _run_clicks(self) -> int:
        """Clicks to take for the next run: a poll's worth, or :data:`GATE_RUN_CLICKS` while the
        request API's model queries have been waiting for the gate (pipelined models, whose runs
        hold it from one opening to the next)."""
        n = self.s.poll_records
        serving = self.serving
        if serving is not None and time.monotonic() - serving.gate.waited_at < GATE_RECENT_S:
            return min(n, GATE_RUN_CLICKS)
        return n

    def _gate(self, busy: bool) -> None:
        """Hold the serving gate while the model may be working, so the request API's model
        queries (:class:`stream.serving.rules.ModelGate`) wait for a quiet moment; free it when idle."""
        if self.serving is None or busy == self._gate_held:
            return
        if busy:
            self.serving.gate.hold()
        else:
            self.serving.gate.release()
        self._gate_held = busy

    def _process(self, released: Released, producer: Any) -> None:
        self._gate(True)
        if self.serving is not None and self._pending is None:
            self.serving.gate.serve()  # the model is quiet: answer the queries queued meanwhile
        if self.replica is not None:
            self._process_merged(released, producer)
            self.last_batch_at = time.monotonic()
        else:
            self._process_batch(released, producer)
        self._count_published()
        producer.flush()

    def _count_published(self) -> None:
        if self.s.recommendations_topic is not None:
            self.metrics.published.inc(self.published - self._published_flushed)
            self._published_flushed = self.published

    def _process_batch(self, released: Released, producer: Any) -> None:
        """The released clicks through the per-click core as one run, in the merge's order
        (malformed ones to the dead-letter topic), then each list published and the offsets advanced.

        For a model with a compiled batch path (``batches``) the run is pipelined: its model half
        goes to the second thread, and the previous poll's run is finished meanwhile
        (:class:`_Pending`); then this thread answers the run's last queries from a copy of the
        index (``split_batch``, a share steered by :class:`SplitSteer`). Lists, state and figures
        are those of :meth:`ClickProcessor.process` click by click (``tests/test_batch_core.py``);
        offsets are advanced only for finished runs."""
        rec_topic = self.s.recommendations_topic
        events: list[Any] = []
        keys: list[Any] = []
        parts: list[int | None] = []
        done = released.offsets
        for _, rec, ev in released.entries:
            if type(ev) is Invalid:
                self._dead_letter(producer, rec, ev)
                continue
            events.append(ev)
            if rec_topic is not None:
                keys.append(rec.key)
                parts.append(self._rec_partition(producer, rec.partition))
        proc = self.processor
        model = proc.batched(proc.model)
        if not (self.s.pipeline and events) or model is None:
            self._drain()
            self._publish(events, keys, parts, self._process_opening_gate(events))
            for tp, offset, n in done:
                self.ckpt.advance(tp, offset, n)
            self.last_batch_at = time.monotonic()
            return
        if self._thread is None:
            # Pipelined, the worker keeps both cores of a small machine busy; its HTTP thread then
            # waits for a time slice (milliseconds) on every request unless the two compute threads
            # run nicer than it, when the scheduler lets a woken request preempt them.
            nice = self.s.compute_nice if self.http is not None else 0
            self._reniced = renice_thread(nice)
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="streamrec-model",
                                              initializer=renice_thread, initargs=(nice,))
            # the model thread asks for the GIL twice a poll (to start and to return its compiled
            # call); Python's default 5 ms switch interval made it wait ~0.9 us a click, 0.5 ms ~0.2
            sys.setswitchinterval(min(sys.getswitchinterval(), PIPELINE_SWITCH_INTERVAL_S))
        run = proc.plan(events)  # the session store's half, while the previous run computes
        prev = self._pending
        if prev is not None:
            self._wait(prev)  # its compiled half is done: the model is free
            if self.serving is not None:
                self.serving.gate.serve()  # the request API's queued model queries, meanwhile
            if prev.second_s:
                self._steer.update(sum(prev.second_s), prev.main_s, time.perf_counter() - prev.submitted,
                                   prev.waited)  # fmt: skip
        second_s: list[float] = []
        future, rest, submitted = start_split(self._thread, model, run, self._steer.share,
                                   lambda plan: _timed(model.run_batch, plan, second_s))
        self._drain()  # the previous run, meanwhile
        main_s = 0.0
        if proc.model is not model:  # its finish swapped the model (retraining): this run again
            future.result()
            model = proc.model
            future = Future()
            future.set_result(run.learn_recommend(model))
            rest = None
        elif rest is not None:
            t0 = time.perf_counter()
            rest()  # this run's last queries, on the copy, while the second thread does the others
            main_s = time.perf_counter() - t0
        self._pending = _Pending(run, model, future, done, keys, parts, main_s, submitted, second_s)

    def _process_opening_gate(self, events: list[Any]) -> list[list[int]]:
        """``process_batch`` of ``events``; on the click-by-click path, in slices of
        :data:`GATE_EVERY_CLICKS` with the request API's queued model queries answered between
        them (the same lists: a slice's clicks go through the core as the whole run's would)."""
        proc, serving = self.processor, self.serving
        if serving is None or len(events) <= GATE_EVERY_CLICKS or proc.batched(proc.model) is not None:
            return proc.process_batch(events)
        lists: list[list[int]] = []
        for lo in range(0, len(events), GATE_EVERY_CLICKS):
            lists += proc.process_batch(events[lo:lo + GATE_EVERY_CLICKS])
            serving.gate.serve()
        return lists

    @staticmethod
    def _wait(p: _Pending) -> Any:
        """The pending run's compiled half, waited for (the time counted in ``p.waited``)."""
        if p.future.done():
            return p.future.result()
        t0 = time.perf_counter()
        out = p.future.result()
        p.waited += time.perf_counter() - t0
        return out

    def _drain(self) -> None:
        """Finish the pipelined run, if any: the core's per-click finish, publish, advance."""
        p = self._pending
        if p is None:
            return
        self._pending = None
        lists = self.processor.finish(p.run, p.model, self._wait(p))
        self._publish(p.run.events, p.keys, p.parts, lists)
        for tp, offset, n in p.done:
            self.ckpt.advance(tp, offset, n)
        self.last_batch_at = time.monotonic()
        self._count_published()

    def _publish(self, events: Sequence[Any], keys: list[Any], parts: list[int | None],
                 lists: list[list[int]]) -> None:
        rec_topic = self.s.recommendations_topic
        if not events:
            return
        if self.serving is not None:  # the business rules over every list (stream/serving/rules.py)
            served = self.serving.publish(events, lists)
        elif rec_topic is not None:
            served = [self.processor.items.names(recs) for recs in lists]
        if rec_topic is None:
            return
        send = self._producer.send
        for ev, key, part, items in zip(events, keys, parts, served, strict=True):
            send(rec_topic, key=key, partition=part, value=orjson.dumps(
                {"session_id": ev.session_id, "timestamp": ev.timestamp, "items": items}))
        self.published += len(events)

    def _process_merged(self, released: Released, producer: Any) -> None:
        """Click by click in the merge's order: served clicks through the core, other members'
        clicks learned in between (``--learn-all-partitions``)."""
        process = self.processor.process
        names = self.processor.items.names
        serving = self.serving
        rec_topic = self.s.recommendations_topic
        send = producer.send
        replica = self.replica
        for foreign, rec, ev in released.entries:
            if foreign:
                replica.learn(ev)
                continue
            if type(ev) is Invalid:
                self._dead_letter(producer, rec, ev)
                continue
            if replica.adopting:
                replica.adopt(ev)
            recs = process(ev)
            items = serving.publish((ev,), (recs,))[0] if serving is not None else None
            if rec_topic is not None:
                send(rec_topic, key=rec.key, partition=self._rec_partition(producer, rec.partition),
                     value=orjson.dumps({"session_id": ev.session_id, "timestamp": ev.timestamp,
                                         "items": items if items is not None else names(recs)}))
                self.published += 1
        for tp, offset, n in released.offsets:
            self.ckpt.advance(tp, offset, n)

    _rec_parts: tuple[int, int] | None = None

    def _rec_partition(self, producer: Any, partition: int) -> int | None:
        """The recommendations partition for the keys of click partition ``partition``, as the
        default partitioner would pick it but without hashing every key (murmur2 in pure Python
        costs ~5 us a record): 0 for a one-partition topic, the same partition for one with as
        many partitions as the click topic (same key, same hash, same count); else None (hash)."""
        if self._rec_parts is None:
            n_rec = len(producer.partitions_for(self.s.recommendations_topic) or ())
            n_clicks = len(self._consumer.partitions_for_topic(self.s.topic) or ())
            self._rec_parts = (n_rec, n_clicks)
        n_rec, n_clicks = self._rec_parts
        return 0 if n_rec == 1 else partition if n_rec == n_clicks else None

    def _dead_letter(self, producer: Any, rec: Any, why: Invalid) -> None:
        self.invalid += 1
        self.metrics.invalid(why.reason)
        headers = [
            ("source_topic", rec.topic.encode()),
            ("source_partition", str(rec.partition).encode()),
            ("source_offset", str(rec.offset).encode()),
            ("error", why.reason.encode()),
        ]
        producer.send(self.s.dlq, key=rec.key, value=rec.value if rec.value is not None else b"",
                      headers=headers)
        self.metrics.dead_letters.inc()
        if self.invalid <= 10 or self.invalid % 1000 == 0:
            log_event(log, "dead-lettered a message", level=logging.WARNING, reason=why.reason,
                      partition=rec.partition, offset=rec.offset, total_invalid=self.invalid)

    def _note_rebalance(self) -> None:
        lst = self.listener
        if lst.changes != self._seen_changes:
            with lst.lock:
                self._seen_changes = lst.changes
                now_assigned = set(lst.assigned)
                assigned = sorted(tp.partition for tp in now_assigned)
                revoked = set(lst.revoked)
                lst.revoked.clear()
            self._rebalanced(now_assigned, revoked)
            self.metrics.rebalances.inc()
            self.metrics.assigned.set(len(assigned))
            log_event(log, "partitions assigned", partitions=assigned)

    def _rebalanced(self, assigned: set[TopicPartition], revoked: set[TopicPartition]) -> None:
        """Main-loop side of a rebalance: checkpoint and commit what moved away, drop the
        sessions of partitions no longer ours, seek new partitions to the state's offsets."""
        consumer = self._consumer
        self._drain()  # the run in flight belongs to the old assignment
        gone = self._owned - assigned
        self.merge.drop(gone | (assigned & revoked), consumer)  # their held clicks are read again
        if gone:
            self._checkpoint_and_commit(consumer, force=True, partitions=gone)
            membership.drop_sessions(self.processor, consumer, self.s.topic, {tp.partition for tp in gone})
        new = (assigned - self._owned) | (assigned & revoked)
        for tp in sorted(new):
            membership.seek_to_state(consumer, tp, self.ckpt)  # (re)assigned: resume where the state is
        self._owned = set(assigned)
        if self.replica is not None:
            self.replica.assign(self._owned, consumer)
        self.merge.assign(consumer, new)

    def _checkpoint_and_commit(self, consumer: Any, force: bool = False,
                               partitions: set[TopicPartition] | None = None, snapshot: bool = False) -> None:
        """Snapshot when due (or forced, or always with ``snapshot``), then commit offsets no further
        than the snapshot."""
        c = self.ckpt
        if c.enabled and (snapshot or c.due() or (force and (c.since or self._pending is not None))):
            self._drain()  # a snapshot holds no planned-but-unfinished clicks
            stats = c.save(self.processor)
            if stats is not None and c.snapshots <= 3:
                log_event(log, "checkpoint written", bytes=stats.bytes, ms=round(stats.seconds * 1e3, 1),
                          events_applied=stats.events_applied)
        elif not force:
            return
        offsets = c.committable(partitions if partitions is not None else self._owned)
        if membership.commit(consumer, offsets, self._committed, self.s.commit_timeout_ms):
            self.broker_ok_at = time.monotonic()

    def _update_lag(self, consumer: Any) -> None:
        ends: dict[int, int] = {}
        positions: dict[int, int] = {}
        for tp in list(self.listener.assigned):
            try:
                hw = consumer.highwater(tp)
                if hw is None:
                    continue
                ends[tp.partition] = hw
                positions[tp.partition] = consumer.position(tp, timeout_ms=100)
            except Exception:  # noqa: BLE001 - lag is best effort (e.g. mid-rebalance)
                continue
        self.metrics.partitions(ends, positions)
