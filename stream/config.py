"""Configuration helpers: CLI flags with ``STREAMREC_*`` environment fallbacks, and logging."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from typing import Any

ENV_PREFIX = "STREAMREC_"


def env_name(flag: str) -> str:
    """``--bootstrap-servers`` -> ``STREAMREC_BOOTSTRAP_SERVERS``.

    >>> env_name("--bootstrap-servers")
    'STREAMREC_BOOTSTRAP_SERVERS'
    """
    return ENV_PREFIX + flag.lstrip("-").replace("-", "_").upper()


def add(parser: argparse.ArgumentParser | Any, flag: str, *, default: Any = None, type: Any = str,
        help: str = "", env: str | None = None, **kw: Any) -> None:
    """Add ``flag`` whose default comes from ``STREAMREC_<FLAG>`` (or ``env``) when set, else ``default``.

    The help text shows both, so ``--help`` tells the whole story.
    """
    env = env or env_name(flag)
    raw = os.environ.get(env)
    value = default
    if raw is not None:
        if kw.get("action") in ("store_true", "store_false"):
            value = raw.strip().lower() in ("1", "true", "yes", "on")
        else:
            value = type(raw) if type is not None else raw
    shown = "" if default in (None, False) else f" (default: {default})"
    if kw.get("action") in ("store_true", "store_false"):
        parser.add_argument(flag, default=value, help=f"{help}{shown} [env {env}]", **kw)
    else:
        parser.add_argument(flag, default=value, type=type, help=f"{help}{shown} [env {env}]", **kw)


def add_logging(parser: argparse.ArgumentParser) -> None:
    add(parser, "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log verbosity")
    add(parser, "--log-format", default="text", choices=["text", "json"],
        help="stderr log lines as text or one JSON object per line")


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        d: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        extra = getattr(record, "fields", None)
        if extra:
            d.update(extra)
        if record.exc_info:
            d["exc"] = self.formatException(record.exc_info)
        return json.dumps(d, default=str)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        t = time.strftime("%H:%M:%S", time.localtime(record.created))
        extra = getattr(record, "fields", None)
        tail = "".join(f" {k}={v}" for k, v in extra.items()) if extra else ""
        line = f"{t} {record.levelname.lower():7s} {record.name}: {record.getMessage()}{tail}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    """One line per significant event on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if fmt == "json" else _TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("kafka").setLevel(logging.DEBUG if level == "DEBUG" else logging.ERROR)


def log_event(logger: logging.Logger, msg: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log ``msg`` with structured ``fields`` (rendered as key=value or JSON keys)."""
    logger.log(level, msg, extra={"fields": fields})
