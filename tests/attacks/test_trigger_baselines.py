"""FLPoison's image-patch trigger and BackFed's centralized DBA trigger: hand-computed stamps.

The adversary is a malicious client that knows its shard; what each attack promises is the exact
image it trains with and the exact image the server tests, computed here by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from attack_test_helpers import read_only
from numpy.typing import NDArray
from PIL import Image

from attacks import get_attack
from attacks.backdoor_triggers import CentralizedTrigger
from attacks.image_trigger import DEFAULT_PATCH, ImageTrigger
from common.errors import ConfigError

RNG = np.random.default_rng


def _png(tmp_path: Path, pixels: list[list[tuple[int, int, int]]]) -> str:
    path = tmp_path / "patch.png"
    Image.fromarray(np.array(pixels, dtype=np.uint8), mode="RGB").save(path)
    return str(path)


def _zeros(channels: int = 1, n: int = 1) -> NDArray[Any]:
    return read_only(np.zeros((n, 4, 4, channels), np.float32))


def test_png_patch_is_the_luma_of_each_pixel_in_the_corner(tmp_path: Path) -> None:
    # Red, green / blue, white. PIL's grey: L = (19595 R + 38470 G + 7471 B + 2^15) >> 16, the
    # ITU-R 601 luma 0.299 R + 0.587 G + 0.114 B rounded: 76.2 -> 76, 149.7 -> 150, 29.1 -> 29.
    path = _png(tmp_path, [[(255, 0, 0), (0, 255, 0)], [(0, 0, 255), (255, 255, 255)]])
    attack = get_attack("image_trigger", trigger_path=path, trigger_size=2)
    stamped = attack.apply_trigger(_zeros())[0, :, :, 0]
    expected = np.zeros((4, 4), np.float32)
    expected[2:, 2:] = np.array([[76, 150], [29, 255]], np.float32) / 255  # FLPoison's corner
    np.testing.assert_array_equal(stamped, expected)
    # RGB data keeps the colours.
    rgb = attack.apply_trigger(_zeros(channels=3))[0]
    np.testing.assert_array_equal(rgb[2, 2], [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(rgb[3, 2], [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(rgb[3, 3], [1.0, 1.0, 1.0])
    assert rgb[:2].sum() == 0.0 and rgb[:, :2].sum() == 0.0


def test_png_is_resized_to_the_trigger_size(tmp_path: Path) -> None:
    # A uniform 10x10 image stays uniform under bicubic resizing (the weights sum to 1):
    # L = 0.299 * 200 + 0.587 * 100 + 0.114 * 50 = 124.2 -> 124.
    path = _png(tmp_path, [[(200, 100, 50)] * 10] * 10)
    attack = get_attack("image_trigger", trigger_path=path, trigger_size=3, position="top_left")
    stamped = attack.apply_trigger(_zeros())[0, :, :, 0]
    np.testing.assert_array_equal(stamped[:3, :3], np.full((3, 3), 124 / 255, np.float32))
    assert stamped[3].sum() == 0.0 and stamped[:, 3].sum() == 0.0


def test_npy_patch_is_stamped_as_is_on_every_channel(tmp_path: Path) -> None:
    path = tmp_path / "patch.npy"
    np.save(path, np.array([[0.25, 0.5], [0.75, 1.0]], np.float32))
    attack = get_attack("image_trigger", trigger_path=str(path), trigger_size=2, offset=1)
    stamped = attack.apply_trigger(_zeros(channels=3))[0]
    for channel in range(3):
        np.testing.assert_array_equal(stamped[1:3, 1:3, channel], [[0.25, 0.5], [0.75, 1.0]])
    assert stamped.sum() == 3 * 2.5


def test_flpoison_defaults_are_badnets_with_a_white_five_pixel_square() -> None:
    attack = get_attack("image_trigger")
    assert isinstance(attack, ImageTrigger) and DEFAULT_PATCH.is_file()
    p = attack.params
    assert (p.target, p.ratio, p.trigger_size, p.offset, p.position) == (
        6,
        0.32,
        5,
        0,
        "bottom_right",
    )
    rng = RNG(0)
    x = read_only(rng.uniform(0.0, 0.5, size=(25, 8, 8, 1)).astype(np.float32))
    y = read_only(np.arange(25, dtype=np.int64) % 10)
    ours = attack.poison(x, y, num_classes=10, rng=RNG(3))
    assert ours.poisoned.sum() == 8  # floor(0.32 * 25 + 0.5)
    assert np.all(ours.x[ours.poisoned][:, 3:, 3:, :] == 1.0) and np.all(ours.y[ours.poisoned] == 6)
    badnets = get_attack("backdoor", target=6, ratio=0.32, trigger_size=5, offset=0)
    reference = badnets.poison(x, y, num_classes=10, rng=RNG(3))
    np.testing.assert_array_equal(ours.x, reference.x)
    np.testing.assert_array_equal(ours.y, reference.y)


@pytest.mark.parametrize(
    ("content", "params", "message"),
    [
        (None, {"trigger_path": "missing.png"}, "no such file"),
        (b"not an image", {"trigger_path": "patch.txt"}, r"must name a \.png or \.npy file"),
        (b"not an image", {"trigger_path": "patch.png"}, "cannot read the image"),
        (np.ones((3, 3)), {"trigger_path": "patch.npy", "trigger_size": 2}, r"shape \(2, 2\)"),
        (np.full((2, 2), 2.0), {"trigger_path": "patch.npy", "trigger_size": 2}, r"\[0, 1\]"),
    ],
)
def test_a_bad_patch_is_a_one_line_error_naming_the_field(
    tmp_path: Path, content: object, params: dict[str, Any], message: str
) -> None:
    path = tmp_path / params["trigger_path"]
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        np.save(path, content)
    params = {**params, "trigger_path": str(path)}
    with pytest.raises(ConfigError, match=rf"^attack\.params\.trigger_path: got .*{message}"):
        get_attack("image_trigger", where="attack.params", **params)


def test_a_patch_with_other_channels_than_the_data_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "rgb.npy"
    np.save(path, np.zeros((2, 2, 3), np.float32))
    attack = get_attack("image_trigger", trigger_path=str(path), trigger_size=2)
    message = r"^attack\.params\.trigger_path: got .*1-channel data\); got \(2, 2, 3\)$"
    with pytest.raises(ConfigError, match=message):
        attack.apply_trigger(_zeros(channels=1))


def test_a_patch_that_does_not_fit_the_image_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"^attack\.params\.trigger_size: got 5 .* 4x4 image"):
        get_attack("image_trigger").apply_trigger(_zeros())


def test_centralized_stamps_the_whole_dba_trigger_for_every_colluder() -> None:
    attack = get_attack("centralized_trigger", ratio=1.0, target=5)
    assert isinstance(attack, CentralizedTrigger)
    x = read_only(np.zeros((3, 8, 8, 1), np.float32))
    y = read_only(np.array([0, 1, 2], np.int64))
    # Rows 1..4, columns 1..4 (DBA's four shares of 1x4), all set to 1: 16 pixels.
    expected = np.zeros((8, 8), np.float32)
    expected[1:5, 1:5] = 1.0
    for colluder in range(5):
        out = attack.poison(x, y, num_classes=10, rng=RNG(0), colluder=colluder)
        np.testing.assert_array_equal(out.x[0, ..., 0], expected)
        assert np.all(out.y == 5)
    # The success set is DBA's, so the two are measured on the same triggered images.
    ours, dba = attack.success_set(x, y), get_attack("dba", target=5).success_set(x, y)
    assert ours is not None and dba is not None
    np.testing.assert_array_equal(ours.x, dba.x)
    np.testing.assert_array_equal(ours.x[0, ..., 0], expected)


def test_centralized_that_does_not_fit_the_image_names_the_field() -> None:
    x = read_only(np.zeros((1, 8, 8, 1), np.float32))
    y = read_only(np.zeros(1, np.int64))
    with pytest.raises(ConfigError, match=r"^attack\.params: the DBA trigger .* 8x8 image"):
        get_attack("centralized_trigger", length=8).poison(x, y, num_classes=10, rng=RNG(0))
    with pytest.raises(ConfigError, match=r"^attack\.params\.num_shares: got 0"):
        get_attack("centralized_trigger", where="attack.params", num_shares=0)
