"""Flags shared by several sub-commands (model choice, session and item caps)."""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable
from typing import Any

from stream import config
from stream.evaluation.synthetic import SyntheticStream
from stream.events import Event
from stream.models import DEFAULT_MODEL, MODELS, make_model, parse_params
from stream.models.base import DEFAULT_K
from stream.processing.core import ClickProcessor
from stream.state.items import DEFAULT_MAX_ITEMS, ItemIndex
from stream.state.sessions import DEFAULT_MAX_SESSION_ITEMS, DEFAULT_MAX_SESSIONS, DEFAULT_TTL_S, SessionStore


def add_command(subparsers: argparse._SubParsersAction, name: str, help: str, description: str,
                func: Callable[[argparse.Namespace], int], **kw: Any) -> argparse.ArgumentParser:
    """Add sub-command ``name`` whose parsed arguments go to ``func`` (see :mod:`stream.cli`)."""
    p: argparse.ArgumentParser = subparsers.add_parser(name, help=help, description=description, **kw)
    p.set_defaults(func=func)
    return p


def doc_body(doc: str | None) -> str:
    """A sub-command module's docstring without its first line: the command's ``--help`` text."""
    return (doc or "").partition("\n\n")[2].strip()


def add_model_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("model")
    config.add(g, "--model", default=DEFAULT_MODEL, choices=list(MODELS), help="session model")
    g.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="model parameter with session-rec's name, e.g. --param k=100 (repeatable)")
    config.add(g, "--k", default=DEFAULT_K, type=int, help="length of each recommended list (HR@k, MRR@k)")
    add_event_weights_arg(g)


def add_event_weights_arg(group: Any) -> None:
    config.add(group, "--event-weights", default=None, metavar="TYPE=W,...",
               help="learning weight per event type, e.g. view=1,cart=3,purchase=5 (types left out "
                    "weigh 1; default: every click once). Models that weight clicks (SR, AR, Markov, "
                    "POP, item2vec, the hybrid's parts) multiply what a click adds; the kNN models do not")


def event_weights(args: argparse.Namespace) -> dict[str, float] | None:
    """``--event-weights`` parsed, or exit with the error naming the bad entry."""
    from stream.events import parse_event_weights

    try:
        return parse_event_weights(args.event_weights)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None


def add_state_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("bounded state")
    config.add(g, "--session-ttl", default=DEFAULT_TTL_S, type=float,
               help="seconds of event-time inactivity that end a session")
    config.add(g, "--max-sessions", default=DEFAULT_MAX_SESSIONS, type=int,
               help="live sessions kept; the least recently active is evicted beyond it")
    config.add(g, "--max-session-items", default=DEFAULT_MAX_SESSION_ITEMS, type=int,
               help="most recent clicks kept per session")
    config.add(g, "--max-items", default=DEFAULT_MAX_ITEMS, type=int,
               help="distinct items learned; clicks on further new items are scored but not learned")


#: The synthetic generator's own defaults (``SyntheticStream`` argument -> value), which its flags show.
SYNTHETIC_DEFAULTS: dict[str, Any] = {
    name: param.default for name, param in inspect.signature(SyntheticStream).parameters.items()
    if param.default is not inspect.Parameter.empty
}
#: The part of :data:`SYNTHETIC_DEFAULTS` that shapes the shop (:func:`add_shop_args`).
SHOP_DEFAULTS: dict[str, Any] = {name: SYNTHETIC_DEFAULTS[name] for name in ("n_items", "zipf", "mean_session_length")}


def add_shop_args(group: Any) -> None:
    """The synthetic shop's shape (:class:`~stream.evaluation.synthetic.SyntheticStream`): catalogue size,
    popularity skew and session length, so a benchmark or demo can be sized like your shop."""
    config.add(group, "--synthetic-items", default=SHOP_DEFAULTS["n_items"], type=int, metavar="N",
               help="items in the synthetic catalogue")
    config.add(group, "--synthetic-zipf", default=SHOP_DEFAULTS["zipf"], type=float, metavar="S",
               help="Zipf exponent of the synthetic items' popularity (0: uniform; at the defaults the "
                    "most popular item is in ~29%% of sessions, in yoochoose 2.7%%)")
    config.add(group, "--synthetic-session-length", default=SHOP_DEFAULTS["mean_session_length"], type=float,
               metavar="L",
               help="mean clicks per synthetic session (lengths are geometric)")


def shop_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """:func:`add_shop_args`' flags as :class:`~stream.evaluation.synthetic.SyntheticStream` arguments."""
    return {"n_items": args.synthetic_items, "zipf": args.synthetic_zipf,
            "mean_session_length": args.synthetic_session_length}


def shop_label(args: argparse.Namespace) -> str:
    """``""`` at the default shape, else e.g. ``", 20,000 items, zipf 0.8, 3.9 clicks/session"``."""
    if shop_kwargs(args) == SHOP_DEFAULTS:
        return ""
    return (f", {args.synthetic_items:,} items, zipf {args.synthetic_zipf:g}, "
            f"{args.synthetic_session_length:g} clicks/session")


def read_dataset(path: str, fmt: str, columns: dict[str, str] | None = None,
                 limit: int | None = None) -> list[Event]:
    """A dataset's events in stream order, or exit with the reader's clear error."""
    from stream.evaluation.datasets import DatasetError, read_events

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
                               monitor=monitor, event_weights=event_weights(args))  # type: ignore[arg-type]
    if monitor is not None and hasattr(monitor, "attach"):
        monitor.attach(processor)  # item names in its reasons
    return processor


def build_monitor(args: argparse.Namespace) -> object | None:
    """The drift monitor the flags of :func:`monitoring.drift.config.add_arguments` describe."""
    from monitoring.drift.config import from_args

    return from_args(args)


def build_lifecycle(args: argparse.Namespace, processor: ClickProcessor) -> object | None:
    """The life of retraining due (``--on-drift``, ``--promote``, ...) for ``processor``'s monitor."""
    from monitoring.drift.config import lifecycle_from_args

    if processor.monitor is None:
        return None
    return lifecycle_from_args(args, processor.monitor, processor)  # type: ignore[arg-type]
