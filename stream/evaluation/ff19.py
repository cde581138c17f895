"""FF19's evaluation protocol, reproduced: next purchase from customer sequences of Online Retail.

Cloudera Fast Forward's report *Session-based Recommender Systems* (FF19) evaluates on the UCI
Online Retail data turned into one item sequence per customer (the shared file
``online-retail/ff19_onlineretail_sessions.csv.gz``: columns ``sequence_idx``, ``CustomerID``,
``position``, ``StockCode``). Its code (``fastforwardlabs/session_based_recommenders``,
``recsys/data.py:train_test_split`` and ``recsys/metrics.py``) does:

* train on the first n-1 items of **every** sequence;
* take the last pair (item n-1, item n) of every sequence and draw
  ``numpy.random.default_rng(123).choice(range(len(pairs)), 2 * 1000, replace=False)``:
  the first 1,000 indices are the test set, the next 1,000 the validation set;
* for each pair, recommend K=10 items from the query item n-1 and score Recall@10 (a hit if item
  n is in the list; FF19's name for the hit rate) and MRR@10 (1/rank, 0 beyond 10).

:func:`evaluate_ff19` reproduces that split exactly and runs any registered model on it. FF19's
word2vec only sees the query item; the protocol can give a session model the same single item
(``history="last"``) or the customer's training sequence up to item n-1, capped to its last
``max_history`` items (``history="prefix"``, the default: for item2vec with ``query="last"`` the
two are the same). Training feeds every training sequence through ``learn_one`` as one session,
in order, with the last ``max_history`` items as history and timestamp 0 (the sequences carry no
time, so time decays are neutral); batch models (those with a ``retrain`` method, e.g. item2vec)
are then trained once on what they collected.

``model="ff19-cooc"`` is FF19's own co-occurrence baseline (``recsys/models.py:
association_rules_baseline``: counts of all ordered pairs of positions of each training sequence,
ranked with ``Counter.most_common``), computed exactly, to check the split against FF19's ≈14.

Figures are fractions (0.252), FF19 prints percentages (25.2).

Measured on the shared file (gensim 4.4.0, ``workers=2``; test Recall@10 (%) / MRR@10; FF19's
figures in brackets; wall times were on a loaded 2-core box, so only indicative):

* item2vec, gensim defaults (5 epochs), seeds 1-3: 20.4 ± 0.4 (19.9, 20.5, 20.7) / .112 [19.7 / .108]
* item2vec, FF19 tuned, 30 epochs, seeds 1-3: 24.9 ± 0.5 (25.0, 24.4, 25.3) / .147
* item2vec, FF19 tuned, 100 epochs, seed 1: 25.7 / .147 [25.21 ± 0.26]
* ``ff19-cooc``, FF19's co-occurrence baseline: 14.6 / .068 [≈ 14.2, read from a figure]
* sr 29.1 / .166; vstan 31.0 / .110 (prefix), 28.1 / .114 (last); ar 28.1 / .153;
  markov 27.0 / .159; hybrid (sr+markov) 27.8 / .162; pop 4.3 / .017
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from stream.models import make_model, parse_params
from stream.models.base import BackgroundTrained
from stream.models.item2vec import Item2Vec

#: FF19's baseline, handled here rather than in the model registry.
COOC = "ff19-cooc"
HISTORIES = ("prefix", "last")
SPLITS = ("test", "validation")
#: FF19's list length (HR@10, MRR@10) and the seed of its test sample.
FF19_K = 10
FF19_SEED = 123


def load_sequences(path: str | Path) -> list[list[str]]:
    """The customer sequences of the FF19 file, in ``sequence_idx`` order, items in ``position`` order.

    Accepts the gzip-compressed or plain CSV with columns ``sequence_idx``, ``position`` and
    ``StockCode`` (others are ignored).
    """
    path = Path(path)
    opener: Any = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path}: empty file")
        try:
            c_seq, c_pos, c_item = (header.index(c) for c in ("sequence_idx", "position", "StockCode"))
        except ValueError:
            raise ValueError(
                f"{path}: need columns sequence_idx, position, StockCode; got {header}"
            ) from None
        rows: dict[int, list[tuple[int, str]]] = defaultdict(list)
        for row in reader:
            rows[int(row[c_seq])].append((int(row[c_pos]), row[c_item]))
    return [[item for _, item in sorted(rows[i])] for i in sorted(rows)]


def ff19_split(
    sequences: Sequence[Sequence[str]], test_size: int = 1000, seed: int = FF19_SEED
) -> tuple[list[list[str]], list[tuple[int, str, str]], list[tuple[int, str, str]]]:
    """FF19's ``train_test_split``: train = every sequence minus its last item; test and
    validation = disjoint random samples of ``test_size`` last pairs.

    Test and validation entries are ``(sequence index, query item n-1, target item n)``.

    >>> seqs = [["a", "b", "c"], ["d", "e", "f", "g"], ["h", "i", "j"], ["k", "l", "m"]]
    >>> train, test, val = ff19_split(seqs, test_size=2)
    >>> train[1], sorted(t[0] for t in test + val)
    (['d', 'e', 'f'], [0, 1, 2, 3])
    >>> test[0][1:] in [("b", "c"), ("f", "g"), ("i", "j"), ("l", "m")]
    True
    """
    n = len(sequences)
    if 2 * test_size > n:
        raise ValueError(f"test and validation need {2 * test_size} sequences, there are {n}")
    train = [list(s[:-1]) for s in sequences]
    rng = np.random.default_rng(seed)
    index = rng.choice(range(n), test_size * 2, replace=False).tolist()  # exactly FF19's draw
    pairs = [(i, sequences[i][-2], sequences[i][-1]) for i in index]
    return train, pairs[:test_size], pairs[test_size:]


def cooc_recommender(train: Sequence[Sequence[str]], queries: set[str], k: int) -> dict[str, list[str]]:
    """FF19's co-occurrence baseline for the ``queries`` items, exactly as ``Counter.most_common``
    ranks ``comatrix[q]`` (ties in order of first appearance), without materialising the pairs.

    >>> cooc_recommender([["a", "b", "a", "c"], ["c", "b"]], {"a", "c"}, 3)
    {'a': ['b', 'a', 'c'], 'c': ['a', 'b']}
    """
    holding: dict[str, list[int]] = defaultdict(list)
    for idx, s in enumerate(train):
        for item in set(s) & queries:
            holding[item].append(idx)
    out: dict[str, list[str]] = {}
    counted: dict[int, tuple[Counter[str], dict[str, int], dict[str, int]]] = {}
    for q in sorted(queries):
        total: Counter[str] = Counter()
        for idx in holding.get(q, ()):
            if idx not in counted:
                first_at: dict[str, int] = {}
                second_at: dict[str, int] = {}
                for j, y in enumerate(train[idx]):
                    if y not in first_at:
                        first_at[y] = j
                    elif y not in second_at:
                        second_at[y] = j
                counted[idx] = (Counter(train[idx]), first_at, second_at)
            counts, first_at, second_at = counted[idx]
            cq = counts[q]
            # permutations(s, 2) meets q's partners in position order, skipping q's first
            # position (so q itself first shows up at its second position); Counter keeps that
            # order of first appearance, and most_common breaks ties by it
            new = [(j, y) for y, j in first_at.items() if y != q and y not in total]
            if q in second_at and q not in total:
                new.append((second_at[q], q))
            for _, y in sorted(new):
                total[y] = 0
            for y, c in counts.items():
                if y != q:
                    total[y] += cq * c
                elif c > 1:
                    total[y] += cq * (c - 1)
        out[q] = [y for y, _ in total.most_common(k)]
    return out


def _rank(recs: list[Any], target: Any) -> int | float:
    """1-based rank of ``target`` in ``recs``, infinity if absent."""
    try:
        return recs.index(target) + 1
    except ValueError:
        return float("inf")


def evaluate_ff19(
    dataset: str | Path,
    model: str,
    params: dict[str, Any] | None = None,
    k: int = FF19_K,
    seed: int = FF19_SEED,
    split: str = "test",
    history: str = "prefix",
    max_history: int = 50,
    test_size: int = 1000,
    fmt: str | None = None,
) -> dict[str, Any]:
    """Train ``model`` on FF19's training sequences and score it on FF19's test pairs.

    Parameters
    ----------
    dataset
        ``ff19_onlineretail_sessions.csv.gz`` (or any CSV with ``sequence_idx``, ``position``,
        ``StockCode``).
    model, params
        A registry name and its parameters (as ``make_model``), or ``"ff19-cooc"``.
    k
        List length. FF19's cutoff is 10: ``recall_at_10`` and ``mrr_at_10`` (and their
        ``test_``/``validation_`` variants) are always reported, from lists of
        ``max(k, 10)`` items; another ``k`` adds ``recall_at_{k}`` / ``mrr_at_{k}``.
    seed
        Seed of the test/validation draw (FF19: 123). Model seeds go in ``params``.
    split
        Which sample fills ``recall_at_{k}`` / ``mrr_at_{k}``: ``"test"`` (FF19's reported
        numbers) or ``"validation"`` (FF19's tuning target). Both are always reported under
        ``test_*`` and ``validation_*``.
    history
        ``"prefix"``: the query is the customer's training sequence (last ``max_history``
        items; its own session key is passed so kNN models leave it out of its neighbourhood);
        ``"last"``: the query item alone, as FF19's word2vec sees it.
    max_history, test_size
        History cap when learning and querying; pairs per sample (FF19: 1,000).
    fmt
        Ignored (the FF19 file has one format); accepted so ``streamrec evaluate`` can pass
        its ``--format``.

    Returns
    -------
    dict
        ``recall_at_10``, ``mrr_at_10``, ``test_recall_at_10``, ``test_mrr_at_10``,
        ``validation_recall_at_10``, ``validation_mrr_at_10``, ``predictions``, ``fit_s``,
        ``ms_per_prediction``, ``model``, ``params``, ``protocol``, ``dataset`` and, for models
        that report them, ``training_seconds`` and ``vocabulary``.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if history not in HISTORIES:
        raise ValueError(f"history must be one of {HISTORIES}, got {history!r}")
    params = dict(params or {})
    sequences = load_sequences(dataset)
    train, test, validation = ff19_split(sequences, test_size=test_size, seed=seed)
    samples = {"test": test, "validation": validation}
    cutoffs = sorted({10, k})
    n_list = max(cutoffs)
    result: dict[str, Any] = {
        "protocol": "ff19",
        "dataset": str(dataset),
        "model": model,
        "params": params,
        "k": k,
        "seed": seed,
        "split": split,
        "history": history if model != COOC else "last",
        "sequences": len(sequences),
        "train_clicks": sum(len(s) for s in train),
    }

    t0 = time.perf_counter()
    if model == COOC:
        queries = {q for pairs in samples.values() for _, q, _ in pairs}
        table = cooc_recommender(train, queries, n_list)
        fit_s = time.perf_counter() - t0

        def predict(idx: int, query: str) -> list[Any]:
            return table[query]

        encode = str
    else:
        ids: dict[str, int] = {}
        encoded = [[ids.setdefault(i, len(ids)) for i in s] for s in train]
        m = make_model(model, **params)
        for key, s in enumerate(encoded):
            for pos, item in enumerate(s):
                m.learn_one(key, item, 0.0, s[max(0, pos - max_history) : pos])
        if isinstance(m, BackgroundTrained):
            m.wait()  # an automatic (warm-up) training may still run: let it finish first
            m.retrain()
        fit_s = time.perf_counter() - t0

        def predict(idx: int, query: str) -> list[Any]:
            if history == "last":
                return m.recommend([ids[query]], 0.0, n_list, None)
            return m.recommend(encoded[idx][-max_history:], 0.0, n_list, idx)

        def encode(item: str) -> int:
            return ids.get(item, -1)

        if isinstance(m, BackgroundTrained):
            result["training_seconds"] = m.training_seconds
            if isinstance(m, Item2Vec):
                result["vocabulary"] = m.vocabulary
        result["resolved"] = repr(m)

    n_pred = 0
    t_pred = 0.0
    for name, pairs in samples.items():
        hits = dict.fromkeys(cutoffs, 0)
        rr = dict.fromkeys(cutoffs, 0.0)
        for idx, query, target in pairs:
            t1 = time.perf_counter()
            recs = predict(idx, query)[:n_list]
            t_pred += time.perf_counter() - t1
            n_pred += 1
            r = _rank(recs, encode(target))
            for c in cutoffs:
                if r <= c:
                    hits[c] += 1
                    rr[c] += 1.0 / r
        for c in cutoffs:
            result[f"{name}_recall_at_{c}"] = hits[c] / len(pairs)
            result[f"{name}_mrr_at_{c}"] = rr[c] / len(pairs)
    for c in cutoffs:
        result[f"recall_at_{c}"] = result[f"{split}_recall_at_{c}"]
        result[f"mrr_at_{c}"] = result[f"{split}_mrr_at_{c}"]
    result["predictions"] = len(samples[split])
    result["fit_s"] = round(fit_s, 3)
    result["ms_per_prediction"] = round(1000 * t_pred / max(n_pred, 1), 4)
    return result


def main(argv: list[str] | None = None) -> int:
    """``python -m stream.evaluation.ff19 --dataset PATH --model M [--param k=v ...] [--json]``."""
    ap = argparse.ArgumentParser(prog="python -m stream.evaluation.ff19", description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="../shared/data/online-retail/ff19_onlineretail_sessions.csv.gz")
    ap.add_argument("--model", default="item2vec")
    ap.add_argument("--param", action="append", default=[], help="model parameter key=value")
    ap.add_argument("--k", type=int, default=FF19_K)
    ap.add_argument("--seed", type=int, default=FF19_SEED)
    ap.add_argument("--split", choices=SPLITS, default="test")
    ap.add_argument("--history", choices=HISTORIES, default="prefix")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    res = evaluate_ff19(
        args.dataset, args.model, parse_params(args.param), k=args.k, seed=args.seed,
        split=args.split, history=args.history,
    )
    if args.json:
        print(json.dumps(res, sort_keys=True))
    else:
        out = io.StringIO()
        for key in sorted(res):
            out.write(f"{key:28s} {res[key]}\n")
        sys.stdout.write(out.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
