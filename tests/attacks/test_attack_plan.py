"""Attack plans: a list of attacks is validated for compatible kinds before Ray starts, and each
attack lands in the slot of the kind it declares."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from attacks import AttackPlan, attack_plan
from attacks.collusion import Alie
from attacks.data_poisoning import Backdoor
from attacks.transit import BitFlip
from attacks.update_poisoning import Scaling
from common.errors import ConfigError
from common.schema import AttackSpec
from scenarios.loader import load_scenario, validate_document

MINIMAL = {"name": "t", "seed": 1, "rounds": 2}


def _refusal(attack: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        validate_document({**MINIMAL, "attack": {"malicious": 1, **attack}})
    message = str(info.value)
    assert "\n" not in message
    return message


def test_each_attack_lands_in_the_slot_of_its_kind() -> None:
    assert attack_plan(AttackSpec()) == AttackPlan()
    alie = attack_plan(AttackSpec(type="alie", params={"z": 1.0}))
    assert isinstance(alie.collusion, Alie) and alie.data is alie.update is alie.transit is None
    wire = attack_plan(AttackSpec(type="bit_flip", params={"direction": "downlink"}))
    assert isinstance(wire.transit, BitFlip) and wire.transit.params.direction == "downlink"


def test_model_replacement_is_a_backdoor_then_a_boost_with_per_attack_params() -> None:
    s = load_scenario("attack_model_replacement")
    assert s.attack.names == ("backdoor", "scaling") and s.attack.enabled
    plan = attack_plan(s.attack)
    assert isinstance(plan.data, Backdoor) and isinstance(plan.update, Scaling)
    assert (plan.data.params.target, plan.data.params.ratio) == (0, 0.3)
    assert plan.update.params.gamma == 10.0 and plan.collusion is None
    # The combination keeps the backdoor's success set (and its untriggered baseline).
    x = np.zeros((4, 8, 8, 1), np.float32)
    success = plan.success_set(x, np.array([0, 1, 2, 3]))
    assert success is not None and success.x.shape[0] == 3 and success.baseline_x is not None


@pytest.mark.parametrize(
    ("attack", "expected"),
    [
        (
            {"type": ["scaling", "backdoor"]},
            "attack.type: got ['scaling', 'backdoor']; a list combines one data attack followed "
            "by one update attack (scaling is update, backdoor is data)",
        ),
        (
            {"type": ["backdoor", "alie"]},
            "attack.type: got ['backdoor', 'alie']; a list combines one data attack followed "
            "by one update attack (backdoor is data, alie is collusion)",
        ),
        (
            {"type": ["backdoor", "label_flip"]},
            "attack.type: got ['backdoor', 'label_flip']; a list combines one data attack "
            "followed by one update attack (backdoor is data, label_flip is data)",
        ),
        (
            {"type": ["backdoor", "backdoor"]},
            "attack.type: got ['backdoor', 'backdoor']; a list names distinct attacks, at least "
            "one, not 'none'",
        ),
        (
            {"type": ["backdoor", "none"]},
            "attack.type: got ['backdoor', 'none']; a list names distinct attacks, at least "
            "one, not 'none'",
        ),
        (
            {"type": ["backdoor", "scalling"]},
            "attack.type: unknown attack 'scalling'; valid: ",
        ),
        (
            {"type": ["backdoor", "scaling"], "params": {"gamma": 10.0}},
            "attack.params.gamma: got 10.0; with a list of attacks, params holds one table per "
            "attack named in attack.type (backdoor, scaling)",
        ),
        (
            {"type": ["backdoor", "scaling"], "params": {"scaling": {"gama": 10.0}}},
            "attack.params.scaling.gama: unknown key (value 10.0); remove it or fix the spelling",
        ),
        (
            {"type": ["backdoor", "scaling"], "params": {"backdoor": {"ratio": 2.0}}},
            "attack.params.backdoor.ratio: got 2.0; ",
        ),
    ],
)
def test_bad_lists_fail_in_one_line_naming_the_field(attack: dict[str, Any], expected: str) -> None:
    assert _refusal(attack).startswith(expected)


def test_a_single_attack_is_unchanged_and_a_one_element_list_is_the_same() -> None:
    single = validate_document({**MINIMAL, "attack": {"type": "scaling", "malicious": 1}})
    listed = validate_document({**MINIMAL, "attack": {"type": ["scaling"], "malicious": 1}})
    assert single.attack.stages() == (("scaling", {}, "attack.params"),)
    assert listed.attack.stages() == (("scaling", {}, "attack.params.scaling"),)
    assert type(attack_plan(single.attack).update) is type(attack_plan(listed.attack).update)
    assert not validate_document(MINIMAL).attack.enabled
