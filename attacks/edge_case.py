"""Edge-case backdoor (Wang et al. 2020) on offline data, and the PGD ball its attacker stays in.

Wang et al. poison with inputs from the tail of the input distribution (ARDIS sevens labelled
"1" for MNIST, Southwest airplanes labelled "truck" for CIFAR-10): benign clients hold almost
none of them, so nothing in their updates undoes the backdoor. Those datasets need a download;
offline, the tail is taken from the data in hand: the ``source``-class samples farthest (L2, in
pixel space) from their class mean.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from pydantic import Field, model_validator

from attacks._maths import exact_count
from attacks.base import DataAttack, Images, Labels, PoisonedData, SuccessSet, UpdateAttack, Vector
from attacks.registry import register_attack
from attacks.triggers import check_class
from common.registry import ClassLabel, Params


def tail_indices(x: Images, y: Labels, source: int, fraction: float) -> NDArray[np.intp]:
    """Indices of the ``floor(fraction * n + 0.5)`` class-``source`` samples farthest from the
    class mean (the ``n`` samples of ``source`` in ``x``), sorted; ties keep the lower index."""
    members = np.flatnonzero(y == source)
    if members.size == 0:
        return members
    flat = x[members].reshape(members.size, -1).astype(np.float64)
    distance = np.linalg.norm(flat - flat.mean(axis=0), axis=1)
    order = np.argsort(-distance, kind="stable")
    return np.sort(members[order[: exact_count(fraction, members.size)]])


class EdgeCaseParams(Params):
    """The tail class, the label it is given, and how much of the class counts as the tail."""

    source: ClassLabel = 7
    target: ClassLabel = 1
    tail_fraction: float = Field(0.25, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _distinct(self) -> EdgeCaseParams:
        if self.source == self.target:
            raise ValueError(f"source and target must differ (both {self.source})")
        return self


@register_attack("edge_case", EdgeCaseParams)
class EdgeCase(DataAttack[EdgeCaseParams]):
    r"""Edge-case backdoor (Wang et al., NeurIPS 2020), with the tail taken from the data in hand.

    .. math::

        T = \operatorname{top}_{\lfloor q\,n_s + 0.5 \rfloor}\
        \lVert x_i - \bar x_s \rVert_2\ \ (y_i = s),\qquad y_i \leftarrow t\ \ (i \in T)

    The attacker relabels the tail ``T`` of class ``s`` in its shard (the fraction ``q`` of its
    ``s`` samples farthest from their mean) as ``t``; the success set is the tail of class ``s``
    in the test split, by the same rule, labelled ``t``. No input is changed, so there is no
    baseline. Deviation: the paper's attacker brings an external tail dataset (ARDIS), which
    needs a download; its PGD variant is ``["edge_case", "norm_projection"]``.

    Parameters
    ----------
    source : int, default 7
        The class whose tail is relabelled (the paper's MNIST sevens).
    target : int, default 1
        The label the tail gets, != source.
    tail_fraction : float, default 0.25
        Fraction of the source class that is the tail, in (0, 1].

    Returns
    -------
    PoisonedData
        The relabelled shard; the success set is the test split's source-class tail.

    References
    ----------
    Wang, Sreenivasan, Rajput, Vishwakarma, Agarwal, Sohn, Lee & Papailiopoulos, "Attack of the
    Tails: Yes, You Really Can Backdoor Federated Learning", NeurIPS 2020.

    Examples
    --------
    >>> import numpy as np
    >>> from attacks import get_attack
    >>> x = np.array([0.0, 0.1, 0.9, 0.2], np.float32).reshape(4, 1, 1, 1)
    >>> y = np.array([7, 7, 7, 3])
    >>> out = get_attack("edge_case", tail_fraction=0.3).poison(
    ...     x, y, num_classes=10, rng=np.random.default_rng(0))
    >>> out.y.tolist(), out.poisoned.tolist()
    ([7, 7, 1, 3], [False, False, True, False])
    """

    def poison(
        self,
        x: Images,
        y: Labels,
        *,
        num_classes: int,
        rng: np.random.Generator,
        colluder: int = 0,
    ) -> PoisonedData:
        """Relabel the source-class tail of the shard (deterministic: no draw from ``rng``)."""
        del rng, colluder  # the tail is a property of the data
        check_class("source", self.params.source, num_classes)
        check_class("target", self.params.target, num_classes)
        tail = tail_indices(x, y, self.params.source, self.params.tail_fraction)
        new_y = np.array(y, dtype=np.int64, copy=True)
        new_y[tail] = self.params.target
        mask = np.zeros(y.shape[0], dtype=bool)
        mask[tail] = True
        return PoisonedData(np.array(x, copy=True), new_y, mask)

    def success_set(self, x_test: Images, y_test: Labels) -> SuccessSet | None:
        """The test split's source-class tail, labelled ``target``."""
        tail = tail_indices(x_test, y_test, self.params.source, self.params.tail_fraction)
        x = np.array(x_test[tail], dtype=np.float32, copy=True)
        return SuccessSet(x, np.full(x.shape[0], self.params.target, dtype=np.int64))


class NormProjectionParams(Params):
    """``radius`` of the L2 ball around the global model the update is projected into."""

    radius: float = Field(2.0, gt=0.0)


@register_attack("norm_projection", NormProjectionParams)
class NormProjection(UpdateAttack[NormProjectionParams]):
    r"""Projection of the update onto an L2 ball (the PGD attacker of Wang et al. 2020).

    .. math:: \tilde\delta = \delta \cdot \min\!\left(1, \frac{r}{\lVert\delta\rVert_2}\right)

    Keeps a poisoned update under a norm-bounding defense's radius. Deviation: Wang et al. and
    BackFed (``poisoned_projection_eps``) project the model every few local steps; this projects
    the final update once, which meets the same bound but lets the trajectory leave the ball.

    Parameters
    ----------
    radius : float, default 2.0
        The ball's radius ``r``, > 0.

    Returns
    -------
    tuple of (ndarray, int)
        The projected delta and the true example count.

    References
    ----------
    Wang et al., "Attack of the Tails", NeurIPS 2020 (PGD with model replacement); Sun et al.,
    "Can You Really Backdoor Federated Learning?", 2019 (the norm bound it evades).

    Examples
    --------
    >>> import numpy as np
    >>> from attacks import get_attack
    >>> get_attack("norm_projection", radius=1.0).poison_update(
    ...     np.array([3.0, 4.0]), 5, rng=np.random.default_rng(0))
    (array([0.6, 0.8]), 5)
    """

    def poison_update(
        self, delta: Vector, num_examples: int, *, rng: np.random.Generator
    ) -> tuple[Vector, int]:
        norm = float(np.linalg.norm(delta.astype(np.float64)))
        factor = min(1.0, self.params.radius / norm) if norm > 0.0 else 1.0
        return (delta * factor).astype(delta.dtype), num_examples
