"""Data sets: the embedded digits, the split, binarization, value checks, synthetic sets."""

import hashlib
from importlib import resources

import numpy as np
import pytest

from conftest import host
from scratchvae import backend, datasets
from scratchvae.datasets import digits, synthetic

DIGITS_SHA256 = "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"


@pytest.fixture(scope="module")
def ds():
    return datasets.load("digits", split_seed=0)


# ---- names ------------------------------------------------------------------------

def test_available_and_unknown_name():
    assert datasets.available() == ("digits", "mnist")
    with pytest.raises(ValueError, match="unknown data set 'cifar'.*'digits', 'mnist'"):
        datasets.load("cifar")
    assert datasets.load(" Digits ").name == "digits"  # case and spaces forgiven


# ---- digits -----------------------------------------------------------------------

def test_embedded_file_is_the_scikit_learn_copy():
    raw = (resources.files("scratchvae") / "data" / "digits.csv.gz").read_bytes()
    assert hashlib.sha256(raw).hexdigest() == DIGITS_SHA256
    readme = (resources.files("scratchvae") / "data" / "README.md").read_text()
    assert "BSD" in readme and DIGITS_SHA256 in readme


def test_digits_equal_scikit_learn():
    sk = pytest.importorskip("sklearn.datasets")
    ref = sk.load_digits()
    x, y = digits.read_digits()
    assert x.dtype == np.uint8 and x.shape == (1797, 64) and y.dtype == np.int64
    np.testing.assert_array_equal(x, ref.data)
    np.testing.assert_array_equal(y, ref.target)


def test_digits_dataset_shapes_and_values(ds):
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (1297, 250, 250)
    assert ds.image_shape == (8, 8) and ds.n_classes == 10 and ds.n_features == 64
    assert ds.binarized is None and "train=1297" in repr(ds)
    for x, y in [(ds.x_train, ds.y_train), (ds.x_val, ds.y_val), (ds.x_test, ds.y_test)]:
        assert x.dtype == np.float32 and x.ndim == 2 and x.shape[1] == 64
        assert y.dtype == np.int64 and y.shape == (len(x),)
        assert x.min() == 0.0 and x.max() == 1.0 and not np.isnan(x).any()
        np.testing.assert_array_equal(x * 16, np.round(x * 16))  # counts / 16, exactly
        assert set(np.unique(y)) <= set(range(10))


def test_digits_split_is_a_partition_of_the_data(ds):
    x, y = digits.read_digits()
    train, val, test = datasets.split_indices(1797, 250, 250, seed=0)
    np.testing.assert_array_equal(ds.x_train, x[train] / np.float32(16))
    np.testing.assert_array_equal(ds.y_val, y[val])
    np.testing.assert_array_equal(ds.x_test, x[test] / np.float32(16))
    everything = np.concatenate([ds.y_train, ds.y_val, ds.y_test])
    np.testing.assert_array_equal(np.bincount(everything), np.bincount(y))


def test_split_is_deterministic_per_seed(ds):
    again = datasets.load("digits", split_seed=0)
    other = datasets.load("digits", split_seed=1)
    np.testing.assert_array_equal(again.x_val, ds.x_val)
    np.testing.assert_array_equal(again.y_test, ds.y_test)
    assert not np.array_equal(other.y_val, ds.y_val)


def test_split_indices():
    train, val, test = datasets.split_indices(100, 20, 10, seed=3)
    assert (len(train), len(val), len(test)) == (70, 20, 10)
    allidx = np.concatenate([train, val, test])
    np.testing.assert_array_equal(np.sort(allidx), np.arange(100))  # disjoint and complete
    for part in (train, val, test):
        assert part.dtype == np.int64 and np.all(np.diff(part) > 0)  # sorted
    np.testing.assert_array_equal(datasets.split_indices(100, 20, 10, seed=3)[1], val)
    with pytest.raises(ValueError, match="keep at least one for training"):
        datasets.split_indices(10, 5, 5)
    with pytest.raises(ValueError):
        datasets.split_indices(10, -1, 2)


# ---- validation ----------------------------------------------------------------------

def test_loader_rejects_bad_values():
    y = np.zeros(10, dtype=np.int64)
    x = np.full((10, 4), 0.5)
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="toy x_train contains 1 NaN"):
        datasets.make_dataset("toy", bad, y, (2, 2), 1, n_val=0, n_test=0)
    bad = x.copy()
    bad[0, 0] = 1.5
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\].*1\.5"):
        datasets.make_dataset("toy", bad, y, (2, 2), 1, n_val=2, n_test=2, seed=1)
    with pytest.raises(ValueError, match=r"shape \(N, 9\)"):
        datasets.make_dataset("toy", x, y, (3, 3), 1, n_val=2, n_test=2)
    with pytest.raises(ValueError, match="10 images but 9 labels"):
        datasets.make_dataset("toy", x, y[:9], (2, 2), 1, n_val=2, n_test=2)
    with pytest.raises(ValueError, match="binarize must be None or 'fixed'"):
        datasets.load("digits", binarize="dynamic")
    for seed in (None, -1, 1.5, True, "0"):  # None would give a different split on each call
        with pytest.raises(ValueError, match=f"split_seed must be a non-negative integer.*got {seed!r}"):
            datasets.load("digits", split_seed=seed)
    assert len(datasets.load("digits", split_seed=np.int64(3)).x_val) == 250
    ok = datasets.make_dataset("toy", x, y, (2, 2), 1, n_val=2, n_test=3)
    assert (len(ok.x_train), len(ok.x_val), len(ok.x_test)) == (5, 2, 3)


def test_check_unit_interval_refuses_nan(bk):
    from scratchvae.checks import check_data, check_unit_interval

    for row in ([0.5, np.nan], [np.nan, 0.5]):
        x = backend.asarray(np.array([row]))
        with pytest.raises(ValueError, match="pixels contains NaN.*\\[0, 1\\]"):
            check_unit_interval(x, "pixels")
    with pytest.raises(ValueError, match="NaN"):
        check_data(backend.asarray(np.array([[0.5, np.nan]])), 2, "the model", True)
    check_unit_interval(backend.asarray(np.array([[0.0, 1.0]])), "pixels")


# ---- binarization ---------------------------------------------------------------------

def test_fixed_binarization(ds):
    b = datasets.load("digits", split_seed=0, binarize="fixed")
    assert b.binarized == "fixed"
    np.testing.assert_array_equal(b.y_train, ds.y_train)  # same split
    for xb, xg in [(b.x_train, ds.x_train), (b.x_val, ds.x_val), (b.x_test, ds.x_test)]:
        assert xb.dtype == np.float32 and set(np.unique(xb)) == {0.0, 1.0}
        assert np.all(xb[xg == 0.0] == 0.0) and np.all(xb[xg == 1.0] == 1.0)
    # E[b] = x: the mean over 83,008 pixels is within 4 standard errors
    se = np.sqrt(np.sum(ds.x_train * (1 - ds.x_train))) / ds.x_train.size
    assert abs(b.x_train.mean() - ds.x_train.mean()) < 4 * se
    again = datasets.load("digits", split_seed=0, binarize="fixed")
    np.testing.assert_array_equal(again.x_train, b.x_train)
    other = datasets.load("digits", split_seed=1, binarize="fixed")
    assert not np.array_equal(other.x_val, b.x_val)


@pytest.mark.parametrize("value, message", [(np.nan, "NaN or infinite"), (np.inf, "NaN or infinite"),
                                            (5.0, r"grey levels in \[0, 1\]"), (-0.5, r"grey levels in \[0, 1\]")])
def test_binarize_refuses_nan_inf_and_values_outside_0_1(value, message):
    x = np.full((3, 4), 0.5, dtype=np.float32)
    x[1, 2] = value  # NaN fails both x < 0 and x > 1: a min/max test would pass it as 0
    with pytest.raises(ValueError, match=message):
        datasets.binarize(x, 0)


def test_fixed_binarization_checks_the_data_first():
    y = np.zeros(10, dtype=np.int64)
    x = np.full((10, 4), 0.5, dtype=np.float32)
    x[3, 1] = np.nan
    with pytest.raises(ValueError, match="toy x_train contains 1 NaN"):
        datasets.make_dataset("toy", x, y, (2, 2), 1, n_val=0, n_test=0, binarize_mode="fixed")
    x[3, 1] = 5.0
    with pytest.raises(ValueError, match=r"toy x_train must lie in \[0, 1\] but runs from 0.5 to 5"):
        datasets.make_dataset("toy", x, y, (2, 2), 1, n_val=0, n_test=0, binarize_mode="fixed")


def test_binarize_probability_per_pixel():
    # P(b = 1) = x for every pixel: 4000 draws of a row of grey levels
    x = np.linspace(0.0, 1.0, 11, dtype=np.float32)
    rng = np.random.default_rng(0)
    draws = np.stack([datasets.binarize(x, rng) for _ in range(4000)])
    p = draws.mean(axis=0)
    se = np.sqrt(x * (1 - x) / 4000) + 1e-12
    assert np.all(np.abs(p - x) <= 4 * se)
    assert p[0] == 0.0 and p[-1] == 1.0


def test_dynamic_binarization_differs_per_epoch_and_follows_the_seed(ds):
    x = ds.x_val
    rng = backend.RNG(5)
    e1, e2 = datasets.binarize(x, rng), datasets.binarize(x, rng)
    assert not np.array_equal(e1, e2)  # a new draw each epoch
    np.testing.assert_array_equal(datasets.binarize(x, backend.RNG(5)), e1)
    np.testing.assert_array_equal(datasets.binarize(x, np.random.default_rng(5)), e1)
    np.testing.assert_array_equal(datasets.binarize(x, 5), e1)
    with pytest.raises(TypeError, match="rng must be"):
        datasets.binarize(x, "five")
    with pytest.raises(ValueError, match=r"grey levels in \[0, 1\].*divide 8-bit images by 255"):
        datasets.binarize(np.array([[0, 128, 255]], dtype=np.uint8), 0)


def test_binarize_on_every_backend_gives_the_host_bits(bk, ds):
    x_host = ds.x_val[:40]
    expected = datasets.binarize(x_host.astype(np.float64), np.random.default_rng(7))
    x = backend.asarray(x_host)
    b = datasets.binarize(x, backend.RNG(7))
    assert b.dtype == x.dtype and b.shape == x.shape and b.device == x.device
    np.testing.assert_array_equal(host(b), expected)


# ---- synthetic ------------------------------------------------------------------------

def test_gaussian_mixture_matches_its_parameters():
    s = datasets.gaussian_mixture(n=20000, seed=0)
    assert s.x.shape == (20000, 2) and s.labels.shape == (20000,) and s.labels.dtype == np.int64
    np.testing.assert_allclose(s.weights, [0.5, 0.3, 0.2])
    freq = np.bincount(s.labels, minlength=3) / 20000
    assert np.all(np.abs(freq - s.weights) < 4 * np.sqrt(s.weights * (1 - s.weights) / 20000))
    for k in range(3):
        xk = s.x[s.labels == k]
        se = np.sqrt(np.diag(s.covs[k]) / len(xk))
        assert np.all(np.abs(xk.mean(axis=0) - s.means[k]) < 4 * se)
        S = s.covs[k]  # standard error of a sample covariance entry: sqrt((S_ii S_jj + S_ij^2) / n)
        se_cov = np.sqrt((np.outer(np.diag(S), np.diag(S)) + S**2) / len(xk))
        assert np.all(np.abs(np.cov(xk.T) - S) < 4 * se_cov)
    np.testing.assert_array_equal(datasets.gaussian_mixture(n=50, seed=0).x,
                                  datasets.gaussian_mixture(n=50, seed=0).x)


def test_gaussian_mixture_rejects_bad_parameters():
    with pytest.raises(ValueError, match="sum to 1"):
        datasets.gaussian_mixture(weights=[0.5, 0.6, 0.2])
    with pytest.raises(ValueError, match="must agree"):
        datasets.gaussian_mixture(weights=[0.5, 0.5])
    with pytest.raises(ValueError, match="positive definite"):
        datasets.gaussian_mixture(weights=[1.0], means=[[0.0, 0.0]], covs=[[[1.0, 2.0], [2.0, 1.0]]])
    # its lower triangle is that of the identity (cholesky would accept it), but it is not symmetric
    with pytest.raises(ValueError, match=r"covs\[1\] is not symmetric"):
        datasets.gaussian_mixture(weights=[0.5, 0.5], means=[[0.0, 0.0], [1.0, 1.0]],
                                  covs=[np.eye(2), [[1.0, 5.0], [0.0, 1.0]]])
    with pytest.raises(ValueError, match="positive integer"):
        datasets.gaussian_mixture(n=0)


def test_low_rank_has_its_subspace_and_spectral_gap():
    s = datasets.low_rank(n=20000, p=8, q=3, noise=0.2, seed=1)
    U = s.basis
    assert s.x.shape == (20000, 8) and s.z.shape == (20000, 3) and U.shape == (8, 3)
    np.testing.assert_allclose(U.T @ U, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(s.scales, [2.0, 1.5, 1.0])
    np.testing.assert_allclose(s.cov, s.W @ s.W.T + 0.04 * np.eye(8), atol=1e-12)
    # population spectrum: s_i^2 + sigma^2 on U, sigma^2 elsewhere
    evals, evecs = np.linalg.eigh(s.cov)
    np.testing.assert_allclose(evals[::-1], [4.04, 2.29, 1.04] + [0.04] * 5, atol=1e-12)
    # the sample reproduces it: mean, and a top-3 subspace close to U
    assert np.all(np.abs(s.x.mean(axis=0) - s.mean) < 4 * np.sqrt(np.diag(s.cov) / 20000))
    sev, svec = np.linalg.eigh(np.cov(s.x.T))
    top = svec[:, -3:]
    cosines = np.linalg.svd(U.T @ top, compute_uv=False)  # cosines of principal angles
    assert cosines.min() > 0.999
    assert sev[-3] / sev[-4] > 20  # the gap survives sampling
    with pytest.raises(ValueError, match="1 <= q <= p"):
        datasets.low_rank(p=2, q=3)
    with pytest.raises(ValueError, match="noise"):
        datasets.low_rank(noise=-0.1)


def test_noisy_arc_and_two_moons():
    arc = datasets.noisy_arc(n=2000, noise=0.05, seed=0)
    r = np.linalg.norm(arc.x, axis=1)
    assert arc.x.shape == (2000, 2) and arc.labels is None
    assert abs(r.mean() - 1.0) < 0.01 and 0.04 < r.std() < 0.06
    assert 0.0 <= arc.t.min() and arc.t.max() <= 1.0
    theta = np.arctan2(arc.x[:, 1], arc.x[:, 0]) % (2 * np.pi)
    theta = np.where(theta > 1.5 * np.pi, theta - 2 * np.pi, theta)  # noise below the x axis
    assert np.corrcoef(theta, arc.t)[0, 1] > 0.99  # t is the position along the arc
    clean = datasets.noisy_arc(n=5, noise=0.0, seed=0)
    np.testing.assert_allclose(clean.x, np.column_stack([np.cos(np.pi * clean.t), np.sin(np.pi * clean.t)]))
    moons = synthetic.two_moons(n=101, noise=0.0, seed=0)
    assert np.bincount(moons.labels).tolist() == [50, 51]
    m1 = moons.x[moons.labels == 1]
    np.testing.assert_allclose(np.linalg.norm(m1 - [1.0, 0.5], axis=1), 1.0)  # on its circle
    assert np.all(m1[:, 1] <= 0.5 + 1e-12)  # the lower half circle
