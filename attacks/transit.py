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
    """Flip ``num_bits`` distinct bits chosen uniformly among all ``32 * d`` payload bits.

    Models memory or link corruption (Rakin et al. 2019 flip chosen bits; here they are random).
    A flipped exponent bit can turn a weight into +-Inf, NaN or a huge value.
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
    """Additive Gaussian tampering: ``w -> w + e`` with ``e ~ N(0, scale^2)`` i.i.d.

    Every array is hit, or only array ``layer`` (its index in the message) when set.
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
    """Swap two arrays of the same shape (and different contents), chosen with the rng.

    If no two arrays qualify, one array (chosen with the rng among those with >= 2 distinct
    values) gets a random permutation of its values instead: shapes and the multiset of values
    stay valid, so only a digest or signature check can tell. A message whose arrays are all
    constant cannot be altered this way and is returned unchanged (as a copy).
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
    """Replay: deliver the earlier captured message ``recorded`` instead of the current one.

    Stale weights from an earlier round on the same link (uplink or downlink); the digest and
    signature checks exist to catch them. With nothing recorded yet the message passes unchanged.
    """

    def tamper(
        self, arrays: Message, *, rng: np.random.Generator, recorded: Message | None
    ) -> Message:
        return _copy(recorded if recorded is not None else arrays)
