"""3DFed's noise masks (Sec. VI-B of Li et al., S&P 2023; authors' ``components/mask.py``).

A group of colluders sends the same backdoor update ``b``, each with its own mask on the output
layer. The masks raise the *update of the prediction neurons* (UPs, ``sum |b_j + m_j|`` over the
row of output neuron ``j``) of a few random non-target neurons, so detectors that look at the
output layer (DeepSight's NEUPs, threshold exceedings) see an ordinary spread of labels, while
they sum to zero over the group, so the aggregate keeps the backdoor. Mask ``i`` minimises

.. math::

    L_i = \\frac{\\alpha \\sum_{j \\in S} \\frac{c_u}{UP_{ij}} + (1 - \\alpha)\\, c_n
          \\lVert m_{i,S} \\rVert_2 + \\lambda\\, c_l \\lVert \\textstyle\\sum_k m_{k,S}
          \\rVert_2}{1 + \\lambda},
    \\qquad UP_{ij} = \\lVert b_j + m_{ij} \\rVert_1

with 30 steps of SGD (lr 0.1, momentum 0.9, weight decay 5e-4) from ``N(0, sigma^2)`` centred
over the group, and dual ascent ``lambda <- lambda + 0.1 ||sum_k m_{k,S}||`` after each step
(``lambda_0 = 1``). The constants are the authors' MNIST ones: ``c_u = 0.1``, ``c_n = 0.08``,
``c_l = 0.1``, ``sigma = 0.05`` (0.01 once weak DP is detected). The gradients are written out
(the objective is a sum of norms). Deviation: the authors call ``backward`` on each mask's loss
in turn without zeroing in between, so mask ``i`` is stepped with ``i + 1`` copies of the
shared Lagrange gradient; here each mask takes the gradient of its own ``L_i`` once.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

UPS_WEIGHT = 0.1
NORM_WEIGHT = 8e-2
LAGRANGE_WEIGHT = 1e-1
LAGRANGE_STEP = 0.1
STEPS = 30
LEARNING_RATE = 0.1
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4


def _unit(v: NDArray[np.float64]) -> NDArray[np.float64]:
    norm = float(np.linalg.norm(v))
    return np.asarray(v / norm if norm > 0.0 else np.zeros_like(v), np.float64)


def mask_gradients(
    rows: NDArray[np.float64], masks: NDArray[np.float64], *, alpha: float, lagrange: float
) -> NDArray[np.float64]:
    """``dL_i / dm_i`` for every mask; ``rows`` is ``b`` on the chosen neurons ``(|S|, d)``,
    ``masks`` is ``(g, |S|, d)``."""
    ups = np.abs(rows[None] + masks).sum(axis=2, keepdims=True)
    ups_grad = -UPS_WEIGHT / np.maximum(ups, 1e-12) ** 2 * np.sign(rows[None] + masks)
    norm_grad = np.stack([NORM_WEIGHT * _unit(m) for m in masks])
    lagrange_grad = LAGRANGE_WEIGHT * _unit(masks.sum(axis=0))[None]
    total = alpha * ups_grad + (1.0 - alpha) * norm_grad + lagrange * lagrange_grad
    return np.asarray(total / (1.0 + lagrange), np.float64)


def optimise_masks(
    rows: NDArray[np.float64],
    *,
    group_size: int,
    alpha: float,
    std: float,
    rng: np.random.Generator,
) -> tuple[NDArray[np.float64], float]:
    """The group's masks on the chosen output neurons, ``(group_size, |S|, d)``, and the final
    constraint ``||sum_k m_k||`` (0 when the masks cancel exactly)."""
    masks = rng.normal(0.0, std, size=(group_size, *rows.shape))
    masks -= masks.mean(axis=0, keepdims=True)
    velocity = np.zeros_like(masks)
    lagrange = 1.0
    for step in range(STEPS):
        gradient = mask_gradients(rows, masks, alpha=alpha, lagrange=lagrange)
        gradient += WEIGHT_DECAY * masks
        # torch's SGD: the first step's buffer is the gradient itself.
        velocity = gradient if step == 0 else MOMENTUM * velocity + gradient
        masks = masks - LEARNING_RATE * velocity
        lagrange += LAGRANGE_STEP * float(np.linalg.norm(masks.sum(axis=0)))
    return masks, float(np.linalg.norm(masks.sum(axis=0)))


def coalition_masks(
    backdoor: NDArray[np.float32],
    alphas: list[float],
    output: tuple[slice, slice],
    *,
    neurons: list[int],
    num_neurons: int,
    group_size: int,
    std: float,
    rng: np.random.Generator,
) -> tuple[list[NDArray[np.float32]], float]:
    """Every colluder slot's mask as a flat vector like ``backdoor`` (``group_size`` per group,
    groups in the order of ``alphas``), and the largest group constraint ``||sum_k m_k||``.

    ``output`` are the flat slices of the output kernel ``(h, C)`` and bias ``(C,)``; each
    group draws ``num_neurons`` of ``neurons`` (the non-target classes) at random.
    """
    bias = backdoor[output[1]]
    kernel = backdoor[output[0]].reshape(-1, len(bias))
    masks: list[NDArray[np.float32]] = []
    worst = 0.0
    for alpha in alphas:
        chosen = rng.permutation(np.asarray(neurons))[:num_neurons]
        rows = np.concatenate([kernel[:, chosen].T, bias[chosen, None]], axis=1)
        group, constraint = optimise_masks(
            rows.astype(np.float64), group_size=group_size, alpha=alpha, std=std, rng=rng
        )
        worst = max(worst, constraint)
        for member in group:
            out_kernel = np.zeros_like(kernel)
            out_kernel[:, chosen] = member[:, :-1].T
            out_bias = np.zeros_like(bias)
            out_bias[chosen] = member[:, -1]
            flat = np.zeros_like(backdoor)
            flat[output[0]], flat[output[1]] = out_kernel.ravel(), out_bias
            masks.append(flat)
    return masks, worst
