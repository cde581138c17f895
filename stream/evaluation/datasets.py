"""Readers for real click logs: one parser per format, all yielding :class:`~stream.events.Event`.

Formats (``--format``):

* ``rsc15`` — session-rec's prepared YOOCHOOSE TSV (``SessionId``, ``ItemId``, ``Time`` in epoch s).
* ``diginetica`` — CIKM Cup 2016 ``train-item-views.csv`` (``;``-separated ``session_id``,
  ``user_id``, ``item_id``, ``timeframe`` ms within the session, ``eventdate``). The clock is
  ``eventdate`` midnight UTC + ``timeframe`` (the data has no absolute time of day).
* ``diginetica-purchases`` — the same views with the purchases of their sessions merged in as
  ``event_type=purchase``: PATH is the folder (or its views file, ``train-item-views.csv`` or
  ``sample_train-item-views.csv``) and ``train-purchases.csv`` beside it (``;``-separated
  ``sessionId``, ``userId``, ``timeframe``, ``eventdate``, ``ordernumber``, ``itemId``). A
  purchase's ``timeframe`` counts from the session's start, so its clock is the day of the
  session's first view + ``timeframe``; purchases of sessions without views are left out. The
  provider's sessions run for hours (a purchase comes a median 78 min after the last view in
  the sample): replay with a ``--session-ttl`` longer than that, or the store cuts them.
* ``retailrocket`` — raw ``events.csv`` (``timestamp`` ms, ``visitorid``, ``event``, ``itemid``,
  ``transactionid``); sessions are cut at 30 minutes of inactivity per visitor;
  ``addtocart`` -> ``cart``, ``transaction`` -> ``purchase``.
* ``online-retail`` — UCI Online Retail (``InvoiceNo``, ``StockCode``, ..., ``InvoiceDate``,
  ``UnitPrice``, ``CustomerID``); one invoice is one session. Cancellations (``C`` invoices) and
  non-positive quantities are skipped. PATH may be a folder: its ``*.csv.gz`` / ``*.csv`` files
  are read in name order (the monthly files of ``../shared/data/online-retail``).
* ``csv`` / ``jsonl`` — columns ``session_id,item_id,timestamp`` (renamed with ``columns``),
  optional ``event_type``, ``user_id``, ``category``, ``price``.

Files ending in ``.gz`` are decompressed on the fly. ``order="time"`` (the default) replays in
event-time order, as a live stream would arrive (stable, so a session's clicks keep their file
order on equal timestamps); ``order="file"`` keeps the file order.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

import orjson

from stream.events import Event, Invalid, validate

FORMATS = ("rsc15", "diginetica", "diginetica-purchases", "retailrocket", "online-retail", "csv", "jsonl")
#: The format a command reads when ``--format`` names none: session-rec's YooChoose files.
DEFAULT_FORMAT = "rsc15"
SESSION_GAP_S = 30 * 60.0


class DatasetError(ValueError):
    """A dataset file that cannot be read as the format it was given as."""


def _open(path: Path) -> TextIO:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.name.endswith((".csv", ".csv.gz")))
        monthly = [p for p in files if p.name.startswith("online_retail_")]
        files = monthly or files
        if not files:
            raise DatasetError(f"{path}: no .csv or .csv.gz files in this folder")
        return files
    if not path.exists():
        raise DatasetError(f"{path}: no such file")
    return [path]


def _need(header: list[str] | None, cols: Iterable[str], path: Path, fmt: str) -> dict[str, int]:
    if not header:
        raise DatasetError(f"{path}: empty file")
    pos = {name.strip().lstrip("\ufeff"): i for i, name in enumerate(header)}
    missing = [c for c in cols if c not in pos]
    if missing:
        raise DatasetError(
            f"{path}: not a {fmt} file: missing column(s) {', '.join(missing)} (header: {header})"
        )
    return pos


def _rsc15(path: Path) -> Iterator[Event]:
    with _open(path) as f:
        r = csv.reader(f, delimiter="\t")
        pos = _need(next(r, None), ("SessionId", "ItemId", "Time"), path, "rsc15")
        s, i, t = pos["SessionId"], pos["ItemId"], pos["Time"]
        for row in r:
            if row:
                yield Event(row[s], row[i], float(row[t]))


_DigiRow = tuple[str, int, str, "str | None", float, str]  # session, timeframe, item, user, day, type


def _diginetica(path: Path) -> Iterator[Event]:
    yield from _diginetica_events(_diginetica_views(path))


def _diginetica_views(path: Path) -> list[_DigiRow]:
    rows: list[_DigiRow] = []
    with _open(path) as f:
        r = csv.reader(f, delimiter=";")
        pos = _need(next(r, None), ("session_id", "item_id", "timeframe", "eventdate"), path, "diginetica")
        s, i, tf, d = pos["session_id"], pos["item_id"], pos["timeframe"], pos["eventdate"]
        u = pos.get("user_id")
        days: dict[str, float] = {}
        for row in r:
            if not row:
                continue
            day = days.get(row[d])
            if day is None:
                day = days[row[d]] = datetime.strptime(row[d], "%Y-%m-%d").replace(
                    tzinfo=timezone.utc).timestamp()
            uid = row[u] if u is not None and row[u] not in ("", "NA") else None
            rows.append((row[s], int(row[tf]), row[i], uid, day, "view"))
    return rows


def _diginetica_events(rows: list[_DigiRow]) -> Iterator[Event]:
    # the file's rows are not in timeframe order within a session: sort as SR-GNN does (stable:
    # a purchase follows a view of the same timeframe)
    rows.sort(key=lambda x: (x[0].zfill(12), x[1]))
    for sid, tf_ms, item, uid, day, kind in rows:
        yield Event(sid, item, day + tf_ms / 1000.0, kind, uid)


DIGINETICA_VIEWS = ("train-item-views.csv", "train-item-views.csv.gz", "sample_train-item-views.csv")
DIGINETICA_PURCHASES = ("train-purchases.csv", "train-purchases.csv.gz")


def _beside(folder: Path, names: tuple[str, ...], what: str) -> Path:
    for name in names:
        if (folder / name).exists():
            return folder / name
    raise DatasetError(f"{folder}: no {what} file ({' or '.join(names)})")


def _diginetica_purchases(path: Path) -> Iterator[Event]:
    views = _beside(path, DIGINETICA_VIEWS, "Diginetica views") if path.is_dir() else path
    rows = _diginetica_views(views)
    start: dict[str, float] = {}  # session -> day of its first view (by timeframe)
    first: dict[str, int] = {}
    for sid, tf_ms, _, _, day, _ in rows:
        if sid not in first or tf_ms < first[sid]:
            first[sid], start[sid] = tf_ms, day
    buys = _beside(views.parent, DIGINETICA_PURCHASES, "Diginetica purchases")
    with _open(buys) as f:
        r = csv.reader(f, delimiter=";")
        pos = _need(next(r, None), ("sessionId", "timeframe", "itemId"), buys, "diginetica purchases")
        s, tf, i = pos["sessionId"], pos["timeframe"], pos["itemId"]
        u = pos.get("userId")
        for row in r:
            if row and row[s] in start:
                uid = row[u] if u is not None and row[u] not in ("", "NA") else None
                rows.append((row[s], int(row[tf]), row[i], uid, start[row[s]], "purchase"))
    yield from _diginetica_events(rows)


def _retailrocket(path: Path) -> Iterator[Event]:
    kinds = {"view": "view", "addtocart": "cart", "transaction": "purchase"}
    raw: list[tuple[float, str, str, str]] = []
    with _open(path) as f:
        r = csv.reader(f)
        pos = _need(next(r, None), ("timestamp", "visitorid", "event", "itemid"), path, "retailrocket")
        t, v, e, i = pos["timestamp"], pos["visitorid"], pos["event"], pos["itemid"]
        for row in r:
            if row:
                raw.append((int(row[t]) / 1000.0, row[v], kinds.get(row[e], "view"), row[i]))
    raw.sort(key=lambda x: x[0])
    last: dict[str, tuple[float, int]] = {}  # visitor -> (last ts, session number)
    for ts, visitor, kind, item in raw:
        prev = last.get(visitor)
        n = 0 if prev is None else (prev[1] + 1 if ts - prev[0] > SESSION_GAP_S else prev[1])
        last[visitor] = (ts, n)
        yield Event(f"{visitor}-{n}", item, ts, kind, visitor)


def _online_retail(path: Path) -> Iterator[Event]:
    for file in _files(path):
        with _open(file) as f:
            r = csv.reader(f)
            pos = _need(next(r, None), ("InvoiceNo", "StockCode", "Quantity", "InvoiceDate"), file,
                        "online-retail")
            inv, code, qty, date = pos["InvoiceNo"], pos["StockCode"], pos["Quantity"], pos["InvoiceDate"]
            price, cust = pos.get("UnitPrice"), pos.get("CustomerID")
            cache: dict[str, float] = {}
            for row in r:
                if not row or row[inv].startswith("C") or int(float(row[qty])) <= 0:
                    continue
                ts = cache.get(row[date])
                if ts is None:
                    ts = cache[row[date]] = datetime.fromisoformat(row[date]).replace(
                        tzinfo=timezone.utc).timestamp()
                p = float(row[price]) if price is not None and row[price] else None
                c = row[cust] if cust is not None and row[cust] not in ("", "NA") else None
                if c is not None and c.endswith(".0"):
                    c = c[:-2]
                yield Event(row[inv], row[code].strip(), ts, "purchase", c, None,
                            p if p is not None and p >= 0 else None)


def _columns(columns: dict[str, str] | None) -> dict[str, str]:
    names = {"session_id": "session_id", "item_id": "item_id", "timestamp": "timestamp"}
    names.update(columns or {})
    return names


def _generic(rows: Iterator[dict], path: Path, columns: dict[str, str] | None) -> Iterator[Event]:
    names = _columns(columns)
    for n, row in enumerate(rows, 1):
        obj = {k: row.get(v) for k, v in names.items()}
        for opt in ("event_type", "user_id", "category", "price"):
            if opt in row and row[opt] not in ("", None):
                obj[opt] = row[opt]
        if isinstance(obj.get("price"), str):
            try:
                obj["price"] = float(obj["price"])
            except ValueError:
                pass
        ts = obj.get("timestamp")
        if isinstance(ts, str):
            try:
                obj["timestamp"] = float(ts)
            except ValueError:
                pass  # ISO-8601, parsed by validate
        ev = validate(obj)
        if isinstance(ev, Invalid):
            raise DatasetError(f"{path}: record {n}: {ev.reason} {ev.detail}".rstrip())
        yield ev


def _csv(path: Path, columns: dict[str, str] | None) -> Iterator[Event]:
    with _open(path) as f:
        r = csv.DictReader(f)
        _need(r.fieldnames, _columns(columns).values(), path, "csv")
        yield from _generic(r, path, columns)


def _jsonl(path: Path, columns: dict[str, str] | None) -> Iterator[Event]:
    def rows() -> Iterator[dict]:
        with _open(path) as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        yield orjson.loads(line)
                    except orjson.JSONDecodeError as exc:
                        raise DatasetError(f"{path}: line {n}: not JSON ({exc})") from None

    yield from _generic(rows(), path, columns)


def read_events(
    path: str | Path,
    fmt: str,
    order: str = "time",
    columns: dict[str, str] | None = None,
    limit: int | None = None,
) -> Iterator[Event]:
    """Events of a dataset file (or folder, for ``online-retail``) in stream order.

    Parameters
    ----------
    path, fmt
        The file and its format (one of :data:`FORMATS`).
    order
        ``"time"`` (event-time order, stable) or ``"file"``.
    columns
        For ``csv``/``jsonl``: contract field -> column name, e.g. ``{"item_id": "sku"}``.
    limit
        Stop after this many events.
    """
    path = Path(path)
    if fmt not in FORMATS:
        raise DatasetError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if order not in ("time", "file"):
        raise DatasetError("order must be 'time' or 'file'")
    if fmt != "online-retail":
        _files(path)
    gen: Iterator[Event]
    try:
        if fmt == "rsc15":
            gen = _rsc15(path)
        elif fmt == "diginetica":
            gen = _diginetica(path)
        elif fmt == "diginetica-purchases":
            gen = _diginetica_purchases(path)
        elif fmt == "retailrocket":
            gen = _retailrocket(path)
        elif fmt == "online-retail":
            gen = _online_retail(path)
        elif fmt == "csv":
            gen = _csv(path, columns)
        else:
            gen = _jsonl(path, columns)
        if order == "time":
            events = list(gen)
            events.sort(key=lambda e: e.timestamp)  # stable
            gen = iter(events)
        for n, ev in enumerate(gen):
            if limit is not None and n >= limit:
                return
            yield ev
    except (ValueError, IndexError, KeyError) as exc:
        if isinstance(exc, DatasetError):
            raise
        raise DatasetError(f"{path}: cannot read as {fmt}: {exc}") from exc
