"""Model inversion from the final model: one representative image per class (MI-FACE).

Fredrikson, Jha, Ristenpart 2015, "Model Inversion Attacks that Exploit Confidence Information
and Basic Countermeasures", Algorithm 1: starting from x_0 = 0, gradient descent on

    c(x) = 1 - f_y(x)

(f_y the model's confidence in class y), x_i = Process(x_{i-1} - lambda grad c(x_{i-1})),
keeping the x with the lowest cost. Process here is the projection into the data range
(the paper's faces also used a denoising filter). The attacker needs only the model; what it
recovers is what the model holds about a class, not one member.

Scoring (ground truth, metrics only): SSIM and PSNR of each class's inversion against the mean
training image of that class over the clients whose updates were accepted, and the model's
confidence in the class at the inversion; the best SSIM to any OTHER class's mean is the contrast
(an inversion that is merely "a digit" scores as high there).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from numpy.typing import NDArray

from server.inversion.figures import save_class_figures
from server.inversion.quality import psnr, ssim


def mi_face(
    model: tf.keras.Model,
    label: int,
    *,
    iterations: int,
    learning_rate: float,
    data_range: tuple[float, float],
) -> tuple[NDArray[np.float32], float]:
    """The lowest-cost image of MI-FACE for class ``label`` and the model's confidence in it."""
    image = tf.Variable(tf.zeros((1, *model.input_shape[1:])))

    def step() -> tf.Tensor:
        with tf.GradientTape() as tape:
            cost = 1.0 - model(image, training=False)[0, label]
        image.assign(
            tf.clip_by_value(image - learning_rate * tape.gradient(cost, image), *data_range)
        )
        return cost

    compiled = tf.function(step)
    best, best_cost = image.numpy(), float("inf")
    for _ in range(iterations):
        # compiled() returns the cost of the image it started from, so the pair matches.
        before = image.numpy()
        cost = float(compiled())
        if cost < best_cost:
            best, best_cost = before, cost
    return np.asarray(best[0], np.float32), 1.0 - best_cost


def class_inversion_report(
    model: tf.keras.Model,
    x_members: NDArray[np.float32],
    y_members: NDArray[np.int64],
    *,
    iterations: int,
    learning_rate: float,
    data_range: tuple[float, float],
    run_dir: Path,
) -> dict[str, Any]:
    """Invert every class of ``model``, score against the class means, write the figures."""
    num_classes = int(model.output_shape[-1])
    width = data_range[1] - data_range[0]
    images, means = [], []
    for label in range(num_classes):
        image, confidence = mi_face(
            model, label, iterations=iterations, learning_rate=learning_rate, data_range=data_range
        )
        of_class = x_members[y_members == label]
        images.append((image, confidence))
        means.append(of_class.mean(axis=0) if len(of_class) else np.zeros_like(image))
    rows = [
        {
            "class": label,
            "confidence": confidence,
            "ssim_to_class_mean": ssim(image, means[label], data_range=width),
            "psnr_to_class_mean": psnr(image, means[label], data_range=width),
            # Is it this class, or just "a digit"? The closest other class's mean, for contrast.
            "ssim_to_other_means": max(
                ssim(image, mean, data_range=width) for k, mean in enumerate(means) if k != label
            ),
        }
        for label, (image, confidence) in enumerate(images)
    ]
    save_class_figures([image for image, _ in images], means, rows, run_dir)
    return {
        "per_class": rows,
        "ssim_mean": float(np.mean([r["ssim_to_class_mean"] for r in rows])),
        "psnr_mean": float(np.mean([r["psnr_to_class_mean"] for r in rows])),
        "ssim_to_other_means_mean": float(np.mean([r["ssim_to_other_means"] for r in rows])),
        "confidence_mean": float(np.mean([r["confidence"] for r in rows])),
    }
