"""A tiny, dependency-free progress bar on stderr for long replays.

It draws only when stderr is a terminal (or when forced), at most a few times a second, so logs
and piped output stay clean and the per-item cost is one counter and one clock read every
``every`` items.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from time import monotonic
from typing import TextIO, TypeVar

T = TypeVar("T")


def _fmt_s(s: float) -> str:
    s = int(s)
    return f"{s // 3600:d}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60:d}:{s % 60:02d}"


def progress(
    iterable: Iterable[T],
    total: int | None = None,
    desc: str = "",
    enabled: bool | None = None,
    stream: TextIO | None = None,
    interval: float = 0.25,
    every: int = 256,
) -> Iterator[T]:
    """Yield the items of ``iterable`` while drawing a progress line on ``stream`` (stderr).

    Parameters
    ----------
    iterable
        What to iterate over.
    total
        Expected number of items (``len(iterable)`` when it has one); shown as a bar and an ETA.
    desc
        A short label in front of the bar.
    enabled
        ``None`` (default) draws only if the stream is a TTY; ``True`` forces drawing, ``False``
        turns it off.
    stream
        Where to draw; ``sys.stderr`` by default (looked up at call time).
    interval
        Minimum seconds between redraws.
    every
        Check the clock only every this many items (keeps the per-item cost negligible).

    Examples
    --------
    >>> list(progress(range(3), desc="x", enabled=False))
    [0, 1, 2]
    >>> import io
    >>> out = io.StringIO()
    >>> _ = list(progress(range(5), total=5, desc="replay", enabled=True, stream=out))
    >>> "replay" in out.getvalue() and "5/5" in out.getvalue()
    True
    >>> quiet = io.StringIO()  # not a TTY and not forced: prints nothing
    >>> _ = list(progress(range(5), stream=quiet)); quiet.getvalue()
    ''
    """
    out = stream if stream is not None else sys.stderr
    if enabled is None:
        try:
            enabled = out.isatty()
        except (AttributeError, ValueError):
            enabled = False
    if not enabled:
        yield from iterable
        return
    if total is None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    start = last = monotonic()
    label = f"{desc}: " if desc else ""

    def draw(n: int, now: float, end: str = "") -> None:
        el = now - start
        rate = n / el if el > 0 else 0.0
        if total:
            frac = min(n / total, 1.0)
            width = 24
            done = int(frac * width)
            eta = (total - n) / rate if rate > 0 else 0.0
            line = (f"\r{label}[{'#' * done}{'.' * (width - done)}] {n}/{total} {frac:6.1%} "
                    f"{rate:,.0f}/s eta {_fmt_s(eta)}")
        else:
            line = f"\r{label}{n} {rate:,.0f}/s {_fmt_s(el)}"
        out.write(line + end)
        out.flush()

    n = 0
    try:
        for item in iterable:
            yield item
            n += 1
            if n % every == 0:
                now = monotonic()
                if now - last >= interval:
                    last = now
                    draw(n, now)
    finally:
        draw(n, monotonic(), end="\n")
