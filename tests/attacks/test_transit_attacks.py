"""Wire attacks: they change the bytes of the message (replay returns the recorded one)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from attack_test_helpers import read_only
from numpy.typing import NDArray

from attacks import TransitAttack, get_attack
from common.errors import ConfigError


def _message() -> list[NDArray[Any]]:
    rng = np.random.default_rng(0)
    return [
        read_only(rng.normal(size=(3, 4)).astype(np.float32)),
        read_only(rng.normal(size=(4,)).astype(np.float32)),
        read_only(rng.normal(size=(3, 4)).astype(np.float32)),
    ]


def _tamper(
    name: str,
    arrays: list[NDArray[Any]],
    recorded: list[NDArray[Any]] | None = None,
    seed: int = 0,
    **params: Any,
) -> list[NDArray[Any]]:
    attack = get_attack(name, **params)
    assert isinstance(attack, TransitAttack)
    return attack.tamper(arrays, rng=np.random.default_rng(seed), recorded=recorded)


def _bit_differences(a: list[NDArray[Any]], b: list[NDArray[Any]]) -> int:
    left = np.concatenate([x.ravel() for x in a]).view(np.uint32)
    right = np.concatenate([x.ravel() for x in b]).view(np.uint32)
    return int(np.unpackbits((left ^ right).view(np.uint8)).sum())


@pytest.mark.parametrize("num_bits", [1, 7, 64])
def test_bit_flip_flips_exactly_num_bits(num_bits: int) -> None:
    message = _message()
    out = _tamper("bit_flip", message, num_bits=num_bits)
    assert _bit_differences(message, out) == num_bits
    assert [a.shape for a in out] == [a.shape for a in message]
    assert all(a.dtype == np.float32 for a in out)


def test_bit_flip_too_many_bits() -> None:
    with pytest.raises(
        ConfigError, match=r"attack\.params\.num_bits: got 10000; .* 896 bits"
    ):  # 28 floats
        _tamper("bit_flip", _message(), num_bits=10_000)


def test_additive_every_array_or_one_layer() -> None:
    message = _message()
    out = _tamper("additive", message, seed=4, scale=0.5)
    noise = np.random.default_rng(4)
    for before, after in zip(message, out, strict=True):
        expected = (before + noise.normal(0.0, 0.5, size=before.shape)).astype(np.float32)
        np.testing.assert_array_equal(after, expected)
    one = _tamper("additive", message, layer=1, scale=0.5)
    assert not np.array_equal(one[1], message[1])
    np.testing.assert_array_equal(one[0], message[0])
    np.testing.assert_array_equal(one[2], message[2])
    with pytest.raises(
        ConfigError, match=r"attack\.params\.layer: got 3; the message has 3 arrays"
    ):
        _tamper("additive", message, layer=3)


def test_swap_layer_swaps_same_shape_arrays() -> None:
    message = _message()
    out = _tamper("swap_layer", message)
    np.testing.assert_array_equal(out[0], message[2])
    np.testing.assert_array_equal(out[2], message[0])
    np.testing.assert_array_equal(out[1], message[1])


def test_swap_layer_permutes_when_no_shapes_match() -> None:
    message = [read_only(np.arange(6, dtype=np.float32)), read_only(np.ones((2, 2), np.float32))]
    out = _tamper("swap_layer", message)
    # The constant array cannot change; the other one is a non-identity permutation of itself.
    np.testing.assert_array_equal(out[1], message[1])
    assert not np.array_equal(out[0], message[0])
    np.testing.assert_array_equal(np.sort(out[0]), message[0])


def test_replay_returns_the_recorded_message_or_the_current_one() -> None:
    message, earlier = _message(), [read_only(np.zeros((3, 4), np.float32))]
    out = _tamper("replay", message, recorded=earlier)
    assert len(out) == 1
    np.testing.assert_array_equal(out[0], earlier[0])
    assert out[0] is not earlier[0]
    same = _tamper("replay", message, recorded=None)
    for before, after in zip(message, same, strict=True):
        np.testing.assert_array_equal(after, before)


def test_direction_param() -> None:
    attack = get_attack("replay", direction="downlink")
    assert attack.params.direction == "downlink"
    with pytest.raises(ConfigError, match=r"attack\.params\.direction: got 'sideways'"):
        get_attack("bit_flip", direction="sideways")
