"""Client-side attacks that send what no honest client could: non-finite values, a false count."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, ValidationInfo, field_validator

from attacks._maths import exact_count, round_half_up
from attacks.base import UpdateAttack, Vector
from attacks.registry import register_attack
from common.registry import Params


class NonFiniteParams(Params):
    """Which value to inject and the fraction of coordinates hit."""

    which: Literal["nan", "inf", "-inf"] = "nan"
    fraction: float = Field(1.0, gt=0.0, le=1.0)


@register_attack("nonfinite", NonFiniteParams)
class NonFinite(UpdateAttack[NonFiniteParams]):
    r"""Inject NaN or +-Inf into the update; the integrity gate must reject it.

    .. math:: \tilde\delta_k = \text{which}\ \text{for}\ k \in K,\quad
              |K| = \max(1, \lfloor \text{fraction}\cdot d + 0.5 \rfloor)

    ``K`` drawn uniformly with the rng. One non-finite coordinate is enough to poison a plain
    mean. ByzFL's ``Inf`` attack is ``which = "inf", fraction = 1``.

    Parameters
    ----------
    which : {"nan", "inf", "-inf"}, default "nan"
        The value injected.
    fraction : float, default 1.0
        Fraction of coordinates hit, in (0, 1].

    Returns
    -------
    tuple of (ndarray, int)
        The delta with ``|K|`` coordinates replaced, and the true example count.

    References
    ----------
    ByzFL (Gonzalez et al. 2024), attack ``Inf``.

    Examples
    --------
    >>> import numpy as np
    >>> from attacks import get_attack
    >>> out, _ = get_attack("nonfinite", which="inf", fraction=0.5).poison_update(
    ...     np.zeros(4), 3, rng=np.random.default_rng(0))
    >>> int(np.isinf(out).sum())
    2
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
    r"""Lie about the data size, so that FedAvg's weighting lets one client dominate.

    .. math:: \tilde N = \lfloor N\cdot\text{factor} + 0.5\rfloor
              \ \text{or}\ \text{fixed\_count},\qquad \tilde\delta = \text{scale}\cdot\delta

    Parameters
    ----------
    factor : float, optional
        Multiplier on the true count, >= 1 (exactly one of ``factor`` and ``fixed_count``).
    fixed_count : int, optional
        The count reported, >= 1.
    scale : float, default 1.0
        Factor on the update sent.

    Returns
    -------
    tuple of (ndarray, int)
        ``scale * delta`` and the inflated count.

    References
    ----------
    McMahan et al., "Communication-Efficient Learning of Deep Networks from Decentralized
    Data", AISTATS 2017 (the count-weighted FedAvg this attack exploits).

    Examples
    --------
    >>> import numpy as np
    >>> from attacks import get_attack
    >>> get_attack("inflate_examples", factor=2.5).poison_update(
    ...     np.array([1.0]), 5, rng=np.random.default_rng(0))
    (array([1.]), 13)
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
