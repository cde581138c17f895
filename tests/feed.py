"""Training a session model on hand-written sessions, one click a second, in the order given."""

from __future__ import annotations

from typing import Any


def feed(model: Any, sessions: list[list[int]]) -> None:
    """Learn every click of ``sessions``; session ``key`` is its index, clicks one second apart."""
    t = 0.0
    for key, items in enumerate(sessions):
        for pos, item in enumerate(items):
            model.learn_one(key, item, t, items[:pos])
            t += 1.0
