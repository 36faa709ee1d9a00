"""The reparameterization trick, forward and backward.

A sample z ~ N(mu, diag sigma^2) is written as a deterministic function of the
parameters and independent noise,

    sigma = exp(logvar / 2)        (logvar is log sigma^2, everywhere in scratchvae)
    z     = mu + sigma * eps,      eps ~ N(0, I),

so that E[z] = mu and Var[z] = sigma^2 = exp(logvar), L5 (9b), and the gradient of a
loss L(z) flows back to mu and logvar (the pathwise gradient of L5 (7)):

    dL/dmu     = dL/dz
    dL/dlogvar = dL/dz * eps * sigma / 2      (d sigma / d logvar = sigma / 2)

These forward and backward rules are L5 (9a).

``eps`` is passed in, never drawn here, so a test (or a lesson) can hold it fixed.
It may carry a leading sample axis: eps (L, N, K) with mu, logvar (N, K) gives L
samples per example, and the backward sums the L contributions.
"""

from __future__ import annotations

from array_api_compat import array_namespace

from .arrays import unbroadcast


def reparam_forward(mu, logvar, eps):
    """z = mu + exp(logvar / 2) * eps, L5 (9a): mean mu, variance exp(logvar), L5 (9b).

    Inputs:
    - mu, logvar: (N, K).
    - eps: (N, K) or (L, N, K), standard normal noise.
    Returns:
    - z: eps's shape.
    - cache: (sigma, eps, mu's shape) for reparam_backward.
    """
    if mu.shape != logvar.shape or eps.shape[-mu.ndim:] != mu.shape:
        raise ValueError(
            f"reparam_forward needs mu and logvar of one shape (N, K) and eps of shape "
            f"(N, K) or (L, N, K); got mu {mu.shape}, logvar {logvar.shape}, eps {eps.shape}"
        )
    xp = array_namespace(mu, logvar, eps)
    # L5 (9b): sigma = exp(logvar / 2), NOT exp(logvar), so that Var[z] = exp(logvar)
    sigma = xp.exp(0.5 * logvar)
    z = mu + sigma * eps  # L5 (9a)
    return z, (sigma, eps, mu.shape)


def reparam_backward(dz, cache):
    """Gradients of the loss with respect to mu and logvar, L5 (9a).

    Inputs:
    - dz: dL/dz, the shape of z.
    - cache: from reparam_forward.
    Returns:
    - dmu: (N, K), dL/dz summed over any sample axis.
    - dlogvar: (N, K), dL/dz * eps * sigma / 2 summed likewise.
    """
    sigma, eps, shape = cache
    dmu = unbroadcast(dz, shape)  # L5 (9a): dz/dmu = 1
    dlogvar = unbroadcast(dz * eps * (0.5 * sigma), shape)  # L5 (9a): dz/dlogvar = eps sigma / 2
    return dmu, dlogvar
