"""Fused kernels for NumPy arrays, compiled by numba (imported only when numba is).

Each kernel is a plain loop over the entries, with the formula of its reference on
one or two lines per entry. Two compiler settings matter:

- ``error_model="numpy"``: a division by zero gives inf as in NumPy instead of raising,
  so the loop has no branch and the compiler can vectorize it (SIMD).
- serial, not ``parallel=True``: NumPy's BLAS keeps its own threads busy-waiting between
  matrix products, and a second thread pool would fight them (benchmarks/RESULTS.md).

Scalars are cast to the arrays' dtype first, so float32 arrays are computed in float32
(a Python float would make numba compute the whole loop in float64), as NumPy does
when the textbook multiplies a float32 array by a Python float.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from array_api_compat import array_namespace

_jit = numba.njit(cache=True, nogil=True, error_model="numpy")


@_jit
def _adam_loop(p, g, m, v, b1, c1, b2, c2, bc1, bc2, lr, eps, tiny_m, tiny_v):
    zero = p.dtype.type(0.0)
    for i in range(p.size):
        gi = g[i]
        mi = b1 * m[i] + c1 * gi  # m <- b1 m + (1 - b1) g
        vi = b2 * v[i] + c2 * (gi * gi)  # v <- b2 v + (1 - b2) g^2
        mi = zero if abs(mi) < tiny_m else mi  # subnormal -> 0 (see kernels.twins); NaN stays
        vi = zero if vi < tiny_v else vi
        m[i] = mi
        v[i] = vi
        p[i] -= lr * (mi / bc1) / (math.sqrt(vi / bc2) + eps)  # p <- p - lr m_hat / (sqrt(v_hat) + eps)


@_jit
def _adam_all_loop(ps, gs, ms, vs, b1, c1, b2, c2, bc1, bc2, lr, eps, tiny_m, tiny_v):
    for k in range(len(ps)):  # one parameter after another, in one compiled call
        _adam_loop(ps[k], gs[k], ms[k], vs[k], b1, c1, b2, c2, bc1, bc2, lr, eps, tiny_m, tiny_v)


def adam_all(ps, gs, ms, vs, b1: float, b2: float, t: int, lr: float, eps: float) -> None:
    """optim.Adam.update for every parameter, in place, in one call from Python: lists
    with an entry per parameter, all of one dtype. The scalars are the textbook's, cast
    to that dtype, and the order of operations is the textbook's, so the numbers are
    too. Compiled once for each number of parameters (the arrays travel as a tuple of
    that length), then cached on disk."""
    def flat(arrays):
        return tuple(x.reshape(-1) for x in arrays)

    d = ps[0].dtype.type
    tiny = np.finfo(d).tiny  # the smallest normal number; v is spared when eps = 0
    _adam_all_loop(flat(ps), flat(gs), flat(ms), flat(vs), d(b1), d(1 - b1), d(b2), d(1 - b2),
                   d(1 - b1**t), d(1 - b2**t), d(lr), d(eps), d(tiny), d(tiny if eps > 0 else 0.0))


@_jit
def _neg_abs(l, out):
    for i in range(l.size):
        out[i] = -abs(l[i])


@_jit
def _bernoulli_rest(l, x, e, per_entry, dl, n):
    """Given e = exp(-|l|) and per_entry = log(1 + e), finish both in one pass."""
    zero, one = l.dtype.type(0.0), l.dtype.type(1.0)
    for i in range(l.size):
        li, xi, ei = l[i], x[i], e[i]
        per_entry[i] = (max(li, zero) + per_entry[i]) - xi * li  # softplus(l) - x l
        s = (one if li >= zero else ei) / (one + ei)  # sigmoid(l) = exp(min(l, 0)) / (1 + e)
        dl[i] = (s - xi) / n  # d/dl = (sigmoid(l) - x) / N


def bernoulli_nll(logits, x):
    """losses.bernoulli_nll without its checks, in five passes instead of about fifteen.

    The two transcendental functions stay NumPy's (its exp and log1p use SIMD; numba's
    are one number at a time); -|l| before them and
    everything after them are compiled loops, then one sum. The order of operations is
    the textbook's, so the numbers are the same.
    """
    n = logits.shape[0]
    l, xf = logits.reshape(-1), x.reshape(-1)
    e = np.empty_like(l)
    _neg_abs(l, e)
    np.exp(e, out=e)  # e = exp(-|l|), in (0, 1]
    per_entry = np.log1p(e)  # log(1 + e)
    dl = np.empty_like(l)
    _bernoulli_rest(l, xf, e, per_entry, dl, l.dtype.type(n))
    return array_namespace(logits).sum(per_entry.reshape(logits.shape)) / n, dl.reshape(logits.shape)


@_jit
def _relu_backward_loop(y, dy, dx):
    zero = y.dtype.type(0.0)
    for i in range(y.size):
        dx[i] = dy[i] if y[i] > zero else zero  # dL/dx = dL/dy where x > 0, else 0


def relu_backward(y, dy):
    """layers.ReLU.backward in one compiled pass."""
    dx = np.empty_like(dy)
    _relu_backward_loop(y.reshape(-1), dy.reshape(-1), dx.reshape(-1))
    return dx
