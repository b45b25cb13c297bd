"""KID and precision/recall (genlab.metrics.quality) agree with torch-fidelity's own functions on the same
features, and behave as their definitions say on sets whose answer is known."""

import numpy as np
import pytest
import torch

from genlab.metrics.quality import kid, mmd2_unbiased, polynomial_kernel, precision_recall

torch_fidelity = pytest.importorskip("torch_fidelity")
from torch_fidelity.metric_kid import kid_features_to_metric  # noqa: E402
from torch_fidelity.metric_prc import prc_features_to_metric  # noqa: E402

# torch-fidelity computes the kernels in float32 (its features' type), genlab in float64: on 2048-d features
# like Inception's the two differ by ~1e-7 relative; precision and recall count the same comparisons, and
# torch-fidelity rounds the share to float32
KID_RTOL, KID_ATOL = 1e-5, 1e-7
PR_TOLERANCE = 1e-6


def features(n: int, seed: int, shift: float = 0.0, d: int = 2048) -> np.ndarray:
    """Non-negative, like Inception's pooled ReLU features, with the scale of theirs (~0.4 on average)."""
    g = np.random.default_rng(seed)
    return np.abs(0.4 * g.standard_normal((n, d)) + shift).astype(np.float32)


@pytest.mark.parametrize("shift", [0.0, 0.1])
def test_kid_agrees_with_torch_fidelity(shift):
    real, fake = features(300, 0), features(250, 1, shift)
    ours = kid(real, fake, subsets=20, subset_size=200)
    theirs = kid_features_to_metric(  # torch-fidelity's input 1 is the generated set
        torch.from_numpy(fake), torch.from_numpy(real), kid_subsets=20, kid_subset_size=200, verbose=False
    )
    assert ours.mean == pytest.approx(theirs["kernel_inception_distance_mean"], rel=KID_RTOL, abs=KID_ATOL)
    assert ours.std == pytest.approx(theirs["kernel_inception_distance_std"], rel=KID_RTOL, abs=KID_ATOL)


def test_kid_is_near_zero_for_one_distribution_and_grows_with_the_shift():
    real = features(400, 0)
    same, far = (kid(real, features(400, 1, s), subsets=10, subset_size=200) for s in (0.0, 0.2))
    assert abs(same.mean) < 3 * same.std  # unbiased: zero within its spread
    assert far.mean > 20 * far.std > 0


def test_mmd2_unbiased_is_the_closed_form_on_a_tiny_example():
    x, y = np.array([[1.0], [2.0]]), np.array([[0.0], [3.0]])
    k = lambda a, b: polynomial_kernel(a, b)  # noqa: E731  (x·y + 1)^3 with d = 1
    # E k(x,x') + E k(y,y') - 2 E k(x,y), off-diagonal means for the first two
    expected = (2 * 27) / 2 + (2 * 1) / 2 - 2 * (1 + 64 + 1 + 343) / 4
    assert mmd2_unbiased(k(x, x), k(x, y), k(y, y)) == pytest.approx(expected)


@pytest.mark.parametrize("shift", [0.0, 1.0])
def test_precision_recall_agree_with_torch_fidelity(shift):
    real, fake = features(300, 2), features(200, 3, shift)
    ours = precision_recall(real, fake)
    theirs = prc_features_to_metric(torch.from_numpy(fake), torch.from_numpy(real), verbose=False)
    assert ours.precision == pytest.approx(theirs["precision"], abs=PR_TOLERANCE)
    assert ours.recall == pytest.approx(theirs["recall"], abs=PR_TOLERANCE)


def test_precision_is_fidelity_and_recall_is_coverage():
    real = features(300, 4)
    collapsed = np.repeat(real[:5], 40, axis=0) + 0.01  # a few real images over and over
    pr = precision_recall(real, collapsed)
    assert pr.precision == 1.0 and pr.recall < 0.1  # every sample looks real; few real images are covered
