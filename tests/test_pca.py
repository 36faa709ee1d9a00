"""PCA: the subspace of an SVD, the minimum reconstruction error, L2 (4), scikit-learn agreement."""

import numpy as np
import pytest

from scratchvae import backend
from scratchvae.linear import PCA, subspace_angles

from conftest import host, tol


def _data(hrng, N=200, D=6):
    # anisotropic data with well-separated variances, not centred
    scales = np.array([5.0, 3.0, 2.0, 1.0, 0.5, 0.2, 0.1, 0.05])[:D]
    mix = np.linalg.qr(hrng.normal(size=(D, D)))[0]
    return (hrng.normal(size=(N, D)) * scales) @ mix.T + hrng.normal(size=D) * 3.0


def _align_signs(A, B):
    """Flip rows of B to match the signs of the rows of A (singular vectors are +- defined)."""
    return B * np.sign(np.sum(A * B, axis=1, keepdims=True))


def test_subspace_and_variances_match_svd(bk, hrng):
    X = _data(hrng)
    pca = PCA(3).fit(backend.asarray(X))
    C = host(pca.components_)
    assert C.shape == (3, 6)
    np.testing.assert_allclose(C @ C.T, np.eye(3), atol=tol(bk, 1e-12, 1e-5))  # orthonormal rows
    Xc = X - X.mean(axis=0)
    _, s, Vt = np.linalg.svd(Xc, full_matrices=False)
    angles = host(subspace_angles(pca.components_.T, backend.asarray(Vt[:3].T)))
    assert angles.max() < tol(bk, 1e-12, 1e-4)
    np.testing.assert_allclose(host(pca.mean_), X.mean(axis=0), rtol=tol(bk, 1e-12, 1e-5))
    np.testing.assert_allclose(host(pca.explained_variance_), s[:3] ** 2 / 199, rtol=tol(bk, 1e-12, 1e-5))
    np.testing.assert_allclose(host(pca.explained_variance_ratio_), s[:3] ** 2 / np.sum(s ** 2),
                               rtol=tol(bk, 1e-12, 1e-5))
    np.testing.assert_allclose(host(pca.noise_variance_), np.mean(s[3:] ** 2 / 199), rtol=tol(bk, 1e-12, 1e-4))
    # each row's largest entry is positive (deterministic signs)
    assert np.all(C[np.arange(3), np.argmax(np.abs(C), axis=1)] > 0)


@pytest.mark.parametrize("q", [1, 3, 5])
def test_reconstruction_error_is_the_discarded_eigenvalues(bk, hrng, q):
    X = _data(hrng, N=150)
    N = X.shape[0]
    pca = PCA(q).fit(X)
    lam = np.linalg.eigvalsh(np.cov(X, rowvar=False, bias=True))[::-1]  # covariance with 1/N
    err = float(pca.reconstruction_error(X))
    np.testing.assert_allclose(err, N * lam[q:].sum(), rtol=tol(bk, 1e-10, 1e-4))
    # and that is the minimum of E(A), L2 (1): a random orthonormal A does worse
    A = np.linalg.qr(hrng.normal(size=(6, q)))[0]
    Xc = X - X.mean(axis=0)
    assert np.sum((Xc - Xc @ A @ A.T) ** 2) > err


def test_transform_inverse_transform(bk, hrng):
    X = _data(hrng, N=120)
    pca = PCA(2).fit(X)
    Xb = backend.asarray(X)
    Z = pca.transform(Xb)
    Xhat = host(pca.inverse_transform(Z))
    V = host(pca.components_)
    mean = X.mean(axis=0)
    np.testing.assert_allclose(Xhat, mean + (X - mean) @ V.T @ V, atol=tol(bk, 1e-10, 1e-4))
    # keeping every direction reconstructs exactly
    full = PCA(6).fit(X)
    np.testing.assert_allclose(host(full.inverse_transform(full.transform(Xb))), X, atol=tol(bk, 1e-10, 1e-4))
    np.testing.assert_allclose(float(full.reconstruction_error(X)), 0.0, atol=tol(bk, 1e-18, 1e-6) * np.sum(X ** 2))


def test_whitening(bk, hrng):
    X = _data(hrng, N=300)
    pca = PCA(3, whiten=True).fit(X)
    Z = host(pca.transform(X))
    np.testing.assert_allclose(np.cov(Z, rowvar=False), np.eye(3), atol=tol(bk, 1e-10, 1e-4))
    Xhat = host(pca.inverse_transform(pca.transform(X)))
    plain = PCA(3).fit(X)
    np.testing.assert_allclose(Xhat, host(plain.inverse_transform(plain.transform(X))), atol=tol(bk, 1e-10, 1e-4))


@pytest.mark.parametrize("whiten", [False, True])
def test_matches_sklearn(bk, hrng, whiten):
    skd = pytest.importorskip("sklearn.decomposition")
    X = _data(hrng, N=250)
    ours = PCA(4, whiten=whiten).fit(X)
    ref = skd.PCA(4, whiten=whiten, svd_solver="full").fit(X)
    C = host(ours.components_)
    np.testing.assert_allclose(_align_signs(C, ref.components_), C, atol=tol(bk, 1e-10, 1e-4))
    r = tol(bk, 1e-10, 1e-5)
    np.testing.assert_allclose(host(ours.explained_variance_), ref.explained_variance_, rtol=r)
    np.testing.assert_allclose(host(ours.explained_variance_ratio_), ref.explained_variance_ratio_, rtol=r)
    np.testing.assert_allclose(host(ours.singular_values_), ref.singular_values_, rtol=r)
    np.testing.assert_allclose(float(ours.noise_variance_), ref.noise_variance_, rtol=tol(bk, 1e-10, 1e-4))
    Zref = ref.transform(X) * np.sign(np.sum(C * ref.components_, axis=1))
    np.testing.assert_allclose(host(ours.transform(X)), Zref, atol=tol(bk, 1e-9, 1e-3))


def test_bad_input(bk, hrng):
    X = _data(hrng, N=5)
    with pytest.raises(ValueError, match="min\\(n_samples, n_features\\)"):
        PCA(6).fit(X)                                    # 6 > min(5, 6)
    bad = X.copy()
    bad[2, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        PCA(2).fit(bad)
    with pytest.raises(ValueError, match="positive integer"):
        PCA(0)
    assert PCA(np.int64(2)).fit(X).n_components == 2  # a NumPy integer is an integer
    with pytest.raises(ValueError, match="fit"):
        PCA(2).transform(X)
    pca = PCA(2).fit(X)
    with pytest.raises(ValueError, match="columns"):
        pca.transform(X[:, :4])
    with pytest.raises(ValueError, match="at least 2"):
        PCA(1).fit(X[:1])
    # a rank-2 data set: whitening 3 components would divide by zero -> a clear error
    flat = hrng.normal(size=(40, 2)) @ hrng.normal(size=(2, 5))
    failed = PCA(3, whiten=True)
    with pytest.raises(ValueError, match="whiten"):
        failed.fit(flat)
    with pytest.raises(ValueError, match="not fitted"):  # a failed fit leaves no half-fitted model
        failed.transform(flat)
    refit = PCA(3, whiten=True).fit(X[:, :5])
    before = host(refit.components_)
    with pytest.raises(ValueError, match="whiten"):
        refit.fit(flat)
    np.testing.assert_array_equal(host(refit.components_), before)  # ...and keeps the last good fit
    assert host(refit.mean_).shape == (5,) and refit.n_samples_ == X.shape[0]
    # without whitening it is fine and the extra direction carries (numerically) no variance
    ev = host(PCA(3).fit(flat).explained_variance_)
    assert np.all(np.isfinite(ev)) and ev[2] < tol(bk, 1e-12, 1e-5) * ev[0]


def test_data_as_lists_integers_complex_and_huge_values(bk, hrng):
    """Lists and integer arrays are data (converted); complex numbers are refused by name;
    finite values whose squares overflow are named as such, not as NaN (issue 16, items 7, 8)."""
    X = _data(hrng, N=20)
    ref = host(PCA(2).fit(X).explained_variance_)
    np.testing.assert_allclose(host(PCA(2).fit(X.tolist()).explained_variance_), ref, rtol=tol(bk, 1e-10, 1e-4))
    counts = hrng.integers(0, 256, size=(20, 6)).astype(np.uint8)
    np.testing.assert_allclose(host(PCA(2).fit(counts).explained_variance_),
                               host(PCA(2).fit(counts.astype(np.float64)).explained_variance_))
    with pytest.raises(ValueError, match=r"^X must hold real numbers \(float\), got complex128; pass X\.real"):
        PCA(2).fit(X.astype(np.complex128))
    pca = PCA(2).fit(X)
    with pytest.raises(ValueError, match=r"^X must hold real numbers"):
        pca.transform(X.astype(np.complex128))
    big = 1e200 if bk.dtype_name == "float64" else 1e30
    huge = hrng.normal(size=(20, 6)) * big  # was: fitted, with NaN explained_variance_ratio_
    with pytest.raises(ValueError, match=r"^X holds values as large as .*whose squares, summed 480 at a time "
                                         r"\(as in a variance\), can overflow float\d\d .*X / abs\(X\)\.max\(\)$"):
        PCA(2).fit(huge)
    scaled = PCA(2).fit(huge / np.abs(huge).max())  # the advice works
    assert np.all(np.isfinite(host(scaled.explained_variance_ratio_)))
