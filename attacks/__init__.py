"""The attack catalogue: pure numpy attacks, no Flower, no Ray.

>>> from attacks import get_attack
>>> attack = get_attack("sign_flip", scale=2.0)
>>> attack.kind.value, attack.threat_model.value
('update', 'none')

Importing the modules below registers every attack in :data:`ATTACKS`; the lead wires them into
the ClientApp (kinds ``data`` and ``update``) and the server's adversary (``collusion`` and
``transit``).
"""

from __future__ import annotations

from attacks import collusion, data_poisoning, omniscient, transit, update_poisoning
from attacks.base import (
    Attack,
    CollusionAttack,
    DataAttack,
    Kind,
    NoAttack,
    PoisonedData,
    ThreatModel,
    TransitAttack,
    UpdateAttack,
)
from attacks.registry import ATTACKS, get_attack, register_attack

register_attack("none")(NoAttack)

__all__ = [
    "ATTACKS",
    "Attack",
    "CollusionAttack",
    "DataAttack",
    "Kind",
    "NoAttack",
    "PoisonedData",
    "ThreatModel",
    "TransitAttack",
    "UpdateAttack",
    "collusion",
    "data_poisoning",
    "get_attack",
    "omniscient",
    "register_attack",
    "transit",
    "update_poisoning",
]
