"""``streamrec evaluate``: offline accuracy and latency of a model (logic in :mod:`stream.evaluation.evaluate`).

Protocols (``--protocol``, inferred from the flags when omitted):

* ``static`` — ``--train TRAIN --test TEST``: session-rec's protocol (fit, then every position of
  every test session; test sessions are not learned).
* ``stream`` — ``--stream FILE [FILE ...]``: prequential test-then-train replay of the files as
  one stream, in the order given, through the worker's per-click core.
* ``ff19`` — ``--dataset PATH``: the FF19 protocol of :mod:`stream.evaluation.ff19`.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from stream.cli.common import add_command
from stream.config import add
from stream.evaluation.datasets import DEFAULT_FORMAT, FORMATS, DatasetError
from stream.evaluation.ff19 import FF19_K
from stream.models import DEFAULT_MODEL, MODELS, parse_params
from stream.models.base import DEFAULT_K
from stream.state.sessions import DEFAULT_TTL_S

HELP = "evaluate a model offline: session-rec's static protocol or a prequential stream replay"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "evaluate", help=HELP, description=__doc__, func=run,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    add(p, "--protocol", default=None, choices=["static", "stream", "ff19"],
        help="evaluation protocol; inferred from --train/--test, --stream or --dataset if omitted")
    add(p, "--train", default=None, help="static: training file")
    add(p, "--test", default=None, help="static: test file")
    add(p, "--stream", default=None, nargs="+", metavar="FILE",
        help="stream: file(s) replayed as one stream in the order given (env: comma-separated)")
    add(p, "--dataset", default=None, help="ff19: dataset path")
    add(p, "--format", default=DEFAULT_FORMAT, choices=list(FORMATS), help="dataset format")
    add(p, "--model", default=DEFAULT_MODEL, choices=[*MODELS, "ff19-cooc"],
        help="model to evaluate (ff19-cooc: FF19's co-occurrence baseline, --protocol ff19 only)")
    add(p, "--param", default=None, action="append", metavar="KEY=VALUE",
        help="model parameter (repeatable), e.g. --param steps=10 --param weighting=div")
    add(p, "--cutoff", default=None, type=int,
        help=f"list length K of HR@K, MRR@K, ... (keys are named by K); default {DEFAULT_K}, ff19: {FF19_K}")
    add(p, "--warmup", default=0, type=int, help="stream: first N events are learned but not scored")
    add(p, "--limit", default=None, type=int, help="stream: replay at most N events")
    add(p, "--order", default="time", choices=["time", "file"],
        help="stream: read each file in event-time order (a live stream) or as stored")
    add(p, "--train-order", default=None, choices=["file", "session", "time"],
        help="static: training order; default 'file' for rsc15 (already by session, then time), "
             "'session' otherwise")
    add(p, "--event-weights", default=None, nargs="+", metavar="TYPE=W,...",
        help="learning weight per event type, e.g. view=1,purchase=5 (types left out weigh 1; "
             "'off': every click once). Several settings evaluate one after the other and print a "
             "comparison (with --json: {\"runs\": [...]}) (env: settings separated by ';')")
    add(p, "--session-ttl", default=DEFAULT_TTL_S, type=float, help="stream: session inactivity timeout, s")
    add(p, "--max-predictions", default=None, type=int, help="static: stop after N predictions")
    add(p, "--json", action="store_true", default=False,
        help="print the result as one JSON object on the last stdout line")
    add(p, "--progress", action="store_true", default=False,
        help="force the stderr progress bar even when stderr is not a terminal")
    add(p, "--no-progress", action="store_true", default=False, help="never draw the progress bar")


def _protocol(args: argparse.Namespace) -> str:
    if args.protocol:
        return args.protocol
    if args.stream:
        return "stream"
    if args.dataset:
        return "ff19"
    return "static"


def _weight_settings(raw: str | list[str] | None) -> list[dict[str, float] | None]:
    """``--event-weights`` values: one parsed setting each (``off``: none).

    >>> _weight_settings(None), _weight_settings(["off", "purchase=5"])
    ([None], [None, {'view': 1.0, 'cart': 1.0, 'purchase': 5.0}])
    """
    from stream.events import parse_event_weights

    if raw is None:
        return [None]
    specs = raw.split(";") if isinstance(raw, str) else raw
    return [None if spec.strip().lower() in ("off", "none", "") else parse_event_weights(spec)
            for spec in specs]


def _comparison(runs: list[dict[str, Any]], k: int) -> str:
    """One line per run: its weights, HR@k and MRR@k overall and per event type."""
    lines = [f"{'event weights':<28}{'HR@' + str(k):>10}{'MRR@' + str(k):>10}  HR@{k} by event type"]
    for r in runs:
        w = r.get("event_weights")
        label = "off" if not w else ",".join(f"{t}={v:g}" for t, v in w.items() if v != 1.0)
        by = r.get(f"hit_rate_at_{k}_by_event_type") or {}
        n = r.get("predictions_by_event_type") or {}
        split = "  ".join(f"{t} {v:.4f} ({n.get(t, 0)})" for t, v in by.items())
        lines.append(f"{label:<28}{r[f'hit_rate_at_{k}']:>10.4f}{r[f'mrr_at_{k}']:>10.4f}  {split}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from stream.evaluation import evaluate as ev

    protocol = _protocol(args)
    try:
        settings = _weight_settings(args.event_weights)
    except ValueError as exc:
        print(f"streamrec evaluate: {exc}", file=sys.stderr)
        return 2
    if any(settings) and protocol == "ff19":
        print("streamrec evaluate: --event-weights does not apply to the ff19 protocol", file=sys.stderr)
        return 2
    runs: list[dict[str, Any]] = []
    for weights in settings:
        code = _run_one(args, protocol, weights, runs)
        if code:
            return code
    if len(runs) > 1:
        k = runs[0]["k"]
        if args.json:
            print(json.dumps({"compare": "event_weights", "runs": runs}, default=str))
        else:
            for r in runs:
                print(ev.format_table(r))
                print()
            print(_comparison(runs, k))
    elif args.json:
        print(json.dumps(runs[0], default=str))
    else:
        print(ev.format_table(runs[0]))
    return 0


def _run_one(args: argparse.Namespace, protocol: str, weights: dict[str, float] | None,
             runs: list[dict[str, Any]]) -> int:
    from stream.evaluation import evaluate as ev

    try:
        params = parse_params(args.param.split() if isinstance(args.param, str) else args.param)
    except ValueError as exc:
        print(f"streamrec evaluate: {exc}", file=sys.stderr)
        return 2
    show = False if args.no_progress else (True if args.progress else None)
    k = args.cutoff if args.cutoff is not None else (FF19_K if protocol == "ff19" else DEFAULT_K)
    if k < 1:
        print("streamrec evaluate: --cutoff must be >= 1", file=sys.stderr)
        return 2
    try:
        if protocol == "static":
            if not (args.train and args.test):
                print("streamrec evaluate: the static protocol needs --train and --test", file=sys.stderr)
                return 2
            result = ev.evaluate_static(
                args.train, args.test, fmt=args.format, model=args.model, params=params,
                k=k, train_order=args.train_order, max_predictions=args.max_predictions,
                show_progress=show, event_weights=weights,
            )
        elif protocol == "stream":
            files = args.stream.split(",") if isinstance(args.stream, str) else args.stream
            if not files:
                print("streamrec evaluate: the stream protocol needs --stream FILE [FILE ...]",
                      file=sys.stderr)
                return 2
            result = ev.evaluate_stream(
                files, fmt=args.format, model=args.model, params=params, k=k,
                warmup=args.warmup, order=args.order, limit=args.limit,
                session_ttl=args.session_ttl, show_progress=show, event_weights=weights,
            )
        else:
            if not args.dataset:
                print("streamrec evaluate: the ff19 protocol needs --dataset PATH", file=sys.stderr)
                return 2
            result = ev.evaluate_ff19(dataset=args.dataset, model=args.model, params=params,
                                      k=k, fmt=args.format)
    except (DatasetError, OSError, ValueError, RuntimeError, TypeError) as exc:
        print(f"streamrec evaluate: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        print(f"streamrec evaluate: model {args.model!r} is not available yet ({exc})", file=sys.stderr)
        return 2
    runs.append(result)
    return 0
