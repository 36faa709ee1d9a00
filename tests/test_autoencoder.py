"""Autoencoders: tied (linear = PCA) and untied deep, plain and denoising.

- every gradient of loss_and_grads against central differences (float64, < 1e-7),
  the tied W (used twice) included, on every CPU backend;
- a tied linear AE trained by Adam from random weights reaches the PCA subspace;
- the deep AE overfits a tiny batch; corruption does what it says; bad input is refused.
"""

import json

import numpy as np
import pytest
import scipy.linalg
import scipy.ndimage

from conftest import host, tol
from scratchvae import backend
from scratchvae.gradcheck import check_function
from scratchvae.models import Autoencoder, TiedAutoencoder, corrupt
from scratchvae.optim import Adam

try:  # the package's own principal angles, once scratchvae/linear/angles.py exists
    from scratchvae.linear import subspace_angles
except ImportError:
    def subspace_angles(A, B):
        """Principal angles between column spaces, radians, descending (host copies)."""
        return scipy.linalg.subspace_angles(host(A), host(B))


def _gradcheck(model, x, target=None, noise_seed=None):
    """Check model.grads against central differences of loss_and_grads(x, target)[0].

    The check runs at random parameters (biases too, which start at 0): gradients of
    order 0.1-1 rather than the tiny ones of a fresh deep net, whose central
    differences would be limited by round-off. With noise_seed, model.rng is re-seeded
    before every evaluation so the corruption noise is the same in each: the function
    being differentiated is then fixed."""
    rng = np.random.default_rng(99)
    for p in model.params.values():
        p[...] = backend.asarray(rng.normal(0.0, 0.7, size=p.shape))

    def f(**_):
        if noise_seed is not None:
            model.rng = backend.RNG(noise_seed)
        return model.loss_and_grads(x, target)[0]

    f()
    xp = backend.namespace(x)
    # copies: every evaluation below zeroes and refills model.grads
    analytic = {k: xp.asarray(g, copy=True) for k, g in model.grads.items()}
    return check_function(f, model.params, analytic).assert_ok()


def _data(hrng, N, D, unit=False):
    a = hrng.uniform(0.0, 1.0, size=(N, D)) if unit else hrng.normal(size=(N, D))
    return backend.asarray(a)


# ---------------------------------------------------------------- gradient checks


@pytest.mark.parametrize("activation", ["linear", "tanh", "sigmoid"])
@pytest.mark.parametrize("bias", [True, False])
def test_tied_gradients_mse(bk64, hrng, activation, bias):
    x = _data(hrng, 5, 6)
    m = TiedAutoencoder(6, 3, activation=activation, bias=bias, seed=1)
    report = _gradcheck(m, x)
    assert set(m.grads) == ({"W", "b_enc", "b_dec"} if bias else {"W"})
    assert report["W"].error < 1e-7


def test_tied_gradients_bernoulli(bk64, hrng):
    x = _data(hrng, 5, 6, unit=True)
    _gradcheck(TiedAutoencoder(6, 3, activation="sigmoid", loss="bernoulli", seed=2), x)


def test_tied_W_collects_both_uses(bk64, hrng):
    """dL/dW is the encoder term plus the decoder term; either alone is wrong."""
    xp = bk64.xp
    x = _data(hrng, 5, 6)
    m = TiedAutoencoder(6, 3, activation="tanh", bias=True, seed=3)
    m.loss_and_grads(x)
    full = xp.asarray(m.grads["W"], copy=True)
    W, b_enc, b_dec = m.params["W"], m.params["b_enc"], m.params["b_dec"]
    a = x @ W + b_enc
    h = xp.tanh(a)
    dxhat = 2.0 * (h @ W.T + b_dec - x) / 5
    dec = dxhat.T @ h  # decoder use
    enc = x.T @ ((dxhat @ W) * (1.0 - h * h))  # encoder use
    assert np.allclose(host(full), host(enc + dec), rtol=1e-12, atol=1e-12)
    assert not np.allclose(host(full), host(dec), rtol=1e-3)
    assert not np.allclose(host(full), host(enc), rtol=1e-3)


@pytest.mark.parametrize("loss", ["mse", "bernoulli"])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_deep_gradients(bk64, hrng, loss, activation):
    x = _data(hrng, 4, 6, unit=loss == "bernoulli")
    m = Autoencoder(6, hidden=(5, 4), z_dim=3, activation=activation, loss=loss, seed=4)
    report = _gradcheck(m, x)
    assert {c.name for c in report.checks} == set(m.params)
    assert {"enc.fc1.W", "enc.fc3.b", "dec.fc1.W", "dec.fc3.b"} <= set(m.params)


@pytest.mark.parametrize("corruption", ["gaussian", "masking"])
def test_denoising_gradients_noise_held_fixed(bk64, hrng, corruption):
    x = _data(hrng, 4, 6)
    _gradcheck(Autoencoder(6, hidden=(5,), z_dim=3, activation="tanh", corruption=corruption,
                           seed=5), x, noise_seed=11)
    _gradcheck(TiedAutoencoder(6, 3, activation="tanh", corruption=corruption, seed=5), x,
               noise_seed=12)


def test_blur_denoising_gradients(bk64, hrng):
    x = _data(hrng, 3, 12, unit=True)
    m = TiedAutoencoder(12, 3, activation="sigmoid", loss="bernoulli", corruption="blur",
                        noise_level=0.8, image_shape=(3, 4), seed=6)
    _gradcheck(m, x)


# ---------------------------------------------------------------- contracts


def test_loss_and_grads_contract(bk, hrng):
    x = _data(hrng, 5, 6)
    for m in (TiedAutoencoder(6, 2, activation="tanh"), Autoencoder(6, hidden=(4,), z_dim=2)):
        for g in m.grads.values():
            g[...] = 5.0  # stale values: loss_and_grads writes every gradient
        loss, stats = m.loss_and_grads(x)
        assert loss.shape == ()  # an array (numpy gives a 0-d np.float64), not a Python float
        assert set(stats) >= {"rec"} and stats["rec"].ndim == 0
        assert m.params.keys() == m.grads.keys()
        first = {k: host(g) for k, g in m.grads.items()}
        m.loss_and_grads(x)  # written again: not doubled
        for k, g in m.grads.items():
            assert np.allclose(host(g), first[k], rtol=tol(bk), atol=tol(bk))
        # loss is the mean over the batch of per-example sums of squares
        x_hat = m.reconstruct(x)
        ref = np.sum((host(x_hat) - host(x)) ** 2) / 5
        assert abs(float(loss) - ref) <= tol(bk) * ref
        assert m.encode(x).shape == (5, 2) and m.decode(m.encode(x)).shape == (5, 6)
        assert x_hat.device == x.device and x_hat.dtype == x.dtype


def test_bernoulli_reconstruction_is_a_probability(bk, hrng):
    x = _data(hrng, 5, 6, unit=True)
    for m in (TiedAutoencoder(6, 2, loss="bernoulli"), Autoencoder(6, (4,), 2, loss="bernoulli")):
        p = host(m.reconstruct(x))
        assert np.all((p > 0) & (p < 1))
        logits = host(m._decoder_out(m.encode(x)))
        assert np.allclose(p, 1 / (1 + np.exp(-logits)), rtol=tol(bk), atol=tol(bk))


def test_config_rebuilds_the_same_model(bk):
    models = [
        TiedAutoencoder(6, 2, activation="tanh", bias=False, seed=3),
        Autoencoder(12, hidden=(5, 4), z_dim=2, loss="bernoulli", corruption="blur",
                    image_shape=(3, 4), seed=7),
        Autoencoder(6, (4,), 2, corruption="masking", noise_level=0.5, seed=8),
    ]
    for m in models:
        cfg = json.loads(json.dumps(m.config))
        twin = type(m)(**cfg)
        assert twin.config == m.config
        for k, p in m.params.items():
            assert np.array_equal(host(p), host(twin.params[k]))
    assert models[1].noise_level == 1.0 and models[2].noise_level == 0.5
    # different seeds, different weights
    assert not np.allclose(host(TiedAutoencoder(6, 2, seed=1).params["W"]),
                           host(TiedAutoencoder(6, 2, seed=2).params["W"]))


# ---------------------------------------------------------------- linear AE = PCA


def _spectral_gap_data(seed=0, n=500, p=10):
    """Centred data with variances 25, 9 on two directions and <= 0.25 on the rest."""
    r = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(r.normal(size=(p, p)))
    scales = np.array([5.0, 3.0, 0.5, 0.5, 0.4, 0.4, 0.3, 0.3, 0.2, 0.2])
    X = (r.normal(size=(n, p)) * scales) @ Q.T
    return X - X.mean(axis=0)


@pytest.mark.parametrize("seed", [0, 1])
def test_tied_linear_ae_finds_the_pca_subspace(bk, seed):
    q = 2
    X = _spectral_gap_data(seed)
    _, S, Vt = np.linalg.svd(X, full_matrices=False)  # PCA reference: top right singular vectors
    V = Vt[:q].T
    m = TiedAutoencoder(10, q, activation="linear", bias=False, seed=seed)
    with backend.using("numpy", dtype="float64"):
        start = np.degrees(host(subspace_angles(host(m.params["W"]), V)))
    assert start[0] > 10.0  # random weights start far from the answer
    x = backend.asarray(X)
    opt = Adam(lr=0.01)
    for _ in range(500):
        loss, _ = m.loss_and_grads(x, check=False)
        opt.step(m.params, m.grads)
    W = host(m.params["W"])
    with backend.using("numpy", dtype="float64"):
        angles = np.degrees(host(subspace_angles(W, V)))
    assert angles[0] < 1.0, f"largest principal angle {angles[0]:.3g} degrees"
    # at the optimum x_hat = x W W^T is the PCA projection: W^T W = I and the loss is
    # the variance left out, sum_{i > q} s_i^2 / n
    assert np.allclose(W.T @ W, np.eye(q), atol=1e-3)
    assert abs(float(loss) - np.sum(S[q:] ** 2) / 500) < 1e-3


def test_pca_basis_is_a_stationary_point(bk):
    X = _spectral_gap_data(2)
    _, S, Vt = np.linalg.svd(X, full_matrices=False)
    m = TiedAutoencoder(10, 2, bias=False)
    x = backend.asarray(X)
    m.loss_and_grads(x)
    g_random = np.linalg.norm(host(m.grads["W"]))  # at the random initial W
    m.params["W"][...] = backend.asarray(Vt[:2].T)
    loss, _ = m.loss_and_grads(x)
    assert np.linalg.norm(host(m.grads["W"])) < tol(bk, 1e-10, 1e-4) * g_random
    assert abs(float(loss) - np.sum(S[2:] ** 2) / 500) <= tol(bk, 1e-12, 1e-5) * float(loss)


# ---------------------------------------------------------------- deep AE


def test_deep_ae_overfits_a_tiny_batch(bk, hrng):
    x = _data(hrng, 8, 12)
    m = Autoencoder(12, hidden=(32,), z_dim=4, activation="tanh", seed=0)
    opt = Adam(lr=1e-2)
    first, _ = m.loss_and_grads(x)
    first = float(first)
    for _ in range(300):
        loss, _ = m.loss_and_grads(x)
        opt.step(m.params, m.grads)
    assert float(loss) < 1e-4 * first, (first, float(loss))


# ---------------------------------------------------------------- denoising


@pytest.mark.parametrize("kind", ["gaussian", "masking", "blur"])
def test_denoising_corrupts_the_input_and_targets_the_clean_x(bk, hrng, kind):
    x = _data(hrng, 6, 12, unit=True)
    shape = (3, 4) if kind == "blur" else None
    noisy = TiedAutoencoder(12, 3, activation="tanh", corruption=kind, image_shape=shape, seed=9)
    clean = TiedAutoencoder(12, 3, activation="tanh", seed=9)  # the same weights
    noisy.rng = backend.RNG(21)
    loss, _ = noisy.loss_and_grads(x)
    x_tilde = corrupt(x, kind, noisy.noise_level, backend.RNG(21), shape)
    expect, _ = clean.loss_and_grads(x_tilde, target=x)
    assert abs(float(loss) - float(expect)) <= tol(bk) * float(expect)
    for k in clean.grads:
        assert np.allclose(host(noisy.grads[k]), host(clean.grads[k]), rtol=tol(bk), atol=tol(bk))
    plain, _ = clean.loss_and_grads(x)
    assert abs(float(plain) - float(loss)) > 1e-3 * float(loss)  # the corruption mattered
    # reconstruct() does not corrupt
    assert np.allclose(host(noisy.reconstruct(x)), host(clean.reconstruct(x)), rtol=tol(bk), atol=tol(bk))


def test_gaussian_noise_statistics_and_reproducibility(bk):
    x = backend.asarray(np.zeros((2000, 10)))
    xt = host(corrupt(x, "gaussian", 0.3, backend.RNG(3)))
    assert abs(xt.std() - 0.3) < 0.01 and abs(xt.mean()) < 0.01
    ref = 0.3 * np.random.default_rng(3).normal(size=(2000, 10))  # the same numbers everywhere
    assert np.allclose(xt, ref, rtol=tol(bk), atol=tol(bk))


def test_masking_noise_zeroes_a_fraction(bk, hrng):
    X = hrng.uniform(0.5, 1.0, size=(2000, 10))
    xt = host(corrupt(backend.asarray(X), "masking", 0.3, backend.RNG(4)))
    zero = xt == 0
    assert abs(zero.mean() - 0.3) < 0.02
    assert np.allclose(xt[~zero], X[~zero], rtol=tol(bk), atol=0)
    assert np.array_equal(zero, np.random.default_rng(4).uniform(size=(2000, 10)) < 0.3)


@pytest.mark.parametrize("image_shape,sigma", [((7, 9), 1.0), ((7, 9), 1.3), ((3, 4), 2.0)])
def test_blur_matches_scipy(bk, hrng, image_shape, sigma):
    N = 3
    X = hrng.uniform(size=(N, int(np.prod(image_shape))))
    out = host(corrupt(backend.asarray(X), "blur", sigma, image_shape=image_shape))
    imgs = X.reshape(N, *image_shape)
    s = (0, sigma, sigma)  # blur each image, not across the batch
    ref = (scipy.ndimage.gaussian_filter(imgs, s, mode="constant")
           / scipy.ndimage.gaussian_filter(np.ones_like(imgs), s, mode="constant"))
    assert np.allclose(out, ref.reshape(N, -1), rtol=tol(bk), atol=tol(bk))
    assert out.min() >= X.min() - tol(bk) and out.max() <= X.max() + tol(bk)
    assert not np.allclose(out, X, atol=1e-2)


def test_blur_channels_and_constants(bk, hrng):
    X = hrng.uniform(size=(2, 2 * 5 * 6))
    out = host(corrupt(backend.asarray(X), "blur", 1.0, image_shape=(2, 5, 6)))
    imgs = X.reshape(2, 2, 5, 6)
    ref = (scipy.ndimage.gaussian_filter(imgs, (0, 0, 1.0, 1.0), mode="constant")
           / scipy.ndimage.gaussian_filter(np.ones_like(imgs), (0, 0, 1.0, 1.0), mode="constant"))
    assert np.allclose(out, ref.reshape(2, -1), rtol=tol(bk), atol=tol(bk))
    const = host(corrupt(backend.asarray(np.full((1, 30), 0.7)), "blur", 1.5, image_shape=(5, 6)))
    assert np.allclose(const, 0.7, rtol=tol(bk), atol=tol(bk))


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("make", [
    lambda: TiedAutoencoder(6, 2),
    lambda: Autoencoder(6, hidden=(4,), z_dim=2),
])
def test_bad_input_is_refused(bk, hrng, make):
    m = make()
    with pytest.raises(ValueError, match="5 columns"):
        m.loss_and_grads(_data(hrng, 4, 5))
    with pytest.raises(ValueError, match="5 columns"):
        m.encode(_data(hrng, 4, 5))
    with pytest.raises(ValueError, match=r"shape \(N, D\)"):
        m.loss_and_grads(backend.asarray(np.zeros(6)))
    with pytest.raises(ValueError, match=r"shape \(N, K\)"):
        m.decode(backend.asarray(np.zeros(2)))
    with pytest.raises(ValueError, match="3 columns"):
        m.decode(_data(hrng, 4, 3))
    X = hrng.normal(size=(4, 6))
    X[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        m.loss_and_grads(backend.asarray(X))
    with pytest.raises(ValueError, match="x contains 1 NaN"):
        m.loss_and_grads(backend.asarray(X), target=_data(hrng, 4, 6))
    with pytest.raises(ValueError, match="same shape"):
        m.loss_and_grads(_data(hrng, 4, 6), target=_data(hrng, 3, 6))


@pytest.mark.parametrize("make", [
    lambda: TiedAutoencoder(6, 2),
    lambda: Autoencoder(6, hidden=(4,), z_dim=2),
])
def test_lists_and_numpy_arrays_are_data_as_everywhere(bk, hrng, make):
    """Issue 16: the VAE's loss_and_grads refused a list that the Trainer, PCA and GMM
    took; every entry point now converts (checks.as_data), so they agree."""
    x = hrng.normal(size=(4, 6))
    m = make()
    ref = float(m.loss_and_grads(backend.asarray(x))[0])
    for data in (x.tolist(), x, x.astype(np.float32)):  # float32 input: x rounded to float32 first
        rel = tol(bk, 1e-6 if getattr(data, "dtype", None) == np.float32 else 1e-10, 1e-4)
        assert float(m.loss_and_grads(data)[0]) == pytest.approx(ref, rel=rel)
        assert float(m.loss(data, target=data)[0]) == pytest.approx(ref, rel=rel)
        assert m.encode(data).shape == (4, 2) and m.reconstruct(data).shape == (4, 6)
    assert m.decode([[0.0, 1.0]]).shape == (1, 6)
    with pytest.raises(ValueError, match=r"^x must hold real numbers \(float\), got complex128; pass x\.real"):
        m.loss_and_grads(x.astype(np.complex128))
    with pytest.raises(ValueError, match=r"^target must hold real numbers"):
        m.loss_and_grads(x, target=x.astype(np.complex128))
    big = 1e200 if bk.dtype_name == "float64" else 1e30  # was: a loss of inf, "training has diverged"
    with pytest.raises(ValueError, match=r"^x holds values as large as .*whose squares overflow float\d\d"):
        m.check_data(x * big)


def test_bernoulli_needs_unit_interval(bk, hrng):
    m = TiedAutoencoder(6, 2, loss="bernoulli")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        m.loss_and_grads(_data(hrng, 4, 6) * 3.0)


@pytest.mark.parametrize("kwargs,match", [
    (dict(loss="l1"), "unknown loss"),
    (dict(corruption="salt"), "unknown corruption"),
    (dict(corruption="blur"), "image_shape"),
    (dict(corruption="blur", image_shape=(2, 2)), "4 pixels but the data has 6 columns"),
    (dict(corruption="masking", noise_level=1.0), r"\[0, 1\)"),
    (dict(corruption="gaussian", noise_level=-0.1), ">= 0"),
    (dict(corruption="gaussian", noise_level=float("inf")), "gaussian noise level must be a finite number, got inf"),
    (dict(corruption="gaussian", noise_level=float("nan")), "finite number, got nan"),
    (dict(corruption="blur", noise_level=float("inf")), "finite number, got inf"),
    (dict(corruption="blur", image_shape=6), r"image_shape must be \(H, W\) or \(C, H, W\).*got 6"),
    (dict(corruption="blur", image_shape=(2, 3.0)), r"image_shape must be \(H, W\)"),
    (dict(corruption="blur", image_shape=(-2, -3)), r"positive integers, got \(-2, -3\)"),
    (dict(image_shape=(2, 2)), "4 pixels but the data has 6 columns"),  # checked without blur too
    (dict(noise_level=0.2), "corruption=None"),
    (dict(activation="swish"), "unknown activation"),
])
def test_bad_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TiedAutoencoder(6, 2, **kwargs)


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="z_dim"):
        TiedAutoencoder(6, 0)
    with pytest.raises(ValueError, match="x_dim"):
        Autoencoder(6.0, (4,), 2)
    with pytest.raises(ValueError, match="hidden"):
        Autoencoder(6, (4, 0), 2)
    with pytest.raises(ValueError, match=r"hidden must be a sequence of layer sizes such as \(256,\).*got 16"):
        Autoencoder(6, hidden=16)
    with pytest.raises(ValueError, match=r"image_shape must be \(H, W\).*got 64"):
        Autoencoder(64, corruption="blur", image_shape=64)
    with pytest.raises(ValueError, match="finite"):
        corrupt(backend.asarray(np.zeros((2, 3))), "gaussian", float("inf"), backend.RNG(0))
    with pytest.raises(ValueError, match="rng"):
        corrupt(backend.asarray(np.zeros((2, 3))), "gaussian", 0.1)


# ---------------------------------------------------------------- with the rest of the package


def test_forward_only_loss_is_clean_and_leaves_rng_alone(bk, hrng):
    x = _data(hrng, 5, 6)
    noisy = Autoencoder(6, (4,), 2, corruption="gaussian", seed=3)
    clean = Autoencoder(6, (4,), 2, seed=3)
    state = noisy.rng.get_state()
    value, stats = noisy.loss(x)
    assert noisy.rng.get_state() == state  # no noise drawn
    expect, _ = clean.loss_and_grads(x)
    assert abs(float(value) - float(expect)) <= tol(bk) * float(expect)
    assert float(stats["rec"]) == float(value)


def test_trains_with_the_shared_loop_and_checkpoints(tmp_path, hrng):
    training = pytest.importorskip("scratchvae.training")
    checkpoint = pytest.importorskip("scratchvae.checkpoint")
    X = hrng.uniform(size=(64, 12))
    with backend.using("numpy", dtype="float64"):
        m = Autoencoder(12, (16,), 3, loss="bernoulli", corruption="masking", seed=0)
        trainer = training.Trainer(m, Adam(lr=1e-2), batch_size=16, progress=False)
        hist = trainer.fit(X, X[:16], epochs=4, checkpoint_path=tmp_path / "ae.npz")
        assert hist["train_rec"][-1] < hist["train_rec"][0]
        assert hist["val_rec"][-1] < hist["val_rec"][0]
        twin = checkpoint.load_model(tmp_path / "ae.npz", expect=Autoencoder)
        assert twin.config == m.config
        for k, p in m.params.items():
            assert np.array_equal(host(p), host(twin.params[k]))
        x = backend.asarray(X[:4])
        assert float(twin.loss_and_grads(x)[0]) == float(m.loss_and_grads(x)[0])  # same noise next
