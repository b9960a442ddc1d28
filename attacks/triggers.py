"""What every trigger backdoor shares: which samples are poisoned, the relabelling, the success set.

A trigger backdoor stamps a pattern on ``floor(ratio * N + 0.5)`` of the shard's samples (drawn
uniformly without replacement with the caller's generator) and relabels them ``target``; the
subclasses differ only in the pattern (:meth:`TriggerBackdoor.apply_trigger`). A distributed
backdoor gives each colluder a piece of the pattern (:meth:`TriggerBackdoor.local_trigger`)
and tests the whole.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import TypeVar

import numpy as np
from pydantic import Field

from attacks._maths import choose_indices, exact_count
from attacks.base import DataAttack, Images, Labels, PoisonedData, SuccessSet
from common.errors import ConfigError
from common.registry import ClassLabel, Params


class TriggerParams(Params):
    """The target class and the poisoned fraction every trigger backdoor takes."""

    target: ClassLabel = 0
    ratio: float = Field(0.1, gt=0.0, le=1.0)


TP = TypeVar("TP", bound=TriggerParams)


def check_class(field: str, value: int, num_classes: int) -> None:
    """A class label of the attack's params must exist in the dataset (checked at poisoning)."""
    if value >= num_classes:
        raise ConfigError(
            f"attack.params.{field}: got {value}; must be < num_classes ({num_classes})"
        )


class TriggerBackdoor(DataAttack[TP]):
    """Base of the trigger backdoors: poison with the local trigger, measure with the global one."""

    @abstractmethod
    def apply_trigger(self, x: Images) -> Images:
        """A copy of ``x`` ``(N, H, W, C)`` with the (global) trigger on every image."""

    def local_trigger(self, x: Images, colluder: int) -> Images:
        """The trigger colluder number ``colluder`` trains with: the global one unless the
        attack splits it (DBA)."""
        del colluder  # one pattern for every colluder
        return self.apply_trigger(x)

    def poison(
        self,
        x: Images,
        y: Labels,
        *,
        num_classes: int,
        rng: np.random.Generator,
        colluder: int = 0,
    ) -> PoisonedData:
        """Trigger and relabel ``floor(ratio * N + 0.5)`` samples chosen with ``rng``."""
        check_class("target", self.params.target, num_classes)
        n = y.shape[0]
        chosen = choose_indices(rng, np.arange(n), exact_count(self.params.ratio, n))
        new_x = np.array(x, dtype=np.float32, copy=True)
        new_x[chosen] = self.local_trigger(x[chosen], colluder)
        new_y = np.array(y, dtype=np.int64, copy=True)
        new_y[chosen] = self.params.target
        mask = np.zeros(n, dtype=bool)
        mask[chosen] = True
        return PoisonedData(new_x, new_y, mask)

    def success_set(self, x_test: Images, y_test: Labels) -> SuccessSet | None:
        """The triggered test samples NOT already of class ``target`` (a target-class sample
        classified as target proves nothing), all labelled ``target``; the baseline is the same
        samples without the trigger."""
        clean = np.array(x_test[y_test != self.params.target], dtype=np.float32, copy=True)
        target = np.full(clean.shape[0], self.params.target, dtype=np.int64)
        return SuccessSet(self.apply_trigger(clean), target, baseline_x=clean)
