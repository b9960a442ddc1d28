"""Robust learning rate (Ozdayi, Kantarcioglu, Gel 2021): a per-coordinate sign vote of the
updates; where too few clients agree on the sign, the server's learning rate is negated."""

from __future__ import annotations

import math

import numpy as np
from pydantic import Field

from strategies import _math
from strategies.averaging import average_weights
from strategies.base import Aggregate, Counts, StatelessRule, Updates
from strategies.params import Weighting
from strategies.registries import aggregator


def sign_agreement(updates: Updates) -> _math.F64:
    """``|sum_i sgn(x_i)|`` per coordinate, in float64: ``(d,)`` (a zero entry votes 0)."""
    votes = np.zeros(updates.shape[1], dtype=np.float64)
    for row in updates:  # row by row: no (n, d) array of signs
        votes += np.sign(row)
    return np.abs(votes)


def robust_lr(
    updates: Updates, num_examples: Counts, *, threshold: float, weighted: bool
) -> Aggregate:
    """``eta ⊙ sum_i w_i x_i`` with ``eta_c = +1`` where at least ``threshold`` more clients
    agree on coordinate c's sign than disagree, else ``-1`` (see :class:`RobustLR`)."""
    mean = _math.mix(average_weights(num_examples, weighted=weighted), updates)
    negated = sign_agreement(updates) < threshold
    return np.where(negated, -mean, mean)


@aggregator("robustlr", kind="average")
class RobustLR(StatelessRule, Weighting):
    r"""Robust learning rate: FedAvg with the server's learning rate negated on every
    coordinate where the clients' sign vote is not decisive.

    .. math::

        \eta_c = \begin{cases} +1 & \text{if } \left|\sum_{i=1}^{n}
        \operatorname{sgn}(x_{i,c})\right| \ge \theta \\ -1 & \text{otherwise}
        \end{cases}, \qquad \bar x = \eta \odot \sum_{i=1}^{n} w_i x_i

    with :math:`w_i` as in FedAvg. A backdoor lives in coordinates that only the poisoners
    push; there the honest clients' signs scatter, the vote falls under theta and the step
    is reversed, moving the model away from the backdoor.

    Parameters
    ----------
    threshold : float, >= 0, default 4
        theta: the least margin ``|#positive - #negative|`` of signs for the step to be kept
        (the authors' Fashion-MNIST value for 10 clients; it should exceed the number of
        poisoners and stay at most the number of honest clients). 0 is FedAvg.
    weighted : bool, default True
        Weight by the self-reported example counts (the authors' ``agg_avg``), as
        :class:`FedAvg`.

    Returns
    -------
    ndarray, shape (n_params,)
        The aggregate, in the dtype of the updates.

    Notes
    -----
    As the authors' ``compute_robustLR`` (TinfoilHat0/Defending-Against-Backdoors-with-Robust-
    Learning-Rate ``src/aggregation.py``) and BackFed's ``RobustLRServer``. Deviations: the
    server learning rate's magnitude is 1 (the authors' default ``server_lr``; BackFed's
    ``eta = 0.1``): a step size belongs to the server optimiser after the rule; the vote is
    over all coordinates (BackFed skips tensors named neither weight nor bias, which the
    Keras models here do not have); the base aggregate is the mean only (the authors also
    offer the coordinate-wise median and signSGD). Bound: n >= theta, since with fewer
    clients every coordinate's rate is negated.

    References
    ----------
    .. [1] Ozdayi, Kantarcioglu, Gel 2021, "Defending against Backdoors in Federated Learning
       with Robust Learning Rate", AAAI.

    Examples
    --------
    >>> import numpy as np, strategies
    >>> rule = strategies.get_aggregator("robustlr", threshold=2, weighted=False)
    >>> x = np.array([[1.0, 1.0], [1.0, -1.0], [1.0, 2.0]])  # votes |3| and |1|
    >>> rule(x, np.ones(3, dtype=np.int64))  # mean (1, 2/3); the second coordinate reversed
    array([ 1.        , -0.66666667])
    """

    bound = "n >= theta; theta above the number of poisoners, at most the honest clients"
    threshold: float = Field(default=4.0, ge=0, allow_inf_nan=False)

    def min_clients(self) -> int:
        return max(1, math.ceil(self.threshold))

    def aggregate(self, updates: Updates, num_examples: Counts) -> Aggregate:
        return robust_lr(updates, num_examples, threshold=self.threshold, weighted=self.weighted)
