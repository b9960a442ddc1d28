"""IBA's numpy half, pinned on hand-computed cases from the authors' code (sail-research/iba,
``fl_trainer.py``): the poisoned input, the model's L2 projection, the bound's decay, the
two-phase schedule and the success set."""

from __future__ import annotations

import numpy as np
from attack_test_helpers import read_only

from attacks import Kind, attack_plan, get_attack
from attacks.iba import IBA, Phase, poisoned, project_l2
from common.schema import AttackSpec


def _attack(**params: object) -> IBA:
    attack = get_attack("iba", **params)
    assert isinstance(attack, IBA)
    return attack


def test_the_poisoned_input_is_x_plus_eps_t_clipped_to_the_pixel_range() -> None:
    # atkdata = clip_image(data + tgtmodel(data) * atk_eps), clipped to valid pixels [0, 1]
    x = read_only(np.array([0.9, 0.1, 0.05, 0.5], np.float32))
    noise = read_only(np.array([1.0, -0.2, -1.0, 0.5], np.float32))
    np.testing.assert_allclose(poisoned(x, noise, 0.3), [1.0, 0.04, 0.0, 0.65], atol=1e-7)


def test_the_projection_pulls_a_model_outside_the_ball_onto_its_surface_only() -> None:
    centre = np.array([1.0, 1.0], np.float32)
    # w - c = (3, 4), norm 5 > r = 1: c + (3, 4) / 5 (the authors' w_proj_vec)
    np.testing.assert_allclose(
        project_l2(np.array([4.0, 5.0], np.float32), centre, 1.0), [1.6, 1.8]
    )
    inside = np.array([1.3, 1.4], np.float32)  # norm 0.5 <= 1: unchanged
    np.testing.assert_allclose(project_l2(inside, centre, 1.0), inside)


def test_the_bound_decays_from_the_round_poisoning_started_down_to_the_test_bound() -> None:
    attack = _attack(atk_eps=0.3, atk_test_eps=0.05)  # eps_decay 0.001
    assert attack.eps(Phase(), 40) == 0.3  # phase 1: the full bound
    assert attack.eps(Phase(started=10), 10) == 0.3
    assert abs(attack.eps(Phase(started=10), 12) - 0.3 * 0.999**2) < 1e-15  # 0.2994003
    assert attack.eps(Phase(started=10), 5000) == 0.05  # floor: 0.3 * 0.999**4990 < 0.05


def test_poisoning_starts_at_the_threshold_then_the_generator_trains_every_other_round() -> None:
    attack = _attack()  # poison_threshold 0.85
    phase = attack.next_phase(Phase(local_asr=0.84), 3)
    assert phase == Phase(0, False, 0.84, 3) and attack.retrains(phase)
    phases = [Phase(local_asr=0.85)]
    for server_round in range(4, 8):
        phases.append(attack.next_phase(phases[-1], server_round))
    # the authors: start_decay_r = flr, then alternative_training toggled each attack round
    assert [p.started for p in phases[1:]] == [4, 4, 4, 4]
    assert [attack.retrains(p) for p in phases[1:]] == [True, False, True, False]
    assert Phase.from_array(phases[2].to_array()) == phases[2]


class _Halving:
    """A stand-in generator with a known output: T(x) = -x / 2."""

    def noise(self, x: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
        return np.asarray(-x / 2, np.float32)


def test_the_success_set_is_the_non_target_test_images_perturbed_at_the_given_bound() -> None:
    attack = _attack(target=1)
    x = read_only(np.full((3, 2, 2, 1), 0.8, np.float32))
    y = read_only(np.array([0, 1, 2], np.int64))
    success = attack.success_set(x, y, _Halving(), 0.5)
    assert len(success.x) == 2 and np.all(success.target == 1)
    np.testing.assert_allclose(success.x, 0.6)  # 0.8 + 0.5 * (-0.4)
    assert success.baseline_x is not None
    np.testing.assert_allclose(success.baseline_x, 0.8)


def test_defaults_are_the_authors_mnist_fedavg_run() -> None:
    p = _attack().params
    values = (p.target, p.atk_eps, p.atk_test_eps, p.attack_alpha, p.atk_lr)
    # --atk_eps 0.3, --atk_test_eps 0.05 on images normalised by std 0.3081: in pixels
    assert values == (0, 0.0924, 0.0154, 0.5, 0.001)
    assert (p.atk_model_train_epoch, p.eps_decay, p.poison_threshold) == (3, 0.001, 0.85)
    assert (p.pgd_radius, p.project_frequency) == (None, 1)  # --attack_method blackbox


def test_it_is_an_adaptive_attack_for_28x28_images_only() -> None:
    plan = attack_plan(AttackSpec(type="iba"))
    assert isinstance(plan.adaptive, IBA) and plan.adaptive.kind is Kind.ADAPTIVE
    assert plan.adaptive.input_shapes == ((28, 28, 1),)
