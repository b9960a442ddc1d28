"""Label flipping and the BadNets backdoor: exact counts, nothing else changed, success sets."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from attack_test_helpers import read_only
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from attacks import DataAttack, get_attack
from attacks.data_poisoning import Backdoor, LabelFlip
from common.errors import ConfigError


def _data(name: str, **params: Any) -> DataAttack[Any]:
    attack = get_attack(name, **params)
    assert isinstance(attack, DataAttack)
    return attack


def _shard(n: int, num_classes: int = 10, seed: int = 0) -> tuple[NDArray[Any], NDArray[Any]]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 0.5, size=(n, 8, 8, 1)).astype(np.float32)
    y = np.arange(n, dtype=np.int64) % num_classes
    return read_only(x), read_only(y)


def test_reverse_golden_all_flipped() -> None:
    x, y = _shard(10)
    out = _data("label_flip", mode="reverse").poison(
        x, y, num_classes=10, rng=np.random.default_rng(0)
    )
    np.testing.assert_array_equal(out.y, [9, 8, 7, 6, 5, 4, 3, 2, 1, 0])
    np.testing.assert_array_equal(out.x, x)
    assert out.poisoned.all()


def test_reverse_odd_classes_never_counts_the_middle_class() -> None:
    y = read_only(np.array([0, 1, 2, 2, 2], dtype=np.int64))
    x = read_only(np.zeros((5, 8, 8, 1), dtype=np.float32))
    out = _data("label_flip", mode="reverse").poison(
        x, y, num_classes=5, rng=np.random.default_rng(0)
    )
    # C = 5: 0 -> 4, 1 -> 3, 2 -> 2 (unchanged, so not eligible and not marked).
    np.testing.assert_array_equal(out.y, [4, 3, 2, 2, 2])
    np.testing.assert_array_equal(out.poisoned, [True, True, False, False, False])


def test_targeted_flips_only_source_and_rounds_half_up() -> None:
    x, y = _shard(40)  # four samples of each class
    attack = _data("label_flip", mode="targeted", source=3, target=5, ratio=0.625)
    out = attack.poison(x, y, num_classes=10, rng=np.random.default_rng(1))
    # 0.625 * 4 = 2.5 -> 3 (half up; Python's round would give 2).
    changed = np.flatnonzero(out.y != y)
    assert changed.size == 3
    assert set(y[changed].tolist()) == {3}
    assert set(out.y[changed].tolist()) == {5}
    np.testing.assert_array_equal(out.poisoned, out.y != y)


def test_all_to_one_success_set_excludes_target() -> None:
    x, y = _shard(20)
    attack = _data("label_flip", mode="all_to_one", target=2)
    success = attack.success_set(x, y)
    assert success is not None and success.baseline_x is None  # no input changed
    assert success.x.shape == (18, 8, 8, 1) and (success.target == 2).all()
    np.testing.assert_array_equal(success.x, x[y != 2])


def test_targeted_success_set_is_source_labelled_target() -> None:
    x, y = _shard(30)
    success = _data("label_flip", mode="targeted", source=7, target=1).success_set(x, y)
    assert success is not None and success.baseline_x is None
    np.testing.assert_array_equal(success.x, x[y == 7])
    np.testing.assert_array_equal(success.target, [1, 1, 1])


def test_reverse_has_no_success_set() -> None:
    x, y = _shard(10)
    assert _data("label_flip").success_set(x, y) is None


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 60),
    ratio=st.floats(0.01, 1.0),
    mode=st.sampled_from(["reverse", "all_to_one"]),
    seed=st.integers(0, 2**31 - 1),
)
def test_label_flip_changes_exactly_the_ratio(n: int, ratio: float, mode: str, seed: int) -> None:
    x, y = _shard(n, seed=seed)
    attack = _data("label_flip", mode=mode, target=4, ratio=ratio)
    out = attack.poison(x, y, num_classes=10, rng=np.random.default_rng(seed))
    assert isinstance(attack, LabelFlip)
    eligible = int((attack._flipped(y, 10) != y).sum())
    assert int((out.y != y).sum()) == int(np.floor(ratio * eligible + 0.5))
    np.testing.assert_array_equal(out.poisoned, out.y != y)
    np.testing.assert_array_equal(out.x, x)


def test_backdoor_golden_trigger_bottom_right_with_offset() -> None:
    x = read_only(np.zeros((1, 8, 8, 1), dtype=np.float32))
    y = read_only(np.array([3], dtype=np.int64))
    attack = _data("backdoor", target=0, ratio=1.0, trigger_size=2, offset=1, value=0.75)
    out = attack.poison(x, y, num_classes=10, rng=np.random.default_rng(0))
    expected = np.zeros((8, 8), dtype=np.float32)
    expected[5:7, 5:7] = 0.75  # rows/cols H-offset-size .. H-offset = 5..7
    np.testing.assert_array_equal(out.x[0, :, :, 0], expected)
    np.testing.assert_array_equal(out.y, [0])


@pytest.mark.parametrize(
    ("position", "rows", "cols"),
    [("top_left", (0, 3), (0, 3)), ("top_right", (0, 3), (5, 8)), ("bottom_left", (5, 8), (0, 3))],
)
def test_backdoor_corners(position: str, rows: tuple[int, int], cols: tuple[int, int]) -> None:
    attack = _data("backdoor", trigger_size=3, offset=0, position=position)
    assert isinstance(attack, Backdoor)
    stamped = attack.apply_trigger(read_only(np.zeros((1, 8, 8, 3), dtype=np.float32)))
    expected = np.zeros((8, 8, 3), dtype=np.float32)
    expected[rows[0] : rows[1], cols[0] : cols[1], :] = 1.0
    np.testing.assert_array_equal(stamped[0], expected)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 50), ratio=st.floats(0.01, 1.0), seed=st.integers(0, 2**31 - 1))
def test_backdoor_changes_exactly_the_ratio_and_nothing_else(
    n: int, ratio: float, seed: int
) -> None:
    x, y = _shard(n, seed=seed)
    out = _data("backdoor", target=9, ratio=ratio).poison(
        x, y, num_classes=10, rng=np.random.default_rng(seed)
    )
    count = int(np.floor(ratio * n + 0.5))
    # x values are < 0.5 and the trigger is 1.0, so every poisoned image differs.
    image_changed = (out.x != x).reshape(n, -1).any(axis=1)
    np.testing.assert_array_equal(image_changed, out.poisoned)
    assert int(out.poisoned.sum()) == count
    assert (out.y[out.poisoned] == 9).all()
    np.testing.assert_array_equal(out.y[~out.poisoned], y[~out.poisoned])


def test_backdoor_success_set_excludes_target_class_and_keeps_the_clean_twins() -> None:
    x, y = _shard(20)
    success = _data("backdoor", target=4, trigger_size=2).success_set(x, y)
    assert success is not None and success.baseline_x is not None
    xs, ys = success.x, success.target
    assert xs.shape[0] == 18 and (ys == 4).all()
    np.testing.assert_array_equal(xs[:, :5, :5, :], x[y != 4][:, :5, :5, :])
    assert (xs[:, 5:7, 5:7, :] == 1.0).all()
    # The baseline is the same 18 images without the trigger.
    np.testing.assert_array_equal(success.baseline_x, x[y != 4])


def test_same_rng_seed_same_poison() -> None:
    x, y = _shard(30)
    attack = _data("backdoor", ratio=0.3)
    a = attack.poison(x, y, num_classes=10, rng=np.random.default_rng(5))
    b = attack.poison(x, y, num_classes=10, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(a.poisoned, b.poisoned)


def test_data_attack_errors_name_the_field() -> None:
    x, y = _shard(4)
    with pytest.raises(ConfigError, match=r"attack\.params\.trigger_size: got 8"):
        _data("backdoor", trigger_size=8).poison(x, y, num_classes=10, rng=np.random.default_rng(0))
    with pytest.raises(ConfigError, match=r"attack\.params\.target: got 10; must be < num_classes"):
        _data("backdoor", target=10).poison(x, y, num_classes=10, rng=np.random.default_rng(0))
    with pytest.raises(ConfigError, match=r"attack\.params\.source: got None"):
        _data("label_flip", mode="targeted", target=1)
    with pytest.raises(ConfigError, match=r"attack\.params\.source: got 2.*only mode 'targeted'"):
        _data("label_flip", source=2)
    with pytest.raises(ConfigError, match=r"attack\.params\.ratio: got 0\.0"):
        _data("backdoor", ratio=0.0)
