"""A malicious client's path: data attack on its shard, training, update attack on its delta."""

from __future__ import annotations

import numpy as np

from clients.poisoning import active_plan, attacker_training, poisoned_update, training_shard
from common.arrays import flatten
from common.data.shards import client_shard, dataset_of, malicious_clients, partitions_of
from common.learning.training import compiled_model, train_locally
from common.schema import Scenario
from scenarios.loader import load_scenario
from server.app import initial_weights


def _shard(s: Scenario, partition_id: int) -> tuple[np.ndarray, np.ndarray]:
    return training_shard(s, partition_id, active_plan(s, partition_id, server_round=1))


def test_label_flip_changes_only_malicious_shards_at_the_ratio() -> None:
    s = load_scenario(
        "quickstart",
        [
            'attack.type="label_flip"',
            "attack.malicious=3",
            'attack.params={mode="reverse", ratio=0.5}',
        ],
    )
    bad = malicious_clients(s)
    assert len(bad) == 3
    for partition_id in range(s.data.num_clients):
        clean_x, clean_y = client_shard(s, partition_id)
        x, y = _shard(s, partition_id)
        np.testing.assert_array_equal(x, clean_x)  # label flipping never touches the images
        changed = int(np.sum(y != clean_y))
        if partition_id in bad:
            flipped = y != clean_y
            assert np.all(y[flipped] == 9 - clean_y[flipped])
            # ratio 0.5 of the shard, rounded; a digit 4.5 <-> 4.5 cannot exist, so all change
            assert changed == round(0.5 * len(clean_y))
        else:
            assert changed == 0


def test_backdoor_stamps_the_trigger_on_the_ratio_and_relabels_to_the_target() -> None:
    s = load_scenario(
        "quickstart",
        ['attack.type="backdoor"', "attack.malicious=2", "attack.params={target=0, ratio=0.25}"],
    )
    (partition_id, *_) = sorted(malicious_clients(s))
    clean_x, clean_y = client_shard(s, partition_id)
    x, y = _shard(s, partition_id)
    touched = np.any(x != clean_x, axis=(1, 2, 3)) | (y != clean_y)
    # The trigger's 3x3 corner is blank in every digits image, so each poisoned image changes.
    assert int(touched.sum()) == round(0.25 * len(clean_y))
    assert np.all(y[touched] == 0)
    assert sum(len(p) for p in partitions_of(s)) == 1437


def test_dba_colluders_stamp_their_own_share_ranked_by_partition_id() -> None:
    s = load_scenario(
        "quickstart",
        ['attack.type="dba"', "attack.malicious=3", "attack.params={target=0, ratio=1.0}"],
    )
    rows_of = {}
    for rank, partition_id in enumerate(sorted(malicious_clients(s))):
        clean_x, _ = client_shard(s, partition_id)
        x, _ = _shard(s, partition_id)
        changed = np.any(x != clean_x, axis=(0, 2, 3))  # which image rows any sample changed in
        rows_of[rank] = set(np.flatnonzero(changed).tolist())
    # Rank r stamps row 1 + r only (BackFed's layout): three colluders, three different rows.
    assert rows_of == {0: {1}, 1: {2}, 2: {3}}


def test_model_replacement_client_sends_its_backdoor_update_boosted_by_gamma() -> None:
    s = load_scenario("attack_model_replacement", ["train.local_epochs=1"])
    (attacker,) = malicious_clients(s)
    honest = next(p for p in range(s.data.num_clients) if p != attacker)
    # The attack acts in round 6 only, and only for the malicious client.
    assert active_plan(s, attacker, 5) is None and active_plan(s, honest, 6) is None
    plan = active_plan(s, attacker, 6)
    assert plan is not None and plan.data is not None and plan.update is not None

    data = dataset_of(s)
    model = compiled_model(s, data.input_shape, data.num_classes, dp=False)
    base = [np.asarray(w, np.float32) for w in model.get_weights()]
    x, y = training_shard(s, attacker, plan)
    clean_x, clean_y = client_shard(s, attacker)
    assert int(np.sum(y != clean_y)) > 0 and not np.array_equal(x, clean_x)  # backdoored shard

    trained = train_locally(model, base, x, y, scenario=s, seed=3, dp=False).weights
    clean = train_locally(model, base, clean_x, clean_y, scenario=s, seed=3, dp=False).weights
    sent, count = poisoned_update(plan, base, trained, len(y), np.random.default_rng(0))

    backdoor_delta = flatten(trained) - flatten(base)
    sent_delta = flatten(sent) - flatten(base)
    # The update sent is gamma = 10 times the update trained on the backdoored shard ...
    np.testing.assert_allclose(sent_delta, 10.0 * backdoor_delta, rtol=1e-4, atol=1e-6)
    assert count == len(y)
    # ... which is not the update the clean shard gives (the backdoor changed the training).
    assert not np.allclose(backdoor_delta, flatten(clean) - flatten(base), atol=1e-6)
    # Without an update attack in the plan the trained weights go out untouched.
    unboosted, _ = poisoned_update(None, base, trained, len(y), np.random.default_rng(0))
    assert unboosted is trained


def test_alter_min_client_trains_its_backdoor_and_leaves_honest_training_alone() -> None:
    s = load_scenario("attack_alter_min", ["attack.params.epochs=2"])
    (attacker,) = malicious_clients(s)
    honest = next(p for p in range(s.data.num_clients) if p != attacker)
    data = dataset_of(s)
    model = compiled_model(s, data.input_shape, data.num_classes, dp=False)
    # The run's own initial model: the cached model holds whatever an earlier test left in it.
    base = initial_weights(s, data.input_shape, data.num_classes)
    clean_x, clean_y = client_shard(s, attacker)
    before = train_locally(model, base, *client_shard(s, honest), scenario=s, seed=3, dp=False)

    plan = active_plan(s, attacker, 1)
    assert plan is not None and plan.training is not None and plan.data is None
    # A training attack trains on the clean shard itself: no data attack rewrites it first.
    x, y = training_shard(s, attacker, plan)
    assert np.array_equal(x, clean_x) and np.array_equal(y, clean_y)
    assert attacker_training(active_plan(s, honest, 1), s, honest, model, base, 3) is None
    assert attacker_training(active_plan(s, attacker, 7), s, attacker, model, base, 3) is None

    outcome = attacker_training(plan, s, attacker, model, base, 3)
    assert outcome is not None and outcome.local_steps == 2 * 2 * 5  # anchor + stealth, 5 a epoch
    honest_run = train_locally(model, base, clean_x, clean_y, scenario=s, seed=3, dp=False)
    success = plan.success_set(clean_x, clean_y)
    assert success is not None

    def triggered_accuracy(weights: list[np.ndarray]) -> float:
        model.set_weights(weights)
        return float(np.mean(model.predict(success.x, verbose=0).argmax(1) == success.target))

    # From the same global model, the attacker's round classifies its triggered images as the
    # target far more often than honest training of its shard does.
    assert triggered_accuracy(outcome.weights) > triggered_accuracy(honest_run.weights) + 0.5
    # The shared cached model still runs the honest compiled round exactly as before.
    after = train_locally(model, base, *client_shard(s, honest), scenario=s, seed=3, dp=False)
    for a, b in zip(before.weights, after.weights, strict=True):
        np.testing.assert_array_equal(a, b)
