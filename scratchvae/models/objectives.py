"""Objectives built from per-sample log-weights: the slides' Monte-Carlo ELBO and the
importance-weighted bound (IWAE) of Burda, Grosse and Salakhutdinov (2016).

For one example x and L samples z_l = mu + sigma * eps_l from q_phi(z | x) (the k
importance samples of the IWAE: k = L = n_samples), every objective here is a function
of the log-weights

    log w_l = log p_theta(x | z_l) + log p(z_l) - log q_phi(z_l | x)             L7 (5)

(with a KL weight beta: log p(x | z_l) - beta [log q(z_l | x) - log p(z_l)]):

    "elbo_mc"   (1/L) sum_l log w_l, the slides' estimator: no closed-form KL   L5 (5b), L7 (5)
    "iwae"      log (1/L) sum_l w_l, the bound L_k of L5 (10) with k = L         L7 (5)

Both have one gradient rule. With the weights a_l held fixed,

    d objective = sum_l a_l d log w_l,   a_l = 1/L ("elbo_mc"),  a_l = w_l / sum_j w_j ("iwae")   L7 (6)

so the IWAE gradient is the Monte-Carlo ELBO's gradient with each sample's 1/L replaced
by its normalized importance weight. And with eps held fixed (z = g_phi(eps, x), L5 (7b)),

    log q_phi(z | x) = log N(eps; 0, I) - sum_j logvar_j / 2                    L7 (7)

(the change of variables z = mu + sigma * eps), so -log q adds +1/2 to d log w / d logvar
and nothing to d log w / d mu; log p(z) adds -z to d log w / dz, which then flows back
through the reparameterization. The decoder's part, d log p(x | z) / d out, is the
reconstruction loss's own gradient, reweighted per sample.

The closed-form-KL ELBO, "elbo", stays in ``VAE.loss_and_grads`` (L5 (5)).
"""

from __future__ import annotations

import math

from array_api_compat import array_namespace

from ..arrays import logsumexp
from ..densities import gaussian_log_prob, std_normal_log_prob

OBJECTIVES = ("elbo", "elbo_mc", "iwae")


def check_objective(objective) -> str:
    """Return ``objective`` if it is one of OBJECTIVES; else a ValueError saying which exist."""
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}: choose 'elbo' (closed-form KL, the default), "
                         "'elbo_mc' (the Monte-Carlo ELBO, log p(x, z) - log q(z | x) per sample) or "
                         "'iwae' (the importance-weighted bound; n_samples is its K)")
    return objective


def weighted(objective: str, log_px_z, z, mu, logvar, beta: float = 1.0):
    """The objective "elbo_mc" or "iwae" on one batch, and what its backward needs.

    Inputs:
    - objective: "elbo_mc" or "iwae".
    - log_px_z: (L, N) log p(x_n | z_ln), the decoder's log-likelihood of each sample.
    - z: (L, N, Q) the samples; mu, logvar: (N, Q) the encoder's outputs.
    - beta: weight of log q - log p(z) inside each log-weight (1: the true bound).
    Returns:
    - loss: 0-d, the negative objective, a mean over the batch (nats per example).
    - stats: 0-d arrays "rec" (-mean log p(x | z)), "kl" (Monte-Carlo KL, the mean of
      log q - log p(z)), "neg_elbo" (rec + kl); and "neg_iwae" (-L_K) for "iwae".
    - a: (L, N) the sample weights of L7 (6) (they sum to 1 over l).
    - dz: (L, N, Q) d loss / dz through log p(z) alone (the decoder's part comes apart).
    - dlogvar: (N, Q) d loss / dlogvar through -log q(z | x) at fixed eps, L7 (7).
    """
    xp = array_namespace(log_px_z, z)
    L, N = log_px_z.shape
    log_pz = std_normal_log_prob(z)  # (L, N)
    log_qz = gaussian_log_prob(z, mu, logvar)  # (L, N), mu broadcasts over l
    log_w = log_px_z - beta * (log_qz - log_pz)  # L7 (5), beta = 1: log p(x, z) - log q(z | x)
    rec = -xp.mean(log_px_z)
    kl = xp.mean(log_qz - log_pz)  # Monte Carlo, no closed form
    stats = {"rec": rec, "kl": kl, "neg_elbo": rec + kl}
    if objective == "elbo_mc":
        loss = -xp.mean(log_w)  # L5 (5b), L7 (5): -(1/N) sum_n (1/L) sum_l log w_ln
        a = xp.full((L, N), 1.0 / L, dtype=log_w.dtype, device=log_w.device)
    else:
        lse = logsumexp(log_w, axis=0, keepdims=True)  # (1, N), log sum_l w_ln
        loss = -xp.mean(lse - math.log(L))  # L7 (5) and L5 (10): -(1/N) sum_n log (1/L) sum_l w_ln
        stats["neg_iwae"] = loss if beta == 1.0 else -xp.mean(logsumexp(log_px_z + log_pz - log_qz, axis=0)
                                                              - math.log(L))
        a = xp.exp(log_w - lse)  # L7 (6) normalized importance weights w_l / sum_j w_j
    # d loss / d log w_ln = -a_ln / N; then log w's prior and entropy terms, L7 (7):
    dz = (beta / N) * a[..., None] * z  # -a/N * beta * d log p(z)/dz, with d log p(z)/dz = -z
    dlogvar = (-0.5 * beta / N) * xp.sum(a, axis=0)[..., None] * xp.ones_like(mu)  # -a/N * beta/2
    return loss, stats, a, dz, dlogvar
