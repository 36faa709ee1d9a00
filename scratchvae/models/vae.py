"""The variational autoencoder of Kingma and Welling (2014), every gradient by hand.

Generative model        z ~ N(0, I),   x | z ~ p_theta(x | z)   (Bernoulli or Gaussian)   L5 (1)
Inference model         q_phi(z | x) = N(mu_phi(x), diag exp(logvar_phi(x)))                L5 (2)

Evidence lower bound, per example (the training objective is its negative):

    ELBO(x) = E_q[log p_theta(x | z)] - KL(q_phi(z | x) || N(0, I))             L5 (3)
            ~ (1/L) sum_l log p_theta(x | z_l) - KL,   z_l = mu + sigma * eps_l    L5 (5)

with the KL in closed form (scratchvae.losses.kl_std_normal) and eps_l ~ N(0, I).

The backward chain written out in ``loss_and_grads`` (its second half):

    decoder.backward(d rec / d out)           -> d rec / dz               (L, N, K)
    reparam_backward(dz)                      -> dmu, dlogvar from rec    (N, K)
    + beta * (dKL/dmu, dKL/dlogvar)           the KL gradient joins here
    encoder heads, then encoder body, backward.

Shapes: x (N, D), hidden sizes H..., latent K, L samples per example.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable

from array_api_compat import array_namespace

from .. import backend
from ..arrays import batch_slices, logsumexp
from ..checks import check_data, check_positive_int
from ..densities import bernoulli_log_prob, gaussian_log_prob, std_normal_log_prob
from .. import layers
from ..layers import Dense, Sequential, flatten, sigmoid
from ..losses import bernoulli_nll, gaussian_nll, kl_std_normal
from ..model import Model
from ..reparam import reparam_backward, reparam_forward

LIKELIHOODS = ("bernoulli", "gaussian")


class VAE(Model):
    """A VAE with an MLP encoder and decoder.

    Inputs:
    - x_dim: D, the data dimension (images flattened to rows).
    - hidden: hidden layer sizes of the encoder; the decoder mirrors them.
    - z_dim: K, the latent dimension.
    - likelihood: "bernoulli" (decoder outputs logits; x in [0, 1]) or "gaussian"
      (decoder outputs the mean).
    - decoder_logvar: Gaussian only. "learned" for a learned per-dimension log-variance
      (parameter "dec.logvar", shape (D,)); "isotropic" for one learned log sigma^2
      shared by all dimensions (shape (1,); with no hidden layers this is probabilistic
      PCA's noise model, and the model is the linear VAE of L6 (1)); or a number for a
      fixed log sigma^2.
    - activation: hidden activation name (see scratchvae.layers.activation).
    - seed: seeds the initial weights and the model's noise (``self.rng``).

    Parameters (``model.params``, flat, same keys in ``model.grads``):
    "enc.fc1.W", "enc.fc1.b", ..., "enc.mu.W", "enc.mu.b", "enc.logvar.W", "enc.logvar.b",
    "dec.fc1.W", ..., "dec.out.W", "dec.out.b" (and "dec.logvar" if learned).
    """

    options = ("n_samples", "eps", "beta")

    def __init__(self, x_dim: int, hidden=(400,), z_dim: int = 20, likelihood: str = "bernoulli",
                 activation: str = "relu", seed: int = 0, decoder_logvar="learned"):
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"unknown likelihood {likelihood!r}: choose 'bernoulli' or 'gaussian'")
        learned = decoder_logvar in ("learned", "isotropic")
        if not learned and (isinstance(decoder_logvar, bool) or not isinstance(decoder_logvar, (int, float))
                            or not math.isfinite(decoder_logvar)):
            raise ValueError(f"decoder_logvar must be 'learned', 'isotropic' or a finite number, "
                             f"got {decoder_logvar!r}")
        x_dim, z_dim = check_positive_int(x_dim, "x_dim"), check_positive_int(z_dim, "z_dim")
        if isinstance(hidden, (str, bytes)) or not isinstance(hidden, Iterable):
            raise ValueError(f"hidden must be a sequence of layer sizes such as (256,) or (512, 256), "
                             f"got {hidden!r}; one hidden layer of 256 units is hidden=(256,)")
        hidden = tuple(check_positive_int(h, "each hidden size") for h in hidden)
        self.config = dict(x_dim=int(x_dim), hidden=list(hidden), z_dim=int(z_dim),
                           likelihood=likelihood, activation=activation, seed=int(seed),
                           decoder_logvar=decoder_logvar if learned else float(decoder_logvar))
        self.x_dim, self.z_dim, self.likelihood = int(x_dim), int(z_dim), likelihood
        if likelihood == "bernoulli":  # -log p(x | z); an attribute, so that the Trainer's
            self.bernoulli_nll = bernoulli_nll  # kernels.install can put its compiled twin here
        self.rng = backend.RNG(seed)
        layers.activation(activation)  # an unknown name fails here, also with hidden=()
        init = "he" if activation.lower() in ("relu", "leaky_relu") else "glorot"

        def body(sizes):
            named = {}
            for i in range(len(sizes) - 1):
                named[f"fc{i + 1}"] = Dense(sizes[i], sizes[i + 1], init=init, rng=self.rng)
                named[f"act{i + 1}"] = layers.activation(activation)
            return Sequential(named)

        enc_sizes = [self.x_dim, *hidden]
        dec_sizes = [self.z_dim, *reversed(hidden)]
        self.enc_body = body(enc_sizes)
        self.enc_mu = Dense(enc_sizes[-1], self.z_dim, rng=self.rng)
        self.enc_logvar = Dense(enc_sizes[-1], self.z_dim, rng=self.rng)
        self.dec_body = body(dec_sizes)
        self.dec_out = Dense(dec_sizes[-1], self.x_dim, rng=self.rng)
        xp, b = backend.current().xp, backend.current()
        self.learn_logvar = likelihood == "gaussian" and learned
        self._extra_params, self._extra_grads = {}, {}
        if self.learn_logvar:
            shape = (self.x_dim,) if decoder_logvar == "learned" else (1,)
            self._extra_params["dec.logvar"] = xp.zeros(shape, dtype=b.dtype, device=b.device)
            self._extra_grads["dec.logvar"] = xp.zeros(shape, dtype=b.dtype, device=b.device)
        elif likelihood == "gaussian":
            self.fixed_logvar = xp.asarray(float(decoder_logvar), dtype=b.dtype, device=b.device)

    # ---- parameters -------------------------------------------------------------

    def _modules(self) -> dict:
        return {"enc": self.enc_body, "enc.mu": self.enc_mu, "enc.logvar": self.enc_logvar,
                "dec": self.dec_body, "dec.out": self.dec_out}

    @property
    def params(self) -> dict:
        """Flat dict name -> array (the live arrays: updating them updates the model)."""
        return {**flatten({k: m.params for k, m in self._modules().items()}), **self._extra_params}

    @property
    def grads(self) -> dict:
        return {**flatten({k: m.grads for k, m in self._modules().items()}), **self._extra_grads}

    def _dec_logvar(self):
        return self._extra_params["dec.logvar"] if self.learn_logvar else self.fixed_logvar

    # ---- forward pieces ---------------------------------------------------------

    def check_data(self, x, name: str = "x") -> None:
        """All checks of a data set, once (the trainer calls this before fitting)."""
        check_data(x, self.x_dim, f"this VAE (x_dim={self.x_dim})", unit_interval=self.likelihood == "bernoulli",
                   name=name)

    def encode(self, x):
        """q_phi(z | x) of L5 (2): x (N, D) -> mu (N, K), logvar (N, K). It stands in for
        the posterior p_theta(z | x), which the nonlinear decoder makes intractable, L4 (11)."""
        h = self.enc_body.forward(x)
        return self.enc_mu.forward(h), self.enc_logvar.forward(h)

    def decode(self, z):
        """z (M, K) -> decoder output (M, D): logits (Bernoulli) or mean (Gaussian)."""
        return self.dec_out.forward(self.dec_body.forward(z))

    def mean_image(self, out):
        """Decoder output -> E[x | z]: sigmoid of the logits, or the Gaussian mean."""
        return sigmoid(out) if self.likelihood == "bernoulli" else out

    def reconstruct(self, x):
        """E[x | z = mu(x)]: the decoded posterior mean, for pictures (N, D)."""
        mu, _ = self.encode(x)
        return self.mean_image(self.decode(mu))

    def sample(self, n: int, mean: bool = True):
        """n draws z ~ N(0, I), decoded; ``mean=True`` returns E[x | z] (the usual
        picture), ``mean=False`` a sample x ~ p(x | z). Returns (n, D)."""
        z = self.rng.normal((check_positive_int(n, "n"), self.z_dim))  # L5 (1) z ~ N(0, I)
        m = self.mean_image(self.decode(z))
        if mean:
            return m
        xp = array_namespace(m)
        if self.likelihood == "bernoulli":
            return xp.astype(self.rng.uniform(m.shape) < m, m.dtype)
        return m + xp.exp(0.5 * self._dec_logvar()) * self.rng.normal(m.shape)

    def _forward(self, x, eps):
        """Encoder, reparameterization and decoder on all L * N samples at once.

        Returns mu, logvar (N, K); z (L, N, K) with its cache; decoder output (L N, D);
        and x repeated to (L N, D) to line up with it.
        """
        xp = array_namespace(x)
        L, N, K = eps.shape
        mu, logvar = self.encode(x)  # (N, K) each
        z, rcache = reparam_forward(mu, logvar, eps)  # z = mu + exp(logvar/2) eps, (L, N, K)
        out = self.decode(xp.reshape(z, (L * N, K)))  # (L N, D)
        x_rep = x if L == 1 else xp.reshape(xp.broadcast_to(x, (L, N, self.x_dim)), (L * N, self.x_dim))
        return mu, logvar, z, rcache, out, x_rep

    def _noise(self, x, n_samples, eps=None):
        shape = (check_positive_int(n_samples, "n_samples"), x.shape[0], self.z_dim)
        if eps is None:
            return self.rng.normal(shape)
        if eps.shape != shape:
            hint = ""
            if eps.ndim == 3 and eps.shape[1:] == shape[1:]:  # only L differs: n_samples is the fix
                hint = f"; pass n_samples={eps.shape[0]} to match eps"
            raise ValueError(f"eps must have shape (L, N, K) = {shape}, got {eps.shape}{hint}")
        return eps

    def _rec(self, out, x_rep, check=False):
        """Reconstruction loss -E log p(x | z) (batch mean) and its gradients."""
        if self.likelihood == "bernoulli":
            rec, dout = self.bernoulli_nll(out, x_rep, check=check)
            return rec, dout, None
        return gaussian_nll(x_rep, out, self._dec_logvar(), check=check)

    # ---- the objective and its gradient ----------------------------------------

    def loss_and_grads(self, x, n_samples: int = 1, eps=None, beta: float = 1.0, check: bool = True):
        """Negative ELBO, L5 (5), by Monte Carlo with L = n_samples, and all its gradients.

        Inputs:
        - x: (N, D) batch.
        - n_samples: L, samples of z per example; the estimate averages over them.
        - eps: optional (L, N, K) noise, to hold it fixed (tests, lessons); drawn from
          self.rng if None.
        - beta: weight of the KL (KL warm-up); beta = 1 is the ELBO.
        - check: validate x (shape, NaN, range for Bernoulli).
        Returns:
        - loss: 0-d array, rec + beta * kl (nats per example).
        - stats: dict of 0-d arrays "rec" (-E log p(x|z)), "kl", "neg_elbo" (rec + kl).
        Fills model.grads with d loss / d param (overwriting what they held).
        """
        if check:
            self.check_data(x)
        eps = self._noise(x, n_samples, eps)
        L, N, K = eps.shape
        xp = array_namespace(x)
        # forward: encoder, reparameterization, decoder
        mu, logvar, z, rcache, out, x_rep = self._forward(x, eps)
        # rec = (1/(L N)) sum_{l,n} -log p(x_n | z_ln): the mean over the batch AND the
        # L samples, so its gradient already carries the 1/L of the Monte-Carlo average,
        # which divides the gradient's variance by L, L5 (8).
        rec, dout, dlogvar_dec = self._rec(out, x_rep)
        kl, dmu_kl, dlogvar_kl = kl_std_normal(mu, logvar, check=False)
        loss = rec + beta * kl  # L5 (3) -ELBO = -E_q log p(x | z) + KL; beta = 1 is the ELBO
        # backward: decoder -> reparameterization -> encoder, each gradient written
        if self.learn_logvar:
            self._extra_grads["dec.logvar"] = dlogvar_dec  # d rec / d decoder logvar
        dz = self.dec_body.backward(self.dec_out.backward(dout))  # d rec / dz      (L N, K)
        # L5 (7) the pathwise gradient: d rec / dz (the decoder's) times dz / d(mu, logvar), L5 (9a)
        dmu, dlogvar = reparam_backward(xp.reshape(dz, (L, N, K)), rcache)  # sums over L
        dmu = dmu + beta * dmu_kl  # the KL gradient joins here: d(beta KL)/dmu = beta mu / N
        dlogvar = dlogvar + beta * dlogvar_kl  # d(beta KL)/dlogvar = beta (exp(logvar) - 1) / (2N)
        dh = self.enc_mu.backward(dmu) + self.enc_logvar.backward(dlogvar)  # h feeds both heads: add
        self.enc_body.backward(dh, need_dx=False)  # x is the data: no dL/dx
        return loss, {"rec": rec, "kl": kl, "neg_elbo": rec + kl}

    def loss(self, x, n_samples: int = 1, check: bool = True):
        """The negative ELBO, L5 (5), and its parts, forward only (no gradients).

        Returns (loss, stats) like loss_and_grads with beta = 1.
        """
        if check:
            self.check_data(x)
        mu, logvar, _, _, out, x_rep = self._forward(x, self._noise(x, n_samples))
        rec = self._rec(out, x_rep)[0]
        kl = kl_std_normal(mu, logvar, check=False)[0]
        return rec + kl, {"rec": rec, "kl": kl, "neg_elbo": rec + kl}

    def elbo(self, x, n_samples: int = 1, batch_size: int = 1000) -> float:
        """Mean ELBO per example (nats), sampled with L = n_samples (not z = mu: the ELBO
        is an expectation over q, and its value at the mean is a different number)."""
        x = backend.asarray(x)
        self.check_data(x)
        batch_size = check_positive_int(batch_size, "batch_size")
        total = 0.0
        for rows in batch_slices(x.shape[0], batch_size):
            xb = x[rows, ...]
            total += float(self.loss(xb, n_samples, check=False)[0]) * xb.shape[0]
        return -total / x.shape[0]

    def _log_px_given_z(self, out, x):
        if self.likelihood == "bernoulli":
            return bernoulli_log_prob(out, x)
        return gaussian_log_prob(x, out, self._dec_logvar())

    def log_weights(self, x, k: int):
        """Importance log-weights log p(x, z_i) - log q(z_i | x), z_i ~ q(z | x).

        Inputs: x (N, D); k samples per example. Returns (k, N).
        """
        xp = array_namespace(x)
        mu, logvar, z, _, out, x_rep = self._forward(x, self._noise(x, k))
        log_px_z = xp.reshape(self._log_px_given_z(out, x_rep), (k, x.shape[0]))  # (k, N)
        log_pz = std_normal_log_prob(z)  # (k, N)
        log_qz = gaussian_log_prob(z, mu, logvar)  # (k, N), mu broadcasts over k
        return log_px_z + log_pz - log_qz

    def log_likelihood(self, x, k: int = 1000, batch_size: int = 100, max_floats: int = 2 ** 23,
                       reduce: bool = True):
        """Importance-weighted estimate of log p(x) (Burda et al., 2016):

            log p(x) ~ log (1/k) sum_i p(x, z_i) / q(z_i | x),   z_i ~ q(z | x)    L5 (10)

        a lower bound in expectation that rises to log p(x) as k grows (k = 1 is the
        ELBO). Computed in batches of examples and chunks of samples (at most
        ``max_floats`` decoder outputs at once), combined with a stable log-sum-exp, so
        k = 5000 fits in memory.

        Returns the mean over examples as a float, or with ``reduce=False`` the (N,)
        array of per-example estimates.
        """
        x = backend.asarray(x)
        self.check_data(x)
        k, batch_size = check_positive_int(k, "k"), check_positive_int(batch_size, "batch_size")
        xp = array_namespace(x)
        total, parts = 0.0, []
        for rows in batch_slices(x.shape[0], batch_size):
            xb = x[rows, ...]
            n = xb.shape[0]
            chunk = max(1, min(k, max_floats // (n * self.x_dim)))
            acc = None  # running log sum_i w_i, shape (n,)
            for s in range(0, k, chunk):
                lw = logsumexp(self.log_weights(xb, min(chunk, k - s)), axis=0)
                acc = lw if acc is None else xp.logaddexp(acc, lw)
            parts.append(acc - math.log(k))  # log (1/k) sum_i w_i
            if reduce:
                total += float(xp.sum(parts.pop()))
        return total / x.shape[0] if reduce else xp.concat(parts)

    def score_function_grads(self, x, n_samples: int = 1, eps=None) -> dict:
        """The score-function (REINFORCE) estimate of the encoder's gradient of the
        negative ELBO, for comparison with the reparameterized one.

            d/dphi E_q[f(z)] = E_q[f(z) d/dphi log q_phi(z | x)],   f(z) = -log p(x | z)    L5 (6)
            d log q / d mu     = (z - mu) / sigma^2 = eps / sigma
            d log q / d logvar = ((z - mu)^2 / sigma^2 - 1) / 2 = (eps^2 - 1) / 2

        The KL term keeps its analytic gradient (as in the reparameterized estimator),
        so the two differ only in how they differentiate the expectation. No baseline.

        Returns a dict "enc.*" -> gradient, the same keys as the encoder's params: new
        arrays, so a dict kept from one call is not changed by the next. ``model.grads``
        is left as it was, so a gradient from loss_and_grads survives this call.
        """
        self.check_data(x)
        xp = array_namespace(x)
        eps = self._noise(x, n_samples, eps)
        L, N, K = eps.shape
        mu, logvar, _, (sigma, _, _), out, x_rep = self._forward(x, eps)
        f = xp.reshape(-self._log_px_given_z(out, x_rep), (L, N))  # -log p(x | z_ln)
        w = f[..., None] / (L * N)  # the 1/(L N) of the Monte-Carlo and batch means
        dmu = xp.sum(w * eps / sigma, axis=0)  # f * dlog q/dmu
        dlogvar = xp.sum(w * 0.5 * (eps * eps - 1.0), axis=0)  # f * dlog q/dlogvar
        _, dmu_kl, dlogvar_kl = kl_std_normal(mu, logvar, check=False)
        encoder = [*self.enc_body.layers.values(), self.enc_mu, self.enc_logvar]
        saved = [dict(layer.grads) for layer in encoder]  # the backward below writes these
        dh = self.enc_mu.backward(dmu + dmu_kl) + self.enc_logvar.backward(dlogvar + dlogvar_kl)
        self.enc_body.backward(dh, need_dx=False)
        sf_grads = {k: g for k, g in self.grads.items() if k.startswith("enc.")}
        for layer, grads in zip(encoder, saved):
            layer.grads.update(grads)  # model.grads as they were before this call
        return sf_grads

    # ---- deprecated --------------------------------------------------------------

    def save(self, path, optimizer=None, extra: dict | None = None) -> None:
        """Deprecated (removed in 0.3): use ``scratchvae.checkpoint.save(path, model)``."""
        warnings.warn("VAE.save is deprecated and goes in scratchvae 0.3; use "
                      "scratchvae.checkpoint.save(path, model, optimizer=...)", DeprecationWarning, stacklevel=2)
        from ..checkpoint import save  # models do not import checkpoint; only this shim does

        save(path, self, optimizer=optimizer, extra=extra)

    @classmethod
    def load(cls, path):
        """Deprecated (removed in 0.3): use ``scratchvae.checkpoint.load_model(path)``."""
        warnings.warn("VAE.load is deprecated and goes in scratchvae 0.3; use "
                      "scratchvae.checkpoint.load_model(path)", DeprecationWarning, stacklevel=2)
        from ..checkpoint import load_model

        return load_model(path, expect=cls)

    def __repr__(self) -> str:
        c = self.config
        return (f"VAE(x_dim={c['x_dim']}, hidden={tuple(c['hidden'])}, z_dim={c['z_dim']}, "
                f"likelihood={c['likelihood']!r})")
