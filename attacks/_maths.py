"""Maths shared by several attacks (private: the attack classes are the public API).

All functions are pure: they read their array arguments and return new arrays in float64.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtri

from attacks.base import Aggregator, Counts, Updates
from common.errors import ConfigError

F64 = NDArray[np.float64]
ZFormula = Literal["baruch", "blades"]


def round_half_up(value: float) -> int:
    """``floor(value + 0.5)``: Python's ``round`` rounds half to EVEN (2.5 -> 2), this gives 3."""
    return int(math.floor(value + 0.5))


def exact_count(ratio: float, population: int) -> int:
    """``floor(ratio * population + 0.5)`` (round half up), at most ``population``.

    E.g. ratio 0.25 of 10 samples poisons 3 (2.5 rounds up), ratio 0.5 of 5 poisons 3.
    """
    return min(population, round_half_up(ratio * population))


def choose_indices(
    rng: np.random.Generator, population: NDArray[np.intp], count: int
) -> NDArray[np.intp]:
    """``count`` distinct entries of ``population`` drawn uniformly with ``rng``, sorted."""
    return np.sort(rng.choice(population, size=count, replace=False))


def mean_and_std(honest: Updates) -> tuple[F64, F64]:
    """Coordinate-wise mean and population standard deviation (ddof=0) in float64.

    ddof=0 keeps the std defined for a single honest update (FLPoison also uses ddof=0; ByzFL,
    Blades and epfml use the unbiased ddof=1, a factor sqrt(h/(h-1)) larger).
    """
    data = honest.astype(np.float64)
    return data.mean(axis=0), data.std(axis=0)


def squared_distances(a: Updates, b: Updates) -> F64:
    """``D[i, j] = ||a_i - b_j||^2`` from one matrix product, clipped at 0: ``(len(a), len(b))``.

    Both sides are centred on the mean of ``b`` first: the rows share the global drift, and
    subtracting it keeps the expansion ``|a|^2 + |b|^2 - 2ab`` from cancelling digits.
    """
    centre = b.astype(np.float64).mean(axis=0)
    left = a.astype(np.float64) - centre
    right = b.astype(np.float64) - centre
    sq_left: F64 = np.einsum("ij,ij->i", left, left)
    sq_right: F64 = np.einsum("ij,ij->i", right, right)
    dist: F64 = sq_left[:, None] + sq_right[None, :] - 2.0 * (left @ right.T)
    return np.maximum(dist, 0.0)


def alie_z(num_clients: int, num_malicious: int, formula: ZFormula) -> float:
    """ALIE's ``z_max = Phi^{-1}(p)`` with ``s = floor(n/2 + 1) - m`` supporters needed.

    * ``baruch`` (Baruch et al. 2019, Alg. 1): ``p = (n - s) / n``.
    * ``blades`` (Blades, FLPoison and Karimireddy et al.'s epfml code):
      ``p = (n - m - s) / (n - m)``.

    ``n`` counts every client of the round, malicious included. Golden values: n=20, m=8 gives
    1.036 (baruch) and 0.674 (blades); n=50, m=10 gives 0.468 and 0.253.
    """
    supporters = math.floor(num_clients / 2 + 1) - num_malicious
    if formula == "baruch":
        p = (num_clients - supporters) / num_clients
    else:
        p = (num_clients - num_malicious - supporters) / (num_clients - num_malicious)
    if supporters <= 0 or not 0.0 < p < 1.0:
        raise ConfigError(
            f"alie: num_malicious={num_malicious} of {num_clients} clients gives s={supporters} "
            f"and p={p:.3f}; the z formula {formula!r} needs 0 < p < 1, set attack.params.z"
        )
    # The standard normal quantile; scipy.stats.norm.ppf is this same function, and
    # scipy.stats costs half a second to import in every process that validates.
    return float(ndtri(p))


def halving_search(
    feasible: Callable[[float], bool], *, gamma_init: float, threshold: float
) -> float:
    """Shejwalkar & Houmansadr 2021 (NDSS), Alg. 1: the largest feasible gamma, by halving.

    ``gamma = gamma_init, step = gamma_init / 2, best = 0``; while ``|best - gamma| > threshold``:
    if ``feasible(gamma)`` then ``best = gamma; gamma += step`` else ``gamma -= step``; then
    ``step /= 2``. Returns ``best`` (0 if nothing feasible was probed). The probes never exceed
    ``2 * gamma_init``, so for a feasible set ``[0, g*]`` the result is within ``threshold`` of
    ``min(g*, 2 * gamma_init)``.
    """
    gamma, step, best = gamma_init, gamma_init / 2.0, 0.0
    while abs(best - gamma) > threshold:
        if feasible(gamma):
            best = gamma
            gamma += step
        else:
            gamma -= step
        step /= 2.0
    return best


def line_maximize(
    objective: Callable[[float], float],
    *,
    start: float,
    delta: float,
    evals: int,
    ratio: float,
) -> float:
    """ByzFL's line search (``Optimal_ALittleIsEnough`` / ``Optimal_InnerProductManipulation``).

    Expansion: from ``x = start`` probe ``x + delta``; while that improves, move there and double
    ``delta``; at the first non-improvement multiply ``delta`` by ``ratio`` and stop. Contraction:
    with the evaluations left, probe ``x + delta`` (keep it if better) and multiply ``delta`` by
    ``ratio`` each time. ``evals`` counts every call to ``objective``, the start included. Like
    ByzFL's, the search only probes above its best point: it never goes back below it.
    """
    best_x, best_y = start, objective(start)
    remaining = evals - 1
    while remaining > 0:
        prop_x = best_x + delta
        prop_y = objective(prop_x)
        remaining -= 1
        if prop_y > best_y:
            best_x, best_y = prop_x, prop_y
            delta *= 2.0
        else:
            delta *= ratio
            break
    while remaining > 0:
        prop_x = best_x + delta
        prop_y = objective(prop_x)
        remaining -= 1
        if prop_y > best_y:
            best_x, best_y = prop_x, prop_y
        delta *= ratio
    return best_x


def aggregate_with(
    aggregator: Aggregator,
    honest: Updates,
    honest_num_examples: Counts,
    malicious: F64,
) -> F64:
    """The deployed rule's output when the forged rows ``malicious`` join the honest ones.

    A forged reply keeps its client's self-reported count, unknown here; the median honest count
    stands in for it (it neither inflates nor deflates the forged rows' weight).
    """
    counts = np.asarray(honest_num_examples, dtype=np.int64)
    stand_in = int(np.median(counts)) if counts.size else 1
    updates = np.concatenate([honest.astype(np.float64), malicious], axis=0)
    all_counts = np.concatenate([counts, np.full(malicious.shape[0], stand_in, dtype=np.int64)])
    return np.asarray(aggregator(updates, all_counts), dtype=np.float64)


def distance_from_mean(aggregate: F64, honest: Updates) -> float:
    """``||aggregate - mean(honest)||_2``: how far the attack moved the round's outcome."""
    return float(np.linalg.norm(aggregate - honest.astype(np.float64).mean(axis=0)))


def tile_rows(vector: NDArray[np.floating[Any]], rows: int) -> F64:
    """``rows`` copies of ``vector`` stacked: ``(rows, d)`` float64."""
    return np.tile(np.asarray(vector, dtype=np.float64), (rows, 1))
