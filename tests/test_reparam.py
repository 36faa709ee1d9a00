"""scratchvae.reparam: z = mu + exp(logvar / 2) * eps. Gradient checks with eps of
shape (N, K) and (L, N, K), the moments of the samples (which rule out sigma =
exp(logvar)), stability at logvar = +-50, and shape errors."""

import math

import numpy as np
import pytest

from scratchvae import backend
from scratchvae.gradcheck import check_function
from scratchvae.reparam import reparam_backward, reparam_forward

from conftest import host, tol

GRAD_TOL = 1e-7
N, K = 3, 4


def A(h):
    return backend.asarray(h)


@pytest.mark.parametrize("eps_shape", [(N, K), (5, N, K), (1, N, K)], ids=["NK", "LNK", "1NK"])
def test_reparam_gradcheck(bk64, hrng, eps_shape):
    mu, logvar = A(hrng.normal(size=(N, K))), A(hrng.normal(size=(N, K)))
    eps = A(hrng.normal(size=eps_shape))
    dz = A(hrng.normal(size=eps_shape))  # random upstream gradient
    z, cache = reparam_forward(mu, logvar, eps)
    assert z.shape == eps_shape
    dmu, dlogvar = reparam_backward(dz, cache)
    assert dmu.shape == dlogvar.shape == (N, K)
    report = check_function(lambda mu, logvar: reparam_forward(mu, logvar, eps)[0],
                            {"mu": mu, "logvar": logvar}, {"mu": dmu, "logvar": dlogvar}, dy=dz)
    assert [c.name for c in report.checks] == ["mu", "logvar"]
    assert report.max_error < GRAD_TOL, str(report)


def test_forward_and_backward_formulas(bk, hrng):
    muh, lvh = hrng.normal(size=(N, K)), hrng.normal(size=(N, K))
    eh, dzh = hrng.normal(size=(2, N, K)), hrng.normal(size=(2, N, K))
    if bk.dtype_name == "float32":
        muh, lvh, eh, dzh = (a.astype(np.float32).astype(np.float64) for a in (muh, lvh, eh, dzh))
    z, cache = reparam_forward(A(muh), A(lvh), A(eh))
    dmu, dlogvar = reparam_backward(A(dzh), cache)
    sigma = np.exp(lvh / 2.0)
    r = tol(bk)
    np.testing.assert_allclose(host(z), muh + sigma * eh, rtol=r, atol=r)
    np.testing.assert_allclose(host(dmu), dzh.sum(axis=0), rtol=r, atol=r)  # L samples add up
    np.testing.assert_allclose(host(dlogvar), (dzh * eh * sigma / 2.0).sum(axis=0), rtol=r, atol=r)


def test_samples_have_mean_mu_and_variance_exp_logvar(bk):
    """200k samples per entry. With logvar in {-3, -1, 1.5, 3}, exp(logvar) and
    exp(2 logvar) (the variance if sigma were exp(logvar)) differ by factors of
    e^1 to e^3, hundreds of standard errors."""
    muh = np.array([[0.5, -2.0, 0.0, 3.0]])
    lvh = np.array([[-3.0, -1.0, 1.5, 3.0]])
    M = 200_000
    eps = backend.RNG(42).normal((M, 1, 4))
    z, _ = reparam_forward(A(muh), A(lvh), eps)
    zh = host(z).astype(np.float64)[:, 0, :]
    var = np.exp(lvh[0])
    mean_se = np.sqrt(var / M)
    var_se = var * math.sqrt(2.0 / (M - 1))
    np.testing.assert_array_less(np.abs(zh.mean(axis=0) - muh[0]), 4 * mean_se)
    np.testing.assert_array_less(np.abs(zh.var(axis=0, ddof=1) - var), 4 * var_se)
    wrong = np.exp(2 * lvh[0])  # sigma = exp(logvar)
    assert np.all(np.abs(zh.var(axis=0, ddof=1) - wrong) > 50 * var_se)


def test_noise_is_passed_in_not_drawn(bk, hrng):
    mu, logvar = A(hrng.normal(size=(N, K))), A(hrng.normal(size=(N, K)))
    eps = A(hrng.normal(size=(N, K)))
    z1, _ = reparam_forward(mu, logvar, eps)
    z2, _ = reparam_forward(mu, logvar, eps)
    np.testing.assert_array_equal(host(z1), host(z2))
    z0, _ = reparam_forward(mu, logvar, A(np.zeros((N, K))))
    np.testing.assert_array_equal(host(z0), host(mu))  # eps = 0 gives the mean


def test_logvar_50_is_finite(bk):
    mu = A(np.zeros((1, 2)))
    logvar = A(np.array([[50.0, -50.0]]))
    eps = A(np.array([[1.0, -1.0]]))
    z, cache = reparam_forward(mu, logvar, eps)
    dmu, dlogvar = reparam_backward(A(np.array([[0.5, 0.5]])), cache)
    for a in (z, dmu, dlogvar):
        assert np.all(np.isfinite(host(a)))
    np.testing.assert_allclose(host(z)[0], [math.exp(25.0), -math.exp(-25.0)], rtol=tol(bk))
    np.testing.assert_allclose(host(dlogvar)[0], [0.25 * math.exp(25.0), -0.25 * math.exp(-25.0)], rtol=tol(bk))


@pytest.mark.parametrize(
    "mu_shape, logvar_shape, eps_shape",
    [((3, 4), (3, 5), (3, 4)), ((3, 4), (3, 4), (3, 5)), ((3, 4), (3, 4), (4,)),
     ((3, 4), (3, 4), (2, 4, 4)), ((3, 4), (4,), (3, 4))],
)
def test_mismatched_shapes(bk, mu_shape, logvar_shape, eps_shape):
    with pytest.raises(ValueError, match=r"reparam_forward needs mu and logvar of one shape \(N, K\) and eps of shape "
                                         r"\(N, K\) or \(L, N, K\); got mu \(3, 4\), logvar"):
        reparam_forward(A(np.zeros(mu_shape)), A(np.zeros(logvar_shape)), A(np.zeros(eps_shape)))
