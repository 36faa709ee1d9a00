"""Untied deep autoencoders, and what every autoencoder here shares.

    h     = enc(x)         encoder: MLP  D -> H1 -> ... -> K       h: (N, K), the code
    out   = dec(h)         decoder: MLP  K -> ... -> H1 -> D       out: (N, D)

    loss="mse":        x_hat = out,  L = (1/N) sum_n ||x_n - x_hat_n||^2
    loss="bernoulli":  out = logits l, L = (1/N) sum_n sum_d [softplus(l_nd) - x_nd l_nd],
                       x_hat = sigmoid(l)  (for data in [0, 1], e.g. pixels)

Both losses are the mean over the batch of per-example sums (nats per example), as
every loss in ``scratchvae.losses``. Denoising (Vincent et al. 2008): with
``corruption=...`` the encoder sees x~ = corrupt(x) and the loss compares with the
clean x (see ``scratchvae.models.corrupt``).

Both follow the model contract of ``scratchvae.model.Model`` (shared with the VAE and
the Trainer), and add ``encode``, ``decode`` and ``reconstruct``.
"""

from __future__ import annotations

from collections.abc import Iterable

from .. import backend
from ..checks import as_data, check_columns, check_data, check_finite, check_ndim, check_positive_int, check_same_shape
from ..layers import flatten, mlp, sigmoid
from ..losses import bernoulli_nll, mse
from ..model import Model
from .corrupt import check_corruption, check_image_shape, corrupt

LOSSES = ("mse", "bernoulli")


class AutoencoderBase(Model):
    """What both autoencoders share: input checks, corruption, the reconstruction
    loss, decode() and reconstruct(). Subclasses set ``x_dim`` and ``z_dim``
    and implement ``encode``, ``_decoder_out`` and ``loss_and_grads``."""

    options = ("target",)

    x_dim: int
    z_dim: int

    def _init_common(self, x_dim, z_dim, loss, corruption, noise_level, image_shape, seed):
        x_dim, z_dim = check_positive_int(x_dim, "x_dim"), check_positive_int(z_dim, "z_dim")
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}: choose 'mse' (real data) or 'bernoulli' (data in [0, 1])")
        # loss_kind, not loss: ``model.loss(x)`` is the forward-only method the trainer calls
        self.x_dim, self.z_dim, self.loss_kind = int(x_dim), int(z_dim), loss
        if loss == "bernoulli":  # an attribute, so that the Trainer's kernels.install can swap in a twin
            self.bernoulli_nll = bernoulli_nll
        self.image_shape = check_image_shape(image_shape, x_dim)  # (H, W) or (C, H, W), or None
        self.corruption = corruption
        self.noise_level = check_corruption(corruption, noise_level, self.image_shape, x_dim)
        self.rng = backend.RNG(seed)  # builds the weights, then draws the corruption noise

    def _check_x(self, x, name: str = "x"):
        """x (an array or a list of rows) on the backend, in its float dtype, checked (N, D)."""
        x = as_data(x, name)
        check_ndim(x, 2, name, "(N, D)")
        check_columns(x, self.x_dim, name, repr(self))
        return x

    def check_data(self, x, name: str = "x") -> None:
        """All checks of a data set, once (the trainer calls this before fitting); x may
        be a NumPy array or a list of rows (every method converts with ``checks.as_data``)."""
        check_data(x, self.x_dim, repr(self), unit_interval=self.loss_kind == "bernoulli", name=name)

    def _check_h(self, h):
        h = as_data(h, "h")
        check_ndim(h, 2, "h", "(N, K)")
        check_columns(h, self.z_dim, "h", f"the decoder of {self!r}")
        return h

    def _target(self, x, target, check: bool):
        """Validate x (and target) and return them on the backend: (x, target), the
        target x itself when None."""
        x = self._check_x(x)
        if target is None:
            return x, x  # the loss checks it for NaN
        target = as_data(target, "target")
        check_same_shape(target, x, "target", "x")
        if check:
            check_finite(x, "x")
        return x, target

    def _prepare(self, x, target, check: bool):
        """Validate x and return (encoder input, target): x~ = corrupt(x) or x, and x."""
        x, target = self._target(x, target, check)
        x_in = x
        if self.corruption is not None:
            x_in = corrupt(x, self.corruption, self.noise_level, self.rng, self.image_shape)  # L3 (5) x~ ~ C(x~ | x)
        return x_in, target

    def _rec_loss(self, out, target, check: bool):
        """(value, dL/dout): squared error on x_hat = out, or Bernoulli NLL on logits = out."""
        if self.loss_kind == "mse":
            return mse(out, target, check=check)
        return self.bernoulli_nll(out, target, check=check)

    def loss(self, x, target=None, check: bool = True):
        """The reconstruction loss, forward only: no gradients and NO corruption (for a
        denoising model this is the error on clean inputs, what a validation set asks).

        Inputs: x: (N, D); target: (N, D) or None for x.
        Returns: (loss, {"rec": loss}), 0-d arrays, as loss_and_grads.
        """
        x, target = self._target(x, target, check)
        value, _ = self._rec_loss(self._decoder_out(self.encode(x)), target, check)
        return value, {"rec": value}

    def encode(self, x):
        raise NotImplementedError

    def _decoder_out(self, h):
        raise NotImplementedError

    def decode(self, h):
        """The reconstruction in data space from a code (any code: L3 (7) decodes random ones).

        Inputs:  h: (N, K).
        Returns: x_hat: (N, D); sigmoid(logits) for loss="bernoulli".
        """
        h = self._check_h(h)
        out = self._decoder_out(h)
        return sigmoid(out) if self.loss_kind == "bernoulli" else out

    def reconstruct(self, x):
        """x_hat = decode(encode(x)), with no corruption; ||x - x_hat||^2 is the anomaly
        score of L3 (6). x: (N, D) -> (N, D)."""
        return self.decode(self.encode(x))


class Autoencoder(AutoencoderBase):
    """Untied deep autoencoder: encoder and decoder are separate MLPs.

    Inputs (constructor):
    - x_dim: D.
    - hidden: hidden sizes of the encoder, e.g. (256, 64); the decoder mirrors them.
    - z_dim: K, the code size (the code layer is linear).
    - activation: hidden activation ("relu", "tanh", "sigmoid", ...).
    - loss: "mse" or "bernoulli" (the decoder then outputs logits).
    - corruption: None, "gaussian", "masking" or "blur" (denoising mode).
    - noise_level: the corruption's level (None: its default); image_shape for "blur".
    - seed: seeds ``self.rng`` (scratchvae.backend.RNG): weights, then corruption noise.
    Parameters: "enc.fc1.W", "enc.fc1.b", ..., "dec.fc1.W", ... (Dense layers).
    """

    def __init__(self, x_dim: int, hidden=(256,), z_dim: int = 2, activation: str = "relu",
                 loss: str = "mse", corruption=None, noise_level=None, image_shape=None, seed: int = 0):
        self._init_common(x_dim, z_dim, loss, corruption, noise_level, image_shape, seed)
        if isinstance(hidden, (str, bytes)) or not isinstance(hidden, Iterable):
            raise ValueError(f"hidden must be a sequence of layer sizes such as (256,) or (256, 64), "
                             f"got {hidden!r}; one hidden layer of 256 units is hidden=(256,)")
        hidden = [check_positive_int(n, "each hidden size") for n in hidden]
        sizes = [self.x_dim, *hidden, self.z_dim]
        self.enc = mlp(sizes, activation, rng=self.rng)  # D -> ... -> K, linear code
        self.dec = mlp(sizes[::-1], activation, rng=self.rng)  # K -> ... -> D, linear output
        self.config = {
            "x_dim": self.x_dim, "hidden": hidden, "z_dim": self.z_dim,
            "activation": activation, "loss": loss, "corruption": corruption,
            "noise_level": self.noise_level,
            "image_shape": None if self.image_shape is None else list(self.image_shape),
            "seed": seed,
        }

    @property
    def params(self) -> dict:
        """Flat dict of the layers' parameter arrays (the same objects: update in place)."""
        return flatten({"enc": self.enc.params, "dec": self.dec.params})

    @property
    def grads(self) -> dict:
        return flatten({"enc": self.enc.grads, "dec": self.dec.grads})

    def encode(self, x):
        """h = enc(x). x: (N, D) -> h: (N, K)."""
        return self.enc.forward(self._check_x(x))

    def _decoder_out(self, h):
        return self.dec.forward(h)

    def loss_and_grads(self, x, target=None, check: bool = True):
        """Reconstruction loss and its gradients (written into ``self.grads``).

        Inputs:
        - x: (N, D) the batch; corrupted first in denoising mode (noise from self.rng).
        - target: (N, D) what to reconstruct; None means x (the clean x when denoising).
        - check: validate values (NaN, [0, 1] for Bernoulli); one reduction each.
        Returns:
        - loss: 0-d array, nats per example (mean over the batch of per-example sums).
        - stats: {"rec": the same 0-d array}.
        """
        x_in, target = self._prepare(x, target, check)
        h = self.enc.forward(x_in)  # h = enc(x~)
        out = self.dec.forward(h)  # x_hat or logits
        value, dout = self._rec_loss(out, target, check)  # L3 (3) L = (1/N) sum_n ||x_n - g(f(x~_n))||^2
        dh = self.dec.backward(dout)  # dL/dh, and dL/d(decoder params)
        self.enc.backward(dh, need_dx=False)  # dL/d(encoder params); x is the data
        return value, {"rec": value}

    def __repr__(self) -> str:
        return (f"Autoencoder(x_dim={self.x_dim}, hidden={self.config['hidden']}, "
                f"z_dim={self.z_dim}, loss={self.loss_kind!r}, corruption={self.corruption!r})")
