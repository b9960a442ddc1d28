"""Injected faults and the round's deadline on the client side (``clients/faults.py``)."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from flwr.app import ConfigRecord, Message, MessageType, RecordDict

from clients.faults import InjectedCrash, draw_fault, expired, inject_fault
from common.errors import ConfigError
from common.schema import FaultSpec
from scenarios.loader import load_scenario


def _draws(faults: FaultSpec, seed: int = 7) -> list[str | None]:
    return [draw_fault(faults, seed, r, p) for r in range(1, 51) for p in range(40)]


def test_each_fault_happens_with_its_probability_and_they_exclude_each_other() -> None:
    counts = Counter(_draws(FaultSpec(crash=0.3, hang=0.1, straggle=0.2)))
    assert sum(counts.values()) == 2000
    # Binomial(2000, p): 4 standard deviations are within 0.045 of p for these p.
    assert counts["crash"] / 2000 == pytest.approx(0.3, abs=0.045)
    assert counts["hang"] / 2000 == pytest.approx(0.1, abs=0.03)
    assert counts["straggle"] / 2000 == pytest.approx(0.2, abs=0.04)


def test_faults_are_seeded_by_scenario_round_and_partition() -> None:
    faults = FaultSpec(crash=0.5)
    assert _draws(faults) == _draws(faults)
    assert _draws(faults) != _draws(faults, seed=8)
    assert set(_draws(FaultSpec())) == {None}  # off by default: no draw at all


def test_a_crash_raises_and_a_straggler_goes_on() -> None:
    message = Message(RecordDict({"config": ConfigRecord()}), 1, MessageType.TRAIN, ttl=60)
    with pytest.raises(InjectedCrash, match=r"^injected crash \(simulation.faults.crash = 0.3\)"):
        inject_fault(FaultSpec(crash=0.3), "crash", message)
    inject_fault(FaultSpec(straggle=1.0, straggle_seconds=0.0), "straggle", message)
    inject_fault(FaultSpec(), None, message)


def test_a_message_expires_with_its_ttl() -> None:
    fresh = Message(RecordDict(), 1, MessageType.TRAIN, ttl=60)
    assert not expired(fresh)
    old = Message(RecordDict(), 1, MessageType.TRAIN, ttl=60)
    old.metadata.created_at = time.time() - 61  # sent more than a round timeout ago
    assert expired(old)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "simulation.faults.crash=1.5",
            "simulation.faults.crash: got 1.5; Input should be less than or equal to 1",
        ),
        (
            "simulation.faults.hang=-0.1",
            "simulation.faults.hang: got -0.1; Input should be greater than or equal to 0",
        ),
        (
            "simulation.faults.straggle=true",
            "simulation.faults.straggle: got True; must be a number, not a boolean",
        ),
        (
            "simulation.faults={crash=0.6, hang=0.5}",
            "simulation.faults: got 1.1; crash + hang + straggle must be at most 1",
        ),
        (
            "simulation.max_failed_rounds=0",
            "simulation.max_failed_rounds: got 0; Input should be greater than or equal to 1",
        ),
        (
            "simulation.handshake_timeout=inf",
            "simulation.handshake_timeout: got inf; Input should be a finite number",
        ),
    ],
)
def test_bad_fault_and_round_options_are_one_line_errors(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_scenario("quickstart", [override])
    assert str(caught.value) == message


def test_faults_are_refused_with_central_dp_which_needs_every_reply() -> None:
    with pytest.raises(ConfigError, match=r"^simulation.faults: .*central DP"):
        load_scenario("dp_central", ["simulation.faults.crash=0.1"])
    load_scenario("dp_local", ["simulation.faults.crash=0.1"])  # local DP copes
