"""The attack catalogue: pure numpy attacks, no Flower, no Ray.

>>> from attacks import get_attack
>>> attack = get_attack("sign_flip", scale=2.0)
>>> attack.kind.value, attack.threat_model.value
('update', 'none')

Importing the modules below registers every attack in :data:`ATTACKS`. A scenario's attack
section becomes an :class:`AttackPlan` (:func:`attack_plan`): the ClientApp runs its ``data``
and ``update`` attacks, the server's adversary its ``collusion`` and ``transit`` ones.
"""

from __future__ import annotations

from attacks import (
    a3fl,
    alter_min,
    backdoor_triggers,
    collusion,
    data_poisoning,
    durable,
    edge_case,
    fang,
    iba,
    image_trigger,
    malformed,
    mimic,
    min_max,
    omniscient,
    threedfed,
    transit,
    update_poisoning,
)
from attacks.base import (
    Attack,
    DataAttack,
    Kind,
    NoAttack,
    PoisonedData,
    SuccessSet,
    ThreatModel,
    TransitAttack,
    UpdateAttack,
)
from attacks.forging import CollusionAttack, Forgery, RoundView
from attacks.plan import AttackPlan, attack_plan
from attacks.registry import ATTACKS, get_attack, register_attack
from attacks.training import LocalTraining, Memory, StatefulTrainingAttack, Trainer, TrainingAttack

register_attack("none")(NoAttack)

__all__ = [
    "ATTACKS",
    "Attack",
    "AttackPlan",
    "CollusionAttack",
    "DataAttack",
    "Forgery",
    "Kind",
    "LocalTraining",
    "NoAttack",
    "PoisonedData",
    "RoundView",
    "SuccessSet",
    "ThreatModel",
    "Memory",
    "StatefulTrainingAttack",
    "Trainer",
    "TrainingAttack",
    "TransitAttack",
    "UpdateAttack",
    "a3fl",
    "alter_min",
    "attack_plan",
    "backdoor_triggers",
    "collusion",
    "data_poisoning",
    "durable",
    "edge_case",
    "fang",
    "iba",
    "image_trigger",
    "get_attack",
    "malformed",
    "mimic",
    "min_max",
    "omniscient",
    "threedfed",
    "register_attack",
    "transit",
    "update_poisoning",
]
