"""The variational autoencoder of Kingma and Welling (2014), every gradient by hand.

Generative model        z ~ N(0, I),   x | z ~ p_theta(x | z)   (Bernoulli or Gaussian)   L5 (1)
Inference model         q_phi(z | x) = N(mu_phi(x), diag exp(logvar_phi(x)))                L5 (2)

Evidence lower bound, per example (the training objective is its negative):

    ELBO(x) = E_q[log p_theta(x | z)] - KL(q_phi(z | x) || N(0, I))             L5 (3)
            ~ (1/L) sum_l log p_theta(x | z_l) - KL,   z_l = mu + sigma * eps_l    L5 (5)

with the KL in closed form (scratchvae.losses.kl_std_normal) and eps_l ~ N(0, I).
``objective="elbo_mc"`` (the Monte-Carlo ELBO, no closed-form KL) and ``objective="iwae"``
(the importance-weighted bound) are in scratchvae.models.objectives. With ``n_classes=C``
the VAE is conditional, L7 (8): encoder and decoder also read the one-hot label y
(scratchvae.models.labels), and every method takes the labels as ``y``.

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
from ..arrays import batch_slices, logsumexp, unbroadcast
from ..checks import as_data, check_beta, check_data, check_positive_int
from ..densities import bernoulli_log_prob, gaussian_log_prob, std_normal_log_prob
from .. import layers
from ..layers import Dense, Sequential, flatten, sigmoid
from ..losses import bernoulli_nll, gaussian_nll, kl_std_normal
from ..model import Model
from ..reparam import reparam_backward, reparam_forward
from .labels import as_labels, one_hot, repeat_rows, with_labels
from .objectives import check_objective, weighted

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
    - n_classes: None for the VAE; C for a conditional VAE, L7 (8), that reads the
      one-hot label y beside x (encoder) and beside z (decoder). Its labels y (integers
      0..C-1, one per example) go to every method as ``y=``; ``sample(n, y=c)`` draws
      images of class c.

    Parameters (``model.params``, flat, same keys in ``model.grads``):
    "enc.fc1.W", "enc.fc1.b", ..., "enc.mu.W", "enc.mu.b", "enc.logvar.W", "enc.logvar.b",
    "dec.fc1.W", ..., "dec.out.W", "dec.out.b" (and "dec.logvar" if learned). A
    conditional VAE has the same names; its first encoder and decoder layers have C
    more input rows.
    """

    options = ("n_samples", "eps", "beta", "objective", "y")

    def __init__(self, x_dim: int, hidden=(400,), z_dim: int = 20, likelihood: str = "bernoulli",
                 activation: str = "relu", seed: int = 0, decoder_logvar="learned", n_classes: int | None = None):
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
        if n_classes is not None:
            n_classes = check_positive_int(n_classes, "n_classes (None for an unconditional VAE)")
        self.config = dict(x_dim=int(x_dim), hidden=list(hidden), z_dim=int(z_dim),
                           likelihood=likelihood, activation=activation, seed=int(seed),
                           decoder_logvar=decoder_logvar if learned else float(decoder_logvar),
                           n_classes=n_classes)
        self.x_dim, self.z_dim, self.likelihood = int(x_dim), int(z_dim), likelihood
        self.n_classes = n_classes
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

        C = n_classes or 0  # a conditional VAE's networks also read the one-hot label
        enc_sizes = [self.x_dim + C, *hidden]
        dec_sizes = [self.z_dim + C, *reversed(hidden)]
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

    def check_data(self, x, name: str = "x", y=None) -> None:
        """All checks of a data set, once (the trainer calls this before fitting): x,
        and for a conditional VAE its labels y (an unconditional one refuses them). x may
        be a NumPy array or a list of rows: every method converts it (``checks.as_data``)."""
        x = as_data(x, name)
        check_data(x, self.x_dim, f"this VAE (x_dim={self.x_dim})", unit_interval=self.likelihood == "bernoulli",
                   name=name, unit_scale=self.likelihood == "gaussian")
        self._one_hot(y, x.shape[0], name=name)

    def _one_hot(self, y, n: int, check: bool = True, name: str = "x"):
        """The one-hot labels (n, C) a conditional VAE's networks read; None for a VAE.
        Refuses labels given to a VAE and labels missing for a conditional one (``name``:
        the data's name, "x" or "x_train", whose labels are "y" or "y_train")."""
        y_name = "y" + name[1:] if name.startswith("x") else f"the labels of {name}"
        if self.n_classes is None:
            if y is not None:
                raise ValueError(f"labels {y_name} were given, but this VAE is unconditional (n_classes=None): "
                                 f"leave {y_name} out, or build VAE(..., n_classes=C) to condition on labels")
            return None
        if y is None:
            raise ValueError(f"{name} comes without labels, but this VAE is conditional (n_classes="
                             f"{self.n_classes}): pass one label per example as {y_name}=... (Trainer.fit "
                             "takes y_train=... and y_val=...)")
        y = as_labels(y, n, self.n_classes, check, name=y_name)
        return one_hot(y, self.n_classes, self.dec_out.params["W"].dtype)  # the model's dtype

    def encode(self, x, y=None):
        """q_phi(z | x) of L5 (2): x (N, D) -> mu (N, K), logvar (N, K). It stands in for
        the posterior p_theta(z | x), which the nonlinear decoder makes intractable, L4 (11).
        A conditional VAE's encoder is q_phi(z | x, y) of L7 (8): pass the labels y (N,)."""
        x = as_data(x)
        return self._encode(x, self._one_hot(y, x.shape[0]))

    def _encode(self, x, c):
        h = self.enc_body.forward(x if c is None else with_labels(x, c))  # L7 (8) [x, onehot(y)]
        return self.enc_mu.forward(h), self.enc_logvar.forward(h)

    def decode(self, z, y=None):
        """z (M, K) -> decoder output (M, D): logits (Bernoulli) or mean (Gaussian); a
        conditional VAE's decoder p_theta(x | z, y) of L7 (8) takes the labels y (M,)."""
        z = as_data(z, "z")
        return self._decode(z, self._one_hot(y, z.shape[0]))

    def _decode(self, zc, c):
        return self.dec_out.forward(self.dec_body.forward(zc if c is None else with_labels(zc, c)))

    def mean_image(self, out):
        """Decoder output -> E[x | z]: sigmoid of the logits, or the Gaussian mean."""
        return sigmoid(out) if self.likelihood == "bernoulli" else out

    def reconstruct(self, x, y=None):
        """E[x | z = mu(x)]: the decoded posterior mean, for pictures (N, D)."""
        x = as_data(x)
        c = self._one_hot(y, x.shape[0])
        mu, _ = self._encode(x, c)
        return self.mean_image(self._decode(mu, c))

    def sample(self, n: int, mean: bool = True, y=None):
        """n draws z ~ N(0, I), decoded; ``mean=True`` returns E[x | z] (the usual
        picture), ``mean=False`` a sample x ~ p(x | z). Returns (n, D). A conditional
        VAE needs the class of each draw: y (n,) labels, or one integer for all n."""
        n = check_positive_int(n, "n")
        c = self._one_hot(y, n)  # before the draw: a refused y leaves self.rng untouched
        z = self.rng.normal((n, self.z_dim))  # L5 (1) z ~ N(0, I)
        m = self.mean_image(self._decode(z, c))
        if mean:
            return m
        xp = array_namespace(m)
        if self.likelihood == "bernoulli":
            return xp.astype(self.rng.uniform(m.shape) < m, m.dtype)
        return m + xp.exp(0.5 * self._dec_logvar()) * self.rng.normal(m.shape)

    def _forward(self, x, eps, c=None):
        """Encoder, reparameterization and decoder on all L * N samples at once (c: the
        one-hot labels (N, C) of a conditional VAE, else None).

        Returns mu, logvar (N, K); z (L, N, K) with its cache; decoder output (L N, D);
        and x repeated to (L N, D) to line up with it.
        """
        xp = array_namespace(x)
        L, N, K = eps.shape
        mu, logvar = self._encode(x, c)  # (N, K) each
        # L5 (7b) z = g_phi(eps, x), here mu + exp(logvar/2) eps                    (L, N, K)
        z, rcache = reparam_forward(mu, logvar, eps)
        out = self._decode(xp.reshape(z, (L * N, K)), None if c is None else repeat_rows(c, L))  # (L N, D)
        x_rep = repeat_rows(x, L)
        return mu, logvar, z, rcache, out, x_rep

    def _noise(self, x, n_samples, eps=None):
        shape = (check_positive_int(n_samples, "n_samples"), x.shape[0], self.z_dim)
        if eps is None:
            return self.rng.normal(shape)
        eps = as_data(eps, "eps")  # a NumPy array or nested lists, as x
        if eps.shape != shape:
            hint = ""
            if eps.ndim == 3 and eps.shape[1:] == shape[1:]:  # only L differs: n_samples is the fix
                hint = f"; pass n_samples={eps.shape[0]} to match eps"
            raise ValueError(f"eps must have shape (L, N, K) = {shape}, got {eps.shape}{hint}")
        return eps

    def _rec(self, out, x_rep, per_row: bool = False):
        """Reconstruction loss -E log p(x | z) (the mean over the L N rows) and its
        gradients d rec / d out and d rec / d decoder logvar (None for Bernoulli). With
        ``per_row`` a learned decoder logvar's gradient keeps its L N rows, for the
        objectives that weight each sample."""
        if self.likelihood == "bernoulli":
            rec, dout = self.bernoulli_nll(out, x_rep, check=False)
            return rec, dout, None
        logvar = self._dec_logvar()
        if per_row and self.learn_logvar:
            logvar = array_namespace(out).broadcast_to(logvar, out.shape)  # a gradient per entry
        return gaussian_nll(x_rep, out, logvar, check=False)

    def _groups(self, x, L: int, max_floats: int) -> list:
        """Slices of examples holding at most max_floats decoder outputs (L rows each)."""
        rows = check_positive_int(max_floats, "max_floats") // (L * self.x_dim)
        return batch_slices(x.shape[0], max(1, rows))

    # ---- the objective and its gradient ----------------------------------------

    def loss_and_grads(self, x, n_samples: int = 1, eps=None, beta: float = 1.0, objective: str = "elbo",
                       y=None, check: bool = True, max_floats: int = 2 ** 23):
        """Negative ELBO, L5 (5), by Monte Carlo with L = n_samples, and all its gradients
        (or the negative of another objective: the Monte-Carlo ELBO, the IWAE bound).
        The ELBO is L5 (3); its gradient the pathwise one, L5 (7), whose variance falls as
        1/L, L5 (8); the work is done by ``_loss_and_grads``, group by group.

        Inputs:
        - x: (N, D) batch (a backend array; a NumPy array or a list of rows is converted).
        - n_samples: L, samples of z per example; the estimate averages over them (the
          IWAE's k).
        - eps: optional (L, N, K) noise, to hold it fixed (tests, lessons); drawn from
          self.rng if None.
        - beta: weight of the KL, L7 (1) (KL warm-up, L7 (2)), a finite number >= 0;
          beta = 1 is the ELBO.
        - objective: "elbo" (the KL in closed form, L5 (5)), "elbo_mc" (the Monte-Carlo
          ELBO, log p(x, z) - log q(z | x) per sample) or "iwae" (the importance-weighted
          bound L5 (10) with k = n_samples), L7 (5); see scratchvae.models.objectives.
        - y: (N,) labels 0..C-1, for a conditional VAE (n_classes=C) only.
        - check: validate x (shape, NaN, range for Bernoulli, scale for Gaussian) and y.
        - max_floats: bounded memory: the batch is worked in groups of examples of at
          most this many decoder outputs (L N rows of D), their gradients combined.
        Returns:
        - loss: 0-d array, rec + beta * kl for "elbo" and "elbo_mc", minus the bound for
          "iwae" (nats per example).
        - stats: dict of 0-d arrays "rec" (-E log p(x|z)), "kl", "neg_elbo" (rec + kl),
          and "neg_iwae" for "iwae"; "elbo_mc" and "iwae" estimate the KL by Monte Carlo.
        Fills model.grads with d loss / d param (overwriting what they held).
        """
        objective, beta = check_objective(objective), check_beta(beta)
        x = as_data(x)  # a backend array passes as it is
        if check:
            self.check_data(x, y=y)
        c = self._one_hot(y, x.shape[0], check=False)
        eps = self._noise(x, n_samples, eps)
        groups = self._groups(x, eps.shape[0], max_floats)
        if len(groups) == 1:
            return self._loss_and_grads(x, eps, c, beta, objective)
        # bounded memory: the loss is a mean over examples, so it, its parts and its
        # gradient are the means over groups of examples, each weighted by its share
        sums, grads = {}, {}
        for rows in groups:
            share = (rows.stop - rows.start) / x.shape[0]
            loss, stats = self._loss_and_grads(x[rows, ...], eps[:, rows, ...],
                                               None if c is None else c[rows, ...], beta, objective)
            for into, part in ((sums, {"loss": loss, **stats}), (grads, self.grads)):
                for k, v in part.items():
                    into[k] = into[k] + share * v if k in into else share * v
        self._write_grads(grads)
        return sums.pop("loss"), sums

    def _loss_and_grads(self, x, eps, c, beta: float, objective: str):
        """loss_and_grads on one group of examples: forward, the objective, backward."""
        L, N, K = eps.shape
        xp = array_namespace(x)
        # forward: encoder, reparameterization, decoder
        mu, logvar, z, rcache, out, x_rep = self._forward(x, eps, c)
        # rec = (1/(L N)) sum_{l,n} -log p(x_n | z_ln): the mean over the batch AND the
        # L samples, so its gradient already carries the 1/L of the Monte-Carlo average,
        # which divides the gradient's variance by L, L5 (8).
        rec, dout, dlogvar_dec = self._rec(out, x_rep, per_row=objective != "elbo")
        if objective == "elbo":
            kl, dmu_kl, dlogvar_kl = kl_std_normal(mu, logvar, check=False)
            loss = rec + beta * kl  # L5 (3) -ELBO = -E_q log p(x | z) + KL; L7 (1) beta = 1 is the ELBO
            stats = {"rec": rec, "kl": kl, "neg_elbo": rec + kl}
            dz_prior = None
            dmu_q = beta * dmu_kl  # the KL gradient joins below: d(beta KL)/dmu = beta mu / N
            dlogvar_q = beta * dlogvar_kl  # d(beta KL)/dlogvar = beta (exp(logvar) - 1) / (2N)
        else:  # L7 (5): per-sample log-weights; L7 (6): each sample weighted by a_ln
            log_px_z = xp.reshape(self._log_px_given_z(out, x_rep), (L, N))
            loss, stats, a, dz_prior, dlogvar_q = weighted(objective, log_px_z, z, mu, logvar, beta)
            r = xp.reshape(L * a, (L * N, 1))  # dout holds each row's 1/(L N): make it a_ln / N
            dout = r * dout
            if self.learn_logvar:
                dlogvar_dec = unbroadcast(r * dlogvar_dec, self._dec_logvar().shape)
            dmu_q = 0.0  # L7 (7): at fixed eps, log q(z | x) does not depend on mu
        # backward: decoder -> reparameterization -> encoder, each gradient written
        if self.learn_logvar:
            self._extra_grads["dec.logvar"] = dlogvar_dec  # d rec / d decoder logvar
        dz = self.dec_body.backward(self.dec_out.backward(dout))  # the decoder's d loss / dz  (L N, K)
        if c is not None:
            dz = dz[:, :K]  # the decoder read [z, onehot(y)]: the labels are data, no gradient
        dz = xp.reshape(dz, (L, N, K))
        if dz_prior is not None:
            dz = dz + dz_prior  # L7 (7): log p(z) in each log-weight also depends on z
        # L5 (7) the pathwise gradient: d rec / dz (the decoder's) times dz / d(mu, logvar), L5 (9a)
        dmu, dlogvar = reparam_backward(dz, rcache)  # sums over L
        dmu = dmu + dmu_q  # the KL's (or log q's) gradient joins here
        dlogvar = dlogvar + dlogvar_q
        dh = self.enc_mu.backward(dmu) + self.enc_logvar.backward(dlogvar)  # h feeds both heads: add
        self.enc_body.backward(dh, need_dx=False)  # x (and y) are the data: no dL/dx
        return loss, stats

    def _write_grads(self, grads: dict) -> None:
        """Put a flat dict name -> gradient into the layers that own the parameters."""
        for prefix, module in self._modules().items():
            owners = module.layers if isinstance(module, Sequential) else {"": module}
            for name, layer in owners.items():
                for p in layer.grads:
                    layer.grads[p] = grads[".".join(s for s in (prefix, name, p) if s)]
        for k in self._extra_grads:
            self._extra_grads[k] = grads[k]

    def loss(self, x, n_samples: int = 1, objective: str = "elbo", y=None, check: bool = True,
             max_floats: int = 2 ** 23):
        """The negative ELBO, L5 (5), and its parts, forward only (no gradients); or the
        negative of another objective ("elbo_mc", "iwae"), as loss_and_grads.

        Returns (loss, stats) like loss_and_grads with beta = 1.
        """
        objective = check_objective(objective)
        x = as_data(x)
        if check:
            self.check_data(x, y=y)
        c = self._one_hot(y, x.shape[0], check=False)
        sums = {}
        for rows in self._groups(x, check_positive_int(n_samples, "n_samples"), max_floats):
            xb, cb = x[rows, ...], None if c is None else c[rows, ...]
            mu, logvar, z, _, out, x_rep = self._forward(xb, self._noise(xb, n_samples), cb)
            if objective == "elbo":
                rec = self._rec(out, x_rep)[0]
                kl = kl_std_normal(mu, logvar, check=False)[0]
                loss, stats = rec + kl, {"rec": rec, "kl": kl, "neg_elbo": rec + kl}
            else:
                log_px_z = array_namespace(x).reshape(self._log_px_given_z(out, x_rep), (n_samples, xb.shape[0]))
                loss, stats = weighted(objective, log_px_z, z, mu, logvar)[:2]
            share = (rows.stop - rows.start) / x.shape[0]
            for k, v in {"loss": loss, **stats}.items():
                sums[k] = sums[k] + share * v if k in sums else share * v
        return sums.pop("loss"), sums

    def elbo(self, x, n_samples: int = 1, batch_size: int = 1000, y=None) -> float:
        """Mean ELBO per example (nats), sampled with L = n_samples (not z = mu: the ELBO
        is an expectation over q, and its value at the mean is a different number)."""
        x = as_data(x)
        self.check_data(x, y=y)
        y = None if y is None else as_labels(y, x.shape[0], self.n_classes)
        batch_size = check_positive_int(batch_size, "batch_size")
        total = 0.0
        for rows in batch_slices(x.shape[0], batch_size):
            xb, yb = x[rows, ...], None if y is None else y[rows]
            total += float(self.loss(xb, n_samples, y=yb, check=False)[0]) * xb.shape[0]
        return -total / x.shape[0]

    def _log_px_given_z(self, out, x):
        if self.likelihood == "bernoulli":
            return bernoulli_log_prob(out, x)
        return gaussian_log_prob(x, out, self._dec_logvar())

    def log_weights(self, x, k: int, y=None):
        """Importance log-weights log p(x, z_i) - log q(z_i | x), z_i ~ q(z | x) (given y
        for a conditional VAE).

        Inputs: x (N, D); k samples per example; y (N,) labels or None. Returns (k, N).
        """
        x = as_data(x)
        xp = array_namespace(x)
        mu, logvar, z, _, out, x_rep = self._forward(x, self._noise(x, k), self._one_hot(y, x.shape[0]))
        log_px_z = xp.reshape(self._log_px_given_z(out, x_rep), (k, x.shape[0]))  # (k, N)
        log_pz = std_normal_log_prob(z)  # (k, N)
        log_qz = gaussian_log_prob(z, mu, logvar)  # (k, N), mu broadcasts over k
        return log_px_z + log_pz - log_qz

    def log_likelihood(self, x, k: int = 1000, batch_size: int = 100, max_floats: int = 2 ** 23,
                       reduce: bool = True, y=None):
        """Importance-weighted estimate of log p(x) (Burda et al., 2016):

            log p(x) ~ log (1/k) sum_i p(x, z_i) / q(z_i | x),   z_i ~ q(z | x)    L5 (10)

        a lower bound in expectation that rises to log p(x) as k grows (k = 1 is the
        ELBO). Computed in batches of examples and chunks of samples (at most
        ``max_floats`` decoder outputs at once), combined with a stable log-sum-exp, so
        k = 5000 fits in memory. A conditional VAE estimates log p(x | y): pass y.

        Returns the mean over examples as a float, or with ``reduce=False`` the (N,)
        array of per-example estimates.
        """
        x = as_data(x)
        self.check_data(x, y=y)
        y = None if y is None else as_labels(y, x.shape[0], self.n_classes)
        k, batch_size = check_positive_int(k, "k"), check_positive_int(batch_size, "batch_size")
        xp = array_namespace(x)
        total, parts = 0.0, []
        for rows in batch_slices(x.shape[0], batch_size):
            xb, yb = x[rows, ...], None if y is None else y[rows]
            n = xb.shape[0]
            chunk = max(1, min(k, max_floats // (n * self.x_dim)))
            acc = None  # running log sum_i w_i, shape (n,)
            for s in range(0, k, chunk):
                lw = logsumexp(self.log_weights(xb, min(chunk, k - s), y=yb), axis=0)
                acc = lw if acc is None else xp.logaddexp(acc, lw)
            parts.append(acc - math.log(k))  # log (1/k) sum_i w_i
            if reduce:
                total += float(xp.sum(parts.pop()))
        return total / x.shape[0] if reduce else xp.concat(parts)

    def score_function_grads(self, x, n_samples: int = 1, eps=None, y=None) -> dict:
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
        A conditional VAE takes the labels y.
        """
        x = as_data(x)
        self.check_data(x, y=y)
        xp = array_namespace(x)
        eps = self._noise(x, n_samples, eps)
        L, N, K = eps.shape
        mu, logvar, _, (sigma, _, _), out, x_rep = self._forward(x, eps, self._one_hot(y, N, check=False))
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
        cond = f", n_classes={self.n_classes}" if self.n_classes is not None else ""
        return (f"VAE(x_dim={c['x_dim']}, hidden={tuple(c['hidden'])}, z_dim={c['z_dim']}, "
                f"likelihood={c['likelihood']!r}{cond})")
