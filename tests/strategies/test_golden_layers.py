"""The rules that read the model's layout, by hand: LASA and DeepSight, and the Layout itself."""

from __future__ import annotations

import numpy as np
import pytest
from golden_helpers import ones

import strategies
from common.errors import AggregationError
from strategies import Inspection, Layout
from strategies.deepsight import neups, softmax_regression_probe

DENSE = Layout(((2, 2), (2,)))  # one Dense layer: kernel (2, 2), bias (2,)
SOFTMAX = Layout(((2, 3), (3,)))  # softmax regression: 2 inputs, 3 classes


def test_layout_slices_and_output_layer() -> None:
    layout = Layout(((3, 4, 1, 2), (2,), (5, 3), (3,)), ("c/k", "c/b", "d/k", "d/b"))
    assert layout.num_params == 24 + 2 + 15 + 3
    assert layout.slices() == [slice(0, 24), slice(24, 26), slice(26, 41), slice(41, 44)]
    assert layout.output_layer() == (slice(26, 41), slice(41, 44), 3)
    assert Layout.of([np.zeros((2, 3)), np.zeros(3)]).names == ("tensor0", "tensor1")
    with pytest.raises(AggregationError, match=r"Dense kernel .* got shapes \(\(5, 3\), \(2,\)\)"):
        Layout(((5, 3), (2,))).output_layer()


def test_a_rule_that_reads_the_model_refuses_to_run_without_it() -> None:
    rule = strategies.get_aggregator("deepsight")
    assert rule.needs_layout() and rule.needs_ddifs()
    lasa = strategies.get_aggregator("lasa")
    assert lasa.needs_layout() and not lasa.needs_ddifs()
    assert not strategies.get_aggregator("median").needs_layout()
    x = np.zeros((3, 6))
    with pytest.raises(AggregationError, match=r"lasa: needs inspection="):
        lasa(x, ones(3))
    with pytest.raises(AggregationError, match=r"layout has 9 parameters, the updates 6"):
        lasa(x, ones(3), inspection=Inspection(SOFTMAX))
    with pytest.raises(AggregationError, match=r"deepsight: needs inspection.ddifs"):
        rule(x, ones(3), inspection=Inspection(DENSE))


def test_lasa_clips_sparsifies_and_filters_each_tensor() -> None:
    honest = [[3.0, 4.0, 0.1, -0.1, b, b] for b in (1.0, 1.0, 2.0, 2.0)]
    x = np.array([*honest, [-30.0, -40.0, 0.0, 0.0, -1.0, -1.0]])
    # Norms sqrt(27.02) x2, sqrt(33.02) x2, sqrt(2502): the median sqrt(33.02) clips only the
    # attacker, by f = sqrt(33.02 / 2502). Sparsity 0.25 keeps the kernel entries above the
    # 3rd largest magnitude: (3, 4) of the honest kernels (both 0.1 are dropped), (-30, -40) f.
    # Kernel: norms (5, 5, 5, 5, 50 f = 5.744); four equal and one off is z = 2.5 >= 2, and its
    # sign purity -1 against four 1s is z = 2.5 >= 1: the attacker is dropped.
    # Bias (dense): norms sqrt(2) (1, 1, 2, 2, f): z = 0, 0, 1.40, 1.40, 1.24 < 2, all pass;
    # sign purity (1, 1, 1, 1, -1): the attacker again at z = 2.5. Mean of the honest ones.
    out = strategies.get_aggregator("lasa", sparsity=0.25)(x, ones(5), inspection=Inspection(DENSE))
    np.testing.assert_allclose(out, [3.0, 4.0, 0.0, 0.0, 1.5, 1.5], rtol=1e-12, atol=1e-15)


def test_lasa_keeps_everyone_where_no_update_passes() -> None:
    # Both rows' tensors have equal norms (sigma = 0): the MZ-score admits no one, so LASA
    # falls back to every update, as the authors' NaN comparison does.
    x = np.array([[1.0, 0.0, 0.0, 0.0, 1.0, 0.0], [0.0, -1.0, 0.0, 0.0, 0.0, -1.0]])
    out = strategies.get_aggregator("lasa", sparsity=0.0)(x, ones(2), inspection=Inspection(DENSE))
    np.testing.assert_allclose(out, [0.5, -0.5, 0.0, 0.0, 0.5, -0.5], rtol=1e-12)


def test_neups_and_threshold_exceedings() -> None:
    # Energies |b_k| + sum_j |W_jk| = (1 + 1, 1 + 0, 0) = (2, 1, 0); squared and normalised
    # (0.8, 0.2, 0); the threshold max(0.01, 1/3) * 0.8 = 0.267 is exceeded by class 0 only.
    kernel = np.array([[[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])
    neup, te = neups(kernel, np.array([[1.0, 1.0, 0.0]]), 0.01)
    np.testing.assert_allclose(neup, [[0.8, 0.2, 0.0]], rtol=1e-15)
    np.testing.assert_array_equal(te, [1.0])


def deepsight(biases: list[list[float]]) -> np.ndarray:
    """DeepSight on bias-only updates of a zero softmax regression: each local model predicts
    softmax(b) whatever the input, so its DDifs are softmax(b) / (1/3 + eps), exactly."""
    x = np.hstack([np.zeros((len(biases), 6)), np.array(biases)])
    probe = softmax_regression_probe(np.zeros(9), SOFTMAX)
    rule = strategies.get_aggregator("deepsight", num_samples=32)
    return rule(x, ones(len(biases)), inspection=Inspection(SOFTMAX, probe))


def test_deepsight_drops_the_suspicious_cluster_and_clips_to_the_median_norm() -> None:
    # Honest c (1, 1, 1): uniform NEUPs, TE 3, DDifs all 1/(1 + 3 eps), one bias direction.
    # Attackers (3, -1, -1): NEUP (9, 1, 1)/11, TE 1, their own DDif and direction. Each view
    # has two groups of 5 identical points: two clusters (min_cluster_size 5), and so has the
    # merged matrix. Median TE 2: TE 1 <= 1 is suspicious, 5 of 5 in the attackers' cluster.
    # Norms sqrt(3) c for c = .5 .. .8 and 3, sqrt(11) x5: median sqrt(11) clips c = 3 to
    # sqrt(11 / 3); the mean is (2.6 + sqrt(11 / 3)) / 5 per coordinate.
    honest = [[c, c, c] for c in (0.5, 0.6, 0.7, 0.8, 3.0)]
    out = deepsight(honest + [[3.0, -1.0, -1.0]] * 5)
    np.testing.assert_allclose(out[:6], 0.0, atol=0.0)
    np.testing.assert_allclose(out[6:], (2.6 + np.sqrt(11 / 3)) / 5, rtol=1e-12)


@pytest.mark.parametrize("attackers", [3, 4])
def test_deepsight_judges_a_cluster_by_its_suspicious_share(attackers: int) -> None:
    # Fewer than 5 attackers form no cluster of their own (min_cluster_size 5): every view is
    # one group (all HDBSCAN noise, which shares one label), so all 10 are one cluster, whose
    # suspicious share 3/10 < 1/3 is accepted and 4/10 is not (the global model is kept).
    # Accepted, the attackers are clipped to the median norm sqrt(3): sqrt(3/11) (3, -1, -1).
    out = deepsight([[1.0, 1.0, 1.0]] * (10 - attackers) + [[3.0, -1.0, -1.0]] * attackers)
    if attackers == 4:
        np.testing.assert_array_equal(out, np.zeros(9))
        return
    scale = np.sqrt(3 / 11)
    expected = (7 * np.ones(3) + 3 * scale * np.array([3.0, -1.0, -1.0])) / 10
    np.testing.assert_allclose(out[6:], expected, rtol=1e-12)
