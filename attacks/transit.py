"""Weight manipulation in transit: an adversary on one client <-> server link, without keys.

``direction`` says which messages it alters: ``uplink`` (the client's reply) or ``downlink``
(the server's broadcast). It cannot re-sign what it changes, which is what the integrity gate
(signatures, base digests) exists to detect; these attacks exercise that gate.
Every attack returns new float32 arrays and leaves the message it was given untouched.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from pydantic import Field

from attacks.base import TransitAttack, TransitParams
from attacks.registry import register_attack
from common.errors import ConfigError

Message = list[NDArray[np.float32]]


def _copy(arrays: Message) -> Message:
    return [np.array(a, dtype=np.float32, copy=True) for a in arrays]


class BitFlipParams(TransitParams):
    """How many distinct bits of the float32 payload to flip."""

    num_bits: int = Field(1, ge=1)


@register_attack("bit_flip", BitFlipParams)
class BitFlip(TransitAttack[BitFlipParams]):
    r"""Flip ``num_bits`` distinct bits chosen uniformly among all ``32 * d`` payload bits.

    .. math:: w \mapsto w \oplus \textstyle\sum_{b \in B} 2^{b},\qquad |B| = \text{num\_bits}

    on the float32 bit patterns. Models memory or link corruption (Rakin et al. choose the bits;
    here they are random). A flipped exponent bit can turn a weight into +-Inf, NaN or a huge value.

    Parameters
    ----------
    direction : {"uplink", "downlink"}, default "uplink"
        The link the attacker sits on.
    num_bits : int, default 1
        Distinct bits flipped per message, >= 1.

    Returns
    -------
    list of ndarray
        The delivered message (new float32 arrays).

    References
    ----------
    Rakin, He & Fan, "Bit-Flip Attack: Crushing Neural Network with Progressive Bit Search",
    ICCV 2019.

    Examples
    --------
    >>> import numpy as np
    >>> from attacks import get_attack
    >>> message = [np.zeros(4, np.float32)]
    >>> out = get_attack("bit_flip", num_bits=3).tamper(
    ...     message, rng=np.random.default_rng(0), recorded=None)
    >>> int(np.unpackbits(out[0].view(np.uint8)).sum())
    3
    """

    def tamper(
        self, arrays: Message, *, rng: np.random.Generator, recorded: Message | None
    ) -> Message:
        out = _copy(arrays)
        sizes = [a.size for a in out]
        total_bits = 32 * sum(sizes)
        if self.params.num_bits > total_bits:
            raise ConfigError(
                f"attack.params.num_bits: got {self.params.num_bits}; the message has only "
                f"{total_bits} bits"
            )
        flat = np.concatenate([a.ravel() for a in out]).view(np.uint32)
        bits = rng.choice(total_bits, size=self.params.num_bits, replace=False)
        # XOR through np.bitwise_xor.at so two bits of the same word both flip.
        np.bitwise_xor.at(
            flat, bits // 32, np.left_shift(np.uint32(1), (bits % 32).astype(np.uint32))
        )
        pieces = np.split(flat.view(np.float32), np.cumsum(sizes)[:-1])
        return [p.reshape(a.shape) for p, a in zip(pieces, out, strict=True)]


class AdditiveParams(TransitParams):
    """Noise scale (> 0) and the layer hit (None: every array)."""

    scale: float = Field(0.1, gt=0.0)
    layer: int | None = Field(None, ge=0)


@register_attack("additive", AdditiveParams)
class Additive(TransitAttack[AdditiveParams]):
    r"""Additive Gaussian tampering of the weights in transit.

    .. math:: w \mapsto w + e,\qquad e_k \sim \mathcal N(0, \text{scale}^2)\ \text{i.i.d.}

    on every array, or only on array ``layer`` (its index in the message) when set.

    Parameters
    ----------
    direction : {"uplink", "downlink"}, default "uplink"
        The link the attacker sits on.
    scale : float, default 0.1
        Noise standard deviation, > 0.
    layer : int, optional
        The only array hit.

    Returns
    -------
    list of ndarray
        The delivered message (new float32 arrays).

    References
    ----------
    A generic man-in-the-middle perturbation; the integrity gate's signatures exist to catch it.

    Examples
    --------
    >>> import numpy as np
    >>> from attacks import get_attack
    >>> message = [np.zeros(2, np.float32), np.zeros(3, np.float32)]
    >>> out = get_attack("additive", layer=1).tamper(
    ...     message, rng=np.random.default_rng(0), recorded=None)
    >>> bool(out[0].any()), bool(out[1].all())
    (False, True)
    """

    def tamper(
        self, arrays: Message, *, rng: np.random.Generator, recorded: Message | None
    ) -> Message:
        layer = self.params.layer
        if layer is not None and layer >= len(arrays):
            raise ConfigError(
                f"attack.params.layer: got {layer}; the message has {len(arrays)} arrays"
            )
        out = _copy(arrays)
        hit = range(len(out)) if layer is None else [layer]
        for index in hit:
            noise = rng.normal(0.0, self.params.scale, size=out[index].shape)
            out[index] = (out[index] + noise).astype(np.float32)
        return out


@register_attack("swap_layer", TransitParams)
class SwapLayer(TransitAttack[TransitParams]):
    r"""Swap two arrays of the same shape (and different contents), chosen with the rng.

    .. math:: (\ldots, W_i, \ldots, W_j, \ldots) \mapsto (\ldots, W_j, \ldots, W_i, \ldots)

    If no two arrays qualify, one array (chosen among those with >= 2 distinct values) gets a
    random permutation of its values instead: shapes and the multiset of values stay valid, so
    only a digest or signature check can tell. A message whose arrays are all constant cannot be
    altered this way and is returned unchanged (as a copy).

    Parameters
    ----------
    direction : {"uplink", "downlink"}, default "uplink"
        The link the attacker sits on.

    Returns
    -------
    list of ndarray
        The delivered message (new float32 arrays).

    References
    ----------
    A structural tampering with no originating paper; it defeats shape and range checks.

    Examples
    --------
    >>> import numpy as np
    >>> from attacks import get_attack
    >>> message = [np.zeros(2, np.float32), np.ones(2, np.float32)]
    >>> get_attack("swap_layer").tamper(message, rng=np.random.default_rng(0), recorded=None)
    [array([1., 1.], dtype=float32), array([0., 0.], dtype=float32)]
    """

    def tamper(
        self, arrays: Message, *, rng: np.random.Generator, recorded: Message | None
    ) -> Message:
        out = _copy(arrays)
        pairs = [
            (i, j)
            for i in range(len(out))
            for j in range(i + 1, len(out))
            if out[i].shape == out[j].shape and not np.array_equal(out[i], out[j])
        ]
        if pairs:
            i, j = pairs[int(rng.integers(len(pairs)))]
            out[i], out[j] = out[j], out[i]
            return out
        varied = [i for i, a in enumerate(out) if np.unique(a).size > 1]
        if varied:
            index = varied[int(rng.integers(len(varied)))]
            values = out[index].ravel()
            # Redraw until the order changes: a permutation may be the identity on tiny arrays.
            shuffled = rng.permutation(values)
            while np.array_equal(shuffled, values):
                shuffled = rng.permutation(values)
            out[index] = shuffled.reshape(out[index].shape)
        return out


@register_attack("replay", TransitParams)
class Replay(TransitAttack[TransitParams]):
    r"""Replay: deliver the earlier captured message ``recorded`` instead of the current one.

    .. math:: W^{(t)} \mapsto W^{(t')},\qquad t' < t

    Stale weights from an earlier round on the same link (uplink or downlink); the digest and
    signature checks exist to catch them. With nothing recorded yet the message passes unchanged.

    Parameters
    ----------
    direction : {"uplink", "downlink"}, default "uplink"
        The link the attacker sits on.

    Returns
    -------
    list of ndarray
        A copy of ``recorded``, or of the message when nothing was recorded.

    References
    ----------
    The classic replay attack on an unauthenticated channel (Syverson, "A Taxonomy of Replay
    Attacks", CSFW 1994).

    Examples
    --------
    >>> import numpy as np
    >>> from attacks import get_attack
    >>> old, new = [np.zeros(2, np.float32)], [np.ones(2, np.float32)]
    >>> get_attack("replay").tamper(new, rng=np.random.default_rng(0), recorded=old)
    [array([0., 0.], dtype=float32)]
    """

    def tamper(
        self, arrays: Message, *, rng: np.random.Generator, recorded: Message | None
    ) -> Message:
        return _copy(recorded if recorded is not None else arrays)
