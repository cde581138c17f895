"""Scale-out learning: every worker learns from every click, serves only its own partitions.

The click topic is partitioned by session id and W workers in one consumer group split its
partitions, so each session is served (scored, recommended, published, committed) by exactly one
worker. The models, though, are global statistics (SR/AR/Markov rule counts, kNN session
neighbourhoods, popularity): a worker that learned only from its own partitions would see 1/W of
the stream and recommend worse. :class:`Replica` is the broadcast pattern
(Kafka Streams' GlobalKTable, Faust's GlobalTable): a second, group-less consumer in each worker,
``assign()``-ed to the partitions the worker does *not* own, feeds their clicks to the model's
learn path only:

* foreign sessions live in a *shadow* :class:`~stream.state.sessions.SessionStore` (same TTL and caps,
  session keys from ``2**40`` up so they never collide with served sessions), so SR and the kNN
  models get each foreign session's history exactly as the owner does;
* foreign clicks join the served ones in the worker's :class:`~stream.kafka.ordering.EventTimeMerge`,
  so every worker learns every click in the same event-time order as a single worker would, and
  never learns from the future of the stream it is scored on (prequential HR stays honest, and W
  workers reproduce the single worker's model); served partitions that are caught up hold
  nothing back, so the model keeps up with a stream this worker is not served from.

Where the learner starts reading a partition (no offsets are ever committed for it): at the
group's committed offset for that partition, i.e. where its owner's served (and learned) stream
stands, or at the beginning when the group has none. A fresh or restarted worker therefore learns
what the rest of the group has not yet processed, exactly like its own partitions, which also
resume from the committed offsets; a checkpointed worker can instead seek the learner to the
positions it saved (:meth:`Replica.positions`).

Cost: every worker pays the learn step (not scoring, recommending, publishing or committing) of
all N clicks, plus decoding and fetching them. The per-worker load is therefore
``N/W x (consume + decode + learn + recommend + score + publish) + N x (W-1)/W x (consume + decode +
learn)``; see docs/deployment.md for where that stops scaling.

Known limit: after a rebalance moves partition p to this worker, the clicks of p between the old
owner's last commit and what this worker's learner had already read are learned a second time
(bounded by the old owner's lag; zero in a stable group). Sessions of p this worker followed as
foreign are adopted with their history, so their next list is not cold.
"""

from __future__ import annotations

import logging
from typing import Any

from kafka import TopicPartition

from stream.events import Event, Invalid, decode
from stream.kafka import clients as kafka_io
from stream.kafka.ordering import EventTimeMerge
from stream.processing.core import ClickProcessor
from stream.state.items import OVERFLOW
from stream.state.sessions import SessionStore

log = logging.getLogger("streamrec.replica")

#: Shadow session keys start here, far above the served store's keys.
SHADOW_KEY_BASE = 1 << 40


class Replica:
    """The learn-only view of the partitions a worker does not own.

    Parameters
    ----------
    processor
        The worker's per-click core; its model, item index and store caps are shared.
    client, topic
        Kafka client settings and the click topic.
    merge
        The worker's merge, where foreign records wait for their turn in event time.
    consumer
        A ready consumer (tests); by default one is made from ``client`` without a group.

    Examples
    --------
    The learn path without Kafka:

    >>> from stream.models import make_model
    >>> p = ClickProcessor(make_model("sr"))
    >>> r = Replica(p, {}, "clicks", consumer=False)
    >>> r.learn(Event("f1", "a", 10.0)); r.learn(Event("f1", "b", 20.0))
    >>> r.learned, p.model.rules, r.shadow.get("f1").key >= SHADOW_KEY_BASE
    (2, {0: {1: 1.0}}, True)
    """

    def __init__(
        self,
        processor: ClickProcessor,
        client: dict[str, Any],
        topic: str,
        merge: EventTimeMerge | None = None,
        consumer: Any = None,
    ) -> None:
        self.processor = processor
        self.client = client
        self.topic = topic
        self.merge = merge
        st = processor.sessions
        self.shadow = SessionStore(ttl_s=st.ttl_s, max_sessions=st.max_sessions,
                                   max_session_items=st.max_session_items)
        self.shadow._next_key = SHADOW_KEY_BASE  # disjoint from the served store's keys
        self._consumer = consumer
        self.learned = 0
        self.invalid = 0
        self.foreign: set[TopicPartition] = set()
        self.adopting = False
        self.adopted = 0

    # -- Kafka side -----------------------------------------------------------------------------

    def _ensure_consumer(self) -> Any:
        if self._consumer is None:
            self._consumer = kafka_io.make_consumer(self.client, group_id=None, max_poll_records=5_000)
        return self._consumer

    def assign(self, owned: set[TopicPartition], group_consumer: Any) -> None:
        """Follow every partition of the topic except ``owned`` (call after each rebalance,
        from the main loop: it reads the group's committed offsets, a blocking call)."""
        consumer = self._ensure_consumer()
        parts = consumer.partitions_for_topic(self.topic) or group_consumer.partitions_for_topic(self.topic)
        if not parts:
            return
        foreign = {TopicPartition(self.topic, p) for p in parts} - set(owned)
        if foreign == self.foreign:
            return
        if self.foreign or owned:
            self.adopting = self.adopting or bool(self.foreign - foreign)
        keep = {tp: consumer.position(tp) for tp in self.foreign & foreign}
        if self.merge is not None:
            self.merge.drop(self.foreign - foreign, consumer)  # now served here: read by the group
        consumer.assign(sorted(foreign, key=lambda tp: tp.partition))
        for tp in foreign:
            if tp in keep:
                consumer.seek(tp, keep[tp])
                continue
            try:
                committed = group_consumer.committed(tp)
            except Exception:  # noqa: BLE001 - no committed offset known: start at the beginning
                committed = None
            if committed is None:
                consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, committed)
        if self.merge is not None:
            self.merge.assign(consumer, foreign - self.foreign - set(keep), foreign=True)
        self.foreign = foreign
        log.info("learning from foreign partitions %s", sorted(tp.partition for tp in foreign))

    def poll(self) -> None:
        """Fetch foreign clicks into the merge (without waiting)."""
        if self._consumer is None or not self.foreign or self.merge is None:
            return
        batch = self._consumer.poll(timeout_ms=0)
        add = self.merge.add
        for tp, records in batch.items():
            add(tp, records, [decode(rec.value, rec.key) for rec in records])

    def positions(self) -> dict[int, int]:
        """Next offset the learner reads, per foreign partition (for a checkpoint)."""
        if self._consumer is None:
            return {}
        return {tp.partition: self._consumer.position(tp) for tp in self.foreign}

    def close(self) -> None:
        if self._consumer is not None and self._consumer is not False:
            self._consumer.close()

    # -- learning -------------------------------------------------------------------------------

    def learn(self, ev: Event | Invalid) -> None:
        """The learn path of :meth:`ClickProcessor.process` for a click served elsewhere (a
        malformed record is only counted: its owner dead-letters it)."""
        if type(ev) is Invalid:
            self.invalid += 1
            return
        p = self.processor
        s = self.shadow.touch(ev.session_id, ev.timestamp)
        item = p.items.intern(ev.item_id)
        if item != OVERFLOW:
            if p.learn:
                m, weights = p.model, p.event_weights
                if weights is not None and m.weights_clicks:
                    m.learn_one(s.key, item, ev.timestamp, s.items,  # type: ignore[call-arg]
                                weights[ev.event_type])
                else:
                    m.learn_one(s.key, item, ev.timestamp, s.items)
                challenger = p.shadow
                if challenger is not None:  # a challenger learns what the champion learns
                    challenger.learn(s.key, item, ev.timestamp, s.items,
                                     1.0 if weights is None else weights[ev.event_type])
            self.shadow.append(s, item)
        else:
            s.clicks += 1
        self.learned += 1

    def adopt(self, ev: Event) -> None:
        """Before serving ``ev``: move its session from the shadow store if this worker followed
        it as foreign (its partition just moved here), keeping its key and history."""
        shadow = self.shadow._live
        s = shadow.get(ev.session_id)
        if s is None or ev.session_id in self.processor.sessions._live:
            return
        del shadow[ev.session_id]
        live = self.processor.sessions._live
        live[ev.session_id] = s
        self.adopted += 1
        st = self.processor.sessions
        if len(live) > st.max_sessions:
            st._end(live.popitem(last=False)[1], expired=False)
