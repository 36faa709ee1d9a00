"""Fused kernels for NumPy arrays, compiled by numba (imported only when numba is).

Each kernel is a plain loop over the entries, with the formula of its reference on
one or two lines per entry. Two compiler settings matter:

- ``error_model="numpy"``: a division by zero gives inf as in NumPy instead of raising,
  so the loop has no branch and the compiler vectorizes it (SIMD): about 4x faster.
- serial, not ``parallel=True``: NumPy's BLAS keeps its own threads busy-waiting between
  matrix products, and a second thread pool fighting them made a training step 13x
  slower; with OpenBLAS's and OpenMP's idle threads told to sleep, still 1.5x slower at
  batch 128 (benchmarks/threads_experiment.py). One core running a vectorized loop is
  faster than two cores taking turns.

Scalars are cast to the arrays' dtype first, so float32 arrays are computed in float32
(a Python float would make numba compute the whole loop in float64).
"""

from __future__ import annotations

import math

import numba
import numpy as np
from array_api_compat import array_namespace

_jit = numba.njit(cache=True, nogil=True, error_model="numpy")


@_jit
def _adam_loop(p, g, m, v, b1, c1, b2, c2, a, eps_t, tiny_m, tiny_v):
    zero = p.dtype.type(0.0)
    for i in range(p.size):
        gi = g[i]
        mi = b1 * m[i] + c1 * gi  # m <- b1 m + (1 - b1) g
        vi = b2 * v[i] + c2 * (gi * gi)  # v <- b2 v + (1 - b2) g^2
        mi = zero if abs(mi) < tiny_m else mi  # subnormal -> 0 (arrays.flush_subnormals); NaN stays
        vi = zero if vi < tiny_v else vi
        m[i] = mi
        v[i] = vi
        p[i] -= (mi / (math.sqrt(vi) + eps_t)) * a  # p <- p - a m / (sqrt(v) + eps_t)


@_jit
def _adam_all_loop(ps, gs, ms, vs, b1, c1, b2, c2, a, eps_t, tiny_m, tiny_v):
    for k in range(len(ps)):  # one parameter after another, in one compiled call
        _adam_loop(ps[k], gs[k], ms[k], vs[k], b1, c1, b2, c2, a, eps_t, tiny_m, tiny_v)


def _adam_scalars(t, b1, b2, a, eps_t) -> tuple:
    """b1, 1 - b1, b2, 1 - b2, a, eps_t and the two flush thresholds, in dtype t."""
    tiny = np.finfo(t).tiny  # the smallest normal number
    return t(b1), t(1.0 - b1), t(b2), t(1.0 - b2), t(a), t(eps_t), t(tiny), t(tiny if eps_t > 0 else 0.0)


def adam(p, g, m, v, b1: float, b2: float, a: float, eps_t: float) -> None:
    """Adam's update in place, one pass (see optim.Adam for the formula, a, eps_t, and
    why v is flushed only when eps_t > 0)."""
    _adam_loop(p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1),
               *_adam_scalars(p.dtype.type, b1, b2, a, eps_t))


def adam_all(ps, gs, ms, vs, b1: float, b2: float, a: float, eps_t: float) -> None:
    """``adam`` for every parameter at once: lists with an entry per parameter.

    One call from Python instead of one per parameter. Compiled once for each number
    of parameters (the arrays travel as a tuple of that length), then cached on disk.
    """
    def flat(arrays):
        return tuple(x.reshape(-1) for x in arrays)

    _adam_all_loop(flat(ps), flat(gs), flat(ms), flat(vs), *_adam_scalars(ps[0].dtype.type, b1, b2, a, eps_t))


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
        per_entry[i] = (max(li, zero) - xi * li) + per_entry[i]  # softplus(l) - x l
        s = (one if li >= zero else ei) / (one + ei)  # sigmoid(l) = exp(min(l, 0)) / (1 + e)
        dl[i] = (s - xi) / n  # d/dl = (sigmoid(l) - x) / N


def bernoulli_nll_rows(logits, x, n: int):
    """losses._bernoulli_nll_rows in five passes instead of about fifteen.

    The two transcendental functions stay NumPy's (its exp and log1p use SIMD; numba's
    are one number at a time, and made the loss 3.5x slower); -|l| before them and
    everything after them are compiled loops, then one sum. The order of operations is
    the reference's, so the numbers are the same.
    """
    xp = array_namespace(logits)
    l, xf = logits.reshape(-1), x.reshape(-1)
    e = np.empty_like(l)
    _neg_abs(l, e)
    np.exp(e, out=e)  # e = exp(-|l|), in (0, 1]
    per_entry = np.log1p(e)  # log(1 + e)
    dl = np.empty_like(l)
    _bernoulli_rest(l, xf, e, per_entry, dl, l.dtype.type(n))
    return xp.sum(per_entry.reshape(logits.shape)) / n, dl.reshape(logits.shape)


@_jit
def _relu_backward_loop(y, dy, dx):
    zero, one = y.dtype.type(0.0), y.dtype.type(1.0)
    for i in range(y.size):
        dx[i] = (one if y[i] > zero else zero) * dy[i]  # dL/dx = [y > 0] dL/dy


def relu_backward(y, dy):
    """layers.ReLU.backward in one pass instead of two (a 0/1 mask, then a multiply)."""
    dx = np.empty_like(dy)
    _relu_backward_loop(y.reshape(-1), dy.reshape(-1), dx.reshape(-1))
    return dx
