"""Neurotoxin's mask and both durable backdoors' poisoning and training stages (pure numpy)."""

from __future__ import annotations

import numpy as np
import pytest

from attacks import attack_plan, get_attack
from attacks.durable import Chameleon, Neurotoxin, bottom_k_mask
from common.learning.stages import ClassifierSteps, ContrastiveSteps, CrossEntropySteps
from common.schema import AttackSpec


@pytest.mark.parametrize(
    ("direction", "keep_ratio", "expected"),
    [
        # |v| = 0.5, 3, 0.1, 2, 0.2; floor(0.6 * 5) = 3 smallest: 0.1, 0.2, 0.5.
        ([0.5, -3.0, 0.1, 2.0, -0.2], 0.6, [True, False, True, False, True]),
        # floor(0.5 * 5) = 2 (the authors' int(len * ratio)): 0.1 and 0.2 only.
        ([0.5, -3.0, 0.1, 2.0, -0.2], 0.5, [False, False, True, False, True]),
        # Ties: the lower index is kept first.
        ([1.0, -1.0, 1.0, -1.0], 0.5, [True, True, False, False]),
        ([0.3, -0.1], 1.0, [True, True]),
        # floor(0.4 * 2) = 0: nothing may move.
        ([0.3, -0.1], 0.4, [False, False]),
    ],
)
def test_bottom_k_mask_keeps_the_smallest_magnitudes(
    direction: list[float], keep_ratio: float, expected: list[bool]
) -> None:
    assert bottom_k_mask(np.array(direction), keep_ratio).tolist() == expected


def test_the_mask_ranks_all_layers_together() -> None:
    # Two "layers" flattened: the global bottom half, not half of each layer.
    layer_a, layer_b = np.array([0.01, 0.02]), np.array([5.0, 6.0])
    mask = bottom_k_mask(np.concatenate([layer_a, layer_b]), 0.5)
    assert mask.tolist() == [True, True, False, False]


@pytest.mark.parametrize("name", ["neurotoxin", "chameleon"])
def test_durable_backdoors_poison_exactly_as_badnets(name: str) -> None:
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 0.5, size=(40, 8, 8, 1)).astype(np.float32)
    y = (np.arange(40) % 10).astype(np.int64)
    params = {"target": 4, "ratio": 0.25, "trigger_size": 2, "offset": 0}
    ours = get_attack(name, **params).poison(x, y, num_classes=10, rng=np.random.default_rng(9))
    badnets = get_attack("backdoor", **params).poison(
        x, y, num_classes=10, rng=np.random.default_rng(9)
    )
    np.testing.assert_array_equal(ours.x, badnets.x)
    np.testing.assert_array_equal(ours.y, badnets.y)
    assert int(ours.poisoned.sum()) == 10 and np.all(ours.y[ours.poisoned] == 4)
    assert np.all(ours.x[ours.poisoned][:, 6:, 6:, 0] == 1.0)


def test_stages_carry_the_parameters() -> None:
    neurotoxin = get_attack("neurotoxin")
    assert isinstance(neurotoxin, Neurotoxin) and neurotoxin.params.keep_ratio == 0.95
    assert neurotoxin.stages(local_epochs=2) == (CrossEntropySteps(epochs=2, pgd_radius=None),)
    chameleon = get_attack("chameleon", target=2, pgd_radius=3.0)
    assert isinstance(chameleon, Chameleon)
    assert chameleon.stages() == (
        ContrastiveSteps(epochs=10, target=2, temperature=0.07, scale_weight=2.0, pgd_radius=3.0),
        ClassifierSteps(epochs=3, pgd_radius=3.0),
    )
    # Both train through the one hook; every other data attack trains honestly.
    assert attack_plan(AttackSpec(type="neurotoxin")).local_training is not None
    assert attack_plan(AttackSpec(type="backdoor")).local_training is None
