"""Parameter models shared by several rules (one definition of ``num_byzantine``)."""

from __future__ import annotations

from pydantic import Field

from strategies.base import PreParams, RuleParams


class ByzantineParams(RuleParams):
    """A rule that is told how many Byzantine clients to tolerate."""

    num_byzantine: int = Field(default=0, ge=0)
    """f in Blanchard et al. 2017: the number of Byzantine updates the rule must tolerate."""


class WeightingParams(RuleParams):
    """A rule that averages, optionally weighted by the self-reported example counts."""

    weighted: bool = True
    """Weight client i by n_i / sum(n) (McMahan et al.); False gives 1/n, since a Byzantine
    client can report any count."""


class ByzantinePreParams(PreParams):
    """A pre-aggregator that is told how many Byzantine clients to tolerate."""

    num_byzantine: int = Field(default=0, ge=0)
    """f in Allouah et al. 2023: the number of Byzantine updates to tolerate."""
