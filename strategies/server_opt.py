"""Server optimisers (Reddi et al. 2021, "Adaptive Federated Optimization"; Hsu et al. 2019):
stages after the rule that turn its aggregate into the step the global model takes.

The rule's aggregate is the pseudo-gradient with the sign of a step, ``Delta_t`` (Flower's
``delta_t = aggregated - current``); each optimiser keeps its moments in a typed state, as an
Optax transformation does, and returns the step ``x_{t+1} - x_t``. Because they act on whatever
the rule returns, every robust rule composes with every optimiser. The maths matches Flower
1.23's ``FedAvgM``, ``FedAdagrad``, ``FedAdam`` and ``FedYogi`` (checked by test).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, NamedTuple

import numpy as np
from pydantic import Field

from strategies.base import Aggregate, ServerStage, frozen
from strategies.registries import server_optimizer

F64 = np.ndarray[Any, np.dtype[np.float64]]


class Momentum(NamedTuple):
    """Server momentum: the velocity, float64."""

    velocity: F64


class Moments(NamedTuple):
    """An adaptive optimiser's first and second moments (float64) and the rounds seen."""

    first: F64
    second: F64
    rounds: int


def _step(value: F64, aggregate: Aggregate) -> Aggregate:
    return value.astype(aggregate.dtype)


@server_optimizer("fedavgm")
class FedAvgM(ServerStage[Momentum]):
    r"""Server momentum (FedAvgM, Hsu et al. 2019): heavy-ball momentum on the aggregate.

    .. math::

        v_t = \beta v_{t-1} + \Delta_t, \quad v_0 = 0, \qquad x_{t+1} = x_t + \eta v_t

    Parameters
    ----------
    server_learning_rate : float, > 0, default 1.0
        eta (Flower's ``server_learning_rate``).
    server_momentum : float, in [0, 1), default 0.9
        beta (Flower's ``server_momentum``; Flower's default is 0, plain FedAvg).

    Returns
    -------
    ndarray, shape (n_params,)
        The step, in the dtype of the aggregate.

    Notes
    -----
    Flower's ``FedAvgM`` sets the velocity to the first pseudo-gradient, which is the same
    as starting from zero.

    References
    ----------
    .. [1] Hsu, Qi, Brown 2019, "Measuring the Effects of Non-Identical Data Distribution for
       Federated Visual Classification", arXiv 1909.06335.

    Examples
    --------
    >>> import numpy as np
    >>> opt = FedAvgM(server_momentum=0.5)
    >>> step, state = opt.update(np.array([1.0]), opt.init(1))
    >>> opt.update(np.array([1.0]), state)[0]  # 0.5 * 1 + 1
    array([1.5])
    """

    server_learning_rate: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    server_momentum: float = Field(default=0.9, ge=0, lt=1, allow_inf_nan=False)

    def init(self, num_params: int) -> Momentum:
        return Momentum(frozen(np.zeros(num_params)))

    def update(self, aggregate: Aggregate, state: Momentum) -> tuple[Aggregate, Momentum]:
        velocity = self.server_momentum * state.velocity + aggregate
        return _step(self.server_learning_rate * velocity, aggregate), Momentum(frozen(velocity))


class Adaptive(ServerStage[Moments]):
    """FedOpt's shared part (Reddi et al., Algorithm 2): the first moment
    ``m_t = b1 m_{t-1} + (1 - b1) Delta_t`` and the step ``eta_t m_t / (sqrt(v_t) + tau)``;
    each subclass gives ``v_t`` and its defaults (Flower's)."""

    eta: float = Field(default=0.1, gt=0, allow_inf_nan=False)
    beta_1: float = Field(default=0.9, ge=0, lt=1, allow_inf_nan=False)
    tau: float = Field(default=1e-3, gt=0, allow_inf_nan=False)

    def init(self, num_params: int) -> Moments:
        return Moments(frozen(np.zeros(num_params)), frozen(np.zeros(num_params)), 0)

    @abstractmethod
    def second_moment(self, previous: F64, squared: F64) -> F64:
        """``v_t`` from ``v_{t-1}`` and ``Delta_t ** 2``."""

    def learning_rate(self, rounds: int) -> float:
        """The step size of the ``rounds``-th update (1 for the first): eta unless corrected."""
        return self.eta

    def update(self, aggregate: Aggregate, state: Moments) -> tuple[Aggregate, Moments]:
        delta = aggregate.astype(np.float64)
        first = self.beta_1 * state.first + (1.0 - self.beta_1) * delta
        second = self.second_moment(state.second, delta**2)
        rounds = state.rounds + 1
        step = self.learning_rate(rounds) * first / (np.sqrt(second) + self.tau)
        return _step(step, aggregate), Moments(frozen(first), frozen(second), rounds)


@server_optimizer("fedadagrad")
class FedAdagrad(Adaptive):
    r"""FedAdagrad: the sum of squared pseudo-gradients scales each coordinate's step.

    .. math::

        m_t = \beta_1 m_{t-1} + (1 - \beta_1) \Delta_t, \quad
        v_t = v_{t-1} + \Delta_t^2, \quad
        x_{t+1} = x_t + \eta \frac{m_t}{\sqrt{v_t} + \tau}

    Parameters
    ----------
    eta : float, > 0, default 0.1
        The server learning rate.
    beta_1 : float, in [0, 1), default 0.0
        The first moment's decay.
    tau : float, > 0, default 0.001
        The adaptivity, added to the root of the second moment.

    Returns
    -------
    ndarray, shape (n_params,)
        The step, in the dtype of the aggregate (the moments are kept in float64).

    Notes
    -----
    Defaults are Flower's ``FedAdagrad``: eta = 0.1, beta_1 = 0 (no momentum), tau = 0.001;
    ``v_0 = 0`` as in Flower (Reddi et al. allow any ``v_{-1} >= 0``).

    References
    ----------
    .. [1] Reddi, Charles, Zaheer, Garrett, Rush, Konečný, Kumar, McMahan 2021, "Adaptive
       Federated Optimization", ICLR.

    Examples
    --------
    >>> import numpy as np
    >>> opt = FedAdagrad(tau=1.0)
    >>> step, state = opt.update(np.array([3.0]), opt.init(1))
    >>> step  # 0.1 * 3 / (3 + 1)
    array([0.075])
    """

    beta_1: float = Field(default=0.0, ge=0, lt=1, allow_inf_nan=False)

    def second_moment(self, previous: F64, squared: F64) -> F64:
        return previous + squared


@server_optimizer("fedadam")
class FedAdam(Adaptive):
    r"""FedAdam: Adam on the pseudo-gradient, with Flower's bias-corrected step size.

    .. math::

        m_t = \beta_1 m_{t-1} + (1 - \beta_1) \Delta_t, \quad
        v_t = \beta_2 v_{t-1} + (1 - \beta_2) \Delta_t^2, \quad
        x_{t+1} = x_t + \eta \frac{\sqrt{1 - \beta_2^{t+1}}}{1 - \beta_1^{t+1}}
        \frac{m_t}{\sqrt{v_t} + \tau}

    Parameters
    ----------
    eta : float, > 0, default 0.1
        The server learning rate.
    beta_1 : float, in [0, 1), default 0.9
        The first moment's decay.
    beta_2 : float, in [0, 1), default 0.99
        The second moment's decay.
    tau : float, > 0, default 0.001
        The adaptivity, added to the root of the second moment.

    Returns
    -------
    ndarray, shape (n_params,)
        The step, in the dtype of the aggregate (the moments are kept in float64).

    Notes
    -----
    Defaults are Flower's ``FedAdam``: eta = 0.1, beta_1 = 0.9, beta_2 = 0.99, tau = 0.001.
    The bias correction is Flower's, which raises the betas to ``server_round + 1``; here t
    counts the rounds this optimiser has stepped, so the two agree when no round was skipped.
    Reddi et al.'s Algorithm 2 has no bias correction, Kingma & Ba's uses the power t.

    References
    ----------
    .. [1] Reddi, Charles, Zaheer, Garrett, Rush, Konečný, Kumar, McMahan 2021, "Adaptive
       Federated Optimization", ICLR.

    Examples
    --------
    >>> import numpy as np
    >>> opt = FedAdam(eta=1.0, beta_1=0.5, beta_2=0.5, tau=1.0)
    >>> step, state = opt.update(np.array([2.0]), opt.init(1))
    >>> step  # m = 1, v = 2; sqrt(1 - 0.25) / (1 - 0.25) * 1 / (sqrt(2) + 1)
    array([0.47829262])
    """

    beta_2: float = Field(default=0.99, ge=0, lt=1, allow_inf_nan=False)

    def second_moment(self, previous: F64, squared: F64) -> F64:
        return self.beta_2 * previous + (1.0 - self.beta_2) * squared

    def learning_rate(self, rounds: int) -> float:
        power = rounds + 1.0
        return float(self.eta * np.sqrt(1 - self.beta_2**power) / (1 - self.beta_1**power))


@server_optimizer("fedyogi")
class FedYogi(Adaptive):
    r"""FedYogi: Adam whose second moment moves additively, by the sign of the gap.

    .. math::

        m_t = \beta_1 m_{t-1} + (1 - \beta_1) \Delta_t, \quad
        v_t = v_{t-1} - (1 - \beta_2) \Delta_t^2 \operatorname{sign}(v_{t-1} - \Delta_t^2),
        \quad x_{t+1} = x_t + \eta \frac{m_t}{\sqrt{v_t} + \tau}

    Parameters
    ----------
    eta : float, > 0, default 0.01
        The server learning rate.
    beta_1 : float, in [0, 1), default 0.9
        The first moment's decay.
    beta_2 : float, in [0, 1), default 0.99
        The second moment's decay.
    tau : float, > 0, default 0.001
        The adaptivity, added to the root of the second moment.

    Returns
    -------
    ndarray, shape (n_params,)
        The step, in the dtype of the aggregate (the moments are kept in float64).

    Notes
    -----
    Defaults are Flower's ``FedYogi``: eta = 0.01, beta_1 = 0.9, beta_2 = 0.99, tau = 0.001,
    and ``v_0 = 0``; no bias correction (as in Reddi et al. and Flower).

    References
    ----------
    .. [1] Reddi, Charles, Zaheer, Garrett, Rush, Konečný, Kumar, McMahan 2021, "Adaptive
       Federated Optimization", ICLR.

    Examples
    --------
    >>> import numpy as np
    >>> opt = FedYogi(eta=1.0, beta_1=0.5, beta_2=0.5, tau=1.0)
    >>> step, state = opt.update(np.array([2.0]), opt.init(1))
    >>> step  # m = 1, v = 0 + 0.5 * 4 = 2 (sign(0 - 4) = -1); 1 / (sqrt(2) + 1)
    array([0.41421356])
    """

    eta: float = Field(default=0.01, gt=0, allow_inf_nan=False)
    beta_2: float = Field(default=0.99, ge=0, lt=1, allow_inf_nan=False)

    def second_moment(self, previous: F64, squared: F64) -> F64:
        sign: F64 = np.sign(previous - squared)
        return previous - (1.0 - self.beta_2) * squared * sign
