"""Session models behind one interface (:class:`stream.models.base.SessionModel`).

``make_model(name, **params)`` builds a model by its registry name; parameter names and defaults
are session-rec's, so published configurations carry over::

    make_model("vstan", k=100, sample_size=5000)
"""

from __future__ import annotations

import importlib
from typing import Any

from stream.models.base import SessionModel

#: name -> "module:Class"; modules are imported on first use.
MODELS: dict[str, str] = {
    "pop": "stream.models.pop:Popularity",
    "markov": "stream.models.rules:MarkovChain",
    "ar": "stream.models.rules:AssociationRules",
    "sr": "stream.models.rules:SequentialRules",
    "sknn": "stream.models.knn.sknn:SKNN",
    "vsknn": "stream.models.knn.vsknn:VSKNN",
    "stan": "stream.models.knn.stan:STAN",
    "vstan": "stream.models.knn.vstan:VSTAN",
    "hybrid": "stream.models.hybrid:Hybrid",
    "item2vec": "stream.models.item2vec:Item2Vec",
}

#: What a user gets without ``--model``: the best model measured (see README).
DEFAULT_MODEL = "hybrid"


def model_class(name: str) -> type[SessionModel]:
    try:
        target = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}") from None
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


def make_model(name: str, **params: Any) -> SessionModel:
    """Build model ``name`` with ``params`` (session-rec names)."""
    return model_class(name)(**params)


def parse_params(pairs: list[str] | None) -> dict[str, Any]:
    """``["k=100", "weighting=div", "remind=false"]`` -> typed dict.

    >>> parse_params(["k=100", "lambda_spw=1.02", "weighting=div", "remind=false", "x=none"])
    {'k': 100, 'lambda_spw': 1.02, 'weighting': 'div', 'remind': False, 'x': None}
    """
    out: dict[str, Any] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ValueError(f"--param takes key=value, got {pair!r}")
        key, raw = pair.split("=", 1)
        low = raw.lower()
        value: Any
        if low in ("true", "false"):
            value = low == "true"
        elif low in ("none", "null"):
            value = None
        else:
            try:
                value = int(raw)
            except ValueError:
                try:
                    value = float(raw)
                except ValueError:
                    value = raw
        out[key.strip()] = value
    return out


__all__ = ["MODELS", "DEFAULT_MODEL", "SessionModel", "make_model", "model_class", "parse_params"]
