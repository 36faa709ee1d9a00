"""The tied-weight autoencoder: one matrix W encodes, and its transpose decodes.

    a     = x W + b_enc          (N, K)   W: (D, K)
    h     = g(a)                 (N, K)   g: linear, tanh, sigmoid, relu, ...
    x_hat = h W^T + b_dec        (N, D)
    L     = (1/N) sum_n ||x_n - x_hat_n||^2            (loss="mse")

With bias=False, centred data and g linear this is min_W sum_n ||x_n - W W^T x_n||^2
(in column form), whose minimisers span the top-K principal subspace: Baldi and Hornik
(1989), "Neural networks and principal component analysis". Gradient descent from
random weights finds it; ``tests/test_autoencoder.py`` checks the principal angles.

W is used twice, so its gradient is the sum of two terms, one per use:

    dL/dW = x^T (dL/dh * g'(a))     encoder use   (a = x W)
          + (dL/dx_hat)^T h         decoder use   (x_hat = h W^T)
"""

from __future__ import annotations

import math

from array_api_compat import array_namespace

from ..layers import activation as make_activation
from .autoencoder import AutoencoderBase


class TiedAutoencoder(AutoencoderBase):
    """Tied-weight autoencoder x_hat = g(x W + b_enc) W^T + b_dec.

    Inputs (constructor):
    - x_dim: D.
    - z_dim: K, the code size.
    - activation: g, "linear" (PCA), "tanh", "sigmoid", "relu", ...
    - bias: learn b_enc (K,) and b_dec (D,); False gives the pure PCA objective.
    - loss: "mse" or "bernoulli" (then h W^T + b_dec are the logits).
    - corruption, noise_level, image_shape: denoising mode (see models.corrupt).
    - seed: seeds ``self.rng``: W ~ Glorot uniform, then corruption noise.
    Parameters: "W": (D, K), and with bias "b_enc": (K,), "b_dec": (D,).
    """

    def __init__(self, x_dim: int, z_dim: int, activation: str = "linear", bias: bool = True,
                 loss: str = "mse", corruption=None, noise_level=None, image_shape=None, seed: int = 0):
        self._init_common(x_dim, z_dim, loss, corruption, noise_level, image_shape, seed)
        self.g = make_activation(activation)  # forward caches what g' needs
        self.bias = bool(bias)
        D, K = self.x_dim, self.z_dim
        limit = math.sqrt(6.0 / (D + K))  # Glorot uniform
        W = self.rng.uniform((D, K), -limit, limit)
        xp = array_namespace(W)
        self.params = {"W": W}
        if self.bias:
            self.params["b_enc"] = xp.zeros((K,), dtype=W.dtype, device=W.device)
            self.params["b_dec"] = xp.zeros((D,), dtype=W.dtype, device=W.device)
        self.grads = {k: xp.zeros_like(v) for k, v in self.params.items()}
        self.config = {
            "x_dim": D, "z_dim": K, "activation": activation, "bias": self.bias,
            "loss": loss, "corruption": corruption, "noise_level": self.noise_level,
            "image_shape": None if self.image_shape is None else list(self.image_shape),
            "seed": seed,
        }

    def _encoder_out(self, x):
        a = x @ self.params["W"]  # a = x W                  (N, K)
        if self.bias:
            a = a + self.params["b_enc"]  # + b_enc
        return self.g.forward(a)  # h = g(a)

    def encode(self, x):
        """h = g(x W + b_enc). x: (N, D) -> h: (N, K)."""
        return self._encoder_out(self._check_x(x))

    def _decoder_out(self, h):
        out = h @ self.params["W"].T  # x_hat = h W^T          (N, D)
        if self.bias:
            out = out + self.params["b_dec"]  # + b_dec
        return out

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
        xp = array_namespace(x_in)
        W = self.params["W"]
        h = self._encoder_out(x_in)  # L3 (1) h = g(a), a = x~ W + b_enc    (N, K)
        out = self._decoder_out(h)  # L3 (1) x_hat = h W^T + b_dec    (N, D)
        value, dout = self._rec_loss(out, target, check)  # dout = dL/dx_hat
        # L3 (1) L = (1/N) sum_n ||x_n - x_hat_n||^2 (loss="mse"); linear g, no bias, centred x: L2 (7)
        dh = dout @ W  # dL/dh = dL/dx_hat W                     (N, K)
        da = self.g.backward(dh)  # dL/da = dL/dh * g'(a)       (N, K)
        # L3 (2) W is used twice: its gradient is the sum of its encoder and its decoder use
        self.grads["W"] = x_in.T @ da + dout.T @ h  # x^T (dL/dh * g'(a)) + (dL/dx_hat)^T h  (D, K)
        if self.bias:
            self.grads["b_enc"] = xp.sum(da, axis=0)  # dL/db_enc = sum over rows of dL/da
            self.grads["b_dec"] = xp.sum(dout, axis=0)  # dL/db_dec = sum over rows of dL/dx_hat
        return value, {"rec": value}

    def __repr__(self) -> str:
        return (f"TiedAutoencoder(x_dim={self.x_dim}, z_dim={self.z_dim}, "
                f"activation={self.config['activation']!r}, bias={self.bias}, loss={self.loss_kind!r})")
