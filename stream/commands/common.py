"""Flags shared by several sub-commands (model choice, session and item caps)."""

from __future__ import annotations

import argparse

from stream import config
from stream.core import ClickProcessor
from stream.events import Event
from stream.items import ItemIndex
from stream.models import DEFAULT_MODEL, MODELS, make_model, parse_params
from stream.sessions import DEFAULT_MAX_SESSION_ITEMS, DEFAULT_MAX_SESSIONS, DEFAULT_TTL_S, SessionStore


def add_model_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("model")
    config.add(g, "--model", default=DEFAULT_MODEL, choices=list(MODELS), help="session model")
    g.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="model parameter with session-rec's name, e.g. --param k=100 (repeatable)")
    config.add(g, "--k", default=20, type=int, help="length of each recommended list (HR@k, MRR@k)")


def add_state_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("bounded state")
    config.add(g, "--session-ttl", default=DEFAULT_TTL_S, type=float,
               help="seconds of event-time inactivity that end a session")
    config.add(g, "--max-sessions", default=DEFAULT_MAX_SESSIONS, type=int,
               help="live sessions kept; the least recently active is evicted beyond it")
    config.add(g, "--max-session-items", default=DEFAULT_MAX_SESSION_ITEMS, type=int,
               help="most recent clicks kept per session")
    config.add(g, "--max-items", default=1_000_000, type=int,
               help="distinct items learned; clicks on further new items are scored but not learned")


def read_dataset(path: str, fmt: str, columns: dict[str, str] | None = None,
                 limit: int | None = None) -> list[Event]:
    """A dataset's events in stream order, or exit with the reader's clear error."""
    from stream.datasets import DatasetError, read_events

    try:
        return list(read_events(path, fmt, columns=columns, limit=limit))
    except DatasetError as exc:
        raise SystemExit(f"error: {exc}") from None


def build_processor(args: argparse.Namespace, monitor: object | None = None) -> ClickProcessor:
    """The per-click core as the flags describe it."""
    model = make_model(args.model, **parse_params(args.param))
    sessions = SessionStore(ttl_s=args.session_ttl, max_sessions=args.max_sessions,
                            max_session_items=args.max_session_items)
    processor = ClickProcessor(model, k=args.k, sessions=sessions, items=ItemIndex(args.max_items),
                               monitor=monitor)  # type: ignore[arg-type]
    if monitor is not None and hasattr(monitor, "attach"):
        monitor.attach(processor)  # the retrain policy swaps processor.model
    return processor


def build_monitor(args: argparse.Namespace) -> object | None:
    """The drift monitor the flags of :func:`monitoring.drift.config.add_arguments` describe."""
    from monitoring.drift.config import from_args

    return from_args(args)
