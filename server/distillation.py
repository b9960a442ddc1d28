"""Distillation of the final global model into a smaller student on the server's own data.

Hinton, Vinyals, Dean 2015, "Distilling the Knowledge in a Neural Network": with teacher logits
v and student logits z, soft targets q = softmax(v / T) and the student's softened output
s = softmax(z / T), the student minimises

    L = soft_weight * T^2 * KL(q || s) + (1 - soft_weight) * CE(y, softmax(z))

(KL(q || s) = CE(q, s) - H(q), Hinton et al.'s cross-entropy less a constant; the T^2 keeps
the soft term's gradients at the scale of the hard term's as T changes). The
registered models end in a softmax, so logits are recovered as log p, exact up to a per-example
constant, which softmax ignores: softmax(log p / T) = p^(1/T) / sum_k p_k^(1/T).

The server holds ``server_fraction`` of the test split (seeded); the student never sees a
client's data, only the teacher's answers on it. The rest of the test split evaluates teacher
and student (clean and robust accuracy) and serves as non-members for membership inference,
with the training data of every client ever aggregated as members, so the two leakage figures
are measured on the same sets.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
from numpy.typing import NDArray

from common.data.datasets import Dataset
from common.data.shards import partitions_of
from common.learning.models import build_model
from common.robustness_config import Distillation
from common.schema import Scenario
from common.seeding import derive_rng, derive_seed
from server.membership_inference import membership_inference
from server.robustness import robust_accuracy

_MIN_PROBABILITY = 1e-12


def soften(probabilities: tf.Tensor, temperature: float) -> tf.Tensor:
    """softmax(log p / T): the temperature-T softmax of a model that outputs probabilities."""
    logits = tf.math.log(tf.maximum(probabilities, _MIN_PROBABILITY))
    return tf.nn.softmax(logits / temperature, axis=-1)


def distillation_loss(
    teacher_probabilities: tf.Tensor,
    student_probabilities: tf.Tensor,
    labels: tf.Tensor,
    config: Distillation,
) -> tf.Tensor:
    """Hinton et al.'s loss, averaged over the batch (see the module docstring)."""
    temperature = config.temperature
    soft_targets = soften(teacher_probabilities, temperature)
    target_log = tf.math.log(tf.maximum(soft_targets, _MIN_PROBABILITY))
    student_log = tf.math.log(
        tf.maximum(soften(student_probabilities, temperature), _MIN_PROBABILITY)
    )
    # KL(q || s) = CE(q, s) - H(q): the same gradient as the cross-entropy, and 0 for a student
    # that matches the teacher, so the reported loss reads as a distance.
    soft = tf.reduce_sum(soft_targets * (target_log - student_log), axis=-1) * temperature**2
    hard = tf.keras.losses.sparse_categorical_crossentropy(labels, student_probabilities)
    return tf.reduce_mean(config.soft_weight * soft + (1.0 - config.soft_weight) * hard)


def distil(
    teacher: tf.keras.Model,
    student: tf.keras.Model,
    x: NDArray[np.float32],
    y: NDArray[np.int64],
    config: Distillation,
    *,
    seed: int,
) -> list[float]:
    """Train ``student`` on ``(x, y)`` against ``teacher``'s answers; the loss of each epoch."""
    optimizer = tf.keras.optimizers.Adam(learning_rate=config.learning_rate)
    targets = teacher.predict(x, batch_size=512, verbose=0)
    rng = np.random.default_rng(seed)
    losses = []
    for _ in range(config.epochs):
        order = rng.permutation(len(y))
        epoch = []
        for start in range(0, len(y), config.batch_size):
            batch = order[start : start + config.batch_size]
            with tf.GradientTape() as tape:
                loss = distillation_loss(
                    targets[batch], student(x[batch], training=True), y[batch], config
                )
            gradients = tape.gradient(loss, student.trainable_variables)
            optimizer.apply_gradients(zip(gradients, student.trainable_variables, strict=True))
            epoch.append(float(loss))
        losses.append(float(np.mean(epoch)))
    return losses


def _report(
    model: tf.keras.Model,
    held: tuple[NDArray[np.float32], NDArray[np.int64]],
    members: tuple[NDArray[np.float32], NDArray[np.int64]],
    scenario: Scenario,
) -> dict[str, Any]:
    x, y = held
    accuracy = float(np.mean(np.argmax(model.predict(x, verbose=0), axis=1) == y))
    report: dict[str, Any] = {
        "num_params": int(model.count_params()),
        "accuracy": accuracy,
        **robust_accuracy(
            model, x, y, scenario.robustness, seed=derive_seed(scenario.seed, "distil-robust")
        ),
    }
    if len(members[1]):
        report["membership_inference"] = membership_inference(
            model, members, held, seed=derive_seed(scenario.seed, "membership")
        )
    return report


def distillation_report(
    scenario: Scenario,
    dataset: Dataset,
    final: Sequence[NDArray[np.float32]],
    ever_accepted: Iterable[int],
) -> dict[str, Any]:
    """Distil ``final`` into the configured student; teacher and student figures side by side."""
    config = scenario.robustness.distillation
    if not all(np.isfinite(w).all() for w in final):
        return {"skipped": "the final global model has non-finite weights"}
    order = derive_rng(scenario.seed, "distillation").permutation(len(dataset.y_test))
    cut = int(round(config.server_fraction * len(order)))
    server, rest = np.sort(order[:cut]), np.sort(order[cut:])
    held = (dataset.x_test[rest], dataset.y_test[rest])
    parts = partitions_of(scenario)
    members_index = np.concatenate([parts[p] for p in sorted(ever_accepted)] or [np.arange(0)])
    members = (dataset.x_train[members_index], dataset.y_train[members_index])

    teacher = build_model(scenario.model.name, dataset.input_shape, dataset.num_classes)
    teacher.set_weights(list(final))
    tf.keras.utils.set_random_seed(derive_seed(scenario.seed, "student-init"))
    student = build_model(config.student, dataset.input_shape, dataset.num_classes)
    losses = distil(
        teacher,
        student,
        dataset.x_test[server],
        dataset.y_test[server],
        config,
        seed=derive_seed(scenario.seed, "distil-batches"),
    )
    return {
        "student_model": config.student,
        "temperature": config.temperature,
        "server_examples": int(len(server)),
        "held_out_examples": int(len(rest)),
        "final_distillation_loss": losses[-1],
        "teacher": _report(teacher, held, members, scenario),
        "student": _report(student, held, members, scenario),
    }
