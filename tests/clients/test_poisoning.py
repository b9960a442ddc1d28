"""Client shards: data poisoning touches only the malicious clients, at the configured ratio."""

from __future__ import annotations

from typing import Any

import numpy as np

from attacks import get_attack
from attacks.base import DataAttack
from clients.poisoning import poisoned_shard
from common.data.shards import client_shard, malicious_clients, partitions_of
from common.schema import Scenario
from scenarios.loader import load_scenario


def _data_attack(s: Scenario) -> DataAttack[Any]:
    attack = get_attack(s.attack.type, **s.attack.params)
    assert isinstance(attack, DataAttack)
    return attack


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
        x, y = (
            poisoned_shard(s, partition_id, _data_attack(s))
            if partition_id in bad
            else client_shard(s, partition_id)
        )
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
    x, y = poisoned_shard(s, partition_id, _data_attack(s))
    touched = np.any(x != clean_x, axis=(1, 2, 3)) | (y != clean_y)
    # The trigger's 3x3 corner is blank in every digits image, so each poisoned image changes.
    assert int(touched.sum()) == round(0.25 * len(clean_y))
    assert np.all(y[touched] == 0)
    assert sum(len(p) for p in partitions_of(s)) == 1437
