"""Class labels as network input, for the conditional VAE of L7 (8).

A label y in {0, ..., C-1} enters a network as its one-hot row, concatenated to the
network's input: the encoder reads [x, onehot(y)], the decoder [z, onehot(y)]. The
labels are data, like x, so no gradient flows to them.
"""

from __future__ import annotations

import numbers

from array_api_compat import array_namespace

from .. import backend


def as_labels(y, n: int, n_classes: int, check: bool = True, name: str = "y"):
    """``y`` as a backend int64 array of shape (n,), checked unless ``check=False``
    (``name`` names it in the messages: "y", "y_train", ...).

    A single integer stands for n copies of itself (``sample(16, y=3)``: sixteen 3s).
    Raises ValueError, saying what to do, for a wrong shape, non-integer labels or
    labels outside 0..n_classes-1.
    """
    if isinstance(y, numbers.Integral) and not isinstance(y, bool):
        xp = backend.current().xp
        y = xp.full((n,), int(y), dtype=xp.int64, device=backend.current().device)
    else:
        y = backend.asarray(y)
    if not check:
        return y
    xp = array_namespace(y)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"{name} must hold one label per example, shape ({n},), got shape {tuple(y.shape)}")
    if not xp.isdtype(y.dtype, "integral"):
        raise ValueError(f"{name} must hold integer class labels 0..{n_classes - 1}, got dtype {y.dtype}; "
                         "pass integers (e.g. y.astype(int) for whole-number floats)")
    lo, hi = int(xp.min(y)), int(xp.max(y))
    if lo < 0 or hi >= n_classes:
        raise ValueError(f"{name} holds labels from {lo} to {hi}, but this VAE has n_classes={n_classes}: "
                         f"labels must lie in 0..{n_classes - 1} (renumber the classes, or build the VAE "
                         f"with n_classes={max(hi + 1, n_classes)})")
    return y


def one_hot(y, n_classes: int, dtype):
    """(N,) integer labels -> (N, C) rows with a 1 in column y_n, in ``dtype``."""
    xp = array_namespace(y)
    classes = xp.arange(n_classes, dtype=y.dtype, device=y.device)
    return xp.astype(xp.reshape(y, (-1, 1)) == classes, dtype)


def with_labels(a, c):
    """[a, c]: the network input (N, F + C) for rows a (N, F) and one-hot labels c (N, C)."""
    return array_namespace(a, c).concat([a, c], axis=1)


def repeat_rows(a, L: int):
    """(N, F) -> (L N, F): the rows of a repeated L times, one block per sample (to line
    up with the L N decoder rows of (L, N, K) samples reshaped)."""
    if L == 1:
        return a
    xp = array_namespace(a)
    return xp.reshape(xp.broadcast_to(a, (L, *a.shape)), (L * a.shape[0], a.shape[1]))
