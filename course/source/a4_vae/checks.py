"""The checks of assignment 4 (the variational autoencoder), one per exercise.

The answer key: scratchvae.losses (bernoulli_nll, kl_std_normal), scratchvae.reparam,
scratchvae.models.VAE (its loss_and_grads, score_function_grads and elbo),
scratchvae.optim.Adam and scratchvae.training.Trainer, with central differences from
scratchvae.gradcheck. A check prints "Correct: ..." or stops with "Not yet: ..." and a
hint; one that uses an earlier exercise checks that exercise first and names it.
"""

import functools

import numpy as np

from scratchvae import backend, datasets, gradcheck, losses, optim, reparam
from scratchvae.models import VAE
from scratchvae.training import Trainer
from verdict import call, close, compare, fail, floating_point_errors, own_work, require, returned

X_DIM = 64  # the 8x8 digits
results = {}  # what a check leaves for the notebook to show (your trained weights)


def np_(a):
    return np.asarray(backend.to_numpy(a), dtype=np.float64)


def digits():
    """The embedded digits, float64 in [0, 1]: (x_train, x_test)."""
    ds = datasets.load("digits")
    return ds.x_train.astype(np.float64), ds.x_test.astype(np.float64)


def _rng(seed):
    return np.random.default_rng(seed)


# ---------------------------------------------------------------- 4.1 the Bernoulli loss

def bernoulli_loss(bernoulli_loss, seed=3, shape=(5, 7)):
    """Exercise 4.1: softplus(l) - x l, its gradient sigmoid(l) - x, batch mean, L5 (5)."""
    own_work(bernoulli_loss)
    rng = _rng(seed)
    logits = rng.normal(size=shape)
    x = rng.integers(0, 2, size=shape).astype(np.float64)
    loss, dlogits = returned(call(bernoulli_loss, logits, x), ["loss", "dlogits"], "bernoulli_loss")
    compare("loss", loss, losses.bernoulli_nll(logits, x)[0], "scratchvae.losses.bernoulli_nll",
            hint="sum softplus(l) - x l over all N * D entries, then divide by the batch size N only "
                 "(not by N * D): the mean over the batch of per-example sums.")
    compare("dlogits", dlogits, gradcheck.numerical_grad(lambda v: losses.bernoulli_nll(v, x)[0], np.copy(logits)),
            "the numerical gradient",
            hint="d/dl [softplus(l) - x l] = sigmoid(l) - x, entry by entry; remember the 1/N.")
    big_l, big_x = np.array([[800.0, -800.0, 40.0]]), np.array([[1.0, 0.0, 0.5]])
    try:
        with floating_point_errors():
            big_loss, big_dl = returned(call(bernoulli_loss, big_l, big_x), ["loss", "dlogits"], "bernoulli_loss")
    except FloatingPointError as exc:
        fail(f"bernoulli_loss at logits (800, -800, 40) overflows ({exc}). Hint: softplus(l) = "
             "max(l, 0) + log(1 + exp(-|l|)) (np.log1p) never overflows, nor does np.logaddexp(0, l); "
             "for sigmoid, let exp see only numbers <= 0.")
    ref_loss, ref_dl = losses.bernoulli_nll(big_l, big_x)
    compare("loss at logits (800, -800, 40)", big_loss, ref_loss, "scratchvae.losses.bernoulli_nll",
            hint="log(1 + exp(l)) is inf at l = 800: softplus(l) = max(l, 0) + log1p(exp(-|l|)).")
    compare("dlogits at logits (800, -800, 40)", big_dl, ref_dl, "scratchvae.losses.bernoulli_nll",
            hint="exp(l) / (1 + exp(l)) is inf / inf = NaN at l = 800: write sigmoid so that exp only "
                 "sees numbers <= 0.")


# ---------------------------------------------------------------- 4.2 the KL term

def kl_term(kl_term, seed=4, shape=(4, 3)):
    """Exercise 4.2: KL(N(mu, diag exp(logvar)) || N(0, I)) and its gradients, L5 (4)."""
    own_work(kl_term)
    rng = _rng(seed)
    mu = np.where(rng.uniform(size=shape) < 0.5, -1.0, 1.0) * rng.uniform(0.5, 2.0, size=shape)
    logvar = rng.uniform(-2.5, -0.5, size=shape)  # entries away from 0: tiny gradients blur a check
    kl, dmu, dlogvar = returned(call(kl_term, mu, logvar), ["kl", "dmu", "dlogvar"], "kl_term")
    compare("kl", kl, losses.kl_std_normal(mu, logvar)[0], "scratchvae.losses.kl_std_normal",
            hint="per latent dimension 0.5 [mu^2 + exp(logvar) - 1 - logvar], L5 (4), with sigma^2 = "
                 "exp(logvar) (not exp(2 logvar)); sum over K and over the batch, then divide by N.")
    zeros = np.zeros((2, 3))
    compare("kl at mu = 0, logvar = 0", returned(call(kl_term, zeros, zeros), ["kl", "dmu", "dlogvar"], "kl_term")[0],
            0.0, "zero (q is the prior)", hint="mu^2 + exp(logvar) - 1 - logvar is 0 at (0, 0).")
    kl_of = lambda m, lv: losses.kl_std_normal(m, lv)[0]
    compare("dmu", dmu, gradcheck.numerical_grad(lambda m: kl_of(m, logvar), np.copy(mu)), "the numerical gradient",
            hint="only mu^2 / 2 depends on mu: differentiate it; remember the 1/N.")
    compare("dlogvar", dlogvar, gradcheck.numerical_grad(lambda lv: kl_of(mu, lv), np.copy(logvar)),
            "the numerical gradient",
            hint="only (exp(logvar) - logvar) / 2 depends on logvar: differentiate it; remember the 1/N.")


# ---------------------------------------------------------------- 4.3 reparameterization

def reparameterize(reparameterize, reparameterize_backward, seed=5, shape=(4, 3)):
    """Exercise 4.3: z = mu + exp(logvar / 2) eps, L5 (9a)-(9b), and its backward."""
    own_work(reparameterize)
    own_work(reparameterize_backward)
    rng = _rng(seed)
    mu, logvar, eps, dz = (rng.normal(size=shape) for _ in range(4))
    z = returned(call(reparameterize, mu, logvar, eps), ["z"], "reparameterize")
    sigma_hint = "logvar is log sigma^2, so sigma = exp(logvar / 2), not exp(logvar), L5 (9b)."
    z = np.asarray(z, dtype=np.float64)
    if z.shape == shape and np.allclose(z, mu + np.exp(logvar) * eps):
        fail("your z uses sigma = exp(logvar): its samples would have variance exp(2 logvar), not "
             "exp(logvar), while the KL of 4.2 assumes exp(logvar). Hint: " + sigma_hint)
    compare("z", z, reparam.reparam_forward(mu, logvar, eps)[0], "scratchvae.reparam.reparam_forward",
            hint=sigma_hint)
    # L5 (9b): the samples have mean mu and variance exp(logvar)
    m0, lv0 = np.array([[0.5, -1.0]]), np.array([[0.8, -1.2]])
    draws = np.stack([call(reparameterize, m0, lv0, e[None, :]) for e in _rng(seed + 1).normal(size=(4000, 2))])
    close("sample variance (4000 draws)", draws.var(axis=0)[0], np.exp(lv0[0]), "exp(logvar), L5 (9b)",
          rtol=0.12, hint=sigma_hint)
    dmu, dlogvar = returned(call(reparameterize_backward, dz, logvar, eps), ["dmu", "dlogvar"],
                            "reparameterize_backward")
    z_of = lambda m, lv: reparam.reparam_forward(m, lv, eps)[0]
    vjp = lambda f, v: gradcheck.numerical_vjp(f, np.copy(v), dz, h=1e-3, order=4)
    compare("dmu", dmu, vjp(lambda m: z_of(m, logvar), mu), "the numerical gradient",
            hint="how does z_nk change when mu_nk moves a little? Then the chain rule with dz, L5 (9a).")
    compare("dlogvar", dlogvar, vjp(lambda lv: z_of(mu, lv), logvar), "the numerical gradient",
            hint="chain rule through sigma = exp(logvar / 2): dsigma/dlogvar = sigma / 2, so "
                 "dlogvar = dz * eps * sigma / 2, L5 (9a).")


# ---------------------------------------------------------------- 4.4 the backward chain

def initial_params(hidden, z_dim, seed=0):
    """The starting weights of scratchvae's VAE(64, hidden=(hidden,), z_dim): a dict of
    NumPy arrays with the VAE's names ("enc.fc1.W", ...)."""
    model = VAE(X_DIM, hidden=(hidden,), z_dim=z_dim, seed=seed)
    return {k: np_(v) for k, v in model.params.items()}


def load(params, hidden, z_dim, seed=0):
    """scratchvae's VAE holding ``params`` (the answer key evaluates your weights)."""
    model = VAE(X_DIM, hidden=(hidden,), z_dim=z_dim, seed=seed)
    missing = sorted(set(model.params) - set(params))
    if missing:
        fail(f"params lack the keys {missing}; keep the names of the params you were given.")
    for k, p in model.params.items():
        value = np.asarray(params[k], dtype=np.float64)
        if value.shape != p.shape:
            fail(f"params[{k!r}] has shape {value.shape}, the VAE's has {p.shape}.")
        p[...] = value
    return model


_CHAIN_HINTS = {
    "dec.out.W": "the decoder's output layer: logits = g Wout + bout, so dWout = g^T dlogits, with "
                 "dlogits from your bernoulli_loss.",
    "dec.out.b": "dbout = dlogits summed over the rows.",
    "dec.fc1.W": "back through the decoder's ReLU: dg = dlogits Wout^T, zero where the pre-activation "
                 "was <= 0; then dW1 = z^T (that), with z the sample.",
    "dec.fc1.b": "the decoder's first bias: the gradient after the ReLU, summed over the rows.",
    "enc.mu.W": "dz from the decoder goes through your reparameterize_backward to dmu, and the KL's dmu "
                "joins it there: dmu = dmu_rec + dmu_kl; then dWmu = h^T dmu.",
    "enc.mu.b": "dbmu = (dmu_rec + dmu_kl) summed over the rows.",
    "enc.logvar.W": "dlogvar = dlogvar_rec (your reparameterize_backward) + dlogvar_kl (your kl_term); "
                    "then dWlv = h^T dlogvar.",
    "enc.logvar.b": "dblv = dlogvar summed over the rows.",
    "enc.fc1.W": "h feeds both heads, so dh = dmu Wmu^T + dlogvar Wlv^T; back through the encoder's "
                 "ReLU, then dW1 = x^T (that).",
    "enc.fc1.b": "the encoder's first bias: the gradient after the ReLU, summed over the rows.",
}
_ORDER = ["dec.out.W", "dec.out.b", "dec.fc1.W", "dec.fc1.b", "enc.mu.W", "enc.mu.b",
          "enc.logvar.W", "enc.logvar.b", "enc.fc1.W", "enc.fc1.b"]


def vae_loss_and_grads(fns, vae_loss_and_grads, seed=6, n=8, hidden=10, z_dim=3):
    """Exercise 4.4: the negative ELBO and every gradient of the VAE, against scratchvae's VAE."""
    require("4.1", "bernoulli_loss", bernoulli_loss, fns["bernoulli_loss"])
    require("4.2", "kl_term", kl_term, fns["kl_term"])
    require("4.3", "reparameterize", reparameterize, fns["reparameterize"], fns["reparameterize_backward"])
    own_work(vae_loss_and_grads)
    rng = _rng(seed)
    params = initial_params(hidden, z_dim, seed=seed)
    for k in params:  # nonzero biases, so that a missing one shows
        if k.endswith(".b"):
            params[k] = rng.normal(0.0, 0.3, size=params[k].shape)
    x = digits()[0][rng.choice(1297, size=n, replace=False)]
    eps = rng.normal(size=(n, z_dim))
    loss, grads = returned(call(vae_loss_and_grads, params, x, eps), ["loss", "grads"], "vae_loss_and_grads")
    model = load(params, hidden, z_dim)
    ref_loss, stats = model.loss_and_grads(x, eps=eps[None, :, :])
    compare("loss", loss, ref_loss, "scratchvae's VAE.loss_and_grads with the same eps",
            hint="the negative ELBO of L5 (3), (5) with one sample: your bernoulli_loss of the decoder's "
                 "logits at z = mu + sigma eps, plus your kl_term of (mu, logvar).")
    if not isinstance(grads, dict) or set(grads) != set(params):
        fail(f"grads should be a dict with the keys of params, {sorted(params)}; got "
             f"{sorted(grads) if isinstance(grads, dict) else type(grads).__name__}.")
    for k in _ORDER:  # in the order backward computes them, so the first wrong one names the place
        compare(f"grads[{k!r}]", grads[k], model.grads[k], "scratchvae's VAE.loss_and_grads", hint=_CHAIN_HINTS[k],
                say_correct=False)
    print("Correct: your negative ELBO and all 10 gradients match scratchvae's VAE.loss_and_grads "
          "(decoder -> reparameterization -> KL -> encoder).")


# ---------------------------------------------------------------- 4.5 Adam

def adam_step(adam_step, seed=7, shape=(3, 4), steps=5):
    """Exercise 4.5: Adam with bias correction, against scratchvae.optim.Adam."""
    own_work(adam_step)
    rng = _rng(seed)
    p0, gs = rng.normal(size=shape), [rng.normal(size=shape) for _ in range(steps)]
    reference, adam = {"p": np.copy(p0)}, optim.Adam(lr=0.1)
    p, m, v = np.copy(p0), np.zeros_like(p0), np.zeros_like(p0)
    for t, g in enumerate(gs, start=1):
        p, m, v = returned(call(adam_step, p, g, m, v, t, 0.1), ["p", "m", "v"], "adam_step")
        adam.step(reference, {"p": g})
        compare(f"p after step {t}", p, reference["p"], "scratchvae.optim.Adam", say_correct=(t == steps),
                hint="follow the formulas in order: update m and v, then their bias corrections with this "
                     "step's t, then the step; eps goes outside the square root.")


# ---------------------------------------------------------------- 4.6 training

@functools.lru_cache(maxsize=4)
def _reference_run(hidden, z_dim, epochs, batch_size, lr, seed):
    model = VAE(X_DIM, hidden=(hidden,), z_dim=z_dim, seed=seed)
    trainer = Trainer(model, optim.Adam(lr=lr), batch_size=batch_size, seed=seed, progress=False, kernels=False)
    trainer.fit(digits()[0], epochs=epochs)
    return {k: np_(v) for k, v in model.params.items()}


def trained_params(hidden, z_dim, epochs, batch_size, lr, seed=0):
    """scratchvae's VAE trained with these settings: a dict of NumPy arrays (a copy)."""
    return {k: np.copy(v) for k, v in _reference_run(hidden, z_dim, epochs, batch_size, lr, seed).items()}


def test_neg_elbo(params, hidden, z_dim, n_samples=10):
    """The negative ELBO per test image, estimated by scratchvae with fixed noise (seed 123)."""
    model = load(params, hidden, z_dim, seed=123)
    return -model.elbo(digits()[1], n_samples=n_samples)


def train_vae(fns, train_vae, hidden, z_dim, epochs, batch_size, lr, seed=0, margin=1.0):
    """Exercise 4.6: your VAE, trained by your loop, within ``margin`` nats of scratchvae's."""
    require("4.4", "vae_loss_and_grads", vae_loss_and_grads, fns, fns["vae_loss_and_grads"])
    require("4.5", "adam_step", adam_step, fns["adam_step"])
    own_work(train_vae)
    x_train, _ = digits()
    start = initial_params(hidden, z_dim, seed=seed)
    params, epoch_losses = returned(call(train_vae, start, x_train, epochs, batch_size, lr, seed),
                                    ["params", "losses"], "train_vae")
    epoch_losses = np.asarray(epoch_losses, dtype=np.float64)
    if epoch_losses.shape != (epochs,):
        fail(f"losses should hold one mean training loss per epoch, shape ({epochs},), got {epoch_losses.shape}.")
    if not np.all(np.isfinite(epoch_losses)):
        fail("your training loss became NaN or inf. Hint: check the learning rate passed to adam_step, and "
             "that every parameter gets its own m, v.")
    yours = test_neg_elbo(params, hidden, z_dim)
    ref = test_neg_elbo(trained_params(hidden, z_dim, epochs, batch_size, lr, seed), hidden, z_dim)
    if yours > ref + margin:
        fail(f"your VAE's test negative ELBO is {yours:.3f} nats per image, scratchvae's with the same settings "
             f"{ref:.3f}: more than {margin:g} nat worse. Hint: one Adam state (m, v) per parameter, t counting "
             "the steps from 1, a fresh permutation of the training images every epoch, the last short batch "
             "included, and fresh eps for every batch.")
    results["train_vae"] = params
    print(f"Correct: your VAE reaches a test negative ELBO of {yours:.3f} nats per image; scratchvae's, trained "
          f"with the same settings, {ref:.3f} (your training loss went from {epoch_losses[0]:.2f} to "
          f"{epoch_losses[-1]:.2f}).")


# ---------------------------------------------------------------- 4.7 - 4.8 gradient variance

def _encoder(model, x):
    mu, logvar = model.encode(x)
    return np_(mu), np_(logvar)


def _rp_reference(model, x, eps):
    """The reparameterized estimate from scratchvae's VAE.loss_and_grads, one example at a
    time (with N = 1 the heads' bias gradients are dmu, dlogvar, the KL's included)."""
    mu, logvar = _encoder(model, x)
    dmu, dlogvar = np.zeros_like(mu), np.zeros_like(mu)
    for n in range(x.shape[0]):
        model.loss_and_grads(x[n:n + 1], eps=eps[None, n:n + 1])
        dmu[n] = np_(model.grads["enc.mu.b"]) - mu[n]  # minus the KL's gradient, mu (N = 1)
        dlogvar[n] = np_(model.grads["enc.logvar.b"]) - 0.5 * (np.exp(logvar[n]) - 1.0)
    return dmu / x.shape[0], dlogvar / x.shape[0]


def _sf_reference(model, x, eps):
    """The score-function estimate from scratchvae's VAE.score_function_grads, one example
    at a time (with N = 1 the bias gradients are the per-example dmu, dlogvar plus the KL's)."""
    mu, logvar = _encoder(model, x)
    dmu, dlogvar = np.zeros_like(mu), np.zeros_like(mu)
    for n in range(x.shape[0]):
        g = model.score_function_grads(x[n:n + 1], eps=eps[None, n:n + 1])
        dmu[n] = np_(g["enc.mu.b"]) - mu[n]  # minus the KL's gradient, mu (N = 1)
        dlogvar[n] = np_(g["enc.logvar.b"]) - 0.5 * (np.exp(logvar[n]) - 1.0)
    return dmu / x.shape[0], dlogvar / x.shape[0]


def estimators(fns, reparam_grads, score_function_grads, params, hidden, z_dim, seed=8, n=8):
    """Exercise 4.7: both estimators of d rec / d(mu, logvar) at fixed eps, L5 (6)-(7)."""
    require("4.1", "bernoulli_loss", bernoulli_loss, fns["bernoulli_loss"])
    require("4.3", "reparameterize", reparameterize, fns["reparameterize"], fns["reparameterize_backward"])
    own_work(reparam_grads)
    own_work(score_function_grads)
    rng = _rng(seed)
    x = digits()[1][:n]
    eps = rng.normal(size=(n, z_dim))
    model = load(params, hidden, z_dim)
    dmu, dlogvar = returned(call(reparam_grads, params, x, eps), ["dmu", "dlogvar"], "reparam_grads")
    ref_mu, ref_lv = _rp_reference(model, x, eps)
    hint = ("L5 (7): dz from the decoder (as in your 4.4, without the KL), then your reparameterize_backward; "
            "rec is a batch mean, so your bernoulli_loss's 1/N is already in dz.")
    compare("reparameterized dmu", dmu, ref_mu, "scratchvae's VAE.loss_and_grads (less the KL's part)",
            hint=hint, say_correct=False)
    compare("reparameterized dlogvar", dlogvar, ref_lv, "scratchvae's VAE.loss_and_grads (less the KL's part)",
            hint=hint, say_correct=False)
    sdmu, sdlogvar = returned(call(score_function_grads, params, x, eps), ["dmu", "dlogvar"],
                              "score_function_grads")
    ref_mu, ref_lv = _sf_reference(model, x, eps)
    hint = ("L5 (6): f(z) times the gradient of log q(z | x), with f_n = -log p(x_n | z_n) (a sum over the "
            "pixels) and z = mu + sigma eps: d log q / d mu = eps / sigma, d log q / d logvar = (eps^2 - 1) / 2; "
            "then divide by N (rec is a batch mean). No dz: this estimator never differentiates the decoder.")
    compare("score-function dmu", sdmu, ref_mu, "scratchvae's VAE.score_function_grads", hint=hint,
            say_correct=False)
    compare("score-function dlogvar", sdlogvar, ref_lv, "scratchvae's VAE.score_function_grads", hint=hint,
            say_correct=False)
    print("Correct: at fixed eps both your reparameterized and your score-function estimates match "
          "scratchvae's VAE.")


def _known_estimator(seed, n, z_dim):
    """A stand-in estimator with a known mean and variance: (A + B eps, C (eps^2 - 1)) has
    mean [A, 0] and total variance sum B^2 + 2 sum C^2 (eps^2 has variance 2)."""
    rng = _rng(seed)
    A, B, C = (rng.normal(0.0, 5.0, size=(n, z_dim)) for _ in range(3))  # scale 5: a std is not a variance
    return (lambda params, x, eps: (A + B * eps, C * (eps * eps - 1.0)),
            np.concatenate([A, np.zeros_like(A)], axis=1), float(np.sum(B * B) + 2.0 * np.sum(C * C)),
            np.concatenate([B * B, 2.0 * C * C], axis=1))


def variance(fns, gradient_variance, params, hidden, z_dim, n_repeats, seed=9, n=16):
    """Exercise 4.8: both estimators are unbiased; the score function's variance is larger."""
    require("4.7", "reparam_grads and score_function_grads", estimators, fns, fns["reparam_grads"],
            fns["score_function_grads"], params, hidden, z_dim)
    own_work(gradient_variance)
    x = digits()[1][:n]
    hint = ("draw fresh eps for every repeat, put [dmu, dlogvar] side by side (axis 1), stack the n_repeats "
            "estimates, and take their mean and the variance of every entry over the repeats (axis 0); the "
            "total variance is the sum of those variances.")

    def measure(grad_fn):
        mean, total = returned(call(gradient_variance, grad_fn, params, x, z_dim, n_repeats, seed),
                               ["mean", "total_var"], "gradient_variance")
        mean = np.asarray(mean, dtype=np.float64)
        if mean.shape != (n, 2 * z_dim):
            fail(f"mean should be the average estimate of [dmu, dlogvar] side by side, shape {(n, 2 * z_dim)}; "
                 f"got {mean.shape}. Hint: {hint}")
        return mean, float(total)

    fake, fake_mean, fake_total, fake_var = _known_estimator(seed, n, z_dim)
    mean, total = measure(fake)
    close("total variance of an estimator whose variance is known", total, fake_total,
          "the exact total variance", rtol=0.3, hint=hint, say_correct=False)
    off = np.abs(mean - fake_mean) / np.sqrt(fake_var / n_repeats)
    if np.max(off) > 6.0:
        fail(f"on an estimator whose mean is known, your mean is off by {np.max(off):.1f} standard errors. "
             f"Hint: {hint}")
    (m_rp, v_rp), (m_sf, v_sf) = measure(fns["reparam_grads"]), measure(fns["score_function_grads"])
    # a conservative test of unbiasedness: each entry's variance is at most the total
    z = np.max(np.abs(m_sf - m_rp)) / np.sqrt((v_sf + v_rp) / n_repeats)
    if z > 6.0:
        fail(f"the two mean estimates differ by {z:.1f} standard errors or more; both estimators are "
             "unbiased, so their means should agree.")
    if not v_sf > v_rp:
        fail(f"your score-function variance ({v_sf:.3g}) is not above the reparameterized one ({v_rp:.3g}).")
    print(f"Correct: your measurement is right on an estimator of known variance; over {n_repeats} draws "
          f"both estimators agree on the gradient, and the score function's total variance is "
          f"{v_sf / v_rp:.0f} times the reparameterized one's ({v_sf:.3g} against {v_rp:.3g}).")
