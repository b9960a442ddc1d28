"""DPConfig: defaults, bounds and the one-line errors of the ``[dp]`` table."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from common.dp_config import DPConfig
from common.errors import ConfigError
from common.validation import one_line


def test_defaults_are_off_poisson_and_tight_microbatches() -> None:
    config = DPConfig()
    assert (config.enabled, config.mode, config.sampling) == (False, "local", "poisson")
    assert config.num_microbatches is None and config.microbatch_size(32) == 1


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"l2_norm_clip": 0.0}, "dp.l2_norm_clip: got 0.0; Input should be greater than 0"),
        ({"noise_multiplier": -0.1}, "dp.noise_multiplier: got -0.1;"),
        ({"delta": 1.0}, "dp.delta: got 1.0; Input should be less than 1"),
        ({"mode": "global"}, "dp.mode: got 'global';"),
        ({"sampling": "stratified"}, "dp.sampling: got 'stratified';"),
        ({"clip": 1.0}, "dp.clip: unknown key"),
        (
            {"num_microbatches": 4},
            "dp.num_microbatches: got 4; must be unset (one example per microbatch) with "
            'dp.sampling = "poisson"',
        ),
    ],
)
def test_bad_fields_fail_in_one_line_naming_the_field(
    fields: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        DPConfig.model_validate(fields)
    line = one_line(caught.value, "dp")
    assert line.startswith(message) and "\n" not in line


def test_microbatch_size_divides_the_batch_or_raises() -> None:
    config = DPConfig(sampling="shuffle", num_microbatches=8)
    assert config.microbatch_size(32) == 4
    with pytest.raises(
        ConfigError, match=r"^dp.num_microbatches: got 8; must divide train.batch_size \(30\)$"
    ):
        config.microbatch_size(30)


def test_config_is_frozen() -> None:
    with pytest.raises(ValidationError):
        DPConfig().enabled = True  # type: ignore[misc]


def test_every_field_is_documented() -> None:
    undocumented = [name for name, info in DPConfig.model_fields.items() if not info.description]
    assert undocumented == []
