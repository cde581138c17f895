"""Scale-out learning: every worker learns from every click, serves only its own partitions.

The click topic is partitioned by session id and W workers in one consumer group split its
partitions, so each session is served (scored, recommended, published, committed) by exactly one
worker. The models, though, are global statistics (SR/AR/Markov rule counts, kNN session
neighbourhoods, popularity): a worker that learned only from its own partitions would see 1/W of
the stream and recommend worse. :class:`Replica` is the broadcast pattern of streaming.md §4.2
(Kafka Streams' GlobalKTable, Faust's GlobalTable): a second, group-less consumer in each worker,
``assign()``-ed to the partitions the worker does *not* own, feeds their clicks to the model's
learn path only:

* foreign sessions live in a *shadow* :class:`~stream.sessions.SessionStore` (same TTL and caps,
  session keys from ``2**40`` up so they never collide with served sessions), so SR and the kNN
  models get each foreign session's history exactly as the owner does;
* foreign clicks are merged with the served ones in event time: they wait in a bounded heap and
  are learned just before the first served click that is not older (:meth:`Replica.drain`), so a
  worker never learns from the future of the stream it is scored on (prequential HR stays honest,
  and W workers reproduce the single worker's model up to same-timestamp interleaving);
* when served partitions go quiet for ``idle_drain_s``, or the heap is full, the oldest foreign
  clicks are learned anyway (the model keeps up with a stream this worker is not served from).

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

import heapq
import logging
import time
from typing import Any

from kafka import TopicPartition

from stream import kafka_io
from stream.core import ClickProcessor
from stream.events import Event, Invalid, decode
from stream.items import OVERFLOW
from stream.sessions import SessionStore

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
    max_buffer
        Foreign clicks held back waiting for the served stream's event time.
    idle_drain_s
        Learn held-back clicks anyway once no served click arrived for this long.
    consumer
        A ready consumer (tests); by default one is made from ``client`` without a group.

    Examples
    --------
    The event-time merge without Kafka (a foreign click waits for a served click not older):

    >>> from stream.models import make_model
    >>> p = ClickProcessor(make_model("sr"))
    >>> r = Replica(p, {}, "clicks", consumer=False)
    >>> r.offer(Event("f1", "a", 10.0)); r.offer(Event("f1", "b", 20.0))
    >>> r.drain(15.0); r.learned, r.pending
    (1, 1)
    >>> r.drain(float("inf")); p.model.rules
    {0: {1: 1.0}}
    """

    def __init__(
        self,
        processor: ClickProcessor,
        client: dict[str, Any],
        topic: str,
        max_buffer: int = 200_000,
        idle_drain_s: float = 1.0,
        consumer: Any = None,
    ) -> None:
        self.processor = processor
        self.client = client
        self.topic = topic
        self.max_buffer = max_buffer
        self.idle_drain_s = idle_drain_s
        st = processor.sessions
        self.shadow = SessionStore(ttl_s=st.ttl_s, max_sessions=st.max_sessions,
                                   max_session_items=st.max_session_items)
        self.shadow._next_key = SHADOW_KEY_BASE  # disjoint from the served store's keys
        self._consumer = consumer
        self._heap: list[tuple[float, int, Event]] = []
        self._seq = 0
        self.next_ts = float("inf")  # event time of the oldest held-back click
        self.learned = 0
        self.invalid = 0
        self.foreign: set[TopicPartition] = set()
        self.adopting = False
        self.adopted = 0
        self._last_served = time.monotonic()

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
        self.foreign = foreign
        log.info("learning from foreign partitions %s", sorted(tp.partition for tp in foreign))

    def poll(self, served: bool) -> None:
        """Fetch foreign clicks into the merge heap; ``served``: the group poll returned records."""
        now = time.monotonic()
        if served:
            self._last_served = now
        if self._consumer is not None and self.foreign:
            batch = self._consumer.poll(timeout_ms=0)
            for records in batch.values():
                for rec in records:
                    ev = decode(rec.value, rec.key)
                    if type(ev) is Invalid:
                        self.invalid += 1  # the owner dead-letters it
                        continue
                    self.offer(ev)
        if len(self._heap) > self.max_buffer:
            self.drain(self._heap[len(self._heap) - self.max_buffer][0])
        if not served and now - self._last_served > self.idle_drain_s and self._heap:
            self.drain(float("inf"))

    def positions(self) -> dict[int, int]:
        """Next offset the learner reads, per foreign partition (for a checkpoint)."""
        if self._consumer is None:
            return {}
        return {tp.partition: self._consumer.position(tp) for tp in self.foreign}

    def close(self) -> None:
        if self._consumer is not None and self._consumer is not False:
            self._consumer.close()

    # -- learning -------------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        return len(self._heap)

    def offer(self, ev: Event) -> None:
        """Hold a foreign click until the served stream reaches its event time."""
        self._seq += 1
        heapq.heappush(self._heap, (ev.timestamp, self._seq, ev))
        if ev.timestamp < self.next_ts:
            self.next_ts = ev.timestamp

    def drain(self, until: float) -> None:
        """Learn every held-back click with event time <= ``until``, oldest first."""
        heap = self._heap
        learn = self.learn
        pop = heapq.heappop
        while heap and heap[0][0] <= until:
            learn(pop(heap)[2])
        self.next_ts = heap[0][0] if heap else float("inf")

    def learn(self, ev: Event) -> None:
        """The learn path of :meth:`ClickProcessor.process` for a click served elsewhere."""
        p = self.processor
        s = self.shadow.touch(ev.session_id, ev.timestamp)
        item = p.items.intern(ev.item_id)
        if item != OVERFLOW:
            if p.learn:
                p.model.learn_one(s.key, item, ev.timestamp, s.items)
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
