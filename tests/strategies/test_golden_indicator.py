"""BackdoorIndicator (Li & Dai 2024) by hand: the per-label indicator accuracy of each returned
model, its maximum against the threshold, and the unweighted mean of the rows under it."""

from __future__ import annotations

import numpy as np
import pytest
from golden_helpers import ones
from numpy.typing import NDArray

import strategies
from common.errors import AggregationError, ConfigError
from strategies import Inspection, Layout
from strategies.indicator import indicator

DENSE = Layout(((2, 2), (2,)))  # softmax regression: 2 inputs, 2 classes
PLANTED = np.array([1.0, 0.0, 0.0, 1.0, 0.0, 0.0])  # kernel I, bias 0: the broadcast model
# The indicator set: (1, 0) and (2, 0) labelled 0, (0, 1) and (0, 3) labelled 1. The planted
# model's logits are x itself: it classifies all four right.
POINTS = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
LABELS = np.array([0, 0, 1, 1])


def softmax_regression_indicator(updates: NDArray[np.float64]) -> NDArray[np.float64]:
    """Per-label accuracy of ``PLANTED + row`` on the indicator set (what the server runs)."""
    out = np.empty((len(updates), 2))
    for i, row in enumerate(updates):
        w = PLANTED + row
        predicted = (POINTS @ w[:4].reshape(2, 2) + w[4:]).argmax(axis=1)
        out[i] = [np.mean(predicted[k == LABELS] == k) for k in (0, 1)]
    return out


# Row A swaps the kernel (K = [[0, 1], [1, 0]]): all four wrong, accuracies (0, 0).
# Row B sets K = [[1, 0], [0, -1.5]]: l0 - l1 = x0 + 1.5 x1 > 0, all predicted 0: (1, 0).
# Row C sets K = [[1, 0], [2, 0]], b = (-1.5, 0): l0 - l1 = x0 + 2 x1 - 1.5, so (1, 0) -> 1,
#   (2, 0) -> 0, (0, 1) -> 0, (0, 3) -> 0: label 0 half right, label 1 never: (0.5, 0).
# Row D changes nothing: the planted task is intact, (1, 1).
ROWS = np.array(
    [
        [-1.0, 1.0, 1.0, -1.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, -2.5, 0.0, 0.0],
        [0.0, 0.0, 2.0, -1.0, -1.5, 0.0],
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    ]
)


def test_the_probe_computes_the_hand_accuracies() -> None:
    expected = [[0.0, 0.0], [1.0, 0.0], [0.5, 0.0], [1.0, 1.0]]
    np.testing.assert_array_equal(softmax_regression_indicator(ROWS), expected)


def test_rows_keeping_a_labels_indicator_are_dropped_and_the_rest_averaged() -> None:
    # max_k a: (0, 1, 0.5, 1) against 0.95: B (the backdoor-like row, label 0 kept) and D are
    # flagged; the aggregate is the plain mean of A and C.
    rule = strategies.get_aggregator("indicator")
    inspection = Inspection(DENSE, indicator=softmax_regression_indicator)
    out = rule(ROWS, ones(4), inspection=inspection)
    np.testing.assert_allclose(out, [-0.5, 0.5, 1.5, -1.0, -0.75, 0.0], rtol=0, atol=1e-15)
    # threshold 0.5: C (max 0.5) is flagged too, only A is left
    strict = strategies.get_aggregator("indicator", threshold=0.5)
    np.testing.assert_array_equal(strict(ROWS, ones(4), inspection=inspection), ROWS[0])


def test_threshold_is_inclusive_counts_are_ignored_and_all_flagged_keeps_the_model() -> None:
    x = np.array([[1.0, 2.0], [3.0, 4.0], [10.0, 10.0], [5.0, 6.0]])
    acc = np.array([[0.5, 0.3, 0.1], [0.2, 0.94, 0.0], [0.96, 0.1, 0.0], [0.95, 0.2, 0.3]])
    # BackFed: benign iff max accuracy < threshold, so 0.95 is flagged; unweighted mean
    np.testing.assert_array_equal(indicator(x, acc, threshold=0.95), [2.0, 3.0])
    np.testing.assert_array_equal(indicator(x, acc, threshold=0.2), [0.0, 0.0])
    rule = strategies.get_aggregator("indicator")
    inspection = Inspection(Layout(((2,),)), indicator=lambda u: acc)
    counts = np.array([1, 100, 1, 1], dtype=np.int64)
    np.testing.assert_array_equal(rule(x, counts, inspection=inspection), [2.0, 3.0])


def test_the_rule_needs_the_planted_probe_and_declares_its_task() -> None:
    rule = strategies.get_aggregator("indicator", threshold=0.8)
    task = rule.indicator_task()
    assert rule.needs_layout() and task is not None and task.threshold == 0.8
    assert strategies.get_aggregator("deepsight").indicator_task() is None
    with pytest.raises(AggregationError, match=r"^indicator: needs inspection\.indicator"):
        rule(ROWS, ones(4), inspection=Inspection(DENSE))
    with pytest.raises(AggregationError, match=r"accuracies of shape \(3, 2\) for 4 updates"):
        rule(ROWS, ones(4), inspection=Inspection(DENSE, indicator=lambda u: np.zeros((3, 2))))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"threshold": 0.0}, r"defense\.params\.threshold: got 0\.0"),
        ({"threshold": 95}, r"defense\.params\.threshold: got 95"),
        ({"num_samples": 10, "batch_size": 64}, r"batch_size: .*at most num_samples \(10\)"),
        ({"milestones": [20, 10]}, r"milestones: .*strictly increasing"),
        ({"momentum": 1.0}, r"defense\.params\.momentum: got 1\.0"),
        ({"watermarking_mu": 0.1}, r"defense\.params\.watermarking_mu: unknown key"),
    ],
)
def test_bad_parameters_fail_in_one_line(params: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        strategies.get_aggregator("indicator", **params)
    assert "\n" not in str(err.value)
