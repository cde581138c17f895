"""Prometheus export of a :class:`~monitoring.drift.monitor.DriftMonitor` and its
:class:`~monitoring.drift.lifecycle.Lifecycle` as custom collectors.

The exporter reads the monitor and the lifecycle, never the other way round. Register them on the
worker's registry; values are read at scrape time, so the per-click path never touches
``prometheus_client``::

    register(registry, monitor, lifecycle)

Metrics (a contract): ``streamrec_drift_score{signal}``, ``streamrec_drift_threshold{signal}``,
``streamrec_drift_detected{signal}`` (0/1), ``streamrec_retraining_due`` (0/1),
``streamrec_retrains_total``, ``streamrec_reference_events``. Every signal of the monitor has a
series from the start (NaN score and threshold until the reference is calibrated).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from monitoring.drift.lifecycle import Lifecycle
from monitoring.drift.monitor import DriftMonitor


class DriftCollector(Collector):
    """Yields the drift metrics of ``monitor`` at each scrape.

    Examples
    --------
    >>> from prometheus_client import CollectorRegistry, generate_latest
    >>> from monitoring.drift.monitor import DriftMonitor
    >>> registry = CollectorRegistry()
    >>> registry.register(DriftCollector(DriftMonitor()))
    >>> text = generate_latest(registry).decode()
    >>> "streamrec_retraining_due 0.0" in text, 'streamrec_drift_detected{signal="popularity"} 0.0' in text
    (True, True)
    >>> "streamrec_retrains_total 0.0" in text
    True
    """

    def __init__(self, monitor: DriftMonitor) -> None:
        self.monitor = monitor

    def collect(self) -> Iterator[Metric]:
        m = self.monitor
        signals = m.signals
        score = GaugeMetricFamily("streamrec_drift_score",
                                  "Drift score of each signal over the last live window", labels=["signal"])
        threshold = GaugeMetricFamily("streamrec_drift_threshold",
                                      "Calibrated threshold of each drift score", labels=["signal"])
        detected = GaugeMetricFamily("streamrec_drift_detected",
                                     "1 while a signal has exceeded its threshold for the persistence "
                                     "number of checks", labels=["signal"])
        scores, thresholds, flags = dict(m.score), dict(m.threshold), dict(m.detected)
        for s in signals:
            score.add_metric([s], scores[s])
            threshold.add_metric([s], thresholds[s])
            detected.add_metric([s], 1.0 if flags[s] else 0.0)
        yield score
        yield threshold
        yield detected
        yield GaugeMetricFamily("streamrec_retraining_due",
                                "1 once drift persisted and the model should be retrained",
                                value=1.0 if m.retraining_due else 0.0)
        yield CounterMetricFamily("streamrec_retrains",
                                  "Models rebuilt and swapped in by the retrain policy", value=m.retrains)
        yield GaugeMetricFamily("streamrec_reference_events",
                                "Clicks in the current drift reference (grows while it is captured)",
                                value=m.reference_size)


class LifecycleCollector(Collector):
    """The metrics of a :class:`~monitoring.drift.lifecycle.Lifecycle` at each scrape (a contract):
    ``streamrec_challenger_active``, ``streamrec_challenger_waiting`` (0/1),
    ``streamrec_challenger_hit_rate_gain`` (challenger minus champion HR@k over the same
    predictions; 0 with no challenger), ``streamrec_challenger_e_value``,
    ``streamrec_model_promotions_total``, ``streamrec_drift_acknowledgements_total``.

    >>> from prometheus_client import CollectorRegistry, generate_latest
    >>> from monitoring.drift.lifecycle import Lifecycle
    >>> from monitoring.drift.monitor import DriftMonitor
    >>> registry = CollectorRegistry()
    >>> registry.register(LifecycleCollector(Lifecycle(DriftMonitor())))
    >>> text = generate_latest(registry).decode()
    >>> "streamrec_challenger_active 0.0" in text, "streamrec_model_promotions_total 0.0" in text
    (True, True)
    """

    def __init__(self, lifecycle: Lifecycle) -> None:
        self.lifecycle = lifecycle

    def collect(self) -> Iterator[Metric]:
        life = self.lifecycle
        ch = life.challenger
        yield GaugeMetricFamily("streamrec_challenger_active", "1 while a challenger runs in shadow",
                                value=1.0 if ch is not None else 0.0)
        yield GaugeMetricFamily("streamrec_challenger_waiting",
                                "1 while a challenger that won waits for an operator (--promote manual)",
                                value=1.0 if ch is not None and ch.waiting else 0.0)
        yield GaugeMetricFamily("streamrec_challenger_hit_rate_gain",
                                "Challenger minus champion HR@k over the same predictions",
                                value=ch.hit_rate_gain if ch is not None else 0.0)
        yield GaugeMetricFamily("streamrec_challenger_e_value",
                                "The challenger's e-value (promoted at 1/alpha)",
                                value=ch.test.e_value if ch is not None else 0.0)
        yield CounterMetricFamily("streamrec_model_promotions", "Challengers promoted to champion",
                                  value=len(life.promotions))
        yield CounterMetricFamily("streamrec_drift_acknowledgements",
                                  "Operator acknowledgements of retraining due", value=life.acknowledgements)


def register(registry: CollectorRegistry, monitor: object | None, lifecycle: Lifecycle | None = None) -> None:
    """Register the collectors of ``monitor`` (if it is a :class:`DriftMonitor`) and of ``lifecycle``.

    >>> from prometheus_client import generate_latest
    >>> registry = CollectorRegistry()
    >>> m = DriftMonitor()
    >>> register(registry, m, Lifecycle(m))
    >>> text = generate_latest(registry).decode()
    >>> "streamrec_retraining_due 0.0" in text, "streamrec_challenger_active 0.0" in text
    (True, True)
    """
    if isinstance(monitor, DriftMonitor):
        registry.register(DriftCollector(monitor))  # streamrec_drift_*, retraining
    if lifecycle is not None:
        registry.register(LifecycleCollector(lifecycle))  # streamrec_challenger_*, promotions
