"""``streamrec bench`` on the embedded broker: the JSON contract (figures are not timed here)."""

from __future__ import annotations

import json
import subprocess
import sys

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


def test_run_bench_against_a_given_broker_and_the_table() -> None:
    with EmbeddedBroker() as b:
        r = run_bench(events=1500, model="markov", partitions=2, publish=False, raw=False,
                      bootstrap=b.bootstrap, log=lambda _msg: None)
    assert r.events_processed == 1500 and r.pipeline_publish_events_per_s is None
    text = table(r)
    assert "pipeline" in text and "HR@20" in text
