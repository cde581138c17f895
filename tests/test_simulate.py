"""``streamrec simulate`` end to end on small streams: the JSON contract, the baselines, the plot."""

from __future__ import annotations

import json

from stream.cli import main

SMALL = ["--reference-events", "5000", "--check-every", "500", "--drift-warmup", "500", "--persistence", "3", "--model", "pop",
         "--log-level", "WARNING"]


def last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_simulate_json_contract_with_baselines_and_plot(tmp_path, capsys):
    png = tmp_path / "run.png"
    rc = main(["simulate", "--scenario", "session-length", "--events", "16000", "--drift-at", "10000",
               "--seed", "2", "--json", "--baselines", "--plot", str(png), *SMALL])
    assert rc == 0
    out = last_json(capsys)
    for key in ("retraining_due_at", "retraining_due_events", "detections", "events", "hit_rate_at_20"):
        assert key in out
    assert out["events"] == 16_000 and 0 < out["hit_rate_at_20"] < 1
    assert 10_000 < out["retraining_due_at"] <= 13_000
    assert out["retraining_due_events"][0] == out["retraining_due_at"]
    assert any(out["detections"].values()) and out["retrains"] == 0  # a challenger by default, no blind retrain
    assert out["on_drift"] == "challenger" and isinstance(out["promotions"], list)
    assert out["alarms"] and all(a["reason"].startswith(a["signal"]) for a in out["alarms"])
    assert set(out["baselines"]) == {"adwin", "evidently"}
    assert {"false_alarms", "delay", "detections"} <= set(out["baselines"]["adwin"])
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"


def test_simulate_without_drift_reports_null(capsys):
    assert main(["simulate", "--scenario", "none", "--events", "12000", "--json", *SMALL]) == 0
    out = last_json(capsys)
    assert out["retraining_due_at"] is None and out["retraining_due_events"] == []
    assert set(out["raw_detections"]) == set(out["detections"])


def test_simulate_replays_a_dataset(tmp_path, capsys):
    rows = [{"session_id": f"s{i // 4}", "item_id": f"i{(i * 7) % 40}", "timestamp": 1_700_000_000 + i}
            for i in range(8_000)]
    path = tmp_path / "clicks.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["simulate", "--dataset", str(path), "--format", "jsonl", "--json", "--on-drift", "alert",
                 *SMALL]) == 0
    out = last_json(capsys)
    assert out["events"] == 8_000 and out["on_drift"] == "alert"


def test_simulate_needs_exactly_one_source(capsys):
    assert main(["simulate", *SMALL]) == 2
    assert "choose one of" in capsys.readouterr().err


def test_compare_policies_json_keys_and_plot(tmp_path, capsys):
    """alert, retrain and challenger on the same stream in one run: the JSON keys of today stay, and
    ``policies`` carries each one's figures."""
    png = tmp_path / "policies.png"
    rc = main(["simulate", "--scenario", "new-catalog", "--events", "20000", "--drift-at", "10000", "--seed", "1",
               "--compare-policies", "--json", "--plot", str(png), *SMALL])
    assert rc == 0
    out = last_json(capsys)
    for key in ("retraining_due_at", "retraining_due_events", "events", "hit_rate_at_20", "promotions"):
        assert key in out
    assert set(out["policies"]) == {"alert", "retrain", "challenger"}
    for row in out["policies"].values():
        assert {"hit_rate_at_20", "mrr_at_20", "post_drift_hit_rate_at_20", "promotions"} <= set(row)
        assert 0 < row["post_drift_hit_rate_at_20"] < 1 and isinstance(row["promotions"], list)
        assert row["first_10000"]["clicks"] == 10_000 and row["before_drift"]["clicks"] == 10_000
    assert out["policies"]["alert"]["retrains"] == 0 and out["policies"]["retrain"]["retrains"] >= 1
    # the same clicks: the three monitors agree until the first detection
    dues = {name: row["due_events"][0] for name, row in out["policies"].items()}
    assert len(set(dues.values())) == 1, dues
    assert png.read_bytes()[:4] == b"\x89PNG"
