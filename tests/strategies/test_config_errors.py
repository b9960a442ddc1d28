"""Error paths: bounds name the rule, n and the bound; bad parameters name the field."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
from golden_helpers import ones

import strategies
from common.errors import AggregationError, ConfigError


@pytest.mark.parametrize(
    ("name", "params", "needed", "bound"),
    [
        ("krum", {"num_byzantine": 2}, 7, "(n >= 2f+3)"),
        ("multi_krum", {"num_byzantine": 1, "num_selected": 6}, 7, "(n >= max(2f+3, m+f))"),
        ("bulyan", {"num_byzantine": 2}, 11, "(n >= 4f+3)"),
        ("trimmed_mean", {"num_trimmed": 3}, 7, "(n >= 2b+1)"),
    ],
)
def test_bound_violation_names_rule_n_and_bound(
    name: str, params: dict[str, Any], needed: int, bound: str
) -> None:
    rule = strategies.get_aggregator(name, **params)
    assert rule.min_clients() == needed
    with pytest.raises(
        AggregationError, match=rf"^{name}: received n={needed - 1} .*{re.escape(bound)}$"
    ):
        rule(np.zeros((needed - 1, 3)), ones(needed - 1))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_byzantin": 1}, r"^defense\.params\.num_byzantin: unknown key"),
        (
            {"num_byzantine": -1},
            r"^defense\.params\.num_byzantine: got -1; .*greater than or equal to 0",
        ),
        ({"num_byzantine": "two"}, r"^defense\.params\.num_byzantine: got 'two'"),
    ],
)
def test_bad_rule_params_raise_one_line_config_error(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        strategies.get_aggregator("krum", **kwargs)
    assert "\n" not in str(err.value)


def test_out_of_range_params_of_other_rules() -> None:
    with pytest.raises(ConfigError, match=r"defense\.params\.max_norm: got 0\.0"):
        strategies.get_aggregator("norm_bounding", max_norm=0.0)
    with pytest.raises(ConfigError, match=r"defense\.params\.radius: required field is missing"):
        strategies.get_aggregator("centered_clipping")
    with pytest.raises(ConfigError, match=r"defense\.params\.num_selected: got 0"):
        strategies.get_aggregator("multi_krum", num_selected=0)
    with pytest.raises(ConfigError, match=r"defense\.params\.smoothing: got nan"):
        strategies.get_aggregator("geometric_median", smoothing=float("nan"))


def test_chain_errors_name_the_field_path() -> None:
    with pytest.raises(ConfigError, match=r"^defense\.pre\[1\]\.params\.bucket_size: got 0"):
        strategies.build_chain(
            "median", {}, [("clip", {"max_norm": 1.0}), ("bucketing", {"bucket_size": 0})]
        )
    with pytest.raises(
        ConfigError,
        match=r"^defense\.pre\[0\]\.name: unknown pre-aggregator 'nmm'; "
        r"valid: bucketing, clip, nnm$",
    ):
        strategies.build_chain("median", {}, [("nmm", {})])
    with pytest.raises(
        ConfigError, match=r"^defense\.aggregator: unknown aggregator 'krun'; valid: .*krum"
    ):
        strategies.build_chain("krun", {})
    with pytest.raises(ConfigError, match=r"^scenario\.defense\.params\.num_trimmed: got -1"):
        strategies.build_chain("trimmed_mean", {"num_trimmed": -1}, where="scenario.defense")


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("dnc", {"niters": 5}, r"^defense\.params\.niters: unknown key"),
        (
            "dnc",
            {"num_iterations": 0},
            r"^defense\.params\.num_iterations: got 0; .*greater than or equal to 1$",
        ),
        ("dnc", {"subsample_dim": 0}, r"^defense\.params\.subsample_dim: got 0; "),
        ("dnc", {"filter_fraction": -0.5}, r"^defense\.params\.filter_fraction: got -0\.5; "),
        ("dnc", {"filter_fraction": float("inf")}, r"^defense\.params\.filter_fraction: got inf"),
        ("signguard", {"selection_fraction": 0.0}, r"^defense\.params\.selection_fraction: got 0"),
        ("signguard", {"selection_fraction": 1.5}, r"^defense\.params\.selection_fraction: got 1"),
        ("signguard", {"lower_bound": -0.1}, r"^defense\.params\.lower_bound: got -0\.1; "),
        (
            "signguard",
            {"upper_bound": 0.05},
            r"^defense\.params\.upper_bound: got 0\.05; .*must exceed lower_bound \(0\.1\)$",
        ),
        (
            "signguard",
            {"lower_bound": 2.0, "upper_bound": 2.0},
            r"^defense\.params\.upper_bound: got 2\.0; .*must exceed lower_bound \(2\.0\)$",
        ),
        ("signguard", {"num_byzantine": 1}, r"^defense\.params\.num_byzantine: unknown key"),
    ],
)
def test_bad_filtering_params_raise_one_line_config_error(
    name: str, params: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        strategies.get_aggregator(name, **params)
    assert "\n" not in str(err.value)


def test_membership_in_a_registry_is_a_question_not_an_error() -> None:
    assert "krum" in strategies.AGGREGATORS
    assert "krun" not in strategies.AGGREGATORS  # no ConfigError from the lookup
    assert 3 not in strategies.AGGREGATORS
