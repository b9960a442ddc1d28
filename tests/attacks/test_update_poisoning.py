"""Model poisoning without knowledge: golden vectors on a small delta."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from attack_test_helpers import read_only
from numpy.typing import NDArray

from attacks import UpdateAttack, get_attack
from common.errors import ConfigError

DELTA = read_only(np.array([1.0, -2.0, 0.5, 0.0], dtype=np.float32))


def _run(
    name: str, seed: int = 0, num_examples: int = 7, **params: Any
) -> tuple[NDArray[Any], int]:
    attack = get_attack(name, **params)
    assert isinstance(attack, UpdateAttack)
    return attack.poison_update(DELTA, num_examples, rng=np.random.default_rng(seed))


@pytest.mark.parametrize(
    ("name", "params", "expected"),
    [
        ("sign_flip", {}, [-1.0, 2.0, -0.5, 0.0]),
        ("sign_flip", {"scale": 3.0}, [-3.0, 6.0, -1.5, 0.0]),
        ("scaling", {"gamma": 4.0}, [4.0, -8.0, 2.0, 0.0]),
        ("zero", {}, [0.0, 0.0, 0.0, 0.0]),
    ],
)
def test_golden_vectors(name: str, params: dict[str, Any], expected: list[float]) -> None:
    out, reported = _run(name, **params)
    np.testing.assert_array_equal(out, np.array(expected, dtype=np.float32))
    assert out.dtype == np.float32 and reported == 7


def test_gaussian_replaces_with_seeded_noise() -> None:
    out, _ = _run("gaussian", seed=3, mean=0.1, std=0.1)
    expected = np.random.default_rng(3).normal(0.1, 0.1, size=4).astype(np.float32)
    np.testing.assert_array_equal(out, expected)
    big = get_attack("gaussian", mean=0.1, std=0.1)
    assert isinstance(big, UpdateAttack)
    sample, _ = big.poison_update(np.zeros(20000, np.float32), 1, rng=np.random.default_rng(0))
    assert abs(float(sample.mean()) - 0.1) < 0.005 and abs(float(sample.std()) - 0.1) < 0.005


def test_gaussian_zero_std_is_constant() -> None:
    out, _ = _run("gaussian", mean=2.0, std=0.0)
    np.testing.assert_array_equal(out, [2.0, 2.0, 2.0, 2.0])


@pytest.mark.parametrize(
    ("which", "check"), [("nan", np.isnan), ("inf", np.isposinf), ("-inf", np.isneginf)]
)
def test_nonfinite_hits_the_rounded_fraction(which: str, check: np.ufunc) -> None:
    out, _ = _run("nonfinite", which=which, fraction=0.5)
    hit = check(out)
    assert int(hit.sum()) == 2  # 0.5 * 4 = 2 coordinates
    np.testing.assert_array_equal(out[~hit], DELTA[~hit])


def test_nonfinite_hits_at_least_one_coordinate() -> None:
    out, _ = _run("nonfinite", fraction=0.01)
    assert int(np.isnan(out).sum()) == 1


def test_inflate_examples_factor_and_fixed() -> None:
    out, reported = _run("inflate_examples", num_examples=7, factor=2.5)
    np.testing.assert_array_equal(out, DELTA)
    assert reported == 18  # 17.5 rounds half up
    out, reported = _run("inflate_examples", fixed_count=10**6, scale=-1.0)
    np.testing.assert_array_equal(out, -DELTA)
    assert reported == 10**6


def test_inflate_examples_needs_exactly_one_of_factor_and_count() -> None:
    with pytest.raises(ConfigError, match=r"attack\.params\.fixed_count: .*exactly one"):
        get_attack("inflate_examples")
    with pytest.raises(ConfigError, match=r"attack\.params\.fixed_count: .*exactly one"):
        get_attack("inflate_examples", factor=2.0, fixed_count=5)
    with pytest.raises(ConfigError, match=r"attack\.params\.factor: got 0\.5"):
        get_attack("inflate_examples", factor=0.5)


def test_update_attack_bounds() -> None:
    with pytest.raises(ConfigError, match=r"attack\.params\.std: got -1\.0"):
        get_attack("gaussian", std=-1.0)
    with pytest.raises(ConfigError, match=r"attack\.params\.fraction: got 1\.5"):
        get_attack("nonfinite", fraction=1.5)
    with pytest.raises(ConfigError, match=r"attack\.params\.which: got 'zero'"):
        get_attack("nonfinite", which="zero")
    with pytest.raises(ConfigError, match=r"attack\.params\.gamma: got 0\.0"):
        get_attack("scaling", gamma=0.0)
