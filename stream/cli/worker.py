"""``streamrec worker``: one consumer-group member serving recommendations from a click topic.

A consumer-group member. For each click, in order: score the list recommended after the
session's previous click (prequential HR@k / MRR@k), learn the click, recommend the next top k,
publish it (with --recommendations-topic), update metrics. Offsets are committed only after a
batch is processed. Malformed messages go to <topic>.dlq. HTTP: /metrics, /healthz, the request
API (/recommendations, /items/<item_id>/similar, /openapi.json); with an admin token, operator
actions on a loopback listener of their own (streamrec admin).
"""

from __future__ import annotations

import argparse
import sys

from monitoring.drift import config as drift_config
from stream import config
from stream.cli.common import add_command, add_model_args, add_state_args, build_processor, doc_body
from stream.kafka import clients as kafka_io
from stream.kafka.ordering import ORDERS
from stream.kafka.worker import DEFAULT_GROUP, DEFAULT_METRICS_PORT, WorkerSettings


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "worker", help='consume clicks, recommend, learn, score and expose metrics', func=run,
                    description=doc_body(__doc__))
    kafka_io.add_kafka_args(p)
    config.add(p, "--topic", default=kafka_io.DEFAULT_TOPIC, help="click topic")
    config.add(p, "--group", default=DEFAULT_GROUP, help="consumer group id")
    config.add(p, "--recommendations-topic", default=None,
               help="publish every recommended list here (key: session id)")
    config.add(p, "--metrics-port", default=DEFAULT_METRICS_PORT, type=int, help="HTTP port (0: a free one; -1: off)")
    config.add(p, "--metrics-host", default=WorkerSettings.metrics_host, help="HTTP bind address (0.0.0.0 in containers)")
    config.add(p, "--state-dir", default=None,
               help="directory for checkpoints (model, sessions, monitor, offsets); offsets are then "
                    "committed only as far as the last checkpoint, and a restart resumes from it")
    config.add(p, "--checkpoint-every-events", default=WorkerSettings.checkpoint_every_events, type=int,
               help="checkpoint after this many consumed messages")
    config.add(p, "--checkpoint-every-seconds", default=WorkerSettings.checkpoint_every_seconds, type=float,
               help="... or after this many seconds, whichever comes first (and on shutdown)")
    config.add(p, "--health-timeout", default=WorkerSettings.health_timeout_s, type=float,
               help="/healthz reports degraded (503) after this many seconds without a broker answer")
    config.add(p, "--session-timeout-ms", default=None, type=int,
               help="consumer group session timeout (default 10000; 6000 in tests)")
    config.add(p, "--max-events", default=None, type=int, help="exit after this many events (testing)")
    config.add(p, "--idle-exit", default=None, type=float,
               help="exit after this many seconds without new events (testing)")
    config.add(p, "--learn-all-partitions", default=WorkerSettings.learn_all_partitions, action="store_true",
               help="scale-out: also learn (not serve) the clicks of partitions other members own, "
                    "so every worker's model sees the whole stream (stream/kafka/replica.py)")
    config.add(p, "--no-pipeline", default=not WorkerSettings.pipeline, action="store_true",
               help="session-kNN models: learn and recommend each poll on the main thread instead of "
                    "on a second thread beside the next poll (same lists either way; half the cores)")
    config.add(p, "--compute-nice", default=WorkerSettings.compute_nice, type=int,
               help="session-kNN, pipelined, with the HTTP port open: run the two threads that consume "
                    "and compute this much nicer than the HTTP server's, so requests are answered at once "
                    "on a machine whose cores the worker keeps busy (Linux; 0: off)")
    config.add(p, "--click-order", default=WorkerSettings.click_order, choices=list(ORDERS),
               help="event-time: the clicks of all partitions this worker reads are merged by event time, "
                    "so a backlog is learned and scored like live traffic; fetch: as the consumer returns "
                    "them, one partition's records after another's")
    config.add(p, "--max-order-wait", default=WorkerSettings.max_order_wait_s, type=float,
               help="seconds a lagging partition that delivers nothing may hold the others' clicks back "
                    "(event-time order)")
    g = p.add_argument_group(
        "operator actions (streamrec admin)",
        "POST /admin/retrain, /admin/promote, /admin/acknowledge and GET /admin/status, off unless an "
        "admin token is set. They are served on a listener of their own, on loopback by default, so "
        "--metrics-host 0.0.0.0 does not publish them; each request needs 'Authorization: Bearer "
        "<token>'. Prefer the environment variable to the flag: a flag shows in the process list.")
    config.add(g, "--admin-token", default=None,
               help="turn the admin routes on with this bearer token (at least 16 characters, e.g. "
                    "`openssl rand -hex 16`)")
    config.add(g, "--admin-host", default=WorkerSettings.admin_host,
               help="admin listener address; anything but loopback exposes operator actions to the "
                    "network (put TLS in front)")
    config.add(g, "--admin-port", default=WorkerSettings.admin_port, type=int, help="admin listener port (0: a free one)")
    config.add(p, "--summary-json", default=None,
               help="write a JSON summary here at exit (counts, HR/MRR, latency percentiles, peak RSS)")
    from stream.cli.serve_args import add_serving_args

    add_serving_args(p)
    add_model_args(p)
    add_state_args(p)
    drift_config.add_arguments(p)
    config.add_logging(p)


def run(args: argparse.Namespace) -> int:
    from stream.cli.common import build_lifecycle, build_monitor
    from stream.kafka.worker import Worker

    config.setup_logging(args.log_level, args.log_format)
    monitor = build_monitor(args)
    processor = build_processor(args, monitor)
    settings = WorkerSettings(
        client=kafka_io.client_config(args), topic=args.topic, group=args.group, model_name=args.model,
        recommendations_topic=args.recommendations_topic,
        metrics_port=None if args.metrics_port < 0 else args.metrics_port, metrics_host=args.metrics_host,
        max_events=args.max_events, idle_exit_s=args.idle_exit,
        state_dir=args.state_dir, checkpoint_every_events=args.checkpoint_every_events,
        checkpoint_every_seconds=args.checkpoint_every_seconds, health_timeout_s=args.health_timeout,
        consumer_overrides={} if args.session_timeout_ms is None
        else {"session_timeout_ms": args.session_timeout_ms},
        learn_all_partitions=args.learn_all_partitions, pipeline=not args.no_pipeline,
        compute_nice=args.compute_nice,
        click_order=args.click_order, max_order_wait_s=args.max_order_wait,
        admin_token=args.admin_token or None, admin_host=args.admin_host, admin_port=args.admin_port,
    )
    if settings.admin_token is not None:
        from stream.serving.admin import check_token

        try:
            check_token(settings.admin_token)
        except ValueError as exc:
            raise SystemExit(f"error: --admin-token: {exc}") from None
        if settings.admin_port != 0 and settings.admin_port == settings.metrics_port:
            raise SystemExit("error: --admin-port must differ from --metrics-port (the admin routes have a "
                             "listener of their own)")
    worker = Worker(settings, processor, lifecycle=build_lifecycle(args, processor))
    from stream.cli.serve_args import build_serving

    build_serving(args, worker)
    worker.install_signal_handlers()
    s = worker.run()
    if args.summary_json:
        from stream.kafka.summary import write_worker_summary

        write_worker_summary(worker, s, args.summary_json)
    print(f"processed {s.events_processed} events ({s.events_invalid} invalid) in {s.elapsed_s:.1f} s; "
          f"HR@{args.k} {s.hit_rate_at_k:.4f} MRR@{args.k} {s.mrr_at_k:.4f}", file=sys.stderr)
    return 0
