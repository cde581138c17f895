"""Checkpoints of the worker's state, and the offset bookkeeping that keeps them exact.

One snapshot file holds everything the worker has learned, together with the Kafka positions
it reflects: the :class:`~stream.processing.core.ClickProcessor`'s model, session store, item index,
prequential stats and drift monitor, a dict of *next* offsets per partition, and
``events_applied`` (the ``streamrec_state_events_applied`` gauge). Because state and offsets
are written in one file, a restart resumes exactly where the state stops (the format and the
offset bookkeeping share one module, just over 400 lines, because each is correct only with the other):

* the snapshot's offset of a partition is the truth; records below it are already in the state
  and are skipped (dedupe by offset), so an event is never applied twice;
* offsets are committed to Kafka only with values from the last *durable* snapshot, so after a
  crash the committed offsets never skip an event missing from the restored state;
* partitions the snapshot does not know start from the group's committed offset.

Writes are atomic (temporary file, fsync, ``os.replace``, fsync of the directory); the
previous good snapshot is kept as ``state.ckpt.prev`` and used when the current one is
corrupt, truncated or from an incompatible format version (refused with a clear message).

Dead letters written between the last snapshot and a crash are written again on replay: the
dead-letter topic may hold duplicates after a crash, but every refused source offset is there.

File layout: ``MAGIC`` (16 bytes), format version (u16), body length (u64), SHA-256 of the
body (32 bytes), then the body: a pickle of a plain dict. Pickle is trusted input here (the
state directory is the worker's own); never point ``--state-dir`` at files from elsewhere.
"""

from __future__ import annotations

import gc
import hashlib
import io
import logging
import os
import pickle
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from stream.config import log_event

log = logging.getLogger("streamrec.checkpoint")

MAGIC = b"STREAMREC-CKPT\x00\x01"
#: Bump when the body's layout changes incompatibly; older/newer files are refused.
#: 2: the rule models (SR, AR, Markov) keep their rows as bytes (either kind of rows reads them).
FORMAT_VERSION = 2
_HEADER = struct.Struct(">HQ32s")
CURRENT = "state.ckpt"
PREVIOUS = "state.ckpt.prev"
#: A checkpoint is due after this many consumed messages or seconds, whichever comes first.
EVERY_EVENTS = 10_000
EVERY_SECONDS = 30.0

#: The parts of a ClickProcessor that make up its state (the latency ring is not state).
PROCESSOR_FIELDS = ("model", "sessions", "items", "preq", "monitor", "events", "_known")


class CheckpointError(Exception):
    """A snapshot that cannot be used: corrupt, truncated or of another format version."""


@dataclass
class Snapshot:
    """What one checkpoint holds."""

    state: dict[str, Any]
    offsets: dict[tuple[str, int], int]
    events_applied: int
    created: float = field(default_factory=time.time)
    extras: dict[str, Any] = field(default_factory=dict)
    version: int = FORMAT_VERSION


def pack_sessions(store: Any) -> dict[str, Any]:
    """A :class:`~stream.state.sessions.SessionStore` as a few flat arrays (pickling 100k ``Session``
    objects one by one is ~20x slower). ``on_end`` is not kept: :func:`restore` rewires it."""
    ss = list(store.sessions())
    n = len(ss)
    items_len = np.fromiter((len(s.items) for s in ss), dtype=np.int32, count=n)
    recs_len = np.fromiter((len(s.last_recs) for s in ss), dtype=np.int32, count=n)
    return {
        "attrs": {k: v for k, v in vars(store).items() if k not in ("_live", "on_end")},
        "ids": [s.session_id for s in ss],
        "key": np.fromiter((s.key for s in ss), dtype=np.int64, count=n),
        "last_ts": np.fromiter((s.last_ts for s in ss), dtype=np.float64, count=n),
        "started_ts": np.fromiter((s.started_ts for s in ss), dtype=np.float64, count=n),
        "clicks": np.fromiter((s.clicks for s in ss), dtype=np.int64, count=n),
        "items_len": items_len,
        "items": np.fromiter(chain.from_iterable(s.items for s in ss), dtype=np.int32,
                             count=int(items_len.sum())),
        "recs_len": recs_len,
        "recs": np.fromiter(chain.from_iterable(s.last_recs for s in ss), dtype=np.int32,
                            count=int(recs_len.sum())),
    }


def unpack_sessions(d: dict[str, Any]) -> Any:
    """The inverse of :func:`pack_sessions` (sessions in the same LRU order)."""
    from collections import OrderedDict

    from stream.state.sessions import Session, SessionStore

    store = SessionStore.__new__(SessionStore)
    store.__dict__.update(d["attrs"])
    store.on_end = None
    live: OrderedDict[str, Session] = OrderedDict()
    items = d["items"].tolist()
    recs = d["recs"].tolist()
    ia = ra = 0
    for sid, key, last_ts, started, clicks, ni, nr in zip(
            d["ids"], d["key"].tolist(), d["last_ts"].tolist(), d["started_ts"].tolist(),
            d["clicks"].tolist(), d["items_len"].tolist(), d["recs_len"].tolist()):
        s = Session(key, sid, started)
        s.last_ts = last_ts
        s.clicks = clicks
        s.items = items[ia:ia + ni]
        s.last_recs = recs[ra:ra + nr]
        ia += ni
        ra += nr
        live[sid] = s
    store._live = live
    return store


def _detached() -> None:
    """Stands in for the live processor inside a snapshot (see :func:`restore`)."""
    return None


def _dispatch() -> dict[type, Callable[[Any], Any]]:
    """Per-type reducers for the C pickler: session stores go columnar; a processor referenced
    from inside the state (the drift monitor holds one) is left out and rewired on restore."""
    from stream.processing.core import ClickProcessor
    from stream.state.sessions import SessionStore

    return {
        SessionStore: lambda store: (unpack_sessions, (pack_sessions(store),)),
        ClickProcessor: lambda _p: (_detached, ()),
    }


def encode(snap: Snapshot) -> bytes:
    """The file bytes of ``snap`` (header + pickled body).

    >>> s = Snapshot({"x": 1}, {("t", 0): 5}, 3, created=0.0)
    >>> decode(encode(s)) == s
    True
    """
    buf = io.BytesIO()
    enabled = gc.isenabled()
    gc.disable()  # many small objects: the cyclic GC would run again and again
    try:
        pickler = pickle.Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL)
        pickler.dispatch_table = _dispatch()
        pickler.dump({
            "state": snap.state, "offsets": dict(snap.offsets), "events_applied": snap.events_applied,
            "created": snap.created, "extras": snap.extras,
        })
        body = buf.getvalue()
    finally:
        if enabled:
            gc.enable()
    return MAGIC + _HEADER.pack(snap.version, len(body), hashlib.sha256(body).digest()) + body


def decode(data: bytes) -> Snapshot:
    """Parse and verify snapshot bytes; raises :class:`CheckpointError` saying what is wrong.

    >>> decode(b"junk")
    Traceback (most recent call last):
    ...
    stream.state.checkpoint.CheckpointError: not a streamrec checkpoint (bad magic bytes)
    """
    head = len(MAGIC) + _HEADER.size
    if len(data) < head or not data.startswith(MAGIC):
        raise CheckpointError("not a streamrec checkpoint (bad magic bytes)")
    version, length, digest = _HEADER.unpack_from(data, len(MAGIC))
    if version != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint format version {version} is not supported "
                              f"(this streamrec reads version {FORMAT_VERSION})")
    body = data[head:]
    if len(body) != length:
        raise CheckpointError(f"truncated checkpoint: body has {len(body)} of {length} bytes")
    if hashlib.sha256(body).digest() != digest:
        raise CheckpointError("corrupt checkpoint: checksum mismatch")
    enabled = gc.isenabled()
    gc.disable()
    try:
        d = pickle.loads(body)  # noqa: S301 - our own file, verified by checksum
        return Snapshot(d["state"], {(t, int(p)): int(o) for (t, p), o in d["offsets"].items()},
                        int(d["events_applied"]), float(d["created"]), d.get("extras", {}), version)
    except Exception as exc:  # noqa: BLE001 - e.g. a class that no longer exists
        raise CheckpointError(f"checkpoint body cannot be loaded: {type(exc).__name__}: {exc}") from exc
    finally:
        if enabled:
            gc.enable()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SnapshotFiles:
    """``state.ckpt`` and its fallback ``state.ckpt.prev`` in ``state_dir``.

    Examples
    --------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> files = SnapshotFiles(d)
    >>> files.load() is None
    True
    >>> n = files.write(Snapshot({"a": 1}, {("t", 0): 10}, 10))
    >>> n = files.write(Snapshot({"a": 2}, {("t", 0): 20}, 20))
    >>> _ = (files.dir / "state.ckpt").write_bytes(b"garbage")   # the current one is damaged
    >>> files.load().events_applied                                # the previous good one is used
    10
    """

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.dir = Path(state_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.current = self.dir / CURRENT
        self.previous = self.dir / PREVIOUS

    def write(self, snap: Snapshot) -> int:
        """Write ``snap`` atomically; the old current file becomes the fallback. Returns bytes."""
        data = encode(snap)
        tmp = self.dir / f".{CURRENT}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if self.current.exists():
            os.replace(self.current, self.previous)
        os.replace(tmp, self.current)
        _fsync_dir(self.dir)
        return len(data)

    def load(self) -> Snapshot | None:
        """The newest usable snapshot, or ``None`` if there is none (a fresh start)."""
        for path in (self.current, self.previous):
            if not path.exists():
                continue
            try:
                snap = decode(path.read_bytes())
            except (CheckpointError, OSError) as exc:
                log_event(log, "refusing checkpoint", level=logging.ERROR, path=str(path), error=str(exc))
                continue
            if path is self.previous:
                log_event(log, "using the previous good checkpoint", level=logging.WARNING, path=str(path))
            return snap
        return None


def capture(processor: Any) -> dict[str, Any]:
    """The state-bearing attributes of a ClickProcessor (shared references kept by pickle)."""
    return {name: getattr(processor, name) for name in PROCESSOR_FIELDS if hasattr(processor, name)}


def restore(processor: Any, state: dict[str, Any]) -> None:
    """Put ``state`` (from :func:`capture`) back on ``processor``."""
    for name, value in state.items():
        setattr(processor, name, value)
    monitor = state.get("monitor")
    if monitor is not None and hasattr(processor, "sessions"):
        processor.sessions.on_end = monitor.session_ended
    if monitor is not None and hasattr(monitor, "attach"):
        monitor.attach(processor)  # the monitor's reference to the processor was not pickled


@dataclass
class CheckpointStats:
    bytes: int
    seconds: float
    events_applied: int


class Checkpointer:
    """Offset bookkeeping and snapshot cadence for the worker loop.

    Parameters
    ----------
    state_dir
        Where snapshots live; ``None`` keeps the bookkeeping in memory only (offsets can then be
        committed after every batch).
    every_events
        Snapshot after this many records (valid or not) since the last one.
    every_seconds
        ... or after this long, whichever comes first (only if something was consumed).

    Examples
    --------
    >>> c = Checkpointer(None)
    >>> c.floor(("t", 0)), c.fresh(("t", 0), [3, 4, 5])
    (-1, [3, 4, 5])
    >>> c.advance(("t", 0), 6)
    >>> c.fresh(("t", 0), [4, 5, 6, 7])   # 4 and 5 are already in the state
    [6, 7]
    """

    def __init__(self, state_dir: str | os.PathLike[str] | None, every_events: int = EVERY_EVENTS,
                 every_seconds: float = EVERY_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.files = SnapshotFiles(state_dir) if state_dir is not None else None
        self.every_events = every_events
        self.every_seconds = every_seconds
        self.clock = clock
        self.offsets: dict[tuple[str, int], int] = {}  # next offset reflected in the live state
        self.durable: dict[tuple[str, int], int] = {}  # next offsets in the last written snapshot
        self.extras: dict[str, tuple[Callable[[], Any], Callable[[Any], None]]] = {}
        self.since = 0  # records advanced since the last snapshot
        self.last_at = clock()
        self.last: CheckpointStats | None = None
        self.snapshots = 0

    @property
    def enabled(self) -> bool:
        return self.files is not None

    def register(self, name: str, get: Callable[[], Any], put: Callable[[Any], None]) -> None:
        """Snapshot extra state (e.g. another module's) under ``name``: ``get()`` on save,
        ``put(value)`` on restore."""
        self.extras[name] = (get, put)

    # -- offsets ------------------------------------------------------------------------------

    def floor(self, tp: tuple[str, int]) -> int:
        """The next offset already reflected in the state (-1: none known)."""
        return self.offsets.get((tp[0], tp[1]), -1)

    def fresh(self, tp: tuple[str, int], records: list[Any]) -> list[Any]:
        """``records`` of ``tp`` not yet reflected in the state (accepts ints or records)."""
        floor = self.offsets.get((tp[0], tp[1]))
        if floor is None or not records:
            return records
        first = records[0] if isinstance(records[0], int) else records[0].offset
        if first >= floor:
            return records
        if isinstance(records[0], int):
            return [r for r in records if r >= floor]
        return [r for r in records if r.offset >= floor]

    def advance(self, tp: tuple[str, int], next_offset: int, n: int = 0) -> None:
        """The state now reflects ``tp`` up to ``next_offset`` (exclusive), ``n`` more records."""
        key = (tp[0], tp[1])
        if next_offset > self.offsets.get(key, -1):
            self.offsets[key] = next_offset
        self.since += n

    def committable(self, partitions: Iterable[tuple[str, int]] | None = None) -> dict[tuple[str, int], int]:
        """Offsets safe to commit: the durable snapshot's (or the live ones without a state dir)."""
        src = self.durable if self.enabled else self.offsets
        if partitions is None:
            return dict(src)
        keys = {(t, p) for t, p in partitions}
        return {k: v for k, v in src.items() if k in keys}

    # -- snapshots ----------------------------------------------------------------------------

    def due(self) -> bool:
        if not self.enabled or self.since == 0:
            return False
        return self.since >= self.every_events or self.clock() - self.last_at >= self.every_seconds

    def save(self, processor: Any) -> CheckpointStats | None:
        """Write a snapshot of ``processor`` and the live offsets; they become committable."""
        if self.files is None:
            return None
        t0 = time.perf_counter()
        extras = {name: get() for name, (get, _) in self.extras.items()}
        snap = Snapshot(capture(processor), dict(self.offsets), int(processor.events), extras=extras)
        n = self.files.write(snap)
        self.durable = dict(snap.offsets)
        self.since = 0
        self.last_at = self.clock()
        self.snapshots += 1
        self.last = CheckpointStats(n, time.perf_counter() - t0, snap.events_applied)
        log.debug("checkpoint written: %d bytes in %.3f s", n, self.last.seconds)
        return self.last

    def load(self, processor: Any) -> Snapshot | None:
        """Restore the newest usable snapshot into ``processor``; ``None`` on a fresh start."""
        if self.files is None:
            return None
        snap = self.files.load()
        if snap is None:
            return None
        restore(processor, snap.state)
        for name, value in snap.extras.items():
            if name in self.extras:
                self.extras[name][1](value)
        self.offsets = dict(snap.offsets)
        self.durable = dict(snap.offsets)
        self.since = 0
        self.last_at = self.clock()
        log_event(log, "restored checkpoint", events_applied=snap.events_applied,
                  partitions={f"{t}:{p}": o for (t, p), o in sorted(snap.offsets.items())},
                  age_s=round(time.time() - snap.created, 1))
        return snap
