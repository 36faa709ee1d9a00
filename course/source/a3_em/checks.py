"""The checks of assignment 3 (EM: Gaussian mixtures and probabilistic PCA), one per exercise.

The answer key: scratchvae.mixture.gmm (log_gaussian, m_step, elbo, GaussianMixture) and
scratchvae.linear.ppca (ppca_log_likelihood, PPCA in closed form and by EM). A check
prints "Correct: ..." or stops with "Not yet: ..." and a hint.
"""

import numpy as np

from scratchvae import backend, datasets
from scratchvae.arrays import logsumexp
from scratchvae.linear import PCA, PPCA, subspace_angles
from scratchvae.linear.ppca import ppca_log_likelihood as ref_ppca_log_likelihood
from scratchvae.mixture import gmm
from scratchvae.mixture.gmm import GaussianMixture
from verdict import call, close, compare, fail, own_work, require, returned


def np_(a):
    return np.asarray(backend.to_numpy(a), dtype=np.float64)


def mixture(seed=0, n=600):
    """2-D points from three Gaussians: (n, 2) float64."""
    return datasets.gaussian_mixture(n=n, seed=seed).x


def random_theta(seed, K=3, D=2, spread=3.0):
    """Weights (K,), means (K, D) and symmetric positive definite covariances (K, D, D)."""
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.ones(K) * 2.0)
    means = rng.normal(0.0, spread, size=(K, D))
    A = rng.normal(size=(K, D, D))
    covs = A @ np.swapaxes(A, 1, 2) + 0.5 * np.eye(D)
    return weights, means, covs


def random_resp(seed, N, K=3):
    return np.random.default_rng(seed).dirichlet(np.ones(K), size=N)


def ref_log_joint(X, weights, means, covs):
    """log pi_k + log N(x_n; mu_k, Sigma_k): (N, K), the answer key's."""
    factors = gmm.cholesky_factors(covs, "full")
    return np_(gmm.log_gaussian(X, means, factors, "full")) + np.log(weights)


# ---------------------------------------------------------------- 3.1 the Gaussian log-density

def log_gaussian(log_gaussian, seed=1, n=50, K=3, D=2):
    """Exercise 3.1: log N(x_n; mu_k, Sigma_k) for every example and component, the terms of L4 (1)."""
    own_work(log_gaussian)
    weights, means, covs = random_theta(seed, K, D)
    X = np.random.default_rng(seed + 100).normal(0.0, 3.0, size=(n, D))
    got = returned(call(log_gaussian, X, means, covs), ["logN"], "log_gaussian")
    compare("logN", got, ref_log_joint(X, weights, means, covs) - np.log(weights),
            "scratchvae.mixture.gmm.log_gaussian",
            hint="log N(x; mu, Sigma) = -1/2 [D log(2 pi) + log|Sigma| + (x - mu)^T Sigma^-1 (x - mu)]; "
                 "np.linalg.slogdet gives log|Sigma|, np.linalg.solve gives Sigma^-1 (x - mu) without an "
                 "inverse. The result is (N, K): one column per component.")


# ---------------------------------------------------------------- 3.2 the E-step

def e_step(log_gaussian_fn, e_step, seed=2, n=60, shift=0.0):
    """Exercise 3.2: the responsibilities by Bayes' rule, in logs, L4 (6)."""
    require("3.1", "log_gaussian", log_gaussian, log_gaussian_fn)
    own_work(e_step)
    weights, means, covs = random_theta(seed)
    X = np.random.default_rng(seed + 100).normal(0.0, 3.0, size=(n, 2)) + shift
    log_resp, log_px = returned(call(e_step, X, weights, means, covs), ["log_resp", "log_px"], "e_step")
    lj = ref_log_joint(X, weights, means, covs)
    ref_px = np_(logsumexp(lj, axis=1))
    hint = ("log r_nk = log pi_k + log N(x_n; mu_k, Sigma_k) - log p(x_n), L4 (6), with log p(x_n) the "
            "log-sum-exp over k of the first two terms. Work in logs: subtract each row's largest term "
            "before np.exp, add it back after np.log (far from every mean the densities underflow to 0).")
    for name, value in (("log_resp", log_resp), ("log_px", log_px)):
        v = np.asarray(value, dtype=np.float64)
        if v.shape == (ref_px.shape if name == "log_px" else lj.shape) and not np.all(np.isfinite(v)):
            fail(f"{name} has NaN or -inf entries"
                 + (f" for points about {shift:g} away from the means" if shift else "") + f". Hint: {hint}")
    # atol: a log-responsibility near 0 (a near-certain component) is good to about 1e-15 nats,
    # not to a relative 1e-7
    compare("log_px", log_px, ref_px, "the log-sum-exp of scratchvae's log-joint", hint=hint, say_correct=False,
            atol=1e-10)
    compare("log_resp", log_resp, lj - ref_px[:, None], "scratchvae's responsibilities, in logs",
            hint=hint + " Each row of exp(log_resp) sums to 1 (normalize over the components, axis 1).",
            say_correct=False, atol=1e-10)
    print("Correct: your log_resp and log_px match the answer key"
          + (f", also {shift:g} away from the means." if shift else "."))


# ---------------------------------------------------------------- 3.3 the M-step

def m_step(m_step, seed=3, n=80, K=3, D=2, reg_covar=1e-6):
    """Exercise 3.3: the weighted counts, weights, means and covariances of L4 (7)."""
    own_work(m_step)
    X = np.random.default_rng(seed).normal(0.0, 2.0, size=(n, D))
    resp = random_resp(seed, n, K)
    weights, means, covs = returned(call(m_step, X, resp, reg_covar), ["weights", "means", "covs"], "m_step")
    ref_w, ref_m, ref_c = (np_(a) for a in gmm.m_step(X, resp, "full", reg_covar))
    compare("weights", weights, ref_w, "scratchvae.mixture.gmm.m_step",
            hint="N_k = sum_n r_nk and pi_k = N_k / N, L4 (7).", say_correct=False)
    compare("means", means, ref_m, "scratchvae.mixture.gmm.m_step",
            hint="mu_k = sum_n r_nk x_n / N_k, L4 (7): in matrices, resp^T X divided row by row by N_k.",
            say_correct=False)
    covs = np.asarray(covs, dtype=np.float64)
    if covs.shape == ref_c.shape:
        nk = resp.sum(axis=0)
        by_n = (ref_c - reg_covar * np.eye(D)) * (nk / n)[:, None, None] + reg_covar * np.eye(D)
        if np.allclose(covs, by_n, rtol=1e-6):
            fail("your covs divide the weighted sum by N, the number of examples; each component's "
                 "covariance divides by its own soft count N_k = sum_n r_nk, L4 (7).")
        if np.allclose(covs, ref_c - reg_covar * np.eye(D), rtol=1e-9, atol=1e-12):
            fail(f"your covs leave out reg_covar: add reg_covar = {reg_covar:g} to each covariance's diagonal.")
    compare("covs", covs, ref_c, "scratchvae.mixture.gmm.m_step",
            hint="Sigma_k = sum_n r_nk (x_n - mu_k)(x_n - mu_k)^T / N_k + reg_covar I, L4 (7), with the NEW "
                 "mu_k; shape (K, D, D).", say_correct=False)
    print("Correct: your weights, means and covariances match scratchvae.mixture.gmm.m_step.")


# ---------------------------------------------------------------- 3.4 the ELBO

def elbo(elbo, seed=4, n=40, K=3):
    """Exercise 3.4: the mixture's ELBO per example, L4 (3)."""
    own_work(elbo)
    X = mixture(seed=seed, n=n)
    weights, means, covs = random_theta(seed)
    lj = ref_log_joint(X, weights, means, covs)
    log_resp = np.log(random_resp(seed, n, K))
    got = returned(call(elbo, log_resp, lj), ["elbo"], "elbo")
    hint = ("L = (1/N) sum_n sum_k r_nk [log pi_k + log N(x_n; mu_k, Sigma_k) - log r_nk], L4 (3): a mean "
            "over the examples, with r_nk = exp(log_resp).")
    compare("elbo", got, gmm.elbo(log_resp, lj), "scratchvae.mixture.gmm.elbo", hint=hint, say_correct=False)
    exact = lj - np_(logsumexp(lj, axis=1))[:, None]  # the posterior: the gap closes, L4 (2)
    compare("elbo at the posterior", call(elbo, exact, lj), np.mean(np_(logsumexp(lj, axis=1))),
            "the mean log-likelihood (at r = the posterior the gap of L4 (2) is 0)", hint=hint, say_correct=False)
    print("Correct: your elbo matches scratchvae.mixture.gmm.elbo, and equals log p(x) at the posterior.")


# ---------------------------------------------------------------- 3.5 EM

def fit_gmm(fns, fit_gmm, seed=5, n=400, K=3, n_iter=30, reg_covar=1e-6):
    """Exercise 3.5: EM as coordinate ascent on the ELBO, L4 (4)-(5), against GaussianMixture."""
    require("3.2", "e_step", e_step, fns["log_gaussian"], fns["e_step"])
    require("3.3", "m_step", m_step, fns["m_step"])
    require("3.4", "elbo", elbo, fns["elbo"])
    own_work(fit_gmm)
    X = mixture(seed=seed, n=n)
    init = random_resp(seed, n, K)
    theta, history = returned(call(fit_gmm, X, init, n_iter, reg_covar), ["theta", "history"], "fit_gmm")
    if not isinstance(history, dict) or not {"log_likelihood", "elbo"} <= set(history):
        fail("history should be a dict with the lists 'log_likelihood' and 'elbo'.")
    ll = np.asarray(history["log_likelihood"], dtype=np.float64)
    el = np.asarray(history["elbo"], dtype=np.float64)
    if ll.shape != (2 * n_iter,) or el.shape != (2 * n_iter,):
        fail(f"with n_iter = {n_iter} the history should hold {2 * n_iter} entries each (one after every "
             f"E-step and one after every M-step), got {ll.shape[0]} and {el.shape[0]}.")
    gap_e = np.max(np.abs(el[0::2] - ll[0::2]))
    if gap_e > 1e-8 * max(1.0, np.max(np.abs(ll))):
        fail(f"after an E-step the ELBO should equal the log-likelihood (the KL of L4 (2) is 0), but they "
             f"differ by up to {gap_e:.2g}. Hint: after the E-step, compute the ELBO with the new log_resp and "
             "the log-joint of the parameters it came from.")
    if np.any(el[1::2] > ll[1::2] + 1e-8):
        fail("after an M-step the ELBO exceeds the log-likelihood; it is a lower bound, L4 (2). Hint: after "
             "the M-step, use the OLD responsibilities with the NEW parameters' log-joint.")
    drops = np.diff(ll)
    if np.any(drops < -1e-9):
        i = int(np.argmin(drops))
        fail(f"the log-likelihood fell from {ll[i]:.8g} to {ll[i + 1]:.8g} at entry {i + 1}; EM never "
             "lowers it, L4 (5). Hint: each entry is the mean log p(x) under the parameters of that moment.")
    ref = GaussianMixture(K, covariance_type="full", reg_covar=reg_covar, max_iter=n_iter, tol=-1.0).fit(X, init_resp=init)
    ref_ll = np.asarray(ref.history_["log_likelihood"])
    close("log_likelihood history", ll, ref_ll, "scratchvae's GaussianMixture from the same start",
          rtol=1e-6, atol=1e-9,
          hint="start with an M-step on init_resp, then n_iter times: an E-step (record), an M-step "
               "(record), as L4 (4).", say_correct=False)
    if not isinstance(theta, (tuple, list)) or len(theta) != 3:
        fail("theta should be the tuple (weights, means, covs) after the last M-step.")
    close("final means", theta[1], np_(ref.means_), "scratchvae's GaussianMixture", rtol=1e-5, atol=1e-8,
          hint="return the parameters of the last M-step.", say_correct=False)
    print(f"Correct: your EM climbs from {ll[0]:.4f} to {ll[-1]:.4f} nats per example, never down, the "
          "ELBO touches it after every E-step, and every step matches scratchvae's GaussianMixture.")


# ---------------------------------------------------------------- 3.6 - 3.8 probabilistic PCA

def low_rank(seed=0, n=500, p=10, q=3, noise=0.5):
    return datasets.low_rank(n=n, p=p, q=q, noise=noise, seed=seed).x


def ppca_log_likelihood(ppca_log_likelihood, seed=6, n=30, p=6, q=2):
    """Exercise 3.6: log N(x_n; mu, W W^T + sigma^2 I) under PPCA, L4 (8)."""
    own_work(ppca_log_likelihood)
    rng = np.random.default_rng(seed)
    Xc = rng.normal(size=(n, p)) * 2.0
    W, sigma2 = rng.normal(size=(p, q)), 0.3
    got = returned(call(ppca_log_likelihood, Xc, W, sigma2), ["logp"], "ppca_log_likelihood")
    ref = np_(ref_ppca_log_likelihood(Xc, W, np.asarray(sigma2))[0])
    compare("logp", got, ref, "scratchvae.linear.ppca.ppca_log_likelihood",
            hint="x ~ N(mu, C) with C = W W^T + sigma^2 I, L4 (8): log p(x_n) = -1/2 [p log(2 pi) + log|C| "
                 "+ xc_n^T C^-1 xc_n], one value per example, shape (N,).")


def ppca_em_step(ppca_em_step, seed=7, q=3):
    """Exercise 3.7: one EM step of PPCA, L4 (9)-(10), against scratchvae's PPCA by EM."""
    own_work(ppca_em_step)
    X = low_rank(seed=seed)
    Xc = X - X.mean(axis=0)
    rng = np.random.default_rng(seed)
    W, sigma2 = rng.normal(size=(Xc.shape[1], q)), 1.3
    W_new, sigma2_new = returned(call(ppca_em_step, Xc, W, sigma2), ["W_new", "sigma2_new"], "ppca_em_step")
    ref = PPCA(q, method="em", max_iter=1, W_init=W, noise_variance_init=sigma2).fit(Xc)
    compare("W_new", W_new, ref.W_, "one step of scratchvae's PPCA(method='em')",
            hint="E-step, L4 (9): M = W^T W + sigma^2 I, m_n = M^-1 W^T xc_n, S = sigma^2 M^-1; then "
                 "E = N S + sum_n m_n m_n^T and W_new = (sum_n xc_n m_n^T) E^-1, L4 (10).", say_correct=False)
    compare("sigma2_new", sigma2_new, ref.noise_variance_, "one step of scratchvae's PPCA(method='em')",
            hint="L4 (10): sigma2_new = [sum_n ||xc_n||^2 - 2 sum_n m_n^T W_new^T xc_n + tr(W_new^T W_new E)] "
                 "/ (N p), with the NEW W.", say_correct=False)
    print("Correct: your W_new and sigma2_new match one step of scratchvae's PPCA by EM.")


def ppca_em(fns, ppca_em, n_iter, seed=8, q=3):
    """Exercise 3.8: PPCA by EM reaches the closed-form maximum likelihood."""
    require("3.6", "ppca_log_likelihood", ppca_log_likelihood, fns["ppca_log_likelihood"])
    require("3.7", "ppca_em_step", ppca_em_step, fns["ppca_em_step"])
    own_work(ppca_em)
    X = low_rank(seed=seed)
    mean, W, sigma2, lls = returned(call(ppca_em, X, q, n_iter, seed), ["mean", "W", "sigma2", "lls"], "ppca_em")
    lls = np.asarray(lls, dtype=np.float64)
    if lls.shape != (n_iter,):
        fail(f"lls should hold the mean log-likelihood after each of the {n_iter} iterations, got shape {lls.shape}.")
    if np.any(np.diff(lls) < -1e-9):
        fail("your log-likelihood falls at some iteration; EM never lowers it, L4 (5).")
    closed = PPCA(q).fit(X)
    target = float(closed.score(X))
    close("final mean log-likelihood", lls[-1], target, "the closed form's maximum (scratchvae's PPCA)",
          rtol=0.0, atol=1e-6, hint="start from the W and sigma^2 given, centre X with its mean, and take "
                                    f"all {n_iter} steps of your 3.7.", say_correct=False)
    close("sigma2", sigma2, np_(closed.noise_variance_), "the closed form's sigma^2", rtol=1e-4,
          hint="return the last step's sigma^2.", say_correct=False)
    angle = float(np.degrees(np.max(np_(subspace_angles(np.asarray(W), np_(PCA(q).fit(X).components_).T)))))
    if angle > 0.1:
        fail(f"span(W) is {angle:.3g} degrees from PCA's subspace; it should be below 0.1.")
    print(f"Correct: after {n_iter} EM steps your log-likelihood is {lls[-1]:.7f}, the closed form's maximum "
          f"is {target:.7f}, and span(W) is within {angle:.1g} degrees of PCA's subspace.")
