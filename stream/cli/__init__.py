"""The ``streamrec`` command line: one sub-command per module in :mod:`stream.cli`.

Each module defines ``register(subparsers)``, which adds its parser and sets ``func`` to a
function taking the parsed ``argparse.Namespace`` and returning an exit code; the work itself
lives in the packages of :mod:`stream`.
"""

from __future__ import annotations

import argparse
import importlib

#: Sub-commands in the order ``--help`` lists them; each is ``stream.cli.<name>``.
COMMANDS = ("demo", "broker", "produce", "worker", "admin", "evaluate", "simulate", "bench")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamrec",
        description=(
            "Streaming session-based recommendations from Kafka click events, scored "
            "prequentially (HR@20 / MRR@20) and watched for drift. Every flag also reads a "
            "STREAMREC_<FLAG> environment variable (e.g. STREAMREC_BOOTSTRAP_SERVERS)."
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"stream.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"stream.cli.{name}":
                continue  # not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `streamrec ... | head`
        return 0
