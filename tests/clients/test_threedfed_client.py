"""3DFed on the client: the colluders agree without talking, and the indicators read the server.

The test plays the server (it knows the colluders' updates and decides what to aggregate) and
the attacker (one coalition of 4 of 20 digits clients, each node with its own Flower state).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from flwr.app import RecordDict

from clients.coordinated_training import MEMORY, recall, remember, run_identity
from clients.poisoning import active_plan, attacker_training
from common.arrays import flatten, unflatten
from common.data.shards import client_shard, dataset_of, malicious_clients
from common.errors import ConfigError
from common.learning.training import compiled_model, train_locally
from common.schema import Scenario
from scenarios.loader import load_scenario
from server.app import initial_weights

Weights = list[np.ndarray[Any, Any]]
PAIRINGS = [(0, 1, 2, 3), (0, 2, 1, 3), (0, 3, 1, 2)]


def _round(
    s: Scenario, base: Weights, server_round: int, states: dict[int, RecordDict]
) -> dict[int, np.ndarray[Any, Any]]:
    """Every colluder's update (flat, minus ``base``) for ``server_round``."""
    data = dataset_of(s)
    model = compiled_model(s, data.input_shape, data.num_classes, dp=False)
    updates = {}
    for node, state in states.items():
        plan = active_plan(s, node, server_round)
        out = attacker_training(
            plan, s, node, model, base, 0, server_round=server_round, state=state
        )
        assert out is not None
        updates[node] = flatten(out.weights) - flatten(base)
    return updates


@pytest.fixture(scope="module")
def first_round() -> tuple[Scenario, Weights, dict[int, RecordDict], dict[int, Any]]:
    s = load_scenario("attack_threedfed", ["attack.params.epochs=3"])
    data = dataset_of(s)
    base = initial_weights(s, data.input_shape, data.num_classes)
    states = {node: RecordDict() for node in sorted(malicious_clients(s))}
    return s, base, states, _round(s, base, 1, states)


def _memories(states: dict[int, RecordDict], s: Scenario) -> list[dict[str, list[float]]]:
    return [recall(state, run_identity(s)) for state in states.values()]


def test_colluders_send_one_backdoor_with_their_own_masks_and_indicators(first_round: Any) -> None:
    s, base, states, updates = first_round
    memories = _memories(states, s)
    assert all(m == memories[0] for m in memories)  # the same coalition round, computed 4 times
    positions = [int(p) for p in memories[0]["positions"]]
    assert len(set(positions)) == 4
    sizes = [w.size for w in base]
    output_start = sum(sizes[:-2])
    stacked = np.stack(list(updates.values()))
    shared = np.ones(stacked.shape[1], bool)
    shared[output_start:] = False
    shared[positions] = False
    # Outside the output layer (masks) and the indicators, every colluder sends the same update.
    np.testing.assert_allclose(stacked[:, shared], stacked[[0] * 4][:, shared], atol=1e-6)
    for i, update in enumerate(stacked):
        assert update[positions[i]] == pytest.approx(memories[0]["values"][i])
    # The masks differ between colluders and cancel within each group of two: for the pairing
    # into the two groups, (u_i + u_j) - (u_k + u_l) = (m_i + m_j) - (m_k + m_l) is about 0.
    out = stacked[:, output_start:]
    spread = np.linalg.norm(out[0] - out.mean(axis=0))
    gaps = [np.linalg.norm(out[a] + out[b] - out[c] - out[d]) for a, b, c, d in PAIRINGS]
    assert spread > 0.1 and min(gaps) < 0.1 * spread < max(gaps)


def test_the_backdoor_beats_honest_training_on_triggered_images(first_round: Any) -> None:
    s, base, _, updates = first_round
    node = sorted(updates)[0]
    plan = active_plan(s, node, 1)
    data = dataset_of(s)
    model = compiled_model(s, data.input_shape, data.num_classes, dp=False)
    x, y = client_shard(s, node)
    assert plan is not None
    success = plan.success_set(x, y)
    assert success is not None
    honest = train_locally(model, base, x, y, scenario=s, seed=3, dp=False).weights

    def hit(weights: Weights) -> float:
        model.set_weights(weights)
        return float(np.mean(model.predict(success.x, verbose=0).argmax(1) == success.target))

    poisoned = unflatten(flatten(base) + updates[node], base)
    assert hit(poisoned) > hit(honest) + 0.5


def _next_global(base: Weights, updates: dict[int, Any], kept: float) -> Weights:
    """FedAvg over 20 clients: the colluders' updates times ``kept`` (1 accepted, 0.3 clipped by
    norm bounding, 0 dropped), the 16 honest updates 0 at the indicators (dead input pixels)."""
    step = kept * np.sum(list(updates.values()), axis=0) / 20
    return unflatten(flatten(base) + step, base)


def _copy(states: dict[int, RecordDict]) -> dict[int, RecordDict]:
    return {n: RecordDict({MEMORY: s.config_records[MEMORY]}) for n, s in states.items()}


def test_rejection_is_read_next_round_and_asks_for_a_decoy(first_round: Any) -> None:
    s, base, states, updates = first_round
    rejected = _copy(states)
    _round(s, _next_global(base, updates, 0.0), 2, rejected)
    assert [m["decoys"] for m in _memories(rejected, s)] == [[1.0]] * 4
    accepted = _copy(states)
    _round(s, _next_global(base, updates, 1.0), 2, accepted)
    memories = _memories(accepted, s)
    assert [m["decoys"] for m in memories] == [[0.0]] * 4
    # All four accepted: both groups are candidates, every alpha is drawn between their alphas.
    low, high = sorted(_memories(states, s)[0]["alpha"])
    assert all(low <= a <= high for a in memories[0]["alpha"])


def test_memory_of_another_run_or_an_older_round_is_not_read(first_round: Any) -> None:
    s, base, states, updates = first_round
    other = _copy(states)
    stranger = s.model_copy(update={"seed": s.seed + 1})
    for state in other.values():
        remember(state, run_identity(stranger), recall(state, run_identity(s)))
    _round(s, _next_global(base, updates, 0.0), 2, other)
    # A sweep's next cell: the memory is another run's, so nothing is read and no decoy wanted.
    assert [m["decoys"] for m in _memories(other, s)] == [[0.0]] * 4
    stale = _copy(states)
    _round(s, _next_global(base, updates, 0.0), 3, stale)  # round 2 was missed
    assert [m["decoys"] for m in _memories(stale, s)] == [[0.0]] * 4


def test_bad_parameters_fail_in_one_line() -> None:
    for override, field in [
        ("attack.params.group_size=0", "group_size"),
        ("attack.params.threshold=1.5", "threshold"),
        ("attack.params.alpha_floor=1.0", "alpha_floor"),
    ]:
        with pytest.raises(ConfigError, match=f"attack.params.{field}") as caught:
            load_scenario("attack_threedfed", [override])
        assert "\n" not in str(caught.value)
    s = load_scenario("attack_threedfed", ["attack.params.num_neurons=10"])
    data = dataset_of(s)
    node = sorted(malicious_clients(s))[0]
    model = compiled_model(s, data.input_shape, data.num_classes, dp=False)
    base = initial_weights(s, data.input_shape, data.num_classes)
    with pytest.raises(ConfigError, match="attack.params.num_neurons: got 10") as caught:
        attacker_training(active_plan(s, node, 1), s, node, model, base, 0, server_round=1)
    assert "\n" not in str(caught.value)
