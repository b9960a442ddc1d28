"""Threshold membership-inference attacks: an empirical check of what DP-SGD promises.

Loss threshold (Yeom, Giacomelli, Fredrikson, Jha 2018, "Privacy Risk in Machine Learning:
Analyzing the Connection to Overfitting"): predict "member" when the per-example loss
l(x, y) = -log p_y(x) is below a threshold tau. Confidence threshold (Salem et al. 2019,
"ML-Leaks", label-free): predict "member" when max_k p_k(x) is above tau. Sweeping tau gives
the ROC curve; we report its AUC and the membership advantage

    Adv = max_tau ( TPR(tau) - FPR(tau) )        (Yeom et al., Definition 4)

A model trained with (epsilon, 0)-DP bounds Adv <= e^epsilon - 1 (Yeom et al., Theorem 1),
so the figures here are lower bounds on leakage, never a privacy guarantee.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import tensorflow as tf
from numpy.typing import NDArray
from sklearn.metrics import roc_auc_score, roc_curve

from common.errors import ConfigError

Signal = Literal["loss", "confidence"]
LabelledSet = tuple[NDArray[np.floating[Any]], NDArray[np.integer[Any]]]

# Probabilities are clipped before the log so a confident wrong prediction has a finite loss.
_MIN_PROBABILITY = 1e-12


def membership_inference(
    model: tf.keras.Model,
    members: LabelledSet,
    non_members: LabelledSet,
    *,
    signal: Signal = "loss",
    seed: int = 0,
    batch_size: int = 512,
) -> dict[str, float | int]:
    """AUC and advantage of a threshold attack telling ``members`` from ``non_members``.

    The larger set is subsampled (seeded, without replacement) to the size of the smaller, so
    AUC 0.5 and advantage ~0 mean "no better than guessing" on a balanced prior. ``model`` must
    output class probabilities (softmax). Inputs are never modified.
    Returns ``{"auc", "advantage", "num_members", "num_non_members"}``.
    """
    if signal not in ("loss", "confidence"):
        raise ConfigError(f"signal: got {signal!r}; allowed: loss, confidence")
    size = min(len(members[1]), len(non_members[1]))
    if size == 0:
        raise ConfigError("members/non_members: got an empty set; both need examples")
    rng = np.random.default_rng(seed)
    scores = [
        _member_scores(
            model, *_subsample(labelled, size, rng), signal=signal, batch_size=batch_size
        )
        for labelled in (members, non_members)
    ]
    truth = np.concatenate([np.ones(size), np.zeros(size)])
    score = np.concatenate(scores)
    false_positive, true_positive, _ = roc_curve(truth, score)
    return {
        "auc": float(roc_auc_score(truth, score)),
        "advantage": float(np.max(true_positive - false_positive)),
        "num_members": size,
        "num_non_members": size,
    }


def _subsample(
    labelled: LabelledSet, size: int, rng: np.random.Generator
) -> tuple[NDArray[np.floating[Any]], NDArray[np.integer[Any]]]:
    x, y = labelled
    if len(y) == size:
        return x, y
    keep = np.sort(rng.choice(len(y), size=size, replace=False))
    return x[keep], y[keep]


def _member_scores(
    model: tf.keras.Model,
    x: NDArray[np.floating[Any]],
    y: NDArray[np.integer[Any]],
    *,
    signal: Signal,
    batch_size: int,
) -> NDArray[np.float64]:
    # Higher score = "more likely a member": -loss for Yeom's attack, top confidence for ML-Leaks.
    probabilities = np.concatenate(
        [
            np.asarray(model(x[start : start + batch_size], training=False), dtype=np.float64)
            for start in range(0, len(y), batch_size)
        ]
    )
    if signal == "confidence":
        return np.asarray(probabilities.max(axis=1), dtype=np.float64)
    true_class = probabilities[np.arange(len(y)), np.asarray(y, dtype=np.int64)]
    return np.asarray(np.log(np.maximum(true_class, _MIN_PROBABILITY)), dtype=np.float64)
