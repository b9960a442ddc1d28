"""What a rule that inspects the model is given besides the updates: the model's layer layout
and, for DeepSight, a probe of the local models' outputs.

A rule sees stacked flat updates ``(n, d)``. DeepSight and LASA need to know which slice of
``d`` is which tensor of the model (LASA filters tensor by tensor; DeepSight reads the output
layer), and DeepSight needs the local models' predictions on random inputs, which only the
server, holding the model, can compute. Such a rule subclasses :class:`InspectingRule`; the
chain then requires an :class:`Inspection` (built once per round by the server from the global
model: ``server/inspection.py``) and passes it to ``update_inspected``. Pure numpy: the probe
is a callable, its model evaluation lives on the server's side.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from common.errors import AggregationError
from strategies.base import Aggregate, Counts, EmptyState, MemorylessRule, Updates

DDifProbe = Callable[[Updates, int, int, float], NDArray[np.float64]]
"""``probe(updates, num_seeds, num_samples, epsilon)`` -> ``(num_seeds, n, num_classes)``:
for each noise seed s and row i, DeepSight's division differences
:math:`\\frac{1}{N}\\sum_x p_{G+x_i}(x)_k / (p_G(x)_k + \\epsilon)` over N uniform-noise
inputs x drawn with seed s."""
IndicatorProbe = Callable[[Updates], NDArray[np.float64]]
"""``probe(updates)`` -> ``(n, num_classes)``: for each row i, the accuracy of the model
``G + x_i`` on the indicator inputs assigned label k (BackdoorIndicator; the server's probe is
``server/indicator.py``)."""
FeatureProbe = Callable[[Updates, int | None], NDArray[np.float64]]
"""``probe(updates, aux_class)`` -> ``(n, m, p)``: for each row i, the penultimate-layer
representations (the output layer's inputs, p of them) of the local model ``G + x_i`` on the
m examples of the server's auxiliary set (of class ``aux_class``; every class if ``None``)."""


@dataclass(frozen=True)
class Layout:
    """The model's tensors in the order the flat update concatenates them (Keras
    ``get_weights()`` order: each layer's kernel, then its bias)."""

    shapes: tuple[tuple[int, ...], ...]
    names: tuple[str, ...] = ()
    """One name per tensor; ``tensor<i>`` when not given."""

    def __post_init__(self) -> None:
        if not self.names:
            object.__setattr__(self, "names", tuple(f"tensor{i}" for i in range(len(self.shapes))))
        if len(self.names) != len(self.shapes):
            raise AggregationError(
                f"layout: got {len(self.names)} names for {len(self.shapes)} tensors"
            )

    @classmethod
    def of(cls, arrays: Sequence[NDArray[Any]], names: Sequence[str] = ()) -> Layout:
        """The layout of a model's weight arrays."""
        return cls(tuple(tuple(int(s) for s in a.shape) for a in arrays), tuple(names))

    @property
    def num_params(self) -> int:
        return sum(math.prod(shape) for shape in self.shapes)

    def slices(self) -> list[slice]:
        """The slice of the flat vector each tensor occupies."""
        sizes = [math.prod(shape) for shape in self.shapes]
        ends = np.cumsum(sizes, dtype=np.int64)
        return [slice(int(end) - size, int(end)) for size, end in zip(sizes, ends, strict=True)]

    def output_layer(self) -> tuple[slice, slice, int]:
        """The slices of the output layer's kernel ``(inputs, classes)`` and bias ``(classes,)``
        (the last two tensors, a Dense layer), and the number of classes."""
        if (
            len(self.shapes) < 2
            or len(self.shapes[-2]) != 2
            or self.shapes[-1] != (self.shapes[-2][1],)
        ):
            raise AggregationError(
                f"layout: the last two tensors must be a Dense kernel (inputs, classes) and its "
                f"bias (classes,), got shapes {self.shapes[-2:]}"
            )
        slices = self.slices()
        return slices[-2], slices[-1], self.shapes[-1][0]


@dataclass(frozen=True)
class Inspection:
    """The round's view of the model: its layout, and the probes the rule needs (``None``
    otherwise: the server builds no model for them)."""

    layout: Layout
    ddifs: DDifProbe | None = None
    indicator: IndicatorProbe | None = None
    """The planted indicator task's per-label accuracies (BackdoorIndicator only)."""
    features: FeatureProbe | None = None


class InspectingRule(MemorylessRule):
    """A rule that reads the model's layer layout (and, with ``needs_ddifs``, the local models'
    outputs): the chain passes the server's :class:`Inspection` to ``update_inspected``."""

    needs_ddifs: ClassVar[bool] = False
    """Whether the rule needs :attr:`Inspection.ddifs` (DeepSight), not only the layout."""
    needs_features: ClassVar[bool] = False
    """Whether the rule needs :attr:`Inspection.features` (FLARE), computed on the server's
    auxiliary set (its root set: ``defense.root_size``)."""

    def update(
        self,
        updates: Updates,
        num_examples: Counts,
        state: EmptyState,
        *,
        rng: np.random.Generator,
        reference: Aggregate | None,
    ) -> tuple[Aggregate, EmptyState]:
        raise AggregationError(f"{type(self).__name__}: needs inspection=, got none")

    @abstractmethod
    def update_inspected(
        self, updates: Updates, num_examples: Counts, *, inspection: Inspection
    ) -> Aggregate:
        """Aggregate one round of updates laid out as ``inspection.layout`` says."""


def check_inspection(
    name: str,
    inspection: Inspection | None,
    num_params: int,
    needs_ddifs: bool,
    needs_features: bool = False,
) -> Inspection:
    """``inspection``, checked to describe ``num_params`` parameters (and to carry the probes
    the rule needs)."""
    if inspection is None:
        raise AggregationError(f"{name}: needs inspection= (the model's layout), got none")
    if inspection.layout.num_params != num_params:
        raise AggregationError(
            f"{name}: the layout has {inspection.layout.num_params} parameters, "
            f"the updates {num_params}"
        )
    if needs_ddifs and inspection.ddifs is None:
        raise AggregationError(f"{name}: needs inspection.ddifs (the output probe), got none")
    if needs_features and inspection.features is None:
        raise AggregationError(f"{name}: needs inspection.features (the feature probe), got none")
    return inspection
