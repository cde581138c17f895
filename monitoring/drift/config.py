"""The drift monitor's command-line flags, shared by ``simulate`` and the worker (one place for defaults).

>>> import argparse
>>> parser = argparse.ArgumentParser()
>>> add_arguments(parser)
>>> args = parser.parse_args(["--on-drift", "retrain", "--persistence", "2"])
>>> m = from_args(args)
>>> m.persistence, m.reference_events
(2, 50000)
>>> life = lifecycle_from_args(args, m)
>>> life.on_drift, life.promote_mode, life.budget
('retrain', 'auto', 100000)
"""

from __future__ import annotations

import argparse
from typing import Any

from monitoring.drift.lifecycle import Lifecycle
from monitoring.drift.monitor import DriftMonitor
from monitoring.drift.policy import POLICIES, PROMOTE
from stream.config import add

#: The default of ``--on-drift`` everywhere (worker, simulate, docker-compose, demo).
ON_DRIFT = "challenger"


def add_arguments(parser: argparse.ArgumentParser | Any, on_drift: str = ON_DRIFT) -> None:
    """``--on-drift``, the challenger's and the monitor's main knobs (each with a ``STREAMREC_*`` env fallback)."""
    add(parser, "--on-drift", default=on_drift, choices=list(POLICIES),
        help="when retraining is due: alert (raise and keep until an operator acts), retrain (rebuild "
             "from recent clicks, swap at once) or challenger (rebuild from the clicks since the drift "
             "began, run it in shadow, promote it only when a paired test on the live stream says it "
             "recommends better)")
    add(parser, "--promote", default="auto", choices=list(PROMOTE),
        help="a challenger that wins: swapped in at once (auto) or waits for an operator (manual)")
    add(parser, "--challenger-budget", default=100_000, type=int,
        help="clicks a challenger may run without winning before it is dropped "
             "(\"drift absorbed: the live model kept up\")")
    add(parser, "--promotion-alpha", default=0.05, type=float,
        help="false-promotion rate of the challenger's sequential test (any stopping time)")
    add(parser, "--challenger-share", default=0.25, type=float,
        help="share of sessions (hash-sampled) the challenger is queried and paired on; it learns all")
    add(parser, "--reference-events", default=50_000, type=int,
        help="clicks captured as the drift reference after (re)training")
    add(parser, "--check-every", default=250, type=int, help="clicks per drift check window")
    add(parser, "--drift-alpha", default=0.01, type=float,
        help="target share of checks over threshold with no drift (calibration)")
    add(parser, "--persistence", default=5, type=int,
        help="consecutive checks over threshold before a signal counts as detected")
    add(parser, "--drift-warmup", default=2_000, type=int, help="clicks ignored at start-up before the reference")
    add(parser, "--buffer-events", default=50_000, type=int, help="recent clicks kept to retrain from")
    add(parser, "--long-checks", default=8, type=int,
        help="check windows in the sliding long window (slow drifts); 0 disables it")
    add(parser, "--long-tail", default=0.01, type=float,
        help="share of the bootstrap's run minima the long window's tail is fitted to (larger: quieter, slower)")
    add(parser, "--false-alarm-events", default=1e8, type=float,
        help="target clicks between false alarms of one check alone (a single check far beyond the "
             "reference's noise is a detection)")


def from_args(args: argparse.Namespace, **overrides: Any) -> DriftMonitor:
    """A :class:`DriftMonitor` configured by the flags of :func:`add_arguments`."""
    return DriftMonitor(**monitor_params(args, **overrides))


def monitor_params(args: argparse.Namespace, **overrides: Any) -> dict[str, Any]:
    """The :class:`DriftMonitor` keyword arguments of the flags of :func:`add_arguments`."""
    params: dict[str, Any] = {
        "reference_events": args.reference_events,
        "check_every": args.check_every,
        "alpha": args.drift_alpha,
        "persistence": args.persistence,
        "warmup": args.drift_warmup,
        "buffer_events": args.buffer_events,
        "false_alarm_events": getattr(args, "false_alarm_events", 1e8),
        "long_checks": getattr(args, "long_checks", 8),
        "long_tail": getattr(args, "long_tail", 0.01),
    }
    params.update(overrides)
    return params


def lifecycle_from_args(args: argparse.Namespace, monitor: DriftMonitor, processor: Any = None,
                        **overrides: Any) -> Lifecycle:
    """The :class:`Lifecycle` the flags of :func:`add_arguments` describe, subscribed to ``monitor``."""
    params: dict[str, Any] = {
        "on_drift": args.on_drift,
        "promote": getattr(args, "promote", "auto"),
        "budget": getattr(args, "challenger_budget", 100_000),
        "alpha": getattr(args, "promotion_alpha", 0.05),
        "share": getattr(args, "challenger_share", 0.25),
    }
    params.update(overrides)
    return Lifecycle(monitor, processor, **params)
