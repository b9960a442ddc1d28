"""Distillation: Hinton et al.'s loss pinned by hand, and a student that learns the teacher."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from common.data.datasets import Dataset
from common.robustness_config import Distillation
from scenarios.loader import load_scenario
from server.distillation import distillation_loss, distillation_report, soften


def test_soften_is_the_temperature_softmax_of_the_logits() -> None:
    logits = np.array([[2.0, 0.5, -1.0]])
    p = np.exp(logits) / np.exp(logits).sum()
    expected = np.exp(logits / 3.0) / np.exp(logits / 3.0).sum()
    np.testing.assert_allclose(soften(tf.constant(p), 3.0).numpy(), expected, rtol=1e-6)


def test_the_loss_is_hintons_weighted_soft_and_hard_cross_entropy() -> None:
    teacher = np.array([[0.7, 0.2, 0.1]])
    student = np.array([[0.5, 0.3, 0.2]])
    t, w = 2.0, 0.75
    q = teacher ** (1 / t) / np.sum(teacher ** (1 / t))
    s = student ** (1 / t) / np.sum(student ** (1 / t))
    expected = w * t**2 * np.sum(q * np.log(q / s)) + (1 - w) * -np.log(student[0, 1])
    config = Distillation(temperature=t, soft_weight=w)
    got = distillation_loss(tf.constant(teacher), tf.constant(student), tf.constant([1]), config)
    np.testing.assert_allclose(float(got), expected, rtol=1e-5)


def test_a_smaller_student_learns_the_teacher_from_server_data_only(
    clean_model: tf.keras.Model, digits: Dataset
) -> None:
    scenario = load_scenario(
        "quickstart", ["robustness.distillation.enabled=true", "robustness.distillation.epochs=40"]
    )
    report = distillation_report(scenario, digits, clean_model.get_weights(), range(10))
    teacher, student = report["teacher"], report["student"]
    assert report["server_examples"] + report["held_out_examples"] == len(digits.y_test)
    assert student["num_params"] < teacher["num_params"] // 3
    assert student["accuracy"] > 0.8  # it learnt from ~180 images the teacher labelled
    assert student["accuracy"] > teacher["accuracy"] - 0.15
    for model in (teacher, student):
        assert model["robust_accuracy_pgd"] < model["accuracy"]
        assert model["membership_inference"]["num_members"] == report["held_out_examples"]
