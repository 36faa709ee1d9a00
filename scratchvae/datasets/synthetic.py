"""Synthetic data with known truth, for the PCA, EM and autoencoder lessons.

- ``gaussian_mixture``: 2-D points from p(x) = sum_k pi_k N(x; mu_k, Sigma_k), returned
  with (pi, mu, Sigma) and the component of each point, so EM's answer can be checked.
- ``low_rank``: x = W z + m + sigma eps in p dimensions, z ~ N(0, I_q), eps ~ N(0, I_p),
  W = U diag(s) with orthonormal U: the probabilistic PCA model (Tipping and Bishop,
  1999). The covariance W W^T + sigma^2 I has q eigenvalues s_i^2 + sigma^2 above p - q
  equal ones sigma^2 (the spectral gap), and its top-q eigenvectors span U.
- ``noisy_arc`` and ``two_moons``: 2-D points near curves, one-dimensional manifolds that
  no straight line (no PCA, no linear autoencoder) follows but a nonlinear one can.

All return host NumPy float64 arrays; one ``seed`` fixes everything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MixtureSample:
    """x: (N, 2) points; labels: (N,) int64 component k of each point;
    weights: (K,) pi_k; means: (K, 2) mu_k; covs: (K, 2, 2) Sigma_k."""

    x: np.ndarray
    labels: np.ndarray
    weights: np.ndarray
    means: np.ndarray
    covs: np.ndarray


@dataclass(frozen=True)
class LowRankSample:
    """x: (N, p) data; z: (N, q) latents; basis: (p, q) U with U^T U = I (the true
    subspace); scales: (q,) s, decreasing; mean: (p,) m; noise: sigma."""

    x: np.ndarray
    z: np.ndarray
    basis: np.ndarray
    scales: np.ndarray
    mean: np.ndarray
    noise: float

    @property
    def W(self) -> np.ndarray:
        """(p, q) loading matrix W = U diag(s) of the PPCA model."""
        return self.basis * self.scales

    @property
    def cov(self) -> np.ndarray:
        """(p, p) population covariance C = W W^T + sigma^2 I."""
        W = self.W
        return W @ W.T + self.noise**2 * np.eye(W.shape[0])


@dataclass(frozen=True)
class CurveSample:
    """x: (N, 2) points; t: (N,) position along the curve in [0, 1] (the true 1-D
    latent); labels: (N,) int64 which curve (two_moons) or None (one curve)."""

    x: np.ndarray
    t: np.ndarray
    labels: np.ndarray | None = None


DEFAULT_MIXTURE = dict(
    weights=[0.5, 0.3, 0.2],
    means=[[-2.0, 0.0], [2.0, 1.0], [0.0, -2.5]],
    covs=[[[1.0, 0.6], [0.6, 0.8]],  # tilted ellipse
          [[0.3, 0.0], [0.0, 0.3]],  # small round blob
          [[1.5, 0.0], [0.0, 0.2]]],  # flat ellipse
)


def _check_n(n: int) -> int:
    if int(n) != n or n < 1:
        raise ValueError(f"n (number of points) must be a positive integer, got {n!r}")
    return int(n)


def gaussian_mixture(n: int = 600, seed: int = 0, weights=None, means=None, covs=None) -> MixtureSample:
    """Draw n points from a Gaussian mixture: k ~ Categorical(pi), x | k ~ N(mu_k, Sigma_k).

    Inputs:
    - n: number of points; seed: seed of the generator.
    - weights: (K,) pi summing to 1; means: (K, D) mu; covs: (K, D, D) symmetric
      positive definite Sigma. Default: the three 2-D components of DEFAULT_MIXTURE.

    Returns:
    - MixtureSample(x (N, D), labels (N,), weights, means, covs).
    """
    n = _check_n(n)
    weights = np.asarray(DEFAULT_MIXTURE["weights"] if weights is None else weights, dtype=np.float64)
    means = np.asarray(DEFAULT_MIXTURE["means"] if means is None else means, dtype=np.float64)
    covs = np.asarray(DEFAULT_MIXTURE["covs"] if covs is None else covs, dtype=np.float64)
    K = len(weights)
    if means.ndim != 2 or means.shape[0] != K or covs.shape != (K, means.shape[1], means.shape[1]):
        raise ValueError(
            f"weights (K,), means (K, D) and covs (K, D, D) must agree; got {weights.shape}, "
            f"{means.shape}, {covs.shape}"
        )
    if np.any(weights < 0) or not math.isclose(float(weights.sum()), 1.0, abs_tol=1e-9):
        raise ValueError(f"weights must be non-negative and sum to 1, got {weights.tolist()}")
    # cholesky reads only the lower triangle, so it would accept a non-symmetric Sigma_k
    asym = [k for k in range(K) if not np.allclose(covs[k], covs[k].T)]
    if asym:
        raise ValueError("every covariance in covs must be symmetric positive definite; "
                         f"covs[{asym[0]}] is not symmetric: {covs[asym[0]].tolist()}")
    try:
        L = np.linalg.cholesky(covs)  # Sigma_k = L_k L_k^T
    except np.linalg.LinAlgError:
        raise ValueError("every covariance in covs must be symmetric positive definite") from None
    gen = np.random.default_rng(seed)
    labels = gen.choice(K, size=n, p=weights).astype(np.int64)
    eps = gen.standard_normal((n, means.shape[1]))
    x = means[labels] + np.einsum("nij,nj->ni", L[labels], eps)  # x = mu_k + L_k eps
    return MixtureSample(x, labels, weights, means, covs)


def low_rank(n: int = 500, p: int = 10, q: int = 2, noise: float = 0.1, seed: int = 0,
             scales=None, mean=None) -> LowRankSample:
    """Draw n points from x = U diag(s) z + m + sigma eps (probabilistic PCA's model).

    Inputs:
    - n: number of points; p: data dimension; q: rank, 1 <= q <= p.
    - noise: sigma >= 0, the isotropic noise standard deviation.
    - scales: (q,) s > 0; default evenly from 2 down to 1 (s_1 = 2, s_q = 1), so the
      gap between eigenvalue q (s_q^2 + sigma^2) and q + 1 (sigma^2) is at least 1.
    - mean: (p,) m; default drawn from N(0, I) with the seed (so centering matters).

    Returns:
    - LowRankSample(x (N, p), z (N, q), basis U (p, q), scales s (q,), mean m (p,), noise).
    """
    n = _check_n(n)
    if not (1 <= q <= p):
        raise ValueError(f"need 1 <= q <= p for rank q in dimension p, got q={q}, p={p}")
    if noise < 0:
        raise ValueError(f"noise is a standard deviation and must be >= 0, got {noise}")
    gen = np.random.default_rng(seed)
    s = np.linspace(2.0, 1.0, q) if scales is None else np.asarray(scales, dtype=np.float64)
    if s.shape != (q,) or np.any(s <= 0):
        raise ValueError(f"scales must be {q} positive numbers, got {s.tolist()}")
    U, R = np.linalg.qr(gen.standard_normal((p, q)))  # a random q-dimensional subspace
    U = U * np.sign(np.diag(R))  # a unique sign per column
    m = gen.standard_normal(p) if mean is None else np.asarray(mean, dtype=np.float64)
    if m.shape != (p,):
        raise ValueError(f"mean must have shape ({p},), got {m.shape}")
    z = gen.standard_normal((n, q))
    eps = gen.standard_normal((n, p))
    x = (z * s) @ U.T + m + noise * eps  # rows: x = U diag(s) z + m + sigma eps
    return LowRankSample(x, z, U, s, m, float(noise))


def noisy_arc(n: int = 500, noise: float = 0.05, seed: int = 0, radius: float = 1.0,
              angles: tuple[float, float] = (0.0, math.pi)) -> CurveSample:
    """Points near an arc of a circle: theta = a0 + t (a1 - a0), t ~ U(0, 1),
    x = radius (cos theta, sin theta) + noise eps.

    Returns:
    - CurveSample(x (N, 2), t (N,), labels None).
    """
    n = _check_n(n)
    gen = np.random.default_rng(seed)
    t = gen.random(n)
    theta = angles[0] + t * (angles[1] - angles[0])
    x = radius * np.stack([np.cos(theta), np.sin(theta)], axis=1) + noise * gen.standard_normal((n, 2))
    return CurveSample(x, t)


def two_moons(n: int = 500, noise: float = 0.1, seed: int = 0) -> CurveSample:
    """Two interleaved half circles: moon 0 is (cos pi t, sin pi t), moon 1 is
    (1 - cos pi t, 1/2 - sin pi t), t ~ U(0, 1), plus noise eps; n // 2 points in moon 0.

    Returns:
    - CurveSample(x (N, 2), t (N,), labels (N,) 0 or 1).
    """
    n = _check_n(n)
    gen = np.random.default_rng(seed)
    labels = (np.arange(n) >= n // 2).astype(np.int64)
    t = gen.random(n)
    c, s = np.cos(np.pi * t), np.sin(np.pi * t)
    x = np.where(labels[:, None] == 0, np.stack([c, s], 1), np.stack([1.0 - c, 0.5 - s], 1))
    x = x + noise * gen.standard_normal((n, 2))
    return CurveSample(x, t, labels)


__all__ = ["CurveSample", "DEFAULT_MIXTURE", "LowRankSample", "MixtureSample",
           "gaussian_mixture", "low_rank", "noisy_arc", "two_moons"]
