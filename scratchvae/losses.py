"""Losses: each returns its value and its gradients, ready for backward.

One batch convention everywhere: the loss is the MEAN OVER THE BATCH of the SUM OVER
DIMENSIONS of the per-entry term, in nats per example. So for x: (N, D),

    loss = (1/N) sum_n sum_d l(x_nd, ...),    d loss / d a_nd = (1/N) dl/da_nd.

With ``check=True`` (the default) inputs are validated first: shapes, NaN/inf, and for
the Bernoulli loss x in [0, 1]. Each check is one reduction; a training loop that
validated its data once may pass ``check=False``.
"""

from __future__ import annotations


from array_api_compat import array_namespace

from .arrays import as_array_like, unbroadcast
from .checks import check_finite, check_same_shape, check_unit_interval
from .densities import LOG_2PI
from .layers import sigmoid, softplus


def _batch_size(x) -> int:
    if x.ndim == 0 or x.shape[0] == 0:
        raise ValueError(f"a loss needs a batch of at least one example, got shape {x.shape}")
    return x.shape[0]


def _check_broadcasts(logvar, shape) -> None:
    """Raise ValueError unless logvar broadcasts to ``shape`` without growing it."""
    s = logvar.shape
    if len(s) > len(shape) or any(a not in (1, b) for a, b in zip(s[::-1], shape[::-1])):
        raise ValueError(
            f"logvar of shape {s} does not broadcast to x's shape {shape}; pass logvar "
            f"of shape {shape} (per entry), {tuple(shape[-1:])} (per dimension) "
            "or () (one shared variance)"
        )


def bernoulli_nll(logits, x, check: bool = True):
    """Negative log-likelihood of x under Bernoulli(sigmoid(logits)), from logits.

    Per entry:  -[x log p + (1 - x) log(1 - p)],  p = sigmoid(l)
              = softplus(l) - x l                      (stable for any l; no clipping)
    d/dl:       sigmoid(l) - x

    Inputs:
    - logits: (N, D) decoder output, any real values.
    - x: (N, D) targets in [0, 1] (grey values allowed: the "continuous Bernoulli"
      normalizer is not included, as in most VAE code).
    Returns:
    - value: 0-d array, mean over the batch of per-example sums (nats per example).
    - dlogits: (N, D).
    """
    if check:
        check_same_shape(logits, x, "logits", "x")
    N = _batch_size(logits)  # before the range check: the min of an empty array fails
    if check:
        check_finite(x, "x")
        check_finite(logits, "logits")
        check_unit_interval(x, "x")
    xp = array_namespace(logits, x)
    value = xp.sum(softplus(logits) - x * logits) / N  # -log p(x | z) = softplus(l) - x l
    dlogits = (sigmoid(logits) - x) / N  # d/dl = sigmoid(l) - x
    return value, dlogits


def gaussian_nll(x, mu, logvar, check: bool = True):
    """Negative log-density of x under N(mu, diag exp(logvar)), the full density.

    Per entry:  0.5 [log(2 pi) + logvar + (x - mu)^2 exp(-logvar)]
    d/dmu:      -(x - mu) exp(-logvar)
    d/dlogvar:  0.5 [1 - (x - mu)^2 exp(-logvar)]

    Inputs:
    - x: (N, D) data.
    - mu: (N, D) means.
    - logvar: log sigma^2, (N, D) or anything that broadcasts to it, e.g. (D,) for a
      learned per-dimension variance or () for a fixed one; its gradient has its shape.
    Returns:
    - value: 0-d array (nats per example), dmu: (N, D), dlogvar: logvar's shape.
    """
    logvar = as_array_like(logvar, x)  # a Python float: a fixed variance, as a 0-d array
    if check:
        check_same_shape(mu, x, "mu", "x")
        _check_broadcasts(logvar, x.shape)
    N = _batch_size(x)
    if check:
        for a, name in ((x, "x"), (mu, "mu"), (logvar, "logvar")):
            check_finite(a, name)
    xp = array_namespace(x, mu, logvar)
    inv_var = xp.exp(-logvar)
    diff = x - mu
    sq = diff * diff * inv_var  # (x - mu)^2 / sigma^2
    value = 0.5 * xp.sum(LOG_2PI + logvar + sq) / N
    dmu = -diff * inv_var / N
    dlogvar = unbroadcast(0.5 * (1.0 - sq) / N, logvar.shape)
    return value, dmu, dlogvar


def kl_std_normal(mu, logvar, check: bool = True):
    """KL( N(mu, diag exp(logvar)) || N(0, I) ), analytic.

    Per latent dimension:  0.5 [mu^2 + exp(logvar) - 1 - logvar]    L5 (4); 0 at mu = 0, logvar = 0
    d/dmu:                 mu
    d/dlogvar:             0.5 [exp(logvar) - 1]

    Inputs:  mu, logvar: (N, K).
    Returns: value (0-d, nats per example), dmu (N, K), dlogvar (N, K).
    """
    if check:
        check_same_shape(mu, logvar, "mu", "logvar")
        check_finite(mu, "mu")
        check_finite(logvar, "logvar")
    xp = array_namespace(mu, logvar)
    N = _batch_size(mu)
    var = xp.exp(logvar)  # sigma^2 = exp(logvar)
    value = 0.5 * xp.sum(mu * mu + var - 1.0 - logvar) / N  # L5 (4), the mean over the batch
    dmu = mu / N
    dlogvar = 0.5 * (var - 1.0) / N
    return value, dmu, dlogvar


def mse(x_hat, x, check: bool = True):
    """Squared reconstruction error, the autoencoder objective.

    Per example: ||x - x_hat||^2 = sum_d (x_hat_d - x_d)^2   (a sum over dimensions,
    then the mean over the batch, like every loss here; NOT the mean over entries).
    d/dx_hat:    2 (x_hat - x)

    Inputs:  x_hat, x: (N, D).
    Returns: value (0-d), dx_hat (N, D).
    """
    if check:
        check_same_shape(x_hat, x, "x_hat", "x")
        check_finite(x, "x")
        check_finite(x_hat, "x_hat")
    xp = array_namespace(x_hat, x)
    N = _batch_size(x)
    diff = x_hat - x
    value = xp.sum(diff * diff) / N
    return value, 2.0 * diff / N
