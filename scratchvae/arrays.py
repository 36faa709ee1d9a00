"""Small array helpers the maths modules share (array API only)."""

from __future__ import annotations

from array_api_compat import array_namespace


def as_array_like(value, like):
    """``value`` as an array of ``like``'s namespace, dtype and device if it is a Python
    number (e.g. a fixed log-variance 0.0); arrays pass through unchanged."""
    if isinstance(value, (int, float)):
        xp = array_namespace(like)
        return xp.asarray(value, dtype=like.dtype, device=like.device)
    return value


def unbroadcast(g, shape):
    """Sum ``g`` over the axes that broadcasting added or stretched to reach ``shape``.

    If a = broadcast(b) then dL/db = sum of dL/da over the copies: the gradient of a
    broadcast is a sum.
    """
    xp = array_namespace(g)
    while g.ndim > len(shape):
        g = xp.sum(g, axis=0)
    for axis, n in enumerate(shape):
        if n == 1 and g.shape[axis] != 1:
            g = xp.sum(g, axis=axis, keepdims=True)
    return g


def logsumexp(a, axis: int, keepdims: bool = False):
    """log sum_i exp(a_i) along ``axis``, stably: m + log sum_i exp(a_i - m), m = max_i a_i.

    Rows that are all -inf give -inf (not NaN); a row with +inf gives +inf; a row with a
    NaN gives NaN (a diverged model must not look like a certain one).
    """
    xp = array_namespace(a)
    m = xp.max(a, axis=axis, keepdims=True)  # NaN if the row holds one
    m = xp.where(xp.isinf(m), 0.0, m)  # an all -inf row, or a +inf entry: shift by 0
    s = xp.sum(xp.exp(a - m), axis=axis, keepdims=True)
    # log(0) = -inf, taken by hand: xp.log(0) would raise numpy's divide-by-zero warning
    out = xp.where(s == 0, -xp.inf, m + xp.log(xp.where(s > 0, s, 1.0)))
    return out if keepdims else xp.squeeze(out, axis=axis)


def batch_slices(n: int, size: int):
    """slice(start, stop) covering range(n) in steps of ``size``, the last one clipped
    (the array API does not allow slice stops past the end)."""
    return [slice(start, min(start + size, n)) for start in range(0, n, size)]
