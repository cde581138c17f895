"""``streamrec evaluate``: hand-computed HR/MRR/coverage/popularity on tiny files, the JSON contract,
the CLI, and a replay of real data through every registered model."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from stream.cli import main
from stream.evaluation.evaluate import RESULT_KEYS, evaluate_static, evaluate_stream, metric_keys
from stream.models import MODELS
from stream.progress import progress

TRAIN = [  # session, item, time
    ("1", "A", 1), ("1", "B", 2),
    ("2", "A", 3), ("2", "B", 4), ("2", "C", 5),
    ("3", "C", 6), ("3", "A", 7), ("3", "D", 8),
]
TEST = [
    ("10", "A", 100), ("10", "B", 101), ("10", "C", 102),
    ("11", "A", 103), ("11", "X", 104), ("11", "D", 105),  # X is unknown to training
    ("12", "B", 106), ("12", "A", 107),
]
MARKOV = {"fallback": False}  # no popular fill: lists are the rule partners only
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "yoochoose-100k"


def _write(path: Path, rows: list[tuple[str, str, int]]) -> Path:
    path.write_text("SessionId\tItemId\tTime\n" + "".join(f"{s}\t{i}\t{t}\n" for s, i, t in rows))
    return path


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    return _write(tmp_path / "train.tsv", TRAIN), _write(tmp_path / "test.tsv", TEST)


def test_static_by_hand(files: tuple[Path, Path]) -> None:
    # Markov rules: A->{B:2, D:1}, B->{C:1}, C->{A:1}; training counts A3 B2 C2 D1.
    # Test predictions (k=2): [A]->[B,D] vs B (rank 1); [A,B]->[C] vs C (1);
    # [A]->[B,D] vs D (X dropped; rank 2); [B]->[C] vs A (miss).
    r = evaluate_static(*files, fmt="rsc15", model="markov", params=MARKOV, k=2)
    assert r["predictions"] == 4
    assert r["hit_rate_at_2"] == pytest.approx(3 / 4)
    assert r["mrr_at_2"] == pytest.approx((1 + 1 + 0.5) / 4)
    assert r["coverage_at_2"] == pytest.approx(3 / 4)  # {B, C, D} of 4 training items
    pop = ((2 + 1) / (2 * 3) + 2 / 3 + (2 + 1) / (2 * 3) + 2 / 3) / 4
    assert r["popularity_at_2"] == pytest.approx(pop)
    assert r["test_dropped_unknown"] == 1
    assert (r["train_events"], r["test_events"], r["events"]) == (8, 8, 16)
    assert r["items"] == 4 and r["train_order"] == "file"


def test_static_does_not_learn_test_sessions(files: tuple[Path, Path]) -> None:
    # Session 10 ends with B->C; if the test were learned, [B]->[C] would gain weight, but
    # more tellingly the unknown X would enter the item index. Run twice: same figures.
    a = evaluate_static(*files, model="markov", params=MARKOV, k=2)
    b = evaluate_static(*files, model="markov", params=MARKOV, k=2)
    assert a["items"] == b["items"] == 4
    assert a["hit_rate_at_2"] == b["hit_rate_at_2"]


def test_static_max_predictions(files: tuple[Path, Path]) -> None:
    r = evaluate_static(*files, model="markov", params=MARKOV, k=2, max_predictions=2)
    assert r["predictions"] == 2 and r["truncated"] is True
    assert r["hit_rate_at_2"] == 1.0


def test_stream_by_hand(files: tuple[Path, Path]) -> None:
    # Test-then-train over train then test as one stream (see the hand trace in the PR notes):
    # hits at t=4 (A->B), t=101 (A->B) and t=102 (B->C), all at rank 1, out of 10 predictions.
    r = evaluate_stream(list(files), fmt="rsc15", model="markov", params=MARKOV, k=2)
    assert r["events"] == 16 and r["predictions"] == 10
    assert r["hit_rate_at_2"] == pytest.approx(0.3)
    assert r["mrr_at_2"] == pytest.approx(0.3)
    assert r["protocol"] == "stream" and r["items"] == 5


def test_stream_warmup(files: tuple[Path, Path]) -> None:
    # Warm-up on the 8 training clicks; scored: t=101 hit, 102 hit, 104/105/107 miss.
    r = evaluate_stream(list(files), model="markov", params=MARKOV, k=2, warmup=8)
    assert r["predictions"] == 5 and r["warmup"] == 8
    assert r["hit_rate_at_2"] == pytest.approx(0.4)
    assert r["mrr_at_2"] == pytest.approx(0.4)
    # scored lists [B,D], [C], [B,D], [], [C]: {B, C, D} of 5 items seen (X included)
    assert r["coverage_at_2"] == pytest.approx(3 / 5)
    # stream counts before each scored click: A4 B2 C2 D1 | A4 B3 C2 | A5 B3 C3 D1 | - | B4 C3, max 4,4,5,-,5
    assert r["popularity_at_2"] == pytest.approx((3 / 8 + 2 / 4 + 4 / 10 + 0 + 3 / 5) / 5)
    assert r["ms_per_prediction"] >= 0 and r["ms_per_prediction_p99"] >= r["ms_per_prediction_p50"]


def test_stream_from_events_and_limit() -> None:
    from stream.events import Event

    evs = [Event(s, i, float(t)) for s, i, t in TRAIN]
    r = evaluate_stream(events=evs, model="markov", params=MARKOV, k=2, limit=5)
    assert r["events"] == 5 and r["predictions"] == 3  # t=2, 4, 5


def test_result_keys(files: tuple[Path, Path]) -> None:
    for r in (evaluate_static(*files, model="sr"), evaluate_stream(list(files), model="sr")):
        assert set(RESULT_KEYS) <= set(r)
        json.dumps(r)


def test_cli_static_json(files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    train, test = files
    rc = main(["evaluate", "--train", str(train), "--test", str(test), "--format", "rsc15",
               "--model", "markov", "--param", "fallback=false", "--cutoff", "2", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["protocol"] == "static" and out["model"] == "markov"
    assert out["params"]["fallback"] is False
    assert out["hit_rate_at_2"] == pytest.approx(0.75)
    assert set(metric_keys(2)) <= set(out)


def test_cli_default_keys_at_20(files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    train, test = files
    assert main(["evaluate", "--stream", str(train), str(test), "--model", "sr", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(RESULT_KEYS) <= set(out)
    assert out["protocol"] == "stream" and out["events"] == 16


def test_cli_table_and_errors(files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    train, test = files
    assert main(["evaluate", "--train", str(train), "--test", str(test), "--model", "ar"]) == 0
    out = capsys.readouterr().out
    assert "hit_rate_at_20" in out and not out.lstrip().startswith("{")
    assert main(["evaluate", "--train", str(train)]) == 2
    assert "--test" in capsys.readouterr().err
    assert main(["evaluate", "--train", str(train), "--test", str(train.parent / "nope.tsv")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["evaluate", "--stream", str(train), "--param", "nonsense"]) == 2


def test_cli_ff19_dispatch(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["evaluate", "--protocol", "ff19", "--dataset", "x", "--model", "sr", "--json"])
    assert rc == 2  # the dataset "x" does not exist: a clear error, after the dispatch reached FF19


def test_progress_quiet_unless_tty_or_forced() -> None:
    buf = io.StringIO()
    assert list(progress(range(1000), stream=buf)) == list(range(1000))
    assert buf.getvalue() == ""
    assert list(progress(range(1000), total=1000, enabled=True, stream=buf, every=1, interval=0.0))
    assert "1000/1000" in buf.getvalue()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_real_data_every_model(name: str) -> None:
    """A sample of yoochoose-100k through each registered model, both protocols."""
    if not DATA.is_dir():
        pytest.skip(f"real data not found at {DATA} (../shared/data/yoochoose-100k)")
    train = DATA / "yoochoose-clicks-100k_train_valid.txt"
    test = DATA / "yoochoose-clicks-100k_test.txt"
    r = evaluate_static(train, test, model=name, max_predictions=300)
    assert r["predictions"] == 300 and set(RESULT_KEYS) <= set(r)
    assert 0.0 <= r["mrr_at_20"] <= r["hit_rate_at_20"] <= 1.0
    if name in ("sr", "ar", "markov"):
        assert r["hit_rate_at_20"] > 0.3, r
    s = evaluate_stream([train], model=name, limit=3000, warmup=1000)
    assert s["events"] == 3000 and s["predictions"] > 1000
    assert 0.0 <= s["mrr_at_20"] <= s["hit_rate_at_20"] <= 1.0
