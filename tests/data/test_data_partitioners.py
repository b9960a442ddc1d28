"""Partitioners: contracts over the registry, golden numbers, label skew, shard bound, errors."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from common.data.partitioners import (
    PARTITIONERS,
    label_histogram,
    partition,
    partition_hash,
    partition_sizes,
)
from common.errors import ConfigError

SCHEME_PARAMS: dict[str, dict[str, Any]] = {
    "iid": {},
    "dirichlet": {"alpha": 0.5, "min_partition_size": 0},
    "shard": {"shards_per_client": 2},
}


def _labels(counts: list[int]) -> NDArray[np.int64]:
    """Read-only labels: ``counts[c]`` examples of class ``c``, in a fixed shuffled order."""
    labels = np.random.default_rng(123).permutation(np.repeat(np.arange(len(counts)), counts))
    labels = labels.astype(np.int64)
    labels.setflags(write=False)
    return labels


BALANCED = _labels([100] * 10)  # 1,000 examples, 10 classes


def _check_exact_cover(parts: list[NDArray[np.int64]], num_examples: int) -> None:
    for part in parts:
        assert part.dtype == np.int64
        assert np.all(np.diff(part) > 0)  # sorted, no repeats
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(num_examples))


def test_registry_lists_the_four_schemes() -> None:
    assert list(PARTITIONERS) == ["dirichlet", "iid", "natural", "shard"]


@pytest.mark.parametrize("scheme", sorted(SCHEME_PARAMS))
def test_parts_are_sorted_disjoint_and_cover_every_example(scheme: str) -> None:
    parts = partition(BALANCED, num_clients=7, scheme=scheme, params=SCHEME_PARAMS[scheme], seed=3)
    assert len(parts) == 7
    _check_exact_cover(parts, 1000)
    assert sum(partition_sizes(parts)) == 1000


@pytest.mark.parametrize("scheme", sorted(SCHEME_PARAMS))
def test_same_seed_same_parts_other_seed_other_parts(scheme: str) -> None:
    params = SCHEME_PARAMS[scheme]
    first = partition(BALANCED, num_clients=10, scheme=scheme, params=params, seed=11)
    again = partition(BALANCED, num_clients=10, scheme=scheme, params=params, seed=11)
    other = partition(BALANCED, num_clients=10, scheme=scheme, params=params, seed=12)
    assert partition_hash(first) == partition_hash(again)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert partition_hash(first) != partition_hash(other)


def test_schemes_use_separate_random_streams() -> None:
    # Same seed, two schemes whose draws could coincide if they shared a generator: not equal.
    iid = partition(BALANCED, num_clients=2, scheme="iid", params={}, seed=0)
    shard = partition(
        BALANCED, num_clients=2, scheme="shard", params={"shards_per_client": 1}, seed=0
    )
    assert partition_hash(iid) != partition_hash(shard)


def test_input_labels_are_not_modified() -> None:
    before = BALANCED.copy()
    for scheme, params in SCHEME_PARAMS.items():
        partition(BALANCED, num_clients=5, scheme=scheme, params=params, seed=0)
    assert np.array_equal(BALANCED, before)


@given(
    counts=st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=6),
    num_clients=st.integers(min_value=1, max_value=12),
    scheme=st.sampled_from(sorted(SCHEME_PARAMS)),
    seed=st.integers(min_value=0, max_value=2**31 - 1),
)
@settings(max_examples=60, deadline=None)
def test_property_exact_cover_for_any_labels(
    counts: list[int], num_clients: int, scheme: str, seed: int
) -> None:
    labels = _labels(counts)
    assume(labels.size >= 2 * num_clients)  # shard needs K*s <= N; the others K <= N
    parts = partition(
        labels, num_clients=num_clients, scheme=scheme, params=SCHEME_PARAMS[scheme], seed=seed
    )
    _check_exact_cover(parts, labels.size)


@given(
    num_examples=st.integers(min_value=1, max_value=500),
    num_clients=st.integers(min_value=1, max_value=50),
)
@settings(max_examples=40, deadline=None)
def test_iid_sizes_differ_by_at_most_one(num_examples: int, num_clients: int) -> None:
    assume(num_clients <= num_examples)
    labels = np.zeros(num_examples, dtype=np.int64)
    sizes = partition_sizes(
        partition(labels, num_clients=num_clients, scheme="iid", params={}, seed=1)
    )
    assert max(sizes) - min(sizes) <= 1
    assert sum(sizes) == num_examples


def test_iid_sizes_golden() -> None:
    sizes = partition_sizes(
        partition(BALANCED[:103], num_clients=10, scheme="iid", params={}, seed=0)
    )
    assert sizes == [11, 11, 11, 10, 10, 10, 10, 10, 10, 10]


def _mean_total_variation(labels: NDArray[np.int64], parts: list[NDArray[np.int64]]) -> float:
    """Mean over clients of TV(p_k, p) = 0.5 * sum_c |p_k(c) - p(c)|."""
    hist = label_histogram(labels, parts, 10).astype(np.float64)
    local = hist / hist.sum(axis=1, keepdims=True)
    global_ = np.bincount(labels, minlength=10) / labels.size
    return float(np.mean(0.5 * np.abs(local - global_).sum(axis=1)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dirichlet_skew_grows_as_alpha_falls(seed: int) -> None:
    labels = _labels([500] * 10)
    tv = [
        _mean_total_variation(
            labels,
            partition(
                labels,
                num_clients=20,
                scheme="dirichlet",
                params={"alpha": alpha, "min_partition_size": 1},
                seed=seed,
            ),
        )
        for alpha in (100.0, 1.0, 0.1)
    ]
    assert tv[0] < 0.1 < tv[1] < tv[2]  # near-IID at alpha=100; strictly more skew as alpha falls
    assert tv[2] > 0.6


def test_dirichlet_respects_min_partition_size() -> None:
    parts = partition(
        BALANCED,
        num_clients=10,
        scheme="dirichlet",
        params={"alpha": 0.3, "min_partition_size": 20},
        seed=5,
    )
    assert min(partition_sizes(parts)) >= 20


def test_shard_clients_see_at_most_two_labels_per_shard() -> None:
    # McMahan et al.'s setting scaled down: 10 classes x 100, 10 clients x 2 shards of 50.
    parts = partition(
        BALANCED, num_clients=10, scheme="shard", params={"shards_per_client": 2}, seed=4
    )
    assert partition_sizes(parts) == [100] * 10
    labels_seen = (label_histogram(BALANCED, parts, 10) > 0).sum(axis=1)
    assert labels_seen.max() <= 2
    assert labels_seen.min() >= 1


@given(
    counts=st.lists(st.integers(min_value=60, max_value=120), min_size=2, max_size=8),
    shards_per_client=st.integers(min_value=1, max_value=3),
    seed=st.integers(min_value=0, max_value=1000),
)
@settings(max_examples=30, deadline=None)
def test_shard_label_bound_holds_for_unbalanced_classes(
    counts: list[int], shards_per_client: int, seed: int
) -> None:
    # With ceil(N / (K s)) <= min class count, a shard spans at most 2 classes: <= 2 s labels.
    labels = _labels(counts)
    num_clients = max(1, -(-labels.size // (60 * shards_per_client)))
    parts = partition(
        labels,
        num_clients=num_clients,
        scheme="shard",
        params={"shards_per_client": shards_per_client},
        seed=seed,
    )
    labels_seen = (label_histogram(labels, parts, len(counts)) > 0).sum(axis=1)
    assert labels_seen.max() <= 2 * shards_per_client
    sizes = partition_sizes(parts)
    assert sum(sizes) == labels.size


def test_partition_hash_golden_format() -> None:
    # Per part: size as int64 LE, then the indices as int64 LE.
    parts = [np.array([0, 1], dtype=np.int64), np.array([2], dtype=np.int64)]
    expected = hashlib.sha256(
        (2).to_bytes(8, "little")
        + (0).to_bytes(8, "little")
        + (1).to_bytes(8, "little")
        + (1).to_bytes(8, "little")
        + (2).to_bytes(8, "little")
    ).hexdigest()
    assert partition_hash(parts) == expected
    moved_boundary = [np.array([0], dtype=np.int64), np.array([1, 2], dtype=np.int64)]
    assert partition_hash(moved_boundary) != expected


def test_label_histogram_golden() -> None:
    labels = np.array([0, 1, 1, 2, 2, 2], dtype=np.int64)
    parts = [np.array([0, 3], dtype=np.int64), np.array([1, 2, 4, 5], dtype=np.int64)]
    assert label_histogram(labels, parts, 3).tolist() == [[1, 0, 1], [0, 2, 2]]
    assert label_histogram(labels, parts, 4).tolist() == [[1, 0, 1, 0], [0, 2, 2, 0]]


@pytest.mark.parametrize(
    ("scheme", "params", "num_clients", "message"),
    [
        (
            "dirichlet",
            {"alpha": 0},
            5,
            "data.partition.params.alpha: got 0; Input should be greater than 0",
        ),
        ("dirichlet", {}, 5, "data.partition.params.alpha: required field is missing"),
        ("dirichlet", {"alpha": 1, "beta": 2}, 5, "data.partition.params.beta: unknown key"),
        ("iid", {"alpha": 1}, 5, "data.partition.params.alpha: unknown key"),
        ("shard", {"shards_per_client": 0}, 5, "data.partition.params.shards_per_client: got 0"),
        (
            "shard",
            {"shards_per_client": 101},
            10,
            "data.partition.params.shards_per_client: got 101",
        ),
        ("dirichlet", {"alpha": 1, "min_partition_size": 101}, 10, "min_partition_size: got 101"),
        ("iid", {}, 1001, "data.num_clients: got 1001; must be between 1 and the 1000"),
        ("iid", {}, 0, "data.num_clients: got 0"),
        ("nope", {}, 5, "unknown partitioner 'nope'; valid: dirichlet, iid, natural, shard"),
    ],
)
def test_bad_parameters_fail_in_one_line(
    scheme: str, params: dict[str, Any], num_clients: int, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        partition(BALANCED, num_clients=num_clients, scheme=scheme, params=params, seed=0)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_unreachable_min_partition_size_fails_after_bounded_redraws() -> None:
    # alpha = 0.01 puts each class on ~one client: 10 clients cannot all reach 90 examples.
    with pytest.raises(
        ConfigError, match=r"min_partition_size: got 90; not reached in 11 Dirichlet draws"
    ):
        partition(
            BALANCED,
            num_clients=10,
            scheme="dirichlet",
            params={"alpha": 0.01, "min_partition_size": 90},
            seed=0,
        )


def test_labels_must_be_one_dimensional_non_negative_integers() -> None:
    with pytest.raises(ConfigError, match="need 1-D integers"):
        floats: NDArray[np.float64] = np.zeros(10)  # wrong on purpose: the runtime check
        partition(floats, num_clients=2, scheme="iid", params={}, seed=0)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="must be >= 0"):
        partition(np.array([0, -1, 2]), num_clients=2, scheme="iid", params={}, seed=0)
