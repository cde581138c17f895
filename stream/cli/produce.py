"""``streamrec produce``: replay a dataset or the synthetic generator into a topic."""

from __future__ import annotations

import argparse
import sys

from stream import config
from stream.cli.common import SYNTHETIC_DEFAULTS, add_command, add_shop_args, read_dataset, shop_kwargs
from stream.evaluation.datasets import FORMATS
from stream.evaluation.synthetic import SCENARIOS, SyntheticStream
from stream.kafka import clients as kafka_io


def add_source_args(p: argparse.ArgumentParser, default_events: int = SYNTHETIC_DEFAULTS["events"]) -> None:
    g = p.add_argument_group("source (one of --synthetic / --dataset)")
    g.add_argument("--synthetic", action="store_true", help="use the synthetic click generator")
    config.add(g, "--events", default=default_events, type=int, help="synthetic events to generate")
    config.add(g, "--seed", default=SYNTHETIC_DEFAULTS["seed"], type=int, help="synthetic generator seed")
    config.add(g, "--scenario", default=SYNTHETIC_DEFAULTS["scenario"], choices=list(SCENARIOS), help="synthetic drift scenario")
    config.add(g, "--drift-at", default=None, type=int, help="event index where the drift starts")
    config.add(g, "--drift-length", default=SYNTHETIC_DEFAULTS["drift_length"], type=int, help="events over which a gradual drift ramps")
    add_shop_args(g)
    config.add(g, "--dataset", default=None, help="dataset file (or folder, for online-retail)")
    config.add(g, "--format", default=None, choices=list(FORMATS), help="dataset format")
    g.add_argument("--column", action="append", default=[], metavar="FIELD=COLUMN",
                   help="csv/jsonl: read FIELD (session_id, item_id, timestamp) from COLUMN")


def source_events(args: argparse.Namespace) -> tuple[list | SyntheticStream, int]:
    """The events the flags describe, and how many there are."""
    if args.dataset:
        if not args.format:
            raise SystemExit("--dataset needs --format (one of: " + ", ".join(FORMATS) + ")")
        cols = dict(c.split("=", 1) for c in args.column)
        events = read_dataset(args.dataset, args.format, columns=cols, limit=getattr(args, "limit", None))
        return events, len(events)
    stream = SyntheticStream(events=args.events, seed=args.seed, scenario=args.scenario,
                             drift_at=args.drift_at, drift_length=args.drift_length, **shop_kwargs(args))
    return stream, len(stream)


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "produce", help="replay a dataset or synthetic clicks into a Kafka topic, or load "
                                         "a catalogue file into the catalogue topic", func=run,
                    description="Create the topic if absent and send click events to it, keyed by "
                                "session id, with a progress bar; or, with --catalog FILE, send a "
                                "catalogue file's items to the catalogue topic, keyed by item id.")
    kafka_io.add_kafka_args(p)
    config.add(p, "--topic", default=kafka_io.DEFAULT_TOPIC, help="topic to produce to")
    config.add(p, "--partitions", default=kafka_io.DEFAULT_PARTITIONS, type=int, help="partitions when creating the topic")
    add_source_args(p)
    c = p.add_argument_group("catalogue (instead of clicks)")
    config.add(c, "--catalog", default=None, metavar="FILE",
               help="load this catalogue file (jsonl: item_id, available, category, price per line; or "
                    "csv with those columns) into --catalog-topic; bad records are reported and counted, "
                    "not sent")
    config.add(c, "--catalog-topic", default="catalog",
               help="catalogue topic for --catalog (created compacted with one partition if absent)")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--rate", type=float, default=None, help="events per second (default: flat out)")
    pace.add_argument("--speedup", type=float, default=None,
                      help="replay at X times the data's own event-time pace")
    config.add(p, "--limit", default=None, type=int, help="stop after this many events")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    config.add_logging(p)


def run(args: argparse.Namespace) -> int:
    from stream.kafka.producer import produce_events

    config.setup_logging(args.log_level, args.log_format)
    if args.catalog:
        if args.synthetic or args.dataset:
            raise SystemExit("choose one of --catalog, --synthetic and --dataset")
        return _catalog(args)
    if args.synthetic and args.dataset:
        raise SystemExit("choose one of --synthetic and --dataset")
    if not args.synthetic and not args.dataset:
        raise SystemExit("a source is needed: --synthetic or --dataset PATH --format F")
    events, total = source_events(args)
    summary = produce_events(kafka_io.client_config(args), args.topic, events, partitions=args.partitions,
                             total=total, rate=args.rate, speedup=args.speedup, limit=args.limit,
                             show_progress=False if args.no_progress else None)
    print(f"produced {summary.events_produced} events to {args.topic} in {summary.elapsed_s:.1f} s "
          f"({summary.events_per_s:,.0f}/s)", file=sys.stderr)
    return 0


def _catalog(args: argparse.Namespace) -> int:
    from stream.kafka.producer import produce_catalog

    try:
        summary = produce_catalog(kafka_io.client_config(args), args.catalog_topic, args.catalog)
    except (OSError, UnicodeDecodeError) as exc:
        raise SystemExit(f"error: {exc}") from None
    refused = ", ".join(f"{why} {n}" for why, n in sorted(summary.refused.items()))
    print(f"produced {summary.sent} catalogue records to {args.catalog_topic}; refused "
          f"{summary.refused_total}{f' ({refused})' if refused else ''}", file=sys.stderr)
    return 0
