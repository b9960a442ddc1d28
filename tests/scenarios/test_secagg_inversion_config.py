"""The ``[secure_aggregation]`` and ``[inversion]`` sections: bounds and refusals, before Ray."""

from __future__ import annotations

import pytest

from common.errors import ConfigError
from scenarios.loader import load_scenario


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("defense.aggregator=median", "defense.aggregator"),
        ('defense.pre=[{name = "clip", params = {threshold = 1.0}}]', "defense.aggregator"),
        ("integrity.enabled=true", "integrity.enabled"),
        ("inversion.clients=[0]", "inversion.clients"),
        ("dp.enabled=true", None),  # local DP-SGD composes with SecAgg+
        ("simulation.faults.crash=0.1", "simulation.faults"),
    ],
)
def test_secagg_refuses_what_needs_each_update(override: str, field: str | None) -> None:
    if field is None:
        assert load_scenario("secure_aggregation", [override]).secure_aggregation.enabled
        return
    with pytest.raises(ConfigError, match=rf"^secure_aggregation.enabled: refused with {field}"):
        load_scenario("secure_aggregation", [override])


def test_secagg_refuses_a_server_side_attack() -> None:
    with pytest.raises(ConfigError, match="server-side"):
        load_scenario("secure_aggregation", ["attack.type=alie", "attack.malicious=1"])


def test_secagg_allows_a_client_side_poisoner() -> None:
    # Poisoning happens on the client, before masking: SecAgg+ hides it from the server.
    scenario = load_scenario("secure_aggregation", ["attack.type=sign_flip", "attack.malicious=1"])
    assert scenario.attack.enabled


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("secure_aggregation.num_shares=2", "num_shares: got 2"),
        ("secure_aggregation.num_shares=1.5", "num_shares: got 1.5"),
        ("secure_aggregation.reconstruction_threshold=1.5", "a fraction is <= 1"),
    ],
)
def test_secagg_bounds(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_scenario("secure_aggregation", [override])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("inversion.clients=[53]", r"inversion.clients: got \[53\]; each must be a partition id"),
        ("inversion.rounds=[2]", r"inversion.rounds: got \[2\]; give at least one round"),
        ("inversion.rounds=[]", r"inversion.rounds: got \[\]"),
        ("inversion.iterations=0", "inversion.iterations"),
    ],
)
def test_inversion_bounds(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_scenario("inversion_updates", [override])
