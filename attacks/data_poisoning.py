"""Data poisoning on the malicious client's own shard: label flipping and the BadNets backdoor.

The poisoned subset has exactly ``floor(ratio * N_eligible + 0.5)`` samples (round half up),
drawn uniformly without replacement with the caller's generator; every other sample is returned
unchanged, and ``PoisonedData.poisoned`` marks exactly the samples that differ.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Literal, TypeVar

import numpy as np
from numpy.typing import NDArray
from pydantic import Field, ValidationInfo, field_validator

from attacks._maths import choose_indices, exact_count
from attacks.base import DataAttack, Images, Labels, PoisonedData, SuccessSet
from attacks.registry import register_attack
from attacks.triggers import TriggerBackdoor, TriggerParams, check_class
from common.errors import ConfigError
from common.registry import ClassLabel, Params


def _mask(size: int, chosen: NDArray[np.intp]) -> NDArray[np.bool_]:
    mask = np.zeros(size, dtype=bool)
    mask[chosen] = True
    return mask


class LabelFlipParams(Params):
    """``mode``, the class(es) involved and the fraction of eligible samples flipped."""

    mode: Literal["reverse", "all_to_one", "targeted"] = "reverse"
    ratio: float = Field(1.0, gt=0.0, le=1.0)
    target: ClassLabel = 0
    source: ClassLabel | None = Field(None, validate_default=True)

    @field_validator("source")
    @classmethod
    def _source_for_targeted(cls, value: int | None, info: ValidationInfo) -> int | None:
        mode, target = info.data.get("mode"), info.data.get("target")
        if mode == "targeted" and (value is None or value == target):
            raise ValueError(
                f"mode 'targeted' needs a source class different from target ({target})"
            )
        if mode != "targeted" and value is not None:
            raise ValueError(f"only mode 'targeted' takes a source (mode is {mode!r})")
        return value


@register_attack("label_flip", LabelFlipParams)
class LabelFlip(DataAttack[LabelFlipParams]):
    r"""Label flipping (Biggio et al. 2012; Tolpegin et al. 2020 for the targeted FL variant).

    .. math::

        y \mapsto C - 1 - y\ (\text{reverse}),\qquad y \mapsto t\ (\text{all\_to\_one}),
        \qquad \text{source} \mapsto t\ (\text{targeted})

    on ``floor(ratio * E + 0.5)`` of the ``E`` eligible samples (those whose label the mode
    changes, so for odd C the middle class is never counted under ``reverse``), drawn with the rng.

    Parameters
    ----------
    mode : {"reverse", "all_to_one", "targeted"}, default "reverse"
        Which labels change.
    ratio : float, default 1.0
        Fraction of the eligible samples flipped, in (0, 1].
    target : int, default 0
        The new label (``all_to_one``, ``targeted``).
    source : int, optional
        The class relabelled (``targeted`` only, != target).

    Returns
    -------
    PoisonedData
        The relabelled copy of the shard; :meth:`success_set` gives the test images whose
        classification as ``target`` is the attack's success (no baseline: no input changes).

    References
    ----------
    Biggio, Nelson & Laskov, "Poisoning Attacks against Support Vector Machines", ICML 2012;
    Tolpegin, Truex, Gursoy & Liu, "Data Poisoning Attacks Against Federated Learning
    Systems", ESORICS 2020.

    Examples
    --------
    >>> import numpy as np
    >>> from attacks import get_attack
    >>> x, y = np.zeros((4, 2, 2, 1), np.float32), np.array([0, 1, 2, 3])
    >>> get_attack("label_flip").poison(x, y, num_classes=4, rng=np.random.default_rng(0)).y
    array([3, 2, 1, 0])
    """

    def _flipped(self, y: Labels, num_classes: int) -> Labels:
        if self.params.mode == "reverse":
            return (num_classes - 1 - y).astype(np.int64)
        return np.full_like(y, self.params.target)

    def _eligible(self, y: Labels, num_classes: int) -> NDArray[np.bool_]:
        if self.params.mode == "targeted":
            return np.asarray(y == self.params.source)
        return np.asarray(self._flipped(y, num_classes) != y)

    def poison(
        self,
        x: Images,
        y: Labels,
        *,
        num_classes: int,
        rng: np.random.Generator,
        colluder: int = 0,
    ) -> PoisonedData:
        """Flip ``floor(ratio * eligible + 0.5)`` eligible labels chosen with ``rng``."""
        del colluder  # every colluder flips the same way
        if self.params.mode != "reverse":
            check_class("target", self.params.target, num_classes)
        if self.params.source is not None:
            check_class("source", self.params.source, num_classes)
        eligible = np.flatnonzero(self._eligible(y, num_classes))
        chosen = choose_indices(rng, eligible, exact_count(self.params.ratio, eligible.size))
        new_y = np.array(y, dtype=np.int64, copy=True)
        new_y[chosen] = self._flipped(y[chosen], num_classes)
        return PoisonedData(np.array(x, copy=True), new_y, _mask(y.shape[0], chosen))

    def success_set(self, x_test: Images, y_test: Labels) -> SuccessSet | None:
        """Test samples the mode would relabel, with their poisoned label as the target.

        ``targeted``: the source-class samples; ``all_to_one``: every sample not already of
        class ``target``; ``reverse``: None (it needs C, and its goal is untargeted damage,
        which clean accuracy measures). No baseline: the attack changes no input.
        """
        if self.params.mode == "reverse":
            return None
        if self.params.mode == "targeted":
            keep = y_test == self.params.source
        else:
            keep = y_test != self.params.target
        x = np.array(x_test[keep], copy=True)
        return SuccessSet(x, np.full(x.shape[0], self.params.target, dtype=np.int64))


Corner = Literal["bottom_right", "bottom_left", "top_right", "top_left"]


class PlacementParams(TriggerParams):
    """Where a square trigger sits: a corner, ``offset`` pixels in."""

    position: Corner = "bottom_right"
    offset: int = Field(1, ge=0)


class CornerParams(PlacementParams):
    """A square trigger's place and its pixel value."""

    value: float = Field(1.0, ge=0.0, le=1.0)


class BackdoorParams(CornerParams):
    """BadNets trigger geometry and value, the poisoned fraction and the target class."""

    trigger_size: int = Field(3, ge=1)


PP = TypeVar("PP", bound=PlacementParams)
CP = TypeVar("CP", bound=CornerParams)


class PlacedTrigger(TriggerBackdoor[PP]):
    """A ``size`` x ``size`` square trigger, ``offset`` pixels in from a corner."""

    @property
    @abstractmethod
    def size(self) -> int:
        """Side of the square, in pixels."""

    def _trigger_slices(self, height: int, width: int) -> tuple[slice, slice]:
        size, offset = self.size, self.params.offset
        if size + offset > min(height, width):
            raise ConfigError(
                f"attack.params.trigger_size: got {size} with offset {offset}; the trigger must "
                f"fit in the {height}x{width} image (size + offset <= {min(height, width)})"
            )
        top = self.params.position.startswith("top")
        left = self.params.position.endswith("left")
        rows = (
            slice(offset, offset + size) if top else slice(height - offset - size, height - offset)
        )
        cols = (
            slice(offset, offset + size) if left else slice(width - offset - size, width - offset)
        )
        return rows, cols


class CornerTrigger(PlacedTrigger[CP]):
    """A ``size`` x ``size`` square set to ``value``, ``offset`` pixels in from a corner."""

    def apply_trigger(self, x: Images) -> Images:
        """A copy of ``x`` ``(N, H, W, C)`` with the trigger stamped on every image."""
        rows, cols = self._trigger_slices(x.shape[1], x.shape[2])
        out = np.array(x, dtype=np.float32, copy=True)
        out[:, rows, cols, :] = self.params.value
        return out


@register_attack("backdoor", BackdoorParams)
class Backdoor(CornerTrigger[BackdoorParams]):
    r"""BadNets pixel-pattern backdoor (Gu et al. 2017; in FL: Bagdasaryan et al. 2020).

    .. math::

        (x, y) \mapsto (x \oplus \text{trigger},\ t)\ \text{on}\
        \lfloor \text{ratio}\cdot N + 0.5 \rfloor\ \text{samples}

    where the trigger sets a ``trigger_size`` x ``trigger_size`` square, ``offset`` pixels in
    from the chosen corner, to ``value`` in every channel. All N samples are eligible (a
    poisoned sample already of class ``target`` keeps its label but gets the trigger). Follow it
    with ``scaling`` for Bagdasaryan et al.'s model replacement.

    Parameters
    ----------
    target : int, default 0
        The label of triggered samples.
    ratio : float, default 0.1
        Fraction of the shard poisoned, in (0, 1].
    trigger_size : int, default 3
        Side of the square, >= 1.
    position : {"bottom_right", "bottom_left", "top_right", "top_left"}, default "bottom_right"
        Corner of the trigger.
    offset : int, default 1
        Distance of the trigger from the corner, in pixels.
    value : float, default 1.0
        Pixel value of the trigger, in [0, 1].

    Returns
    -------
    PoisonedData
        The poisoned copy of the shard; :meth:`success_set` gives the triggered test images not
        of class ``target`` and, as the baseline, the same images without the trigger.

    References
    ----------
    Gu, Dolan-Gavitt & Garg, "BadNets: Identifying Vulnerabilities in the Machine Learning
    Model Supply Chain", 2017; Bagdasaryan et al., "How To Backdoor Federated Learning",
    AISTATS 2020.

    Examples
    --------
    >>> import numpy as np
    >>> from attacks import get_attack
    >>> attack = get_attack("backdoor", trigger_size=1, offset=0, ratio=0.5, target=7)
    >>> out = attack.poison(np.zeros((2, 3, 3, 1), np.float32), np.array([1, 2]),
    ...                     num_classes=10, rng=np.random.default_rng(0))
    >>> out.poisoned.sum(), out.x[out.poisoned][0, 2, 2, 0], out.y[out.poisoned][0]
    (1, 1.0, 7)
    """

    @property
    def size(self) -> int:
        """``trigger_size``."""
        return self.params.trigger_size
