"""BackdoorIndicator (Li & Dai, USENIX Security 2024): the server plants an indicator task in
the global model before it is sent; a returned model that still solves it for some label is
taken for a backdoored one and left out of the average.

The numpy half: the server (``server/indicator.py``) plants the task and, for each row, runs
the model ``G + x_i`` on the indicator set and hands back its per-label accuracies; this module
turns those accuracies into the accepted set and the aggregate.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from pydantic import Field, ValidationInfo, field_validator

from common.errors import AggregationError
from strategies import _math
from strategies.base import Aggregate, Counts, Updates
from strategies.layout import InspectingRule, Inspection
from strategies.registries import aggregator


def retained(accuracies: NDArray[np.float64]) -> NDArray[np.float64]:
    """``(n,)``: each row's best per-label indicator accuracy, :math:`\\max_k a_{i,k}`."""
    return np.asarray(accuracies.max(axis=1), dtype=np.float64)


def indicator(updates: Updates, accuracies: NDArray[np.float64], *, threshold: float) -> Aggregate:
    """Unweighted mean of the rows whose best per-label indicator accuracy is below
    ``threshold`` (see :class:`Indicator`); zero when every row is flagged."""
    if accuracies.shape[0] != updates.shape[0] or accuracies.ndim != 2:
        raise AggregationError(
            f"indicator: got accuracies of shape {accuracies.shape} for {updates.shape[0]} updates"
        )
    accepted = retained(accuracies) < threshold
    if not accepted.any():
        return np.zeros(updates.shape[1], dtype=updates.dtype)
    return _math.mix(accepted / accepted.sum(), updates)


@aggregator("indicator", kind="filtering", needs="the server plants an indicator task")
class Indicator(InspectingRule):
    r"""BackdoorIndicator: plant an indicator task (out-of-distribution inputs with assigned
    labels) in the global model before broadcast; flag every returned model that still solves
    it for some label, and average the others.

    .. math::

        a_{i,k} = \frac{\#\{(x, k) \in D_{\mathrm{ind}} :
                  \arg\max f_{G + x_i}(x) = k\}}{\#\{(x, k) \in D_{\mathrm{ind}}\}}, \qquad
        A = \{ i : \max_k a_{i,k} < \tau \}, \qquad
        \bar x = \frac{1}{|A|} \sum_{i \in A} x_i

    with :math:`G` the planted global model that was broadcast, :math:`D_{\mathrm{ind}}` the
    indicator set (OOD inputs, labels assigned evenly over the classes) and :math:`\tau` the
    threshold. Planting (server side): SGD from the global model :math:`w_g` on
    :math:`\mathrm{CE}(D_{\mathrm{ind}}) + \frac{\mu}{2} \lVert w - w_g \rVert_2` with momentum,
    L2 weight decay and a multi-step learning-rate schedule, stopped early when the epoch
    loss moves less than 1e-3 for 10 epochs. Why it works: benign training on in-distribution
    data washes the indicator out; a backdoor (also OOD, with one target label) keeps the
    indicator of that label alive.

    Parameters
    ----------
    threshold : float, in (0, 1], default 0.95
        :math:`\tau`: a row whose best per-label indicator accuracy reaches it is flagged
        (BackFed's ``VWM_detection_threshold`` 95, in percent).
    num_samples : int, >= 1, default 800
        Indicator inputs (``ood_data_sample_lens``).
    batch_size : int, >= 1, default 64
        Planting batch; the last incomplete batch is dropped, as BackFed does.
    epochs : int, >= 1, default 200
        Most planting epochs (``global_retrain_no_times``).
    learning_rate : float, > 0, default 0.005
    momentum : float, in [0, 1), default 0.9
    weight_decay : float, >= 0, default 5e-4
        Coupled L2 (PyTorch SGD's ``weight_decay``): ``wd * w`` is added to the gradient.
    mu : float, >= 0, default 0.1
        :math:`\mu`, the pull towards the global model (``watermarking_mu``).
    milestones : tuple of int, default (10, 20, 30, 160, 200, 240, 280, 320, 360)
        Epochs at which the learning rate is multiplied by ``lr_gamma``.
    lr_gamma : float, in (0, 1], default 0.8

    Returns
    -------
    ndarray, shape (n_params,)
        The unweighted mean of the accepted rows in the dtype of the updates; zero (the
        global model is kept) when every row is flagged.

    Notes
    -----
    As BackFed's ``IndicatorServer`` (after the authors' ``IndicatorServer.py``): per-label
    accuracy, its maximum over the labels against the threshold, the unweighted mean of the
    rest. Deviations: the indicator set is ``common.data.synthetic`` images (blurred-noise
    class prototypes) in the data set's input shape, drawn from the scenario seed, since the
    scenarios run offline (BackFed samples CIFAR-10/100 or EMNIST); the task is planted every
    round from round 1 (BackFed's rounds 1000-13000 count from a pre-trained checkpoint); the
    server step is the mean itself (BackFed's ``eta`` is fedshield's server optimiser); the
    threshold is a fraction; fedshield's models have no BatchNorm, so BackFed's restoring of
    the running statistics does not arise; the projection (off in BackFed) is left out.
    Bound: none on n; the backdoor must keep the indicator of its target label.

    References
    ----------
    .. [1] Li, Dai 2024, "BackdoorIndicator: Leveraging OOD Data for Proactive Backdoor
       Detection in Federated Learning", USENIX Security.

    Examples
    --------
    >>> import numpy as np, strategies
    >>> layout = strategies.Layout(((2,),))
    >>> acc = lambda x: np.array([[0.5, 0.2], [1.0, 0.1], [0.3, 0.9]])  # row 1: label 0 kept
    >>> rule = strategies.get_aggregator("indicator")
    >>> x = np.array([[1.0, 1.0], [9.0, 9.0], [3.0, 3.0]])
    >>> rule(x, np.ones(3, dtype=np.int64), inspection=strategies.Inspection(layout, indicator=acc))
    array([2., 2.])
    """

    bound = "none; a backdoor must keep its label's indicator"
    threshold: float = Field(default=0.95, gt=0.0, le=1.0, allow_inf_nan=False)
    num_samples: int = Field(default=800, ge=1)
    batch_size: int = Field(default=64, ge=1)
    epochs: int = Field(default=200, ge=1)
    learning_rate: float = Field(default=0.005, gt=0.0, allow_inf_nan=False)
    momentum: float = Field(default=0.9, ge=0.0, lt=1.0)
    weight_decay: float = Field(default=5e-4, ge=0.0, allow_inf_nan=False)
    mu: float = Field(default=0.1, ge=0.0, allow_inf_nan=False)
    milestones: tuple[int, ...] = (10, 20, 30, 160, 200, 240, 280, 320, 360)
    lr_gamma: float = Field(default=0.8, gt=0.0, le=1.0)

    @field_validator("batch_size")
    @classmethod
    def _fits_the_set(cls, value: int, info: ValidationInfo) -> int:
        samples = info.data.get("num_samples")
        if samples is not None and value > samples:
            raise ValueError(f"batch_size must be at most num_samples ({samples})")
        return value

    @field_validator("milestones")
    @classmethod
    def _increasing(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(m < 1 for m in value) or list(value) != sorted(set(value)):
            raise ValueError("milestones must be strictly increasing epochs >= 1")
        return value

    def update_inspected(
        self, updates: Updates, num_examples: Counts, *, inspection: Inspection
    ) -> Aggregate:
        if inspection.indicator is None:
            raise AggregationError(
                "indicator: needs inspection.indicator (the planted task's probe), got none"
            )
        return indicator(updates, inspection.indicator(updates), threshold=self.threshold)
