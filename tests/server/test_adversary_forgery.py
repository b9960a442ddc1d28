"""The adversary hands a colluding attack its own updates and the round, records the forgery's
diagnostics for the round's metrics and prints a degenerate forgery's warning once per run."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from common.arrays import flatten
from common.protocol import TrainReply
from common.schema import Scenario
from scenarios.loader import load_scenario
from server.adversary import Adversary
from server.round import ChainView, RoundUpdates
from strategies import build_chain

GLOBAL = [np.zeros((2, 3), np.float32), np.zeros(2, np.float32)]


def _replies(deltas: NDArray[np.float32]) -> RoundUpdates:
    replies = [
        TrainReply(
            partition_id=p,
            node_id=100 + p,
            server_round=1,
            arrays=[row[:6].reshape(2, 3).copy(), row[6:].copy()],
            num_examples=10,
            train_loss=0.0,
            local_steps=1,
            sampling_rate=1.0,
        )
        for p, row in enumerate(deltas)
    ]
    return RoundUpdates.stack(replies, GLOBAL)


def _adversary(*overrides: str) -> tuple[Scenario, Adversary]:
    s = load_scenario("quickstart", ["attack.malicious=3", *overrides])
    return s, Adversary(s, malicious=frozenset({0, 1, 2}))


def _deployed(s: Scenario) -> ChainView:
    """The scenario's rule at its initial state, as the server would hand it to the adversary."""
    chain = build_chain(s.defense.aggregator, s.defense.params)
    return ChainView(chain, chain.init(8), np.random.default_rng(0))


def _deltas(seed: int) -> NDArray[np.float32]:
    return np.random.default_rng(seed).normal(0.5, 1.0, size=(10, 8)).astype(np.float32)


def test_fang_krum_against_the_median_is_recorded_every_round_and_warned_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    s, adversary = _adversary('attack.type="fang"', 'defense.aggregator="median"')
    records = []
    for server_round in (1, 2, 3):
        replies, record = adversary.collude(
            server_round, _replies(_deltas(server_round)), GLOBAL, aggregator=_deployed(s)
        )
        records.append(record)
        forged = replies.deltas[:3]
        assert np.linalg.norm(forged, axis=1).max() < 1e-4  # the degenerate, almost-zero update
        np.testing.assert_array_equal(replies.deltas[3], _deltas(server_round)[3])
    assert all(r["selected"] == 0.0 and 5e-6 <= r["lambda"] < 1e-5 for r in records)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("warning: round 1: fang (variant krum): ")


def test_alie_own_data_forges_from_the_colluders_own_replies() -> None:
    _, adversary = _adversary('attack.type="alie"', 'attack.params={knowledge="own_data", z=1.0}')
    deltas = _deltas(7)
    replies, record = adversary.collude(1, _replies(deltas), GLOBAL, aggregator=None)
    own = deltas[:3].astype(np.float64)
    expected = own.mean(axis=0) - own.std(axis=0)
    for reply in replies.replies[:3]:
        np.testing.assert_allclose(flatten(reply.arrays), expected, rtol=1e-6, atol=1e-6)
    assert record == {"z": 1.0}
    # With the honest updates' knowledge the same round forges something else.
    _, knowing = _adversary('attack.type="alie"', "attack.params={z=1.0}")
    other, _ = knowing.collude(1, _replies(deltas), GLOBAL, aggregator=None)
    honest = deltas[3:].astype(np.float64)
    np.testing.assert_allclose(
        flatten(other.replies[0].arrays),
        honest.mean(axis=0) - honest.std(axis=0),
        rtol=1e-6,
        atol=1e-6,
    )


def test_no_collusion_attack_leaves_the_round_alone() -> None:
    _, adversary = _adversary('attack.type="sign_flip"')
    replies = _replies(_deltas(1))
    out, record = adversary.collude(1, replies, GLOBAL, aggregator=None)
    assert out is replies and record == {}
