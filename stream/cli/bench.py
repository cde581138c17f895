"""``streamrec bench``: raw Kafka vs pipeline throughput, latency, memory, one vs W workers.

Produces N synthetic clicks (or replays --dataset) to a fresh topic, measures a bare
kafka-python consume+decode loop over it, then runs W real worker processes in one group (score,
learn, recommend, drift monitor, metrics) until all N are processed, and again publishing every
list. With --workers > 1 the workers run with --learn-all-partitions (stream/kafka/replica.py).
Prints a table, or one JSON line with --json.
"""

from __future__ import annotations

import argparse
import logging

from stream import config
from stream.cli.common import (
    SYNTHETIC_DEFAULTS,
    add_command,
    add_shop_args,
    doc_body,
    shop_kwargs,
    shop_label,
)
from stream.evaluation.bench import DEFAULT_EVENTS
from stream.evaluation.datasets import DEFAULT_FORMAT, FORMATS
from stream.evaluation.httpload import DEFAULT_CONNECTIONS, DEFAULT_DURATION_S, DEFAULT_RATE
from stream.evaluation.synthetic import SCENARIOS
from stream.kafka.clients import DEFAULT_PARTITIONS
from stream.models import DEFAULT_MODEL, MODELS


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "bench", help='throughput / latency / memory benchmark on the embedded broker', func=run,
                    description=doc_body(__doc__))
    config.add(p, "--events", default=DEFAULT_EVENTS, type=int, help="synthetic events")
    config.add(p, "--model", default=DEFAULT_MODEL, choices=list(MODELS), help="session model")
    config.add(p, "--workers", default=1, type=int, help="worker processes in the group")
    config.add(p, "--partitions", default=DEFAULT_PARTITIONS, type=int, help="partitions of the click topic")
    config.add(p, "--seed", default=SYNTHETIC_DEFAULTS["seed"], type=int, help="synthetic generator seed")
    add_shop_args(p)
    config.add(p, "--scenario", default=SYNTHETIC_DEFAULTS["scenario"], choices=list(SCENARIOS),
               help="synthetic drift scenario (e.g. new-catalog: the workers' drift monitor raises "
                    "retraining due and, with the default --on-drift challenger, a challenger runs in shadow)")
    config.add(p, "--drift-at", default=None, type=int, help="event index where the drift starts (default: half-way)")
    config.add(p, "--dataset", default=None,
               help="replay this real click log (time order, at most --events) instead of synthetic "
                    "clicks, e.g. ../shared/data/yoochoose-100k/yoochoose-clicks-100k_train_full.txt")
    config.add(p, "--format", default=DEFAULT_FORMAT, choices=list(FORMATS), help="format of --dataset")
    config.add(p, "--bootstrap-servers", default=None,
               help="use this Kafka instead of starting the embedded broker")
    p.add_argument("--no-publish", action="store_true", help="skip the run with --recommendations-topic")
    p.add_argument("--no-raw", action="store_true", help="skip the bare consume loops")
    p.add_argument("--worker-arg", action="append", default=[], metavar="ARG",
                   help="extra worker flag, e.g. --worker-arg=--max-sessions=100000 (repeatable)")
    p.add_argument("--session-memory", action="store_true",
                   help="also measure MB per 100k live sessions in-process (tracemalloc)")
    config.add(p, "--repeat", default=1, type=int,
               help="whole benchmark runs (each with its own broker and topics); N > 1 prints "
                    "every run and the medians, as the issue's 'median of 3 runs'")
    p.add_argument("--http-load", action="store_true",
                   help="instead: the request API under load from wrk in a second process, against "
                        "an idle worker and one consuming --events at full speed from a one-partition topic "
                        "(stream/evaluation/httpload.py)")
    config.add(p, "--http-duration", default=DEFAULT_DURATION_S, type=float, help="--http-load: seconds per wrk run")
    config.add(p, "--http-connections", default=DEFAULT_CONNECTIONS, type=int,
               help="--http-load: wrk connections for GET (POST uses a quarter of them under load)")
    config.add(p, "--http-rate", default=DEFAULT_RATE, type=float,
               help="--http-load: requests/s against the consuming worker, half GET and half POST "
                    "(0: as fast as wrk can)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON line (last line)")
    config.add_logging(p)


def run(args: argparse.Namespace) -> int:
    from stream.evaluation.bench import json_line, repeat_table, run_bench, summarize, table

    config.setup_logging(args.log_level, args.log_format)
    logging.getLogger("kafka").setLevel(logging.ERROR)
    if args.workers < 1 or args.partitions < args.workers:
        raise SystemExit("error: need 1 <= --workers <= --partitions")
    if args.repeat < 1:
        raise SystemExit("error: need --repeat >= 1")
    if args.http_load:
        return _http_load(args)
    shape = shop_label(args).removeprefix(", ")
    dataset, source = None, f"synthetic ({shape})" if shape else "synthetic"
    if args.dataset:
        from stream.cli.common import read_dataset

        dataset = read_dataset(args.dataset, args.format, limit=args.events)
        if not dataset:
            raise SystemExit(f"error: {args.dataset}: no events")
        source = f"{args.dataset} ({args.format})"
    results = []
    for i in range(args.repeat):
        if args.repeat > 1:
            logging.getLogger(__name__).info("bench run %d of %d", i + 1, args.repeat)
        results.append(run_bench(
            events=args.events, model=args.model, workers=args.workers, partitions=args.partitions,
            seed=args.seed, publish=not args.no_publish, raw=not args.no_raw,
            worker_args=args.worker_arg, bootstrap=args.bootstrap_servers,
            session_memory=args.session_memory and i == 0, dataset=dataset, source=source,
            synthetic={**shop_kwargs(args), "scenario": args.scenario, "drift_at": args.drift_at}))
    if len(results) == 1:
        print(json_line(results[0]) if args.json else table(results[0]), flush=True)
    else:
        print(json_line(summarize(results)) if args.json else repeat_table(results), flush=True)
    return 0


def _http_load(args: argparse.Namespace) -> int:
    import json

    from stream.evaluation.httpload import run_http_load

    r = run_http_load(events=args.events, model=args.model, duration_s=args.http_duration,
                      connections=args.http_connections, post_connections=max(1, args.http_connections // 4),
                      partitions=1, seed=args.seed, rate=args.http_rate, worker_args=args.worker_arg,
                      bootstrap=args.bootstrap_servers)
    if args.json:
        print(json.dumps({"model": r.model, "events_produced": r.events, **r.as_json()}), flush=True)
    else:
        print(r.table(), flush=True)
    return 0
