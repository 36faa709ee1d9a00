"""Probabilistic PCA: the Tipping-Bishop closed form, EM as coordinate ascent, the posterior.

Tolerances: the exactness claims (ELBO = log-likelihood after an E-step to 1e-10; EM meets
the closed form to 1e-8 relative) are asserted in float64 (``bk64``, or ``tol(bk)`` whose
float32 band is 1e-4 relative: float32 rounding of a per-example log-likelihood of size
~10 is ~1e-6, and EM's sums over N examples lose a little more).
"""

import numpy as np
import pytest

from scratchvae.linear import PCA, PPCA, subspace_angles

from conftest import host, tol


def _data(hrng, N=400, p=6, q=2, noise=0.5, scales=(3.0, 2.0)):
    W = hrng.normal(size=(p, q)) * np.array(scales)[:q]
    return hrng.normal(size=(N, q)) @ W.T + noise * hrng.normal(size=(N, p)) + 1.0


def _mvn_logpdf(X, mu, C):
    """Host oracle: log N(x | mu, C) by Cholesky."""
    L = np.linalg.cholesky(C)
    Y = np.linalg.solve(L, (X - mu).T)
    return -0.5 * (X.shape[1] * np.log(2 * np.pi) + 2 * np.log(np.diag(L)).sum() + (Y ** 2).sum(axis=0))


def test_closed_form_is_tipping_bishop(bk, hrng):
    X = _data(hrng)
    N, p, q = X.shape[0], X.shape[1], 2
    m = PPCA(q).fit(X)
    S = np.cov(X, rowvar=False, bias=True)             # ML covariance, 1/N
    lam, U = np.linalg.eigh(S)
    lam, U = lam[::-1], U[:, ::-1]
    sigma2 = lam[q:].mean()
    r = tol(bk, 1e-10, 1e-4)
    np.testing.assert_allclose(float(m.noise_variance_), sigma2, rtol=r)
    W = host(m.W_)
    # W = U_q (Lambda_q - sigma^2 I)^{1/2} (R = I): column norms and directions
    np.testing.assert_allclose(np.linalg.norm(W, axis=0), np.sqrt(lam[:q] - sigma2), rtol=r)
    np.testing.assert_allclose(np.abs(W.T @ U[:, :q]), np.diag(np.sqrt(lam[:q] - sigma2)), atol=r * lam[0])
    C = W @ W.T + float(m.noise_variance_) * np.eye(p)
    # the model covariance keeps the top-q eigenpairs of S and replaces the rest by sigma^2
    np.testing.assert_allclose(C, U @ np.diag(np.r_[lam[:q], [sigma2] * (p - q)]) @ U.T, atol=r * lam[0])
    # score: the mean log-density of N(mean, C), by a host oracle
    want = _mvn_logpdf(X, X.mean(axis=0), C)
    np.testing.assert_allclose(host(m.score_samples(X)), want, rtol=r)
    np.testing.assert_allclose(float(m.score(X)), want.mean(), rtol=r)
    assert m.history_["log_likelihood"] == pytest.approx(m.history_["elbo"], abs=tol(bk, 1e-10, 1e-3))


def test_closed_form_is_a_maximum(bk64, hrng):
    X = _data(hrng)
    m = PPCA(2).fit(X)
    best = float(m.score(X))
    W, s2 = host(m.W_), float(m.noise_variance_)
    mu = X.mean(axis=0)
    for dW, ds in [(1e-3 * hrng.normal(size=W.shape), 0.0), (0.0, 1e-3), (0.0, -1e-3)]:
        C = (W + dW) @ (W + dW).T + (s2 + ds) * np.eye(6)
        assert _mvn_logpdf(X, mu, C).mean() < best


def test_posterior_matches_gaussian_conditioning(bk, hrng):
    X = _data(hrng, N=50)
    m = PPCA(2).fit(X)
    W, s2, mu = host(m.W_), float(m.noise_variance_), host(m.mean_)
    C = W @ W.T + s2 * np.eye(6)
    # joint Gaussian (z, x): E[z|x] = W'C^-1 (x - mu), Cov[z|x] = I - W'C^-1 W
    mean_ref = np.linalg.solve(C, (X - mu).T).T @ W
    cov_ref = np.eye(2) - W.T @ np.linalg.solve(C, W)
    mean, cov = m.posterior(X)
    np.testing.assert_allclose(host(mean), mean_ref, atol=tol(bk, 1e-10, 1e-4))
    np.testing.assert_allclose(host(cov), cov_ref, atol=tol(bk, 1e-12, 1e-5))
    np.testing.assert_allclose(host(m.transform(X)), host(mean), atol=0)


def test_em_is_coordinate_ascent(bk, hrng):
    X = _data(hrng)
    m = PPCA(2, method="em", max_iter=60, tol=0.0, seed=3).fit(X)
    h = m.history_
    ll, el = np.array(h["log_likelihood"]), np.array(h["elbo"])
    assert h["step"][:4] == ["E", "M", "E", "M"] and len(ll) == 120
    scale = max(1.0, np.abs(ll).max())
    rnd = tol(bk, 1e-12, 1e-5) * scale                     # rounding of a per-example mean
    assert np.all(np.diff(ll) >= -rnd)                     # log-likelihood never decreases
    gap_e = np.abs(ll[0::2] - el[0::2])                    # after each E-step: KL = 0
    assert gap_e.max() <= tol(bk, 1e-10, 1e-4) * scale
    assert np.all(el[1::2] >= el[0::2] - rnd)              # an M-step does not lower the ELBO
    assert np.all(el[1::2] <= ll[1::2] + rnd)              # ELBO <= log-likelihood (KL >= 0)
    assert ll[-1] - ll[0] > 0.1                            # and EM did climb


def test_em_reaches_the_closed_form(bk64, hrng):
    # lambda_i / sigma^2 ~ 10..30, so that EM's parameters (not only its log-likelihood,
    # which is flat near the optimum) converge in a few hundred iterations
    X = _data(hrng, scales=(1.0, 0.7))
    cf = PPCA(2).fit(X)
    em = PPCA(2, method="em", seed=1, tol=1e-15, max_iter=2000).fit(X)
    assert em.converged_
    ll_cf, ll_em = float(cf.score(X)), float(em.score(X))
    assert abs(ll_em - ll_cf) <= 1e-8 * abs(ll_cf)
    assert ll_em <= ll_cf + 1e-12 * abs(ll_cf)             # the closed form is the maximum
    assert host(subspace_angles(em.W_, cf.W_)).max() < 1e-6
    W_em, W_cf = host(em.W_), host(cf.W_)
    # W is fixed up to a rotation R: W W' is not. The stopping rule watches the
    # log-likelihood, whose error is quadratic in the parameters' error: a log-likelihood
    # right to ~1e-14 leaves the parameters right to ~1e-7 relative.
    WWt = W_cf @ W_cf.T
    np.testing.assert_allclose(W_em @ W_em.T, WWt, atol=1e-5 * np.abs(WWt).max())
    np.testing.assert_allclose(float(em.noise_variance_), float(cf.noise_variance_), rtol=1e-6)


def test_zero_noise_limit_is_pca(bk64, hrng):
    """W M^-1 W' (posterior mean, mapped back) -> the PCA projector U U' as sigma^2 -> 0.

    With W = U_q (Lambda_q - sigma^2)^{1/2}: W M^-1 W' = U_q diag(1 - sigma^2 / lambda_i) U_q',
    so its distance to U_q U_q' in the 2-norm is exactly sigma^2 / lambda_q.
    """
    devs = []
    for noise in [0.3, 0.03, 0.003]:
        X = _data(hrng, N=300, noise=noise)
        m = PPCA(2).fit(X)
        pca = PCA(2).fit(X)
        assert host(subspace_angles(m.W_, pca.components_.T)).max() < 1e-8
        W, s2 = host(m.W_), float(m.noise_variance_)
        P = W @ np.linalg.solve(W.T @ W + s2 * np.eye(2), W.T)
        V = host(pca.components_)
        lam_q = np.sort(np.linalg.eigvalsh(np.cov(X, rowvar=False, bias=True)))[::-1][1]
        dev = np.linalg.norm(P - V.T @ V, 2)
        np.testing.assert_allclose(dev, s2 / lam_q, rtol=1e-6)
        # the reconstruction from the posterior mean vs PCA's
        Xhat = host(m.transform(X)) @ W.T + host(m.mean_)
        devs.append(np.abs(Xhat - host(pca.inverse_transform(pca.transform(X)))).max())
    assert devs[0] > devs[1] > devs[2] and devs[2] < 1e-4


def test_sample_moments(bk, hrng):
    X = _data(hrng, N=300, p=4)
    m = PPCA(2).fit(X)
    Y = host(m.sample(20000, seed=5))
    assert Y.shape == (20000, 4)
    W, s2 = host(m.W_), float(m.noise_variance_)
    C = W @ W.T + s2 * np.eye(4)
    se = np.sqrt((np.outer(np.diag(C), np.diag(C)) + C ** 2) / 20000)   # std. error of a covariance
    assert np.all(np.abs(np.cov(Y, rowvar=False) - C) < 5 * se)
    assert np.all(np.abs(Y.mean(axis=0) - host(m.mean_)) < 5 * np.sqrt(np.diag(C) / 20000))


def test_bad_input(bk, hrng):
    X = _data(hrng, N=30)
    with pytest.raises(ValueError, match="n_components < n_features"):
        PPCA(6).fit(X)
    with pytest.raises(ValueError, match="less than n_samples"):
        PPCA(3).fit(X[:3])
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        PPCA(2).fit(bad)
    with pytest.raises(ValueError, match="method"):
        PPCA(2, method="svd")
    # data exactly in a 2-D affine subspace: sigma^2 = 0, the likelihood is unbounded
    flat = hrng.normal(size=(40, 2)) @ hrng.normal(size=(2, 6)) + 3.0
    for method in ["closed_form", "em"]:
        failed = PPCA(2, method=method, max_iter=5000)
        with pytest.raises(ValueError, match="unbounded"):
            failed.fit(flat)
        assert not hasattr(failed, "mean_") and not hasattr(failed, "W_")  # nothing half-fitted
        with pytest.raises(ValueError, match="not fitted"):
            failed.score(flat)
        # a fitted model whose refit fails keeps its last good fit, all of it
        refit = PPCA(2, method=method).fit(X)
        before = host(refit.score_samples(X))
        with pytest.raises(ValueError, match="unbounded"):
            refit.fit(flat)
        np.testing.assert_array_equal(host(refit.score_samples(X)), before)
    with pytest.raises(ValueError, match="fit"):
        PPCA(2).score(X)
    with pytest.raises(ValueError, match="columns"):
        PPCA(2).fit(X).score(X[:, :5])


def _spectral_logpdf(Xc, W, s2):
    """Host oracle for log N(x; mu, C), L4 (8), from the eigendecomposition of C = W W' + sigma^2 I.

    With W = U diag(s) V': C = U diag(s^2 + sigma^2) U' + sigma^2 (I - U U'). No Woodbury, and
    no subtraction of near-equal sums: right to ~1e-9 nats even for sigma^2 / lambda_1 = 1e-13,
    where a Cholesky of C itself in float64 loses the small eigenvalues to rounding.
    """
    U, s, _ = np.linalg.svd(W, full_matrices=False)
    P = Xc @ U                                             # coordinates along U
    R = Xc - P @ U.T                                       # the rest, variance sigma^2
    lam = s ** 2 + s2
    p, q = W.shape
    return -0.5 * (p * np.log(2 * np.pi) + np.log(lam).sum() + (p - q) * np.log(s2)
                   + (P ** 2 / lam).sum(axis=1) + (R ** 2).sum(axis=1) / s2)


def _tiny_noise_data(bk, hrng):
    """sigma^2 / lambda_1 ~ 1e-13 in float64, ~1e-5 in float32: well above each dtype's floor,
    but where xc'xc - xc'W m (eq. 2's first form) cancels to that fraction of its size."""
    noise = 1e-4 if bk.dtype_name == "float64" else 1.0
    X = _data(hrng, N=300, p=8, noise=noise, scales=(100.0, 50.0))
    return X.astype(np.float32).astype(np.float64)        # the same numbers in either dtype


def test_score_with_tiny_noise(bk, hrng):
    X = _tiny_noise_data(bk, hrng)
    m = PPCA(2).fit(X)
    W, s2 = host(m.W_).astype(np.float64), float(m.noise_variance_)
    Xc = X - host(m.mean_).astype(np.float64)
    want = _spectral_logpdf(Xc, W, s2)                     # the fitted model's own parameters
    # the cancelling form was off by 1.5e-2 nats (float64) and 5e-2 (float32) here
    np.testing.assert_allclose(host(m.score_samples(X)), want, rtol=0, atol=tol(bk, 1e-6, 1e-3))


def test_em_with_tiny_noise_is_still_ascent(bk, hrng):
    X = _tiny_noise_data(bk, hrng)
    em = PPCA(2, method="em", max_iter=150, tol=0.0, seed=0).fit(X)
    ll, el = np.array(em.history_["log_likelihood"]), np.array(em.history_["elbo"])
    rnd = tol(bk, 1e-8, 1e-3)              # nats; cancelling (5)-(7) gave 4e-3 / 2e-2
    assert np.all(np.diff(ll) >= -rnd)                     # log-likelihood never decreases
    assert np.abs(ll[0::2] - el[0::2]).max() <= rnd        # ELBO (5) = log p after an E-step
    # the ML solution (3) is a fixed point of EM: one M-step (7) keeps sigma^2. The oracle
    # takes it from the SVD of Xc (eigh of S would lose 1e-3 of sigma^2 here to rounding).
    _, s, Vt = np.linalg.svd(X - X.mean(axis=0), full_matrices=False)
    lam = s ** 2 / X.shape[0]
    s2 = lam[2:].mean()
    W = Vt[:2].T * np.sqrt(lam[:2] - s2)
    em = PPCA(2, method="em", max_iter=1, W_init=W, noise_variance_init=s2).fit(X)
    np.testing.assert_allclose(float(em.noise_variance_), s2, rtol=tol(bk, 1e-6, 1e-3))


def test_small_but_resolved_noise_fits_in_float32(bk, hrng):
    # data std ~45, noise std 0.05: sigma^2 / lambda_1 ~ 1.6e-6, 13 eps_float32; not degenerate
    Z = hrng.normal(size=(2000, 2)) * [10.0, 5.0]
    X = Z @ hrng.normal(size=(2, 20)) + 0.05 * hrng.normal(size=(2000, 20))
    lam = np.linalg.eigvalsh(np.cov(X, rowvar=False, bias=True))
    m = PPCA(2).fit(X)
    np.testing.assert_allclose(float(m.noise_variance_), lam[:-2].mean(), rtol=tol(bk, 1e-8, 1e-2))
    # a thousand times less noise: sigma^2 / lambda_1 ~ 1e-12, resolved by float64 only
    X = Z @ hrng.normal(size=(2, 20)) + 5e-5 * hrng.normal(size=(2000, 20))
    if bk.dtype_name == "float64":
        lam = np.linalg.eigvalsh(np.cov(X, rowvar=False, bias=True))
        np.testing.assert_allclose(float(PPCA(2).fit(X).noise_variance_), lam[:-2].mean(), rtol=1e-3)
    else:
        with pytest.raises(ValueError, match=r'below what float32 resolves(.|\n)*dtype="float64"'):
            PPCA(2).fit(X)


def test_em_init_is_checked(bk, hrng):
    X = _data(hrng, N=50)
    W0 = hrng.normal(size=(6, 2))
    bad_W = W0.copy()
    bad_W[0, 0] = np.nan
    cases = [({"W_init": bad_W}, "W_init"),
             ({"W_init": np.zeros((6, 2))}, "W_init must have full column rank"),  # EM stays at W = 0
             ({"W_init": np.ones((6, 2))}, "W_init must have full column rank"),
             ({"noise_variance_init": float("inf")}, "noise_variance_init"),
             ({"noise_variance_init": float("nan")}, "noise_variance_init"),
             ({"noise_variance_init": 0.0}, "noise_variance_init")]
    for kwargs, msg in cases:
        model = PPCA(2, method="em", **kwargs)
        with pytest.raises(ValueError, match=msg):
            model.fit(X)
        assert not hasattr(model, "W_")
    ll = PPCA(2, method="em", W_init=W0, noise_variance_init=1.0).fit(X).history_["log_likelihood"]
    assert ll[-1] > ll[0]                                  # a good start still fits


def test_closed_form_resolves_noise_far_below_eps_lambda_1(bk64):
    # Xc = U1 D1 V1' + U2 D2 V2' with orthonormal U = [U1 U2] (columns orthogonal to the
    # ones vector: Xc is centred) and V = [V1 V2]: its singular values are exactly D1, D2,
    # so sigma^2 = sum(D2^2) / (N (p - q)), here 1e-14 of lambda_1. Forming S = Xc'Xc / N
    # would blur it by eps lambda_1; the SVD of Xc resolves it.
    rng = np.random.default_rng(3)
    N, p, q = 200, 6, 2
    U = np.linalg.qr(np.column_stack([np.ones(N), rng.normal(size=(N, p))]))[0][:, 1:]
    V = np.linalg.qr(rng.normal(size=(p, p)))[0]
    d = np.array([3e3, 2e3, 3e-4, 2e-4, 1e-4, 5e-5])
    X = (U * d) @ V.T + 7.0
    want = (d[q:] ** 2).sum() / (N * (p - q))
    got = float(PPCA(q).fit(X).noise_variance_)
    assert got == pytest.approx(want, rel=1e-6)


def test_em_convergence_does_not_depend_on_the_units_of_the_data(bk64, hrng):
    X = _data(hrng)
    fits = [PPCA(2, method="em", tol=1e-8, max_iter=5000).fit(X * s) for s in (1.0, 0.3, 1e-3)]
    n_iter = [m.n_iter_ for m in fits]
    assert all(m.converged_ for m in fits)
    assert max(n_iter) - min(n_iter) <= 1, n_iter  # rounding may move the last step by one


@pytest.mark.parametrize("method", ["closed_form", "em"])
def test_constant_data_are_explained_by_both_methods(bk, method):
    """EM used to fail with a raw LinAlgError (singular matrix) where the closed form
    explained itself; both now run the same check on the data before fitting."""
    failed = PPCA(2, method=method)
    with pytest.raises(ValueError, match=r"^X has no variance \(every row is the same\): PPCA has nothing to model; "
                                         r"pass data whose rows differ$"):
        failed.fit(np.ones((50, 5)))
    assert not hasattr(failed, "W_")


def test_lists_complex_and_huge_values(bk, hrng):
    X = _data(hrng, N=40)
    ref = float(PPCA(2).fit(X).score(X))
    assert float(PPCA(2).fit(X.tolist()).score(X.tolist())) == pytest.approx(ref, rel=tol(bk, 1e-10, 1e-4))
    with pytest.raises(ValueError, match=r"^X must hold real numbers \(float\), got complex128; pass X\.real"):
        PPCA(2, method="em").fit(X.astype(np.complex128))
    big = 1e200 if bk.dtype_name == "float64" else 1e30  # was: "sigma^2 = inf is below what float64 resolves"
    with pytest.raises(ValueError, match=r"^X holds values as large as .*can overflow float\d\d"):
        PPCA(2).fit(X * big)


@pytest.mark.parametrize("kw, message", [
    ({"max_iter": 2.5}, "max_iter must be a positive integer"),
    ({"tol": float("nan")}, "tol must be a finite number"),
    ({"tol": "small"}, "tol must be a finite number"),
])
def test_settings_are_checked_when_the_model_is_made(kw, message):
    with pytest.raises(ValueError, match=message):
        PPCA(2, method="em", **kw)
