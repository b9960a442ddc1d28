"""A backdoor whose trigger is an image patch read from a file (FLPoison's ``BadNets_image``).

The patch comes from a PNG (any image Pillow reads; converted to grey or RGB as the data, then
resized to ``trigger_size`` x ``trigger_size`` with bicubic resampling, as FLPoison's
``ImageSynthesizer`` does with PIL) or from an ``.npy`` array already of that side, values in
[0, 1]. Without ``trigger_path`` it is the shipped ``attacks/trigger_images/white.png`` (80x80
white, as FLPoison's default ``trigger_white.png``). Pillow comes with matplotlib, a dependency.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from pydantic import Field, ValidationInfo, field_validator

from attacks.base import Images
from attacks.data_poisoning import PlacedTrigger, PlacementParams
from attacks.registry import register_attack
from common.errors import ConfigError
from common.registry import ClassLabel

DEFAULT_PATCH = Path(__file__).parent / "trigger_images" / "white.png"
"""FLPoison's default trigger: a white image (ours, 80x80 like theirs)."""


def _png_patch(path: str, size: int, channels: int) -> NDArray[np.float32]:
    # Imported here: only a run with an image trigger reads a PNG.
    from PIL import Image, UnidentifiedImageError

    if channels not in (1, 3):
        raise ValueError(f"a PNG patch needs grey or RGB data, not {channels} channels: use .npy")
    try:
        with Image.open(path) as image:
            # FLPoison's order: convert to the data's mode, then resize (PIL's bicubic default).
            mode = image.convert("L" if channels == 1 else "RGB")
            resized = mode.resize((size, size), Image.Resampling.BICUBIC)
    except (OSError, UnidentifiedImageError) as err:
        raise ValueError(f"cannot read the image: {err}") from None
    return np.asarray(resized, dtype=np.float32).reshape(size, size, channels) / np.float32(255)


def _npy_patch(path: str, size: int, channels: int) -> NDArray[np.float32]:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read the array: {err}") from None
    patch = np.asarray(array, dtype=np.float32)
    patch = patch[:, :, None] if patch.ndim == 2 else patch
    if patch.ndim != 3 or patch.shape[:2] != (size, size) or patch.shape[2] not in (1, channels):
        shapes = dict.fromkeys([(size, size), (size, size, 1), (size, size, channels)])
        raise ValueError(
            f"an .npy patch must have shape {' or '.join(map(str, shapes))} (trigger_size "
            f"{size}, {channels}-channel data); got {array.shape}"
        )
    if not np.all((patch >= 0.0) & (patch <= 1.0)):
        raise ValueError("an .npy patch must hold values in [0, 1]")
    return np.broadcast_to(patch, (size, size, channels))


@lru_cache(maxsize=8)
def load_patch(path: str, size: int, channels: int) -> NDArray[np.float32]:
    """The ``(size, size, channels)`` patch in [0, 1] from a ``.png`` or ``.npy`` file (cached
    per process and read-only: every client of a worker stamps the same patch).

    Raises ValueError naming what is wrong with the file.
    """
    read = _npy_patch if path.lower().endswith(".npy") else _png_patch
    patch = np.array(read(path, size, channels), dtype=np.float32)
    patch.setflags(write=False)
    return patch


def _file_channels(path: str) -> int:
    """The channel count the file's own patch has (an .npy's last axis; a PNG is read grey)."""
    if not path.lower().endswith(".npy"):
        return 1
    shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
    return int(shape[2]) if len(shape) == 3 else 1


class ImageTriggerParams(PlacementParams):
    """FLPoison's defaults: target 6, 32 % poisoned, a 5x5 patch in the very corner."""

    target: ClassLabel = 6
    ratio: float = Field(0.32, gt=0.0, le=1.0)
    offset: int = Field(0, ge=0)
    trigger_size: int = Field(5, ge=1)
    trigger_path: str | None = None

    @field_validator("trigger_path")
    @classmethod
    def _readable_patch(cls, value: str | None, info: ValidationInfo) -> str | None:
        """An existing .png or .npy file that reads as a patch, made absolute (the scenario
        travels to workers whose working directory may differ)."""
        if value is None:
            return None
        path = Path(value).expanduser()
        if path.suffix.lower() not in (".png", ".npy"):
            raise ValueError("must name a .png or .npy file")
        if not path.is_file():
            raise ValueError("no such file")
        resolved = str(path.resolve())
        size = info.data.get("trigger_size")
        if isinstance(size, int):
            load_patch(resolved, size, _file_channels(resolved))
        return resolved


@register_attack("image_trigger", ImageTriggerParams)
class ImageTrigger(PlacedTrigger[ImageTriggerParams]):
    r"""Backdoor with an image-patch trigger (FLPoison's ``BadNets_image``; BadNets, Gu et al.).

    .. math::

        x_{r_0 + i,\ c_0 + j,\ :} \leftarrow P_{i,j,:}\ \ (0 \le i, j < s),\qquad
        y \leftarrow t

    on ``floor(ratio * N + 0.5)`` samples, with ``P`` the ``s x s`` patch read from
    ``trigger_path`` (a PNG converted to the data's grey or RGB mode, e.g. grey
    ``L = (19595 R + 38470 G + 7471 B + 2^15) >> 16`` in PIL's integer luma, resized to ``s``
    bicubically, divided by 255; or an ``.npy`` of side ``s`` in [0, 1]) and ``(r_0, c_0)`` the
    square ``offset`` pixels in from ``position``. The success set stamps the patch on the test
    images not of class ``t``. Deviations from FLPoison: the poisoned samples are a fixed
    ``ratio`` of the shard drawn once per (seed, client), not a fresh ``ratio`` of every batch;
    only ``all2one`` (their default) of their ``attack_model`` modes; ``position`` and
    ``offset`` may move the patch (theirs: always the bottom-right corner, whose comment says
    bottom-left); their patch is normalised with the data's mean and std, ours is in the
    [0, 1] pixel space of the data, the same image.

    Parameters
    ----------
    target : int, default 6
        The label of triggered samples (FLPoison's ``target_label``).
    ratio : float, default 0.32
        Fraction of the shard poisoned, in (0, 1] (FLPoison's ``poisoning_ratio``).
    trigger_size : int, default 5
        Side ``s`` of the patch in pixels (FLPoison's; 5 of 28 on MNIST, 5 of 8 on digits).
    trigger_path : str, optional
        A ``.png`` or ``.npy`` file; None: ``attacks/trigger_images/white.png`` (a white patch,
        FLPoison's ``trigger_white.png``), which makes the attack BadNets with a white square.
    position : {"bottom_right", "bottom_left", "top_right", "top_left"}, default "bottom_right"
        Corner of the patch.
    offset : int, default 0
        Distance of the patch from the corner, in pixels.

    Returns
    -------
    PoisonedData
        The poisoned copy of the shard; :meth:`success_set` gives the stamped test images not
        of class ``target`` and, as the baseline, the same images without the patch.

    References
    ----------
    Gu, Dolan-Gavitt & Garg, "BadNets", 2017; Li et al., "SoK: Benchmarking Poisoning Attacks
    and Defenses in Federated Learning" (FLPoison), 2025 (``attackers/badnets.py``,
    ``BadNets_image``; ``attackers/synthesizers/image_synthesizer.py``).

    Examples
    --------
    >>> import numpy as np
    >>> from attacks import get_attack
    >>> attack = get_attack("image_trigger", trigger_size=2)
    >>> attack.apply_trigger(np.zeros((1, 3, 3, 1), np.float32))[0, :, :, 0]
    array([[0., 0., 0.],
           [0., 1., 1.],
           [0., 1., 1.]], dtype=float32)
    """

    @property
    def size(self) -> int:
        """``trigger_size``."""
        return self.params.trigger_size

    def patch(self, channels: int) -> NDArray[np.float32]:
        """The ``(trigger_size, trigger_size, channels)`` patch in [0, 1]."""
        path = self.params.trigger_path or str(DEFAULT_PATCH)
        try:
            return load_patch(path, self.size, channels)
        except ValueError as err:  # a patch valid for some data may not fit this data's channels
            raise ConfigError(f"attack.params.trigger_path: got {path!r}; {err}") from None

    def apply_trigger(self, x: Images) -> Images:
        """A copy of ``x`` ``(N, H, W, C)`` with the patch stamped on every image."""
        rows, cols = self._trigger_slices(x.shape[1], x.shape[2])
        out = np.array(x, dtype=np.float32, copy=True)
        out[:, rows, cols, :] = self.patch(x.shape[3])
        return out
