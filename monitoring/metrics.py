"""Every ``streamrec_*`` Prometheus metric, declared once, on a registry passed in.

The per-click path never touches these objects: the worker calls :meth:`Metrics.flush` once per
poll batch, which reads plain counters off the :class:`~stream.processing.core.ClickProcessor`. Drift metrics
come from the drift monitor's own collector, registered on the same registry.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

from stream.events import REASONS
from stream.models.base import DEFAULT_K, BackgroundTrained
from stream.processing.core import LATENCY_BUCKETS, ClickProcessor


class _LatencyHistogram(Collector):
    """``streamrec_recommend_seconds`` built from bucket counts accumulated per batch."""

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.buckets = np.asarray(buckets)
        self.counts = np.zeros(len(buckets) + 1, dtype=np.int64)  # last: > largest bucket
        self.sum = 0.0

    def observe_many(self, samples: np.ndarray) -> None:
        if len(samples):
            idx = np.searchsorted(self.buckets, samples, side="left")
            self.counts += np.bincount(idx, minlength=len(self.counts))
            self.sum += float(samples.sum())

    def collect(self) -> Iterable[HistogramMetricFamily]:
        cum = np.cumsum(self.counts)
        h = HistogramMetricFamily(
            "streamrec_recommend_seconds",
            "Time to produce one ranked top-k recommendation list (model.recommend).",
            unit="",
        )
        buckets = [(repr(float(b)), int(c)) for b, c in zip(self.buckets, cum[:-1])]
        buckets.append(("+Inf", int(cum[-1])))
        h.add_metric([], buckets, self.sum)
        yield h


class Metrics:
    """The worker's metrics on ``registry`` (a fresh private one by default)."""

    def __init__(self, model: str, k: int = DEFAULT_K, registry: CollectorRegistry | None = None,
                 process: bool = True) -> None:
        r = self.registry = registry if registry is not None else CollectorRegistry()
        if process:
            ProcessCollector(registry=r)  # process_resident_memory_bytes, cpu, fds
        self.model, self.k = model, str(k)
        self.events_processed = Counter(
            "streamrec_events_processed_total", "Valid click events processed (scored, learned, recommended).",
            registry=r)
        self.events_invalid = Counter(
            "streamrec_events_invalid_total", "Messages refused by decoding/validation, by reason code.",
            ["reason"], registry=r)
        for reason in REASONS:
            self.events_invalid.labels(reason)
        self.dead_letters = Counter(
            "streamrec_dead_letters_total", "Refused messages written to the dead-letter topic.", registry=r)
        self.published = Counter(
            "streamrec_recommendations_published_total", "Recommendation lists published to Kafka.", registry=r)
        self.hit_rate = Gauge(
            "streamrec_prequential_hit_rate",
            "Prequential HR@k over the sliding window of recent predictions (role: the served champion, "
            "or a challenger in shadow on the sessions it samples).", ["model", "k", "role"], registry=r)
        self.mrr = Gauge(
            "streamrec_prequential_mrr",
            "Prequential MRR@k over the sliding window of recent predictions (role as for the hit rate).",
            ["model", "k", "role"], registry=r)
        self._challenger_shown = False
        self.predictions = Counter(
            "streamrec_prequential_predictions_total", "Predictions scored prequentially.", ["model"],
            registry=r)
        self.active_sessions = Gauge("streamrec_active_sessions", "Live sessions in the session store.",
                                     registry=r)
        self.sessions_ended = Counter(
            "streamrec_sessions_ended_total", "Sessions that ended, by why (expired: idle past the TTL; "
            "evicted: over the session cap).", ["reason"], registry=r)
        self.items_known = Gauge("streamrec_items_known", "Distinct items in the item index.", registry=r)
        self.items_overflow = Counter(
            "streamrec_items_overflow_total", "Clicks on new items refused because the item cap was reached.",
            registry=r)
        self.lag = Gauge("streamrec_consumer_lag", "Messages behind the partition's end offset.",
                         ["partition"], registry=r)
        self.end_offset = Gauge("streamrec_topic_end_offset", "End offset (high-water mark) of the partition.",
                                ["partition"], registry=r)
        self.state_events = Gauge(
            "streamrec_state_events_applied", "Valid events reflected in the current state (restored with it).",
            registry=r)
        self.assigned = Gauge("streamrec_assigned_partitions", "Partitions assigned to this worker.", registry=r)
        self.rebalances = Counter("streamrec_rebalances_total", "Partition assignments received.", registry=r)
        self.last_event_ts = Gauge(
            "streamrec_last_event_timestamp_seconds", "Event time of the newest click processed.", registry=r)
        self.training_seconds = Gauge(
            "streamrec_model_training_seconds", "Duration of the batch model's last training (item2vec).",
            ["model"], registry=r)
        self.trained_at = Gauge(
            "streamrec_model_trained_timestamp_seconds",
            "When the batch model's serving table was trained (age: time() - this).", ["model"], registry=r)
        self.trainings = Gauge(
            "streamrec_model_trainings", "Completed trainings of the batch model since start.", ["model"],
            registry=r)
        self.training_in_progress = Gauge(
            "streamrec_model_training_in_progress", "1 while a background training runs.", ["model"],
            registry=r)
        self.latency = _LatencyHistogram()
        r.register(self.latency)
        self.predictions.labels(model)
        self.sessions_ended.labels("expired")
        self.sessions_ended.labels("evicted")
        self._seen = {"events": 0, "predictions": 0, "expired": 0, "evicted": 0, "overflow": 0}

    def invalid(self, reason: str, n: int = 1) -> None:
        self.events_invalid.labels(reason).inc(n)

    def flush(self, p: ClickProcessor) -> None:
        """Copy the processor's plain counters into the Prometheus objects (once per batch)."""
        seen = self._seen
        self.events_processed.inc(p.events - seen["events"])
        seen["events"] = p.events
        self.predictions.labels(self.model).inc(p.preq.predictions - seen["predictions"])
        seen["predictions"] = p.preq.predictions
        st = p.sessions
        self.sessions_ended.labels("expired").inc(st.expired - seen["expired"])
        self.sessions_ended.labels("evicted").inc(st.evicted - seen["evicted"])
        seen["expired"], seen["evicted"] = st.expired, st.evicted
        self.items_overflow.inc(p.items.overflowed - seen["overflow"])
        seen["overflow"] = p.items.overflowed
        self.hit_rate.labels(self.model, self.k, "champion").set(p.preq.window_hit_rate)
        self.mrr.labels(self.model, self.k, "champion").set(p.preq.window_mrr)
        shadow = p.shadow
        if shadow is not None:
            self.hit_rate.labels(self.model, self.k, "challenger").set(shadow.preq.window_hit_rate)
            self.mrr.labels(self.model, self.k, "challenger").set(shadow.preq.window_mrr)
            self._challenger_shown = True
        elif self._challenger_shown:  # no challenger: no series (not a stale value)
            self.hit_rate.remove(self.model, self.k, "challenger")
            self.mrr.remove(self.model, self.k, "challenger")
            self._challenger_shown = False
        self.active_sessions.set(len(st))
        self.items_known.set(len(p.items))
        self.state_events.set(p.events)
        self.last_event_ts.set(st.watermark)
        self.latency.observe_many(p.latency.drain())
        model = p.model
        trained_at = model.trained_at if isinstance(model, BackgroundTrained) else None
        if trained_at is not None:  # models trained in batch (item2vec), once trained
            self.training_seconds.labels(self.model).set(model.training_seconds)
            self.trained_at.labels(self.model).set(trained_at)
            self.trainings.labels(self.model).set(model.trainings)
            self.training_in_progress.labels(self.model).set(1.0 if model.training else 0.0)

    def partitions(self, ends: dict[int, int], positions: dict[int, int]) -> None:
        for part, end in ends.items():
            self.end_offset.labels(str(part)).set(end)
            pos = positions.get(part)
            if pos is not None:
                self.lag.labels(str(part)).set(max(0, end - pos))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
