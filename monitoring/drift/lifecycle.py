"""The life of ``retraining_due``: what the product does when the monitor raises it, and how it clears.

One :class:`Lifecycle` per worker or ``simulate`` run. The monitor raises "retraining due" and
knows nothing of it; the wiring subscribes :meth:`Lifecycle.on_due` to the monitor
(``monitor.subscribe(life.on_due)``: :func:`monitoring.drift.config.lifecycle_from_args`,
:func:`stream.evaluation.simulate.simulate`, the worker after a checkpoint restore), and it acts by
``on_drift``::

    watching --drift--> due --(challenger)--> challenging --test won--> promoted --> watching
                         |                        |   \\--(manual)--> waiting --promote--> watching
                         |                        \\--budget spent--> "drift absorbed" --> watching
                         +--(retrain)--> rebuilt and swapped --> watching
                         +--acknowledge (any state) --> watching

``retraining_due`` clears in three ways, each logged (and kept in :attr:`Lifecycle.actions`) with
its reason: ``"promoted"`` (the challenger's training window since the drift began becomes the
new reference), ``"drift absorbed: the live model kept up"`` (the challenger spent its budget
without winning; the reference is re-baselined from the recent clicks) and ``"acknowledged"`` (an
operator: the new normal). The ``retrain`` policy clears it with ``"retrained"``. The new
reference comes from clicks the monitor has already binned, and the current one checks until it
is usable (:meth:`monitoring.drift.monitor.DriftMonitor.rebaseline`): no blind spot.

Every method is called from the thread that runs the click processor (the worker's main loop).

>>> from stream.processing.core import ClickProcessor
>>> from stream.models import make_model
>>> from monitoring.drift.monitor import DriftMonitor
>>> m = DriftMonitor(reference_events=2_000, check_every=250, warmup=100)
>>> p = ClickProcessor(make_model("sr"), monitor=m)
>>> life = Lifecycle(m, p, on_drift="challenger")
>>> m.subscribe(life.on_due)
>>> life.status()["state"]
'watching'
>>> life.request_retrain("try one", by="doc")["challenger"]["active"]
True
>>> life.acknowledge(by="doc")["state"], [a["action"] for a in life.actions]
('watching', ['retrain', 'acknowledge'])
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any

from monitoring.drift import defaults as D
from monitoring.drift.challenger import Challenger
from monitoring.drift.monitor import DriftMonitor
from monitoring.drift.policy import POLICIES, PROMOTE, train_on
from stream.config import log_event
from stream.models.base import BackgroundTrained

log = logging.getLogger("streamrec.drift")

PROMOTED = "promoted"
ABSORBED = "drift absorbed: the live model kept up"
ACKNOWLEDGED = "acknowledged"
RETRAINED = "retrained"

#: A batch challenger (item2vec) fits again after this many clicks in shadow, then at each doubling
#: (a point is skipped while it is ahead, see :meth:`Lifecycle._refit`).
REFIT_FIRST = 2_500


class Lifecycle:
    """Owns ``retraining_due``'s life for one monitor and one click processor.

    Parameters
    ----------
    monitor
        The :class:`~monitoring.drift.monitor.DriftMonitor`; the wiring subscribes :meth:`on_due`
        to it.
    processor
        The :class:`~stream.processing.core.ClickProcessor` whose model is retrained or challenged.
    on_drift
        ``"alert"``: raise and keep until an operator acts; ``"retrain"``: rebuild from the
        recent clicks and swap at once; ``"challenger"``: a challenger in shadow, promoted on
        evidence.
    promote
        ``"auto"``: a winning challenger is swapped in at once; ``"manual"``: it waits
        (state ``"waiting"``) for :meth:`promote`.
    budget
        Clicks a challenger may run without winning before it is dropped.
    alpha
        The test's false-promotion rate (:class:`~monitoring.drift.challenger.EProcess`).
    share
        Share of sessions the challenger is queried and paired on.
    max_actions
        Actions kept (the oldest dropped).
    """

    def __init__(self, monitor: DriftMonitor, processor: Any = None, on_drift: str = D.ON_DRIFT,
                 promote: str = D.PROMOTE, budget: int = D.CHALLENGER_BUDGET, alpha: float = D.PROMOTION_ALPHA,
                 share: float = D.CHALLENGER_SHARE, max_actions: int = 1_000) -> None:
        if on_drift not in POLICIES:
            raise ValueError(f"on-drift policy must be one of {', '.join(POLICIES)}, got {on_drift!r}")
        if promote not in PROMOTE:
            raise ValueError(f"promote must be one of {', '.join(PROMOTE)}, got {promote!r}")
        if budget < 1 or not 0.0 < alpha < 1.0 or not 0.0 < share <= 1.0:
            raise ValueError("budget >= 1, 0 < alpha < 1, 0 < share <= 1")
        self.on_drift = on_drift
        self.promote_mode = promote
        self.budget, self.alpha, self.share = budget, alpha, share  # a challenger's budget, test and sample
        self.challenger: Challenger | None = None
        self.promotions: list[dict[str, Any]] = []
        self.acknowledgements = 0
        self.dropped = 0
        self.actions: deque[dict[str, Any]] = deque(maxlen=max_actions)
        self.clears: list[dict[str, Any]] = []
        self._start: tuple[str, str] | None = None  # a challenger to build at the next boundary
        self.monitor = monitor
        self.processor = processor
        self.attach(processor)

    # -- wiring --------------------------------------------------------------------------------

    def attach(self, processor: Any) -> None:
        """Bind to ``processor`` and its monitor (again after a checkpoint replaced them; a restored
        monitor has no subscribers, so the wiring subscribes :meth:`on_due` to it again)."""
        self.processor = processor
        if processor is not None and processor.monitor is not None and hasattr(processor.monitor, "subscribe"):
            self.monitor = processor.monitor
        if processor is not None:
            processor.shadow = self.challenger
            self._arm()

    def _arm(self) -> None:
        """Have the processor call :meth:`settle` after each click or run while there is work."""
        if self.processor is not None:
            busy = self.challenger is not None or self._start is not None
            self.processor.settle = self.settle if busy else None

    # -- the contract ------------------------------------------------------------------------

    @property
    def state(self) -> str:
        """``"watching"``, ``"due"``, ``"challenging"`` or ``"waiting"`` (manual promotion pending)."""
        ch = self.challenger
        if ch is not None or self._start is not None:
            return "waiting" if ch is not None and ch.waiting else "challenging"
        return "due" if self.monitor.retraining_due else "watching"

    def request_retrain(self, reason: str, by: str = "operator") -> dict[str, Any]:
        """Start a challenger now (any ``on_drift``); it replaces a running one."""
        self._act("retrain", by, reason)
        self._drop_challenger()
        self._start = (reason or "requested", by)
        self.settle()
        return self.status()

    def promote(self, by: str = "operator") -> dict[str, Any]:
        """Promote the waiting or active challenger; ``ValueError`` if there is none."""
        if self._start is not None:
            self.settle()
        if self.challenger is None:
            raise ValueError("no challenger to promote")
        self._act("promote", by, "")
        self._promote(by)
        return self.status()

    def acknowledge(self, by: str = "operator", reason: str = "") -> dict[str, Any]:
        """Clear ``retraining_due`` as the new normal: any challenger is dropped, the reference is
        re-baselined from the clicks since the drift began; ``ValueError`` if nothing is due and no
        challenger runs."""
        if not self.monitor.retraining_due and self.challenger is None and self._start is None:
            raise ValueError("nothing to acknowledge: retraining is not due")
        self._act("acknowledge", by, reason)
        self._drop_challenger()
        self.acknowledgements += 1
        self._clear(ACKNOWLEDGED, since=self.monitor.drift_since, hits=True, by=by, quiet=True)
        return self.status()

    def status(self) -> dict[str, Any]:
        """JSON-ready: state, due, the challenger, promotions, acknowledgements, recent actions."""
        m, ch = self.monitor, self.challenger
        return {
            "state": self.state,
            "on_drift": self.on_drift,
            "promote": self.promote_mode,
            "retraining_due": bool(m.retraining_due),
            "due_reason": m.due_reason if m.retraining_due else "",
            "event": m.n,
            "challenger": {
                "active": ch is not None,
                "clicks": ch.clicks if ch is not None else 0,
                "budget": self.budget,
                "pairs": ch.pairs if ch is not None else 0,
                "hit_rate": round(ch.preq.hit_rate, 5) if ch is not None else None,
                "hit_rate_gain": round(ch.hit_rate_gain, 5) if ch is not None else None,
                "e_value": round(ch.test.e_value, 4) if ch is not None else None,
                "threshold": round(1.0 / self.alpha, 4),
                "waiting": bool(ch is not None and ch.waiting),
                "since": ch.since if ch is not None else None,
            },
            "promotions": list(self.promotions),
            "acknowledgements": self.acknowledgements,
            "retrains": m.retrains,
            "dropped": self.dropped,
            "clears": list(self.clears[-20:]),
            "actions": list(self.actions)[-20:],
        }

    # -- checkpoints ---------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything a restart needs (pickled in the worker's checkpoint)."""
        return {"challenger": self.challenger, "promotions": list(self.promotions),
                "acknowledgements": self.acknowledgements, "dropped": self.dropped,
                "actions": list(self.actions), "clears": list(self.clears), "start": self._start}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.challenger = state.get("challenger")
        self.promotions = list(state.get("promotions", []))
        self.acknowledgements = int(state.get("acknowledgements", 0))
        self.dropped = int(state.get("dropped", 0))
        self.actions.clear()
        self.actions.extend(state.get("actions", []))
        self.clears = list(state.get("clears", []))
        self._start = state.get("start")
        self.attach(self.processor)

    # -- what happens --------------------------------------------------------------------------

    def on_due(self, monitor: DriftMonitor) -> None:
        """The monitor raised retraining due: act by ``on_drift``."""
        self._act("due", "monitor", monitor.due_reason)
        if self.on_drift == "retrain":
            self._retrain()
        elif self.on_drift == "challenger" and self.challenger is None:
            self._start = (monitor.due_reason, "monitor")
            self._arm()

    def settle(self) -> None:
        """Between clicks or runs: build a requested challenger, promote a winner (or have it
        wait), drop one past its budget."""
        if self._start is not None:
            reason, by = self._start
            self._start = None
            self._start_challenger(reason, by)
        ch = self.challenger
        if ch is not None:
            if ch.refit_at and ch.clicks >= ch.refit_at and not ch.won:
                if ch.keep_ahead and ch.hit_rate_gain > 0.0:
                    ch.refit_at *= 2  # ahead: a refit would be a new draw of the fit, its lead lost
                else:
                    self._refit(ch)
            if ch.won and not ch.waiting:
                if self.promote_mode == "auto":
                    self._promote("auto")
                else:
                    ch.waiting = True
                    self._act("waiting", "lifecycle", f"challenger won after {ch.clicks} clicks")
            elif not ch.won and ch.clicks >= self.budget:
                self.dropped += 1
                self._act("drop", "lifecycle", f"no better after {ch.clicks} clicks "
                                               f"(gain {ch.hit_rate_gain:+.4f}, e-value {ch.test.e_value:.2f})")
                self._drop_challenger()
                if self.monitor.retraining_due:
                    self._clear(ABSORBED, since=None, hits=True, by="lifecycle")
        self._arm()

    def _start_challenger(self, reason: str, by: str) -> None:
        p, m = self.processor, self.monitor
        champion = p.model
        model = champion.clone()
        model.warm_up()
        recent = list(m.recent or ())
        since = m.drift_since if m.drift_since is not None and m.retraining_due else m.n - len(recent)
        window = recent if isinstance(champion, BackgroundTrained) else recent[max(0, len(recent) - (m.n - since)):]
        t0 = time.perf_counter()
        if isinstance(model, BackgroundTrained):  # its fit on the whole window first: no warm-up fit on the oldest part
            model.retrain_from(window)
        learned = train_on(model, window, p.sessions.max_session_items)  # its state besides the fit
        ch = Challenger(model, k=p.k, share=self.share, alpha=self.alpha, since=m.n - len(window), started=m.n)
        if isinstance(model, BackgroundTrained):
            ch.refit_at = REFIT_FIRST
            ch.keep_ahead = not m.settling
        self.challenger = ch
        p.shadow = ch
        log_event(log, "challenger started", logging.WARNING, event=m.n, since=ch.since, clicks=learned,
                  seconds=round(time.perf_counter() - t0, 3), by=by, reason=reason)

    def _refit(self, ch: Challenger) -> None:
        """A batch challenger fits again on the recent clicks (more of them from after the drift
        each time): at 2,500, 5,000, 10,000, ... clicks in shadow.

        One started from a settled reference (``keep_ahead``) skips a refit point while it is ahead
        of the champion on the paired clicks: its first fit is on the window a retrain fits on at
        the due, and a refit is a new draw of the fit that throws that lead away. One started while
        the monitor settles after a promotion (the due says the stream still differs from the
        reference before it) fits again at every point: its window is nearly the one the promoted
        model was fitted on, and only the refits bring it the clicks since the drift."""
        ch.refit_at *= 2
        ch.model.retrain_from(list(self.monitor.recent or ()))
        ch.refits += 1

    def _promote(self, by: str) -> None:
        ch = self.challenger
        assert ch is not None
        p, m = self.processor, self.monitor
        p.model = ch.model  # the atomic swap: the processor reads self.model once per click or run
        self.challenger = None
        p.shadow = None
        record = {"event": m.n, "event_time": m.last_ts, "since": ch.since, "by": by,
                  "clicks": ch.clicks, "pairs": ch.pairs, "hit_rate_gain": round(ch.hit_rate_gain, 5),
                  "e_value": round(ch.test.e_value, 3), "reason": m.due_reason or "requested"}
        self.promotions.append(record)
        log_event(log, "challenger promoted", logging.WARNING, **record)
        drift = m.drift_since if m.drift_since is not None else ch.since
        self._clear(PROMOTED, since=max(ch.since, drift), hits=False, by=by)

    def _retrain(self) -> None:
        p, m = self.processor, self.monitor
        if p is None:
            log_event(log, "retrain skipped: no click processor attached", logging.WARNING)
            return
        recent = list(m.recent or ())
        t0 = time.perf_counter()
        if isinstance(p.model, BackgroundTrained):  # batch models fit in the background and swap their own table
            learned = p.model.retrain_from(recent)
        else:
            model = p.model.clone()
            learned = train_on(model, recent, p.sessions.max_session_items)
            p.model = model  # the atomic swap
        m.retrained()
        self._record_clear(RETRAINED, "lifecycle")
        log_event(log, "model retrained and swapped in", event=m.n, clicks=learned,
                  seconds=round(time.perf_counter() - t0, 3), retrains=m.retrains)

    def _drop_challenger(self) -> None:
        if self._start is not None:
            self._start = None
        if self.challenger is not None:
            self.challenger = None
            if self.processor is not None:
                self.processor.shadow = None
        self._arm()

    def _clear(self, reason: str, since: int | None, hits: bool, by: str, quiet: bool = False) -> None:
        was_due = self.monitor.retraining_due
        self.monitor.rebaseline(since, hits=hits, quiet=quiet)
        if was_due:
            self._record_clear(reason, by)

    def _record_clear(self, reason: str, by: str) -> None:
        m = self.monitor
        self.clears.append({"reason": reason, "by": by, "event": m.n, "event_time": m.last_ts})
        if len(self.clears) > 1_000:
            del self.clears[0]
        log_event(log, "retraining due cleared", logging.WARNING, reason=reason, by=by, event=m.n)

    def _act(self, action: str, by: str, reason: str) -> None:
        entry = {"action": action, "by": by, "reason": reason, "event": self.monitor.n, "timestamp": time.time()}
        self.actions.append(entry)
        if action != "due":
            log_event(log, f"lifecycle: {action}", action=action, by=by, reason=reason, event=self.monitor.n)
