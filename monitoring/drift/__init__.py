"""Drift monitoring: live clicks against the training distribution.

* :mod:`~monitoring.drift.signals` — the six signals, their bins and scores;
* :mod:`~monitoring.drift.reference` — the bounded reference captured after (re)training;
* :mod:`~monitoring.drift.calibration` — thresholds from the reference's own noise;
* :mod:`~monitoring.drift.monitor` — :class:`DriftMonitor`, the :class:`stream.processing.core.Monitor`;
* :mod:`~monitoring.drift.policy` — ``alert`` / ``retrain``;
* :mod:`~monitoring.drift.exporter` — the Prometheus collector;
* :mod:`~monitoring.drift.baselines` — ADWIN and an Evidently-style rule, for comparison;
* :mod:`~monitoring.drift.config` — the command-line flags.
"""

from monitoring.drift.monitor import DriftMonitor
from monitoring.drift.signals import SIGNALS

__all__ = ["DriftMonitor", "SIGNALS"]
