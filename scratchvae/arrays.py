"""Small array helpers the maths modules share (array API only)."""

from __future__ import annotations

from array_api_compat import array_namespace, is_cupy_array, is_numpy_array


def into(out, f, *args, **kwargs):
    """out[...] = f(*args, **kwargs), written straight into ``out`` where the backend can.

    ``f`` is a function of the array namespace that NumPy and CuPy also accept with an
    ``out=`` argument: the elementwise ones (xp.multiply, xp.divide, xp.sqrt, xp.exp,
    ...), xp.matmul and xp.sum. On NumPy and CuPy the result goes into ``out`` with no
    new array (no allocation, one pass over memory); on other namespaces
    (array-api-strict) f is computed and copied in, which gives the same numbers.
    Returns ``out``.

    >>> into(buf, xp.multiply, g, g)        # buf = g * g, no temporary
    >>> into(dW, xp.matmul, x.T, dy)        # dW = x^T dy, no temporary
    >>> into(db, xp.sum, dy, axis=0)        # db = column sums of dy
    """
    if is_numpy_array(out) or is_cupy_array(out):
        f(*args, out=out, **kwargs)
    else:
        out[...] = f(*args, **kwargs)
    return out


def flush_subnormals(a, nonnegative: bool = False):
    """Set the entries of ``a`` smaller in size than the smallest normal number of its
    dtype (1.2e-38 in float32) to 0, in place; returns ``a``.

    Why an optimizer needs it: a moment that stops receiving gradient decays
    geometrically (Adam's m by 0.9 a step: a weight of a pixel that is always 0 in the
    batch, or of a dead ReLU unit), and after some 800 steps it falls below 1.2e-38 into
    the subnormal numbers. x86 CPUs do arithmetic on subnormals in microcode, many
    times slower (a float32 multiply: 18x on the course machine): training a
    784-400-20 VAE, the Adam step went from 0.57 ms to 3.3 ms within 2,500 steps
    (benchmarks/subnormal_experiment.py). Below 1.2e-38 a moment moves no weight (its
    step lr m_hat / (sqrt(v_hat) + eps) is about 1e-33 at most with the default lr and
    eps), so 0 is the same number for the model. On a GPU, CuPy's compiled arithmetic
    already flushes subnormal results to 0 (on an H200, 1e-41 * 1 gives 0 in float32);
    the flush there changes nothing and keeps one formula everywhere.
    ``nonnegative``: ``a`` holds no negative numbers (Adam's v), one comparison less.
    """
    xp = array_namespace(a)
    tiny = xp.finfo(a.dtype).smallest_normal
    a[(a if nonnegative else xp.abs(a)) < tiny] = 0.0
    return a


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


def row_blocks(x, entries: int = 1 << 16) -> list:
    """Row slices of ``x`` for elementwise work done a block of rows at a time.

    On NumPy: blocks of about ``entries`` entries (2^16 float32 = 256 KiB), so each
    temporary array of the work fits in the CPU's cache and the allocator hands the same
    memory back block after block; whole (N, D) temporaries would go out to main memory
    and, freed and made again every step, fault their pages in anew. Elsewhere (a GPU
    wants few, large kernels) and for small arrays: one block, the whole array.
    """
    if not is_numpy_array(x) or x.ndim < 1 or x.size <= entries:
        return [slice(None)]
    n = x.shape[0]
    rows = max(1, entries // max(1, x.size // n))
    return [slice(start, min(start + rows, n)) for start in range(0, n, rows)]


def batch_slices(n: int, size: int):
    """slice(start, stop) covering range(n) in steps of ``size``, the last one clipped
    (the array API does not allow slice stops past the end)."""
    return [slice(start, min(start + size, n)) for start in range(0, n, size)]
