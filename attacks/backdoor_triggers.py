"""More trigger backdoors as BackFed defines them: one pixel, a blended key, DBA's split trigger
and its centralized baseline.

Each reuses :class:`attacks.triggers.TriggerBackdoor` (which samples are poisoned, relabelling,
the success set with its untriggered baseline) and only defines its pattern.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from pydantic import Field

from attacks.base import Images
from attacks.data_poisoning import CornerParams, CornerTrigger
from attacks.registry import register_attack
from attacks.triggers import TriggerBackdoor, TriggerParams
from common.errors import ConfigError


@register_attack("pixel", CornerParams)
class PixelBackdoor(CornerTrigger[CornerParams]):
    r"""Single-pixel backdoor (BackFed's ``pixel`` poison; BadNets with a 1x1 trigger).

    .. math::

        x_{r,c,:} \leftarrow v,\qquad y \leftarrow t

    for the pixel ``offset`` pixels in from ``position``, on ``floor(ratio * N + 0.5)`` samples.

    Parameters
    ----------
    target : int, default 0
        The label of triggered samples.
    ratio : float, default 0.1
        Fraction of the shard poisoned, in (0, 1].
    position : {"bottom_right", "bottom_left", "top_right", "top_left"}, default "bottom_right"
        Corner the pixel is counted from.
    offset : int, default 1
        Distance from the corner, in pixels (BackFed: 4 on 28x28 MNIST; 1 suits 8x8 digits).
    value : float, default 1.0
        Pixel value, in [0, 1].

    Returns
    -------
    PoisonedData
        The poisoned copy of the shard; the success set is the triggered test samples not of
        class ``target``, with the same samples untriggered as the baseline.

    References
    ----------
    Gu, Dolan-Gavitt & Garg, "BadNets", 2017; Dao et al., "BackFed: An Efficient &
    Standardized Benchmark Suite for Backdoor Attacks in Federated Learning", 2025
    (``backfed/poisons/pattern.py``, class ``Pixel``).

    Examples
    --------
    >>> import numpy as np
    >>> from attacks import get_attack
    >>> attack = get_attack("pixel", offset=0, target=3)
    >>> attack.apply_trigger(np.zeros((1, 3, 3, 1), np.float32))[0, :, :, 0]
    array([[0., 0., 0.],
           [0., 0., 0.],
           [0., 0., 1.]], dtype=float32)
    """

    @property
    def size(self) -> int:
        """One pixel."""
        return 1


class BlendedParams(TriggerParams):
    """Blend weight and the seed of the noise key."""

    alpha: float = Field(0.2, gt=0.0, le=1.0)
    key_seed: int = Field(0, ge=0, lt=2**32)


@register_attack("blended", BlendedParams)
class BlendedBackdoor(TriggerBackdoor[BlendedParams]):
    r"""Blended-injection backdoor with a random-noise key (Chen et al. 2017).

    .. math::

        x \leftarrow (1 - \alpha)\, x + \alpha\, k,\qquad y \leftarrow t,
        \qquad k_{r,c,ch} \sim U[0, 1)

    The key ``k`` has the image's shape and is drawn once from ``key_seed`` (not from the run's
    seed: every colluder and the server's success set need the same key). Chen et al. blend a
    Hello Kitty image or a uniform-noise key; BackFed ships the image with alpha 0.2. Both
    train and test with the same alpha here.

    Parameters
    ----------
    target : int, default 0
        The label of triggered samples.
    ratio : float, default 0.1
        Fraction of the shard poisoned, in (0, 1].
    alpha : float, default 0.2
        Blend weight of the key, in (0, 1].
    key_seed : int, default 0
        Seed of the noise key.

    Returns
    -------
    PoisonedData
        The poisoned copy of the shard; the success set is the blended test samples not of
        class ``target``, with the same samples unblended as the baseline.

    References
    ----------
    Chen, Liu, Li, Lu & Song, "Targeted Backdoor Attacks on Deep Learning Systems Using Data
    Poisoning", 2017 (blended injection strategy); Dao et al., BackFed, 2025 (``Blended``).

    Examples
    --------
    >>> import numpy as np
    >>> from attacks import get_attack
    >>> attack = get_attack("blended", alpha=0.5)
    >>> x = np.ones((1, 2, 2, 1), np.float32)
    >>> key = attack.key((2, 2, 1))
    >>> bool(np.allclose(attack.apply_trigger(x)[0], 0.5 + 0.5 * key))
    True
    """

    def key(self, shape: tuple[int, ...]) -> NDArray[np.float32]:
        """The ``(H, W, C)`` noise key, the same for every caller with the same seed."""
        rng = np.random.default_rng(self.params.key_seed)
        return rng.random(shape, dtype=np.float32)

    def apply_trigger(self, x: Images) -> Images:
        """``(1 - alpha) x + alpha k`` for every image of ``x``."""
        alpha = np.float32(self.params.alpha)
        return ((1.0 - alpha) * x + alpha * self.key(tuple(x.shape[1:]))).astype(np.float32)


class DistributedParams(TriggerParams):
    """How the global trigger is cut: shares (rows), their length, where they start, the value."""

    num_shares: int = Field(4, ge=1)
    length: int = Field(4, ge=1)
    row: int = Field(1, ge=0)
    col: int = Field(1, ge=0)
    value: float = Field(1.0, ge=0.0, le=1.0)


class RowsTrigger(TriggerBackdoor[DistributedParams]):
    """DBA's global trigger: ``num_shares`` rows of ``length`` pixels from ``(row, col)``."""

    def _stamp(self, x: Images, shares: range) -> Images:
        p = self.params
        height, width = x.shape[1], x.shape[2]
        if p.row + p.num_shares > height or p.col + p.length > width:
            raise ConfigError(
                f"attack.params: the DBA trigger (rows {p.row}..{p.row + p.num_shares - 1}, "
                f"columns {p.col}..{p.col + p.length - 1}) must fit in the {height}x{width} image"
            )
        out = np.array(x, dtype=np.float32, copy=True)
        for share in shares:
            out[:, p.row + share, p.col : p.col + p.length, :] = p.value
        return out

    def apply_trigger(self, x: Images) -> Images:
        """The global trigger: every share."""
        return self._stamp(x, range(self.params.num_shares))


@register_attack("dba", DistributedParams)
class DistributedBackdoor(RowsTrigger):
    r"""DBA, the distributed backdoor attack (Xie et al. 2020), with BackFed's geometry.

    .. math::

        T = \bigcup_{s=0}^{S-1} T_s,\quad T_s = \{(\text{row} + s,\ \text{col} + j)
        : 0 \le j < L\},\qquad \text{colluder } c \text{ trains with } T_{c \bmod S}

    Each colluder stamps only its local trigger ``T_s`` (pixels set to ``value``) and relabels
    ``target``; the attack succeeds when the global model, never trained on ``T`` itself, maps
    images with the whole ``T`` to ``target``, so the success set uses ``T``. The colluder rank
    is the client's position among the run's malicious clients (sorted partition ids). Xie et
    al. place four 1x4 bars with gaps (MNIST); BackFed (``DEFAULT_TRIGGER_PATTERNS``) uses
    adjacent rows 1..4, columns 1..4, which fits 8x8 digits and is the default here. Combine
    with ``scaling`` for the paper's boosted updates.

    Parameters
    ----------
    target : int, default 0
        The label of triggered samples.
    ratio : float, default 0.1
        Fraction of each colluder's shard poisoned, in (0, 1].
    num_shares : int, default 4
        Number of local triggers ``S`` (rows).
    length : int, default 4
        Pixels per local trigger ``L``.
    row, col : int, default 1
        Top-left pixel of the global trigger.
    value : float, default 1.0
        Trigger pixel value, in [0, 1].

    Returns
    -------
    PoisonedData
        The colluder's poisoned shard; the success set stamps the global trigger on the test
        samples not of class ``target`` (baseline: the same samples untriggered).

    References
    ----------
    Xie, Huang, Chen & Li, "DBA: Distributed Backdoor Attacks against Federated Learning",
    ICLR 2020; Dao et al., BackFed, 2025 (``backfed/poisons/distributed.py``).

    Examples
    --------
    >>> import numpy as np
    >>> from attacks import get_attack
    >>> attack = get_attack("dba", num_shares=2, length=2, row=0, col=0)
    >>> x = np.zeros((1, 3, 3, 1), np.float32)
    >>> attack.local_trigger(x, colluder=1)[0, :, :, 0]
    array([[0., 0., 0.],
           [1., 1., 0.],
           [0., 0., 0.]], dtype=float32)
    >>> int(attack.apply_trigger(x).sum())
    4
    """

    def local_trigger(self, x: Images, colluder: int) -> Images:
        """Share ``colluder mod num_shares`` only."""
        share = colluder % self.params.num_shares
        return self._stamp(x, range(share, share + 1))


@register_attack("centralized_trigger", DistributedParams)
class CentralizedTrigger(RowsTrigger):
    r"""DBA's global trigger stamped whole by every attacker (BackFed's ``centralized``), the
    baseline Xie et al. compare DBA against.

    .. math::

        T = \bigcup_{s=0}^{S-1} \{(\text{row} + s,\ \text{col} + j) : 0 \le j < L\},
        \qquad x_T \leftarrow v,\quad y \leftarrow t\ \text{for every colluder}

    The same geometry and parameters as ``dba`` (so a scenario switches between the two by
    ``type`` alone and both are measured on the same global trigger), but no colluder trains
    with a share: each stamps all of ``T``. Deviation from BackFed's ``Centralized``: their
    global trigger is the union of the shares of the malicious clients present (at most
    ``maximum_shares``, on a grid with gaps); here it is all ``num_shares`` rows, as in ``dba``.

    Parameters
    ----------
    target : int, default 0
        The label of triggered samples.
    ratio : float, default 0.1
        Fraction of each attacker's shard poisoned, in (0, 1].
    num_shares : int, default 4
        Rows ``S`` of the trigger.
    length : int, default 4
        Pixels per row ``L``.
    row, col : int, default 1
        Top-left pixel of the trigger.
    value : float, default 1.0
        Trigger pixel value, in [0, 1].

    Returns
    -------
    PoisonedData
        The attacker's poisoned shard, stamped with the whole trigger; the success set stamps
        the same trigger on the test samples not of class ``target`` (baseline: untriggered).

    References
    ----------
    Xie, Huang, Chen & Li, "DBA: Distributed Backdoor Attacks against Federated Learning",
    ICLR 2020 (the centralized attack of Sec. 3); Dao et al., BackFed, 2025
    (``backfed/poisons/distributed.py``, class ``Centralized``).

    Examples
    --------
    >>> import numpy as np
    >>> from attacks import get_attack
    >>> attack = get_attack("centralized_trigger", num_shares=2, length=2, row=0, col=0)
    >>> attack.local_trigger(np.zeros((1, 3, 3, 1), np.float32), colluder=1)[0, :, :, 0]
    array([[1., 1., 0.],
           [1., 1., 0.],
           [0., 0., 0.]], dtype=float32)
    """
