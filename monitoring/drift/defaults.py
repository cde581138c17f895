"""The defaults of the drift monitor and of the life of retraining due, in one place.

The command-line flags (:mod:`monitoring.drift.config`), :class:`~monitoring.drift.monitor.DriftMonitor`
and :class:`~monitoring.drift.lifecycle.Lifecycle` all read these, so a default changes here only.
"""

from __future__ import annotations

# -- the monitor (DriftMonitor's keyword arguments; the flags in brackets) -----------------------

#: Clicks captured as the reference after (re)training (``--reference-events``).
REFERENCE_EVENTS = 50_000
#: Clicks per live check window (``--check-every``).
CHECK_EVERY = 250
#: Target share of checks over the threshold with no drift (``--drift-alpha``).
DRIFT_ALPHA = 0.01
#: Consecutive checks over the threshold before a signal counts as detected (``--persistence``).
PERSISTENCE = 5
#: Clicks ignored at start-up, while the session store fills (``--drift-warmup``).
DRIFT_WARMUP = 2_000
#: Recent clicks kept to retrain from (``--buffer-events``).
BUFFER_EVENTS = 50_000
#: Check windows in the sliding long window; 0 disables it (``--long-checks``).
LONG_CHECKS = 8
#: Share of the bootstrap's run minima the long window's tail is fitted to (``--long-tail``).
LONG_TAIL = 0.01
#: Target clicks between false alarms of one check alone (``--false-alarm-events``).
FALSE_ALARM_EVENTS = 1e8

# -- the lifecycle (Lifecycle's keyword arguments) ------------------------------------------------

#: What happens when retraining is due (``--on-drift``: worker, simulate, docker-compose, demo).
ON_DRIFT = "challenger"
#: A challenger that wins is swapped in at once, or waits for an operator (``--promote``).
PROMOTE = "auto"
#: Clicks a challenger may run without winning before it is dropped (``--challenger-budget``).
CHALLENGER_BUDGET = 100_000
#: False-promotion rate of the challenger's sequential test (``--promotion-alpha``).
PROMOTION_ALPHA = 0.05
#: Share of sessions the challenger is queried and paired on (``--challenger-share``).
CHALLENGER_SHARE = 0.25
