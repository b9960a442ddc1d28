"""Alternating minimisation with explicit boosting (Bhagoji et al., ICML 2019).

The attacker wants a targeted objective (here: a trigger backdoor) while its update still looks
like a benign one. Bhagoji et al. (Sec. 3.3 and their released code,
``inspire-group/ModelPoisoning``, ``malicious_agent.py``, strategy
``converge_train_alternate_wt_o_dist_self``) alternate, inside one local round,

* ``ls`` *stealth* steps on the attacker's clean shard, minimising the cross-entropy plus
  ``rho/2 ||w - w_ben||^2``, where ``w_ben`` is the model an honest client would have sent
  (the attacker trains it first: ``dist_self``);
* one *malicious* step on the malicious samples, whose weight change is **boosted** by ``lambda``
  (``lambda = 1 / alpha_m`` = the number of agents, 10, in the paper) so that it survives
  averaging: ``w <- w + lambda (w' - w)``. It is skipped once the malicious loss is exactly 0.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from attacks.base import Images, Labels
from attacks.data_poisoning import BackdoorParams, CornerTrigger
from attacks.registry import register_attack
from attacks.training import Trainer, TrainingAttack


class AlterMinParams(BackdoorParams):
    """The backdoor that is the targeted objective, the boost, the stealth weight and the
    alternation period."""

    boost: float = Field(10.0, gt=0.0)
    rho: float = Field(1e-4, ge=0.0)
    benign_steps: int = Field(10, ge=1)
    epochs: int | None = Field(None, ge=1)


@register_attack("alter_min", AlterMinParams)
class AlterMin(CornerTrigger[AlterMinParams], TrainingAttack[AlterMinParams]):
    r"""Alternating minimisation with explicit boosting and a distance constraint (Bhagoji et al.).

    .. math::

        w_{\text{ben}} &= \text{SGD}_{E}(w_t;\ D),\qquad
        w \leftarrow w_t \\
        \text{repeat: } w &\leftarrow \text{SGD}_{ls}\big(w;\ \ell_D(w) +
            \tfrac{\rho}{2}\lVert w - w_{\text{ben}}\rVert_2^2\big) \\
        w &\leftarrow w - \lambda\, \eta\, \nabla \ell_{D_m}(w)
            \quad \text{if } \ell_{D_m}(w) > 0

    ``D`` is the clean shard, ``D_m`` its ``floor(ratio * N + 0.5)`` triggered and relabelled
    samples (the ``backdoor`` trigger), ``E`` epochs of the scenario's batch plan are cut into
    chunks of ``ls`` steps, each followed by one boosted malicious step on all of ``D_m``.
    Deviations from the authors' code: the targeted objective is a trigger backdoor on the
    shard (the paper misclassifies 1-10 chosen test images: one image cannot give a success
    rate); the malicious step is plain gradient descent with the scenario's learning rate (the
    code runs a second Adam); distance and boost cover every weight (``wt_o``: kernels only).

    Parameters
    ----------
    target : int, default 0
        The label of triggered samples.
    ratio : float, default 0.1
        Fraction of the shard triggered into the malicious set, in (0, 1].
    trigger_size, position, offset, value
        The square trigger, as for ``backdoor``.
    boost : float, default 10.0
        The explicit boosting factor ``lambda`` (authors' ``--mal_boost``), > 0.
    rho : float, default 1e-4
        Weight of the distance constraint (authors' ``--rho``), >= 0.
    benign_steps : int, default 10
        Stealth steps per malicious step (authors' ``--ls``), >= 1.
    epochs : int or None, default None
        Epochs of the stealth training and of the anchor (authors' ``--mal_E``); None: the
        scenario's ``train.local_epochs``.

    Returns
    -------
    dict
        Diagnostics: ``malicious_steps``, ``malicious_loss`` (after the round) and
        ``anchor_distance`` ``||w - w_ben||``; the trainer holds the weights sent.

    References
    ----------
    Bhagoji, Chakraborty, Mittal & Calo, "Analyzing Federated Learning through an Adversarial
    Lens", ICML 2019 (Sec. 3-4; code ``inspire-group/ModelPoisoning``).

    Examples
    --------
    >>> import numpy as np
    >>> from attacks import get_attack
    >>> attack = get_attack("alter_min", trigger_size=1, offset=0, ratio=0.5)
    >>> attack.kind.value, attack.params.boost, attack.params.benign_steps
    ('training', 10.0, 10)
    >>> out = attack.poison(np.zeros((2, 2, 2, 1), np.float32), np.array([3, 4]),
    ...     num_classes=10, rng=np.random.default_rng(0))
    >>> out.poisoned.sum(), out.y[out.poisoned].tolist(), out.x[out.poisoned][0, 1, 1, 0]
    (1, [0], 1.0)
    """

    @property
    def size(self) -> int:
        """The square's side, ``trigger_size``."""
        return self.params.trigger_size

    def train(
        self,
        trainer: Trainer,
        x: Images,
        y: Labels,
        *,
        num_classes: int,
        rng: np.random.Generator,
        colluder: int = 0,
    ) -> dict[str, float]:
        """Anchor training, then stealth chunks each followed by a boosted malicious step."""
        poisoned = self.poison(x, y, num_classes=num_classes, rng=rng, colluder=colluder)
        x_mal, y_mal = poisoned.x[poisoned.poisoned], poisoned.y[poisoned.poisoned]
        epochs = self.params.epochs or trainer.local_epochs
        start = trainer.weights()
        # The stealth anchor: what this client would send honestly (the authors' "dist_self").
        trainer.train(x, y, trainer.plan(len(y), epochs))
        anchor = trainer.weights()
        trainer.load(start, reset_optimizer=True)
        plan, period = trainer.plan(len(y), epochs), self.params.benign_steps
        boosted = 0
        for first in range(0, len(plan), period):
            trainer.train(x, y, plan[first : first + period], anchor=anchor, rho=self.params.rho)
            if len(y_mal) and trainer.loss(x_mal, y_mal) > 0.0:
                step = trainer.learning_rate * trainer.gradient(x_mal, y_mal)
                trainer.load(trainer.weights() - self.params.boost * step)
                boosted += 1
        return {
            "malicious_steps": float(boosted),
            "malicious_loss": trainer.loss(x_mal, y_mal) if len(y_mal) else 0.0,
            "anchor_distance": float(np.linalg.norm(trainer.weights() - anchor)),
        }
