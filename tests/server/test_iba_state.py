"""IBA's state across rounds: the colluders' generator and schedule, held by the server's adversary.

The adversaries played here: the colluders (their generator must persist, be shared, and be what
the evaluator measures), an operator who resumes a killed run (the resumed rounds must equal the
uninterrupted ones) and a sweep that runs cells back to back (no cell starts from another's
generator).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from attacks.iba import Phase
from server.evaluation import Evaluator
from server.iba import GeneratorTrigger
from server.resume import ResumedStrategy
from tests.server import _adaptive_rounds as rounds

SCENARIO, DATA, BASE, MALICIOUS = rounds.setting(
    [
        "rounds=4",
        'data.dataset="synthetic_mnist"',
        "data.num_clients=100",
        "train.learning_rate=0.01",
        'attack.type="iba"',
        "attack.malicious=2",
        "attack.params={atk_model_train_epoch=1, eps_decay=0.1, atk_eps=0.3, atk_test_eps=0.05}",
    ]
)


NOISE = 0.001


def fresh(tmp_path: Path):  # type: ignore[no-untyped-def]
    return rounds.fresh(tmp_path, SCENARIO, BASE, MALICIOUS)


def play(strategy, shifted, played: range, arrays: list[np.ndarray]):  # type: ignore[no-untyped-def]
    return rounds.play(strategy, shifted, played, arrays, NOISE)


def _same(expected: list[np.ndarray], got: list[np.ndarray]) -> None:
    for a, b in zip(expected, got, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_resumed_run_equals_the_uninterrupted_one_and_needs_the_saved_generator(
    tmp_path: Path,
) -> None:
    straight, interrupted, point = rounds.straight_and_resumed(
        tmp_path, SCENARIO, BASE, MALICIOUS, NOISE, total=4, stop=3
    )
    for (w_expected, s_expected), (w_got, s_got) in zip(straight, interrupted, strict=True):
        _same(s_expected, s_got)
        _same(w_expected, w_got)

    # Not vacuous: the searcher's local ASR passed 0.85 after round 2, so poisoning started in
    # round 3, which retrained the generator; round 4 poisons with the round-3 generator without
    # retraining it (every other round). A restart without the saved state (generator and
    # schedule back to round 0: clean training) gives a different round 4.
    phases = [s[-1] for _, s in straight]
    assert [p[0] for p in phases] == [0, 0, 3, 3] and phases[1][2] >= 0.85
    assert not np.array_equal(straight[1][1][0], straight[2][1][0])
    _same(straight[2][1][:-1], straight[3][1][:-1])
    strategy, _ = fresh(tmp_path)
    restarted = play(strategy, ResumedStrategy(strategy, 3), range(1, 2), point.weights)
    assert not np.array_equal(restarted[0][0][0], straight[3][0][0])


def test_a_sweep_s_next_cell_starts_from_the_seeded_initial_generator(tmp_path: Path) -> None:
    strategy, _ = fresh(tmp_path)
    initial = [a.copy() for a in strategy.adversary.adaptive.state]
    play(strategy, strategy, range(1, 2), BASE)
    assert not np.array_equal(strategy.adversary.adaptive.state[0], initial[0])
    next_cell, _ = fresh(tmp_path)
    _same(initial, next_cell.adversary.adaptive.state)


def test_the_evaluator_measures_the_current_generator_at_the_last_round_s_bound() -> None:
    holder = GeneratorTrigger(SCENARIO, _iba())
    evaluator = Evaluator(model_name="mlp", dataset=DATA, success_set=None)
    evaluator.success_source = lambda: holder.success_set(DATA.x_test, DATA.y_test)
    # A model whose class-0 logit is 100 * (mean pixel - 0.66): class 0 on the images whose
    # mean pixel passes 0.66 (none of the clean ones). A generator whose last batch norm has
    # scale 0 and offset b outputs tanh(b) everywhere: T = +1 (b = 20) lifts every pixel by
    # eps (then clipped at 1), T = -1 lowers it. The ASR follows the generator the colluders
    # hold now, at the bound of the last attack round.
    weights = [np.zeros_like(w) for w in BASE]
    weights[0][:, 0] = 1.0 / 784
    weights[2][0, 0] = 100.0
    weights[3][0] = -66.0
    clean = DATA.x_test[DATA.y_test != 0]
    cases = [(20.0, Phase()), (-20.0, Phase()), (20.0, Phase(started=5, latest=10))]
    rates = []
    for offset, phase in cases:
        state = holder.state
        gamma, beta = np.zeros(1, np.float32), np.full(1, offset, np.float32)
        state[-5:-3] = [gamma, beta]  # the last batch norm: scale, offset, mean, variance
        holder.state = [*state[:-1], phase.to_array()]
        # eps: 0.3 before poisoning; 0.3 * 0.9 ** (10 - 5) at round 10 of a run started at 5
        eps = 0.3 if not phase.started else 0.3 * 0.9**5
        lifted = np.clip(clean + eps * np.tanh(offset), 0.0, 1.0)
        expected = np.mean(lifted.reshape(len(clean), -1).mean(axis=1) > 0.66)
        rates.append(evaluator.evaluate(weights)["attack_success_rate"])
        assert abs(rates[-1] - expected) < 1e-3
    assert rates[0] == 1.0 and rates[1] == 0.0 and 0.3 < rates[2] < 0.7


def _iba():  # type: ignore[no-untyped-def]
    from attacks import attack_plan

    return attack_plan(SCENARIO.attack).adaptive
