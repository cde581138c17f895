"""``streamrec bench`` on the embedded broker: the JSON contract (figures are not timed here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from stream.evaluation.bench import JSON_KEYS, run_bench, table
from stream.kafka.broker import EmbeddedBroker


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
                      bootstrap=b.bootstrap, log=lambda _msg: None, synthetic={"n_items": 40})
    assert r.events_processed == 1500 and r.pipeline_publish_events_per_s is None
    assert 0 < r.per_worker[0]["items"] <= 40  # the shop's shape reached the produced stream
    text = table(r)
    assert "pipeline" in text and "HR@20" in text


def test_synthetic_shop_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    """--synthetic-items/-zipf/-session-length (env fallbacks too) shape the generator of every
    command that has one; the defaults are the generator's own."""
    from collections import Counter, defaultdict

    from stream.cli import build_parser
    from stream.cli.common import shop_kwargs, shop_label
    from stream.cli.produce import source_events
    from stream.evaluation.synthetic import SyntheticStream

    parser = build_parser()
    for command in ("bench", "produce", "simulate", "demo"):
        args = parser.parse_args([command])
        default = SyntheticStream()
        assert shop_kwargs(args) == {"n_items": default.n_items, "zipf": default.zipf,
                                     "mean_session_length": default.mean_session_length}
        assert shop_label(args) == ""
    monkeypatch.setenv("STREAMREC_SYNTHETIC_ITEMS", "20000")  # read when the parser is built
    args = build_parser().parse_args(["produce", "--synthetic", "--events", "20000",
                                      "--synthetic-zipf", "0.8", "--synthetic-session-length", "3.9"])
    assert shop_kwargs(args) == {"n_items": 20_000, "zipf": 0.8, "mean_session_length": 3.9}
    assert shop_label(args) == ", 20,000 items, zipf 0.8, 3.9 clicks/session"

    def shape(stream: SyntheticStream) -> tuple[float, float]:
        sessions: defaultdict[str, set[str]] = defaultdict(set)
        for e in stream:
            sessions[e.session_id].add(e.item_id)
        top = Counter(i for s in sessions.values() for i in s).most_common(1)[0][1]
        return top / len(sessions), len(stream) / len(sessions)

    flat, _ = source_events(args)
    flat_top, flat_len = shape(flat)  # type: ignore[arg-type]
    skewed_top, skewed_len = shape(SyntheticStream(events=20_000))
    assert flat_top < 0.1 < 0.2 < skewed_top  # ~6% vs ~29% of sessions hold the most popular item
    assert flat_len < skewed_len
    with pytest.raises(ValueError, match="zipf >= 0"):
        SyntheticStream(zipf=-1.0)


def test_bench_replays_a_dataset(tmp_path: Path) -> None:
    """``--dataset PATH --format F``: a real log's events (time order, at most ``--events``) are
    produced and processed instead of synthetic ones, and the result names them."""
    from stream.evaluation.synthetic import SyntheticStream

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

    from stream.evaluation.synthetic import SyntheticStream
    from stream.models import rules
    from stream.models.rules import AssociationRules, MarkovChain, SequentialRules

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
