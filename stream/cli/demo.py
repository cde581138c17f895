"""``streamrec demo``: the whole pipeline on the embedded broker, ending with a summary.

Without --bootstrap-servers, start the embedded Kafka-protocol broker, create the topics, replay
a synthetic stream (or --dataset) through a producer while a worker recommends, learns and
scores itself; show live progress and end with a summary table (--json: one JSON object as the
last stdout line).
"""

from __future__ import annotations

import argparse
import json

from monitoring.drift import config as drift_config
from stream import config
from stream.cli.common import (
    add_command,
    add_model_args,
    add_state_args,
    build_lifecycle,
    build_monitor,
    build_processor,
    doc_body,
    shop_label,
)
from stream.cli.produce import add_source_args, source_events
from stream.kafka import clients as kafka_io


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "demo", help='run broker, producer and worker end to end and print a summary', func=run,
                    description=doc_body(__doc__))
    kafka_io.add_kafka_args(p, bootstrap_required=False)
    config.add(p, "--topic", default=kafka_io.DEFAULT_TOPIC, help="click topic (suffixed with a run id on the embedded broker)")
    config.add(p, "--partitions", default=kafka_io.DEFAULT_PARTITIONS, type=int, help="partitions of the click topic")
    config.add(p, "--recommendations-topic", default=None, help="also publish every list to this topic")
    add_source_args(p)
    add_model_args(p)
    add_state_args(p)
    drift_config.add_arguments(p)
    p.add_argument("--json", action="store_true", help="print the summary as JSON (last stdout line)")
    config.add_logging(p)
    p.set_defaults(log_level="WARNING")


def run(args: argparse.Namespace) -> int:
    from stream.kafka.demo import run_demo

    config.setup_logging(args.log_level, args.log_format)
    events, total = source_events(args)
    processor = build_processor(args, build_monitor(args))
    lifecycle = build_lifecycle(args, processor)
    client = kafka_io.client_config(args) if args.bootstrap_servers else None
    res = run_demo(events, total, processor, args.model, client=client, topic=args.topic,
                   partitions=args.partitions, recommendations_topic=args.recommendations_topic,
                   lifecycle=lifecycle)
    d = res.as_dict()
    if args.json:
        print(json.dumps(d))
    else:
        source = args.dataset or f"synthetic ({args.events:,} events, scenario {args.scenario}{shop_label(args)})"
        rows = [
            ("source", source), ("model", res.model), ("events produced", f"{res.events_produced:,}"),
            ("events processed", f"{res.events_processed:,}"), ("invalid events", f"{res.events_invalid:,}"),
            ("predictions scored", f"{res.predictions:,}"), (f"HR@{args.k}", f"{res.hit_rate_at_20:.4f}"),
            (f"MRR@{args.k}", f"{res.mrr_at_20:.4f}"),
            ("recommend p50 / p99", f"{res.recommend_ms_p50:.3f} / {res.recommend_ms_p99:.3f} ms"),
            ("throughput", f"{res.events_per_s:,.0f} events/s"), ("elapsed", f"{res.elapsed_s:.1f} s"),
            ("live sessions at end", f"{res.active_sessions:,}"),
        ]
        width = max(len(k) for k, _ in rows)
        print("streamrec demo summary")
        print("-" * (width + 30))
        for k, v in rows:
            print(f"{k:<{width}}  {v}")
    ok = res.events_processed + res.events_invalid >= res.events_produced
    return 0 if ok else 1
