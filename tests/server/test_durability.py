"""Backdoor durability: rounds the success rate stays above the threshold after the attack stops."""

from __future__ import annotations

from typing import Any

from common.schema import AttackSpec
from server.durability import backdoor_durability


def _rows(asr: list[float], poisoner_sampled: list[bool]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [{"round": 0, "attack_success_rate": 0.0}]
    for r, (rate, sampled) in enumerate(zip(asr, poisoner_sampled, strict=True), start=1):
        rows.append({"round": r, "attack_success_rate": rate, "malicious_sampled": int(sampled)})
    return rows


def test_counts_rounds_above_threshold_after_the_last_attack_round() -> None:
    attack = AttackSpec(type="backdoor", malicious=1, start_round=2, end_round=4)
    rows = _rows([0.1, 0.6, 0.9, 0.95, 0.8, 0.55, 0.4, 0.7], [True] * 8)
    out = backdoor_durability(rows, attack, seed=0)
    # Attack acts in rounds 2-4; rounds 5 (0.8) and 6 (0.55) hold, round 7 (0.4) breaks it; the
    # recovery in round 8 does not count.
    assert out == {
        "attack_durability_threshold": 0.5,
        "attack_last_round": 4,
        "attack_durability_rounds": 2,
        "attack_durability_censored": False,
    }


def test_a_round_without_a_sampled_poisoner_is_not_an_attack_round() -> None:
    attack = AttackSpec(type="backdoor", malicious=1, start_round=1, end_round=4)
    # The poisoner was not sampled in rounds 3-4: the attack last acted in round 2.
    rows = _rows([0.7, 0.9, 0.8, 0.7, 0.2], [True, True, False, False, True])
    out = backdoor_durability(rows, attack, seed=0)
    assert out["attack_last_round"] == 2 and out["attack_durability_rounds"] == 2


def test_censored_when_the_backdoor_survives_to_the_end_and_threshold_is_configurable() -> None:
    attack = AttackSpec(type="backdoor", malicious=1, end_round=1, durability_threshold=0.3)
    out = backdoor_durability(_rows([0.9, 0.35, 0.31], [True] * 3), attack, seed=0)
    assert out["attack_durability_rounds"] == 2 and out["attack_durability_censored"] is True
    assert out["attack_durability_threshold"] == 0.3


def test_null_with_a_reason_when_the_attack_never_stopped_or_never_acted() -> None:
    running = AttackSpec(type="backdoor", malicious=1)
    out = backdoor_durability(_rows([0.9, 0.9], [True, True]), running, seed=0)
    assert out["attack_durability_rounds"] is None
    assert out["attack_durability_reason"] == "the attack acted until the end"
    out = backdoor_durability(_rows([0.0, 0.0], [False, False]), running, seed=0)
    assert out["attack_durability_reason"] == "the attack never acted"


def test_nothing_without_a_success_rate() -> None:
    rows = [{"round": 0}, {"round": 1, "malicious_sampled": 1}]
    assert backdoor_durability(rows, AttackSpec(type="sign_flip", malicious=1), seed=0) == {}
