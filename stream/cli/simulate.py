"""``streamrec simulate``: a stream straight through the model and the drift monitor (no Kafka).

Source: the synthetic generator (``--scenario``) or a dataset (``--dataset PATH --format F``).
With ``--json`` the last stdout line is one JSON object: ``retraining_due_at``,
``retraining_due_events``, ``detections`` (signal -> event indices), ``events``,
``hit_rate_at_20``, plus ``raw_detections`` (checks over threshold before persistence),
``alarms`` (why each signal fired), ``retrains`` and, with ``--baselines``, the detections of River
ADWIN on the hit stream and of an Evidently-style JS rule.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from monitoring.drift import config as drift_config
from stream.cli.common import (
    add_model_args,
    add_shop_args,
    add_state_args,
    event_weights,
    shop_kwargs,
    shop_label,
)
from stream.config import add, add_logging, setup_logging
from stream.evaluation.datasets import FORMATS
from stream.evaluation.synthetic import SCENARIOS

HELP = "run a synthetic scenario or a dataset through the model and the drift monitor, no Kafka"


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "simulate", help=HELP, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    g = p.add_argument_group("source (one of --scenario / --dataset)")
    add(g, "--scenario", default=None, choices=list(SCENARIOS), help="synthetic drift scenario")
    add(g, "--events", default=400_000, type=int, help="synthetic events to generate")
    add(g, "--drift-at", default=None, type=int, help="event index where the drift starts (default: half-way)")
    add(g, "--drift-length", default=100_000, type=int, help="events over which a gradual drift ramps")
    add(g, "--seed", default=0, type=int, help="synthetic generator seed")
    add_shop_args(g)
    add(g, "--dataset", default=None, help="dataset file or folder, replayed in event-time order")
    add(g, "--format", default="rsc15", choices=list(FORMATS), help="dataset format")
    add(g, "--limit", default=None, type=int, help="dataset: replay at most N events")
    add_model_args(p)
    add_state_args(p)
    d = p.add_argument_group("drift monitor")
    drift_config.add_arguments(d, on_drift="retrain")
    add(p, "--baselines", action="store_true", default=False,
        help="also run River ADWIN on the hit stream and an Evidently-style JS rule; report their detections")
    add(p, "--json", action="store_true", default=False,
        help="print the result as one JSON object on the last stdout line")
    add(p, "--plot", default=None, metavar="PNG", help="draw scores, thresholds, hit rate and alarms to PNG")
    add_logging(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from monitoring.drift.baselines import Baselines
    from stream.evaluation.datasets import read_events
    from stream.evaluation.simulate import simulate
    from stream.evaluation.synthetic import SyntheticStream
    from stream.models import make_model, parse_params
    from stream.state.items import ItemIndex
    from stream.state.sessions import SessionStore

    setup_logging(args.log_level, args.log_format)
    if (args.scenario is None) == (args.dataset is None):
        print("streamrec simulate: choose one of --scenario S and --dataset PATH", file=sys.stderr)
        return 2
    drift_at = drift_end = None
    if args.scenario is not None:
        stream = SyntheticStream(events=args.events, seed=args.seed, scenario=args.scenario,
                                 drift_at=args.drift_at, drift_length=args.drift_length, **shop_kwargs(args))
        drift_at = stream.drift_at
        if drift_at is not None:
            drift_end = drift_at + (stream.drift_length if args.scenario == "gradual-popularity" else 0)
        events: Any = stream
        title = f"{args.scenario} seed={args.seed}{shop_label(args)}"
    else:
        events = read_events(args.dataset, args.format, limit=args.limit)
        title = f"{args.dataset} ({args.format})"
    try:
        model = make_model(args.model, **parse_params(args.param))
        monitor = drift_config.from_args(args)
    except ValueError as exc:
        print(f"streamrec simulate: {exc}", file=sys.stderr)
        return 2
    baselines = None
    if args.baselines:
        baselines = Baselines(reference_events=args.reference_events, warmup=args.drift_warmup)
    sessions = SessionStore(ttl_s=args.session_ttl, max_sessions=args.max_sessions,
                            max_session_items=args.max_session_items)
    out = simulate(events, model, monitor, baselines, k=args.k, drift_at=drift_at, drift_end=drift_end,
                   sessions=sessions, items=ItemIndex(args.max_items), event_weights=event_weights(args))
    out["model"] = args.model
    out["on_drift"] = args.on_drift
    if args.scenario is not None:
        out.update(scenario=args.scenario, seed=args.seed)
    if args.plot:
        from stream.evaluation.plot import plot_simulation

        plot_simulation(monitor, out, args.plot, title=f"{title}, model {args.model}", baselines=baselines)
        out["plot"] = args.plot
    if args.json:
        print(json.dumps(out))
    else:
        print(f"events {out['events']}  hit_rate@{args.k} {out.get('hit_rate_at_20', out.get(f'hit_rate_at_{args.k}'))}"
              f"  {out['events_per_s']} events/s")
        print(f"retraining due at {out['retraining_due_events'] or 'never'}  (retrains {out['retrains']})")
        for s, idx in out["detections"].items():
            print(f"  {s:16s} detections {idx}  raw {out['raw_detections'][s]}")
        for a in out["alarms"]:
            print(f"  @{a['event']}: {a['reason']}")
        for name, b in (out.get("baselines") or {}).items():
            print(f"  baseline {name}: false alarms {b['false_alarms']}, delay {b['delay']}")
    return 0
