"""Posterior collapse, measured: the KL per latent dimension and the active units.

The KL of L5 (4) is a sum over the Q latent dimensions, so each dimension's share is
that KL of its own column. A dimension whose posterior q(z_j | x) is the prior for
every x costs 0 nats and tells the decoder nothing: it has collapsed.

    KL = sum_j KL_j,   KL_j = E_x[ (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2) / 2 ]    L7 (3)

Burda, Grosse and Salakhutdinov (2016) call a unit active when its posterior mean moves
with the data:

    A_j = Cov_x( E_{q(z | x)}[z_j] ) = Var_x( mu_j(x) ),   active when A_j > 0.01    L7 (4)

Both read only the encoder, ``model.encode(x, y)`` (y for a conditional VAE), so they
work for any model with one that returns (mu, logvar).
"""

from __future__ import annotations

from array_api_compat import array_namespace

from ..arrays import batch_slices
from ..checks import as_data, check_positive_int
from ..losses import kl_std_normal


def _posterior(model, x, y, batch_size: int):
    """mu, logvar (N, Q) of q(z | x) over the whole data set, in batches."""
    x = as_data(x)
    model.check_data(x) if y is None else model.check_data(x, y=y)
    batch_size = check_positive_int(batch_size, "batch_size")
    mus, logvars = [], []
    for rows in batch_slices(x.shape[0], batch_size):
        mu, logvar = model.encode(x[rows, ...]) if y is None else model.encode(x[rows, ...], y[rows])
        mus.append(mu)
        logvars.append(logvar)
    xp = array_namespace(mus[0])
    return xp.concat(mus, axis=0), xp.concat(logvars, axis=0)


def kl_per_dimension(model, x, y=None, batch_size: int = 1000):
    """KL_j of L7 (3): the mean over the examples of x of each latent dimension's KL to
    the prior, in nats. Inputs: x (N, D) data (y (N,) labels for a conditional VAE).
    Returns: (Q,) array on the backend; its sum is the closed-form KL of the ELBO."""
    mu, logvar = _posterior(model, x, y, batch_size)
    xp = array_namespace(mu)
    # L7 (3): L5 (4) sums over dimensions, so column j alone gives KL_j
    return xp.stack([kl_std_normal(mu[:, j:j + 1], logvar[:, j:j + 1], check=False)[0]
                     for j in range(mu.shape[1])])


def active_units(model, x, y=None, threshold: float = 0.01, batch_size: int = 1000):
    """The active units of L7 (4): A_j = Var_x(mu_j(x)), the variance over the examples
    of x of each posterior mean, and how many exceed ``threshold`` (Burda et al.: 0.01).
    Inputs: x (N, D) data (y (N,) labels for a conditional VAE).
    Returns: (count, activity): an int and the (Q,) array A_j on the backend."""
    mu, _ = _posterior(model, x, y, batch_size)
    xp = array_namespace(mu)
    activity = xp.var(mu, axis=0)  # L7 (4) Cov_x(E_q[z_j]) = Var_x(mu_j(x))
    return int(xp.sum(xp.astype(activity > threshold, xp.int64))), activity
