"""What ``summary.json`` says beyond the per-round log: versions, shards, membership inference on
the final model, and the sections of the options that are on (distillation, privacy, integrity,
inversion).
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib.metadata import version
from typing import Any

import numpy as np
from numpy.typing import NDArray

from common.data.datasets import Dataset
from common.data.partitioners import partition_hash
from common.data.shards import dataset_of, partitions_of
from common.schema import Scenario
from common.seeding import derive_seed
from server.distillation import distillation_report
from server.evaluation import Evaluator
from server.guard import IntegrityGuard
from server.inversion.observer import CuriousServer
from server.membership_inference import membership_inference
from server.privacy import PrivacyTracker
from server.round import RoundSink

_VERSIONED = (
    "fedshield",
    "flwr",
    "ray",
    "tensorflow",
    "tensorflow-privacy",
    "numpy",
    "dp-accounting",
)


def package_versions() -> dict[str, str]:
    """Versions of the packages that decide a run's numbers (for ``summary.json``)."""
    return {name: version(name) for name in _VERSIONED}


def section_summaries(
    scenario: Scenario,
    final: list[NDArray[np.float32]],
    sink: RoundSink,
    privacy: PrivacyTracker | None,
    guard: IntegrityGuard | None,
    curious: CuriousServer | None,
) -> dict[str, Any]:
    """``summary.json``'s sections of the options that are on (distillation, privacy, ...)."""
    out: dict[str, Any] = {}
    if scenario.robustness.distillation.enabled:
        out["distillation"] = distillation_report(
            scenario, dataset_of(scenario), final, sink.ever_accepted
        )
    if privacy is not None:
        out["privacy"] = privacy.summary()
    if guard is not None:
        out["integrity"] = guard.summary()
    if curious is not None:
        out["inversion"] = curious.summary(final, sink.ever_accepted)
    return out


def run_summary(
    scenario: Scenario,
    evaluator: Evaluator,
    ever_accepted: Iterable[int],
    final: list[NDArray[np.float32]],
) -> dict[str, Any]:
    """The run-wide figures of ``summary.json`` (membership inference on the final model)."""
    dataset, parts = evaluator.dataset, partitions_of(scenario)
    evaluator.model.set_weights(final)
    members = np.concatenate([parts[p] for p in sorted(ever_accepted)] or [np.arange(0)])
    return {
        "package_versions": package_versions(),
        "num_examples_per_client": [int(len(p)) for p in parts],
        "partition_hash": partition_hash(list(parts)),
        "membership_inference": _membership(evaluator, dataset, members, scenario.seed, final),
    }


def _membership(
    evaluator: Evaluator,
    dataset: Dataset,
    members: NDArray[np.int64],
    seed: int,
    final: list[NDArray[np.float32]],
) -> dict[str, Any]:
    """Loss-threshold membership inference on the final model (skipped when it diverged)."""
    if not all(np.isfinite(w).all() for w in final):
        return {"skipped": "the final global model has non-finite weights"}
    return membership_inference(
        evaluator.model,
        (dataset.x_train[members], dataset.y_train[members]),
        (dataset.x_test, dataset.y_test),
        seed=derive_seed(seed, "membership"),
    )
