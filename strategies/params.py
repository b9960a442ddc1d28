"""Parameter fields shared by several stages (one definition of ``num_byzantine``)."""

from __future__ import annotations

from pydantic import Field

from common.registry import Params


class Byzantine(Params):
    """A stage that is told how many Byzantine clients to tolerate (a mixin of stage models)."""

    num_byzantine: int = Field(default=0, ge=0)
    """f in Blanchard et al. 2017 and Allouah et al. 2023: Byzantine updates to tolerate."""


class Weighting(Params):
    """A rule that averages, optionally weighted by the self-reported example counts."""

    weighted: bool = True
    """Weight client i by n_i / sum(n) (McMahan et al.); False gives 1/n, since a Byzantine
    client can report any count."""
