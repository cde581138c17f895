"""item2vec: word2vec skip-gram trained in batch on sessions, served as a neighbour lookup.

Why one long module: the buffer, the background training and the neighbour table it swaps in
are one model's state, kept together so the swap stays one assignment.

This is the model of Cloudera Fast Forward's report *Session-based Recommender Systems* (FF19):
items are words, sessions are sentences, gensim's ``Word2Vec`` (skip-gram) learns one vector per
item and a session is recommended the items whose vectors are most cosine-similar to the vector
of its last item. FF19 recommends with ``similar_by_vector(last_item, topn=K)``, which leaves the
query item itself out of its own list; so does this model.

It is a *batch* model in a streaming system:

* ``learn_one`` only appends the click to a bounded training buffer (sessions in arrival order,
  at most ``max_events`` clicks, oldest sessions dropped first) and counts popularity; it never
  touches the vectors.
* :meth:`Item2Vec.fit` / :meth:`Item2Vec.retrain` train gensim on sessions and precompute every
  item's ``topk`` nearest neighbours (FF19's serving advice), so :meth:`Item2Vec.recommend` is a
  dict lookup plus a slice. :meth:`Item2Vec.start_retrain` does the same in a background thread
  (gensim's C core releases the GIL) and swaps the new neighbour table in with one assignment;
  the old table serves until then.
* ``warmup`` > 0 makes the model start its first background training by itself once the buffer
  holds that many clicks (the worker's "train at start"); ``retrain_every`` > 0 retrains every so
  many clicks after that. Leave ``retrain_every`` at 0 when the drift policy schedules
  retraining: it calls :meth:`Item2Vec.retrain_from` with its buffer of recent clicks.

Items first clicked after the last training have no vector until the next one. Until then the
model **falls back** to the neighbours of the most recent item of the session that does have a
vector, and, when no item of the session has one (or the neighbour list is short), to the most
popular items (decayed click counts, ``half_life``), exactly as the rule models fill short lists.
:meth:`Item2Vec.has_vector` tells a drift monitor which items are new *to this model*.

gensim is an optional dependency (``pip install 'streamrec[item2vec]'``); it is imported when an
``Item2Vec`` is built (not when streamrec is), so a missing gensim fails at start-up with the
command to install it, and the first background training does not pay for the import.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from stream.models.base import DEFAULT_K, BackgroundTrained, WeightsClicks
from stream.models.pop import PopularityCounts, fill

#: gensim's own defaults for the parameters this model exposes (gensim 4 names).
GENSIM_DEFAULTS: dict[str, Any] = {
    "vector_size": 100,
    "window": 5,
    "negative": 5,
    "ns_exponent": 0.75,
    "epochs": 5,
}

#: FF19's best hyperparameters (Ray Tune, 539 trials; validation Recall@10) with 100 epochs.
FF19_TUNED: dict[str, Any] = {"window": 13, "negative": 16, "ns_exponent": 0.6, "epochs": 100}

#: The default: gensim's defaults but 20 epochs. A fit on a window of recent clicks (a few thousand
#: sessions, as every retraining and challenger fit is) is undertrained at gensim's 5 epochs: its
#: lists are worse, and two fits on nearly the same window differ by as much as the policies
#: that choose between them.
STREAM: dict[str, Any] = {"epochs": 20}

PRESETS: dict[str, dict[str, Any]] = {"stream": STREAM, "gensim": {}, "ff19": FF19_TUNED}

QUERIES = ("last", "mean")


def _word2vec() -> Any:
    """gensim's ``Word2Vec`` class, imported on first use."""
    try:
        from gensim.models import Word2Vec
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the item2vec model needs gensim: pip install 'streamrec[item2vec]' (or gensim>=4.3)"
        ) from exc
    return Word2Vec


class NeighbourTable:
    """The product of one training: item vectors and each item's precomputed neighbours.

    Immutable once built, so a serving thread can keep using an old table while a new one is
    built; the model swaps tables with one attribute assignment.

    Parameters
    ----------
    items
        Item ints, one per row of ``vectors``.
    vectors
        Item vectors, any scale (rows are normalised here).
    topk
        Neighbours kept per item (the item itself is never its own neighbour).

    Examples
    --------
    >>> t = NeighbourTable(np.array([7, 8, 9]), np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]]), topk=2)
    >>> t.neighbours(7), t.neighbours(9), t.neighbours(5)
    ([8, 9], [8, 7], [])
    """

    __slots__ = ("items", "unit", "row", "nbrs", "topk")

    #: Upper bound on the floats of one block of the similarity matrix (64 MB at float32).
    BLOCK_FLOATS = 1 << 24

    def __init__(self, items: np.ndarray, vectors: np.ndarray, topk: int = 50) -> None:
        self.items = np.asarray(items, dtype=np.int64)
        v = np.asarray(vectors, dtype=np.float32)
        norms = np.linalg.norm(v, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        self.unit = v / norms
        self.row: dict[int, int] = {int(i): r for r, i in enumerate(self.items.tolist())}
        n = len(self.items)
        self.topk = kk = max(0, min(topk, n - 1))
        self.nbrs: list[list[int]] = []
        if kk == 0:
            self.nbrs = [[] for _ in range(n)]
            return
        unit = self.unit
        block = max(1, self.BLOCK_FLOATS // max(n, 1))
        out = np.empty((n, kk), dtype=np.int64)
        for start in range(0, n, block):
            stop = min(n, start + block)
            sims = unit[start:stop] @ unit.T
            sims[np.arange(stop - start), np.arange(start, stop)] = -np.inf  # not its own neighbour
            part = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
            part_sims = np.take_along_axis(sims, part, axis=1)
            order = np.argsort(-part_sims, axis=1, kind="stable")
            out[start:stop] = np.take_along_axis(part, order, axis=1)
        self.nbrs = self.items[out].tolist()

    def __len__(self) -> int:
        return len(self.items)

    def neighbours(self, item: int) -> list[int]:
        """The precomputed neighbours of ``item``, nearest first; ``[]`` if it has no vector."""
        r = self.row.get(item)
        return [] if r is None else self.nbrs[r]

    def nearest_to_mean(self, items: Sequence[int], k: int) -> list[int]:
        """The ``k`` items nearest (cosine) to the mean unit vector of ``items`` (those with a
        vector), leaving ``items`` themselves out."""
        rows = [self.row[i] for i in items if i in self.row]
        if not rows:
            return []
        q = self.unit[rows].mean(axis=0)
        sims = self.unit @ q
        sims[rows] = -np.inf
        kk = min(k, len(sims) - len(set(rows)))
        if kk <= 0:
            return []
        part = np.argpartition(-sims, kk - 1)[:kk]
        part = part[np.argsort(-sims[part], kind="stable")]
        return self.items[part].tolist()


class Item2Vec(BackgroundTrained, WeightsClicks):
    """Skip-gram word2vec on sessions (FF19's item2vec), recommending nearest neighbours.

    Parameters
    ----------
    vector_size, window, negative, ns_exponent, epochs, min_count
        gensim ``Word2Vec`` parameters under gensim's names. ``None`` takes the value from
        ``preset``, else gensim's default (100, 5, 5, 0.75, 5). ``min_count`` defaults to 1 as in
        FF19 (gensim's own default, 5, would leave every rarer item without a vector).
    preset
        ``"stream"`` (the default: gensim's defaults with 20 epochs, :data:`STREAM`), ``"gensim"``
        (gensim's defaults) or ``"ff19"``: FF19's tuned window 13, negative 16, ns_exponent 0.6
        and 100 epochs. Explicit parameters override the preset.
    sample, alpha
        gensim's down-sampling threshold and initial learning rate (gensim's defaults).
    seed, workers
        gensim's seed and worker threads (with more than one worker, training is not exactly
        reproducible; that is gensim's behaviour).
    topk
        Neighbours precomputed per item at training time; lists longer than this are filled
        with popular items.
    query
        ``"last"``: neighbours of the last item (FF19); ``"mean"``: items nearest to the mean
        vector of the session's ``recent`` last items that have vectors (not in FF19; costs a
        product with all item vectors per call instead of a lookup).
    recent
        How many recent items ``query="mean"`` averages.
    max_events
        Bound on the training buffer, in clicks; the oldest sessions are dropped first.
    warmup
        If > 0, the first training starts by itself once this many clicks were learned.
        0: only when asked (``fit``, ``retrain``, ``start_retrain``, ``retrain_from``).
    retrain_every
        If > 0, retrain again every this many learned clicks after the last training started.
        0: only when asked (e.g. by the drift policy, through :meth:`retrain_from`).
    background
        Trainings (automatic, and the drift policy's :meth:`retrain_from`) in a background thread
        (``True``) or synchronously (``False``: reproducible, for offline replays).
    half_life
        Half-life in event-time seconds of the popularity used as fallback (``None``: plain
        counts).

    A click's learning weight w repeats its item ``round(w)`` times (at least once) in the
    session's sentence of the training buffer, so skip-gram trains on its pairs that many times
    over, and multiplies its popularity count. Weights given to :meth:`retrain_from` clicks are
    not known (the drift policy's buffer keeps none): they count once.

    Attributes
    ----------
    training_seconds
        Wall time of the last completed training (gensim plus neighbour table), 0.0 before any.
    trained_at
        Wall-clock time (epoch seconds) when the last trained table was swapped in, or ``None``.
    trainings
        Completed trainings.
    trained_events
        Clicks in the corpus of the last training.

    Examples
    --------
    >>> m = Item2Vec(vector_size=8, window=2, epochs=50, negative=3, sample=0, topk=3, workers=1)
    >>> sessions = [[1, 2, 3], [4, 5, 6]] * 20
    >>> for key, s in enumerate(sessions):
    ...     for pos, item in enumerate(s):
    ...         m.learn_one(key, item, 0.0, s[:pos])
    >>> m.recommend([1], 0.0, k=2)  # untrained: popularity
    [1, 2]
    >>> _ = m.retrain()
    >>> sorted(m.recommend([1], 0.0, k=2)), sorted(m.recommend([4], 0.0, k=2))
    ([2, 3], [5, 6])
    >>> m.has_vector(99), sorted(m.recommend([5, 99], 0.0, k=2))  # 99 is new: falls back to 5
    (False, [4, 6])

    References
    ----------
    Cloudera Fast Forward, *Session-based Recommender Systems*, FF19 (2021);
    Barkan & Koenigstein, "Item2Vec: neural item embedding for collaborative filtering" (2016).
    """

    name = "item2vec"

    def __init__(
        self,
        vector_size: int | None = None,
        window: int | None = None,
        negative: int | None = None,
        ns_exponent: float | None = None,
        epochs: int | None = None,
        min_count: int = 1,
        preset: str = "stream",
        sample: float = 1e-3,
        alpha: float = 0.025,
        seed: int = 1,
        workers: int = 1,
        topk: int = 50,
        query: str = "last",
        recent: int = 5,
        max_events: int = 1_000_000,
        warmup: int = 10_000,
        retrain_every: int = 0,
        background: bool = True,
        half_life: float | None = 86_400.0,
    ) -> None:
        if preset not in PRESETS:
            raise ValueError(f"preset must be one of {tuple(PRESETS)}, got {preset!r}")
        if query not in QUERIES:
            raise ValueError(f"query must be one of {QUERIES}, got {query!r}")
        if topk < 1 or recent < 1 or max_events < 1 or workers < 1:
            raise ValueError("topk, recent, max_events and workers must be >= 1")
        if warmup < 0 or retrain_every < 0:
            raise ValueError("warmup and retrain_every must be >= 0")
        self.vector_size = vector_size
        self.window = window
        self.negative = negative
        self.ns_exponent = ns_exponent
        self.epochs = epochs
        self.min_count = min_count
        self.preset = preset
        self.sample = sample
        self.alpha = alpha
        self.seed = seed
        self.workers = workers
        self.topk = topk
        self.query = query
        self.recent = recent
        self.max_events = max_events
        self.warmup = warmup
        self.retrain_every = retrain_every
        self.background = background
        self.half_life = half_life
        _word2vec()  # fail now, with the install command, if gensim is missing

        self._buffer: OrderedDict[int, list[int]] = OrderedDict()  # session key -> clicks
        self._buffered = 0
        self._since_train = 0
        self._learned = 0
        self._started = 0  # trainings started (generation of the newest one)
        self._serving = 0  # generation of the table being served
        self._pop = PopularityCounts(half_life=half_life)
        self._table: NeighbourTable | None = None
        self._thread: threading.Thread | None = None
        self._busy = False  # a background training is running (guarded by _lock)
        self._pending: tuple[list[list[int]], int] | None = None  # the next one, queued
        self._lock = threading.Lock()
        self.training_seconds = 0.0
        self.trained_at: float | None = None
        self.trainings = 0
        self.trained_events = 0
        self.last_error: BaseException | None = None

    # -- configuration --------------------------------------------------------------------------

    def word2vec_params(self) -> dict[str, Any]:
        """The keyword arguments given to gensim's ``Word2Vec`` (skip-gram, ``sg=1``).

        >>> p = Item2Vec(preset="ff19", epochs=30).word2vec_params()
        >>> p["window"], p["negative"], p["ns_exponent"], p["epochs"], p["vector_size"], p["sg"]
        (13, 16, 0.6, 30, 100, 1)
        """
        out = dict(GENSIM_DEFAULTS)
        out.update(PRESETS[self.preset])
        for name in GENSIM_DEFAULTS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        out.update(
            sg=1, min_count=self.min_count, sample=self.sample, alpha=self.alpha,
            seed=self.seed, workers=self.workers,
        )
        return out

    # -- the SessionModel verbs -----------------------------------------------------------------

    def learn_one(self, session: int, item: int, timestamp: float, history: Sequence[int],
                  weight: float = 1.0) -> None:
        buf = self._buffer
        seq = buf.get(session)
        if seq is None:
            seq = buf[session] = []
        seq.append(item)
        self._buffered += 1
        if weight != 1.0:
            for _ in range(int(weight + 0.5) - 1):  # the token repeated: round(weight) times
                seq.append(item)
                self._buffered += 1
        while self._buffered > self.max_events and len(buf) > 1:
            _, old = buf.popitem(last=False)
            self._buffered -= len(old)
        self._pop.add(item, timestamp, weight)
        self._since_train += 1
        self._learned += 1
        if self._started:
            due = 0 < self.retrain_every <= self._since_train
        else:
            due = 0 < self.warmup <= self._learned
        if due and not self.training:
            if self.background:
                self.start_retrain()
            else:
                self.retrain()

    def recommend(
        self, history: Sequence[int], timestamp: float, k: int = DEFAULT_K, session: int | None = None
    ) -> list[int]:
        table = self._table  # one read: a concurrent swap cannot mix two tables
        recs: list[int] = []
        if table is not None and history:
            if self.query == "mean":
                recent = [i for i in reversed(history) if i in table.row][: self.recent]
                recs = table.nearest_to_mean(recent, k)
            else:
                row = table.row
                for i in reversed(history):  # the last item with a vector (FF19: the last item)
                    if i in row:
                        recs = table.nbrs[row[i]][:k]
                        break
        if len(recs) < k:
            recs = fill(list(recs), self._pop.top(k + len(recs)), k)
        return recs

    # -- training -------------------------------------------------------------------------------

    def has_vector(self, item: int) -> bool:
        """Whether the serving table has a vector for ``item`` (``False`` = new to this model)."""
        table = self._table
        return table is not None and item in table.row

    @property
    def trained(self) -> bool:
        return self._table is not None

    @property
    def training(self) -> bool:
        """A background training is running (or queued)."""
        return self._busy

    @property
    def vocabulary(self) -> int:
        """Items with a vector in the serving table."""
        table = self._table
        return 0 if table is None else len(table)

    def model_age(self, now: float | None = None) -> float | None:
        """Seconds since the serving table was swapped in (``None`` if never trained)."""
        if self.trained_at is None:
            return None
        return (time.time() if now is None else now) - self.trained_at

    def buffered_sessions(self) -> list[list[int]]:
        """A snapshot (copies) of the sessions in the training buffer, oldest first."""
        return [list(s) for s in self._buffer.values()]

    def build_table(self, sessions: Iterable[Sequence[int]]) -> NeighbourTable | None:
        """Train gensim on ``sessions`` and return the neighbour table (does not swap it in).

        Sessions shorter than 2 clicks carry no skip-gram pair and are left out. Returns
        ``None`` when nothing is left to train on.
        """
        corpus = [[str(i) for i in s] for s in sessions if len(s) >= 2]
        if not corpus:
            return None
        w2v = _word2vec()(**self.word2vec_params())
        w2v.build_vocab(corpus)
        if not len(w2v.wv):
            return None
        w2v.train(corpus, total_examples=w2v.corpus_count, epochs=w2v.epochs)
        wv = w2v.wv
        items = np.fromiter((int(key) for key in wv.index_to_key), dtype=np.int64, count=len(wv))
        return NeighbourTable(items, wv.vectors, topk=self.topk)

    def fit(self, sessions: Iterable[Sequence[int]]) -> Item2Vec:
        """Train synchronously on ``sessions`` (item-int sequences) and swap the table in.

        The training buffer is left as it is (see :meth:`retrain` to train on it).
        """
        t0 = time.perf_counter()
        sessions = list(sessions)
        with self._lock:
            self._started += 1
            generation = self._started
        table = self.build_table(sessions)
        self._swap(table, time.perf_counter() - t0, sum(len(s) for s in sessions), generation)
        return self

    def retrain(self) -> Item2Vec:
        """Train synchronously on the training buffer (what ``learn_one`` collected)."""
        self._since_train = 0
        return self.fit(self.buffered_sessions())

    def start_retrain(self, sessions: Iterable[Sequence[int]] | None = None) -> bool:
        """Train in a background thread on ``sessions`` (default: a snapshot of the buffer) and
        swap the new table in when done; the current table keeps serving meanwhile.

        Call it from the thread that calls ``learn_one`` (the snapshot is taken here). If a
        training is running, this one is queued and starts when it ends (a later request
        replaces a queued one: only the newest data matters), so a retrain the drift policy asks
        for is never lost. Returns ``True`` (started or queued).
        """
        snapshot = self.buffered_sessions() if sessions is None else [list(s) for s in sessions]
        with self._lock:
            self._since_train = 0
            self._started += 1
            if self._busy:
                self._pending = (snapshot, self._started)
                return True
            self._busy = True
            thread = threading.Thread(
                target=self._train_in_background, args=(snapshot, self._started),
                name="item2vec-train", daemon=True,
            )
            self._thread = thread
            thread.start()
            return True

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a background training; returns ``True`` if none is running any more."""
        t = self._thread
        if t is not None:
            t.join(timeout)
        return not self.training

    def retrain_from(self, events: Iterable[tuple[int, int, float]]) -> int:
        """The drift policy's hook: retrain in the background on ``(session key, item,
        timestamp)`` clicks (e.g. its buffer of recent clicks), grouped into sessions in order.

        The current table serves until the new one is swapped in (a training already running
        finishes first); with ``background=False`` it trains here and swaps before returning.
        Returns the clicks handed to the training.
        """
        sessions: dict[int, list[int]] = {}
        n = 0
        for key, item, _ in events:
            if item >= 0:
                sessions.setdefault(key, []).append(item)
                n += 1
        if not self.background:
            self._since_train = 0
            self.fit(sessions.values())
            return n
        return n if self.start_retrain(sessions.values()) else 0

    def _train_in_background(self, sessions: list[list[int]], generation: int) -> None:
        while True:
            t0 = time.perf_counter()
            try:
                table = self.build_table(sessions)
            except Exception as exc:  # keep serving the old table; surface the error
                self.last_error = exc
            else:
                self._swap(table, time.perf_counter() - t0, sum(len(s) for s in sessions), generation)
            with self._lock:
                if self._pending is None:
                    self._busy = False
                    return
                (sessions, generation), self._pending = self._pending, None

    def _swap(self, table: NeighbourTable | None, seconds: float, events: int, generation: int) -> None:
        with self._lock:
            if generation < self._serving:  # a newer training already finished: drop this one
                return
            self._serving = generation
            self.training_seconds = seconds
            self.trained_events = events
            self.trainings += 1
            self.last_error = None
            if table is not None:
                self._table = table
                self.trained_at = time.time()

    def __getstate__(self) -> dict[str, Any]:
        """Picklable (worker checkpoints): the lock and a running training thread are left out;
        a training still running is simply not in the snapshot."""
        state = self.__dict__.copy()
        state["_lock"] = None
        state["_thread"] = None
        state["_busy"] = False
        state["_pending"] = None
        state["last_error"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def clone(self) -> Item2Vec:
        """A fresh, untrained model with the same parameters."""
        return type(self)(**self.params())
