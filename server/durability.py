"""How long a backdoor outlives its attack: rounds with the attack success rate above a threshold.

Neurotoxin (Zhang et al., ICML 2022) measures a backdoor's durability as the number of rounds
after the attacker stops during which the backdoor still works. Here the attacker "stops" after
the last round in which the attack was active AND a malicious client was sampled (nothing was
poisoned after it), and the backdoor "works" while ``attack_success_rate >= threshold``
(``attack.durability_threshold``, 0.5 by default). The count is censored when the run ends
with the backdoor still working: the true durability is at least the reported number.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from common.attack_schedule import is_active
from common.schema import AttackSpec

ASR = "attack_success_rate"


def last_attack_round(rows: Sequence[dict[str, Any]], attack: AttackSpec, seed: int) -> int | None:
    """The last recorded round in which the attack acted (active and a poisoner sampled)."""
    acted = [
        row["round"]
        for row in rows
        if row["round"] > 0
        and row.get("malicious_sampled", 0) > 0
        and is_active(
            row["round"],
            start_round=attack.start_round,
            end_round=attack.end_round,
            probability=attack.probability,
            seed=seed,
        )
    ]
    return max(acted) if acted else None


def backdoor_durability(
    rows: Sequence[dict[str, Any]], attack: AttackSpec, seed: int
) -> dict[str, Any]:
    """``attack_durability_*`` summary fields; empty when the run measured no success rate.

    ``attack_durability_rounds`` counts the consecutive rounds after the attack's last round
    with ``attack_success_rate >= threshold``; it is null, with ``attack_durability_reason``,
    when the attack never acted or acted until the last recorded round.
    """
    if not rows or ASR not in rows[-1]:
        return {}
    threshold = attack.durability_threshold
    out: dict[str, Any] = {"attack_durability_threshold": threshold}
    last = last_attack_round(rows, attack, seed)
    after = [row for row in rows if last is not None and row["round"] > last]
    if last is None or not after:
        reason = "the attack never acted" if last is None else "the attack acted until the end"
        return {**out, "attack_durability_rounds": None, "attack_durability_reason": reason}
    count = 0
    for row in after:
        if row[ASR] < threshold:
            break
        count += 1
    return {
        **out,
        "attack_last_round": last,
        "attack_durability_rounds": count,
        "attack_durability_censored": count == len(after),
    }
