"""Robust learning rate (Ozdayi et al. 2021) by hand: the sign vote, its threshold, the
weighted mean it reverses, and the poisoners it stops (and those it cannot)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from golden_helpers import ones

import strategies
from common.errors import AggregationError, ConfigError

# Four honest clients agree on coordinate 0 and split on coordinate 1; one poisoner pushes
# coordinate 1 alone. Votes: coordinate 0 |+1 +1 +1 +1 0| = 4, coordinate 1 |+ - + - +| = 1.
X = np.array([[1.0, 0.1], [2.0, -0.1], [1.0, 0.1], [2.0, -0.1], [0.0, 5.0]])


@pytest.mark.parametrize(
    ("threshold", "expected"),
    [
        (0.0, [1.2, 1.0]),  # FedAvg: (6/5, 5/5)
        (3.0, [1.2, -1.0]),  # 4 >= 3 kept, 1 < 3 reversed
        (4.0, [1.2, -1.0]),  # a vote equal to theta is kept (the authors' >=)
        (5.0, [-1.2, -1.0]),  # 4 < 5: both reversed
    ],
)
def test_coordinates_under_the_threshold_are_reversed(
    threshold: float, expected: list[float]
) -> None:
    rule = strategies.get_aggregator("robustlr", threshold=threshold, weighted=False)
    np.testing.assert_allclose(rule(X, ones(5)), expected, rtol=1e-12)


def test_the_mean_is_weighted_by_the_example_counts() -> None:
    # weights 1/8 x 4 and 4/8: coordinate 0 = (1 + 2 + 1 + 2) / 8 = 0.75; coordinate 1 =
    # (0.1 - 0.1 + 0.1 - 0.1) / 8 + 5 / 2 = 2.5, reversed. The vote itself ignores the counts.
    out = strategies.get_aggregator("robustlr", threshold=3.0)(X, np.array([1, 1, 1, 1, 4]))
    np.testing.assert_allclose(out, [0.75, -2.5], rtol=1e-12)


@pytest.mark.parametrize("poisoners", [1, 2, 3])
def test_poisoners_fewer_than_theta_push_the_model_away_from_their_backdoor(
    poisoners: int,
) -> None:
    # The adversary: m poisoners who know the rule and theta, and send +b on a backdoor
    # coordinate that the 7 honest clients (updates h on coordinate 0) leave at 0. The vote
    # there is m < theta = 4: the step is -m b / n, against the backdoor, while the honest
    # coordinate (7 agreeing votes) keeps the mean's sign.
    n, b, h = 7 + poisoners, 3.0, 0.5
    x = np.array([[h, 0.0]] * 7 + [[0.0, b]] * poisoners)
    out = strategies.get_aggregator("robustlr", weighted=False)(x, ones(n))
    np.testing.assert_allclose(out, [7 * h / n, -poisoners * b / n], rtol=1e-12)


def test_as_many_poisoners_as_theta_pass() -> None:
    # The limit of the defense: 4 colluding poisoners reach the vote of theta = 4.
    x = np.array([[0.5, 0.0]] * 6 + [[0.0, 3.0]] * 4)
    out = strategies.get_aggregator("robustlr", weighted=False)(x, ones(10))
    np.testing.assert_allclose(out, [0.3, 1.2], rtol=1e-12)


def test_fewer_clients_than_theta_is_refused() -> None:
    rule = strategies.get_aggregator("robustlr", threshold=4.5)
    assert rule.min_clients() == 5
    with pytest.raises(AggregationError, match=r"^robustlr: received n=4 .*n >= theta"):
        rule(np.ones((4, 2)), ones(4))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"threshold": -1.0}, r"^defense\.params\.threshold: got -1\.0; .*greater than or equal"),
        ({"threshold": float("nan")}, r"^defense\.params\.threshold: got nan"),
        ({"theta": 4}, r"^defense\.params\.theta: unknown key"),
    ],
)
def test_bad_parameters_raise_one_line_config_error(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        strategies.get_aggregator("robustlr", **params)
    assert "\n" not in str(err.value)
