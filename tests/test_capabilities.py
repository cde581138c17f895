"""What each registered model declares beyond learn_one/recommend (stream.models.base), and that
callers can rely on it: the declared methods exist with the base classes' meaning."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from stream.models import MODELS, make_model
from stream.models.base import BackgroundTrained, BatchModel, ScoringModel, SessionModel, batch_path

KNN = {"sknn", "vsknn", "stan", "vstan"}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_capabilities_are_declared_by_base_classes(name: str) -> None:
    m = make_model(name)
    assert isinstance(m, SessionModel)
    assert isinstance(m, BatchModel) == (name in KNN)
    assert isinstance(m, ScoringModel) == (name in KNN)
    assert isinstance(m, BackgroundTrained) == (name == "item2vec")
    if name not in KNN:
        assert batch_path(m) is None


def test_split_batch_uses_the_models_own_shadow_and_does_not_pickle_it() -> None:
    m = make_model("vstan")
    if batch_path(m) is None:
        pytest.skip("the compiled kNN kernel is not available here")
    clicks = [(s % 7, (s * s) % 11) for s in range(200)]
    items = [i for _, i in clicks]

    def plan(model: BatchModel):
        return model.plan_batch([s for s, _ in clicks], items, [float(t) for t in range(200)], [True] * 200,
                                np.array(items), np.arange(200), np.ones(200, dtype=np.int64), 20)

    p = plan(m)
    rest = m.split_batch(p, 0.4)
    answers = m.run_batch(p)
    assert rest is not None
    rest()
    lists = [answers.take()[0] for _ in clicks]
    m2 = make_model("vstan")
    answers2 = m2.run_batch(plan(m2))
    assert lists == [answers2.take()[0] for _ in clicks]
    assert "_shadow" in m.__dict__
    assert "_shadow" not in pickle.loads(pickle.dumps(m)).__dict__


def test_scoring_models_top_scores_agree_with_scores() -> None:
    m = make_model("sknn")
    for t, (s, i) in enumerate([(1, 1), (1, 2), (2, 1), (2, 3), (3, 1), (3, 2)]):
        m.learn_one(s, i, float(t), [1] if i != 1 else [])
    full = m.scores([1], 10.0)
    top = m.top_scores([1], 10.0, 1)
    assert len(top) == 1 and max(full, key=full.get) in top
