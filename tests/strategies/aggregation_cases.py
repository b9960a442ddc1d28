"""Shared cases for the aggregation tests: every registered rule, and chains of them.

Imported by the test modules of this folder (pytest puts the folder on sys.path).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

import strategies
from strategies.base import ChainState, Rule
from strategies.indicator import Indicator
from strategies.layout import Inspection, Layout

NUM_BYZANTINE = 2


@dataclass(frozen=True)
class Case:
    """A rule (or chain) configuration the contract tests run."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    pre: Sequence[tuple[str, Mapping[str, Any]]] = ()
    deterministic_in_order: bool = True
    """False when the result depends on the client order (bucketing's permutation)."""

    @property
    def id(self) -> str:
        return "+".join([p for p, _ in self.pre] + [self.name])

    def build(self) -> Rule:
        rule = strategies.build_chain(self.name, self.params, self.pre)
        needs = rule.needs_reference() or rule.needs_client_ids() or rule.needs_layout()
        return ServerInputs(rule) if needs else rule


@dataclass(frozen=True)
class ServerInputs:
    """A rule run with what the server would pass it when the test gives none, so the
    registry-wide contract tests call it like any other rule.

    The reference (FLTrust): the mean of the updates, what a server whose root data look
    like the clients' would compute; the mean is taken in float64, then rounded to the
    updates' dtype, like a real reference. Client ids (FoolsGold): row i is client i, every
    round; a test that permutes rows passes the permuted ids itself. The model (LASA,
    DeepSight): :func:`tempered_softmax_inspection`."""

    rule: Rule

    @property
    def name(self) -> str:
        return self.rule.name

    def min_clients(self) -> int:
        return self.rule.min_clients()

    def needs_reference(self) -> bool:
        return self.rule.needs_reference()

    def needs_client_ids(self) -> bool:
        return self.rule.needs_client_ids()

    def needs_layout(self) -> bool:
        return self.rule.needs_layout()

    def needs_ddifs(self) -> bool:
        return self.rule.needs_ddifs()

    def indicator_task(self) -> Indicator | None:
        return self.rule.indicator_task()

    def needs_features(self) -> bool:
        return self.rule.needs_features()

    def init(self, num_params: int) -> ChainState:
        return self.rule.init(num_params)

    def update(
        self,
        updates: NDArray[np.floating[Any]],
        num_examples: NDArray[np.int64],
        state: ChainState,
        *,
        rng: np.random.Generator,
        reference: NDArray[np.floating[Any]] | None = None,
        client_ids: NDArray[np.int64] | None = None,
        inspection: Inspection | None = None,
    ) -> tuple[NDArray[np.floating[Any]], ChainState]:
        if reference is None and updates.ndim == 2 and self.rule.needs_reference():
            reference = updates.mean(axis=0, dtype=np.float64).astype(updates.dtype)
        if client_ids is None and updates.ndim == 2:
            client_ids = np.arange(updates.shape[0])
        if inspection is None and updates.ndim == 2 and self.rule.needs_layout():
            inspection = tempered_softmax_inspection(updates.shape[1])
        return self.rule.update(
            updates,
            num_examples,
            state,
            rng=rng,
            reference=reference,
            client_ids=client_ids,
            inspection=inspection,
        )

    def __call__(
        self,
        updates: NDArray[np.floating[Any]],
        num_examples: NDArray[np.int64],
        *,
        reference: NDArray[np.floating[Any]] | None = None,
        inspection: Inspection | None = None,
    ) -> NDArray[np.floating[Any]]:
        state = self.init(updates.shape[1] if updates.ndim == 2 else 0)
        rng = np.random.default_rng(0)
        return self.update(
            updates, num_examples, state, rng=rng, reference=reference, inspection=inspection
        )[0]


def tempered_softmax_inspection(d: int) -> Inspection:
    """The inspection of a real model with ``d >= 7`` parameters, at global weights 0: a
    Dense softmax layer on 2 inputs (kernel (2, 2), bias (2,)) whose logits are scaled by
    ``1 + sum(t)``, t its first tensor ``(d - 6,)`` (a learned temperature); the DDifs are
    computed from it in numpy on uniform noise, as the server does with its Keras model, and
    the features (FLARE) are its tempered logits on 16 fixed uniform inputs."""
    layout = Layout(((d - 6,), (2, 2), (2,)))
    t_at, kernel_at, bias_at = layout.slices()

    def probabilities(flat: NDArray[np.float64], x: NDArray[np.float64]) -> NDArray[np.float64]:
        logits = (1.0 + flat[t_at].sum()) * (x @ flat[kernel_at].reshape(2, 2) + flat[bias_at])
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return np.asarray(exp / exp.sum(axis=1, keepdims=True))

    def ddifs(
        updates: NDArray[np.floating[Any]], num_seeds: int, num_samples: int, epsilon: float
    ) -> NDArray[np.float64]:
        out = np.empty((num_seeds, updates.shape[0], 2))
        for seed in range(num_seeds):
            x = np.random.default_rng(seed).random((num_samples, 2))
            base = probabilities(np.zeros(d), x) + epsilon
            for i, row in enumerate(updates.astype(np.float64)):
                out[seed, i] = (probabilities(row, x) / base).mean(axis=0)
        return out

    # The indicator set: 8 points on a circle of radius 100, labels alternating 0, 1, ... A
    # linear model with a bias far under 100 x its kernel (every honest row here) splits them
    # by a line near the origin, 4 consecutive points a side: 2 of each label, so each
    # label's indicator accuracy is 0.5, under every threshold the cases use: all are kept.
    angles = np.arange(8) * np.pi / 4 + np.pi / 8
    points = 100.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    labels = np.arange(8) % 2

    def indicator(updates: NDArray[np.floating[Any]]) -> NDArray[np.float64]:
        predicted = np.stack([probabilities(row, points).argmax(axis=1) for row in updates])
        hits = predicted == labels
        return np.stack([hits[:, labels == k].mean(axis=1) for k in (0, 1)], axis=1)

    def features(updates: NDArray[np.floating[Any]], aux_class: int | None) -> NDArray[np.float64]:
        x = np.random.default_rng(99).random((16, 2))
        rows = updates.astype(np.float64)
        scale = 1.0 + rows[:, t_at].sum(axis=1)
        logits = [x @ row[kernel_at].reshape(2, 2) + row[bias_at] for row in rows]
        return np.asarray(scale[:, None, None] * np.array(logits))

    return Inspection(layout, ddifs=ddifs, indicator=indicator, features=features)


F = {"num_byzantine": NUM_BYZANTINE}
RULE_CASES = [
    Case("fedavg"),
    Case("fedavg", {"weighted": False}),
    Case("norm_bounding", {"max_norm": 1.0}),
    Case("median"),
    Case("trimmed_mean", {"num_trimmed": NUM_BYZANTINE}),
    Case("krum", F),
    Case("multi_krum", {**F, "num_selected": 3}),
    Case("bulyan", F),
    Case("geometric_median"),
    Case("centered_clipping", {"radius": 1.0, "iterations": 3}),
    Case("dnc", F),  # b = 10,000 >= d: one iteration on all coordinates
    # b < d: three iterations on random coordinate subsets. The draws depend on d only, never
    # on the client order, so DnC and SignGuard stay permutation invariant for a given rng.
    Case("dnc", {**F, "subsample_dim": 3, "num_iterations": 3}),
    Case("signguard"),
    Case("signguard", {"selection_fraction": 0.5, "lower_bound": 0.5, "upper_bound": 2.0}),
    Case("fltrust"),  # the updates' mean stands in for the server's root-data update
    # Noise-free, so identical updates aggregate to themselves; the noise has its own tests.
    Case("flame", {"noise_level": 0.0}),
    Case("weak_dp", {"max_norm": 1.0, "noise_std": 0.0}),
    Case("foolsgold"),  # row i is client i (ServerInputs)
    Case("simple_clustering", {"eps": 0.2, "min_samples": 3}),  # honest rows ~0.19 apart
    Case("auror", {"indicative_threshold": 0.1}),  # some of the 7 coordinates are indicative
    # window 1: scoring from round 3 and detection with it, so the multi-round tests see both.
    Case("fldetector", {"window": 1}),
    Case("lasa", {"sparsity": 0.0}),
    Case("lasa", {"sparsity": 0.5}),  # of the 4 kernel entries, only the largest is kept
    Case("deepsight", {"num_samples": 64}),  # the model: tempered_softmax_inspection
    Case("indicator"),  # the model and its indicator set: tempered_softmax_inspection
    Case("flare"),  # the model: tempered_softmax_inspection's logits as features
    Case("rflbat"),
    Case("robustlr"),  # theta 4 of 11 random rows: some coordinates reversed
    Case("robustlr", {"threshold": 0.0, "weighted": False}),  # no coordinate reversed: the mean
]
CHAIN_CASES = [
    Case("krum", F, pre=[("nnm", F)]),
    Case("median", pre=[("clip", {"max_norm": 1.0})]),
    Case("fltrust", pre=[("nnm", F)]),
    Case(
        "trimmed_mean",
        {"num_trimmed": 1},
        pre=[("bucketing", {"bucket_size": 2})],
        deterministic_in_order=False,
    ),
    Case(
        "centered_clipping",
        {"radius": 1.0},
        pre=[("nnm", F), ("bucketing", {"bucket_size": 2})],
        deterministic_in_order=False,
    ),
]
ALL_CASES = RULE_CASES + CHAIN_CASES

CASE_IDS = [c.id for c in ALL_CASES]


def honest_updates(n: int, d: int, *, seed: int = 0, scale: float = 0.05) -> NDArray[np.float64]:
    """Small random deltas (norm well under 1, so clipping radii of 1 leave them intact)."""
    return np.random.default_rng(seed).normal(0.0, scale, size=(n, d))


def counts(n: int, *, seed: int = 0) -> NDArray[np.int64]:
    return np.random.default_rng(seed).integers(1, 100, size=n).astype(np.int64)
