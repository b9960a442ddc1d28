"""A3FL's numpy half: the signed step, the trigger's square, the backdoor of a learned trigger."""

from __future__ import annotations

import numpy as np
import pytest
from attack_test_helpers import read_only

from attacks import Kind, attack_plan, get_attack
from attacks.a3fl import A3FL
from common.errors import ConfigError
from common.schema import AttackSpec


def _attack(**params: object) -> A3FL:
    attack = get_attack("a3fl", **params)
    assert isinstance(attack, A3FL)
    return attack


def test_the_step_moves_the_square_by_alpha_against_the_gradient_sign_and_clips() -> None:
    attack = _attack(trigger_size=2, offset=0, position="top_left", trigger_lr=0.25)
    mask = attack.mask((3, 3, 1))
    pattern_values = np.array([[0.5, 0.1], [0.9, 0.5]], np.float32)
    pattern = np.zeros((3, 3, 1), np.float32)
    pattern[:2, :2, 0] = pattern_values
    gradient = np.array([[2.0, 1e-9, -7.0], [-1e-9, 0.0, 5.0], [3.0, 3.0, 3.0]])[..., None]
    stepped = attack.step(read_only(pattern), gradient, mask)
    # 0.5 - 0.25 = 0.25; 0.1 - 0.25 -> clipped to 0; 0.9 + 0.25 -> clipped to 1; sign(0) = 0
    np.testing.assert_allclose(
        stepped[:, :, 0], [[0.25, 0.0, 0.0], [1.0, 0.5, 0.0], [0.0, 0.0, 0.0]]
    )
    assert stepped.dtype == np.float32


def test_the_learned_trigger_replaces_the_square_and_keeps_the_rest() -> None:
    attack = _attack(trigger_size=1, offset=0, position="bottom_right", target=0, ratio=0.5)
    pattern = np.zeros((2, 2, 1), np.float32)
    pattern[1, 1, 0] = 0.3
    x = read_only(np.full((4, 2, 2, 1), 0.9, np.float32))
    y = read_only(np.array([0, 1, 2, 3], np.int64))
    backdoor = attack.with_trigger(pattern)
    stamped = backdoor.apply_trigger(x)
    np.testing.assert_allclose(stamped[:, :, :, 0], [[[0.9, 0.9], [0.9, 0.3]]] * 4)
    poisoned = backdoor.poison(x, y, num_classes=4, rng=np.random.default_rng(0))
    assert poisoned.poisoned.sum() == 2 and np.all(poisoned.y[poisoned.poisoned] == 0)
    success = backdoor.success_set(x, y)
    assert success is not None and success.baseline_x is not None
    assert len(success.x) == 3  # the target-class image proves nothing
    np.testing.assert_allclose(success.x[:, 1, 1, 0], 0.3)
    np.testing.assert_allclose(success.baseline_x[:, 1, 1, 0], 0.9)


def test_defaults_are_the_authors() -> None:
    p = _attack().params
    assert (p.trigger_epochs, p.trigger_lr, p.adv_epochs, p.adv_every, p.adv_lambda) == (
        200,
        0.01,
        5,
        1,
        0.01,
    )
    assert (p.ratio, p.trigger_size, p.offset, p.value) == (0.25, 5, 2, 0.5)
    assert (p.adv_learning_rate, p.adv_momentum, p.adv_weight_decay) == (0.01, 0.9, 5e-4)
    # the authors' mask[2:7, 2:7] on a 32x32 image, at 0.5
    initial = _attack().initial_pattern((32, 32, 3))
    assert initial[2:7, 2:7].min() == 0.5 and initial.sum() == pytest.approx(0.5 * 25 * 3)


def test_a_trigger_too_big_for_the_image_is_a_one_line_error() -> None:
    with pytest.raises(ConfigError, match=r"^attack\.params\.trigger_size: got 5 with offset 2;"):
        _attack().mask((6, 6, 1))


def test_the_plan_puts_a3fl_in_the_adaptive_slot_and_no_client_side_slot() -> None:
    plan = attack_plan(AttackSpec(type="a3fl"))
    assert isinstance(plan.adaptive, A3FL) and plan.adaptive.kind is Kind.ADAPTIVE
    assert plan.data is None and plan.update is None and plan.training is None
    assert plan.success_set(np.zeros((2, 8, 8, 1), np.float32), np.zeros(2, np.int64)) is None
