"""The conditional VAE: VAE(..., n_classes=C) reads the one-hot label beside x and z."""

import numpy as np
import pytest

from conftest import host
from scratchvae import backend, checkpoint, gradcheck
from scratchvae.models import active_units, kl_per_dimension
from scratchvae.models.labels import one_hot
from scratchvae.models.vae import VAE
from scratchvae.optim import Adam


@pytest.mark.parametrize("objective", ["elbo", "elbo_mc", "iwae"])
@pytest.mark.parametrize("decoder", [("bernoulli", "learned"), ("gaussian", "learned")], ids=["bernoulli", "gaussian"])
def test_gradient_matches_central_differences(bk64, objective, decoder):
    """Every parameter, the label rows of the first layers included, eps held fixed; the
    scalar loss with a random upstream gradient g."""
    likelihood, logvar = decoder
    m = VAE(5, hidden=(4,), z_dim=2, likelihood=likelihood, decoder_logvar=logvar, activation="tanh", seed=1,
            n_classes=3)
    rng = backend.RNG(3)
    x, eps, y = rng.uniform((4, 5)), rng.normal((2, 4, 2)), backend.asarray([2, 0, 1, 2])
    g = 1.37
    m.loss_and_grads(x, n_samples=2, eps=eps, objective=objective, y=y)
    analytic = {k: g * bk64.xp.asarray(v, copy=True) for k, v in m.grads.items()}
    assert m.params["enc.fc1.W"].shape == (5 + 3, 4) and m.params["dec.fc1.W"].shape == (2 + 3, 4)
    report = gradcheck.check_function(
        lambda **_: g * m.loss_and_grads(x, n_samples=2, eps=eps, objective=objective, y=y)[0],
        m.params, analytic, order=4, h=1e-3)
    assert report.max_error < 1e-7, str(report)
    assert len(report.checks) == len(m.params)


def test_linear_conditional_vae_gradient(bk64):
    """No hidden layers: the labels enter the mean and log-variance heads and the decoder's
    output layer directly."""
    m = VAE(4, hidden=(), z_dim=2, likelihood="gaussian", decoder_logvar="isotropic", seed=0, n_classes=2)
    rng = backend.RNG(5)
    x, eps, y = rng.normal((5, 4)), rng.normal((1, 5, 2)), backend.asarray([0, 1, 1, 0, 1])
    m.loss_and_grads(x, eps=eps, y=y)
    analytic = {k: bk64.xp.asarray(v, copy=True) for k, v in m.grads.items()}
    report = gradcheck.check_function(lambda **_: m.loss_and_grads(x, eps=eps, y=y)[0], m.params, analytic,
                                      order=4, h=1e-3)
    assert report.max_error < 1e-7, str(report)


def test_one_hot_rows(bk):
    c = host(one_hot(backend.asarray([2, 0, 1]), 4, bk.dtype))
    np.testing.assert_array_equal(c, np.eye(4)[[2, 0, 1]])


def test_the_label_changes_what_is_decoded_and_encoded(bk):
    m = VAE(6, hidden=(5,), z_dim=2, seed=0, n_classes=3)
    rng = backend.RNG(1)
    x, z = rng.uniform((4, 6)), rng.normal((4, 2))
    mu0, logvar0 = m.encode(x, y=0)
    mu2, _ = m.encode(x, y=backend.asarray([2, 2, 2, 2]))
    assert mu0.shape == logvar0.shape == (4, 2) and not np.allclose(host(mu0), host(mu2))
    assert m.decode(z, y=[0, 1, 2, 0]).shape == (4, 6)
    assert not np.allclose(host(m.decode(z, y=0)), host(m.decode(z, y=1)))
    r = host(m.reconstruct(x, y=np.array([0, 1, 2, 1])))
    assert r.shape == (4, 6) and (r >= 0).all() and (r <= 1).all()
    m.rng = backend.RNG(5)
    a = host(m.sample(3, y=1))
    m.rng = backend.RNG(5)
    b = host(m.sample(3, y=[1, 1, 1]))  # an integer stands for n copies of itself
    np.testing.assert_array_equal(a, b)
    assert set(np.unique(host(m.sample(3, mean=False, y=2)))) <= {0.0, 1.0}
    assert np.isfinite(m.log_likelihood(x, k=20, y=[0, 1, 2, 0]))
    assert np.isfinite(m.elbo(x, n_samples=3, y=[0, 1, 2, 0]))
    assert m.log_weights(x, 4, y=[0, 1, 2, 0]).shape == (4, 4)


def test_labels_are_refused_with_a_clear_message(bk):
    cvae = VAE(6, hidden=(5,), z_dim=2, seed=0, n_classes=3)
    vae = VAE(6, hidden=(5,), z_dim=2, seed=0)
    x = backend.RNG(0).uniform((4, 6))
    with pytest.raises(ValueError, match=r"x comes without labels, but this VAE is conditional \(n_classes=3\)"):
        cvae.loss_and_grads(x)
    with pytest.raises(ValueError, match=r"comes without labels.*y=\.\.\."):
        cvae.sample(4)
    with pytest.raises(ValueError, match=r"y holds labels from 0 to 3, but this VAE has n_classes=3.*0\.\.2"):
        cvae.loss_and_grads(x, y=[0, 1, 3, 2])
    with pytest.raises(ValueError, match=r"y holds labels from -1 to 2"):
        cvae.loss(x, y=[0, 1, -1, 2])
    with pytest.raises(ValueError, match=r"y must hold one label per example, shape \(4,\), got shape \(3,\)"):
        cvae.loss_and_grads(x, y=[0, 1, 2])
    with pytest.raises(ValueError, match=r"y must hold integer class labels 0\.\.2, got dtype"):
        cvae.loss_and_grads(x, y=np.array([0.0, 1.0, 2.0, 1.0]))
    with pytest.raises(ValueError, match=r"labels y were given, but this VAE is unconditional.*n_classes=C"):
        vae.loss_and_grads(x, y=[0, 1, 2, 0])
    with pytest.raises(ValueError, match="unconditional"):
        vae.encode(x, y=[0, 1, 2, 0])
    with pytest.raises(ValueError, match=r"y_train holds labels from 0 to 5"):
        cvae.check_data(x, "x_train", y=[0, 1, 5, 2])
    with pytest.raises(ValueError, match="n_classes .* must be a positive integer, got 0"):
        VAE(6, n_classes=0)


def test_checkpoint_rebuilds_a_conditional_vae(tmp_path):
    m = VAE(6, hidden=(5,), z_dim=2, seed=3, n_classes=4)
    assert m.config["n_classes"] == 4 and "n_classes=4" in repr(m)
    checkpoint.save(tmp_path / "c.npz", m)
    back = checkpoint.load_model(tmp_path / "c.npz")
    assert back.n_classes == 4 and back.config == m.config
    z = backend.RNG(0).normal((3, 2))
    np.testing.assert_array_equal(host(back.decode(z, y=[0, 3, 1])), host(m.decode(z, y=[0, 3, 1])))


def test_collapse_diagnostics_take_the_labels(bk):
    m = VAE(6, hidden=(5,), z_dim=3, seed=0, n_classes=2)
    x = backend.RNG(0).uniform((8, 6))
    y = [0, 1] * 4
    kl = kl_per_dimension(m, x, y=y)
    assert kl.shape == (3,)
    assert float(bk.xp.sum(kl)) == pytest.approx(float(m.loss(x, y=y)[1]["kl"]), rel=1e-4)
    count, activity = active_units(m, x, y=y)
    assert activity.shape == (3,) and 0 <= count <= 3


def _nearest_neighbour_labels(queries, images, labels):
    """The label of each query's nearest image (Euclidean), on the host."""
    d = (queries ** 2).sum(1)[:, None] - 2 * queries @ images.T + (images ** 2).sum(1)[None, :]
    return labels[np.argmin(d, axis=1)]


def test_conditional_samples_are_read_as_the_class_asked_for():
    """Trained on the digits with their labels, the conditional VAE draws the digit asked
    for: a 1-nearest-neighbour classifier on the real training digits reads 100 samples
    of each class as that class at least 90% of the time (lesson 7 reports the figure)."""
    from scratchvae import datasets
    from scratchvae.training import Trainer

    with backend.using("numpy", dtype="float32"):
        ds = datasets.load("digits")
        m = VAE(ds.n_features, hidden=(256,), z_dim=2, seed=0, n_classes=10)
        t = Trainer(m, Adam(1e-3), batch_size=64, progress=False)
        h = t.fit(ds.x_train, ds.x_val, epochs=100, y_train=ds.y_train, y_val=ds.y_val)
        assert h["val_loss"][-1] < h["val_loss"][0]
        asked = np.repeat(np.arange(10), 100)
        m.rng = backend.RNG(1)
        samples = host(m.sample(len(asked), y=asked))
        read = _nearest_neighbour_labels(samples, ds.x_train, ds.y_train)
        accuracy = (read == asked).mean()
        print(f"conditional samples read as the class asked for: {accuracy:.3f}")
        assert accuracy >= 0.9
