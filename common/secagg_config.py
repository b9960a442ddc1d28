"""Scenario section ``[secure_aggregation]``: Flower's SecAgg+ instead of fedshield's pipeline.

SecAgg+ (Bell, Bonawitz, Gascon, Lepoint, Raykova 2020, "Secure Single-Server Aggregation with
(Poly)Logarithmic Overhead"; Flower's ``SecAggPlusWorkflow`` and ``secaggplus_mod``): each
client clips its weights to ``[-clipping_range, clipping_range]``, quantizes them to
``quantization_range`` levels, multiplies by its example count and adds pairwise masks agreed
with ``num_shares - 1`` neighbours (Diffie-Hellman keys, Shamir shares of the mask seeds with
``reconstruction_threshold`` needed to rebuild a dropped client's masks). The masks cancel in the
sum, so the server learns the weighted mean and nothing about any one update.

That is exactly what a robust rule, the integrity gate, central DP clipping, the curious server's
gradient inversion and any server-side adversary need to see, so each is refused with it
(:func:`check_secure_aggregation`); FedAvg is the one rule that works on a sum.

This module imports no TensorFlow or Flower: the scenario schema loads it before any worker.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from common.errors import ConfigError
from common.validation import FieldError, Strict


class SecureAggregationConfig(Strict):
    """The ``[secure_aggregation]`` table (Flower's ``SecAggPlusWorkflow`` parameters)."""

    enabled: bool = False
    num_shares: int | float = Field(1.0, gt=0)
    """Shares of each client's secret (its neighbours + 1); a float is a fraction of the sampled
    clients, and 1.0 (every client a neighbour of every other) is the original SecAgg."""
    reconstruction_threshold: int | float = Field(0.67, gt=0)
    """Shares needed to rebuild a dropped client's masks; a float is a fraction of num_shares."""
    clipping_range: float = Field(8.0, gt=0.0)
    """Weights are clipped to [-clipping_range, clipping_range] before quantization."""
    quantization_range: int = Field(2**22, ge=2, le=2**30)
    """Quantization levels; the step is 2 clipping_range / quantization_range."""

    @model_validator(mode="after")
    def _check_shares(self) -> SecureAggregationConfig:
        # Flower's own bounds (SecAggPlusWorkflow._check_init_params), checked before Ray.
        shares, threshold = self.num_shares, self.reconstruction_threshold
        if (isinstance(shares, int) and shares == 2) or (isinstance(shares, float) and shares > 1):
            raise FieldError(
                "secure_aggregation.num_shares", shares, "an integer > 2, or a fraction <= 1"
            )
        if isinstance(threshold, float) and threshold > 1.0:
            raise FieldError(
                "secure_aggregation.reconstruction_threshold", threshold, "a fraction is <= 1"
            )
        if isinstance(threshold, int) and isinstance(shares, int) and 1 < threshold >= shares:
            raise FieldError(
                "secure_aggregation.reconstruction_threshold",
                threshold,
                f"must be below num_shares ({shares})",
            )
        return self


def secagg_conflicts(scenario: Any) -> list[tuple[str, str]]:
    """``(field, why)`` for every setting that needs individual updates on the server."""
    conflicts = []
    defense = scenario.defense
    if defense.aggregator != "fedavg" or defense.pre:
        conflicts.append(("defense.aggregator", "a robust rule or pre-aggregation step"))
    if scenario.integrity.enabled:
        conflicts.append(("integrity.enabled", "the integrity gate"))
    if scenario.dp.enabled and scenario.dp.mode == "central":
        conflicts.append(("dp.mode", "central DP's clipping of each update"))
    if scenario.inversion.clients:
        conflicts.append(("inversion.clients", "gradient inversion of each update"))
    return conflicts


def check_secure_aggregation(scenario: Any, server_side_attack: bool) -> None:
    """Refuse, in one line, what cannot work when the server sees only the masked sum."""
    if not scenario.secure_aggregation.enabled:
        return
    conflicts = secagg_conflicts(scenario)
    if server_side_attack:
        conflicts.append(("attack.type", "a server-side (collusion, adaptive or wire) attack"))
    if scenario.simulation.faults.enabled:
        conflicts.append(("simulation.faults", "fault injection (not wired to SecAgg+ dropouts)"))
    if conflicts:
        field, what = conflicts[0]
        raise ConfigError(
            f"secure_aggregation.enabled: refused with {field} = "
            f"{_value(scenario, field)!r}: {what} needs each client's update, but under "
            "SecAgg+ the server sees only their masked sum; turn one of the two off "
            "(docs/inversion.md#secure-aggregation)"
        )


def _value(scenario: Any, field: str) -> object:
    value: object = scenario
    for part in field.split("."):
        value = getattr(value, part)
    return value
