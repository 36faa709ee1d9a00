"""The VAE's other objectives: the slides' Monte-Carlo ELBO ("elbo_mc") and the
importance-weighted bound of Burda et al. ("iwae"), their gradients, and what they refuse."""

import math

import numpy as np
import pytest

from conftest import host, tol
from scratchvae import backend, gradcheck
from scratchvae.models import objectives
from scratchvae.models.vae import VAE
from scratchvae.optim import Adam

DECODERS = [
    pytest.param(("bernoulli", "learned"), id="bernoulli"),
    pytest.param(("gaussian", "learned"), id="gaussian-learned-var"),
    pytest.param(("gaussian", "isotropic"), id="gaussian-isotropic-var"),
    pytest.param(("gaussian", -1.0), id="gaussian-fixed-var"),
]


def _check_gradient(bk64, m, x, eps, **kw):
    """Every parameter against 4th-order central differences (h = 1e-3), eps held fixed.
    The loss is a scalar; its upstream gradient is a random number g, not 1: the
    analytic gradient of g * loss is g * grads."""
    L = eps.shape[0]
    g = float(np.random.default_rng(7).uniform(0.5, 2.0))
    m.loss_and_grads(x, n_samples=L, eps=eps, **kw)
    analytic = {k: g * bk64.xp.asarray(v, copy=True) for k, v in m.grads.items()}
    report = gradcheck.check_function(lambda **_: g * m.loss_and_grads(x, n_samples=L, eps=eps, **kw)[0],
                                      m.params, analytic, order=4, h=1e-3)
    assert report.max_error < 1e-7, str(report)
    assert len(report.checks) == len(m.params)


@pytest.mark.parametrize("objective", ["elbo_mc", "iwae"])
@pytest.mark.parametrize("decoder", DECODERS)
def test_gradient_matches_central_differences(bk64, objective, decoder):
    """Every parameter of encoder and decoder, L = 3 samples, smooth activations (tanh)."""
    likelihood, logvar = decoder
    m = VAE(6, hidden=(4,), z_dim=2, likelihood=likelihood, decoder_logvar=logvar, activation="tanh", seed=1)
    rng = backend.RNG(3)
    _check_gradient(bk64, m, rng.uniform((4, 6)), rng.normal((3, 4, 2)), objective=objective)


@pytest.mark.parametrize("objective", ["elbo_mc", "iwae"])
def test_gradient_with_one_sample_and_with_a_kl_weight(bk64, objective):
    """L = 1 (the IWAE's weights are all 1), and beta != 1 inside each log-weight."""
    m = VAE(5, hidden=(4,), z_dim=3, activation="softplus", seed=2)
    rng = backend.RNG(4)
    x = rng.uniform((3, 5))
    _check_gradient(bk64, m, x, rng.normal((1, 3, 3)), objective=objective)
    _check_gradient(bk64, m, x, rng.normal((2, 3, 3)), objective=objective, beta=0.3)


@pytest.mark.parametrize("objective", ["elbo_mc", "iwae"])
def test_linear_vae_gradient(bk64, objective):
    """No hidden layers, the isotropic Gaussian decoder of lesson 6."""
    m = VAE(5, hidden=(), z_dim=2, likelihood="gaussian", decoder_logvar="isotropic", seed=0)
    rng = backend.RNG(5)
    _check_gradient(bk64, m, rng.normal((6, 5)), rng.normal((4, 6, 2)), objective=objective)


def test_sample_weights_are_the_gradient_of_the_bound(bk64):
    """L7 (6): d(-loss)/d log p(x | z_ln) = a_ln / N, with a = softmax over the samples
    (IWAE) or 1/L (Monte-Carlo ELBO); the weights of each example sum to 1."""
    xp = bk64.xp
    rng = backend.RNG(6)
    L, N, K = 4, 3, 2
    log_px_z, z = rng.normal((L, N)) * 3.0, rng.normal((L, N, K))
    mu, logvar = rng.normal((N, K)), rng.normal((N, K)) * 0.3
    for objective in ("elbo_mc", "iwae"):
        _, _, a, _, _ = objectives.weighted(objective, log_px_z, z, mu, logvar)
        num = gradcheck.numerical_grad(lambda t: objectives.weighted(objective, t, z, mu, logvar)[0], log_px_z)
        # atol: a weight of 1e-6 carries the 1e-12 rounding error of a 0-d loss of size 10
        assert gradcheck.rel_error(host(-N * num), host(a), atol=1e-10) < 1e-8
        np.testing.assert_allclose(host(xp.sum(a, axis=0)), np.ones(N), rtol=1e-12)
    a_iwae = host(objectives.weighted("iwae", log_px_z, z, mu, logvar)[2])
    log_w = host(log_px_z) + host(objectives.std_normal_log_prob(z)) - host(
        objectives.gaussian_log_prob(z, mu, logvar))
    want = np.exp(log_w - log_w.max(0)) / np.exp(log_w - log_w.max(0)).sum(0)  # softmax over l
    np.testing.assert_allclose(a_iwae, want, rtol=1e-12)


def test_iwae_with_one_sample_is_the_monte_carlo_elbo(bk):
    """K = 1: log (1/1) w_1 = log w_1, so the two objectives are one number with one
    gradient, for the same noise."""
    m = VAE(6, hidden=(5,), z_dim=2, seed=0)
    rng = backend.RNG(1)
    x, eps = rng.uniform((7, 6)), rng.normal((1, 7, 2))
    l_mc, s_mc = m.loss_and_grads(x, eps=eps, objective="elbo_mc")
    g_mc = {k: host(v) for k, v in m.grads.items()}
    l_iw, s_iw = m.loss_and_grads(x, eps=eps, objective="iwae")
    assert float(l_iw) == pytest.approx(float(l_mc), rel=tol(bk))
    assert float(s_iw["neg_iwae"]) == pytest.approx(float(s_mc["neg_elbo"]), rel=tol(bk))
    for k, v in m.grads.items():
        np.testing.assert_allclose(host(v), g_mc[k], rtol=tol(bk, 1e-9, 1e-3), atol=tol(bk, 1e-12, 1e-6), err_msg=k)


def test_the_monte_carlo_elbo_estimates_the_closed_form_one():
    """Same noise, so the reconstruction terms are equal; the Monte-Carlo KL (the mean
    of log q - log p(z)) agrees with L5 (4) within its standard error, and the mean of
    its gradients with the closed-form gradient: both objectives are unbiased."""
    with backend.using("numpy", dtype="float64"):
        m = VAE(8, hidden=(6,), z_dim=3, activation="tanh", seed=0)
        x = (np.random.default_rng(0).uniform(size=(5, 8)) < 0.5).astype(float)
        eps = backend.RNG(2).normal((20000, 5, 3))
        l_cf, s_cf = m.loss_and_grads(x, n_samples=20000, eps=eps)
        g_cf = {k: v.copy() for k, v in m.grads.items()}
        l_mc, s_mc = m.loss_and_grads(x, n_samples=20000, eps=eps, objective="elbo_mc")
        assert float(s_mc["rec"]) == pytest.approx(float(s_cf["rec"]), rel=1e-12)
        mu, logvar = m.encode(x)
        z = mu + np.exp(logvar / 2) * eps
        log_ratio = (objectives.gaussian_log_prob(z, mu, logvar) - objectives.std_normal_log_prob(z)).mean(1)
        se = log_ratio.std() / math.sqrt(len(log_ratio))
        assert abs(float(s_mc["kl"]) - float(s_cf["kl"])) < 4 * se
        for k, g in m.grads.items():
            np.testing.assert_allclose(g, g_cf[k], atol=0.02 * np.abs(g_cf[k]).max() + 1e-12, err_msg=k)


def test_the_bound_is_at_least_the_elbo_with_the_same_samples(bk):
    """log-mean-exp >= mean of logs (Jensen), sample by sample: -IWAE <= -ELBO_MC."""
    m = VAE(6, hidden=(5,), z_dim=2, seed=0)
    rng = backend.RNG(2)
    x, eps = rng.uniform((9, 6)), rng.normal((5, 9, 2))
    _, stats = m.loss(x, n_samples=5, objective="iwae")
    assert float(stats["neg_iwae"]) <= float(stats["neg_elbo"]) + tol(bk, 1e-12, 1e-5)
    loss, stats = m.loss_and_grads(x, n_samples=5, eps=eps, objective="iwae")
    assert float(loss) == float(stats["neg_iwae"]) and float(loss) < float(stats["neg_elbo"])
    assert float(stats["neg_elbo"]) == pytest.approx(float(stats["rec"]) + float(stats["kl"]), rel=tol(bk))


def test_bounded_memory_gives_the_same_loss_and_gradients(bk):
    """max_floats cuts the batch into groups of examples; the result is the same up to
    rounding, and the decoder never sees more than max_floats outputs at once."""
    m = VAE(6, hidden=(5,), z_dim=2, likelihood="gaussian", seed=0)
    rng = backend.RNG(3)
    x, eps = rng.uniform((10, 6)), rng.normal((4, 10, 2))
    for objective in ("elbo", "elbo_mc", "iwae"):
        whole, whole_stats = m.loss_and_grads(x, n_samples=4, eps=eps, objective=objective)
        want = {k: host(v) for k, v in m.grads.items()}
        rows = []
        real = m.dec_out.forward
        m.dec_out.forward = lambda h: rows.append(h.shape[0]) or real(h)
        try:
            parts, part_stats = m.loss_and_grads(x, n_samples=4, eps=eps, objective=objective, max_floats=3 * 4 * 6)
        finally:
            del m.dec_out.forward
        assert rows == [12, 12, 12, 4]  # 3 examples x 4 samples, three times, then 1 x 4
        assert float(parts) == pytest.approx(float(whole), rel=tol(bk, 1e-12, 1e-5))
        assert part_stats.keys() == whole_stats.keys()
        for k, v in m.grads.items():
            np.testing.assert_allclose(host(v), want[k], rtol=tol(bk, 1e-10, 1e-4), atol=tol(bk, 1e-12, 1e-6),
                                       err_msg=f"{objective} {k}")
        loss_parts, _ = m.loss(x, n_samples=4, objective=objective, max_floats=3 * 4 * 6)
        assert math.isfinite(float(loss_parts))


def _digits_model(epochs=40):
    from scratchvae import datasets
    from scratchvae.training import Trainer

    ds = datasets.load("digits")
    m = VAE(ds.n_features, hidden=(64,), z_dim=5, seed=0)
    Trainer(m, Adam(2e-3), batch_size=64, progress=False).fit(ds.x_train, epochs=epochs)
    return ds, m


def test_the_bound_rises_with_k_on_a_trained_model():
    """L_1 <= L_5 <= L_50 on the test digits (Burda et al.'s ordering), each step by three
    times more than its standard error (paired per example, each L_k the mean of 10
    estimates; seeded, so the same every run). L_1 is the ELBO."""
    with backend.using("numpy", dtype="float64"):
        ds, m = _digits_model()
        bounds = {}
        for k in (1, 5, 50):
            m.rng = backend.RNG(k)
            bounds[k] = np.mean([m.log_likelihood(ds.x_test, k=k, reduce=False) for _ in range(10)], axis=0)
        for a, b in ((1, 5), (5, 50)):
            d = bounds[b] - bounds[a]
            assert d.mean() > 3 * d.std() / math.sqrt(len(d)), (a, b, d.mean())
        m.rng = backend.RNG(3)
        elbo = m.elbo(ds.x_test, n_samples=50)
        assert abs(bounds[1].mean() - elbo) < 4 * bounds[1].std() / math.sqrt(len(ds.x_test))
        # the objective's own value: -loss(objective="iwae") estimates the same L_k
        m.rng = backend.RNG(4)
        iwae_5 = -float(m.loss(backend.asarray(ds.x_test), n_samples=5, objective="iwae")[0])
        assert abs(iwae_5 - bounds[5].mean()) < 0.1


def test_unknown_objectives_are_refused(bk):
    m = VAE(6, hidden=(5,), z_dim=2, seed=0)
    x = backend.RNG(0).uniform((3, 6))
    for call in (m.loss_and_grads, m.loss):
        with pytest.raises(ValueError, match=r"unknown objective 'iwa': choose 'elbo'.*'elbo_mc'.*'iwae'"):
            call(x, objective="iwa")
    with pytest.raises(ValueError, match="max_floats must be a positive integer, got 0"):
        m.loss_and_grads(x, max_floats=0)


@pytest.mark.slow
def test_iwae_training_beats_elbo_training_on_digits():
    """Burda et al.'s finding on the digits: trained with K = 5, the IWAE's test
    log-likelihood (k = 1000) is no worse than the ELBO-trained VAE's, its ELBO is
    looser, and it keeps more active units. Lesson 7 reports the numbers."""
    from scratchvae import datasets
    from scratchvae.models import active_units
    from scratchvae.training import Trainer

    ds = datasets.load("digits")
    result = {}
    for objective in ("elbo", "iwae"):
        m = VAE(ds.n_features, hidden=(256,), z_dim=10, seed=0)
        Trainer(m, Adam(1e-3), batch_size=64, n_samples=5, objective=objective, progress=False).fit(
            ds.x_train, epochs=300)
        m.rng = backend.RNG(1)
        result[objective] = (m.log_likelihood(ds.x_test, k=1000), m.elbo(ds.x_test, n_samples=100),
                             active_units(m, ds.x_test)[0])
    (ll_e, elbo_e, au_e), (ll_i, elbo_i, au_i) = result["elbo"], result["iwae"]
    print(result)
    assert ll_i >= ll_e - 0.02 and elbo_i < elbo_e and au_i >= au_e
