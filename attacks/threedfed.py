"""3DFed (Li et al., IEEE S&P 2023): a covert backdoor that reads the server's verdict and adapts.

The round of the coalition, as the authors' ``ThrDFed.perform_attack`` runs it (one attacker
computing every colluder's update; :class:`attacks.training.StatefulTrainingAttack` has each
colluder's client compute the same round and keep its own slot):

1. **Feedback** (from the second attack round on): the global update at last round's indicators
   gives each colluder's status (:func:`attacks.threedfed_rules.read_indicators`) and
   Algorithm 4 retunes the groups' ``alpha`` (:func:`~attacks.threedfed_rules.adaptive_tuning`).
2. **Benign reference**: ``train.local_epochs`` of honest training from the global model.
3. **Constrained backdoor training** from the global model ``w_t`` for ``epochs`` epochs on
   ``0.3 CE(clean) + 0.3 CE(triggered) + 0.4 ||w - w_t||_2`` (the authors' ``fixed_scales``),
   then scaled by ``max(min(||benign|| / ||backdoor||, max_scale), 1)``.
4. **Indicators** in the layer before the output layer, one per colluder.
5. **Noise masks** on the output layer per group of ``group_size`` (:mod:`attacks.noise_masks`).
6. Each colluder sends ``w_t + backdoor + its mask`` with its indicator planted.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from pydantic import Field

from attacks.base import Images, Labels, Vector
from attacks.data_poisoning import BackdoorParams, CornerTrigger
from attacks.noise_masks import coalition_masks
from attacks.registry import register_attack
from attacks.threedfed_rules import (
    adaptive_tuning,
    backdoor_scale,
    choose_indicators,
    group_count,
    initial_alphas,
    plant_indicator,
    planted_values,
    read_indicators,
)
from attacks.training import Memory, StatefulTrainingAttack, Trainer
from attacks.triggers import check_class
from common.errors import ConfigError

CLEAN_WEIGHT, BACKDOOR_WEIGHT, DISTANCE_WEIGHT = 0.3, 0.3, 0.4
"""The authors' ``fixed_scales`` of the normal, backdoor and ``eu_constraint`` losses."""
CURVATURE_STEP = 1e-2
"""Finite-difference step of the curvature ``H 1`` on the indicator layer."""
WEAK_DP_ALPHA = 0.1
"""Every ``alpha`` once weak DP is detected (the authors disable tuning then)."""


class ThreeDFedParams(BackdoorParams):
    """The BadNets trigger and 3DFed's knobs (the authors' MNIST configuration)."""

    ratio: float = Field(1.0, gt=0.0, le=1.0)
    epochs: int = Field(15, ge=1)
    max_scale: float = Field(5.0, ge=1.0)
    group_size: int = Field(2, ge=1)
    num_neurons: int = Field(8, ge=1)
    alpha_floor: float = Field(0.0, ge=0.0, lt=1.0)
    threshold: float = Field(1e-4, gt=0.0, lt=1.0)


def _layout(shapes: list[tuple[int, ...]], num_classes: int) -> tuple[slice, slice, slice]:
    """Flat slices of the indicator layer (the kernel before the output layer), the output
    kernel ``(h, C)`` and the output bias ``(C,)``."""
    if len(shapes) < 4 or shapes[-1] != (num_classes,) or len(shapes[-2]) != 2:
        raise ConfigError(
            f"attack.type: got 'threedfed' with a model whose last weights are {shapes[-2:]}; "
            f"it needs a dense output layer (kernel, bias of {num_classes}) after another layer"
        )
    ends = np.cumsum([int(np.prod(s)) for s in shapes])
    starts = ends - [int(np.prod(s)) for s in shapes]
    return (
        slice(int(starts[-4]), int(ends[-4])),
        slice(int(starts[-2]), int(ends[-2])),
        slice(int(starts[-1]), int(ends[-1])),
    )


def _indicator_memory(backdoor: Vector, positions: NDArray[np.int64], start: Vector) -> Memory:
    """Where the indicators are, their planted values and the global weights there now."""
    return {
        "positions": [float(i) for i in positions],
        "values": planted_values(backdoor, positions),
        "before": [float(v) for v in start[positions]],
    }


@register_attack("threedfed", ThreeDFedParams)
class ThreeDFed(CornerTrigger[ThreeDFedParams], StatefulTrainingAttack[ThreeDFedParams]):
    r"""3DFed covert backdoor (Li et al., IEEE S&P 2023): constrained training, indicators,
    noise masks and adaptive tuning from the indicators' feedback.

    .. math::

        \min_w\ 0.3\,\ell(w; D) + 0.3\,\ell(w; D_m) + 0.4\,\lVert w - w_t\rVert_2,\qquad
        \Delta = s\,(w - w_t),\ s = \max\!\big(\min(\lVert\Delta_{ben}\rVert /
        \lVert w - w_t\rVert, s_{max}), 1\big)

    Colluder ``i`` sends ``Delta + m_i`` with ``Delta[I_i] * 1e5``; next round
    ``f_i = (w_{t+1} - w_t)[I_i] / v_i`` says accepted / clipped / rejected / weak DP.
    Deviations from the authors' code (docs/attacks.md): no decoy models (the attacker has
    only its malicious clients; Algorithm 4's ``k`` is reported, ``decoys_wanted``); the
    curvature is a finite difference of gradients on the whole shard; each mask takes its own
    gradient once (:mod:`attacks.noise_masks`); the layers are found by position.

    Parameters
    ----------
    target, trigger_size, position, offset, value
        The BadNets trigger, as ``backdoor`` (defaults 0, 3, "bottom_right", 1, 1.0).
    ratio : float, default 1.0
        Fraction of the shard with a triggered copy (``poisoning_proportion``), in (0, 1].
    epochs : int, default 15
        Epochs of backdoor training (``fl_poison_epochs``), >= 1.
    max_scale : float, default 5.0
        Largest scale-up of the backdoor update (``fl_weight_scale``), >= 1.
    group_size : int, default 2
        Colluders per noise-mask group (``fl_adv_group_size``), >= 1.
    num_neurons : int, default 8
        Output neurons each group's masks raise (``fl_num_neurons``), < number of classes.
    alpha_floor : float, default 0.0
        Lower end of a fresh ``alpha ~ U(floor, 1)`` (``noise_mask_alpha``), in [0, 1).
    threshold : float, default 1e-4
        Feedback below it means rejected (the authors' MNIST value; 1e-5 for CIFAR), in (0, 1).

    Returns
    -------
    tuple
        :meth:`train_round` gives the diagnostics (``scale``, this colluder's group ``alpha``,
        ``accepted`` colluders last round (-1: no reading), ``weak_dp``, ``decoys_wanted``,
        ``mask_constraint``) and the memory for the next round; the trainer holds the weights.

    References
    ----------
    Li, Ye, Wang, Li, Zhang & Chen, "3DFed: Adaptive and Extensible Framework for Covert
    Backdoor Attack in Federated Learning", IEEE S&P 2023 (code haoyangliASTAPLE/3DFed).

    Examples
    --------
    >>> from attacks import get_attack
    >>> attack = get_attack("threedfed")
    >>> attack.kind.value, attack.params.epochs, attack.params.group_size
    ('training', 15, 2)
    """

    @property
    def size(self) -> int:
        """The square's side, ``trigger_size``."""
        return self.params.trigger_size

    def _tune(
        self, memory: Memory, global_now: Vector, colluders: int, rng: np.random.Generator
    ) -> tuple[list[float], int, bool, int]:
        """``alpha`` per group, ``k``, weak DP and the accepted count, from last round."""
        p = self.params
        groups = group_count(colluders, p.group_size)
        if not memory or len(memory["alpha"]) != groups:
            return initial_alphas(groups, floor=p.alpha_floor, rng=rng), 0, False, -1
        alphas, decoys = list(memory["alpha"]), int(memory["decoys"][0])
        weak_dp = bool(memory["weak_dp"][0])
        positions = np.asarray(memory["positions"], np.int64)
        feedback = (global_now[positions] - np.asarray(memory["before"])) / np.asarray(
            memory["values"]
        )
        reading = read_indicators(feedback, threshold=p.threshold)
        weak_dp = weak_dp or reading.weak_dp
        if weak_dp:
            return [WEAK_DP_ALPHA] * groups, decoys, True, -1
        alphas, decoys = adaptive_tuning(
            reading.statuses,
            alphas,
            decoys,
            colluders=colluders,
            group_size=p.group_size,
            floor=p.alpha_floor,
            rng=rng,
        )
        return alphas, decoys, False, reading.statuses.count("a")

    def _curvature(
        self, trainer: Trainer, data: list[tuple[Images, Labels]], start: Vector, layer: slice
    ) -> Vector:
        """``(H 1)`` on the indicator layer, summed over the clean and triggered losses:
        ``(g(w + h 1_L) - g(w))_L / h``."""
        shifted = start.copy()
        shifted[layer] += CURVATURE_STEP
        trainer.load(shifted)
        after = sum(trainer.gradient(x, y)[layer] for x, y in data)
        trainer.load(start)
        before = sum(trainer.gradient(x, y)[layer] for x, y in data)
        return np.asarray(after - before, np.float64) / CURVATURE_STEP

    def _backdoor(
        self, trainer: Trainer, x: Images, y: Labels, chosen: NDArray[np.int64]
    ) -> tuple[Vector, Vector, tuple[Images, Labels]]:
        """The benign reference update and the constrained backdoor update (not yet scaled)."""
        start = trainer.weights()
        trainer.train(x, y, trainer.plan(len(y), trainer.local_epochs))
        benign = trainer.weights() - start
        trainer.load(start, reset_optimizer=True)
        # Each step sees a clean batch and the triggered copies of its samples: the mean over
        # both, weighted 0.6, is 0.3 CE(clean) + 0.3 CE(triggered) when every sample has a copy.
        x_mal = self.apply_trigger(x[chosen])
        y_mal = np.full(len(chosen), self.params.target, np.int64)
        x_all, y_all = np.concatenate([x, x_mal]), np.concatenate([y, y_mal])
        copies = np.full(len(y), -1, np.int64)
        copies[chosen] = len(y) + np.arange(len(chosen))
        plan = trainer.plan(len(y), self.params.epochs)
        batches = [np.concatenate([b, copies[b][copies[b] >= 0]]) for b in plan]
        trainer.train(
            x_all,
            y_all,
            batches,
            anchor=start,
            norm_penalty=DISTANCE_WEIGHT,
            ce_weight=CLEAN_WEIGHT + BACKDOOR_WEIGHT,
        )
        backdoor = trainer.weights() - start
        trainer.load(start, reset_optimizer=True)
        return benign, backdoor, (x_mal, y_mal)

    def _craft(
        self,
        trainer: Trainer,
        x: Images,
        y: Labels,
        chosen: NDArray[np.int64],
        layer: slice,
        colluders: int,
    ) -> tuple[Vector, NDArray[np.int64], float]:
        """The scaled backdoor update, the colluders' indicator positions and the scale."""
        start = trainer.weights()
        benign, backdoor, triggered = self._backdoor(trainer, x, y, chosen)
        scale = backdoor_scale(
            float(np.linalg.norm(benign)),
            float(np.linalg.norm(backdoor)),
            max_scale=self.params.max_scale,
        )
        backdoor = (backdoor * scale).astype(np.float32)
        curvature = self._curvature(trainer, [(x, y), triggered], start, layer)
        positions = layer.start + choose_indicators(
            backdoor[layer], benign[layer], curvature, count=colluders
        )
        return backdoor, positions, scale

    def train_round(
        self,
        trainer: Trainer,
        x: Images,
        y: Labels,
        *,
        num_classes: int,
        rng: np.random.Generator,
        colluder: int,
        colluders: int,
        server_round: int,
        memory: Memory,
    ) -> tuple[dict[str, float], Memory]:
        """One round of the coalition; the trainer ends holding colluder ``colluder``'s model."""
        p = self.params
        check_class("num_neurons", p.num_neurons, num_classes)
        chosen = np.flatnonzero(self.poison(x, y, num_classes=num_classes, rng=rng).poisoned)
        layer, out_kernel, out_bias = _layout(trainer.layer_shapes, num_classes)
        output = (out_kernel, out_bias)
        # The round's draws (alpha, neurons, masks, slots): the same in every colluder's client.
        rounds = np.random.default_rng([int(rng.integers(2**32)), server_round])
        start = trainer.weights()
        if int(memory.get("round", [-1])[0]) != server_round - 1:
            memory = {}
        alphas, decoys, weak_dp, accepted = self._tune(memory, start, colluders, rounds)
        backdoor, positions, scale = self._craft(trainer, x, y, chosen, layer, colluders)
        masks, constraint = coalition_masks(
            backdoor,
            alphas,
            output,
            neurons=[c for c in range(num_classes) if c != p.target],
            num_neurons=p.num_neurons,
            group_size=p.group_size,
            std=0.01 if weak_dp else 0.05,
            rng=rounds,
        )
        slot = int(np.flatnonzero(rounds.permutation(colluders) == colluder)[0])
        update, _ = plant_indicator(backdoor + masks[slot], int(positions[colluder]))
        trainer.load(start + update, reset_optimizer=True)
        remembered: Memory = {
            "round": [float(server_round)],
            "alpha": alphas,
            "decoys": [float(decoys)],
            "weak_dp": [float(weak_dp)],
            **_indicator_memory(backdoor, positions, start),
        }
        diagnostics = {
            "scale": scale,
            "alpha": alphas[slot // p.group_size],
            "accepted": float(accepted),
            "weak_dp": float(weak_dp),
            "decoys_wanted": float(decoys),
            "mask_constraint": constraint,
        }
        return diagnostics, remembered
