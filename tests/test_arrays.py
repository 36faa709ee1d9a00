"""scratchvae.arrays (unbroadcast, logsumexp) and scratchvae.checks (the input checks
behind every "what to do" message)."""

import numpy as np
import pytest
from scipy import special

from scratchvae import backend
from scratchvae.arrays import logsumexp, unbroadcast
from scratchvae.checks import check_columns, check_finite, check_ndim, check_same_shape, check_unit_interval

from conftest import host, tol


def A(h):
    return backend.asarray(h)


# -- unbroadcast ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "big, small, axes, keep",
    [((5, 3, 4), (3, 4), (0,), False), ((3, 4), (4,), (0,), False), ((3, 4), (), (0, 1), False),
     ((3, 4), (1, 4), (0,), True), ((3, 4), (3, 1), (1,), True), ((2, 3, 4), (1, 4), (0, 1), True),
     ((3, 4), (3, 4), (), False)],
)
def test_unbroadcast_sums_the_copies(bk, hrng, big, small, axes, keep):
    gh = hrng.normal(size=big)
    out = unbroadcast(A(gh), small)
    assert out.shape == small
    want = gh.sum(axis=axes, keepdims=keep) if axes else gh
    if keep and len(small) < len(big):
        want = want.reshape(small)
    np.testing.assert_allclose(host(out), want, rtol=tol(bk), atol=tol(bk))


def test_unbroadcast_is_the_adjoint_of_broadcasting(bk, hrng):
    """<broadcast(b), g> = <b, unbroadcast(g)>: why the gradient of a broadcast is a sum."""
    bh, gh = hrng.normal(size=(1, 4)), hrng.normal(size=(3, 4))
    lhs = float(np.sum(np.broadcast_to(bh, gh.shape) * gh))
    rhs = float(np.sum(bh * host(unbroadcast(A(gh), (1, 4)))))
    assert lhs == pytest.approx(rhs, rel=tol(bk), abs=tol(bk))


# -- logsumexp -------------------------------------------------------------------------------


def test_logsumexp_matches_scipy(bk, hrng):
    ah = 3.0 * hrng.normal(size=(4, 5))
    for axis in (0, 1):
        got = logsumexp(A(ah), axis=axis)
        np.testing.assert_allclose(host(got), special.logsumexp(ah, axis=axis), rtol=tol(bk))
    kept = logsumexp(A(ah), axis=1, keepdims=True)
    assert kept.shape == (4, 1)


def test_logsumexp_is_stable(bk):
    a = A(np.array([[1000.0, 1000.0], [-1000.0, -1000.0], [0.0, -np.inf], [-np.inf, -np.inf]]))
    got = host(logsumexp(a, axis=1))  # no overflow or divide-by-zero warning (they are errors here)
    np.testing.assert_allclose(got[:3], [1000.0 + np.log(2.0), -1000.0 + np.log(2.0), 0.0], rtol=tol(bk))
    assert got[3] == -np.inf  # an all -inf row gives -inf, not NaN


def test_logsumexp_keeps_nan_and_inf(bk):
    """A NaN (a diverged model) stays NaN, never -inf (a certain "impossible"); +inf stays +inf."""
    a = A(np.array([[0.0, np.nan, 1.0], [0.0, np.inf, 1.0], [np.nan, np.nan, np.nan]]))
    got = host(logsumexp(a, axis=1))
    assert np.isnan(got[0]) and got[1] == np.inf and np.isnan(got[2])


# -- checks ---------------------------------------------------------------------------------


def test_check_ndim(bk):
    check_ndim(A(np.zeros((2, 3))), 2, "data", "(N, D)")
    with pytest.raises(ValueError, match=r"data must have shape \(N, D\), got \(6,\); put one example per row"):
        check_ndim(A(np.zeros(6)), 2, "data", "(N, D)")
    with pytest.raises(ValueError, match=r"eps must have shape \(L, N, K\), got \(2, 3\); pass an array with the shape shown"):
        check_ndim(A(np.zeros((2, 3))), 3, "eps", "(L, N, K)")
    with pytest.raises(ValueError, match=r"data must have shape \(N, D\), got list"):
        check_ndim([[1.0]], 2, "data", "(N, D)")
    with pytest.raises(ValueError, match=r"data is empty \(shape \(0, 3\)\); pass at least one example"):
        check_ndim(A(np.zeros((0, 3))), 2, "data", "(N, D)")


def test_check_columns_and_same_shape(bk):
    check_columns(A(np.zeros((2, 3))), 3, "x", "the encoder")
    with pytest.raises(ValueError, match=r"x has 3 columns but the encoder expects 784: shape \(2, 3\); pass data with 784 features per row"):
        check_columns(A(np.zeros((2, 3))), 784, "x", "the encoder")
    with pytest.raises(ValueError, match=r"a and b must have the same shape, got \(2,\) and \(3,\)"):
        check_same_shape(A(np.zeros(2)), A(np.zeros(3)), "a", "b")


def test_check_finite(bk):
    check_finite(A(np.zeros((2, 2))), "x")
    with pytest.raises(ValueError, match=r"x contains 3 NaN or infinite value\(s\); remove or impute them first"):
        check_finite(A(np.array([np.nan, 1.0, np.inf, -np.inf])), "x")


def test_check_unit_interval(bk):
    check_unit_interval(A(np.array([0.0, 0.5, 1.0])), "pixels")
    with pytest.raises(ValueError, match=r"pixels must lie in \[0, 1\] .* run from 0 to 255; scale pixels to \[0, 1\] \(e.g. divide 8-bit images by 255\)"):
        check_unit_interval(A(np.array([0.0, 255.0])), "pixels")
