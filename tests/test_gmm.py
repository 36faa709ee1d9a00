"""Gaussian mixture by EM: coordinate ascent on the ELBO, recovery of a known mixture,
agreement with scikit-learn from the same start, collapse and bad input; k-means++.

Tolerances: the exactness claims (ELBO = log-likelihood after an E-step to 1e-10, 1e-6
relative agreement with scikit-learn) hold in float64; ``tol(bk)``'s float32 band (1e-4
relative to the per-example log-likelihood) covers float32 rounding of sums over N.
"""

import warnings

import numpy as np
import pytest

from scratchvae import backend
from scratchvae.mixture import GaussianMixture, kmeans, kmeans_plusplus
from scratchvae.mixture.gmm import m_step

from conftest import host, tol

TYPES = ["full", "diag", "spherical"]
MEANS = np.array([[0.0, 0.0], [5.0, 1.0], [1.0, 6.0]])
COVS = np.array([[[1.0, 0.6], [0.6, 0.8]], [[0.5, -0.2], [-0.2, 1.2]], [[0.3, 0.0], [0.0, 0.3]]])
COUNTS = [200, 150, 100]


def _mixture(hrng, spread=1.0):
    X = np.concatenate([hrng.multivariate_normal(m * spread, C, size=n) for m, C, n in zip(MEANS, COVS, COUNTS)])
    y = np.repeat(np.arange(3), COUNTS)
    return X, y


def _oracle_log_density(X, gmm):
    """Host oracle: log sum_k pi_k N(x | mu_k, Sigma_k) with scipy."""
    stats = pytest.importorskip("scipy.stats")
    special = pytest.importorskip("scipy.special")
    w, mu, cov = host(gmm.weights_), host(gmm.means_), host(gmm.covariances_)
    D = X.shape[1]
    full = {"full": lambda c: c, "diag": np.diag, "spherical": lambda c: c * np.eye(D)}[gmm.covariance_type]
    logs = np.stack([np.log(w[k]) + stats.multivariate_normal(mu[k], full(cov[k])).logpdf(X)
                     for k in range(len(w))], axis=1)
    return special.logsumexp(logs, axis=1), logs


@pytest.mark.parametrize("ctype", TYPES)
def test_em_is_coordinate_ascent(bk, hrng, ctype):
    X, _ = _mixture(hrng, spread=0.35)                 # overlapping: EM takes many steps
    g = GaussianMixture(3, covariance_type=ctype, max_iter=40, tol=0.0, init="random", seed=2).fit(X)
    h = g.history_
    ll, el = np.array(h["log_likelihood"]), np.array(h["elbo"])
    assert h["step"][:4] == ["E", "M", "E", "M"] and len(ll) == 2 * g.n_iter_
    scale = max(1.0, np.abs(ll).max())
    rnd = tol(bk, 1e-12, 1e-5) * scale
    assert np.all(np.diff(ll) >= -rnd)                 # the log-likelihood never decreases
    assert np.abs(ll[0::2] - el[0::2]).max() <= tol(bk, 1e-10, 1e-4) * scale  # E-step: KL = 0
    assert np.all(el[1::2] >= el[0::2] - rnd)          # an M-step does not lower the ELBO
    assert np.all(el[1::2] <= ll[1::2] + rnd)          # ELBO <= log-likelihood
    assert ll[-1] - ll[0] > 0.05                       # EM really climbed
    np.testing.assert_allclose(ll[-1], float(g.score(X)), rtol=tol(bk, 1e-12, 1e-5))


@pytest.mark.parametrize("ctype", TYPES)
def test_densities_and_responsibilities(bk, hrng, ctype):
    X, _ = _mixture(hrng)
    g = GaussianMixture(3, covariance_type=ctype, max_iter=5, seed=0).fit(X)
    want, logs = _oracle_log_density(X, g)
    r = tol(bk, 1e-10, 1e-5)
    np.testing.assert_allclose(host(g.score_samples(X)), want, rtol=r)
    np.testing.assert_allclose(float(g.score(X)), want.mean(), rtol=r)
    P = host(g.predict_proba(X))
    np.testing.assert_allclose(P, np.exp(logs - want[:, None]), atol=tol(bk, 1e-10, 1e-5))
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=tol(bk, 1e-12, 1e-5))
    np.testing.assert_array_equal(host(g.predict(X)), np.argmax(logs, axis=1))
    # far from every component exp(log N) underflows to 0; the log-sum-exp stays finite
    far = X[:5] + 1e3
    s = host(g.score_samples(far))
    assert np.all(np.isfinite(s)) and np.all(s < -1e3)
    np.testing.assert_allclose(s, _oracle_log_density(far, g)[0], rtol=tol(bk, 1e-10, 1e-5))
    P = host(g.predict_proba(far))
    assert np.all(np.isfinite(P))
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=tol(bk, 1e-12, 1e-5))


@pytest.mark.parametrize("init", ["k-means++", "kmeans"])
def test_recovers_a_known_mixture(bk, hrng, init):
    X, y = _mixture(hrng)
    g = GaussianMixture(3, covariance_type="full", init=init, seed=0).fit(X)
    assert g.converged_ and g.n_iter_ < g.max_iter
    mu, cov, w = host(g.means_), host(g.covariances_), host(g.weights_)
    order = [int(np.argmin(np.linalg.norm(mu - m, axis=1))) for m in MEANS]
    assert sorted(order) == [0, 1, 2]
    for k, j in enumerate(order):
        n, C = COUNTS[k], COVS[k]
        se_mean = np.sqrt(np.diag(C) / n)
        se_cov = np.sqrt((np.outer(np.diag(C), np.diag(C)) + C ** 2) / n)
        assert np.all(np.abs(mu[j] - MEANS[k]) < 4 * se_mean)       # 4 standard errors
        assert np.all(np.abs(cov[j] - C) < 4 * se_cov)
        assert abs(w[j] - n / 450) < 4 * np.sqrt(n / 450 * (1 - n / 450) / 450)
    # the clusters are well separated: EM's labels are the true ones (up to naming)
    assert np.mean(np.take(order, y) == host(g.predict(X))) > 0.99


@pytest.mark.parametrize("ctype", TYPES)
def test_matches_sklearn_from_the_same_start(bk64, hrng, ctype):
    skm = pytest.importorskip("sklearn.mixture")
    from sklearn.exceptions import ConvergenceWarning
    X, _ = _mixture(hrng, spread=0.5)
    R = hrng.dirichlet(np.ones(3), size=X.shape[0])    # the shared initial responsibilities
    reg, iters = 1e-6, 60
    g = GaussianMixture(3, covariance_type=ctype, reg_covar=reg, max_iter=iters, tol=0.0).fit(X, init_resp=R)
    w0, m0, c0 = (host(a) for a in m_step(backend.asarray(X), backend.asarray(R), ctype, reg))
    ref = skm.GaussianMixture(3, covariance_type=ctype, reg_covar=reg, tol=1e-300, max_iter=g.n_iter_,
                              weights_init=w0, means_init=m0,
                              precisions_init=np.linalg.inv(c0) if ctype == "full" else 1.0 / c0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # tol=1e-300 is never met
        ref.fit(X)
    ll, ll_ref = float(g.score(X)), ref.score(X)
    assert abs(ll - ll_ref) <= 1e-6 * abs(ll_ref)
    np.testing.assert_allclose(host(g.means_), ref.means_, atol=1e-6)
    np.testing.assert_allclose(host(g.covariances_), ref.covariances_, atol=1e-6)
    np.testing.assert_allclose(host(g.weights_), ref.weights_, atol=1e-6)


@pytest.mark.parametrize("ctype", TYPES)
def test_collapsing_component_is_floored(bk, hrng, ctype):
    # 60 points in a blob and one far outlier; the second component starts on the outlier
    X = np.concatenate([hrng.normal(size=(60, 2)), [[50.0, 50.0]]])
    R = np.zeros((61, 2))
    R[:60, 0], R[60, 1] = 1.0, 1.0
    g = GaussianMixture(2, covariance_type=ctype, reg_covar=1e-3, max_iter=20).fit(X, init_resp=R)
    cov = host(g.covariances_)
    assert np.all(np.isfinite(cov)) and np.isfinite(float(g.score(X)))
    floor = {"full": 1e-3 * np.eye(2), "diag": [1e-3, 1e-3], "spherical": 1e-3}[ctype]
    np.testing.assert_allclose(cov[1], floor, rtol=tol(bk, 1e-6, 1e-3), atol=tol(bk, 1e-12, 1e-6))  # a point: the floor
    # with no floor the same start has a singular covariance: a clear error, not NaN
    failed = GaussianMixture(2, covariance_type=ctype, reg_covar=0.0)
    with pytest.raises(ValueError, match="reg_covar"):
        failed.fit(X, init_resp=R)
    assert not hasattr(failed, "means_") and not hasattr(failed, "weights_")  # nothing half-fitted
    # a fitted model whose refit fails keeps its last good fit, all of it
    before = host(g.score_samples(X))
    g.reg_covar = 0.0
    with pytest.raises(ValueError, match="reg_covar"):
        g.fit(X, init_resp=R)
    np.testing.assert_array_equal(host(g.score_samples(X)), before)
    np.testing.assert_array_equal(host(g.covariances_), cov)


def test_more_components_than_distinct_points(bk):
    X = np.repeat(np.array([[0.0, 0.0], [3.0, 1.0], [1.0, 4.0]]), 10, axis=0)
    g = GaussianMixture(4, covariance_type="diag", max_iter=10, seed=0).fit(X)   # 4 > 3 distinct
    assert np.isfinite(float(g.score(X)))
    assert np.all(np.isfinite(host(g.covariances_))) and np.all(np.isfinite(host(g.means_)))


def test_sample(bk, hrng):
    X, _ = _mixture(hrng)
    for ctype in TYPES:
        g = GaussianMixture(3, covariance_type=ctype, seed=0).fit(X)
        n = 6000
        Y, lab = g.sample(n, seed=1)
        Y, lab = host(Y), host(lab)
        assert Y.shape == (n, 2) and lab.shape == (n,) and set(np.unique(lab)) <= {0, 1, 2}
        w, mu = host(g.weights_), host(g.means_)
        freq = np.bincount(lab, minlength=3) / n
        assert np.all(np.abs(freq - w) < 4 * np.sqrt(w * (1 - w) / n))
        cov = host(g.covariances_)
        for k in range(3):
            Ck = {"full": cov[k], "diag": np.diag(cov[k]) if cov.ndim == 2 else None,
                  "spherical": cov[k] * np.eye(2) if cov.ndim == 1 else None}[ctype]
            Yk = Y[lab == k]
            assert np.all(np.abs(Yk.mean(axis=0) - mu[k]) < 4 * np.sqrt(np.diag(Ck) / len(Yk)))
            se = np.sqrt((np.outer(np.diag(Ck), np.diag(Ck)) + Ck ** 2) / len(Yk))
            assert np.all(np.abs(np.cov(Yk, rowvar=False) - Ck) < 4.5 * se)


def test_kmeans_plusplus_and_kmeans(bk, hrng):
    X, y = _mixture(hrng)
    Xb = backend.asarray(X)
    C1, idx1 = kmeans_plusplus(Xb, 3, backend.RNG(7))
    C2, idx2 = kmeans_plusplus(Xb, 3, backend.RNG(7))
    assert idx1 == idx2 and len(set(idx1)) == 3                 # seeded, distinct
    np.testing.assert_array_equal(host(C1), host(Xb)[idx1])     # seeds are data points
    centers, labels, inertia = kmeans(Xb, 3, seed=0)
    labels = host(labels)
    # well-separated blobs: each true cluster is one k-means cluster
    for k in range(3):
        assert np.mean(labels[y == k] == np.bincount(labels[y == k]).argmax()) > 0.98
    assert len({np.bincount(labels[y == k]).argmax() for k in range(3)}) == 3
    c = host(centers)
    np.testing.assert_allclose(float(inertia), sum(((X[labels == j] - c[j]) ** 2).sum() for j in range(3)),
                               rtol=tol(bk, 1e-10, 1e-4))


@pytest.mark.parametrize("max_iter", [0, 1, 2])
def test_kmeans_labels_belong_to_the_centres_it_returns(bk, hrng, max_iter):
    """Also when the iterations run out before the labels settle."""
    X = hrng.normal(size=(60, 2))
    centers, labels, inertia = kmeans(backend.asarray(X), 4, seed=0, max_iter=max_iter)
    d = ((X[:, None, :] - host(centers)[None, :, :]) ** 2).sum(axis=2)
    np.testing.assert_array_equal(host(labels), d.argmin(axis=1))
    np.testing.assert_allclose(float(inertia), d.min(axis=1).sum(), rtol=tol(bk, 1e-10, 1e-4))


def test_kmeans_checks_its_input(bk, hrng):
    X = hrng.normal(size=(20, 2))
    for k in (0, -1, 2.5):
        with pytest.raises(ValueError, match="n_clusters must be a positive integer"):
            kmeans(X, k)
        with pytest.raises(ValueError, match="n_clusters must be a positive integer"):
            kmeans_plusplus(X, k, backend.RNG(0))
    bad = X.copy()
    bad[4, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):  # was: inertia nan and every label 0
        kmeans(bad, 2)
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        kmeans(X[:, 0], 2)
    centers, labels, _ = kmeans(np.arange(12).reshape(6, 2), 2)  # integer data: made floating
    assert host(labels).shape == (6,) and host(centers).dtype.kind == "f"


def test_bad_input(bk, hrng):
    X, _ = _mixture(hrng)
    with pytest.raises(ValueError, match="more than n_samples"):
        GaussianMixture(5).fit(X[:4])
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        GaussianMixture(3).fit(bad)
    with pytest.raises(ValueError, match="covariance_type"):
        GaussianMixture(3, covariance_type="tied")
    with pytest.raises(ValueError, match="shape"):
        GaussianMixture(3).fit(X, init_resp=np.full((X.shape[0], 2), 0.5))
    with pytest.raises(ValueError, match="summing to 1"):
        GaussianMixture(3).fit(X, init_resp=np.full((X.shape[0], 3), 0.5))
    with pytest.raises(ValueError, match="fit"):
        GaussianMixture(3).predict(X)
    g = GaussianMixture(3, max_iter=3).fit(X)
    with pytest.raises(ValueError, match="columns"):
        g.score(X[:, :1])
    # a constant feature and no reg_covar: the message gives the floor to beat
    flat = np.concatenate([X, np.full((X.shape[0], 1), 7.0)], axis=1)
    with pytest.raises(ValueError, match=r"a feature is constant\).*Raise reg_covar above \d"):
        GaussianMixture(2, covariance_type="diag", reg_covar=0.0).fit(flat)


def test_convergence_does_not_depend_on_the_units_of_the_data(bk64):
    # x -> s x shifts the mean log-likelihood by -D log s and leaves EM's path alone; the
    # stopping test must not see the shift (it used to be relative to |log-likelihood|,
    # which at one scale is ~0: 144 iterations at s = 1, 352 at s = 0.159)
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(size=(200, 2)) + [3.0 * i, 0.0] for i in range(3)])
    # reg_covar=0: a fixed covariance floor is the one part of EM that has units
    fits = [GaussianMixture(3, seed=0, max_iter=1000, reg_covar=0.0).fit(X * s) for s in (1.0, 0.159, 1e-3)]
    n_iter = [g.n_iter_ for g in fits]
    assert all(g.converged_ for g in fits)
    assert max(n_iter) - min(n_iter) <= 1, n_iter  # rounding may move the last step by one


def test_lists_complex_and_huge_values(bk, hrng):
    X, _ = _mixture(hrng)
    ref = float(GaussianMixture(3, max_iter=5).fit(X).score(X))
    assert float(GaussianMixture(3, max_iter=5).fit(X.tolist()).score(X.tolist())) == pytest.approx(
        ref, rel=tol(bk, 1e-10, 1e-4))
    with pytest.raises(ValueError, match=r"^X must hold real numbers \(float\), got complex128; pass X\.real"):
        GaussianMixture(3).fit(X.astype(np.complex128))
    big = 1e200 if bk.dtype_name == "float64" else 1e30  # was: "singular ... Raise reg_covar above inf"
    with pytest.raises(ValueError, match=r"^X holds values as large as .*can overflow float\d\d.*X / abs\(X\)\.max\(\)$"):
        GaussianMixture(3).fit(X * big)


@pytest.mark.parametrize("kw, message", [
    ({"max_iter": 2.5}, "max_iter must be a positive integer"),
    ({"max_iter": 0}, "max_iter must be a positive integer"),
    ({"tol": float("nan")}, "tol must be a finite number"),
    ({"reg_covar": float("inf")}, "reg_covar must be a finite number >= 0"),
])
def test_settings_are_checked_when_the_model_is_made(kw, message):
    with pytest.raises(ValueError, match=message):
        GaussianMixture(2, **kw)


def test_kmeans_max_iter_must_be_a_non_negative_integer():
    for bad in (1.5, -1, True):
        with pytest.raises(ValueError, match=r"max_iter must be an integer >= 0"):
            kmeans(np.eye(4), 2, max_iter=bad)


def test_a_negative_tol_runs_every_iteration():
    X = np.random.default_rng(0).normal(size=(60, 2))
    assert GaussianMixture(2, max_iter=7, tol=-1.0).fit(X).n_iter_ == 7
