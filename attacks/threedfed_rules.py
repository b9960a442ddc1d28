"""3DFed's feedback loop in numpy: the indicator it plants, how it reads it, how it tunes itself.

Li, Ye, Wang, Li, Zhang & Chen, "3DFed: Adaptive and Extensible Framework for Covert Backdoor
Attack in Federated Learning", IEEE S&P 2023 (Sec. V, Algorithms 3-4), pinned against the
authors' code (``haoyangliASTAPLE/3DFed``, ``attacks/components/{indicator,tuning}.py`` and
``attacks/thrdfed.py``). FLPoison's ``attackers/threedfed.py`` is a copy of the same two rules
marked "Implement Unfinished Yet" (its masks and decoys are ``pass``), so the authors' code is
the reference here.

* **Indicator** (Sec. V): in a layer benign training barely moves, the attacker picks coordinates
  where both its backdoor and its benign update are small and the loss curvature is near zero,
  and multiplies its update there by ``1e5``. The next global update at that coordinate divided
  by the planted value is the *feedback*: about the aggregation weight ``1/n`` when the server
  accepted the update, smaller when it clipped it, about 0 when it rejected it.
* **Reading** (Algorithm 3): feedback ``> 1`` or ``< -threshold`` means the server adds noise
  (weak DP); ``<= threshold`` rejected; ``<= 0.8 max`` clipped; else accepted.
* **Tuning** (Algorithm 4): the decoy count ``k`` falls by the accepted decoys and rises by one
  when nothing was accepted or clipped; each group's noise-mask weight ``alpha`` is redrawn from
  the ``alpha`` of the groups that got ``>= 80 %`` accepted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from attacks.base import Vector

Status = Literal["a", "c", "r"]
"""Accepted, clipped, rejected (the authors' letters)."""

INDICATOR_BOOST = 1e5
"""The factor the planted coordinate is multiplied by (``mul_(1e5)``)."""
INDICATOR_FLOOR = 1e-2
"""Added when the planted coordinate is exactly 0 (the authors' MNIST value; 1e-3 otherwise)."""
CANDIDATES_PER_DEVICE = 10
"""Candidate coordinates per indicator (``num_candidate = 10`` for MNIST and CIFAR)."""


@dataclass(frozen=True)
class Reading:
    """What the last round's indicators say: each device's status, or weak DP detected."""

    statuses: tuple[Status, ...]
    weak_dp: bool


def read_indicators(feedbacks: NDArray[np.float64], *, threshold: float) -> Reading:
    """Algorithm 3: classify each feedback ``f_i = Delta w_global[I_i] / v_i``.

    ``f > 1`` or ``f < -threshold``: the server adds noise (weak DP), reading stops, no status;
    ``f <= threshold``: rejected; ``f <= 0.8 max_j f_j``: clipped; otherwise accepted.

    >>> read_indicators(np.array([0.1, 0.05, 1e-6]), threshold=1e-4)
    Reading(statuses=('a', 'c', 'r'), weak_dp=False)
    """
    top = float(np.max(feedbacks)) if len(feedbacks) else 0.0
    statuses: list[Status] = []
    for feedback in map(float, feedbacks):
        if feedback > 1.0 or feedback < -threshold:
            return Reading(statuses=(), weak_dp=True)
        statuses.append("r" if feedback <= threshold else "c" if feedback <= 0.8 * top else "a")
    return Reading(statuses=tuple(statuses), weak_dp=False)


def initial_alphas(groups: int, *, floor: float, rng: np.random.Generator) -> list[float]:
    """One ``alpha ~ U(floor, 1)`` per group of colluders, before any feedback."""
    return [float(rng.uniform(floor, 1.0)) for _ in range(groups)]


def adaptive_tuning(
    statuses: tuple[Status, ...],
    alphas: list[float],
    decoys: int,
    *,
    colluders: int,
    group_size: int,
    floor: float,
    rng: np.random.Generator,
) -> tuple[list[float], int]:
    """Algorithm 4 as the authors' ``adaptive_tuning``: the new ``alpha`` per group and ``k``.

    ``statuses`` lists the colluders' statuses, then the decoys'. ``k <- max(k - #accepted
    decoys, 0)``, then ``+1`` when no colluder was accepted or clipped and no decoy accepted.
    A group is a *candidate* when ``>= 0.8 group_size`` of its members were accepted; with
    ``G = floor(colluders / group_size)`` groups: a single group redraws every ``alpha`` from
    ``U(floor, 1)`` unless it is a candidate; with several, every group draws from
    ``U(c_1, c_2)`` when all are candidates (``c`` sorted), ``U(c_1, c_1 + 0.1)`` when some are,
    ``U(floor, 1)`` when none is. Finally ``alpha >= 1 -> 0.99`` and ``alpha <= 0 -> 0.01``.
    """
    alphas = list(alphas)
    mine, theirs = statuses[:colluders], statuses[colluders:]
    decoys = max(decoys - theirs.count("a"), 0)
    if "a" not in mine and "c" not in mine and "a" not in theirs:
        decoys += 1
    groups = colluders // group_size
    candidates = sorted(
        alphas[g]
        for g in range(groups)
        if statuses[g * group_size : (g + 1) * group_size].count("a") >= 0.8 * group_size
    )
    if groups == 1 and not candidates:
        alphas = [float(rng.uniform(floor, 1.0)) for _ in alphas]
    elif groups > 1:
        for g in range(groups):
            if len(candidates) == groups:
                alphas[g] = float(rng.uniform(candidates[0], candidates[1]))
            elif candidates:
                alphas[g] = float(rng.uniform(candidates[0], candidates[0] + 0.1))
            else:
                alphas[g] = float(rng.uniform(floor, 1.0))
    return [0.99 if a >= 1.0 else 0.01 if a <= 0.0 else a for a in alphas], decoys


def backdoor_scale(benign_norm: float, backdoor_norm: float, *, max_scale: float) -> float:
    """``max(min(||benign|| / ||backdoor||, max_scale), 1)``: a backdoor update smaller than
    the benign one is scaled up to its size, by at most ``max_scale`` (``fl_weight_scale``)."""
    if backdoor_norm == 0.0:
        return 1.0
    return max(min(benign_norm / backdoor_norm, max_scale), 1.0)


def choose_indicators(
    backdoor: Vector, benign: Vector, curvature: Vector, *, count: int
) -> NDArray[np.int64]:
    """``count`` coordinates of one layer: among the ``10 count`` smallest ``|backdoor| +
    |benign|`` (the candidates), those of smallest ``|curvature|``, ties to the smaller update.

    The authors scan the layer with a running replace-the-maximum; this is the exact selection
    it approximates (the same set whenever the values are distinct).

    >>> choose_indicators(np.array([0.0, 5.0, 0.1, 0.2]), np.zeros(4),
    ...     np.array([3.0, 0.0, 1.0, 0.0]), count=1).tolist()
    [3]
    """
    analog = np.abs(np.asarray(backdoor, np.float64)) + np.abs(np.asarray(benign, np.float64))
    pool = min(CANDIDATES_PER_DEVICE * count, analog.size)
    candidates = np.argsort(analog, kind="stable")[:pool]
    order = np.lexsort((analog[candidates], np.abs(np.asarray(curvature)[candidates])))
    return np.asarray(candidates[order[:count]], np.int64)


def planted_values(update: Vector, positions: NDArray[np.int64]) -> list[float]:
    """The value an indicator takes at each position: ``update * 1e5`` in float32, ``1e-2``
    where that is 0."""
    values = np.asarray(update, np.float32)[positions] * np.float32(INDICATOR_BOOST)
    return [float(v) if v != 0.0 else float(np.float32(INDICATOR_FLOOR)) for v in values]


def plant_indicator(update: Vector, index: int) -> tuple[Vector, float]:
    """The update with its indicator planted at ``index`` (:func:`planted_values`) and the
    planted value.

    >>> plant_indicator(np.array([0.5, 0.0, 2e-6], np.float32), 1)[1]
    0.009999999776482582
    """
    planted = np.array(update, dtype=np.float32, copy=True)
    (value,) = planted_values(planted, np.array([index]))
    planted[index] = value
    return planted, value


def group_count(colluders: int, group_size: int) -> int:
    """Noise-mask groups: ``ceil(colluders / group_size)``."""
    return math.ceil(colluders / group_size)
