"""``streamrec simulate``: a stream straight through the model and the drift monitor (no Kafka).

Source: the synthetic generator (``--scenario``) or a dataset (``--dataset PATH --format F``).
With ``--json`` the last stdout line is one JSON object: ``retraining_due_at``,
``retraining_due_events``, ``detections`` (signal -> event indices), ``events``,
``hit_rate_at_20``, plus ``raw_detections`` (checks over threshold before persistence),
``alarms`` (why each signal fired), ``retrains``, ``promotions`` (click indices) and, with
``--baselines``, the detections of River ADWIN on the hit stream and of an Evidently-style JS rule.

``--compare-policies`` runs alert, retrain and challenger on the same stream in one pass; the JSON
line then also carries ``policies``: ``{name: {"hit_rate_at_20", "mrr_at_20",
"post_drift_hit_rate_at_20", "promotions", ...}}``, post-drift meaning from ``--drift-at`` on (on a
dataset: from the first detection), with the first 10,000 and next 40,000 clicks after it and the
rest; the top-level keys are those of the challenger's run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from monitoring.drift import config as drift_config
from monitoring.drift.lifecycle import Lifecycle
from stream.cli.common import (
    SYNTHETIC_DEFAULTS,
    add_command,
    add_model_args,
    add_shop_args,
    add_state_args,
    event_weights,
    shop_kwargs,
    shop_label,
)
from stream.config import add, add_logging, setup_logging
from stream.evaluation.datasets import DEFAULT_FORMAT, FORMATS
from stream.evaluation.synthetic import SCENARIOS

HELP = "run a synthetic scenario or a dataset through the model and the drift monitor, no Kafka"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "simulate", help=HELP, description=__doc__, func=run,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("source (one of --scenario / --dataset)")
    add(g, "--scenario", default=None, choices=list(SCENARIOS), help="synthetic drift scenario")
    add(g, "--events", default=400_000, type=int, help="synthetic events to generate")
    add(g, "--drift-at", default=None, type=int, help="event index where the drift starts (default: half-way)")
    add(g, "--drift-length", default=SYNTHETIC_DEFAULTS["drift_length"], type=int, help="events over which a gradual drift ramps")
    add(g, "--seed", default=SYNTHETIC_DEFAULTS["seed"], type=int, help="synthetic generator seed")
    add_shop_args(g)
    add(g, "--dataset", default=None, help="dataset file or folder, replayed in event-time order")
    add(g, "--format", default=DEFAULT_FORMAT, choices=list(FORMATS), help="dataset format")
    add(g, "--limit", default=None, type=int, help="dataset: replay at most N events")
    add_model_args(p)
    add_state_args(p)
    d = p.add_argument_group("drift monitor")
    drift_config.add_arguments(d)
    add(p, "--compare-policies", action="store_true", default=False,
        help="run alert, retrain and challenger on the same stream in one pass and compare their "
             "HR@k / MRR@k before and after the drift (with --plot: windowed HR per policy)")
    add(p, "--baselines", action="store_true", default=False,
        help="also run River ADWIN on the hit stream and an Evidently-style JS rule; report their detections")
    add(p, "--json", action="store_true", default=False,
        help="print the result as one JSON object on the last stdout line")
    add(p, "--plot", default=None, metavar="PNG", help="draw scores, thresholds, hit rate and alarms to PNG")
    add_logging(p)


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
        lifecycle = drift_config.lifecycle_params(args)
        Lifecycle(monitor, **lifecycle)  # checks the lifecycle's flags; each run builds its own
    except ValueError as exc:
        print(f"streamrec simulate: {exc}", file=sys.stderr)
        return 2
    if args.compare_policies:
        return _compare(args, events, lifecycle, drift_at, title)
    baselines = None
    if args.baselines:
        baselines = Baselines(reference_events=args.reference_events, warmup=args.drift_warmup)
    sessions = SessionStore(ttl_s=args.session_ttl, max_sessions=args.max_sessions,
                            max_session_items=args.max_session_items)
    out = simulate(events, model, monitor, baselines, k=args.k, drift_at=drift_at, drift_end=drift_end,
                   sessions=sessions, items=ItemIndex(args.max_items), event_weights=event_weights(args),
                   lifecycle=lifecycle)
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
        print(f"retraining due at {out['retraining_due_events'] or 'never'}  (retrains {out['retrains']}, "
              f"promotions {out['promotions'] or 'none'})")
        for s, idx in out["detections"].items():
            print(f"  {s:16s} detections {idx}  raw {out['raw_detections'][s]}")
        for a in out["alarms"]:
            print(f"  @{a['event']}: {a['reason']}")
        for name, b in (out.get("baselines") or {}).items():
            print(f"  baseline {name}: false alarms {b['false_alarms']}, delay {b['delay']}")
    return 0


def _compare(args: argparse.Namespace, events: Any, lifecycle: dict[str, Any], drift_at: int | None,
             title: str) -> int:
    from stream.evaluation.simulate import compare_policies
    from stream.models import make_model, parse_params

    params = parse_params(args.param)
    monitor_params = drift_config.monitor_params(args)
    t0 = time.perf_counter()
    out = compare_policies(
        events, lambda: make_model(args.model, **params), monitor_params, lifecycle, k=args.k, drift_at=drift_at,
        session_params={"ttl_s": args.session_ttl, "max_sessions": args.max_sessions,
                        "max_session_items": args.max_session_items},
        max_items=args.max_items, event_weights=event_weights(args))
    ch = out["policies"]["challenger"]
    result: dict[str, Any] = {
        "events": ch["windowed"]["events"][-1] if ch["windowed"]["events"] else 0,
        "hit_rate_at_20": ch["hit_rate_at_20"], "mrr": ch["mrr_at_20"],
        "retraining_due_at": ch["due_events"][0] if ch["due_events"] else None,
        "retraining_due_events": ch["due_events"], "retrains": ch["retrains"], "promotions": ch["promotions"],
        "model": args.model, "on_drift": "compare", "drift_at": drift_at, "drift_start": out["drift_start"],
        "seconds": round(time.perf_counter() - t0, 2), "policies": out["policies"],
    }
    if args.scenario is not None:
        result.update(scenario=args.scenario, seed=args.seed)
    if args.plot:
        from stream.evaluation.plot import plot_policies

        plot_policies(out, args.plot, title=f"{title}, model {args.model}", drift_at=drift_at)
        result["plot"] = args.plot
    for row in out["policies"].values():
        del row["windowed"]
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"drift start {out['drift_start']}  (model {args.model})")
    print(f"{'policy':11s} {'HR@20':>7s} {'MRR@20':>7s} {'post HR':>8s} {'+10k HR':>8s} {'+40k HR':>8s} "
          f"{'rest HR':>8s}  promotions")
    for name, row in out["policies"].items():
        seg = [row.get(s, {}).get("hit_rate_at_20") for s in ("first_10000", "next_40000", "rest")]
        cells = " ".join(f"{v:8.4f}" if v is not None else f"{'-':>8s}"
                         for v in [row["post_drift_hit_rate_at_20"], *seg])
        print(f"{name:11s} {row['hit_rate_at_20']:7.4f} {row['mrr_at_20']:7.4f} {cells}  {row['promotions'] or '-'}")
        for pr in row["promotion_details"]:
            print(f"    promoted @{pr['event']} (event time {pr['event_time']:.0f}; since {pr['since']}; "
                  f"gain {pr['hit_rate_gain']:+.4f}; e-value {pr['e_value']}): {pr['reason']}")
        for c in row["clears"]:
            print(f"    cleared @{c['event']}: {c['reason']}")
    return 0
