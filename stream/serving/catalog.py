"""The item catalogue: availability, category and price per item id, from a file or a compacted topic.

A catalogue record is keyed by the item id; its value is a JSON object::

    {"available": true, "category": "shoes", "price": 19.9}

(every field optional; other fields are ignored). A tombstone (null value) deletes the item. A
file (``--catalog FILE``) holds the same records: jsonl with one object per line carrying
``item_id`` plus the value's fields, or csv with those column names.

Every worker reads the whole catalogue topic from the beginning and then follows it
(:class:`CatalogFollower`: all partitions assigned, no consumer group): it is a global table, not
partitioned like the clicks. :func:`decode` never raises; a bad record gets one of
:data:`REASONS` and goes to the dead-letter topic. Memory is bounded: at most ``max_items``
items are held (deleted ones included, the oldest deletions forgotten first).
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from stream.events import MAX_CATEGORY_CHARS, MAX_PAYLOAD_BYTES, Invalid, valid_id
from stream.state.items import DEFAULT_MAX_ITEMS

log = logging.getLogger("streamrec.catalog")

#: Every way a catalogue record can be wrong (the dead-letter ``error`` header).
REASONS = ("bad_key", "too_large", "not_utf8", "bad_json", "not_object", "bad_available",
           "bad_category", "bad_price", "catalog_full")


#: How a catalogue topic is created when streamrec creates it: compacted (the last value per item).
TOPIC_CONFIGS = {"cleanup.policy": "compact"}


class ItemInfo(NamedTuple):
    available: bool = True
    category: str | None = None
    price: float | None = None

    def to_json(self) -> bytes:
        """The topic value: the fields that are set.

        >>> ItemInfo(False, "shoes").to_json(), ItemInfo(price=2.5).to_json()
        (b'{"available":false,"category":"shoes"}', b'{"available":true,"price":2.5}')
        """
        d: dict[str, Any] = {"available": self.available}
        if self.category is not None:
            d["category"] = self.category
        if self.price is not None:
            d["price"] = self.price
        return orjson.dumps(d)


#: What a tombstone leaves: a deleted item is never served.
DELETED = ItemInfo(False, None, None)

_TRUE = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def parse_fields(d: dict[str, Any]) -> ItemInfo | Invalid:
    """An :class:`ItemInfo` from a record's fields (csv strings accepted for every field).

    >>> parse_fields({"available": False, "category": "shoes", "price": 9.5})
    ItemInfo(available=False, category='shoes', price=9.5)
    >>> parse_fields({"available": "yes"}), parse_fields({"price": "x"}).reason
    (ItemInfo(available=True, category=None, price=None), 'bad_price')
    """
    available = d.get("available", True)
    if type(available) is str:
        available = _TRUE.get(available.strip().lower(), available)
    if type(available) is not bool:
        return Invalid("bad_available", repr(available)[:80])
    category = d.get("category")
    if category == "":
        category = None
    if category is not None and not valid_id(category, MAX_CATEGORY_CHARS):
        return Invalid("bad_category", repr(category)[:80])
    price = d.get("price")
    if price == "":
        price = None
    if price is not None:
        try:
            if type(price) is bool:
                raise ValueError
            price = float(price)
        except (TypeError, ValueError):
            return Invalid("bad_price", repr(price)[:80])
        if not math.isfinite(price):
            return Invalid("bad_price", repr(price)[:80])
    return ItemInfo(available, category, price)


def decode(key: bytes | None, value: bytes | None) -> tuple[str, ItemInfo | None] | Invalid:
    """A topic record as ``(item_id, info)``, ``info`` ``None`` for a tombstone.

    >>> decode(b"i1", b'{"available": false}')
    ('i1', ItemInfo(available=False, category=None, price=None))
    >>> decode(b"i1", None), decode(None, b"{}").reason, decode(b"i1", b"[1]").reason
    (('i1', None), 'bad_key', 'not_object')
    """
    try:
        item_id = key.decode("utf-8") if key is not None else None
    except UnicodeDecodeError:
        return Invalid("bad_key")
    if not valid_id(item_id):
        return Invalid("bad_key")
    if value is None:
        return item_id, None  # type: ignore[return-value]
    if len(value) > MAX_PAYLOAD_BYTES:
        return Invalid("too_large")
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return Invalid("not_utf8")
    try:
        d = orjson.loads(value)
    except orjson.JSONDecodeError:
        return Invalid("bad_json")
    if type(d) is not dict:
        return Invalid("not_object")
    info = parse_fields(d)
    if isinstance(info, Invalid):
        return info
    return item_id, info  # type: ignore[return-value]


def read_file(path: str | Path) -> Iterator[tuple[str, ItemInfo] | Invalid]:
    """The records of a jsonl or csv catalogue file (by extension: ``.csv`` is csv), in order."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                yield _record(row)
        return
    with path.open("rb") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                d = orjson.loads(line)
            except orjson.JSONDecodeError:
                yield Invalid("bad_json")
                continue
            yield _record(d) if type(d) is dict else Invalid("not_object")


def _record(d: dict[str, Any]) -> tuple[str, ItemInfo] | Invalid:
    item_id = d.get("item_id")
    if not valid_id(item_id):
        return Invalid("bad_key")
    info = parse_fields(d)
    return info if isinstance(info, Invalid) else (item_id, info)  # type: ignore[return-value]


class Catalog:
    """Item id -> :class:`ItemInfo`, bounded; items it does not know are served (a catalogue may lag
    the clicks), deleted and unavailable ones are not.

    >>> c = Catalog(max_items=2)
    >>> c.apply("a", ItemInfo(True, "shoes")), c.apply("b", ItemInfo(False)), c.apply("c", ItemInfo())
    (None, None, 'catalog_full')
    >>> c.allowed("a"), c.allowed("b"), c.allowed("z"), c.counts()
    (True, False, True, (1, 1))
    >>> c.apply("a", None); c.allowed("a"), c.counts()
    (False, (0, 1))
    """

    def __init__(self, max_items: int = DEFAULT_MAX_ITEMS) -> None:
        self.max_items = max_items
        self.items: dict[str, ItemInfo] = {}
        self.updates = 0
        self._unavailable = 0
        self._deleted = 0

    def apply(self, item_id: str, info: ItemInfo | None) -> str | None:
        """Set (or with ``None`` delete) an item; returns a reason code if it was refused."""
        items = self.items
        old = items.get(item_id)
        if info is None:
            info = DELETED
        if old is None and len(items) >= self.max_items and not self._forget_deleted():
            return "catalog_full"
        self.updates += 1
        if old is not None:
            self._count(old, -1)
            if info is DELETED:  # move to the end: the oldest deletions are forgotten first
                del items[item_id]
        items[item_id] = info
        self._count(info, 1)
        return None

    def _count(self, info: ItemInfo, sign: int) -> None:
        if info is DELETED:
            self._deleted += sign
        elif not info.available:
            self._unavailable += sign

    def _forget_deleted(self) -> bool:
        if not self._deleted:
            return False
        for k, v in self.items.items():
            if v is DELETED:
                del self.items[k]
                self._deleted -= 1
                return True
        return False

    def allowed(self, item_id: str) -> bool:
        info = self.items.get(item_id)
        return info is None or info.available

    def get(self, item_id: str) -> ItemInfo | None:
        info = self.items.get(item_id)
        return None if info is DELETED else info

    def counts(self) -> tuple[int, int]:
        """``(available, unavailable)`` items held (deleted ones are neither)."""
        return len(self.items) - self._unavailable - self._deleted, self._unavailable

    def load_file(self, path: str | Path) -> tuple[int, dict[str, int]]:
        """Apply a catalogue file; returns the records applied and the refused ones per reason."""
        ok, bad = 0, {}
        for rec in read_file(path):
            why = rec.reason if isinstance(rec, Invalid) else self.apply(*rec)
            if why is None:
                ok += 1
            else:
                bad[why] = bad.get(why, 0) + 1
        return ok, bad


class CatalogFollower:
    """Reads a catalogue topic from the beginning into a :class:`Catalog` and follows it.

    Every partition is assigned (no group): each worker holds the whole table. :meth:`poll`
    applies what has arrived without waiting; call it before each click poll, so a change is in
    force for every list published or served from then on. Bad records go to ``dead_letter``
    (headers ``error`` = reason code, ``source`` = ``catalog``) and ``bad`` counts them.
    """

    def __init__(self, catalog: Catalog, client: dict[str, Any], topic: str,
                 dead_letter: str | None = None, producer: Any = None) -> None:
        from kafka import TopicPartition

        from stream.kafka import clients as kafka_io

        self.catalog = catalog
        self.topic = topic
        self.dead_letter = dead_letter
        self.producer = producer
        self.bad: dict[str, int] = {}
        self.consumer = kafka_io.make_consumer(client, group_id=None, enable_auto_commit=False)
        parts = self.consumer.partitions_for_topic(topic)
        if not parts:
            kafka_io.ensure_topic(client, topic, 1, configs=TOPIC_CONFIGS)
            parts = self.consumer.partitions_for_topic(topic) or {0}
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        self.consumer.assign(tps)
        self.consumer.seek_to_beginning(*tps)
        self._tps = tps

    def poll(self, timeout_ms: int = 0) -> int:
        """Apply the records that have arrived; returns how many."""
        n = 0
        batch = self.consumer.poll(timeout_ms=timeout_ms, max_records=50_000)
        apply = self.catalog.apply
        for recs in batch.values():
            for r in recs:
                d = decode(r.key, r.value)
                why = d.reason if isinstance(d, Invalid) else apply(*d)
                if why is not None:
                    self._dead_letter(r, why)
                n += 1
        return n

    def catch_up(self, timeout_s: float = 30.0) -> int:
        """Poll until every partition's position reaches its end offset at call time."""
        import time

        ends = self.consumer.end_offsets(self._tps)
        deadline = time.monotonic() + timeout_s
        n = 0
        while time.monotonic() < deadline:
            if all(self.consumer.position(tp) >= end for tp, end in ends.items()):
                break
            n += self.poll(200)
        return n

    def _dead_letter(self, rec: Any, why: str) -> None:
        self.bad[why] = self.bad.get(why, 0) + 1
        if self.producer is not None and self.dead_letter:
            self.producer.send(self.dead_letter, key=rec.key, value=rec.value if rec.value is not None else b"",
                               headers=[("error", why.encode()), ("source", b"catalog")])

    def close(self) -> None:
        self.consumer.close()
