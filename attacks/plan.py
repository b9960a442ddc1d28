"""The attack plan of a scenario: which attack each party runs, built and checked in one place.

Each attack declares its kind (``data``, ``update``, ``collusion``, ``transit``); the plan puts
it in the slot of that kind, so the client reads ``plan.data`` and ``plan.update``, the server's
adversary ``plan.collusion`` and ``plan.transit``, and nothing else dispatches on attack classes.
A list of attacks is one malicious client applying them in order; the only combination with a
published meaning is a data attack followed by an update attack (model replacement: a backdoor
whose update is boosted, Bagdasaryan et al. 2020).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from attacks.a3fl import A3FL
from attacks.base import DataAttack, Images, Kind, Labels, SuccessSet, TransitAttack, UpdateAttack
from attacks.forging import CollusionAttack
from attacks.iba import IBA
from attacks.registry import ATTACKS, get_attack
from attacks.training import LocalTraining, TrainingAttack
from common.errors import ConfigError
from common.schema import AttackSpec

COMBINABLE = (Kind.DATA, Kind.UPDATE)
"""The kinds a list of attacks may hold, in the order a malicious client applies them."""


@dataclass(frozen=True)
class AttackPlan:
    """One scenario's attacks by kind; a slot is None when the scenario has no such attack."""

    data: DataAttack[Any] | None = None
    update: UpdateAttack[Any] | None = None
    collusion: CollusionAttack[Any] | None = None
    transit: TransitAttack[Any] | None = None
    training: TrainingAttack[Any] | None = None
    adaptive: A3FL | IBA | None = None

    @property
    def local_training(self) -> LocalTraining | None:
        """The attack that trains the malicious client's model itself, None when the client
        trains as an honest one does (on the data attack's shard, if any): the training attack,
        else a data attack that carries the :class:`~attacks.training.LocalTraining` hook."""
        if self.training is not None:
            return self.training
        return self.data if isinstance(self.data, LocalTraining) else None

    def success_set(self, x_test: Images, y_test: Labels) -> SuccessSet | None:
        """The data (or training) attack's success set (also when an update attack boosts it),
        else None."""
        measured = self.data if self.data is not None else self.training
        return measured.success_set(x_test, y_test) if measured is not None else None


def attack_plan(spec: AttackSpec) -> AttackPlan:
    """Build every attack of ``spec`` and put each in the slot of its declared kind.

    Raises :class:`~common.errors.ConfigError` in one line naming the field: an unknown name or
    a bad parameter (``attack.params[.<name>].<field>``), or a list whose kinds cannot be
    combined (``attack.type``).
    """
    for name in spec.names:
        ATTACKS.resolve(name, "attack.type")
    attacks = [get_attack(name, where=where, **params) for name, params, where in spec.stages()]
    if len(attacks) > 1:
        kinds = tuple(a.kind for a in attacks)
        if kinds != COMBINABLE:
            described = ", ".join(
                f"{n} is {k.value}" for n, k in zip(spec.names, kinds, strict=True)
            )
            raise ConfigError(
                f"attack.type: got {list(spec.names)!r}; a list combines one data attack followed "
                f"by one update attack ({described})"
            )
    # The one place that reads the kinds the attacks declare: each goes to the slot of its kind.
    slots: dict[str, Any] = {a.kind.value: a for a in attacks if a.kind is not Kind.NONE}
    return AttackPlan(**slots)
