"""What happens when retraining becomes due (``--on-drift``), and how a model is retrained.

* ``alert``: raise ``retraining_due`` and keep it until an operator acts;
* ``retrain``: rebuild the model from the last ``buffer_events`` clicks and swap it in at once;
* ``challenger``: build a challenger and promote it only if a paired sequential test on the live
  stream says it recommends better (:mod:`monitoring.drift.challenger`).

The actions themselves live in :class:`monitoring.drift.lifecycle.Lifecycle`.
"""

from __future__ import annotations

from collections.abc import Iterable

from stream.models.base import SessionModel
from stream.state.sessions import DEFAULT_MAX_SESSION_ITEMS

POLICIES = ("alert", "retrain", "challenger")
PROMOTE = ("auto", "manual")


def train_on(model: SessionModel, events: Iterable[tuple[int, int, float]],
             max_session_items: int = DEFAULT_MAX_SESSION_ITEMS) -> int:
    """Replay ``(session key, item, timestamp)`` clicks into ``model``; returns clicks learned.

    >>> from stream.models import make_model
    >>> m = make_model("sr")
    >>> train_on(m, [(1, 10, 0.0), (1, 11, 1.0), (2, 10, 2.0)])
    3
    >>> m.recommend([10], 3.0, k=1)
    [11]
    """
    histories: dict[int, list[int]] = {}
    n = 0
    for key, item, ts in events:
        if item < 0:
            continue
        h = histories.get(key)
        if h is None:
            h = histories[key] = []
        model.learn_one(key, item, ts, h)
        h.append(item)
        if len(h) > max_session_items:
            del h[0]
        n += 1
    return n
