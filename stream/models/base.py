"""The contract every session model follows.

A model sees a click stream one event at a time. Items are small non-negative integers handed
out by :class:`stream.items.ItemIndex`; sessions are integer keys handed out by
:class:`stream.sessions.SessionStore`. Keeping both as ints lets models use numpy arrays and
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

A model returns a plain list of at most ``k`` item ints, best first, and never raises for an
unknown item or an empty history: it returns what it can (possibly an empty list).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, ClassVar


class SessionModel(abc.ABC):
    """Base class of all session models.

    Subclasses store their constructor arguments unchanged as attributes of the same name
    (River's habit), so :meth:`params` and :meth:`clone` work without extra code.
    """

    #: Registry name, e.g. ``"sr"``; set by each concrete class.
    name: ClassVar[str] = ""

    #: Trained in batch, in the background (item2vec): retraining is :meth:`retrain_from`, a fit
    #: on recent clicks while the current state serves, not a replay of them into ``learn_one``.
    trains_in_background: ClassVar[bool] = False

    @abc.abstractmethod
    def learn_one(self, session: int, item: int, timestamp: float, history: Sequence[int]) -> None:
        """Learn that ``item`` followed ``history`` in ``session`` at ``timestamp``."""

    @abc.abstractmethod
    def recommend(
        self, history: Sequence[int], timestamp: float, k: int = 20, session: int | None = None
    ) -> list[int]:
        """Return up to ``k`` item ints, best first, for a session whose clicks are ``history``."""

    def warm_up(self) -> None:  # noqa: B027 - optional hook
        """Compile or load what the first click would otherwise wait for (called at start-up)."""

    def forget_session(self, session: int) -> None:  # noqa: B027 - optional hook
        """Called when the session store drops ``session``; models may release per-session state."""

    def retrain_from(self, events: Sequence[tuple[int, int, float]]) -> int:
        """Models that :attr:`trains_in_background`: start a fit on ``(session key, item,
        timestamp)`` clicks, swapped in when done; returns the clicks handed to it."""
        raise NotImplementedError(f"{type(self).__name__} learns online: replay clicks into learn_one")

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
