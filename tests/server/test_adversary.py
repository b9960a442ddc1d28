"""The simulated colluders: they see the deployed rule as it really stands, and no rule can count
on where their forged rows sit.

Adversary: colluding clients of an omniscient attack (Fang, optimised ALIE/IPM), who know the
honest updates of the round, the deployed chain, its state and the round's randomness.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from attacks.forging import Forgery, RoundView
from common.arrays import flatten
from common.data.shards import malicious_clients
from scenarios.loader import load_scenario
from server.round import ChainView
from strategies import build_chain
from strategies.base import Aggregate, ChainState, Counts, Rule, Updates
from strategies.layout import Inspection
from tests.server._round import make_strategy, play_round

BASE = [np.zeros((3, 4), np.float32), np.zeros(4, np.float32)]


def _honest_client(seed: int) -> Any:
    """Honest clients move every weight by about +0.5 (a fresh draw each call)."""
    rng = np.random.default_rng(seed)
    return lambda p: [(0.5 + 0.1 * rng.standard_normal(a.shape)).astype(np.float32) for a in BASE]


@dataclass(frozen=True)
class Attacked:
    """What the colluders saw and forged in their round, and the step the server took."""

    view: ChainView
    rows: Updates
    """The honest rows, then the forged ones: what the attack's own search aggregates."""
    counts: Counts
    actual: Aggregate


def _attacked_round(
    monkeypatch: pytest.MonkeyPatch, overrides: list[str], chain: Rule, attack_round: int
) -> Attacked:
    scenario = load_scenario("quickstart", [*overrides, "attack.malicious=2",
                                            f"attack.start_round={attack_round}"])  # fmt: skip
    strategy = make_strategy(scenario, chain, num_params=16, malicious=malicious_clients(scenario))
    attack = strategy.adversary.plan.collusion
    assert attack is not None
    forge = attack.forge
    seen: dict[str, Any] = {}

    def spy(view: RoundView) -> Forgery:
        forgery = forge(view)
        assert view.honest is not None
        seen.update(honest=view.honest.copy(), view=view.aggregator, forgery=forgery)
        return forgery

    monkeypatch.setattr(attack, "forge", spy)
    client = _honest_client(0)
    weights = BASE
    for server_round in range(1, attack_round):
        weights, _ = play_round(strategy, server_round, weights, client)
    assert not seen
    new, result = play_round(strategy, attack_round, weights, client)
    assert result.accepted == tuple(range(10))
    assert result.attack == dict(seen["forgery"].diagnostics)
    assert isinstance(seen["view"], ChainView)
    rows = np.vstack([seen["honest"], seen["forgery"].updates])
    actual = flatten(new) - flatten(weights)
    return Attacked(seen["view"], rows, np.full(10, 10, dtype=np.int64), actual)


def test_the_omniscient_adversary_predicts_the_servers_centred_clipping_step_in_round_3(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    overrides = ['defense.aggregator="centered_clipping"', "defense.params.radius=0.05",
                 'attack.type="optimal_ipm"']  # fmt: skip
    chain = build_chain("centered_clipping", {"radius": 0.05})
    seen = _attacked_round(monkeypatch, overrides, chain, attack_round=3)
    # The rows the server aggregates are the forged deltas rounded through float32 weights.
    np.testing.assert_allclose(seen.view(seen.rows, seen.counts), seen.actual, rtol=1e-5, atol=1e-6)
    # The old adversary ran a fresh copy of the chain (centre 0, default_rng(0)): a rule the
    # server does not run. Measured: the server steps by about 0.031 a coordinate from its
    # centre of rounds 1-2, the fresh chain by about 0.007 from zero.
    fresh = chain(seen.rows, seen.counts)
    assert np.all(np.abs(fresh) < 0.4 * np.abs(seen.actual))


def test_the_omniscient_adversary_predicts_random_buckets_in_the_servers_row_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    overrides = ['defense.aggregator="median"', 'attack.type="optimal_alie"',
                 'defense.pre=[{name="bucketing", params={bucket_size=2}}]']  # fmt: skip
    chain = build_chain("median", {}, [("bucketing", {"bucket_size": 2})])
    seen = _attacked_round(monkeypatch, overrides, chain, attack_round=1)
    np.testing.assert_allclose(seen.view(seen.rows, seen.counts), seen.actual, rtol=1e-5, atol=1e-6)
    # The same draws on the rows in the attack's own order (forged last) make other buckets.
    unplaced = replace(seen.view, positions=None)(seen.rows, seen.counts)
    assert float(np.max(np.abs(unplaced - seen.actual))) > 0.01
    assert float(np.max(np.abs(chain(seen.rows, seen.counts) - seen.actual))) > 0.01


@dataclass
class FirstRow:
    """An order-sensitive rule (for this test only, never registered): the first row wins."""

    name: str = "first_row"
    seen: list[Updates] = field(default_factory=list)

    def min_clients(self) -> int:
        return 1

    def needs_reference(self) -> bool:
        return False

    def needs_client_ids(self) -> bool:
        return False

    def needs_layout(self) -> bool:
        return False

    def needs_ddifs(self) -> bool:
        return False

    def needs_features(self) -> bool:
        return False

    def indicator_task(self) -> None:
        return None

    def init(self, num_params: int) -> ChainState:
        return ()

    def update(
        self,
        updates: Updates,
        num_examples: Counts,
        state: ChainState,
        *,
        rng: np.random.Generator,
        reference: Aggregate | None = None,
        client_ids: NDArray[np.int64] | None = None,
        inspection: Inspection | None = None,
    ) -> tuple[Aggregate, ChainState]:
        self.seen.append(np.array(updates))
        return np.array(updates[0]), state

    def __call__(
        self,
        updates: Updates,
        num_examples: Counts,
        *,
        reference: Aggregate | None = None,
        inspection: Inspection | None = None,
    ) -> Aggregate:
        return self.update(updates, num_examples, (), rng=np.random.default_rng(0))[0]


def test_forged_rows_are_shuffled_among_the_honest_ones_before_the_rule_runs() -> None:
    # IPM forges -0.5 x the honest mean: the forged rows are the negative ones.
    scenario = load_scenario("quickstart", ['attack.type="ipm"', "attack.malicious=2"])
    rule = FirstRow()
    strategy = make_strategy(scenario, rule, num_params=16, malicious=malicious_clients(scenario))
    client = _honest_client(1)
    first_is_forged = []
    for server_round in range(1, 13):
        new, _ = play_round(strategy, server_round, BASE, client)
        first_is_forged.append(bool(np.all(new[0] < 0)))
    positions = [tuple(np.flatnonzero(rows[:, 0] < 0)) for rows in rule.seen]
    assert all(len(p) == 2 for p in positions)
    # Attacks append their forged rows after the honest ones; the server's seeded shuffle puts
    # them elsewhere, and in another place every round.
    assert any(p != (8, 9) for p in positions)
    assert len(set(positions)) > 6
    assert any(first_is_forged) and not all(first_is_forged)
