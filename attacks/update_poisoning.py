"""Model poisoning by one client with no knowledge of the others: it rewrites its own update.

Every attack maps the flat delta ``(d,)`` (trained weights minus global weights) to a new array
of the same shape and dtype, and may lie about the example count it reports.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, ValidationInfo, field_validator

from attacks._maths import exact_count, round_half_up
from attacks.base import UpdateAttack, Vector
from attacks.registry import register_attack
from common.registry import NoParams, Params


class SignFlipParams(Params):
    """``scale`` > 0 multiplies the flipped update."""

    scale: float = Field(1.0, gt=0.0)


@register_attack("sign_flip", SignFlipParams)
class SignFlip(UpdateAttack[SignFlipParams]):
    """Sign flipping: ``delta -> -scale * delta`` (Allen-Zhu et al. 2021; Li et al. 2019).

    ByzFL's SignFlipping is the server-side variant ``-mean(honest)``; this is the client-side one
    that needs no knowledge of the other clients.
    """

    def poison_update(
        self, delta: Vector, num_examples: int, *, rng: np.random.Generator
    ) -> tuple[Vector, int]:
        return (-self.params.scale * delta).astype(delta.dtype), num_examples


class GaussianParams(Params):
    """Mean and standard deviation (>= 0) of the noise that replaces the update."""

    mean: float = 0.0
    std: float = Field(1.0, ge=0.0)


@register_attack("gaussian", GaussianParams)
class Gaussian(UpdateAttack[GaussianParams]):
    """Gaussian noise in place of the update: ``delta -> g, g_k ~ N(mean, std^2)`` i.i.d.

    Blanchard et al. 2017 (Krum paper). Peers disagree on the default: ByzFL and FLPoison draw
    N(0, 1) (our default); Blades' NoiseAdversary draws N(0.1, 0.1^2).
    """

    def poison_update(
        self, delta: Vector, num_examples: int, *, rng: np.random.Generator
    ) -> tuple[Vector, int]:
        noise = rng.normal(self.params.mean, self.params.std, size=delta.shape)
        return noise.astype(delta.dtype), num_examples


class ScalingParams(Params):
    """``gamma`` > 0, the boost (the paper's ``gamma = n / eta``)."""

    gamma: float = Field(10.0, gt=0.0)


@register_attack("scaling", ScalingParams)
class Scaling(UpdateAttack[ScalingParams]):
    """Model replacement boost: ``delta -> gamma * delta`` (Bagdasaryan et al. 2020, AISTATS).

    With FedAvg over n clients and server learning rate eta, ``gamma = n / eta`` makes the new
    global model (about) the attacker's model. Combine with a data attack's training to boost a
    backdoor; alone it amplifies an honest update.
    """

    def poison_update(
        self, delta: Vector, num_examples: int, *, rng: np.random.Generator
    ) -> tuple[Vector, int]:
        return (self.params.gamma * delta).astype(delta.dtype), num_examples


@register_attack("zero", NoParams)
class Zero(UpdateAttack[NoParams]):
    """Zero update: ``delta -> 0`` (a free-rider; it drags averages towards the old model)."""

    def poison_update(
        self, delta: Vector, num_examples: int, *, rng: np.random.Generator
    ) -> tuple[Vector, int]:
        return np.zeros_like(delta), num_examples


class NonFiniteParams(Params):
    """Which value to inject and the fraction of coordinates hit."""

    which: Literal["nan", "inf", "-inf"] = "nan"
    fraction: float = Field(1.0, gt=0.0, le=1.0)


@register_attack("nonfinite", NonFiniteParams)
class NonFinite(UpdateAttack[NonFiniteParams]):
    """Inject NaN or +-Inf into ``max(1, floor(fraction * d + 0.5))`` coordinates chosen with rng.

    ByzFL's ``Inf`` attack is the case ``which="inf", fraction=1``. One non-finite coordinate is
    enough to poison a plain mean; the integrity gate must reject it.
    """

    def poison_update(
        self, delta: Vector, num_examples: int, *, rng: np.random.Generator
    ) -> tuple[Vector, int]:
        count = max(1, exact_count(self.params.fraction, delta.size))
        hit = rng.choice(delta.size, size=count, replace=False)
        out = np.array(delta, copy=True)
        out[hit] = float(self.params.which)
        return out, num_examples


class InflateExamplesParams(Params):
    """Either a ``factor`` (>= 1) on the true count or a ``fixed_count``, and a ``scale``."""

    factor: float | None = Field(None, ge=1.0)
    fixed_count: int | None = Field(None, ge=1, validate_default=True)
    scale: float = 1.0
    """The update sent is ``scale * delta``: 1 keeps it, -1 combines with a sign flip."""

    @field_validator("fixed_count")
    @classmethod
    def _exactly_one(cls, value: int | None, info: ValidationInfo) -> int | None:
        if (value is None) == (info.data.get("factor") is None):
            raise ValueError("set exactly one of factor (multiplier) and fixed_count")
        return value


@register_attack("inflate_examples", InflateExamplesParams)
class InflateExamples(UpdateAttack[InflateExamplesParams]):
    """Lie about the data size: report ``floor(num_examples * factor + 0.5)`` or ``fixed_count``.

    FedAvg weights clients by their self-reported count, so one client can dominate the
    average; the update itself is sent as ``scale * delta`` (unchanged by default).
    """

    def poison_update(
        self, delta: Vector, num_examples: int, *, rng: np.random.Generator
    ) -> tuple[Vector, int]:
        sent = (self.params.scale * delta).astype(delta.dtype)
        if self.params.fixed_count is not None:
            return sent, self.params.fixed_count
        # The params validator guarantees exactly one of factor and fixed_count is set.
        assert self.params.factor is not None
        return sent, round_half_up(num_examples * self.params.factor)
