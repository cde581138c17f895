"""The worker's serving flags: catalogue, business rules, over-fetch (:mod:`stream.serving.rules`)."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from stream import config
from stream.state.sessions import DEFAULT_MAX_SESSIONS

log = logging.getLogger("streamrec.serving")


def add_serving_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("serving (business rules over every served and published list)")
    config.add(g, "--catalog", default=None,
               help="item catalogue file to start from: jsonl (item_id, available, category, price) "
                    "or .csv with those columns")
    config.add(g, "--catalog-topic", default=None,
               help="compacted catalogue topic (key item id, JSON value, tombstone deletes), read "
                    "whole by every worker and followed")
    config.add(g, "--denylist", default=None, help="file of item ids never to serve, one a line")
    config.add(g, "--exclude-seen", default=False, action="store_true",
               help="leave every item the session clicked out of its lists (purchased ones always are)")
    config.add(g, "--overfetch", default=20, type=int,
               help="items the model ranks beyond --k, so a filtered list still has k")


def build_serving(args: argparse.Namespace, worker: Any) -> Any:
    """A :class:`stream.serving.rules.Serving` for ``worker`` from the flags, installed on it."""
    from stream.serving.catalog import Catalog, CatalogFollower
    from stream.serving.rules import Serving, ServingCollector, load_denylist

    if args.overfetch < 0:
        raise SystemExit("error: --overfetch must be >= 0")
    proc = worker.processor
    proc.fetch = proc.k + args.overfetch
    catalog = None
    if args.catalog or args.catalog_topic:
        catalog = Catalog(args.max_items)
    if args.catalog:
        ok, bad = catalog.load_file(args.catalog)  # type: ignore[union-attr]
        config.log_event(log, "catalogue loaded", path=args.catalog, items=ok, refused=sum(bad.values()),
                         reasons=bad)
    follower = None
    if args.catalog_topic:
        from stream.kafka import clients as kafka_io

        follower = CatalogFollower(catalog, worker.s.client, args.catalog_topic,  # type: ignore[arg-type]
                                   worker.s.dlq, kafka_io.make_producer(worker.s.client))
        n = follower.catch_up()
        config.log_event(log, "catalogue topic read", topic=args.catalog_topic, records=n)
    serving = Serving(proc, catalog, load_denylist(args.denylist), args.exclude_seen, follower,
                      max_sessions=getattr(args, "max_sessions", DEFAULT_MAX_SESSIONS))
    worker.serving = serving
    worker.metrics.registry.register(ServingCollector(serving))
    return serving
