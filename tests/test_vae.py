"""The VAE: gradients, estimators, likelihood bounds, and what it refuses."""

import math

import numpy as np
import pytest

from conftest import host, tol
from scratchvae import backend, gradcheck
from scratchvae.densities import bernoulli_log_prob
from scratchvae.models.vae import VAE
from scratchvae.optim import Adam

DECODERS = [
    pytest.param(("bernoulli", "learned"), id="bernoulli"),
    pytest.param(("gaussian", "learned"), id="gaussian-learned-var"),
    pytest.param(("gaussian", "isotropic"), id="gaussian-isotropic-var"),
    pytest.param(("gaussian", -1.0), id="gaussian-fixed-var"),
]


def _binary(rng, shape):
    return (rng.uniform(size=shape) < 0.5).astype(float)


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("L", [1, 3])
def test_full_gradient_matches_central_differences(bk64, decoder, L):
    """Every parameter of encoder and decoder, eps held fixed. Smooth activations
    (tanh) so the 4th-order stencil (h = 1e-3) applies; ReLU is checked layer by layer."""
    likelihood, logvar = decoder
    m = VAE(6, hidden=(5, 4), z_dim=2, likelihood=likelihood, decoder_logvar=logvar,
            activation="tanh", seed=1)
    rng = backend.RNG(3)
    x = rng.uniform((4, 6))
    eps = rng.normal((L, 4, 2))
    m.loss_and_grads(x, n_samples=L, eps=eps)
    analytic = {k: bk64.xp.asarray(v, copy=True) for k, v in m.grads.items()}
    report = gradcheck.check_function(
        lambda **_: m.loss_and_grads(x, n_samples=L, eps=eps)[0], m.params, analytic, order=4, h=1e-3
    )
    assert report.max_error < 1e-7, str(report)
    assert len(report.checks) == len(m.params) == 14 + (likelihood == "gaussian" and isinstance(logvar, str))


def test_full_gradient_with_relu_the_default_activation(bk64):
    """The training path itself: ReLU hidden layers (the fused ReLU backward on NumPy with
    numba), Bernoulli decoder, every parameter. The 4th-order stencil reaches 2h = 2e-3
    from each weight, and no pre-activation lies within 0.02 of ReLU's kink here
    (asserted), so no difference crosses it. A ReLU network has gradient entries that are
    exactly 0 (a unit off for every example that would carry them); against central
    differences' 1e-13 of rounding the elementwise relative error reads 1.7e-5 there, so
    those entries are checked in absolute terms and the rest by relative error."""
    m = VAE(6, hidden=(5, 4), z_dim=2, likelihood="bernoulli", activation="relu", seed=13)
    rng = backend.RNG(4)
    x, eps = rng.uniform((4, 6)), rng.normal((1, 4, 2))
    m.loss_and_grads(x, eps=eps)
    for body in (m.enc_body, m.dec_body):
        for name, layer in body.layers.items():
            if name.startswith("fc"):
                pre = host(layer.x @ layer.params["W"] + layer.params["b"])
                assert np.min(np.abs(pre)) > 0.02, name
    analytic = {k: host(v) for k, v in m.grads.items()}
    zeros = 0
    for name, p in m.params.items():
        num = host(gradcheck.numerical_grad(lambda _: m.loss_and_grads(x, eps=eps)[0], p, h=1e-3, order=4))
        exact_zero = analytic[name] == 0.0
        zeros += int(exact_zero.sum())
        assert gradcheck.rel_error(analytic[name][~exact_zero], num[~exact_zero]) < 1e-7, name
        assert np.all(np.abs(num[exact_zero]) < 1e-9), name
    assert len(analytic) == 14 and zeros < sum(a.size for a in analytic.values()) // 4


def test_gradient_with_kl_weight(bk64):
    """With beta != 1 the KL gradient is scaled on its own line: check it too."""
    m = VAE(5, hidden=(4,), z_dim=3, activation="softplus", seed=2)
    rng = backend.RNG(4)
    x, eps = rng.uniform((3, 5)), rng.normal((2, 3, 3))
    m.loss_and_grads(x, n_samples=2, eps=eps, beta=0.3)
    analytic = {k: bk64.xp.asarray(v, copy=True) for k, v in m.grads.items()}
    report = gradcheck.check_function(
        lambda **_: m.loss_and_grads(x, n_samples=2, eps=eps, beta=0.3)[0], m.params, analytic,
        order=4, h=1e-3)
    assert report.max_error < 1e-7, str(report)


def test_linear_vae_gradient(bk64):
    """No hidden layers: linear encoder and decoder (the probabilistic-PCA case)."""
    m = VAE(5, hidden=(), z_dim=2, likelihood="gaussian", decoder_logvar="isotropic", seed=0)
    rng = backend.RNG(5)
    x, eps = rng.normal((6, 5)), rng.normal((1, 6, 2))
    m.loss_and_grads(x, eps=eps)
    analytic = {k: bk64.xp.asarray(v, copy=True) for k, v in m.grads.items()}
    assert sorted(analytic) == ["dec.logvar", "dec.out.W", "dec.out.b", "enc.logvar.W", "enc.logvar.b",
                                "enc.mu.W", "enc.mu.b"]
    report = gradcheck.check_function(lambda **_: m.loss_and_grads(x, eps=eps)[0], m.params, analytic,
                                      order=4, h=1e-3)
    assert report.max_error < 1e-7, str(report)


def test_loss_parts_add_up(bk):
    m = VAE(6, hidden=(5,), z_dim=2, seed=0)
    x = backend.RNG(0).uniform((7, 6))
    loss, stats = m.loss_and_grads(x, beta=0.5)
    assert float(loss) == pytest.approx(float(stats["rec"]) + 0.5 * float(stats["kl"]), rel=tol(bk))
    assert float(stats["neg_elbo"]) == pytest.approx(float(stats["rec"]) + float(stats["kl"]), rel=tol(bk))
    assert float(stats["kl"]) > 0
    assert all(v.dtype == bk.dtype for v in m.params.values())
    assert all(v.dtype == bk.dtype for v in m.grads.values())


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_gradients_are_written_whatever_grads_held(bk, hrng, likelihood):
    """loss_and_grads writes every gradient (the model contract): stale values vanish."""
    x = backend.asarray(hrng.uniform(size=(5, 6)))
    eps = backend.asarray(hrng.normal(size=(2, 5, 3)))
    a = VAE(6, hidden=(4,), z_dim=3, likelihood=likelihood, seed=0)
    b = VAE(6, hidden=(4,), z_dim=3, likelihood=likelihood, seed=0)
    for g in a.grads.values():
        g[...] = 11.0
    la, _ = a.loss_and_grads(x, n_samples=2, eps=eps)
    lb, _ = b.loss_and_grads(x, n_samples=2, eps=eps)
    assert float(la) == float(lb)
    assert a.grads.keys() == b.grads.keys() == a.params.keys()
    for k in a.grads:
        np.testing.assert_array_equal(host(a.grads[k]), host(b.grads[k]), err_msg=k)


def test_shapes_of_the_public_methods(bk):
    m = VAE(6, hidden=(5,), z_dim=3, seed=0)
    x = backend.RNG(0).uniform((4, 6))
    mu, logvar = m.encode(x)
    assert mu.shape == logvar.shape == (4, 3)
    assert m.decode(mu).shape == (4, 6)
    r = host(m.reconstruct(x))
    assert r.shape == (4, 6) and (r >= 0).all() and (r <= 1).all()
    assert m.sample(5).shape == (5, 6)
    s = host(m.sample(5, mean=False))
    assert set(np.unique(s)) <= {0.0, 1.0}


def _per_example(m, x, k, rng_seed):
    m.rng = backend.RNG(rng_seed)
    return host(m.log_likelihood(x, k=k, reduce=False))


def test_iwae_bound_rises_with_k_and_is_above_the_elbo():
    """Mean IWAE_k over examples is non-decreasing in k = 1, 10, 100, within Monte-Carlo
    error, and k = 1 is the ELBO."""
    with backend.using("numpy", dtype="float64"):
        m = VAE(10, hidden=(16,), z_dim=2, activation="tanh", seed=0)
        x = _binary(np.random.default_rng(0), (300, 10))
        est = {k: _per_example(m, x, k, k) for k in (1, 10, 100)}
        elbo = np.array([m.elbo(x, n_samples=200)])  # a precise ELBO
        assert abs(est[1].mean() - elbo[0]) < 4 * est[1].std() / math.sqrt(len(x))
        for a, b in ((1, 10), (10, 100)):
            diff = est[b] - est[a]  # paired per example
            assert diff.mean() > -3 * diff.std() / math.sqrt(len(x)), (a, b, diff.mean())
        assert est[100].mean() > est[1].mean()


def test_iwae_matches_a_numerical_integral():
    """With a 1-D latent, p(x) = int p(x | z) N(z; 0, 1) dz on a fine grid."""
    with backend.using("numpy", dtype="float64"):
        m = VAE(5, hidden=(8,), z_dim=1, activation="tanh", seed=0)
        x = _binary(np.random.default_rng(0), (6, 5))
        zg = np.linspace(-12.0, 12.0, 24001)
        logits = m.decode(zg[:, None])  # (G, D)
        a = np.stack([bernoulli_log_prob(logits, np.broadcast_to(xi, logits.shape)) for xi in x])
        a = a - 0.5 * (np.log(2 * np.pi) + zg ** 2)  # + log N(z; 0, 1)
        top = a.max(axis=1, keepdims=True)
        exact = top[:, 0] + np.log(np.trapezoid(np.exp(a - top), zg, axis=1))
        m.rng = backend.RNG(7)
        iwae = m.log_likelihood(x, k=5000, reduce=False, max_floats=5000)  # forces chunking
        assert np.abs(iwae - exact).max() < 0.06
        assert abs(iwae.mean() - exact.mean()) < 0.02


def test_log_likelihood_handles_k_5000_in_bounded_memory():
    """Chunks of samples: at most max_floats decoder outputs at a time."""
    with backend.using("numpy", dtype="float32"):
        m = VAE(64, hidden=(32,), z_dim=4, seed=0)
        x = _binary(np.random.default_rng(1), (20, 64))
        calls = []
        real = m.log_weights
        m.log_weights = lambda xb, k, **kw: calls.append(k * xb.shape[0] * 64) or real(xb, k, **kw)
        value = m.log_likelihood(x, k=5000, batch_size=10, max_floats=2 ** 16)
        assert math.isfinite(value)
        assert max(calls) <= 2 ** 16 and sum(calls) == 5000 * 20 * 64


def test_score_function_and_reparameterized_gradients_agree_in_mean():
    """Both estimate the same gradient; the score function's variance is far larger."""
    with backend.using("numpy", dtype="float64"):
        m = VAE(8, hidden=(6,), z_dim=2, activation="tanh", seed=0)
        x = _binary(np.random.default_rng(0), (4, 8))
        R = 3000
        sf, rp = [], []
        for _ in range(R):
            g = m.score_function_grads(x, 1)
            sf.append(np.concatenate([g[k].ravel() for k in sorted(g)]))
            m.loss_and_grads(x, 1)
            rp.append(np.concatenate([m.grads[k].ravel() for k in sorted(g)]))
        sf, rp = np.array(sf), np.array(rp)
        se = np.sqrt(sf.var(0) / R + rp.var(0) / R)
        live = se > 0  # weights fed by x_d = 0 get exactly zero gradient in both
        z = (sf.mean(0) - rp.mean(0))[live] / se[live]
        assert np.abs(z).max() < 5.0  # 5 standard errors, over ~80 entries
        ratio = sf.var(0)[live].sum() / rp.var(0)[live].sum()
        print(f"score-function / reparameterized gradient variance (total, L=1): {ratio:.0f}")
        assert ratio > 10


def test_score_function_grads_are_new_arrays_and_leave_model_grads_alone(bk):
    """Each call returns its own arrays (a kept dict does not change), and model.grads,
    decoder included, still holds the gradient of the last loss_and_grads."""
    m = VAE(6, hidden=(5,), z_dim=2, seed=0)
    rng = backend.RNG(1)
    x = backend.asarray(_binary(np.random.default_rng(0), (4, 6)))
    m.loss_and_grads(x)
    before = {k: host(g) for k, g in m.grads.items()}
    live = {id(g) for g in m.grads.values()}
    first = m.score_function_grads(x, 1, eps=rng.normal((1, 4, 2)))
    kept = {k: host(g) for k, g in first.items()}
    second = m.score_function_grads(x, 1, eps=rng.normal((1, 4, 2)))
    assert not live & {id(g) for g in first.values()}  # not model.grads' arrays
    assert any(not np.array_equal(kept[k], host(second[k])) for k in kept)  # new noise, new value
    for k in kept:
        assert np.array_equal(host(first[k]), kept[k]), k  # the second call left it alone
    for k, g in m.grads.items():
        assert np.array_equal(host(g), before[k]), k  # decoder grads are not zeroed either
    m.loss_and_grads(x)
    for k in kept:
        assert np.array_equal(host(first[k]), kept[k]), k


def test_vae_overfits_a_tiny_batch():
    with backend.using("numpy", dtype="float64"):
        m = VAE(8, hidden=(32,), z_dim=2, seed=0)
        x = _binary(np.random.default_rng(0), (4, 8))
        opt = Adam(1e-2)
        recs = []
        for _ in range(800):
            _, stats = m.loss_and_grads(x)
            opt.step(m.params, m.grads)
            recs.append(float(stats["rec"]))
        assert np.mean(recs[-100:]) < 0.1 * recs[0]


def test_bad_input_is_refused_with_a_clear_message(bk):
    m = VAE(6, hidden=(5,), z_dim=2, seed=0)
    rng = backend.RNG(0)
    with pytest.raises(ValueError, match="x has 5 columns but this VAE"):
        m.loss_and_grads(rng.uniform((3, 5)))
    with pytest.raises(ValueError, match=r"shape \(N, D\)"):
        m.loss_and_grads(rng.uniform((6,)))
    with pytest.raises(ValueError, match="empty"):
        m.loss_and_grads(rng.uniform((0, 6)))
    bad = backend.asarray(np.where(np.eye(3, 6) > 0, np.nan, 0.5))
    with pytest.raises(ValueError, match="NaN"):
        m.loss_and_grads(bad)
    with pytest.raises(ValueError, match=r"\[0, 1\].*divide 8-bit images by 255"):
        m.loss_and_grads(backend.asarray(np.full((3, 6), 255.0)))
    with pytest.raises(ValueError, match="eps must have shape"):
        m.loss_and_grads(rng.uniform((3, 6)), n_samples=2, eps=rng.normal((1, 3, 2)))
    # only L differs: the message names the n_samples that fits
    with pytest.raises(ValueError, match=r"= \(1, 3, 2\), got \(4, 3, 2\); pass n_samples=4 to match eps"):
        m.loss_and_grads(rng.uniform((3, 6)), eps=rng.normal((4, 3, 2)))
    with pytest.raises(ValueError, match=r"got \(1, 5, 2\)$"):  # N differs: n_samples is not the fix
        m.loss_and_grads(rng.uniform((3, 6)), eps=rng.normal((1, 5, 2)))


def test_constructor_rejects_unknown_options():
    with pytest.raises(ValueError, match="unknown likelihood"):
        VAE(4, likelihood="poisson")
    with pytest.raises(ValueError, match="decoder_logvar"):
        VAE(4, likelihood="gaussian", decoder_logvar="big")
    with pytest.raises(ValueError, match="unknown activation"):
        VAE(4, activation="swish")


@pytest.mark.parametrize("kwargs, message", [
    (dict(x_dim=0), "x_dim must be a positive integer, got 0"),
    (dict(z_dim=0), "z_dim must be a positive integer, got 0"),
    (dict(z_dim=2.5), "z_dim must be a positive integer, got 2.5"),
    (dict(hidden=(8, 0)), "each hidden size must be a positive integer, got 0"),
    (dict(hidden=16), r"hidden must be a sequence of layer sizes such as \(256,\).*got 16"),
    (dict(likelihood="gaussian", decoder_logvar=float("nan")), "a finite number, got nan"),
])
def test_constructor_rejects_bad_sizes(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VAE(**{"x_dim": 4, **kwargs})
    VAE(np.int64(4), hidden=(np.int64(3),), z_dim=np.int64(2))  # NumPy integers are integers


def test_unknown_activation_fails_without_hidden_layers():
    with pytest.raises(ValueError, match="unknown activation 'rleu'"):
        VAE(6, hidden=(), z_dim=2, activation="rleu")


def test_sample_counts_are_checked(bk):
    m = VAE(6, hidden=(5,), z_dim=2, seed=0)
    x = backend.RNG(0).uniform((3, 6))
    with pytest.raises(ValueError, match="n_samples must be a positive integer, got 0"):
        m.loss_and_grads(x, n_samples=0)
    with pytest.raises(ValueError, match="k must be a positive integer, got 0"):
        m.log_likelihood(x, k=0)
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        m.elbo(x, batch_size=0)
    for n in (0, -1, 2.0):
        with pytest.raises(ValueError, match=f"n must be a positive integer, got {n}"):
            m.sample(n)


def test_gaussian_decoder_allows_values_outside_unit_interval(bk):
    m = VAE(3, hidden=(4,), z_dim=2, likelihood="gaussian", seed=0)
    loss, _ = m.loss_and_grads(backend.asarray(np.array([[3.0, -2.0, 10.0]])))
    assert math.isfinite(float(loss))


def test_gaussian_decoder_refuses_data_far_from_unit_scale_saying_how_to_scale(bk):
    """0-255 pixels: the encoder's log-variance grows with the inputs and exp(logvar)
    overflows (NaN at step 1 in float32). Refused with the fix, which trains."""
    m = VAE(4, hidden=(4,), z_dim=2, likelihood="gaussian", seed=0)
    x255 = np.tile([0.0, 255.0, 128.0, 255.0], (5, 1))
    for call in (m.loss_and_grads, m.loss, m.elbo, m.log_likelihood, m.check_data):
        with pytest.raises(ValueError, match=r"^x has root-mean-square 191 \(values up to 255\), too far from unit "
                                             r"scale for a Gaussian VAE.*: x / 255 for 8-bit images, else standardize"):
            call(backend.asarray(x255))
    assert math.isfinite(float(m.loss_and_grads(backend.asarray(x255 / 255))[0]))


@pytest.mark.parametrize("beta", [float("nan"), -1.0, float("inf"), "1", True])
def test_beta_must_be_finite_and_nonnegative_in_loss_and_grads(bk, beta):
    m = VAE(6, hidden=(5,), z_dim=2, seed=0)
    x = backend.RNG(0).uniform((3, 6))
    for objective in ("elbo", "iwae"):
        with pytest.raises(ValueError, match=r"^beta must be a finite number >= 0 \(the KL weight; 1 is the ELBO\)"):
            m.loss_and_grads(x, beta=beta, objective=objective)
    assert math.isfinite(float(m.loss_and_grads(x, beta=0)[0]))


def test_every_method_takes_lists_and_numpy_arrays_as_the_trainer_does(bk):
    """Data enter through checks.as_data everywhere: a list of rows, a NumPy array (any
    real dtype) and a backend array give the same numbers."""
    rows = (np.random.default_rng(0).uniform(size=(4, 6)) < 0.5).astype(np.float64)
    for x in (rows.tolist(), rows.astype(np.uint8), rows.astype(bool), backend.asarray(rows)):
        m = VAE(6, hidden=(5,), z_dim=2, seed=0)
        eps = m.rng.normal((1, 4, 2))
        ref = VAE(6, hidden=(5,), z_dim=2, seed=0)
        ref.rng.normal((1, 4, 2))
        loss = float(m.loss_and_grads(x, eps=eps)[0])
        assert loss == pytest.approx(float(ref.loss_and_grads(backend.asarray(rows), eps=eps)[0]))
        assert m.encode(x)[0].shape == (4, 2) and m.reconstruct(x).shape == (4, 6)
        assert m.decode([[0.0, 0.0]]).shape == (1, 6)
        assert math.isfinite(float(m.loss(x)[0])) and math.isfinite(m.elbo(x)) and math.isfinite(m.log_likelihood(x, k=2))
        assert m.log_weights(x, k=2).shape == (2, 4) and set(m.score_function_grads(x)) == {
            k for k in m.params if k.startswith("enc.")}
        m.check_data(x)


def test_complex_data_are_refused_not_computed_with(bk):
    """Before: loss_and_grads returned a complex loss from complex NumPy data."""
    m = VAE(6, hidden=(5,), z_dim=2, likelihood="gaussian", seed=0)
    xc = np.ones((3, 6), dtype=np.complex128)
    for call in (m.loss_and_grads, m.loss, m.encode, m.reconstruct, m.elbo, m.check_data):
        with pytest.raises(ValueError, match=r"^x must hold real numbers \(float\), got complex128; pass x\.real"):
            call(xc)
    with pytest.raises(ValueError, match=r"^z must hold real numbers"):
        m.decode(np.ones((1, 2), dtype=np.complex64))


def _digits_vae(epochs):
    from scratchvae import datasets
    from scratchvae.training import Trainer

    ds = datasets.load("digits")
    m = VAE(ds.n_features, hidden=(64,), z_dim=2, seed=0)
    history = Trainer(m, Adam(2e-3), batch_size=64, progress=False).fit(ds.x_train, ds.x_val, epochs=epochs)
    return ds, m, history


def test_training_on_digits_lowers_the_validation_loss_steadily():
    with backend.using("numpy", dtype="float32"):
        _, _, h = _digits_vae(epochs=24)
    val = np.array(h["val_neg_elbo"])
    blocks = val.reshape(6, 4).mean(axis=1)  # mean of every 4 epochs: the Monte-Carlo noise averages out
    assert np.all(np.diff(blocks) < 0), blocks
    assert val[-1] < val[0] - 3.0


@pytest.mark.slow
def test_iwae_matches_quadrature_on_a_trained_two_dimensional_vae():
    """A 2-D latent can be integrated on a grid: log p(x) = log sum_z p(x | z) p(z) dz."""
    with backend.using("numpy", dtype="float64"):
        ds, m, _ = _digits_vae(epochs=30)
        x = ds.x_test[:40].astype(np.float64)
        g = np.linspace(-6.0, 6.0, 241)
        dz = g[1] - g[0]
        z = np.stack(np.meshgrid(g, g), axis=-1).reshape(-1, 2)
        logits = m.decode(z)  # (G, D)
        log_pz = -0.5 * (2 * np.log(2 * np.pi) + (z ** 2).sum(1))
        exact = []
        for xi in x:
            a = bernoulli_log_prob(logits, np.broadcast_to(xi, logits.shape)) + log_pz
            top = a.max()
            exact.append(top + np.log(np.exp(a - top).sum() * dz * dz))
        exact = np.array(exact)
        m.rng = backend.RNG(11)
        iwae = m.log_likelihood(x, k=5000, reduce=False)
        elbo = m.log_likelihood(x, k=1, reduce=False)
        assert np.all(iwae <= exact + 0.05)  # a lower bound, up to Monte-Carlo noise
        assert abs(iwae.mean() - exact.mean()) < 0.05
        assert elbo.mean() < iwae.mean()


def test_fixed_noise_may_be_host_data_too():
    m = VAE(4, hidden=(3,), z_dim=2, seed=0)
    x = np.random.default_rng(0).uniform(size=(5, 4))
    eps = np.random.default_rng(1).normal(size=(1, 5, 2))
    a, _ = m.loss_and_grads(backend.asarray(x), eps=backend.asarray(eps))
    b, _ = m.loss_and_grads(x.tolist(), eps=eps.tolist())
    assert float(a) == float(b)
