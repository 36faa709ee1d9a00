"""k-means++ seeding and Lloyd's k-means, used to initialize the Gaussian mixture.

k-means++ (Arthur & Vassilvitskii 2007): the first centre is a data point drawn
uniformly; each next one is a data point drawn with probability proportional to

    D(x_n)^2 = min_j ||x_n - c_j||^2          (squared distance to the nearest centre so far).

The draws use one uniform per centre from the host generator of ``backend.RNG``, turned
into an index by inverting the cumulative sum of D^2 on the device, so a seed picks the
same points on every backend (to rounding of the distances).

Lloyd's algorithm is EM's hard-assignment limit: assign each point to its nearest centre
(an E-step with responsibilities in {0, 1}), then move each centre to the mean of its
points (an M-step). Each assignment is the nearest-centroid rule of L3 (4),
y(x) = argmin_c ||x - m_c|| with m_c the mean of the points labelled c, applied with the
labels of the previous step instead of given ones.
"""

from __future__ import annotations

import numbers

from array_api_compat import array_namespace

from .. import backend
from ..checks import check_positive_int
from ..linear.pca import as_data


def sq_distances(X, C):
    """||x_n - c_k||^2 for all pairs.

    Inputs:
    - X: (N, D), C: (K, D).
    Returns:
    - D2: (N, K).
    """
    xp = array_namespace(X, C)
    diff = X[:, None, :] - C[None, :, :]                   # (N, K, D)
    return xp.sum(diff * diff, axis=2)


def kmeans_plusplus(X, n_clusters: int, rng: backend.RNG):
    """Choose n_clusters distinct rows of X as seeds by k-means++.

    Inputs:
    - X: (N, D) data (host or backend array), finite, N >= n_clusters.
    - n_clusters: K.
    - rng: a backend.RNG; its host generator draws the uniforms.
    Returns:
    - centers: (K, D) rows of X.
    - indices: list of K Python ints, the rows chosen.
    """
    X = as_data(X)  # (N, D), floating, finite: a NaN would make every distance NaN
    n_clusters = check_positive_int(n_clusters, "n_clusters")
    xp = array_namespace(X)
    N = X.shape[0]
    if n_clusters > N:
        raise ValueError(f"cannot choose {n_clusters} centres from {N} points: lower n_clusters")
    indices = [int(rng.host.integers(N))]
    d2 = sq_distances(X, X[indices[0]:indices[0] + 1, :])[:, 0]  # (N,) D(x_n)^2
    for _ in range(1, n_clusters):
        cs = xp.cumulative_sum(d2)                         # inverse-CDF draw, P(n) ~ D(x_n)^2
        total = float(cs[-1])
        if total > 0:
            u = float(rng.host.uniform()) * total          # one host uniform per centre
            i = min(int(xp.sum(xp.astype(cs <= u, xp.int64))), N - 1)
        else:  # fewer distinct points than clusters: take any point not chosen yet
            i = next(j for j in range(N) if j not in indices)
        indices.append(i)
        d2 = xp.minimum(d2, sq_distances(X, X[i:i + 1, :])[:, 0])  # nearest centre so far
    idx = xp.asarray(indices, dtype=xp.int64, device=X.device)
    return xp.take(X, idx, axis=0), indices


def one_hot(labels, n_clusters: int, dtype):
    """Hard responsibilities: r_nk = 1 if labels_n == k else 0. labels: (N,) -> (N, K)."""
    xp = array_namespace(labels)
    ks = xp.arange(n_clusters, device=labels.device)
    return xp.astype(labels[:, None] == ks[None, :], dtype)


def kmeans(X, n_clusters: int, seed: int | None = 0, max_iter: int = 100):
    """Lloyd's k-means from k-means++ seeds.

    Inputs:
    - X: (N, D) data (host or backend array).
    - n_clusters: K.
    - seed: seeds the k-means++ draws.
    - max_iter: Lloyd iterations at most (stops earlier when no label changes).
    Returns:
    - centers: (K, D), labels: (N,) int64, inertia: 0-d sum of squared distances.
    """
    X = as_data(X)  # (N, D), floating, finite
    if isinstance(max_iter, bool) or not isinstance(max_iter, numbers.Integral) or max_iter < 0:
        raise ValueError(f"max_iter must be an integer >= 0 (0: the k-means++ seeds alone), got {max_iter!r}")
    xp = array_namespace(X)
    centers, _ = kmeans_plusplus(X, n_clusters, backend.RNG(seed))
    labels = None
    for _ in range(max_iter):
        # E-step (hard): nearest centre, the nearest-centroid rule of L3 (4)
        new = xp.argmin(sq_distances(X, centers), axis=1)
        if labels is not None and bool(xp.all(new == labels)):
            break
        labels = new
        # M-step: centre = mean of its points, L3 (4)'s m_c (an empty cluster keeps its centre)
        R = one_hot(labels, n_clusters, X.dtype)           # (N, K)
        counts = xp.sum(R, axis=0)                         # (K,)
        sums = R.T @ X                                     # (K, D)
        keep = counts[:, None] == 0
        centers = xp.where(keep, centers, sums / xp.where(keep, 1.0, counts[:, None]))
    d = sq_distances(X, centers)
    labels = xp.argmin(d, axis=1)  # the labels of the centres returned (also at max_iter)
    inertia = xp.sum(xp.min(d, axis=1))
    return centers, labels, inertia
