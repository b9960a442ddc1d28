"""Resume without Ray: the checkpoint file, what it holds, and the rounds that follow it.

The adversaries: a crash between any two writes (the checkpoint is the old one or the new one),
a storage attacker who plants a checkpoint (it names no code to run), and an operator who points
``--resume`` at the wrong directory or at a changed installation (refused in one line).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord

from common.results import append_jsonl, atomic_write_json
from scenarios.loader import load_scenario
from server.checkpoint_state import CHECKPOINT_FILE, CheckpointError, read_checkpoint
from server.checkpoint_state import write_checkpoint as write
from server.privacy import PrivacyTracker
from server.resume import ResumedStrategy, ResumePoint, RunState, cut_round_files
from server.resume import load_resume_point as load
from server.round_failures import FailedRounds
from strategies import build_chain
from tests.server._round import GRID, client_reply, make_strategy, partition_of

BASE = [np.zeros((3, 4), np.float32), np.zeros(4, np.float32)]
VERSIONS = {"fedshield": "1", "numpy": "1.26"}


def weights_of(server_round: int, partition: int) -> list[np.ndarray]:
    rng = np.random.default_rng([server_round, partition])
    return [rng.normal(0.0, 1.0, a.shape).astype(np.float32) for a in BASE]


def scenario(*overrides: str):  # type: ignore[no-untyped-def]
    return load_scenario(
        "quickstart",
        ['defense.aggregator="centered_clipping"', "defense.params.radius=0.3", *overrides],
    )


def play(strategy, shifted, rounds: range, arrays: list[np.ndarray]) -> list[list[np.ndarray]]:  # type: ignore[no-untyped-def]
    """Rounds through ``shifted`` (Flower's own counter) as Flower's ``start`` drives them."""
    out = []
    for flower_round in rounds:
        sent = shifted.configure_train(flower_round, ArrayRecord(arrays), ConfigRecord(), GRID)
        server_round = int(next(iter(sent)).content["config"]["server-round"])
        replies = [client_reply(m, weights_of(server_round, partition_of(m))) for m in sent]
        record, _ = shifted.aggregate_train(flower_round, replies)
        arrays = record.to_numpy_ndarrays()
        strategy.sink.take(server_round)
        out.append(arrays)
    return out


def fresh(tmp_path: Path, s):  # type: ignore[no-untyped-def]
    strategy = make_strategy(s, build_chain("centered_clipping", {"radius": 0.3}), num_params=16)
    privacy = PrivacyTracker(s, malicious=frozenset())
    return strategy, RunState(
        tmp_path, strategy, strategy.sink, FailedRounds(3), None, privacy, VERSIONS
    )


def test_four_rounds_equal_two_then_a_checkpoint_then_two_more(tmp_path: Path) -> None:
    s = scenario()
    strategy, _ = fresh(tmp_path, s)
    straight = play(strategy, strategy, range(1, 5), BASE)

    strategy, state = fresh(tmp_path, s)
    first = play(strategy, strategy, range(1, 3), BASE)
    state.failed.streak = 2
    state.privacy.rounds = 2  # type: ignore[union-attr]
    state.save(2, first[-1])

    strategy, state = fresh(tmp_path, s)  # a new process: every object built afresh
    point = load(tmp_path, s, VERSIONS)
    state.restore(point)
    assert point.server_round == 2 and state.failed.streak == 2
    resumed = play(strategy, ResumedStrategy(strategy, 2), range(1, 3), point.weights)
    for expected, got in zip(straight, first + resumed, strict=True):
        for a, b in zip(expected, got, strict=True):
            np.testing.assert_array_equal(a, b)


def test_without_the_chain_state_the_resumed_rounds_differ(tmp_path: Path) -> None:
    # Not vacuous: centered clipping's centre changes rounds 3 and 4.
    s = scenario()
    strategy, _ = fresh(tmp_path, s)
    straight = play(strategy, strategy, range(1, 5), BASE)
    strategy, _ = fresh(tmp_path, s)
    restarted = play(strategy, ResumedStrategy(strategy, 2), range(1, 3), straight[1])
    assert not np.array_equal(restarted[0][0], straight[2][0])


def test_the_shifted_evaluation_skips_flowers_round_zero() -> None:
    seen: list[int] = []
    shifted = ResumedStrategy(
        make_strategy(scenario(), build_chain("fedavg", {}), num_params=16), 3
    )
    evaluate = shifted.evaluate_fn(lambda r, a: seen.append(r))  # type: ignore[arg-type, func-returns-value]
    for flower_round in range(3):
        evaluate(flower_round, ArrayRecord(BASE))
    assert seen == [4, 5]


def test_the_state_tree_round_trips_exactly(tmp_path: Path) -> None:
    chain = build_chain("centered_clipping", {"radius": 0.3})
    _, chain_state = chain.update(
        np.ones((3, 5)), np.ones(3, np.int64), chain.init(5), rng=np.random.default_rng(0)
    )
    state = {
        "chain": chain_state,
        "links": {("uplink", 3): [np.arange(4.0, dtype=np.float32)]},
        "numpy": np.random.get_state(),
        "floats": [float("nan"), float("inf"), -0.0, 1e-300],
        "nested": {1: {"a": (True, None, "x")}},
    }
    write(tmp_path, state)
    back = read_checkpoint(tmp_path)
    assert type(back["chain"]) is type(chain_state)
    for a, b in zip(back["chain"][0], chain_state[0], strict=True):
        np.testing.assert_array_equal(a, b)
    assert list(back["links"]) == [("uplink", 3)]
    np.testing.assert_array_equal(back["numpy"][1], state["numpy"][1])
    assert back["numpy"][0] == "MT19937" and back["numpy"][2:] == state["numpy"][2:]
    assert np.isnan(back["floats"][0]) and back["floats"][1:] == [float("inf"), -0.0, 1e-300]
    assert back["nested"] == {1: {"a": (True, None, "x")}}
    assert [p.name for p in tmp_path.iterdir()] == [CHECKPOINT_FILE]  # no temporary left


def _plant(tmp_path: Path, tree: object) -> None:
    np.savez(tmp_path / CHECKPOINT_FILE, tree=np.array(json.dumps({"format": 1, "state": tree})))


@pytest.mark.parametrize(
    ("tree", "says"),
    [
        ({"n": "os:system", "t": ["echo pwned"]}, "outside"),
        ({"n": "strategies:build_chain", "t": []}, "not a NamedTuple"),
        ({"a": 7}, "index"),
        ({"q": 1}, "unexpected node"),
        ({"d": [[{"l": []}, 1]]}, "unhashable"),
        ({"l": [1, 2]}, "not a table"),
    ],
)
def test_a_planted_or_broken_tree_is_refused_in_one_line(
    tmp_path: Path, tree: object, says: str
) -> None:
    _plant(tmp_path, tree)
    with pytest.raises(CheckpointError, match=says) as caught:
        read_checkpoint(tmp_path)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("cut", [0, 10, 100, -1])
def test_a_torn_or_foreign_file_is_refused_in_one_line(tmp_path: Path, cut: int) -> None:
    write(tmp_path, {"round": 1, "weights": BASE})
    path = tmp_path / CHECKPOINT_FILE
    data = path.read_bytes()
    path.write_bytes(data[:cut] if cut >= 0 else b"\x80\x04pickle" + data)
    with pytest.raises(CheckpointError, match="is corrupt") as caught:
        read_checkpoint(tmp_path)
    assert "\n" not in str(caught.value)


def test_an_object_array_is_never_unpickled(tmp_path: Path) -> None:
    np.savez(tmp_path / CHECKPOINT_FILE, tree=np.array([{"format": 1}], dtype=object))
    with pytest.raises(CheckpointError, match="is corrupt"):
        read_checkpoint(tmp_path)


def test_resume_refuses_a_missing_checkpoint_another_scenario_and_other_versions(
    tmp_path: Path,
) -> None:
    s = scenario()
    with pytest.raises(CheckpointError, match="no resume.npz"):
        load(tmp_path, s, VERSIONS)
    strategy, state = fresh(tmp_path, s)
    state.save(1, BASE)
    with pytest.raises(CheckpointError, match="another scenario"):
        load(tmp_path, scenario("rounds=11"), VERSIONS)
    with pytest.raises(CheckpointError, match=r"other package versions \(numpy\)"):
        load(tmp_path, s, {**VERSIONS, "numpy": "2.0"})
    state.save(s.rounds, BASE)
    with pytest.raises(CheckpointError, match="already finished all 10 rounds"):
        load(tmp_path, s, VERSIONS)
    marked = scenario("integrity.enabled=true", "integrity.watermark.enabled=true")
    with pytest.raises(CheckpointError, match="watermark"):
        load(tmp_path, marked, VERSIONS)


def test_the_logs_are_cut_back_to_the_checkpoints_round(tmp_path: Path) -> None:
    for r in range(4):
        append_jsonl(tmp_path / "metrics.jsonl", {"round": r, "accuracy": 0.1 * r})
        append_jsonl(tmp_path / "ledger.jsonl", {"round": r})
        atomic_write_json(tmp_path / "checkpoints" / f"round_{r:04d}.npz", {})
    cut_round_files(tmp_path, 2)
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rows] == [0, 1, 2]
    assert len((tmp_path / "ledger.jsonl").read_text().splitlines()) == 3
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir())[-1] == "round_0002.npz"


def test_the_point_hands_back_the_saved_weights(tmp_path: Path) -> None:
    point = ResumePoint(1, {"weights": [np.ones(2, np.float32)]})
    np.testing.assert_array_equal(point.weights[0], np.ones(2))


def test_a_compressed_member_is_refused_before_it_is_inflated(tmp_path: Path) -> None:
    # 64 MB of zeros deflate to about 64 kB: a planted checkpoint must not inflate it.
    bomb = {"tree": np.array(json.dumps({"format": 1, "state": {"a0": {"a": 0}}}))}
    np.savez_compressed(tmp_path / CHECKPOINT_FILE, a0=np.zeros(2**24, np.float32), **bomb)
    assert (tmp_path / CHECKPOINT_FILE).stat().st_size < 2**20
    with pytest.raises(CheckpointError, match="compressed member 'a0.npy'"):
        read_checkpoint(tmp_path)


def test_the_guards_quarantine_the_wire_and_the_accountant_survive_a_checkpoint(
    tmp_path: Path,
) -> None:
    from types import SimpleNamespace
    from typing import cast

    from server.evaluation import Evaluator
    from server.guard import IntegrityGuard
    from server.integrity.gate import GateState
    from server.privacy_accounting import RoundEvent

    s = load_scenario("quickstart", ["integrity.enabled=true"])
    evaluator = cast(Evaluator, SimpleNamespace(model=None, dataset=None))  # watermark off

    def objects(run_dir: Path) -> RunState:
        guard = IntegrityGuard(s, run_dir, malicious=frozenset(), evaluator=evaluator)
        strategy = make_strategy(s, build_chain("fedavg", {}), num_params=16, guard=guard)
        privacy = PrivacyTracker(s, malicious=frozenset())
        return RunState(run_dir, strategy, strategy.sink, FailedRounds(3), guard, privacy, VERSIONS)

    state = objects(tmp_path)
    assert state.guard is not None and state.privacy is not None
    state.guard.state = GateState({3: 7, 5: 4})
    state.guard.shard_sizes = {0: 140, 1: 150}
    state.guard.flagged_by_round = {1: [3], 2: [3, 5]}
    state.strategy.adversary._recorded = {("uplink", 3): [np.full(4, 2.0, np.float32)]}
    state.privacy.ledger.record(
        2,
        server_round=1,
        steps=9,
        epochs=1,
        sampling_rate=0.2,
        noise_multiplier=1.1,
        microbatch_size=1,
    )
    state.sink.ever_accepted = {0, 2}
    state.save(2, BASE)

    back = objects(tmp_path)
    back.restore(load(tmp_path, s, VERSIONS))
    assert back.guard is not None and back.privacy is not None
    assert back.guard.state.is_quarantined(3, 7) and not back.guard.state.is_quarantined(3, 8)
    assert dict(back.guard.state.quarantined_until) == {3: 7, 5: 4}
    assert back.guard.shard_sizes == {0: 140, 1: 150}
    assert back.guard.flagged_by_round == {1: [3], 2: [3, 5]}
    np.testing.assert_array_equal(
        back.strategy.adversary._recorded[("uplink", 3)][0], np.full(4, 2.0)
    )
    assert back.privacy.ledger._events[2] == [RoundEvent(1, 9, 1, 0.2, 1.1, 1)]
    assert back.sink.ever_accepted == {0, 2}
