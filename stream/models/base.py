"""The contract every session model follows.

A model sees a click stream one event at a time. Items are small non-negative integers handed
out by :class:`stream.state.items.ItemIndex`; sessions are integer keys handed out by
:class:`stream.state.sessions.SessionStore`. Keeping both as ints lets models use numpy arrays and
compact dicts on the per-click path.

Two verbs, River-style:

* ``learn_one(session, item, timestamp, history)`` — ``item`` was clicked in ``session`` at
  ``timestamp`` (epoch seconds, event time) after the clicks ``history`` (oldest first, bounded by
  the session store's cap). Changes state, returns nothing.
* ``recommend(history, timestamp, k, session)`` — the ``k`` best next items for a session whose
  clicks so far are ``history`` (oldest first, last click last). Reads state only. ``session`` is
  the key of that session when it is itself part of the model's state (streaming), so kNN models
  can leave it out of its own neighbourhood; it is ``None`` for a session the model never learned
  (session-rec's static protocol).

Models that learn more from some clicks than others (a purchase more than a view, the
``--event-weights`` flag) derive from :class:`WeightsClicks`: their ``learn_one`` takes a
``weight`` (1 by default), and each says in its docstring what the weight multiplies.

A model returns a plain list of at most ``k`` item ints, best first, and never raises for an
unknown item or an empty history: it returns what it can (possibly an empty list).

What a model can do beyond the two verbs is declared by the base classes it derives from, and
callers ask with ``isinstance``: :class:`BatchModel` (a run of clicks in one compiled call, the
session-kNN family), :class:`BackgroundTrained` (trained in batch in a background thread,
item2vec) and :class:`ScoringModel` (scores, not only ranks, candidates).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

#: Length of a recommended list when the caller names none (the ``k`` of HR@k and MRR@k).
DEFAULT_K = 20


class SessionModel(abc.ABC):
    """Base class of all session models.

    Subclasses store their constructor arguments unchanged as attributes of the same name
    (River's habit), so :meth:`params` and :meth:`clone` work without extra code.
    """

    #: Registry name, e.g. ``"sr"``; set by each concrete class.
    name: ClassVar[str] = ""
    #: ``learn_one`` takes a ``weight`` (see :class:`WeightsClicks`); ``False``: every click counts once.
    weights_clicks: ClassVar[bool] = False

    @abc.abstractmethod
    def learn_one(self, session: int, item: int, timestamp: float, history: Sequence[int]) -> None:
        """Learn that ``item`` followed ``history`` in ``session`` at ``timestamp``."""

    @abc.abstractmethod
    def recommend(
        self, history: Sequence[int], timestamp: float, k: int = DEFAULT_K, session: int | None = None
    ) -> list[int]:
        """Return up to ``k`` item ints, best first, for a session whose clicks are ``history``."""

    def warm_up(self) -> None:  # noqa: B027 - optional hook
        """Compile or load what the first click would otherwise wait for (called at start-up)."""

    def forget_session(self, session: int) -> None:  # noqa: B027 - optional hook
        """Called when the session store drops ``session``; models may release per-session state."""

    # -- River-style conveniences -------------------------------------------------------------

    def params(self) -> dict[str, Any]:
        """The constructor parameters, read back from the attributes of the same name."""
        import inspect

        sig = inspect.signature(type(self).__init__)
        return {
            name: getattr(self, name)
            for name, p in sig.parameters.items()
            if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        }

    def clone(self) -> SessionModel:
        """A fresh, untrained model with the same parameters."""
        return type(self)(**self.params())

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


class WeightsClicks(SessionModel):
    """A session model whose learning takes a per-click weight.

    ``learn_one(session, item, timestamp, history, weight)`` learns the click as ``weight``
    clicks would count (``weight`` > 0, 1 when left out: the unweighted model exactly). The
    per-click core passes the weight of the click's event type (``--event-weights``); every
    other caller leaves it out. What the weight multiplies (a rule increment, a popularity
    count, a token's repetitions) is each model's own and said in its docstring.
    """

    weights_clicks: ClassVar[bool] = True

    @abc.abstractmethod
    def learn_one(self, session: int, item: int, timestamp: float, history: Sequence[int],
                  weight: float = 1.0) -> None:
        """Learn that ``item`` followed ``history`` in ``session``, counted ``weight`` times."""


# -- capabilities beyond the two verbs: a caller checks with isinstance, never with getattr ---------


class BatchModel(SessionModel):
    """A model with a compiled batch path: a whole run of clicks learned and answered in one call.

    :meth:`plan_batch` does the Python half (bookkeeping, capacities) in the caller's thread;
    :meth:`run_batch` does the rest without the GIL, so a caller may run it on a second thread
    while it finishes the previous run's answers (:class:`stream.processing.core.ClickProcessor`,
    the worker's pipelining). The answers' ``take()``, once per click in order, gives the same
    lists and leaves the same state as :meth:`learn_one` then :meth:`recommend` per click.
    """

    @property
    def batches(self) -> bool:
        """Whether the batch path can run now (e.g. its compiled kernel loaded); else per click."""
        return True

    @abc.abstractmethod
    def plan_batch(self, keys: Sequence[int], items: Sequence[int], timestamps: Sequence[float],
                   learn: Sequence[bool], hist: Any, hoff: Any, hlen: Any, k: int) -> Any:
        """The Python half of a run: per click, learn (where ``learn[t]``) then recommend ``k``
        with the history ``hist[hoff[t] : hoff[t] + hlen[t]]``."""

    @abc.abstractmethod
    def run_batch(self, plan: Any) -> Any:
        """The compiled half of ``plan``; returns answers whose ``take()`` gives
        ``(list, seconds)`` once per click, in order."""

    def split_batch(self, plan: Any, share: float) -> Callable[[], None] | None:
        """Hand about ``share`` of the plan's queries to a second caller: the call that computes
        them while :meth:`run_batch` runs on another thread, or ``None`` (nothing to split)."""
        return None

    def recommend_concurrent(self, history: Sequence[int], timestamp: float, k: int,
                             wait: bool = True) -> list[int] | None:
        """A list for ``history`` that is safe to compute on another thread while a run
        computes (from a consistent copy of the model's state, at most one run old, learning
        nothing), or ``None`` when the model has no such copy now (or, with ``wait=False``, not
        without waiting for it): the caller then waits for the model to be quiet and calls
        :meth:`recommend`."""
        return None


def batch_path(model: SessionModel) -> BatchModel | None:
    """``model`` if it can learn and answer a run of clicks in one call right now, else ``None``.

    >>> from stream.models import make_model
    >>> batch_path(make_model("pop")) is None
    True
    """
    return model if isinstance(model, BatchModel) and model.batches else None


class BackgroundTrained(SessionModel):
    """A model trained in batch on what :meth:`learn_one` buffered, in a background thread, that
    swaps its own tables when a training ends (item2vec)."""

    #: Train in a background thread (the worker: serving never waits) or synchronously (replays,
    #: whose figures then do not depend on how fast the replay runs against the training).
    background: bool
    #: Wall-clock time of the last finished training, ``None`` before the first.
    trained_at: float | None
    #: Seconds the last training took, and how many have finished.
    training_seconds: float
    trainings: int

    @property
    @abc.abstractmethod
    def training(self) -> bool:
        """Whether a training runs now."""

    @abc.abstractmethod
    def retrain(self) -> BackgroundTrained:
        """Train now, in this thread, on what is buffered; returns the model."""

    @abc.abstractmethod
    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a background training to end; ``False`` if it is still running at ``timeout``."""

    @abc.abstractmethod
    def retrain_from(self, events: Iterable[tuple[int, int, float]]) -> int:
        """Start a background training on ``(session, item, timestamp)`` events (the retrain
        policy's buffer) and keep serving the current tables until it ends; returns the number
        of events it trains on."""


class ScoringModel(SessionModel):
    """A model that scores candidate items for a history, not only ranks them (what a
    score-combining hybrid mixes)."""

    @abc.abstractmethod
    def scores(self, history: Sequence[int], timestamp: float,
               session: int | None = None) -> dict[int, float]:
        """The score of every candidate item."""

    def top_scores(self, history: Sequence[int], timestamp: float, k: int,
                   session: int | None = None) -> dict[int, float]:
        """The (about) ``k`` best candidates with their scores."""
        sc = self.scores(history, timestamp, session)
        return dict(sorted(sc.items(), key=lambda kv: -kv[1])[:k]) if k > 0 else sc
