"""Pixel, blended and DBA backdoors: hand-computed patterns, exact counts, success sets."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from attack_test_helpers import read_only
from numpy.typing import NDArray

from attacks import get_attack
from attacks.backdoor_triggers import BlendedBackdoor, DistributedBackdoor, PixelBackdoor
from common.errors import ConfigError


def _shard(n: int, seed: int = 0) -> tuple[NDArray[Any], NDArray[Any]]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 0.5, size=(n, 8, 8, 1)).astype(np.float32)
    return read_only(x), read_only(np.arange(n, dtype=np.int64) % 10)


def test_pixel_sets_exactly_one_pixel_per_poisoned_image() -> None:
    attack = get_attack("pixel", target=2, ratio=0.5, offset=1, position="top_left")
    assert isinstance(attack, PixelBackdoor)
    x, y = _shard(10)
    out = attack.poison(x, y, num_classes=10, rng=np.random.default_rng(0))
    assert out.poisoned.sum() == 5  # floor(0.5 * 10 + 0.5)
    changed = out.x != x
    assert (changed.reshape(10, -1).sum(axis=1) == out.poisoned.astype(int)).all()
    assert (out.x[out.poisoned][:, 1, 1, 0] == 1.0).all()  # row 1, column 1: offset 1 from top-left
    assert (out.y[out.poisoned] == 2).all() and (out.y[~out.poisoned] == y[~out.poisoned]).all()


def test_blended_is_the_convex_mix_with_a_uniform_key_of_the_seed() -> None:
    attack = get_attack("blended", alpha=0.2, key_seed=7, ratio=1.0, target=0)
    assert isinstance(attack, BlendedBackdoor)
    x, y = _shard(4)
    key = np.random.default_rng(7).random((8, 8, 1), dtype=np.float32)
    out = attack.poison(x, y, num_classes=10, rng=np.random.default_rng(0))
    np.testing.assert_allclose(out.x, 0.8 * x + 0.2 * key[None], rtol=1e-6)
    assert 0.45 < key.mean() < 0.55 and key.min() >= 0.0 and key.max() < 1.0
    # Two instances (two colluders, the server) build the same key; another seed differs.
    np.testing.assert_array_equal(get_attack("blended", key_seed=7).key((8, 8, 1)), key)
    assert not np.array_equal(get_attack("blended", key_seed=8).key((8, 8, 1)), key)


def test_dba_colluders_get_disjoint_rows_whose_union_is_the_global_trigger() -> None:
    attack = get_attack("dba", ratio=1.0, target=5)
    assert isinstance(attack, DistributedBackdoor)
    x = read_only(np.zeros((3, 8, 8, 1), np.float32))
    y = read_only(np.array([0, 1, 2], np.int64))
    stamped = [
        attack.poison(x, y, num_classes=10, rng=np.random.default_rng(0), colluder=c).x[0, ..., 0]
        for c in range(5)
    ]
    for c in range(4):  # BackFed's MNIST layout: share c is row 1 + c, columns 1..4
        expected = np.zeros((8, 8), np.float32)
        expected[1 + c, 1:5] = 1.0
        np.testing.assert_array_equal(stamped[c], expected)
    np.testing.assert_array_equal(stamped[4], stamped[0])  # ranks wrap around the shares
    union = np.maximum.reduce(stamped[:4])
    success = attack.success_set(x, y)
    assert success is not None and success.baseline_x is not None
    np.testing.assert_array_equal(success.x[0, ..., 0], union)  # tested with the whole trigger
    assert union.sum() == 16 and success.x.shape[0] == 3  # no sample of class 5 to drop


def test_dba_that_does_not_fit_the_image_names_the_field() -> None:
    x, y = _shard(2)
    with pytest.raises(ConfigError, match=r"^attack\.params: the DBA trigger .* 8x8 image"):
        get_attack("dba", num_shares=8).poison(x, y, num_classes=10, rng=np.random.default_rng(0))


@pytest.mark.parametrize("name", ["pixel", "blended", "dba"])
def test_target_outside_the_classes_is_refused(name: str) -> None:
    x, y = _shard(2)
    with pytest.raises(ConfigError, match=r"attack\.params\.target: got 10; must be < num_classes"):
        get_attack(name, target=10).poison(x, y, num_classes=10, rng=np.random.default_rng(0))


def test_edge_case_relabels_the_farthest_source_samples_and_tests_the_test_tail() -> None:
    # Class 7 at distances 0, 1, 2, 3, 4 from its mean (values -2..2 on one pixel): the 40 %
    # tail is the two farthest, values -2 and 2 (indices 0 and 4); class 3 is never touched.
    x = read_only(np.array([-2, -1, 0, 1, 2, 5], np.float32).reshape(6, 1, 1, 1))
    y = read_only(np.array([7, 7, 7, 7, 7, 3], np.int64))
    attack = get_attack("edge_case", source=7, target=1, tail_fraction=0.4)
    out = attack.poison(x, y, num_classes=10, rng=np.random.default_rng(0))
    assert out.poisoned.tolist() == [True, False, False, False, True, False]
    assert out.y.tolist() == [1, 7, 7, 7, 1, 3]
    np.testing.assert_array_equal(out.x, x)
    success = attack.success_set(x, y)
    assert success is not None and success.baseline_x is None
    assert success.x.ravel().tolist() == [-2.0, 2.0] and success.target.tolist() == [1, 1]


def test_edge_case_source_equal_target_is_refused() -> None:
    with pytest.raises(ConfigError, match="source and target must differ"):
        get_attack("edge_case", source=1, target=1)


def test_norm_projection_keeps_short_updates_and_scales_long_ones_onto_the_sphere() -> None:
    attack = get_attack("norm_projection", radius=5.0)
    short = read_only(np.array([3.0, 0.0], np.float32))
    long = read_only(np.array([30.0, 40.0], np.float32))
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(attack.poison_update(short, 4, rng=rng)[0], short)
    projected, count = attack.poison_update(long, 4, rng=rng)
    np.testing.assert_allclose(projected, [3.0, 4.0], rtol=1e-6)
    assert count == 4 and projected.dtype == np.float32
