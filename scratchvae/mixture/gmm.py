"""Gaussian mixture fitted by EM (Dempster, Laird & Rubin 1977; Bishop PRML sec. 9.2).

The model of lesson 4: p(x) = sum_k pi_k N(x; mu_k, Sigma_k), k = 1..K, L4 (1). With
responsibilities r_nk = q(z_n = k), EM is coordinate ascent on the ELBO (Neal & Hinton
1998; L4 (4)), per example as everything here,

    L(theta, r) = (1/N) sum_n sum_k r_nk [log pi_k + log N(x_n; mu_k, Sigma_k) - log r_nk],   L4 (3)
    log p(X | theta) / N = L(theta, r) + (1/N) sum_n KL(r_n || p(z_n | x_n, theta)).          L4 (2)

E-step (PRML 9.23): r_nk = p(z_n = k | x_n), computed in logs with a stable log-sum-exp,

    log r_nk = log pi_k + log N(x_n; mu_k, Sigma_k) - logsumexp_j [log pi_j + log N(x_n; mu_j, Sigma_j)];   L4 (6)

after it the KL in L4 (2) is 0, so L = log p(X) / N.
M-step (PRML 9.24-9.27): maximize L4 (3) over theta with r fixed,

    N_k = sum_n r_nk,  pi_k = N_k / N,  mu_k = sum_n r_nk x_n / N_k,                     L4 (7)
    Sigma_k = sum_n r_nk (x_n - mu_k)(x_n - mu_k)' / N_k + reg_covar I.                 L4 (7)

Neither step lowers L, so log p(X) never decreases, L4 (5).

reg_covar (default 1e-6, scikit-learn's convention) is a covariance floor: a component
that collapses onto one point keeps a finite density instead of a singular covariance.
It makes the Sigma_k of L4 (7) the maximizer only up to O(reg_covar^2), which is far
below rounding for data of unit scale. A covariance counts as singular when a variance
(diag, spherical) or a squared Cholesky pivot L_ii^2 (full; each pivot bounds the
smallest eigenvalue from above) falls to eps(dtype) * (mean data variance) or below: fit
raises ValueError (raise reg_covar or rescale the data) instead of returning an unbounded
log-likelihood or NaN. With reg_covar = 0 that is what a collapse onto one point gives.

covariance_type: "full" Sigma_k (K, D, D); "diag" Sigma_k = diag(s_k), covariances (K, D);
"spherical" Sigma_k = s_k I, covariances (K,) (s_k = the mean of the diagonal of the
Sigma_k of L4 (7)).
All log-likelihoods and ELBOs reported are per-example MEANS (nats per example), as
``score`` is.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from array_api_compat import array_namespace

from .. import backend
from ..arrays import logsumexp
from ..checks import check_columns, check_finite, check_finite_non_negative, check_positive_int, check_tol
from ..densities import LOG_2PI
from ..linear.pca import as_data
from .kmeans import kmeans, kmeans_plusplus, one_hot, sq_distances

COVARIANCE_TYPES = ("full", "diag", "spherical")
INITS = ("k-means++", "kmeans", "random")


def _singular(k_hint: str, floor: float):
    return ValueError(
        f"the covariance of {k_hint} is singular: a variance fell to {floor:.3g} or below, "
        "what this dtype resolves at the data's scale (a component collapsed onto too few "
        f"points, or a feature is constant). Raise reg_covar above {floor:.2g} (it is added "
        "to every variance), rescale the data to unit variance, use fewer components, or "
        "drop constant features"
    )


def cholesky_factors(covariances, covariance_type: str, floor: float = 0.0):
    """What the density needs from the covariances, checked positive definite.

    Inputs:
    - covariances: (K, D, D) full, (K, D) diag or (K,) spherical.
    - floor: variances at or below it count as singular (for full covariances the
      squared Cholesky pivots L_ii^2 are compared, each >= the smallest eigenvalue).
    Returns:
    - full: L (K, D, D) lower Cholesky factors, Sigma_k = L_k L_k'.
      diag/spherical: the variances themselves.
    Raises ValueError if a covariance is singular or not positive definite.
    """
    xp = array_namespace(covariances)
    if covariance_type == "full":
        try:
            L = xp.linalg.cholesky(covariances)
        except ValueError:  # numpy's LinAlgError is a ValueError
            raise _singular("a component", floor) from None
        diag = xp.linalg.diagonal(L)
        if not bool(xp.all(xp.isfinite(L))) or not bool(xp.all(diag * diag > floor)):  # CuPy: NaN
            raise _singular("a component", floor)
        return L
    if not bool(xp.all(covariances > floor)):
        raise _singular("a component", floor)
    return covariances


def log_gaussian(X, means, factors, covariance_type: str):
    """log N(x_n; mu_k, Sigma_k) for every example and component: the densities of L4 (1).

    log N = -1/2 [D log 2pi + log|Sigma_k| + (x - mu_k)' Sigma_k^-1 (x - mu_k)],
    with Sigma = L L':  log|Sigma| = 2 sum_i log L_ii,  the quadratic form = ||L^-1 (x - mu)||^2.

    Inputs:
    - X: (N, D); means: (K, D); factors: from cholesky_factors.
    Returns:
    - logN: (N, K).
    """
    xp = array_namespace(X, means)
    D = X.shape[1]
    diff = X[None, :, :] - means[:, None, :]                          # (K, N, D)
    if covariance_type == "full":
        K = means.shape[0]
        eye = xp.broadcast_to(xp.eye(D, dtype=X.dtype, device=X.device), (K, D, D))
        Linv = xp.linalg.solve(factors, eye)                          # L_k^-1
        Y = diff @ xp.matrix_transpose(Linv)                          # rows (L^-1 (x - mu))'
        quad = xp.sum(Y * Y, axis=2)                                  # (K, N)
        logdet = 2.0 * xp.sum(xp.log(xp.linalg.diagonal(factors)), axis=1)
    elif covariance_type == "diag":
        quad = xp.sum(diff * diff / factors[:, None, :], axis=2)
        logdet = xp.sum(xp.log(factors), axis=1)
    else:  # spherical
        quad = xp.sum(diff * diff, axis=2) / factors[:, None]
        logdet = D * xp.log(factors)
    return (-0.5 * (D * LOG_2PI + logdet[:, None] + quad)).T          # (N, K)


def m_step(X, resp, covariance_type: str, reg_covar: float):
    """Closed-form M-step, L4 (7), with reg_covar added to the variances.

    Inputs:
    - X: (N, D) data; resp: (N, K) responsibilities, rows summing to 1.
    Returns:
    - weights: (K,) pi_k; means: (K, D) mu_k; covariances: (K, D, D), (K, D) or (K,).
    """
    xp = array_namespace(X, resp)
    D = X.shape[1]
    # L4 (7): weighted counts, means and covariances
    nk = xp.sum(resp, axis=0) + 10.0 * xp.finfo(X.dtype).eps         # N_k (> 0: an empty component stays finite)
    weights = nk / xp.sum(nk)                                         # pi_k = N_k / N
    means = (resp.T @ X) / nk[:, None]                                # mu_k = sum_n r_nk x_n / N_k
    diff = X[None, :, :] - means[:, None, :]                          # (K, N, D)
    rk = resp.T[:, :, None]                                           # (K, N, 1)
    if covariance_type == "full":
        eye = xp.eye(D, dtype=X.dtype, device=X.device)
        cov = xp.matrix_transpose(rk * diff) @ diff / nk[:, None, None]  # sum_n r (x - mu)(x - mu)' / N_k
        return weights, means, cov + reg_covar * eye
    var = xp.sum(rk * diff * diff, axis=1) / nk[:, None] + reg_covar  # diagonal of Sigma_k, L4 (7)
    if covariance_type == "diag":
        return weights, means, var
    return weights, means, xp.mean(var, axis=1)                       # spherical


def elbo(log_resp, log_joint):
    """The ELBO per example, L4 (3): mean_n sum_k r_nk [log_joint_nk - log r_nk].

    Inputs:
    - log_resp: (N, K) log r_nk (finite: r_nk = 0 would need 0 log 0 = 0, and the E-step
      L4 (6) never gives exactly 0 in logs).
    - log_joint: (N, K) log pi_k + log N(x_n; mu_k, Sigma_k).
    Returns:
    - 0-d array.
    """
    xp = array_namespace(log_resp, log_joint)
    resp = xp.exp(log_resp)
    return xp.sum(resp * (log_joint - log_resp)) / log_resp.shape[0]


class Theta(NamedTuple):
    """One setting of the parameters, with the Cholesky factors the E-step uses."""

    weights: Any  # (K,) pi
    means: Any  # (K, D) mu
    covariances: Any  # Sigma, shaped by covariance_type
    factors: Any  # from cholesky_factors(covariances)


class GaussianMixture:
    """A mixture of K Gaussians fitted by EM.

    >>> gmm = GaussianMixture(3, covariance_type="full", seed=0).fit(X)   # X: (N, D)
    >>> gmm.predict(X)              # (N,) most probable component
    >>> gmm.score(X)                # mean log-likelihood per example
    >>> gmm.history_["elbo"]        # after every E- and M-step

    Inputs (constructor):
    - n_components: K.
    - covariance_type: "full", "diag" or "spherical".
    - reg_covar: added to the covariance diagonals in every M-step (default 1e-6).
    - max_iter: EM iterations (one E-step + one M-step each) at most, default 200.
    - tol: stop when an iteration raises the mean log-likelihood by at most tol times
      its total rise since the first E-step (default 1e-8; below 0, never early: all
      max_iter iterations run). Rescaling the data shifts the
      log-likelihood by a constant, which this test does not see.
    - init: "k-means++" (default; seeds by k-means++, then each point to its nearest
      seed), "kmeans" (Lloyd's k-means from those seeds) or "random" (random
      responsibilities). fit(X, init_resp=R) starts from given responsibilities instead.
    - seed: seeds the initialization.

    Attributes after fit (backend arrays): weights_ (K,), means_ (K, D), covariances_
    ((K, D, D) / (K, D) / (K,)), n_iter_, converged_, and history_: a dict of lists of
    per-example means, "log_likelihood" and "elbo" after every half-step, with "step"
    saying which ("E" or "M"). The E-step entry of an iteration is computed with the
    parameters of the previous M-step; the M-step entry uses the new parameters and the
    E-step's responsibilities.
    """

    def __init__(self, n_components: int, covariance_type: str = "full", reg_covar: float = 1e-6,
                 max_iter: int = 200, tol: float = 1e-8, init: str = "k-means++",
                 seed: int | None = 0):
        n_components = check_positive_int(n_components, "n_components")
        if covariance_type not in COVARIANCE_TYPES:
            raise ValueError(f"covariance_type must be one of {COVARIANCE_TYPES}, got {covariance_type!r}")
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        reg_covar = check_finite_non_negative(reg_covar, "reg_covar", " (added to every covariance's diagonal)")
        max_iter = check_positive_int(max_iter, "max_iter")
        tol = check_tol(tol)
        self.n_components, self.covariance_type = n_components, covariance_type
        self.reg_covar, self.max_iter, self.tol = reg_covar, max_iter, tol
        self.init, self.seed = init, seed

    # ------------------------------------------------------------------ initialization
    def initial_responsibilities(self, X):
        """Responsibilities (N, K) that start EM, from ``init`` and ``seed``."""
        xp = array_namespace(X)
        K = self.n_components
        rng = backend.RNG(self.seed)
        if self.init == "k-means++":
            centers, _ = kmeans_plusplus(X, K, rng)
            labels = xp.argmin(sq_distances(X, centers), axis=1)
            return one_hot(labels, K, X.dtype)
        if self.init == "kmeans":
            _, labels, _ = kmeans(X, K, seed=self.seed)
            return one_hot(labels, K, X.dtype)
        R = xp.astype(rng.uniform((X.shape[0], K)), X.dtype)
        return R / xp.sum(R, axis=1, keepdims=True)

    def _check_resp(self, R, X):
        xp = array_namespace(X)
        R = backend.asarray(R, dtype=X.dtype)
        if R.shape != (X.shape[0], self.n_components):
            raise ValueError(f"init_resp must have shape (N, K) = {(X.shape[0], self.n_components)}, "
                             f"got {R.shape}")
        check_finite(R, "init_resp")
        rowsum = xp.sum(R, axis=1)
        if not bool(xp.all(R >= 0)) or float(xp.max(xp.abs(rowsum - 1.0))) > 1e-4:
            raise ValueError("init_resp must be nonnegative with rows summing to 1 "
                             "(r_nk = q(z_n = k)); normalize each row")
        return R / rowsum[:, None]

    # ------------------------------------------------------------------ EM
    def _m_step(self, X, resp, var_floor: float) -> Theta:
        """The M-step L4 (7), and the Cholesky factors of the new covariances."""
        weights, means, covariances = m_step(X, resp, self.covariance_type, self.reg_covar)
        return Theta(weights, means, covariances,
                     cholesky_factors(covariances, self.covariance_type, var_floor))

    def _log_joint(self, X, theta: Theta | None = None):
        """log pi_k + log N(x_n; mu_k, Sigma_k): (N, K), under theta (default: the fit)."""
        if theta is None:
            theta = Theta(self.weights_, self.means_, self.covariances_, self._factors)
        xp = array_namespace(X)
        return log_gaussian(X, theta.means, theta.factors, self.covariance_type) + xp.log(theta.weights)

    def fit(self, X, init_resp=None):
        """Fit weights, means and covariances by EM.

        Inputs:
        - X: (N, D) data (host or backend array), N >= n_components.
        - init_resp: optional (N, K) responsibilities to start from (the first M-step
          uses them); otherwise ``init`` decides.
        Returns:
        - self.
        """
        X = as_data(X)
        xp = array_namespace(X)
        N, D = X.shape
        K = self.n_components
        if K > N:
            raise ValueError(f"n_components={K} is more than n_samples={N}: every component "
                             "needs data; lower n_components")
        Xc = X - xp.mean(X, axis=0)
        var_floor = float(xp.finfo(X.dtype).eps * xp.sum(Xc * Xc) / (N * D))
        resp = self.initial_responsibilities(X) if init_resp is None else self._check_resp(init_resp, X)
        theta = self._m_step(X, resp, var_floor)
        log_joint = self._log_joint(X, theta)
        hist = {"log_likelihood": [], "elbo": [], "step": []}
        converged = False
        # EM, L4 (4): coordinate ascent on the ELBO, an E-step (over q) then an M-step (over theta)
        for it in range(1, self.max_iter + 1):
            # E-step, L4 (6): r_nk = p(z_n = k | x_n); the KL of L4 (2) is now 0: ELBO = log p(X)
            log_norm = logsumexp(log_joint, axis=1)                  # log p(x_n)
            log_resp = log_joint - log_norm[:, None]
            ll = float(xp.mean(log_norm))
            hist["log_likelihood"].append(ll)
            hist["elbo"].append(float(elbo(log_resp, log_joint)))
            hist["step"].append("E")

            # M-step, L4 (7): maximize the ELBO L4 (3) over pi, mu, Sigma with r fixed
            theta = self._m_step(X, xp.exp(log_resp), var_floor)
            log_joint = self._log_joint(X, theta)
            ll_new = float(xp.mean(logsumexp(log_joint, axis=1)))
            hist["log_likelihood"].append(ll_new)
            hist["elbo"].append(float(elbo(log_resp, log_joint)))    # old r, new theta
            hist["step"].append("M")
            if not math.isfinite(ll_new):
                raise ValueError("EM produced a non-finite log-likelihood; rescale the data or "
                                 "raise reg_covar")
            # log p(X) never decreases, L4 (5): converged when this iteration's gain is a small
            # part of the gain so far (a difference of log-likelihoods: units do not matter)
            if abs(ll_new - ll) <= self.tol * abs(ll_new - hist["log_likelihood"][0]):
                converged = True
                break
        # Only now the attributes: a fit that raised (a singular covariance, a non-finite
        # likelihood) leaves the model as it was, unfitted or with its previous fit whole.
        self.weights_, self.means_, self.covariances_, self._factors = theta
        self.n_features_in_, self.n_iter_, self.converged_, self.history_ = D, it, converged, hist
        return self

    # ------------------------------------------------------------------ using the model
    def _checked(self, X):
        if not hasattr(self, "means_"):
            raise ValueError("this GaussianMixture is not fitted yet: call fit(X) first")
        X = as_data(X)
        check_columns(X, self.n_features_in_, "X", "this fitted GaussianMixture")
        return X

    def score_samples(self, X):
        """log p(x_n) = logsumexp_k [log pi_k + log N(x_n; mu_k, Sigma_k)], L4 (1): (N,)."""
        return logsumexp(self._log_joint(self._checked(X)), axis=1)

    def score(self, X):
        """Mean log-likelihood per example (0-d array)."""
        logp = self.score_samples(X)
        return array_namespace(logp).mean(logp)

    def predict_proba(self, X):
        """Responsibilities r_nk = p(z_n = k | x_n), L4 (6): (N, K), rows summing to 1."""
        log_joint = self._log_joint(self._checked(X))
        xp = array_namespace(log_joint)
        return xp.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))

    def predict(self, X):
        """The most probable component of each example: (N,) int64."""
        log_joint = self._log_joint(self._checked(X))
        return array_namespace(log_joint).argmax(log_joint, axis=1)

    def sample(self, n: int, seed: int | None = 0):
        """Draw n examples from L4 (1): k ~ Categorical(pi), x = mu_k + L_k eps, eps ~ N(0, I).

        Returns:
        - X: (n, D) samples; labels: (n,) int64 components they came from.
        """
        if not hasattr(self, "means_"):
            raise ValueError("this GaussianMixture is not fitted yet: call fit(X) first")
        xp = array_namespace(self.means_)
        rng = backend.RNG(seed)
        K, D = self.means_.shape
        dt = self.means_.dtype
        u = xp.astype(rng.uniform((n,)), dt)
        cdf = xp.cumulative_sum(self.weights_)                      # inverse-CDF draw of k
        labels = xp.sum(xp.astype(cdf[None, :] <= u[:, None] * cdf[-1], xp.int64), axis=1)
        labels = xp.clip(labels, 0, K - 1)
        eps = xp.astype(rng.normal((n, D)), dt)
        mu = xp.take(self.means_, labels, axis=0)                   # (n, D)
        if self.covariance_type == "full":
            L = xp.take(self._factors, labels, axis=0)              # (n, D, D)
            return mu + (L @ eps[:, :, None])[:, :, 0], labels
        scale = xp.sqrt(xp.take(self.covariances_, labels, axis=0))
        if self.covariance_type == "spherical":
            scale = scale[:, None]
        return mu + scale * eps, labels
