"""``streamrec bench`` on the embedded broker: the JSON contract (figures are not timed here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from stream.bench import JSON_KEYS, run_bench, table
from stream.broker import EmbeddedBroker


def test_bench_json_line_has_the_contract_keys() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "stream.cli", "bench", "--events", "3000", "--model", "sr",
         "--partitions", "2", "--json", "--log-level", "WARNING"],
        capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(JSON_KEYS) <= set(result)
    assert result["events_produced"] == result["events_processed"] == 3000
    assert result["events_processed_publish"] == 3000
    for key in ("raw_events_per_s", "pipeline_events_per_s", "pipeline_publish_events_per_s",
                "publish_ceiling_events_per_s", "peak_rss_mb"):
        assert result[key] > 0, key
    assert 0 <= result["recommend_ms_p50"] <= result["recommend_ms_p99"]
    assert 0 < result["hit_rate_at_20"] < 1 and 0 < result["mrr_at_20"] <= result["hit_rate_at_20"]
    assert set(result["rss_mb_at"]) == {"1500", "3000"}
    assert result["pipeline_ratio"] == round(result["pipeline_events_per_s"] / result["raw_events_per_s"], 4)


def test_run_bench_against_a_given_broker_and_the_table() -> None:
    with EmbeddedBroker() as b:
        r = run_bench(events=1500, model="markov", partitions=2, publish=False, raw=False,
                      bootstrap=b.bootstrap, log=lambda _msg: None)
    assert r.events_processed == 1500 and r.pipeline_publish_events_per_s is None
    text = table(r)
    assert "pipeline" in text and "HR@20" in text


def test_bench_replays_a_dataset(tmp_path: Path) -> None:
    """``--dataset PATH --format F``: a real log's events (time order, at most ``--events``) are
    produced and processed instead of synthetic ones, and the result names them."""
    from stream.synthetic import SyntheticStream

    log = tmp_path / "clicks.txt"
    rows = [f"{e.session_id}\t{e.item_id}\t{e.timestamp}" for e in SyntheticStream(events=1200, seed=3)]
    log.write_text("SessionId\tItemId\tTime\n" + "\n".join(reversed(rows)) + "\n")
    out = subprocess.run(
        [sys.executable, "-m", "stream.cli", "bench", "--events", "1000", "--model", "sr", "--partitions", "2",
         "--dataset", str(log), "--format", "rsc15", "--no-publish", "--no-raw", "--json", "--log-level", "WARNING"],
        capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["events_produced"] == result["events_processed"] == 1000
    assert result["source"] == f"{log} (rsc15)" and 0 < result["hit_rate_at_20"] < 1


def test_bench_dataset_errors_are_clear(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("a,b,c\n")
    for path, msg in ((bad, "not a rsc15 file: missing column(s) SessionId"), (tmp_path / "empty.txt", "no events")):
        if path.name == "empty.txt":
            path.write_text("SessionId\tItemId\tTime\n")
        out = subprocess.run(
            [sys.executable, "-m", "stream.cli", "bench", "--dataset", str(path), "--format", "rsc15"],
            capture_output=True, text=True, timeout=60)
        assert out.returncode != 0 and "Traceback" not in out.stderr
        assert msg in out.stderr, out.stderr


@pytest.mark.parametrize("rows", ["python", "compiled"])
def test_cached_rule_rankings_equal_a_full_resort(rows: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rule models' rankings (the Python rows keep each row's top list up to date in place,
    the compiled rows rank on demand) must always equal session-rec's stable sort of the whole row."""
    import heapq

    from stream.models import rules
    from stream.models.rules import AssociationRules, MarkovChain, SequentialRules
    from stream.synthetic import SyntheticStream

    if rows == "compiled":
        if rules._CompiledRows is None:
            pytest.skip("stream/models/_rules.c was not built (no C compiler at install)")
        monkeypatch.setattr(rules, "ROWS", rules._CompiledRows)
    else:
        monkeypatch.setattr(rules, "ROWS", rules._DictRows)

    models = [SequentialRules(), SequentialRules(pruning=3, max_row=4, weighting="linear", steps=14),
              SequentialRules(weighting="same", steps=3, pruning=7), AssociationRules(pruning=5, max_row=8),
              MarkovChain(pruning=0, max_row=10)]
    history: dict[str, list[int]] = {}
    names: dict[str, int] = {}
    for n, ev in enumerate(SyntheticStream(events=6000, seed=2, n_items=150)):
        item = names.setdefault(ev.item_id, len(names))
        h = history.setdefault(ev.session_id, [])
        for m in models:
            m.learn_one(0, item, ev.timestamp, h)
            m.recommend(h + [item], ev.timestamp)  # populate the caches as the core does
        h.append(item)
        if n % 500 == 0:
            for m in models:
                for a, row in m.rules.items():
                    size = m.pruning if m.pruning > 0 else len(row)
                    expect = [b for b, _ in sorted(row.items(), key=lambda kv: -kv[1])[:size]]
                    assert m.ranked(a) == expect == heapq.nlargest(size, row, key=row.__getitem__)
