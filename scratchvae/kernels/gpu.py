"""Fused kernels for CuPy arrays: cupy.ElementwiseKernel, one CUDA launch per call.

On a GPU the reference's twelve operations per parameter are twelve kernel launches,
and at these sizes a launch costs more than its arithmetic. The kernel below is the
same formula, in CUDA C, in one launch. CuPy compiles it on first use (and caches
the binary in ~/.cupy/kernel_cache). ``T`` is the arrays' dtype; scalars are cast to it.
"""

from __future__ import annotations

import cupy
import numpy

_adam_kernel = cupy.ElementwiseKernel(
    "T g, T b1, T c1, T b2, T c2, T a, T eps_t, T tiny_m, T tiny_v",
    "T p, T m, T v",
    """
    m = b1 * m + c1 * g;              // m <- b1 m + (1 - b1) g
    v = b2 * v + c2 * (g * g);        // v <- b2 v + (1 - b2) g^2
    if (fabs(m) < tiny_m) m = 0;      // subnormal -> 0, as on the CPU
    if (v < tiny_v) v = 0;            //   (arrays.flush_subnormals)
    p -= (m / (sqrt(v) + eps_t)) * a; // p <- p - a m / (sqrt(v) + eps_t)
    """,
    "scratchvae_adam",
)


def adam(p, g, m, v, b1: float, b2: float, a: float, eps_t: float) -> None:
    """Adam's update in place, one launch (see optim.Adam for the formula and a, eps_t)."""
    t = p.dtype.type
    tiny = numpy.finfo(p.dtype).tiny  # the smallest normal number; v only when eps_t > 0 (optim.Adam)
    _adam_kernel(g, t(b1), t(1.0 - b1), t(b2), t(1.0 - b2), t(a), t(eps_t), t(tiny),
                 t(tiny if eps_t > 0 else 0.0), p, m, v)


_bernoulli_kernel = cupy.ElementwiseKernel(
    "T l, T x, T n",
    "T per_entry, T dl",
    """
    T e = exp(-fabs(l));                               // e = exp(-|l|), in (0, 1]
    per_entry = (fmax(l, (T)0) - x * l) + log1p(e);    // softplus(l) - x l
    dl = ((l >= (T)0 ? (T)1 : e) / ((T)1 + e) - x) / n; // (sigmoid(l) - x) / N
    """,
    "scratchvae_bernoulli_nll",
)


def bernoulli_nll_rows(logits, x, n: int):
    """losses._bernoulli_nll_rows in one launch (and a sum) instead of about fifteen."""
    per_entry, dl = _bernoulli_kernel(logits, x, logits.dtype.type(n))
    return cupy.sum(per_entry) / n, dl


_relu_backward_kernel = cupy.ElementwiseKernel(
    "T y, T dy",
    "T dx",
    "dx = (y > (T)0 ? (T)1 : (T)0) * dy;  // dL/dx = [y > 0] dL/dy",
    "scratchvae_relu_backward",
)


def relu_backward(y, dy):
    """layers.ReLU.backward in one launch instead of three."""
    return _relu_backward_kernel(y, dy)


_kl_kernel = cupy.ElementwiseKernel(
    "T mu, T logvar, T n",
    "T per_entry, T dmu, T dlogvar",
    """
    T var = exp(logvar);                         // sigma^2
    per_entry = mu * mu + var - (T)1 - logvar;   // 2 KL per latent dimension
    dmu = mu / n;                                // d KL / d mu
    dlogvar = (T)0.5 * (var - (T)1) / n;         // d KL / d logvar
    """,
    "scratchvae_kl_std_normal",
)


def kl_std_normal(mu, logvar):
    """losses.kl_std_normal in one launch (and a sum) instead of about twelve."""
    n = mu.shape[0]
    per_entry, dmu, dlogvar = _kl_kernel(mu, logvar, mu.dtype.type(n))
    return 0.5 * cupy.sum(per_entry) / n, dmu, dlogvar
