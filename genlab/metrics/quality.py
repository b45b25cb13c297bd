"""KID and precision/recall over Inception features: small pure functions over arrays.

- Bińkowski, Sutherland, Arbel, Gretton, "Demystifying MMD GANs", arXiv 1801.01401: the Kernel
  Inception Distance, the unbiased MMD² with the cubic polynomial kernel k(x, y) = (x·y / d + 1)³,
  averaged over random subsets, with its standard deviation over them. Unlike FID it has an
  unbiased estimator, so values at different sample counts compare.
- Kynkäänniemi, Karras, Laine, Lehtinen, Aila, "Improved Precision and Recall Metric for Assessing
  Generative Models", arXiv 1904.06991: each set's manifold is the union of balls reaching each
  feature's k-th nearest neighbour (k=3); precision is the share of generated images inside the
  real manifold (fidelity), recall the share of real images inside the generated one (coverage).

The defaults and the subset draws are torch-fidelity's (100 subsets of 1,000, ``RandomState(2020)``;
k=3), and tests/test_quality.py checks both against torch-fidelity's own functions on the same
features. The three Gram matrices are computed once, not once per subset: each subset's kernel
matrices are then rows and columns of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError

KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
KID_SEED = 2020  # torch-fidelity's rng_seed: the same subsets, so the same figure
PR_NEIGHBOURS = 3


def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3, coef0: float = 1.0) -> np.ndarray:
    """(x·y / d + coef0)^degree for every pair of rows: [N, d], [M, d] -> [N, M], float64."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    return (x @ y.T / x.shape[1] + coef0) ** degree


def mmd2_unbiased(k_xx: np.ndarray, k_xy: np.ndarray, k_yy: np.ndarray) -> float:
    """The unbiased MMD² of two equal-sized samples from their kernel matrices, each [m, m]."""
    m = len(k_xx)
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2 * k_xy.sum() / (m * m))


@dataclass(frozen=True)
class KID:
    mean: float
    std: float  # over the subsets: how much the figure moves with the draw
    subsets: int
    subset_size: int


def kid(
    real: np.ndarray,
    fake: np.ndarray,
    subsets: int = KID_SUBSETS,
    subset_size: int = KID_SUBSET_SIZE,
    seed: int = KID_SEED,
) -> KID:
    """KID between two feature sets [N, d] and [M, d]: the mean and standard deviation of the unbiased MMD² over
    ``subsets`` random subsets of ``subset_size`` of each (at most the smaller set's size)."""
    size = min(subset_size, len(real), len(fake))
    if size < 2:
        raise ConfigError(f"KID needs at least 2 images in each set, got {len(real)} and {len(fake)}")
    k_rr, k_rf, k_ff = polynomial_kernel(real, real), polynomial_kernel(real, fake), polynomial_kernel(fake, fake)
    rng = np.random.RandomState(seed)
    mmds = np.empty(subsets)
    for i in range(subsets):
        f = rng.choice(len(fake), size, replace=False)  # torch-fidelity's order: generated first, then real
        r = rng.choice(len(real), size, replace=False)
        mmds[i] = mmd2_unbiased(k_rr[np.ix_(r, r)], k_rf[np.ix_(r, f)], k_ff[np.ix_(f, f)])
    return KID(float(mmds.mean()), float(mmds.std()), subsets, size)


def pairwise_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Euclidean distances between rows: [N, d], [M, d] -> [N, M] (torch.cdist, float32 as features are)."""
    return torch.cdist(torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32)).numpy()


def knn_radii(features: np.ndarray, k: int = PR_NEIGHBOURS) -> np.ndarray:
    """Each feature's distance to its k-th nearest other feature: [N, d] -> [N]."""
    d = pairwise_distances(features, features)
    return np.partition(d, k, axis=1)[:, k]  # column 0 of the sorted row is the feature itself


def inside_manifold(points: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Whether each point lies within some centre's radius: [N, d], [M, d], [M] -> bool [N]."""
    return (pairwise_distances(points, centres) <= radii[None, :]).any(axis=1)


@dataclass(frozen=True)
class PrecisionRecall:
    precision: float  # share of generated images that look like real ones
    recall: float  # share of real images that the generated ones cover
    k: int


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = PR_NEIGHBOURS) -> PrecisionRecall:
    """Improved precision and recall of ``fake`` against ``real`` features, with k-NN manifolds."""
    if min(len(real), len(fake)) <= k:
        raise ConfigError(f"precision/recall with k={k} needs more than {k} images in each set")
    precision = inside_manifold(fake, real, knn_radii(real, k)).mean()
    recall = inside_manifold(real, fake, knn_radii(fake, k)).mean()
    return PrecisionRecall(float(precision), float(recall), k)
