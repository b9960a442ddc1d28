"""Interfaces of the attack catalogue: threat models, attack kinds and one ABC per kind.

An attack is built from its validated, frozen parameter model and is otherwise stateless, so
the same attack object may serve every client and every round. Randomness comes only from the
``np.random.Generator`` the caller passes, and no method writes to its inputs.

Kinds and who calls them:

* ``data`` (client side, threat model ``none``): :meth:`DataAttack.poison` rewrites a client's
  shard; :meth:`DataAttack.success_set` gives the triggered test copy for the attack success rate.
* ``update`` (client side, threat model ``none``): :meth:`UpdateAttack.poison_update` rewrites
  the client's own flat update delta and the example count it reports.
* ``collusion`` (server side): :meth:`CollusionAttack.forge` replaces the malicious updates of a
  round, knowing the honest ones (``honest_updates``) and, for ``omniscient`` attacks only, the
  deployed aggregation rule.
* ``transit`` (on the wire, no keys): :meth:`TransitAttack.tamper` alters a weight message.
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
    """Only its own data or update."""
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


P = TypeVar("P", bound=BaseModel)


class Attack(ABC, Generic[P]):
    """Base of every attack: its kind, its threat model and its validated parameters."""

    kind: ClassVar[Kind]
    threat_model: ClassVar[ThreatModel]

    def __init__(self, params: P) -> None:
        self.params = params


class NoAttack(Attack[NoParams]):
    """No attack: the scenario runs with honest clients only (``type = "none"``)."""

    kind = Kind.NONE
    threat_model = ThreatModel.NONE


@dataclass(frozen=True)
class PoisonedData:
    """A poisoned shard: new ``x`` and ``y`` (copies) and the mask of the rewritten samples."""

    x: Images
    y: Labels
    poisoned: NDArray[np.bool_]
    """``(N,)``: True for the samples the attack rewrote (relabelled and/or triggered)."""


class DataAttack(Attack[P]):
    """Client-side data poisoning (threat model ``none``)."""

    kind = Kind.DATA
    threat_model = ThreatModel.NONE

    @abstractmethod
    def poison(
        self, x: Images, y: Labels, *, num_classes: int, rng: np.random.Generator
    ) -> PoisonedData:
        """The poisoned copy of the shard ``(x, y)``."""

    @abstractmethod
    def success_set(self, x_test: Images, y_test: Labels) -> tuple[Images, Labels] | None:
        """``(x, y_target)`` whose accuracy is the attack success rate, or None if undefined."""


class UpdateAttack(Attack[P]):
    """Client-side model poisoning without knowledge of the other clients."""

    kind = Kind.UPDATE
    threat_model = ThreatModel.NONE

    @abstractmethod
    def poison_update(
        self, delta: Vector, num_examples: int, *, rng: np.random.Generator
    ) -> tuple[Vector, int]:
        """The poisoned delta (a new array of the same shape) and the example count to report."""


class CollusionAttack(Attack[P]):
    """Server-side forging of the malicious updates of a round from the honest ones."""

    kind = Kind.COLLUSION
    threat_model = ThreatModel.HONEST_UPDATES

    def forge(
        self,
        honest: Updates,
        *,
        num_malicious: int,
        rng: np.random.Generator,
        honest_num_examples: Counts,
        aggregator: Aggregator | None,
    ) -> NDArray[np.floating[Any]]:
        """``(num_malicious, d)`` forged updates, in ``honest``'s dtype.

        The threat model is structural: only an omniscient attack may receive the aggregator,
        and an omniscient attack cannot run without it.
        """
        if honest.ndim != 2 or honest.shape[0] < 1:
            raise ValueError(f"honest updates must be (h >= 1, d); got shape {honest.shape}")
        if num_malicious < 1:
            raise ValueError(f"num_malicious must be >= 1; got {num_malicious}")
        omniscient = self.threat_model is ThreatModel.OMNISCIENT
        if omniscient != (aggregator is not None):
            raise ValueError(
                f"threat model {self.threat_model.value!r}: the aggregator must "
                f"{'' if omniscient else 'not '}be passed"
            )
        forged = self._forge(
            honest,
            num_malicious=num_malicious,
            rng=rng,
            honest_num_examples=honest_num_examples,
            aggregator=aggregator,
        )
        return forged.astype(honest.dtype, copy=False)

    @abstractmethod
    def _forge(
        self,
        honest: Updates,
        *,
        num_malicious: int,
        rng: np.random.Generator,
        honest_num_examples: Counts,
        aggregator: Aggregator | None,
    ) -> NDArray[np.floating[Any]]:
        """The attack's own maths, after :meth:`forge` checked shapes and the threat model."""


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
