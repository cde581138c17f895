"""The drift monitor's command-line flags, shared by ``simulate`` and the worker, and the wiring
that builds the monitor and the lifecycle from them. The defaults are those of
:mod:`monitoring.drift.defaults`.

>>> import argparse
>>> parser = argparse.ArgumentParser()
>>> add_arguments(parser)
>>> args = parser.parse_args(["--on-drift", "retrain", "--persistence", "2"])
>>> m = from_args(args)
>>> m.persistence, m.reference_events
(2, 50000)
>>> life = lifecycle_from_args(args, m)
>>> life.on_drift, life.promote_mode, life.budget, m.subscribers == [life.on_due]
('retrain', 'auto', 100000, True)
"""

from __future__ import annotations

import argparse
from typing import Any, NamedTuple

from monitoring.drift import defaults as D
from monitoring.drift.lifecycle import Lifecycle
from monitoring.drift.monitor import DriftMonitor
from monitoring.drift.policy import POLICIES, PROMOTE
from stream.config import add

#: The default of ``--on-drift`` everywhere (worker, simulate, docker-compose, demo).
ON_DRIFT = D.ON_DRIFT


class Flag(NamedTuple):
    """One numeric flag: its default, type and help, and the keyword it becomes."""

    flag: str
    default: Any
    type: type
    of: str  # "monitor" (a DriftMonitor keyword) or "lifecycle" (a Lifecycle keyword)
    keyword: str
    help: str

    @property
    def dest(self) -> str:
        return self.flag[2:].replace("-", "_")


#: The numeric flags of :func:`add_arguments`, in ``--help`` order.
FLAGS = (
    Flag("--challenger-budget", D.CHALLENGER_BUDGET, int, "lifecycle", "budget",
         "clicks a challenger may run without winning before it is dropped "
         "(\"drift absorbed: the live model kept up\")"),
    Flag("--promotion-alpha", D.PROMOTION_ALPHA, float, "lifecycle", "alpha",
         "false-promotion rate of the challenger's sequential test (any stopping time)"),
    Flag("--challenger-share", D.CHALLENGER_SHARE, float, "lifecycle", "share",
         "share of sessions (hash-sampled) the challenger is queried and paired on; it learns all"),
    Flag("--reference-events", D.REFERENCE_EVENTS, int, "monitor", "reference_events",
         "clicks captured as the drift reference after (re)training"),
    Flag("--check-every", D.CHECK_EVERY, int, "monitor", "check_every", "clicks per drift check window"),
    Flag("--drift-alpha", D.DRIFT_ALPHA, float, "monitor", "alpha",
         "target share of checks over threshold with no drift (calibration)"),
    Flag("--persistence", D.PERSISTENCE, int, "monitor", "persistence",
         "consecutive checks over threshold before a signal counts as detected"),
    Flag("--drift-warmup", D.DRIFT_WARMUP, int, "monitor", "warmup", "clicks ignored at start-up before the reference"),
    Flag("--buffer-events", D.BUFFER_EVENTS, int, "monitor", "buffer_events", "recent clicks kept to retrain from"),
    Flag("--long-checks", D.LONG_CHECKS, int, "monitor", "long_checks",
         "check windows in the sliding long window (slow drifts); 0 disables it"),
    Flag("--long-tail", D.LONG_TAIL, float, "monitor", "long_tail",
         "share of the bootstrap's run minima the long window's tail is fitted to (larger: quieter, slower)"),
    Flag("--false-alarm-events", D.FALSE_ALARM_EVENTS, float, "monitor", "false_alarm_events",
         "target clicks between false alarms of one check alone (a single check far beyond the "
         "reference's noise is a detection)"),
)


def add_arguments(parser: argparse.ArgumentParser | Any, on_drift: str = ON_DRIFT) -> None:
    """``--on-drift``, the challenger's and the monitor's main knobs (each with a ``STREAMREC_*`` env fallback)."""
    add(parser, "--on-drift", default=on_drift, choices=list(POLICIES),
        help="when retraining is due: alert (raise and keep until an operator acts), retrain (rebuild "
             "from recent clicks, swap at once) or challenger (rebuild from the clicks since the drift "
             "began, run it in shadow, promote it only when a paired test on the live stream says it "
             "recommends better)")
    add(parser, "--promote", default=D.PROMOTE, choices=list(PROMOTE),
        help="a challenger that wins: swapped in at once (auto) or waits for an operator (manual)")
    for f in FLAGS:
        add(parser, f.flag, default=f.default, type=f.type, help=f.help)


def _params(args: argparse.Namespace, of: str, overrides: dict[str, Any]) -> dict[str, Any]:
    params = {f.keyword: getattr(args, f.dest) for f in FLAGS if f.of == of}
    params.update(overrides)
    return params


def from_args(args: argparse.Namespace, **overrides: Any) -> DriftMonitor:
    """A :class:`DriftMonitor` configured by the flags of :func:`add_arguments`."""
    return DriftMonitor(**monitor_params(args, **overrides))


def monitor_params(args: argparse.Namespace, **overrides: Any) -> dict[str, Any]:
    """The :class:`DriftMonitor` keyword arguments of the flags of :func:`add_arguments`."""
    return _params(args, "monitor", overrides)


def lifecycle_params(args: argparse.Namespace, **overrides: Any) -> dict[str, Any]:
    """The :class:`Lifecycle` keyword arguments of the flags of :func:`add_arguments`."""
    return _params(args, "lifecycle", {"on_drift": args.on_drift, "promote": args.promote, **overrides})


def lifecycle_from_args(args: argparse.Namespace, monitor: DriftMonitor, processor: Any = None,
                        **overrides: Any) -> Lifecycle:
    """The :class:`Lifecycle` the flags of :func:`add_arguments` describe, subscribed to ``monitor``."""
    life = Lifecycle(monitor, processor, **lifecycle_params(args, **overrides))
    monitor.subscribe(life.on_due)
    return life
