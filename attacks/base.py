"""Interfaces of the attack catalogue: threat models, attack kinds and one ABC per kind.

An attack is built from its validated, frozen parameter model and is otherwise stateless, so
the same attack object may serve every client and every round. Randomness comes only from the
``np.random.Generator`` the caller passes, and no method writes to its inputs.

Kinds and who calls them (the kind is a declaration each attack class makes; only
:func:`attacks.plan.attack_plan` reads it, to put each attack in its slot of the plan):

* ``data`` (client side, threat model ``none``): :meth:`DataAttack.poison` rewrites a client's
  shard; :meth:`DataAttack.success_set` gives the test images that measure the attack.
* ``update`` (client side, threat model ``none``): :meth:`UpdateAttack.poison_update` rewrites
  the client's own flat update delta and the example count it reports.
* ``collusion`` (server side): :meth:`attacks.forging.CollusionAttack.forge` replaces the
  malicious updates of a round from a :class:`~attacks.forging.RoundView` cut to its threat model.
* ``transit`` (on the wire, no keys): :meth:`TransitAttack.tamper` alters a weight message.
* ``training`` (client side, threat model ``none``): :meth:`attacks.training.TrainingAttack.train`
  runs the malicious client's own local training through a :class:`~attacks.training.Trainer`
  (the hook :class:`attacks.training.LocalTraining`, which a data attack may carry too).
* ``adaptive`` (server side, threat model ``none``): a backdoor whose trigger is state the
  colluders refine every round (:class:`attacks.a3fl.A3FL`); the server's adversary holds the
  state, trains the colluders' updates with it and hands its success set to the evaluator.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, Generic, Literal, TypeVar

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel

from common.registry import NoParams, Params

Images = NDArray[np.float32]
"""``(N, H, W, C)`` images in [0, 1]."""
Labels = NDArray[np.int64]
"""``(N,)`` integer class labels."""
Vector = NDArray[np.floating[Any]]
"""``(d,)`` flat update delta: client weights minus global weights."""
Updates = NDArray[np.floating[Any]]
"""``(n, d)`` stacked update deltas."""
Counts = NDArray[np.int64]
"""``(n,)`` self-reported example counts."""
Aggregator = Callable[[Updates, Counts], Vector]
"""The deployed rule as an omniscient attacker sees it: ``(updates, num_examples) -> (d,)``."""


class ThreatModel(StrEnum):
    """What the attacker knows when it acts (the ``threat_model`` tag of each registry entry)."""

    NONE = "none"
    """Only its own data or update (for colluders: the updates they trained themselves)."""
    HONEST_UPDATES = "honest_updates"
    """The honest updates of the round (colluding clients that see the others' updates)."""
    OMNISCIENT = "omniscient"
    """The honest updates and the deployed aggregation rule."""


class Kind(StrEnum):
    """Where an attack acts (the ``kind`` tag of each registry entry)."""

    NONE = "none"
    DATA = "data"
    UPDATE = "update"
    COLLUSION = "collusion"
    TRANSIT = "transit"
    TRAINING = "training"
    ADAPTIVE = "adaptive"


P = TypeVar("P", bound=BaseModel)


class Attack(ABC, Generic[P]):
    """Base of every attack: its kind, its threat model and its validated parameters.

    ``threat_model`` is the class's registered knowledge; an attack whose knowledge is one of
    its parameters (ALIE's ``knowledge``) sets it per instance in ``__init__``.
    """

    kind: ClassVar[Kind]
    threat_model: ThreatModel
    input_shapes: ClassVar[tuple[tuple[int, ...], ...] | None] = None
    """The image shapes the attack can take (None: any); the scenario checks refuse others."""

    def __init__(self, params: P) -> None:
        self.params = params


class NoAttack(Attack[NoParams]):
    """No attack: the scenario runs with honest clients only (``type = "none"``).

    Parameters
    ----------
    None

    Returns
    -------
    None
        It has no method: its plan is empty, so no party attacks.

    References
    ----------
    None.

    Examples
    --------
    >>> from attacks import attack_plan
    >>> from common.schema import AttackSpec
    >>> attack_plan(AttackSpec(type="none"))
    AttackPlan(data=None, update=None, collusion=None, transit=None, training=None,
               adaptive=None)
    """

    kind = Kind.NONE
    threat_model = ThreatModel.NONE


@dataclass(frozen=True)
class PoisonedData:
    """A poisoned shard: new ``x`` and ``y`` (copies) and the mask of the rewritten samples."""

    x: Images
    y: Labels
    poisoned: NDArray[np.bool_]
    """``(N,)``: True for the samples the attack rewrote (relabelled and/or triggered)."""


@dataclass(frozen=True)
class SuccessSet:
    """The test images that measure a data attack, and their clean counterparts.

    The attack success rate is the fraction of ``x`` classified as ``target``; its baseline is
    the same fraction on ``baseline_x``, the same images without the attack's change to the
    input (a backdoor's untriggered images). None when the attack changes no input (label
    flipping), where the raw rate is all there is.
    """

    x: Images
    target: Labels
    baseline_x: Images | None = None


class DataAttack(Attack[P]):
    """Client-side data poisoning (threat model ``none``)."""

    kind = Kind.DATA
    threat_model = ThreatModel.NONE

    @abstractmethod
    def poison(
        self,
        x: Images,
        y: Labels,
        *,
        num_classes: int,
        rng: np.random.Generator,
        colluder: int = 0,
    ) -> PoisonedData:
        """The poisoned copy of the shard ``(x, y)``.

        ``colluder`` is the client's rank among the run's malicious clients (sorted partition
        ids); only an attack that splits its work between colluders (DBA) reads it.
        """

    @abstractmethod
    def success_set(self, x_test: Images, y_test: Labels) -> SuccessSet | None:
        """The images whose classification as the target is the attack's success, or None."""


class UpdateAttack(Attack[P]):
    """Client-side model poisoning without knowledge of the other clients."""

    kind = Kind.UPDATE
    threat_model = ThreatModel.NONE

    @abstractmethod
    def poison_update(
        self, delta: Vector, num_examples: int, *, rng: np.random.Generator
    ) -> tuple[Vector, int]:
        """The poisoned delta (a new array of the same shape) and the example count to report."""


class TransitParams(Params):
    """Parameters shared by every wire attack: the link direction it sits on."""

    direction: Literal["uplink", "downlink"] = "uplink"
    """``uplink``: client -> server replies; ``downlink``: server -> client broadcasts."""


T = TypeVar("T", bound=TransitParams)


class TransitAttack(Attack[T]):
    """A man-in-the-middle on the client <-> server link; it holds no signing keys."""

    kind = Kind.TRANSIT
    threat_model = ThreatModel.NONE

    @abstractmethod
    def tamper(
        self,
        arrays: list[NDArray[np.float32]],
        *,
        rng: np.random.Generator,
        recorded: list[NDArray[np.float32]] | None,
    ) -> list[NDArray[np.float32]]:
        """The message as delivered (new arrays); ``recorded`` is an earlier captured message."""
