"""A3FL's state across rounds: the colluders' trigger, held by the server-side adversary.

The adversaries played here: the colluders themselves (their trigger must persist, be shared,
and be the one the evaluator measures), an operator who resumes a killed run (the resumed rounds
must equal the uninterrupted ones) and a sweep that runs cells back to back in one process (no
cell may start from another's trigger).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord

from server.checkpoint_state import read_checkpoint, write_checkpoint
from server.evaluation import Evaluator
from server.resume import ResumedStrategy, load_resume_point
from tests.server import _adaptive_rounds as rounds
from tests.server._round import GRID, client_reply, partition_of

SCENARIO, DATA, BASE, MALICIOUS = rounds.setting(
    [
        "rounds=4",
        'attack.type="a3fl"',
        "attack.malicious=2",
        "attack.params={target=0, trigger_size=2, offset=1, trigger_epochs=2, adv_epochs=1}",
    ]
)


NOISE = 0.01


def honest_weights(global_arrays: list[np.ndarray], server_round: int, partition: int):  # type: ignore[no-untyped-def]
    return rounds.honest_weights(global_arrays, server_round, partition, NOISE)


def fresh(tmp_path: Path):  # type: ignore[no-untyped-def]
    return rounds.fresh(tmp_path, SCENARIO, BASE, MALICIOUS)


def play(strategy, shifted, played: range, arrays: list[np.ndarray]):  # type: ignore[no-untyped-def]
    """Each round's new global model and the trigger after it."""
    return [(w, s[0]) for w, s in rounds.play(strategy, shifted, played, arrays, NOISE)]


def test_a_resumed_run_equals_the_uninterrupted_one_and_needs_the_saved_trigger(
    tmp_path: Path,
) -> None:
    runs = rounds.straight_and_resumed(tmp_path, SCENARIO, BASE, MALICIOUS, NOISE, total=3, stop=2)
    straight = [(w, s[0]) for w, s in runs[0]]
    interrupted, point = [(w, s[0]) for w, s in runs[1]], runs[2]
    for (w_expected, t_expected), (w_got, t_got) in zip(straight, interrupted, strict=True):
        np.testing.assert_array_equal(t_expected, t_got)
        for a, b in zip(w_expected, w_got, strict=True):
            np.testing.assert_array_equal(a, b)

    # Not vacuous: the trigger moves every round, and a restart from the initial trigger
    # (the state not restored) gives a different round 3.
    assert not np.array_equal(straight[0][1], straight[1][1])
    strategy, _ = fresh(tmp_path)
    restarted = play(strategy, ResumedStrategy(strategy, 2), range(1, 2), point.weights)
    assert not np.array_equal(restarted[0][1], straight[2][1])


def test_a_checkpoint_written_before_iba_resumes_its_trigger(tmp_path: Path) -> None:
    # Before IBA, A3FL's pattern alone was saved, under "adaptive_trigger".
    rounds.straight_and_resumed(tmp_path, SCENARIO, BASE, MALICIOUS, NOISE, total=2, stop=1)
    state = read_checkpoint(tmp_path)
    (pattern,) = state.pop("adaptive_state")
    write_checkpoint(tmp_path, {**state, "adaptive_trigger": pattern})
    strategy, run_state = fresh(tmp_path)
    run_state.restore(load_resume_point(tmp_path, SCENARIO, rounds.VERSIONS))
    assert not np.array_equal(pattern, fresh(tmp_path)[0].adversary.adaptive.pattern)
    np.testing.assert_array_equal(strategy.adversary.adaptive.pattern, pattern)


def test_the_colluders_share_one_trigger_and_only_their_rows_change(tmp_path: Path) -> None:
    strategy, _ = fresh(tmp_path)
    initial = strategy.adversary.adaptive.pattern.copy()
    sent = strategy.configure_train(1, ArrayRecord(BASE), ConfigRecord(), GRID)
    replies = [client_reply(m, honest_weights(BASE, 1, partition_of(m))) for m in sent]
    strategy.aggregate_train(1, replies)
    result = strategy.sink.take(1)
    assert result is not None and result.attack["a3fl_similarity"] > 0.5
    adaptive = strategy.adversary.adaptive
    assert not np.array_equal(adaptive.pattern, initial)
    # The refined trigger is what every colluder trained with: retraining one reproduces it.
    for partition in sorted(MALICIOUS):
        again = adaptive.poisoned_weights(1, partition, BASE)
        assert not np.allclose(again[0], honest_weights(BASE, 1, partition)[0], atol=0.05)
    # A sweep's next cell builds a new adversary: it starts from the initial trigger.
    next_cell, _ = fresh(tmp_path)
    np.testing.assert_array_equal(next_cell.adversary.adaptive.pattern, initial)


def test_the_evaluator_measures_the_current_trigger(tmp_path: Path) -> None:
    strategy, _ = fresh(tmp_path)
    adaptive = strategy.adversary.adaptive
    evaluator = Evaluator(model_name="mlp", dataset=DATA, success_set=None)
    evaluator.success_source = lambda: adaptive.success_set(DATA.x_test, DATA.y_test)
    # A model whose class-0 logit is 10 * (sum of the square's 4 pixels) - 30: class 0 when
    # the square sums over 3 (the initial trigger, 0.5 each, sums to 2; a white one to 4). ASR
    # follows the trigger the colluders hold right now, not the one they started with.
    square = adaptive.attack.mask(DATA.input_shape).reshape(-1) > 0
    weights = [np.zeros_like(w) for w in BASE]
    weights[0][square, 0] = 10.0
    weights[3][:] = [-30.0, *([0.0] * 9)]
    weights[2][0, 0] = 1.0
    assert evaluator.evaluate(weights)["attack_success_rate"] == 0.0
    adaptive.pattern = np.where(adaptive.pattern > 0, 1.0, 0.0).astype(np.float32)
    assert evaluator.evaluate(weights)["attack_success_rate"] == 1.0
