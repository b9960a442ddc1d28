"""Colluding attacks: what a round shows them (:class:`RoundView`), what they return
(:class:`Forgery`) and their one function shape (:class:`CollusionAttack`).

The threat model is structural: :meth:`CollusionAttack.view` is the one place that reads an
attack's declared knowledge and cuts the round down to it, and :meth:`CollusionAttack.forge`
refuses a view that shows more (or less) than that knowledge.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from attacks.base import Aggregator, Attack, Counts, Kind, P, ThreatModel, Updates


@dataclass(frozen=True)
class RoundView:
    """What one round shows the colluders, cut to their threat model.

    ``own`` is always there: the ``(m, d)`` deltas the colluders trained honestly on their own
    data this round (they know their own work). ``num_clients`` is ``n``, the updates in the
    round with the colluders' included (the public sample size). ``honest`` and
    ``honest_num_examples`` (``(h, d)``, ``(h,)``) are shown to ``honest_updates`` and
    ``omniscient`` attacks, ``aggregator`` (the deployed rule) to ``omniscient`` ones only.
    """

    own: Updates
    num_clients: int
    rng: np.random.Generator
    honest: Updates | None = None
    honest_num_examples: Counts | None = None
    aggregator: Aggregator | None = None

    @property
    def num_malicious(self) -> int:
        """``m``: how many forged updates the round needs."""
        return int(self.own.shape[0])

    def known_honest(self) -> tuple[Updates, Counts]:
        """The honest updates and counts (a view cut for ``honest_updates`` or more has them)."""
        if self.honest is None or self.honest_num_examples is None:
            raise ValueError("this view does not show the honest updates (threat model 'none')")
        return self.honest, self.honest_num_examples

    def known_aggregator(self) -> Aggregator:
        """The deployed rule; only a view cut for an ``omniscient`` attack has it."""
        if self.aggregator is None:
            raise ValueError("this view does not show the aggregator (threat model not omniscient)")
        return self.aggregator


@dataclass(frozen=True)
class Forgery:
    """The forged updates of a round and what the attack learned while forging them.

    ``diagnostics`` go into the round's metrics (key ``attack``): e.g. Fang's ``lambda`` and
    ``selected``. ``warning`` is set when the attack degenerated this round (its forgery does
    nothing useful to the attacker); the server prints the first one of a run.
    """

    updates: NDArray[np.floating[Any]]
    """``(m, d)``, in the dtype of the updates the view showed."""
    diagnostics: Mapping[str, float] = field(default_factory=dict)
    warning: str | None = None


class CollusionAttack(Attack[P]):
    """Server-side forging of the malicious updates of a round (kind ``collusion``).

    Subclasses declare ``threat_model`` and implement :meth:`_forge`; callers build the view
    with :meth:`view` and call :meth:`forge`.
    """

    kind = Kind.COLLUSION
    threat_model = ThreatModel.HONEST_UPDATES

    def view(
        self,
        *,
        own: Updates,
        num_clients: int,
        rng: np.random.Generator,
        honest: Updates,
        honest_num_examples: Counts,
        aggregator: Aggregator | None,
    ) -> RoundView:
        """Everything the round holds, cut down to what this attack's threat model grants."""
        knows_honest = self.threat_model is not ThreatModel.NONE
        return RoundView(
            own=own,
            num_clients=num_clients,
            rng=rng,
            honest=honest if knows_honest else None,
            honest_num_examples=honest_num_examples if knows_honest else None,
            aggregator=aggregator if self.threat_model is ThreatModel.OMNISCIENT else None,
        )

    def forge(self, view: RoundView) -> Forgery:
        """The ``(m, d)`` forged updates (in the view's dtype) and the round's diagnostics.

        Raises ``ValueError`` for malformed shapes and for a view that shows more or less than
        the threat model grants (e.g. an aggregator handed to a non-omniscient attack).
        """
        self._check(view)
        forgery = self._forge(view)
        dtype = (view.honest if view.honest is not None else view.own).dtype
        return Forgery(
            np.asarray(forgery.updates).astype(dtype, copy=False),
            dict(forgery.diagnostics),
            forgery.warning,
        )

    def _check(self, view: RoundView) -> None:
        if view.own.ndim != 2 or view.own.shape[0] < 1:
            raise ValueError(f"own updates must be (m >= 1, d); got shape {view.own.shape}")
        knows_honest = self.threat_model is not ThreatModel.NONE
        if knows_honest != (view.honest is not None):
            raise ValueError(
                f"threat model {self.threat_model.value!r}: the honest updates must "
                f"{'' if knows_honest else 'not '}be passed"
            )
        if view.honest is not None and (view.honest.ndim != 2 or view.honest.shape[0] < 1):
            raise ValueError(f"honest updates must be (h >= 1, d); got shape {view.honest.shape}")
        omniscient = self.threat_model is ThreatModel.OMNISCIENT
        if omniscient != (view.aggregator is not None):
            raise ValueError(
                f"threat model {self.threat_model.value!r}: the aggregator must "
                f"{'' if omniscient else 'not '}be passed"
            )

    @abstractmethod
    def _forge(self, view: RoundView) -> Forgery:
        """The attack's own maths, after :meth:`forge` checked shapes and the threat model."""
