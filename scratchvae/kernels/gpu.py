"""Fused kernels for CuPy arrays: cupy.ElementwiseKernel, one CUDA launch per call.

On a GPU each line of the textbook is a kernel launch, and at these sizes a launch
costs more than its arithmetic. Each kernel below is the same formula, in CUDA C, in
one launch. CuPy compiles it on first use (and caches the binary in ~/.cupy/kernel_cache).
``T`` is the arrays' dtype; scalars are cast to it. The CUDA compiler contracts
a * b + c into one fused multiply-add, so these agree with the textbook to rounding.
"""

from __future__ import annotations

import cupy
import numpy

_adam_kernel = cupy.ElementwiseKernel(
    "T g, T b1, T c1, T b2, T c2, T bc1, T bc2, T lr, T eps, T tiny_m, T tiny_v",
    "T p, T m, T v",
    """
    m = b1 * m + c1 * g;              // m <- b1 m + (1 - b1) g
    v = b2 * v + c2 * (g * g);        // v <- b2 v + (1 - b2) g^2
    if (fabs(m) < tiny_m) m = 0;      // subnormal -> 0, as on the CPU
    if (v < tiny_v) v = 0;
    p -= lr * (m / bc1) / (sqrt(v / bc2) + eps);  // p <- p - lr m_hat / (sqrt(v_hat) + eps)
    """,
    "scratchvae_adam",
)


def adam_all(ps, gs, ms, vs, b1: float, b2: float, t: int, lr: float, eps: float) -> None:
    """optim.Adam.update for every parameter, in place: one launch per parameter."""
    d = ps[0].dtype.type
    tiny = numpy.finfo(ps[0].dtype).tiny  # the smallest normal number; v is spared when eps = 0
    scalars = (d(b1), d(1 - b1), d(b2), d(1 - b2), d(1 - b1**t), d(1 - b2**t), d(lr), d(eps),
               d(tiny), d(tiny if eps > 0 else 0.0))
    for p, g, m, v in zip(ps, gs, ms, vs):
        _adam_kernel(g, *scalars, p, m, v)


_bernoulli_kernel = cupy.ElementwiseKernel(
    "T l, T x, T n",
    "T per_entry, T dl",
    """
    T e = exp(-fabs(l));                               // e = exp(-|l|), in (0, 1]
    per_entry = (fmax(l, (T)0) + log1p(e)) - x * l;    // softplus(l) - x l
    dl = ((l >= (T)0 ? (T)1 : e) / ((T)1 + e) - x) / n; // (sigmoid(l) - x) / N
    """,
    "scratchvae_bernoulli_nll",
)


def bernoulli_nll(logits, x):
    """losses.bernoulli_nll without its checks, in one launch (and a sum)."""
    n = logits.shape[0]
    per_entry, dl = _bernoulli_kernel(logits, x, logits.dtype.type(n))
    return cupy.sum(per_entry) / n, dl


_relu_backward_kernel = cupy.ElementwiseKernel(
    "T y, T dy",
    "T dx",
    "dx = y > (T)0 ? dy : (T)0;  // dL/dx = dL/dy where x > 0, else 0",
    "scratchvae_relu_backward",
)


def relu_backward(y, dy):
    """layers.ReLU.backward in one launch."""
    return _relu_backward_kernel(y, dy)
