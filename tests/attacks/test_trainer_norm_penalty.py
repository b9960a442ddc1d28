"""The trainer's 3DFed objective ``ce_weight CE + norm_penalty ||w - a||_2`` on a hand step.

Softmax regression (gradients written out in ``test_alter_min``): one SGD step from ``w_0`` with
anchor ``a`` is ``w_1 = w_0 - eta (0.6 g(w_0) + 0.4 (w_0 - a) / ||w_0 - a||)`` for 3DFed's
weights 0.3 + 0.3 on the cross-entropies and 0.4 on the plain L2 distance.
"""

from __future__ import annotations

import numpy as np
from test_alter_min import B0, ETA, W0, X, Y, _gradient, _trainer

from common.arrays import flatten


def test_one_step_of_the_weighted_loss_with_the_distance_penalty() -> None:
    trainer = _trainer(batch_size=2)
    w0 = flatten([W0, B0]).astype(np.float64)
    anchor = w0 + np.array([0.3, 0.0, -0.4, 0.0, 0.0, 0.0])  # ||w_0 - a|| = 0.5
    trainer.train(X, Y, [np.array([0, 1])], anchor=anchor, norm_penalty=0.4, ce_weight=0.6)
    unit = (w0 - anchor) / 0.5
    expected = w0 - ETA * (0.6 * _gradient(w0, X, Y) + 0.4 * unit)
    np.testing.assert_allclose(trainer.weights(), expected, rtol=1e-5, atol=1e-6)
    # At the anchor the distance has no gradient (its subgradient 0): a plain weighted step.
    trainer.load(w0.astype(np.float32), reset_optimizer=True)
    trainer.train(X, Y, [np.array([0, 1])], anchor=w0, norm_penalty=0.4, ce_weight=0.6)
    np.testing.assert_allclose(
        trainer.weights(), w0 - ETA * 0.6 * _gradient(w0, X, Y), rtol=1e-5, atol=1e-6
    )
