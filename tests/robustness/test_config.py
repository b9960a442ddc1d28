"""The [robustness] section: defaults change nothing, a bad value fails in one line."""

from __future__ import annotations

import pytest

from common.errors import ConfigError
from scenarios.loader import load_scenario


def test_defaults_leave_training_and_evaluation_as_they_were() -> None:
    robustness = load_scenario("quickstart").robustness
    assert not robustness.enabled and not robustness.training.enabled
    assert not robustness.distillation.enabled
    assert robustness.alpha == pytest.approx(2.5 * 0.1 / 10)  # Madry et al.'s step


@pytest.mark.parametrize(
    ("override", "line"),
    [
        ("robustness.epsilon=2.0", "robustness.epsilon"),
        ('robustness.training.method="cw"', "robustness.training.method"),
        ("robustness.training.ratio=1.5", "robustness.training.ratio"),
        ("robustness.num_examples=10", "robustness.num_examples: got 10; needs robustness.every"),
        (
            "robustness.distillation.student=resnet",
            "robustness.distillation.student: unknown model 'resnet'",
        ),
    ],
)
def test_a_bad_value_names_its_field(override: str, line: str) -> None:
    overrides = [override]
    if "student" in override:
        overrides.append("robustness.distillation.enabled=true")
    with pytest.raises(ConfigError) as info:
        load_scenario("quickstart", overrides)
    message = str(info.value)
    assert line in message and "\n" not in message
