"""IntegrityConfig: documented defaults, one-line errors naming field, value and what is allowed."""

from __future__ import annotations

import math
import tomllib

import pytest

from common.errors import ConfigError
from common.integrity_config import IntegrityConfig
from scenarios.loader import load_scenario, validate_document

BASE = load_scenario("quickstart").model_dump(mode="json")


def parse_integrity_config(raw: dict[str, object]) -> IntegrityConfig:
    """The ``[integrity]`` table of a scenario file, validated the way every scenario is."""
    return validate_document({**BASE, "integrity": raw}).integrity


def test_defaults_are_off_and_strict() -> None:
    config = parse_integrity_config({})
    assert config == IntegrityConfig()
    assert not config.enabled and not config.watermark.enabled
    assert (config.signature, config.base_digest, config.shape, config.non_finite) == (
        "reject", "reject", "reject", "reject"
    )  # fmt: skip
    # Once enabled, the gate defends by default: a robust norm ratio and the shard-size claim.
    assert (config.max_norm_ratio, config.norm, config.num_examples) == (3.0, "reject", "reject")
    # The absolute cap has no scale-free default; the cosine rule misfires on non-IID shards.
    assert config.max_norm is None and config.cosine_min is None


def test_the_norm_ratio_can_be_switched_off_from_toml() -> None:
    # TOML has no null: ``max_norm_ratio = inf`` is the way to switch the cap off.
    document = tomllib.loads("max_norm_ratio = inf")
    assert parse_integrity_config(document).max_norm_ratio == math.inf


def test_nested_watermark_table_is_parsed() -> None:
    raw = {"enabled": True, "watermark": {"enabled": True, "num_triggers": 50}}
    config = parse_integrity_config(raw)
    assert config.watermark.num_triggers == 50 and config.watermark.target_accuracy == 0.98


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"shape": "flag"}, "integrity.shape: got 'flag'"),
        ({"non_finite": "flag"}, "integrity.non_finite: got 'flag'"),
        ({"signature": "ignore"}, "integrity.signature: got 'ignore'"),
        ({"max_norm": 0.0}, "integrity.max_norm: got 0.0"),
        ({"max_norm_ratio": 0.5}, "integrity.max_norm_ratio: got 0.5"),
        ({"cosine_min": 1.0}, "integrity.cosine_min: got 1.0"),
        ({"quarantine_rounds": 0}, "integrity.quarantine_rounds: got 0"),
        ({"watermark": {"num_triggers": 0}}, "integrity.watermark.num_triggers: got 0"),
        ({"max_nrom": 3.0}, "integrity.max_nrom: unknown key"),
        ({"num_examples": "ignore"}, "integrity.num_examples: got 'ignore'"),
    ],
)
def test_bad_values_fail_in_one_line(raw: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_integrity_config(raw)
    message = str(caught.value)
    assert message.startswith(fragment)
    assert "\n" not in message
