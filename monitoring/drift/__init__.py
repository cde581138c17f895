"""Drift monitoring: live clicks against the training distribution.

The modules, in layers; a module imports only from earlier layers (``tests/test_drift_layers.py``
checks it), so the monitor knows nothing of what reacts to it or exports it:

1. :mod:`~monitoring.drift.defaults` — every default of the flags, the monitor and the lifecycle;
   :mod:`~monitoring.drift.signals` — the six signals, one class each: their bins, scores and
   reasons; :mod:`~monitoring.drift.baselines` — ADWIN and an Evidently-style rule, for comparison;
2. :mod:`~monitoring.drift.reference` — the bounded reference captured after (re)training;
   :mod:`~monitoring.drift.calibration` — thresholds from the reference's own noise;
3. :mod:`~monitoring.drift.detector` — one signal's checks: persistence and the long window;
4. :mod:`~monitoring.drift.monitor` — :class:`DriftMonitor`, the :class:`stream.processing.core.Monitor`;
   it raises "retraining due" to its subscribers;
5. :mod:`~monitoring.drift.policy` — ``alert`` / ``retrain`` / ``challenger`` and retraining a model;
   :mod:`~monitoring.drift.challenger` — a challenger in shadow and its sequential test;
6. :mod:`~monitoring.drift.lifecycle` — what happens when retraining is due, and how it clears;
7. :mod:`~monitoring.drift.exporter` — the Prometheus collectors of the monitor and the lifecycle;
   :mod:`~monitoring.drift.config` — the command-line flags and the wiring they describe (it
   subscribes the lifecycle to the monitor).
"""

from monitoring.drift.monitor import DriftMonitor
from monitoring.drift.signals import SIGNALS

__all__ = ["DriftMonitor", "SIGNALS"]
