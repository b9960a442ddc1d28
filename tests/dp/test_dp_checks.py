"""Validation against shard sizes: a meaningless delta is refused, an idle shard is announced."""

from __future__ import annotations

import warnings

import pytest

from common.data.shards import partitions_of
from common.dp_checks import DPWarning
from common.errors import ConfigError
from scenarios.loader import load_scenario


def test_delta_of_one_over_the_smallest_shard_is_refused_before_ray() -> None:
    scenario = load_scenario("dp_local", ["seed=3"])
    smallest = min(len(p) for p in partitions_of(scenario))
    assert 130 <= smallest <= 150  # digits over 10 IID clients
    with pytest.raises(ConfigError, match=r"^dp.delta: got 0.5; must be < 1/n = 0.00"):
        load_scenario("dp_local", ["seed=3", "dp.delta=0.5"])
    with pytest.raises(ConfigError, match=rf"for n = {smallest} records \(the shard of client"):
        load_scenario("dp_local", ["seed=3", f"dp.delta={1 / smallest}"])
    load_scenario("dp_local", ["seed=3", f"dp.delta={0.99 / smallest}"])
    load_scenario("dp_local", ["seed=3", "dp.delta=0.5", "dp.enabled=false"])  # no DP, no claim


def test_central_delta_is_checked_against_the_number_of_clients() -> None:
    with pytest.raises(ConfigError, match=r"^dp.delta: got 0.1; must be < 1/n = 0.1 for n = 10"):
        load_scenario("dp_central", ["dp.delta=0.1"])
    load_scenario("dp_central", ["dp.delta=0.09"])


def test_a_batch_larger_than_a_shard_under_shuffle_sampling_warns() -> None:
    overrides = ["seed=3", "train.batch_size=200", 'dp.sampling="shuffle"']
    with pytest.warns(DPWarning, match=r"clients \[0, 1, 2, 3, 4, 5, 6, 7, 8, 9\] are smaller"):
        load_scenario("dp_local", overrides)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DPWarning)
        load_scenario("dp_local", overrides[:2])  # Poisson: q = 1, every shard trains
        load_scenario("dp_local", ["seed=3", "train.batch_size=100", 'dp.sampling="shuffle"'])
