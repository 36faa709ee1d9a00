"""Log-densities per example, summed over the last axis: the quantities that the VAE's
importance weights w_i = p(x, z_i) / q(z_i | x) of L5 (10), the score-function estimator
and the lessons evaluate.

These are values only (no gradients). The losses in ``scratchvae.losses`` are their
batch means, negated, with gradients attached.

All functions take arrays whose last axis is the dimension axis and return one value per
leading index: x (..., D) -> (...,).
"""

from __future__ import annotations

import math

from array_api_compat import array_namespace

from .arrays import as_array_like
from .layers import softplus

LOG_2PI = math.log(2.0 * math.pi)


def bernoulli_log_prob(logits, x):
    """log p(x | logits) = sum_d [x_d l_d - softplus(l_d)]   (x in [0, 1]).

    The Bernoulli decoder's log p_theta(x | z) of L5 (1), in the form of L5 (5), with
    l = f_theta(z) the decoder's logits.

    Inputs: logits, x: (..., D). Returns: (...,).
    """
    xp = array_namespace(logits, x)
    return -xp.sum(softplus(logits) - x * logits, axis=-1)


def gaussian_log_prob(x, mu, logvar):
    """log N(x | mu, diag exp(logvar)) = -0.5 sum_d [log 2 pi + logvar_d + (x_d - mu_d)^2 / exp(logvar_d)].

    A log-DENSITY, so it depends on the units of x: measured as y = c x, the same
    model gives log p_Y(y) = log p_X(x) - D log c, L5 (11): why lesson 5 does not compare
    a Gaussian decoder's log-likelihood with a Bernoulli one's.

    Inputs: x, mu: (..., D); logvar broadcasting to them (an array or a Python float).
    Returns: (...,).
    """
    logvar = as_array_like(logvar, x)
    xp = array_namespace(x, mu, logvar)
    diff = x - mu
    D = x.shape[-1]
    logvar = xp.broadcast_to(logvar, diff.shape)
    return -0.5 * (D * LOG_2PI + xp.sum(logvar + diff * diff * xp.exp(-logvar), axis=-1))


def std_normal_log_prob(z):
    """log N(z | 0, I) = -0.5 sum_k [log 2 pi + z_k^2], the prior log p(z) of L5 (1).
    Inputs: z (..., K). Returns (...,)."""
    xp = array_namespace(z)
    return -0.5 * (z.shape[-1] * LOG_2PI + xp.sum(z * z, axis=-1))
