"""Model poisoning by one client with no knowledge of the others: it rewrites its own update.

Every attack maps the flat delta ``(d,)`` (trained weights minus global weights) to a new array
of the same shape and dtype. Attacks that send malformed values or lie about the example count
are in :mod:`attacks.malformed`.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from attacks.base import UpdateAttack, Vector
from attacks.registry import register_attack
from common.registry import NoParams, Params


class SignFlipParams(Params):
    """``scale`` > 0 multiplies the flipped update."""

    scale: float = Field(1.0, gt=0.0)


@register_attack("sign_flip", SignFlipParams)
class SignFlip(UpdateAttack[SignFlipParams]):
    r"""Sign flipping: the client sends its update reversed (Allen-Zhu et al. 2021; Li et al. 2019).

    .. math:: \tilde\delta = -\text{scale}\cdot\delta

    ByzFL's SignFlipping is the server-side variant ``-mean(honest)``; this is the client-side one
    that needs no knowledge of the other clients.

    Parameters
    ----------
    scale : float, default 1.0
        Factor on the flipped update, > 0.

    Returns
    -------
    tuple of (ndarray, int)
        The flipped delta and the true example count.

    References
    ----------
    Allen-Zhu, Ebrahimian, Li & Alistarh, "Byzantine-Resilient Non-Convex Stochastic Gradient
    Descent", ICLR 2021; Li et al., "RSA", AAAI 2019.

    Examples
    --------
    >>> import numpy as np
    >>> from attacks import get_attack
    >>> get_attack("sign_flip", scale=2.0).poison_update(
    ...     np.array([1.0, -0.5]), 10, rng=np.random.default_rng(0))
    (array([-2.,  1.]), 10)
    """

    def poison_update(
        self, delta: Vector, num_examples: int, *, rng: np.random.Generator
    ) -> tuple[Vector, int]:
        return (-self.params.scale * delta).astype(delta.dtype), num_examples


class GaussianParams(Params):
    """Mean and standard deviation (>= 0) of the noise that replaces the update."""

    mean: float = 0.0
    std: float = Field(1.0, ge=0.0)


@register_attack("gaussian", GaussianParams)
class Gaussian(UpdateAttack[GaussianParams]):
    r"""Gaussian noise in place of the update (Blanchard et al. 2017, the Krum paper).

    .. math:: \tilde\delta_k \sim \mathcal N(\text{mean}, \text{std}^2)\ \text{i.i.d.}

    Peers disagree on the default: ByzFL and FLPoison draw N(0, 1) (ours); Blades'
    NoiseAdversary draws N(0.1, 0.1^2).

    Parameters
    ----------
    mean : float, default 0.0
        Mean of the noise.
    std : float, default 1.0
        Standard deviation, >= 0.

    Returns
    -------
    tuple of (ndarray, int)
        The noise (same shape and dtype as the delta) and the true example count.

    References
    ----------
    Blanchard, El Mhamdi, Guerraoui & Stainer, "Machine Learning with Adversaries: Byzantine
    Tolerant Gradient Descent", NeurIPS 2017.

    Examples
    --------
    >>> import numpy as np
    >>> from attacks import get_attack
    >>> noise, count = get_attack("gaussian", mean=5.0, std=0.0).poison_update(
    ...     np.zeros(3), 7, rng=np.random.default_rng(0))
    >>> noise, count
    (array([5., 5., 5.]), 7)
    """

    def poison_update(
        self, delta: Vector, num_examples: int, *, rng: np.random.Generator
    ) -> tuple[Vector, int]:
        noise = rng.normal(self.params.mean, self.params.std, size=delta.shape)
        return noise.astype(delta.dtype), num_examples


class ScalingParams(Params):
    """``gamma`` > 0, the boost (the paper's ``gamma = n / eta``)."""

    gamma: float = Field(10.0, gt=0.0)


@register_attack("scaling", ScalingParams)
class Scaling(UpdateAttack[ScalingParams]):
    r"""Model replacement boost (Bagdasaryan et al. 2020, AISTATS).

    .. math:: \tilde\delta = \gamma\,\delta,\qquad \gamma = n / \eta

    With FedAvg over n clients and server learning rate eta, this gamma makes the new global
    model (about) the attacker's model. The paper boosts a backdoored model: combine it after a
    data attack, ``attack.type = ["backdoor", "scaling"]``; alone it amplifies an honest update.

    Parameters
    ----------
    gamma : float, default 10.0
        The boost, > 0.

    Returns
    -------
    tuple of (ndarray, int)
        The boosted delta and the true example count.

    References
    ----------
    Bagdasaryan, Veit, Hua, Estrin & Shmatikov, "How To Backdoor Federated Learning",
    AISTATS 2020, Section 4 (model replacement).

    Examples
    --------
    >>> import numpy as np
    >>> from attacks import get_attack
    >>> get_attack("scaling", gamma=10.0).poison_update(
    ...     np.array([0.1, -0.2]), 5, rng=np.random.default_rng(0))
    (array([ 1., -2.]), 5)
    """

    def poison_update(
        self, delta: Vector, num_examples: int, *, rng: np.random.Generator
    ) -> tuple[Vector, int]:
        return (self.params.gamma * delta).astype(delta.dtype), num_examples


@register_attack("zero", NoParams)
class Zero(UpdateAttack[NoParams]):
    r"""Zero update: a free-rider that drags averages towards the old model.

    .. math:: \tilde\delta = 0

    Parameters
    ----------
    None

    Returns
    -------
    tuple of (ndarray, int)
        Zeros of the delta's shape and dtype, and the true example count.

    References
    ----------
    A baseline with no single originating paper (the "zero gradient" attack of benchmark
    suites such as Blades).

    Examples
    --------
    >>> import numpy as np
    >>> from attacks import get_attack
    >>> get_attack("zero").poison_update(np.array([0.3, 0.4]), 9, rng=np.random.default_rng(0))
    (array([0., 0.]), 9)
    """

    def poison_update(
        self, delta: Vector, num_examples: int, *, rng: np.random.Generator
    ) -> tuple[Vector, int]:
        return np.zeros_like(delta), num_examples
