"""Probabilistic PCA (Tipping & Bishop 1999): closed-form maximum likelihood, and EM.

The model of lesson 4, for x: (p,) and a latent z: (q,), q < p:

    z ~ N(0, I_q),   x | z ~ N(W z + mu, sigma^2 I_p)   =>   x ~ N(mu, C),  C = W W' + sigma^2 I.   L4 (8)

Log-likelihood of one example, log N(x; mu, C), with M = W'W + sigma^2 I_q (q, q) and
xc = x - mu (Woodbury: C^-1 = (I - W M^-1 W') / sigma^2; determinant lemma:
|C| = sigma^{2(p-q)} |M|):

    log p(x) = -1/2 [ p log 2pi + (p - q) log sigma^2 + log|M| + xc'C^-1 xc ],
    xc'C^-1 xc = (xc'xc - xc'W m) / sigma^2 = ||xc - W m||^2 / sigma^2 + ||m||^2,  m = M^-1 W'xc.

The code uses the last form: the middle one subtracts two numbers that nearly cancel
when sigma^2 << lambda_1, the largest variance. The ELBO and the M-step below use
residuals likewise.

Closed form (Tipping & Bishop eqs. 7-8; lesson 4 states it below L4 (8)): with
S = Xc'Xc / N (the ML covariance), its eigenvalues lambda_1 >= ... >= lambda_p and
eigenvectors U,

    mu = mean,   sigma^2 = mean(lambda_{q+1..p}),   W = U_q (Lambda_q - sigma^2 I)^{1/2} R   (R = I here).

With R = I this is also W*, the optimum of a linear VAE's decoder, L6 (4).

Posterior of z given x (Tipping & Bishop eq. 6), the E-step:

    q(z_n) = p(z_n | x_n) = N(m_n, S),   m_n = M^-1 W' xc_n,   S = sigma^2 M^-1.       L4 (9)

EM as coordinate ascent on the ELBO (Neal & Hinton 1998; L4 (4)). For q(z_n) = N(m_n, S),
with E[z z'] summed over n:  Ezz = N S + sum_n m_n m_n' (the lesson's E),

    L(W, sigma^2, q) = sum_n E_q[log p(x_n | z_n) + log p(z_n)] + H[q(z_n)]
      = -N p/2 log(2 pi sigma^2) - (sum_n ||xc_n - W m_n||^2 + N tr(W'W S)) / (2 sigma^2)
        - N q/2 log 2pi - tr(Ezz)/2 + N q/2 (1 + log 2pi) + N/2 log|S|,

and log p(X) = L + sum_n KL(q(z_n) || p(z_n | x_n)), L4 (2). The E-step sets q by
L4 (9) (the gap closes); the M-step maximizes L over W then sigma^2 (Bishop PRML eqs.
12.56-12.57):

    W_new = [sum_n xc_n m_n'] Ezz^-1,                                                L4 (10)
    sigma^2_new = (sum_n ||xc_n - W_new m_n||^2 + N tr(W_new'W_new S)) / (N p)         L4 (10)

(the lesson writes sigma^2_new's numerator as sum_n ||xc_n||^2 - 2 sum_n m_n'W_new'xc_n
+ tr(W_new'W_new Ezz): the same number, see expected_sq_error).
mu is the sample mean in both methods (its ML value does not depend on W, sigma^2).

EM converges linearly, and slowly when the noise is small: near the optimum the length
of W along the i-th eigenvector contracts its error by about 1 - 2 sigma^2 / lambda_i
per iteration, so for lambda_i / sigma^2 = 300 it takes thousands of iterations, while
the log-likelihood, flat to second order there, already agrees to 1e-12. The subspace
itself converges fast (Roweis 1998).
All log-likelihoods and ELBOs reported here are per-example MEANS (nats per example), as
``score`` is in scikit-learn.
"""

from __future__ import annotations

import math

from array_api_compat import array_namespace

from .. import backend
from ..checks import check_columns, check_positive_int, check_tol
from ..densities import LOG_2PI
from .pca import as_data, fix_signs


FLOOR_EPS = 4.0  # fit refuses sigma^2 <= FLOOR_EPS * eps * lambda_1: rounding, not noise


def ppca_log_likelihood(Xc, W, sigma2):
    """Per-example log-likelihood log N(x_n; mu, C) under PPCA, L4 (8), and the posterior
    means m_n of L4 (9).

    Inputs:
    - Xc: (N, p) centred data x - mu.
    - W: (p, q) loadings.
    - sigma2: 0-d noise variance sigma^2 > 0.
    Returns:
    - logp: (N,) log p(x_n).
    - m: (N, q) posterior means E[z_n | x_n].
    - M: (q, q) W'W + sigma^2 I.
    """
    xp = array_namespace(Xc, W)
    p, q = W.shape
    M = W.T @ W + sigma2 * xp.eye(q, dtype=W.dtype, device=W.device)
    m = xp.linalg.solve(M, (Xc @ W).T).T                   # L4 (9): m_n = M^-1 W'xc_n
    R = Xc - m @ W.T                                       # (N, p) residuals xc_n - W m_n
    _, logdetM = xp.linalg.slogdet(M)
    # xc'C^-1 xc = (xc'xc - xc'W m) / sigma^2 = ||xc - W m||^2 / sigma^2 + ||m||^2, since
    # W'W m = (M - sigma^2 I) m = W'xc - sigma^2 m. The first form subtracts two nearly
    # equal numbers when sigma^2 << lambda_1 (0.4 nats lost in float32); the second adds.
    quad = xp.sum(R * R, axis=1) / sigma2 + xp.sum(m * m, axis=1)
    logp = -0.5 * (p * LOG_2PI + (p - q) * xp.log(sigma2) + logdetM + quad)
    return logp, m, M


def expected_sq_error(Xc, W, m, S):
    """sum_n E_q ||xc_n - W z_n||^2 for q(z_n) = N(m_n, S): in the ELBO, and the numerator
    of sigma^2_new in the M-step, L4 (10).

    sum_n ||xc_n||^2 - 2 sum_n m_n'W'xc_n + tr(W'W Ezz)
      = sum_n ||xc_n - W m_n||^2 + N tr(W'W S)        (Ezz = N S + sum_n m_n m_n'),
    computed in the second form, a sum of squares: in the first, terms of size
    N lambda_1 cancel down to about N p sigma^2 when the noise is small.

    Inputs:
    - Xc: (N, p), W: (p, q), m: (N, q), S: (q, q).
    Returns:
    - 0-d array.
    """
    xp = array_namespace(Xc, W)
    R = Xc - m @ W.T                                       # (N, p) residuals xc_n - W m_n
    return xp.sum(R * R) + Xc.shape[0] * xp.sum((W.T @ W) * S)  # tr(W'W S), S symmetric


def ppca_elbo(Xc, W, sigma2, m, S):
    """The ELBO L(theta, q) of L4 (2) per example (module docstring), for q(z_n) = N(m_n, S)
    and parameters (W, sigma^2).

    With S diagonal, S = diag(s^2), this is the linear VAE's closed-form ELBO L6 (2)
    averaged over the examples (with b = the data mean; the VAE's s^2 may vary with x,
    here it is shared): N tr(W'W S) = N sum_k s_k^2 ||w_k||^2, and the prior and entropy
    terms add up to minus the KL to N(0, I).

    Inputs:
    - Xc: (N, p) centred data.
    - W: (p, q), sigma2: 0-d.
    - m: (N, q) means of q(z_n); S: (q, q) their shared covariance.
    Returns:
    - 0-d array, L / N. Equals the mean log-likelihood when q is the exact posterior L4 (9):
      the KL in L4 (2) is then 0.
    """
    xp = array_namespace(Xc, W)
    N, p = Xc.shape
    q = W.shape[1]
    Ezz = N * S + m.T @ m                                  # sum_n E[z_n z_n']
    _, logdetS = xp.linalg.slogdet(S)
    e_loglik = -0.5 * N * p * (LOG_2PI + xp.log(sigma2)) - expected_sq_error(Xc, W, m, S) / (2.0 * sigma2)
    e_logprior = -0.5 * N * q * LOG_2PI - 0.5 * xp.sum(xp.linalg.diagonal(Ezz))
    entropy = 0.5 * N * q * (1.0 + LOG_2PI) + 0.5 * N * logdetS
    return (e_loglik + e_logprior + entropy) / N


class PPCA:
    """Probabilistic PCA, L4 (8), fitted in closed form or by EM, L4 (9)-(10).

    >>> model = PPCA(2).fit(X)                  # closed form
    >>> em = PPCA(2, method="em", seed=0).fit(X)
    >>> em.score(X)                             # mean log-likelihood per example
    >>> m, S = em.posterior(X)                  # (N, 2), (2, 2)

    Inputs (constructor):
    - n_components: q, 1 <= q < p and q < N.
    - method: "closed_form" or "em".
    - max_iter: EM iterations at most (default 1000).
    - tol: EM stops when an iteration raises the mean log-likelihood by at most tol
      times its total rise since the start (default 1e-10; below 0, never early);
      rescaling the data shifts the log-likelihood by a constant, which this test does not see.
    - seed: seeds the random initial W for EM (W0 ~ N(0, var) entries, sigma^2_0 = the
      mean data variance), unless W_init / noise_variance_init are given.
    - W_init: (p, q) finite, of full column rank q; noise_variance_init: finite, > 0.

    Attributes after fit (backend arrays): mean_ (p,), W_ (p, q), noise_variance_ (0-d,
    sigma^2), components_ (q, p) orthonormal rows spanning W's columns; for EM also
    n_iter_, converged_. history_ is a dict of lists, per-example means:
    "log_likelihood" and "elbo" after every half-step, and "step" ("E" or "M"; a single
    "closed_form" entry for the closed form).

    Degenerate data (all of it within a q-dimensional affine subspace) give sigma^2 = 0
    and an unbounded likelihood: fit raises ValueError rather than return NaN. So it does
    when sigma^2 <= 4 eps lambda_1, below what the dtype resolves (float32: sigma^2 / lambda_1
    <= 5e-7); fit such data in float64.
    """

    METHODS = ("closed_form", "em")

    def __init__(self, n_components: int, method: str = "closed_form", max_iter: int = 1000,
                 tol: float = 1e-10, seed: int | None = 0, W_init=None, noise_variance_init=None):
        n_components = check_positive_int(n_components, "n_components")
        if method not in self.METHODS:
            raise ValueError(f"method must be 'closed_form' or 'em', got {method!r}")
        max_iter = check_positive_int(max_iter, "max_iter")
        tol = check_tol(tol)
        self.n_components, self.method = n_components, method
        self.max_iter, self.tol, self.seed = max_iter, tol, seed
        self.W_init, self.noise_variance_init = W_init, noise_variance_init

    # ------------------------------------------------------------------ fitting
    def fit(self, X):
        """Fit mu, W, sigma^2 by maximum likelihood.

        Inputs:
        - X: (N, p) data, host or backend array.
        Returns:
        - self.
        """
        X = as_data(X)
        xp = array_namespace(X)
        N, p = X.shape
        q = self.n_components
        if q >= p:
            raise ValueError(f"PPCA needs n_components < n_features (q={q}, p={p}): with q = p "
                             "there is no discarded direction to estimate sigma^2 from")
        if q >= N:
            raise ValueError(f"n_components={q} must be less than n_samples={N}: with N examples "
                             f"the data span at most N - 1 = {N - 1} directions")
        mean = xp.mean(X, axis=0)
        Xc = X - mean
        lam, Vt = self._spectrum(Xc)  # eigenvalues (descending) and eigenvectors of S
        floor = self._floor(Xc, lam[0])
        # Both methods climb to the closed-form sigma^2 = mean(lambda_{q+1..p}): data that
        # make it 0 (an unbounded likelihood) are refused here, before either runs.
        self._check_sigma2(xp.sum(lam[q:]) / (p - q), floor)
        if self.method == "closed_form":
            fitted = self._fit_closed_form(Xc, lam, Vt)  # W_, noise_variance_, history_, n_iter_, converged_
        else:
            fitted = self._fit_em(Xc, floor)
        U = xp.linalg.svd(fitted["W_"], full_matrices=False)[0]  # orthonormal basis of span(W)
        # Only now, with nothing left to fail, the attributes: a fit that raised leaves the
        # model as it was (unfitted, or the previous fit), never half of each.
        vars(self).update(fitted)
        self.mean_, self.n_features_in_ = mean, p
        self.components_ = fix_signs(U.T)                   # (q, p)
        return self

    @staticmethod
    def _floor(Xc, lam1) -> float:
        """The smallest sigma^2 this dtype resolves: rounding moves the eigenvalues of
        S = Xc'Xc/N by about eps lambda_1 (exactly flat data give |sigma^2| < 0.5 eps
        lambda_1), so a sigma^2 below a few eps lambda_1 cannot be told from 0."""
        return FLOOR_EPS * array_namespace(Xc).finfo(Xc.dtype).eps * float(lam1)

    def _check_sigma2(self, sigma2, floor: float):
        if float(sigma2) > floor:
            return
        if floor == 0.0:  # lambda_1 = 0
            raise ValueError("X has no variance (every row is the same): PPCA has nothing to model; "
                             "pass data whose rows differ")
        xp = array_namespace(sigma2)
        finfo = xp.finfo(sigma2.dtype)
        dtype, q = f"float{finfo.bits}", self.n_components
        msg = (f"sigma^2 = {float(sigma2):.3g} is below what {dtype} resolves relative to the "
               f"largest variance lambda_1 = {floor / (FLOOR_EPS * finfo.eps):.3g} "
               f"({FLOOR_EPS:g} eps lambda_1 = {floor:.3g}): ")
        if finfo.bits < 64:
            msg += (f"the noise is too small for {dtype}, or the data lie in an affine subspace of "
                    f"dimension <= n_components={q}, where the PPCA likelihood is unbounded; fit "
                    'in float64 (backend.use(..., dtype="float64")) or use fewer components')
        else:
            msg += (f"the data lie (up to rounding) in an affine subspace of dimension <= "
                    f"n_components={q}, so the PPCA likelihood is unbounded; use fewer components (or PCA)")
        raise ValueError(msg)

    @staticmethod
    def _spectrum(Xc):
        """The eigenvalues lambda (descending) and eigenvectors (the rows of Vt) of
        S = Xc'Xc / N, from the SVD Xc = U diag(s) V': S = V diag(s^2 / N) V'. The SVD
        never forms S, whose rounding would blur every eigenvalue below eps lambda_1;
        from s, lambda_i is good to about eps^2 lambda_1."""
        _, s, Vt = array_namespace(Xc).linalg.svd(Xc, full_matrices=False)  # min(N, p) of them
        return s * s / Xc.shape[0], Vt                    # lambda_i (the rest, if N < p, are 0)

    def _fit_closed_form(self, Xc, lam, Vt) -> dict:
        """Tipping & Bishop's closed form, from the spectrum of S (``_spectrum``)."""
        xp = array_namespace(Xc)
        p = Xc.shape[1]
        q = self.n_components
        sigma2 = xp.sum(lam[q:]) / (p - q)                 # sigma^2: mean of the p - q discarded
        Uq = fix_signs(Vt[:q, :]).T                        # (p, q) top-q eigenvectors
        scale = xp.sqrt(xp.clip(lam[:q] - sigma2, 0.0, None))  # (Lambda_q - sigma^2 I)^{1/2}
        W = Uq * scale[None, :]                            # R = I: L6 (4)'s W*, the linear VAE's optimum
        logp, m, M = ppca_log_likelihood(Xc, W, sigma2)
        ll = xp.mean(logp)
        elbo = ppca_elbo(Xc, W, sigma2, m, sigma2 * xp.linalg.inv(M))
        history = {"log_likelihood": [float(ll)], "elbo": [float(elbo)], "step": ["closed_form"]}
        return {"W_": W, "noise_variance_": sigma2, "history_": history, "n_iter_": 0, "converged_": True}

    def _init_em(self, Xc):
        xp = array_namespace(Xc)
        N, p = Xc.shape
        q = self.n_components
        var = xp.sum(Xc * Xc) / (N * p)                    # mean data variance
        if self.W_init is not None:
            W = backend.asarray(self.W_init, dtype=Xc.dtype)
            if W.shape != (p, q):
                raise ValueError(f"W_init must have shape (p, q) = {(p, q)}, got {W.shape}")
            if not bool(xp.all(xp.isfinite(W))):
                raise ValueError("W_init contains NaN or inf: give finite loadings")
            sv = xp.linalg.svdvals(W)                      # descending
            if not float(sv[-1]) > xp.finfo(W.dtype).eps * p * float(sv[0]):
                # EM never leaves a rank-deficient W (W = 0 is a fixed point): m_n and
                # W_new stay in the directions W_init spans
                raise ValueError(f"W_init must have full column rank q={q} (independent columns); "
                                 f"its singular values are {backend.to_numpy(sv)}")
        else:
            W = backend.RNG(self.seed).normal((p, q)) * xp.sqrt(var)
            W = xp.astype(W, Xc.dtype)
        if self.noise_variance_init is not None:
            sigma2 = backend.asarray(float(self.noise_variance_init), dtype=Xc.dtype)
            if not (math.isfinite(float(sigma2)) and float(sigma2) > 0):
                raise ValueError(f"noise_variance_init must be finite and > 0, got {self.noise_variance_init}")
        else:
            sigma2 = var
        return W, sigma2

    def _fit_em(self, Xc, floor: float) -> dict:
        """EM from ``_init_em``; ``floor``: the smallest sigma^2 this dtype resolves."""
        xp = array_namespace(Xc)
        N, p = Xc.shape
        W, sigma2 = self._init_em(Xc)
        hist = {"log_likelihood": [], "elbo": [], "step": []}
        logp, m, M = ppca_log_likelihood(Xc, W, sigma2)
        ll = float(xp.mean(logp))
        converged = False
        for it in range(1, self.max_iter + 1):
            # E-step, L4 (9): q(z_n) = p(z_n | x_n) = N(m_n, S); now ELBO = log p(X), L4 (2)
            S = sigma2 * xp.linalg.inv(M)                  # S = sigma^2 M^-1
            hist["log_likelihood"].append(ll)
            hist["elbo"].append(float(ppca_elbo(Xc, W, sigma2, m, S)))
            hist["step"].append("E")

            # M-step, L4 (10): maximize the ELBO over W, then sigma^2
            Ezz = N * S + m.T @ m                          # sum_n E[z_n z_n']
            XcTm = Xc.T @ m                                # sum_n xc_n m_n'  (p, q)
            W = xp.linalg.solve(Ezz, XcTm.T).T             # L4 (10): W_new = XcTm Ezz^-1 (Ezz symmetric)
            sigma2 = expected_sq_error(Xc, W, m, S) / (N * p)  # L4 (10): sigma^2_new
            self._check_sigma2(sigma2, floor)
            m_old = m
            logp, m, M = ppca_log_likelihood(Xc, W, sigma2)  # new parameters, next posterior
            ll_old, ll = ll, float(xp.mean(logp))
            hist["log_likelihood"].append(ll)
            hist["elbo"].append(float(ppca_elbo(Xc, W, sigma2, m_old, S)))  # old q, new theta
            hist["step"].append("M")
            if not math.isfinite(ll):
                raise ValueError("PPCA EM produced a non-finite log-likelihood; check the data scale")
            # converged when this iteration's gain is a small part of the gain so far (a
            # difference of log-likelihoods: the units of the data do not matter)
            if abs(ll - ll_old) <= self.tol * abs(ll - hist["log_likelihood"][0]):
                converged = True
                break
        return {"W_": W, "noise_variance_": sigma2, "history_": hist, "n_iter_": it, "converged_": converged}

    # ------------------------------------------------------------------ using the model
    def _centred(self, X):
        if not hasattr(self, "W_"):
            raise ValueError("this PPCA is not fitted yet: call fit(X) first")
        X = as_data(X)
        check_columns(X, self.n_features_in_, "X", "this fitted PPCA")
        return X - self.mean_

    def score_samples(self, X):
        """log p(x_n) = log N(x_n; mu, C) under the fitted model, L4 (8).

        Inputs:
        - X: (N, p).
        Returns:
        - logp: (N,).
        """
        return ppca_log_likelihood(self._centred(X), self.W_, self.noise_variance_)[0]

    def score(self, X):
        """Mean log-likelihood per example (0-d array), as scikit-learn's PCA.score.

        After a closed-form fit this is ell_PPCA, the maximum: by L6 (3) no linear VAE's
        ELBO on the same data exceeds it.
        """
        logp = self.score_samples(X)
        return array_namespace(logp).mean(logp)

    def posterior(self, X):
        """Posterior of z given x, L4 (9): q(z_n) = N(m_n, S).

        Inputs:
        - X: (N, p).
        Returns:
        - m: (N, q) posterior means M^-1 W'(x_n - mu).
        - S: (q, q) the posterior covariance sigma^2 M^-1 (the same for every n).
        """
        _, m, M = ppca_log_likelihood(self._centred(X), self.W_, self.noise_variance_)
        return m, self.noise_variance_ * array_namespace(M).linalg.inv(M)

    def transform(self, X):
        """The posterior means E[z | x]: (N, q)."""
        return self.posterior(X)[0]

    def sample(self, n: int, seed: int | None = 0):
        """Draw n examples from the model L4 (8): x = W z + mu + sigma eps.

        Returns:
        - X: (n, p).
        """
        if not hasattr(self, "W_"):
            raise ValueError("this PPCA is not fitted yet: call fit(X) first")
        xp = array_namespace(self.W_)
        rng = backend.RNG(seed)
        p, q = self.W_.shape
        z = xp.astype(rng.normal((n, q)), self.W_.dtype)
        eps = xp.astype(rng.normal((n, p)), self.W_.dtype)
        return z @ self.W_.T + self.mean_ + xp.sqrt(self.noise_variance_) * eps
