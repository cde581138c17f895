"""The drift monitor on small synthetic streams: quiet without drift, persistent alarms with it,
the retrain policy, and the Prometheus collector (a real registry, scraped as text)."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from monitoring.drift import DriftMonitor
from monitoring.drift.exporter import DriftCollector
from monitoring.drift.lifecycle import Lifecycle
from stream.evaluation.synthetic import SyntheticStream
from stream.events import Event
from stream.models import make_model
from stream.processing.core import ClickProcessor

SMALL = {"reference_events": 5_000, "check_every": 500, "warmup": 500, "persistence": 3}


def run(scenario: str, events: int = 16_000, drift_at: int = 10_000, model: str = "pop", seed: int = 1,
        on_drift: str = "alert", **kw) -> tuple[DriftMonitor, ClickProcessor]:
    m = DriftMonitor(**{**SMALL, **kw})
    p = ClickProcessor(make_model(model), monitor=m)
    m.attach(p)
    m.subscribe(Lifecycle(m, p, on_drift=on_drift).on_due)
    for e in SyntheticStream(events=events, seed=seed, scenario=scenario, drift_at=drift_at):
        p.process(e)
    return m, p


def test_quiet_without_drift():
    m, _ = run("none", events=30_000)
    assert not m.retraining_due and m.due_events == []
    assert set(m.active) == {"popularity", "new_items", "session_length", "inter_click_gap", "category",
                             "performance"}
    assert len(m.checks) == (30_000 - 5_500) // 500


@pytest.mark.parametrize("scenario,signal", [("new-catalog", "new_items"), ("popularity-shift", "popularity"),
                                             ("session-length", "session_length")])
def test_abrupt_drift_raises_retraining_due_soon_after_and_says_why(scenario, signal):
    m, _ = run(scenario)
    assert m.retraining_due
    assert 10_000 < m.due_events[0] <= 13_000
    assert m.detections[signal] and m.detections[signal][0] > 10_000
    assert m.reasons[signal].startswith(f"{signal}: ") and "threshold" in m.reasons[signal]
    assert m.summary()["retraining_due_at"] == m.due_events[0]


def test_persistence_filters_single_excursions():
    m = DriftMonitor(reference_events=8_000, check_every=1_000, subblocks=4, warmup=0, persistence=3,
                     signals=("new_items",))

    class S:  # the monitor reads only key and clicks of a session
        key, clicks = 0, 1

    def window(unseen: bool, base: int) -> None:
        for i in range(1_000):
            item = base + i if unseen else i % 50
            m.observe(Event("s", str(item), float(base + i)), item, False, S, None)

    for w in range(8):
        window(False, w * 1000)  # the reference: 50 items
    window(True, 10_000)  # one window on unseen items, then back to normal
    window(False, 0)
    window(True, 20_000)
    window(True, 30_000)
    assert m.raw_detections["new_items"] == 3 and not m.retraining_due
    window(True, 40_000)
    assert m.retraining_due and m.due_events == [m.n]


def test_alert_policy_keeps_retraining_due_raised():
    m, p = run("new-catalog", events=20_000)
    model = p.model
    assert m.retraining_due and m.retrains == 0 and p.model is model
    assert m.due_events == m.due_events[:1]  # raised once and kept


def test_retrain_policy_swaps_the_model_and_checks_on_without_a_gap():
    m, p = run("popularity-shift", events=18_000, on_drift="retrain", buffer_events=3_000)
    assert m.recent is not None and len(m.recent) == 3_000  # bounded
    assert m.retrains >= 1 and not m.retraining_due
    assert p.model.params() == make_model("pop").params()
    due = m.due_events[0]
    # no blind spot: a reference frozen at once from clicks already binned, checks go on after the swap
    assert any(due < c[0] <= due + 1_000 for c in m.checks)
    # the new model was trained on the buffer only, then kept learning online
    assert p.preq.predictions > 0


def test_retrain_lets_a_later_drift_be_detected():
    m = DriftMonitor(**SMALL, buffer_events=3_000)
    p = ClickProcessor(make_model("pop"), monitor=m)
    m.attach(p)
    m.subscribe(Lifecycle(m, p, on_drift="retrain").on_due)
    first = list(SyntheticStream(events=15_000, seed=1, scenario="new-catalog", drift_at=8_000))
    second = SyntheticStream(events=5_000, seed=2, start_ts=first[-1].timestamp)
    for e in [*first, *second]:  # from event 15,000: a shop with another popularity ranking
        p.process(e)
    assert m.retrains >= 2, m.due_events
    assert 8_000 < m.due_events[0] < 10_000 and any(15_000 < d < 18_000 for d in m.due_events)


def test_collector_exports_the_contract_metrics():
    m, _ = run("new-catalog", events=13_000)
    registry = CollectorRegistry()
    registry.register(DriftCollector(m))
    text = generate_latest(registry).decode()
    assert "streamrec_retraining_due 1.0" in text
    assert 'streamrec_drift_detected{signal="new_items"} 1.0' in text
    assert 'streamrec_drift_threshold{signal="popularity"}' in text
    assert 'streamrec_drift_score{signal="performance"}' in text
    assert "streamrec_retrains_total 0.0" in text
    assert "streamrec_reference_events 5000.0" in text
    assert "session" not in text.replace("session_length", "")  # no id labels


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError):
        DriftMonitor(check_every=1_001, subblocks=4)
    with pytest.raises(ValueError):
        DriftMonitor(signals=("popularity", "nope"))
    with pytest.raises(ValueError):
        Lifecycle(DriftMonitor(), on_drift="panic")


def test_a_shift_far_beyond_the_noise_is_detected_on_the_first_check_after_it():
    m, _ = run("popularity-shift")  # checks every 500 from 5,500: 10,500 is the first after the drift
    assert m.due_events[0] == 10_500
    assert m.detections["popularity"][0] == 10_500
    m, _ = run("popularity-shift", false_alarm_events=1e300)  # no single-check rule: persistence needed
    assert m.due_events[0] > 10_500


def test_long_window_is_calibrated_below_the_check_window_and_quiet_without_drift():
    m, _ = run("none", events=40_000, reference_events=10_000, check_every=250, warmup=1_000)
    assert "popularity" in m.long_threshold and set(m.long_threshold) <= set(m.calibration)
    assert m.long_threshold["popularity"] < m.threshold["popularity"]
    assert not m.retraining_due
    assert DriftMonitor(long_checks=0).long_threshold == {}
