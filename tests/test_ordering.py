"""EventTimeMerge: the clicks of several partitions released in event-time order (no Kafka)."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest
from kafka import TopicPartition

from stream.kafka.ordering import EventTimeMerge


@dataclass
class Rec:
    partition: int
    offset: int


class Consumer:
    """A consumer's view for the merge: high-water marks and positions, set by the test."""

    def __init__(self) -> None:
        self.hw: dict[int, int] = {}
        self.pos: dict[int, int] = {}

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.hw.get(tp.partition)

    def position(self, tp: TopicPartition, timeout_ms: int = 0) -> int | None:
        return self.pos.get(tp.partition)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def tps(n: int) -> list[TopicPartition]:
    return [TopicPartition("clicks", p) for p in range(n)]


def feed(merge: EventTimeMerge, tp: TopicPartition, times: list[float], start: int = 0) -> None:
    merge.add(tp, [Rec(tp.partition, start + i) for i in range(len(times))], times)


def two_partitions(hw: dict[int, int], **options: object) -> tuple[Consumer, EventTimeMerge, TopicPartition,
                                                                   TopicPartition]:
    """A merge (``options``) over partitions 0 and 1, both served by one consumer with high-water marks ``hw``."""
    c = Consumer()
    c.hw = hw
    m = EventTimeMerge(lambda v: v, **options)  # type: ignore[arg-type]
    p0, p1 = tps(2)
    m.assign(c, [p0, p1])
    return c, m, p0, p1


def test_a_backlog_fetched_partition_by_partition_is_released_in_event_time_order() -> None:
    rng = random.Random(1)
    times = sorted(rng.uniform(0, 1000) for _ in range(4000))
    parts: dict[int, list[float]] = {p: [] for p in range(4)}
    for t in times:
        parts[rng.randrange(4)].append(t)
    c = Consumer()
    c.hw = {p: len(v) for p, v in parts.items()}
    m = EventTimeMerge(lambda v: v)
    m.assign(c, tps(4))
    out: list[float] = []
    for p in range(4):  # as kafka-python returns a backlog: chunks of one partition, then the next
        for lo in range(0, len(parts[p]), 500):
            feed(m, tps(4)[p], parts[p][lo:lo + 500], lo)
            out += [v for _, _, v in m.take(1000).entries]
    while m.buffered:
        out += [v for _, _, v in m.take(1000).entries]
    assert out == times


def test_offsets_advance_for_served_partitions_only_and_point_past_the_released_records() -> None:
    c = Consumer()
    c.hw = {0: 3, 1: 2}
    m = EventTimeMerge(lambda v: v)
    p0, p1 = tps(2)
    m.assign(c, [p0])
    m.assign(c, [p1], foreign=True)
    feed(m, p0, [1.0, 3.0, 5.0])
    feed(m, p1, [2.0, 4.0])
    r = m.take(limit=3)  # the three earliest: 1, 2 (foreign), 3
    assert [(f, v) for f, _, v in r.entries] == [(False, 1.0), (True, 2.0), (False, 3.0)]
    assert r.offsets == [(p0, 2, 2)]
    r = m.take()
    assert [v for _, _, v in r.entries] == [4.0, 5.0] and r.offsets == [(p0, 3, 1)]


def test_ties_go_to_the_lower_partition_and_a_partition_keeps_its_own_order() -> None:
    c, m, p0, p1 = two_partitions({0: 3, 1: 2})
    feed(m, p1, [2.0, 2.0])
    feed(m, p0, [2.0, 9.0, 1.0])  # 1.0 comes after 9.0 in its partition, and stays there
    got = [(rec.partition, v) for _, rec, v in m.take().entries]
    assert got == [(0, 2.0), (1, 2.0), (1, 2.0), (0, 9.0), (0, 1.0)]


def test_a_lagging_partition_holds_later_records_until_it_delivers_or_gives_up() -> None:
    clock = Clock()
    # partition 1 has five records the merge has not received
    c, m, p0, p1 = two_partitions({0: 2, 1: 5}, max_wait_s=5.0, clock=clock)
    feed(m, p0, [1.0, 2.0])
    assert len(m.take()) == 0
    clock.t = 5.0
    assert len(m.take()) == 0
    clock.t = 5.5  # partition 1 delivered nothing for longer than max_wait_s: not waited for
    assert [v for _, _, v in m.take().entries] == [1.0, 2.0]
    feed(m, p1, [0.5])  # it delivers again (late): it holds the others back again
    feed(m, p0, [3.0], start=2)
    c.hw[0] = 3
    assert [v for _, _, v in m.take().entries] == [0.5]


def test_a_partition_without_a_fetch_answer_is_lagging() -> None:
    c = Consumer()
    c.hw = {0: 1}  # partition 1: no high-water mark yet
    m = EventTimeMerge(lambda v: v)
    m.assign(c, tps(2))
    feed(m, tps(2)[0], [1.0])
    assert len(m.take()) == 0
    c.hw[1], c.pos[1] = 0, 0  # answered: empty and caught up
    assert [v for _, _, v in m.take().entries] == [1.0]


def test_with_two_consumers_a_caught_up_partition_holds_later_records_briefly() -> None:
    served, learner, clock = Consumer(), Consumer(), Clock()
    served.hw, learner.hw, learner.pos = {0: 2}, {1: 1}, {1: 1}
    m = EventTimeMerge(lambda v: v, idle_wait_s=0.25, clock=clock)
    p0, p1 = tps(2)
    m.assign(served, [p0])
    m.assign(learner, [p1], foreign=True)
    feed(m, p1, [1.0])
    feed(m, p0, [1.5, 3.0])
    # partition 1 is caught up by its consumer's last fetch, which may predate partition 0's
    assert [v for _, _, v in m.take().entries] == [1.0]
    assert len(m.take()) == 0  # empty now: clicks later than its latest wait for its next fetch
    feed(m, p1, [2.0], start=1)
    learner.hw[1] = learner.pos[1] = 2
    assert [v for _, _, v in m.take().entries] == [1.5, 2.0]
    clock.t = 1.0
    assert len(m.take()) == 0  # 3.0 starts to wait for partition 1
    clock.t = 1.3  # no traffic on partition 1 for longer than idle_wait_s: let go
    assert [v for _, _, v in m.take().entries] == [3.0]


def test_memory_is_bounded_the_earliest_go_without_waiting() -> None:
    c, m, p0, p1 = two_partitions({0: 10, 1: 1}, max_buffered=6)
    feed(m, p0, [float(t) for t in range(10)])  # partition 1 lags with nothing delivered
    assert [v for _, _, v in m.take().entries] == [0.0, 1.0, 2.0, 3.0]
    assert m.buffered == 6


def test_malformed_records_never_hold_anything_back() -> None:
    c = Consumer()
    c.hw = {0: 3}
    m = EventTimeMerge(lambda v: None if v == "bad" else v)
    m.assign(c, tps(1))
    feed(m, tps(1)[0], [1.0, "bad", 2.0])  # type: ignore[list-item]
    assert [v for _, _, v in m.take().entries] == [1.0, "bad", 2.0]


def test_fetch_order_releases_everything_as_received() -> None:
    c, m, p0, p1 = two_partitions({0: 2, 1: 9}, order="fetch")
    feed(m, p0, [5.0, 6.0])
    assert [v for _, _, v in m.take().entries] == [5.0, 6.0]


def test_dropped_partitions_lose_their_held_records() -> None:
    c, m, p0, p1 = two_partitions({0: 2, 1: 9})
    feed(m, p0, [5.0, 6.0])
    m.drop([p0])
    assert m.buffered == 0 and not m.held() and m.partitions == {p1}
    m.drop([p1], consumer=Consumer())  # read by another consumer: kept
    assert m.partitions == {p1}


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="order"):
        EventTimeMerge(lambda v: v, order="random")
    with pytest.raises(ValueError, match="max_buffered"):
        EventTimeMerge(lambda v: v, max_buffered=0)
