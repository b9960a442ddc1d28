"""The attack success rate, its untriggered baseline and the part above it, on real models."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from attacks import attack_plan
from common.data.shards import dataset_of
from scenarios.loader import load_scenario
from server.evaluation import Evaluator

TARGET = 0


def _evaluator(attack: list[str]) -> Evaluator:
    s = load_scenario("quickstart", ["attack.malicious=1", *attack])
    data = dataset_of(s)
    success = attack_plan(s.attack).success_set(data.x_test, data.y_test)
    return Evaluator(model_name=s.model.name, dataset=data, success_set=success)


def _weights(trigger_detector: bool) -> list[NDArray[np.float32]]:
    """An MLP for 8x8 digits whose output is class 1, or class 0 when the detector fires.

    Hidden unit 0 is ``relu(sum of the 3x3 trigger patch - 8.9)`` (rows and columns 4-6):
    positive only when the 9 pixels are all about 1, as the trigger sets them and no digit
    does; the output logit of class 0 is 100x that unit. Without the detector the model says
    0 for every image (a collapsed model).
    """
    kernel = np.zeros((64, 64), np.float32)
    patch = np.zeros((8, 8), np.float32)
    patch[4:7, 4:7] = 1.0
    kernel[:, 0] = patch.ravel()
    hidden_bias = np.zeros(64, np.float32)
    hidden_bias[0] = -8.9
    head = np.zeros((64, 10), np.float32)
    head[0, TARGET] = 100.0 if trigger_detector else 0.0
    bias = np.zeros(10, np.float32)
    bias[1 if trigger_detector else TARGET] = 1.0
    return [kernel, hidden_bias, head, bias]


def test_backdoor_rate_is_reported_raw_against_its_baseline_and_above_it() -> None:
    evaluator = _evaluator(['attack.type="backdoor"', f"attack.params={{target={TARGET}}}"])
    # A model that learned the trigger: every triggered image -> 0, no clean image -> 0.
    learned = evaluator.evaluate(_weights(trigger_detector=True))
    assert learned["attack_success_rate"] == 1.0
    assert learned["attack_success_baseline"] == 0.0
    assert learned["attack_success_above_baseline"] == 1.0
    # A collapsed model that says 0 for everything: raw rate 1, but nothing above the baseline.
    collapsed = evaluator.evaluate(_weights(trigger_detector=False))
    assert collapsed["attack_success_rate"] == 1.0
    assert collapsed["attack_success_baseline"] == 1.0
    assert collapsed["attack_success_above_baseline"] == 0.0
    # Clean accuracy of the collapsed model is the share of class 0 in the test set.
    share = float(np.mean(evaluator.dataset.y_test == TARGET))
    assert abs(collapsed["accuracy"] - share) < 1e-6


def test_label_flip_has_no_input_change_so_only_the_raw_rate() -> None:
    evaluator = _evaluator(['attack.type="label_flip"', 'attack.params={mode="all_to_one"}'])
    assert evaluator.success_keys() == ["attack_success_rate"]
    result = evaluator.evaluate(_weights(trigger_detector=False))
    assert result["attack_success_rate"] == 1.0 and "attack_success_baseline" not in result


def test_non_finite_weights_report_every_rate_as_nan() -> None:
    evaluator = _evaluator(['attack.type="backdoor"'])
    weights = _weights(trigger_detector=True)
    weights[3][0] = np.nan
    result = evaluator.evaluate(weights)
    assert result["accuracy"] == 0.0
    keys = ["attack_success_rate", "attack_success_baseline", "attack_success_above_baseline"]
    assert all(np.isnan(result[k]) for k in keys)


def test_compiled_scores_equal_keras_evaluate_on_a_trained_and_a_random_model() -> None:
    # The traced (loss sum, hits) per batch must give what Keras's evaluate reports, also when
    # the test set is not a multiple of the batch size (360 images, batches of 256 and 7).
    s = load_scenario("quickstart", [])
    data = dataset_of(s)
    for batch_size in (256, 7):
        evaluator = Evaluator(
            model_name="mlp", dataset=data, success_set=None, batch_size=batch_size
        )
        rng = np.random.default_rng(batch_size)
        random = [
            rng.normal(0, 0.3, w.shape).astype(np.float32) for w in evaluator.model.get_weights()
        ]
        for weights in (random, _weights(trigger_detector=True)):
            result = evaluator.evaluate(weights)
            loss, accuracy = evaluator.model.evaluate(data.x_test, data.y_test, verbose=0)
            assert result["accuracy"] == pytest.approx(accuracy, rel=1e-6)  # Keras: float32
            assert result["loss"] == pytest.approx(loss, rel=1e-5)
            assert 0.0 < result["accuracy"] < 1.0
