"""scratchvae.losses: gradient checks for every returned gradient, values against
textbook formulas and scipy, the batch convention, stability at extreme inputs, and
clear errors for bad input."""

import math

import numpy as np
import pytest
from scipy import stats

from scratchvae import backend
from scratchvae.gradcheck import check_function
from scratchvae.losses import bernoulli_nll, gaussian_nll, kl_std_normal, mse
from scratchvae.reparam import reparam_forward

from conftest import host, tol

GRAD_TOL = 1e-7
N, D = 4, 3


def A(h):
    return backend.asarray(h)


# -- gradient checks (float64, every CPU backend) ----------------------------------------


@pytest.mark.parametrize("targets", ["grey", "binary"])
def test_bernoulli_nll_gradcheck(bk64, hrng, targets):
    logits = A(2.0 * hrng.normal(size=(N, D)))
    xh = hrng.uniform(size=(N, D))
    x = A(xh if targets == "grey" else (xh > 0.5) * 1.0)
    _, dlogits = bernoulli_nll(logits, x)
    report = check_function(lambda logits: bernoulli_nll(logits, x)[0], {"logits": logits}, {"logits": dlogits})
    assert report.max_error < GRAD_TOL, str(report)


@pytest.mark.parametrize("logvar_shape", [(N, D), (D,), ()], ids=["full", "per-dim", "scalar"])
def test_gaussian_nll_gradcheck(bk64, hrng, logvar_shape):
    x = A(hrng.normal(size=(N, D)))
    mu = A(hrng.normal(size=(N, D)))
    logvar = A(0.5 * hrng.normal(size=logvar_shape))
    _, dmu, dlogvar = gaussian_nll(x, mu, logvar)
    assert dmu.shape == (N, D) and dlogvar.shape == logvar_shape
    report = check_function(
        lambda x, mu, logvar: gaussian_nll(x, mu, logvar)[0],
        {"x": x, "mu": mu, "logvar": logvar},
        {"mu": dmu, "logvar": dlogvar},
    )
    assert [c.name for c in report.checks] == ["mu", "logvar"]
    assert report.max_error < GRAD_TOL, str(report)


def test_gaussian_nll_gradcheck_keepdims_logvar(bk64, hrng):
    x, mu = A(hrng.normal(size=(N, D))), A(hrng.normal(size=(N, D)))
    for shape in [(1, D), (N, 1)]:
        logvar = A(0.5 * hrng.normal(size=shape))
        _, _, dlogvar = gaussian_nll(x, mu, logvar)
        assert dlogvar.shape == shape
        report = check_function(lambda logvar: gaussian_nll(x, mu, logvar)[0], {"logvar": logvar}, {"logvar": dlogvar})
        assert report.max_error < GRAD_TOL, str(report)


def test_kl_std_normal_gradcheck(bk64, hrng):
    mu = A(hrng.normal(size=(N, D)))
    logvar = A(hrng.normal(size=(N, D)))
    _, dmu, dlogvar = kl_std_normal(mu, logvar)
    report = check_function(lambda mu, logvar: kl_std_normal(mu, logvar)[0],
                            {"mu": mu, "logvar": logvar}, {"mu": dmu, "logvar": dlogvar})
    assert report.max_error < GRAD_TOL, str(report)


def test_mse_gradcheck(bk64, hrng):
    x_hat, x = A(hrng.normal(size=(N, D))), A(hrng.normal(size=(N, D)))
    _, dx_hat = mse(x_hat, x)
    report = check_function(lambda x_hat: mse(x_hat, x)[0], {"x_hat": x_hat}, {"x_hat": dx_hat})
    assert report.max_error < GRAD_TOL, str(report)


# -- values: the textbook formulas -----------------------------------------------------------


def test_bernoulli_nll_is_the_textbook_cross_entropy(bk, hrng):
    lh = hrng.uniform(-4.0, 4.0, size=(5, 6))
    xh = hrng.uniform(0.05, 0.95, size=(5, 6))
    xh[0, :3] = [0.0, 1.0, 0.5]  # the ends of the interval too
    if bk.dtype_name == "float32":  # compare in the precision the backend holds
        lh, xh = lh.astype(np.float32).astype(np.float64), xh.astype(np.float32).astype(np.float64)
    value, dlogits = bernoulli_nll(A(lh), A(xh))
    p = 1.0 / (1.0 + np.exp(-lh))
    want = -(xh * np.log(p) + (1.0 - xh) * np.log(1.0 - p)).sum(axis=1).mean()
    assert value.shape == ()
    assert float(value) == pytest.approx(want, rel=tol(bk))
    np.testing.assert_allclose(host(dlogits), (p - xh) / 5, rtol=tol(bk), atol=tol(bk) / 5)


@pytest.mark.parametrize("logvar_shape", [(5, 3), (3,), ()], ids=["full", "per-dim", "scalar"])
def test_gaussian_nll_is_the_gaussian_log_density(bk, hrng, logvar_shape):
    xh, muh = hrng.normal(size=(5, 3)), hrng.normal(size=(5, 3))
    lvh = hrng.uniform(-2.0, 2.0, size=logvar_shape)
    if bk.dtype_name == "float32":
        xh, muh, lvh = (a.astype(np.float32).astype(np.float64) for a in (xh, muh, lvh))
    value, dmu, dlogvar = gaussian_nll(A(xh), A(muh), A(lvh))
    sigma = np.exp(lvh / 2.0)  # logvar = log sigma^2
    want = -stats.norm.logpdf(xh, loc=muh, scale=np.broadcast_to(sigma, xh.shape)).sum(axis=1).mean()
    assert float(value) == pytest.approx(want, rel=tol(bk))
    np.testing.assert_allclose(host(dmu), -(xh - muh) / sigma**2 / 5, rtol=tol(bk), atol=tol(bk))


def test_gaussian_log_variance_may_be_a_python_float(bk, hrng):
    # a fixed variance: logvar = 0.0 means the same as a 0-d array, on every backend
    from scratchvae.densities import gaussian_log_prob

    x, mu = A(hrng.normal(size=(5, 3))), A(hrng.normal(size=(5, 3)))
    lv = A(np.array(0.5))
    value, dmu, dlogvar = gaussian_nll(x, mu, 0.5)
    want, want_dmu, want_dlogvar = gaussian_nll(x, mu, lv)
    assert float(value) == float(want) and float(dlogvar) == float(want_dlogvar)
    np.testing.assert_array_equal(host(dmu), host(want_dmu))
    np.testing.assert_array_equal(host(gaussian_log_prob(x, mu, 0.5)), host(gaussian_log_prob(x, mu, lv)))


def test_kl_is_zero_at_the_prior(bk):
    value, dmu, dlogvar = kl_std_normal(A(np.zeros((3, 4))), A(np.zeros((3, 4))))
    assert float(value) == 0.0
    assert not np.any(host(dmu)) and not np.any(host(dlogvar))


def test_kl_closed_form(bk, hrng):
    muh, lvh = hrng.normal(size=(4, 3)), hrng.uniform(-2.0, 2.0, size=(4, 3))
    if bk.dtype_name == "float32":
        muh, lvh = muh.astype(np.float32).astype(np.float64), lvh.astype(np.float32).astype(np.float64)
    value, _, _ = kl_std_normal(A(muh), A(lvh))
    s = np.exp(lvh / 2.0)
    # KL(N(mu, s^2) || N(0, 1)) = log(1 / s) + (s^2 + mu^2) / 2 - 1/2, per dimension
    want = (np.log(1.0 / s) + (s**2 + muh**2) / 2.0 - 0.5).sum(axis=1).mean()
    assert float(value) == pytest.approx(want, rel=tol(bk))
    assert float(value) > 0.0


def test_kl_matches_a_monte_carlo_estimate(bk):
    """KL = E_q[log q(z) - log p(z)], z = mu + exp(logvar/2) eps: 200k samples through
    the library's own sampler, log-densities by scipy. With these logvars, sigma =
    exp(logvar) in the sampler (or var = exp(2 logvar) in the KL) is many SEs off."""
    muh = np.array([[0.5, -1.0, 2.0], [0.0, 1.5, -0.3]])
    lvh = np.array([[-2.0, 1.5, 0.7], [2.0, -1.0, 0.3]])
    M = 200_000
    eps = backend.RNG(0).normal((M, 2, 3))
    z, _ = reparam_forward(A(muh), A(lvh), eps)
    zh = host(z).astype(np.float64)
    sigma = np.exp(lvh / 2.0)
    per_sample = (stats.norm.logpdf(zh, muh, sigma) - stats.norm.logpdf(zh)).sum(axis=2).mean(axis=1)
    mc, se = per_sample.mean(), per_sample.std() / math.sqrt(M)
    value, _, _ = kl_std_normal(A(muh), A(lvh))
    assert abs(float(value) - mc) < 4 * se, (float(value), mc, se)
    # the well-known mistake would be far outside that band
    wrong = 0.5 * (muh**2 + np.exp(2 * lvh) - 1.0 - 2 * lvh).sum(axis=1).mean()
    assert abs(wrong - mc) > 100 * se


def test_mse_is_a_sum_over_dimensions_mean_over_batch(bk):
    value, dx_hat = mse(A(np.ones((2, 3))), A(np.zeros((2, 3))))
    assert float(value) == 3.0  # (1/2) * (3 + 3), not the mean over 6 entries (1.0)
    np.testing.assert_array_equal(host(dx_hat), np.full((2, 3), 1.0))


@pytest.mark.parametrize("loss", ["bernoulli", "gaussian", "kl", "mse"])
def test_batch_convention(bk, hrng, loss):
    """Mean over the batch: repeating the batch changes nothing. Sum over dimensions:
    repeating the columns doubles the value."""
    a, b = hrng.uniform(0.1, 0.9, size=(3, 4)), hrng.uniform(0.1, 0.9, size=(3, 4))
    f = {
        "bernoulli": lambda a, b: bernoulli_nll(A(a), A(b))[0],
        "gaussian": lambda a, b: gaussian_nll(A(a), A(b), A(np.log(b)))[0],
        "kl": lambda a, b: kl_std_normal(A(a), A(b))[0],
        "mse": lambda a, b: mse(A(a), A(b))[0],
    }[loss]
    v = float(f(a, b))
    assert float(f(np.vstack([a, a]), np.vstack([b, b]))) == pytest.approx(v, rel=tol(bk))
    assert float(f(np.hstack([a, a]), np.hstack([b, b]))) == pytest.approx(2 * v, rel=tol(bk))


def test_losses_return_0d_values_on_the_backend(bk, hrng):
    x = A(hrng.uniform(size=(2, 3)))
    for value in (bernoulli_nll(x, x)[0], gaussian_nll(x, x, A(0.0))[0], kl_std_normal(x, x)[0], mse(x, x)[0]):
        assert value.shape == () and value.dtype == bk.dtype and value.device == bk.device


# -- numerical stability ---------------------------------------------------------------


def _all_finite(*arrays):
    return all(np.all(np.isfinite(host(a))) for a in arrays)


def test_bernoulli_nll_at_logits_1e4(bk):
    logits = A(np.array([[1e4, -1e4, 1e4, -1e4, 1e4]]))
    x = A(np.array([[1.0, 0.0, 0.0, 1.0, 0.5]]))
    value, dlogits = bernoulli_nll(logits, x)
    assert _all_finite(value, dlogits)
    # per entry softplus(l) - x l: 0, 0, 1e4, 1e4, 5e3
    assert float(value) == pytest.approx(2.5e4, rel=tol(bk))
    np.testing.assert_allclose(host(dlogits)[0], [0.0, 0.0, 1.0, -1.0, 0.5], atol=tol(bk))


def test_gaussian_nll_at_logvar_50(bk, hrng):
    xh, muh = hrng.normal(size=(2, 3)), hrng.normal(size=(2, 3))
    lvh = np.array([[50.0, -50.0, 50.0], [-50.0, 50.0, -50.0]])
    if bk.dtype_name == "float32":
        xh, muh = xh.astype(np.float32).astype(np.float64), muh.astype(np.float32).astype(np.float64)
    value, dmu, dlogvar = gaussian_nll(A(xh), A(muh), A(lvh))
    assert _all_finite(value, dmu, dlogvar)
    want = 0.5 * (math.log(2 * math.pi) + lvh + (xh - muh) ** 2 * np.exp(-lvh)).sum() / 2
    assert float(value) == pytest.approx(want, rel=tol(bk, 1e-10, 1e-4))


def test_kl_at_logvar_50(bk):
    value, dmu, dlogvar = kl_std_normal(A(np.zeros((1, 2))), A(np.array([[50.0, -50.0]])))
    assert _all_finite(value, dmu, dlogvar)
    want = 0.5 * ((math.exp(50.0) - 1.0 - 50.0) + (math.exp(-50.0) - 1.0 + 50.0))
    assert float(value) == pytest.approx(want, rel=tol(bk))
    np.testing.assert_allclose(host(dlogvar)[0], [0.5 * (math.exp(50.0) - 1.0), 0.5 * (math.exp(-50.0) - 1.0)], rtol=tol(bk))


# -- bad input ---------------------------------------------------------------------------


def test_mismatched_shapes(bk):
    a, b = A(np.zeros((2, 3))), A(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"logits and x must have the same shape, got \(2, 3\) and \(2, 4\)"):
        bernoulli_nll(a, b)
    with pytest.raises(ValueError, match=r"mu and x must have the same shape, got \(2, 4\) and \(2, 3\)"):
        gaussian_nll(a, b, A(0.0))
    with pytest.raises(ValueError, match=r"mu and logvar must have the same shape"):
        kl_std_normal(a, b)
    with pytest.raises(ValueError, match=r"x_hat and x must have the same shape"):
        mse(a, b)


@pytest.mark.parametrize("shape", [(3, 2), (4,), (2, 2, 3), (1, 4)])
def test_gaussian_nll_logvar_that_does_not_broadcast(bk, shape):
    x = A(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"logvar of shape .* does not broadcast to x's shape \(2, 3\); pass logvar of shape \(2, 3\)"):
        gaussian_nll(x, x, A(np.zeros(shape)))


@pytest.mark.parametrize("which", ["x", "logits"])
def test_bernoulli_nan(bk, which):
    a = np.full((2, 3), 0.5)
    bad = a.copy()
    bad[1, 2] = np.nan
    args = {"x": A(a), "logits": A(a)}
    args[which] = A(bad)
    with pytest.raises(ValueError, match=rf"{which} contains 1 NaN or infinite value\(s\); remove or impute"):
        bernoulli_nll(args["logits"], args["x"])


def test_nan_in_the_other_losses(bk):
    ok, bad = A(np.zeros((2, 2))), A(np.array([[0.0, np.nan], [np.inf, 0.0]]))
    with pytest.raises(ValueError, match=r"logvar contains 2 NaN or infinite"):
        gaussian_nll(ok, ok, bad)
    with pytest.raises(ValueError, match=r"mu contains 2 NaN or infinite"):
        gaussian_nll(ok, bad, ok)
    with pytest.raises(ValueError, match=r"mu contains 2 NaN"):
        kl_std_normal(bad, ok)
    with pytest.raises(ValueError, match=r"logvar contains 2 NaN"):
        kl_std_normal(ok, bad)
    with pytest.raises(ValueError, match=r"x_hat contains 2 NaN.*training has diverged"):
        mse(bad, ok)


@pytest.mark.parametrize("bad_value, shown", [(1.5, "0 to 1.5"), (-0.25, "-0.25 to 0.5"), (255.0, "0 to 255")])
def test_bernoulli_x_outside_unit_interval(bk, bad_value, shown):
    xh = np.full((2, 3), 0.5)
    xh[0, 0] = 0.0 if bad_value > 1 else 0.5
    xh[1, 1] = bad_value
    with pytest.raises(ValueError, match=rf"x must lie in \[0, 1\] for a Bernoulli likelihood, but its values run from {shown}; scale pixels"):
        bernoulli_nll(A(np.zeros((2, 3))), A(xh))


def test_check_false_skips_validation(bk):
    value, _ = bernoulli_nll(A(np.zeros((1, 2))), A(np.array([[2.0, 0.0]])), check=False)
    assert float(value) == pytest.approx(2 * math.log(2.0), rel=tol(bk))


def test_empty_batch(bk):
    e = A(np.zeros((0, 3)))
    for call in (lambda: bernoulli_nll(e, e), lambda: gaussian_nll(e, e, A(0.0)),
                 lambda: kl_std_normal(e, e), lambda: mse(e, e)):
        with pytest.raises(ValueError, match=r"a loss needs a batch of at least one example, got shape \(0, 3\)"):
            call()


def test_zero_dimensional_input(bk):
    s = A(0.5)
    with pytest.raises(ValueError, match=r"a loss needs a batch of at least one example, got shape \(\)"):
        bernoulli_nll(s, s)
