"""Input checks that turn a user's mistake into a message saying what to do.

Each check costs one reduction at most; the hot loops can skip them where the data was
checked once up front.
"""

from __future__ import annotations

import argparse
import math
import numbers

from array_api_compat import array_namespace


def check_positive_int(n, name: str) -> int:
    """Return ``n`` as an int; raise ValueError unless it is a positive integer (Python's
    or NumPy's; not a bool, not a float)."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"{name} must be a positive integer, got {n!r}")
    return int(n)


def check_ndim(x, ndim: int, name: str, shape_hint: str) -> None:
    """Raise ValueError unless ``x`` has ``ndim`` axes (``shape_hint`` e.g. "(N, D)")."""
    if getattr(x, "ndim", None) != ndim:
        got = getattr(x, "shape", type(x).__name__)
        raise ValueError(
            f"{name} must have shape {shape_hint}, got {got}; "
            + ("put one example per row (reshape with x.reshape(len(x), -1))" if ndim == 2 else
               "pass an array with the shape shown")
        )
    if ndim >= 1 and x.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {x.shape}); pass at least one example")


def check_columns(x, n: int, name: str, what: str) -> None:
    """Raise ValueError unless the last axis of ``x`` has ``n`` entries."""
    if x.shape[-1] != n:
        raise ValueError(
            f"{name} has {x.shape[-1]} columns but {what} expects {n}: shape {x.shape}; "
            f"pass data with {n} features per row"
        )


def check_same_shape(a, b, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape, got {a.shape} and {b.shape}"
        )


def check_finite(x, name: str) -> None:
    """Raise ValueError if ``x`` holds NaN or infinity."""
    xp = array_namespace(x)
    if not bool(xp.all(xp.isfinite(x))):
        n_bad = int(xp.sum(xp.astype(~xp.isfinite(x), xp.int64)))
        raise ValueError(
            f"{name} contains {n_bad} NaN or infinite value(s); remove or impute them first "
            "(if this is a model output, training has diverged: lower the learning rate)"
        )


def positive_int(text: str) -> int:
    """An ``argparse`` type for counts (epochs, sizes, samples): a positive integer, or
    a usage error that says so."""
    try:
        return check_positive_int(int(text), "the value")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None


def check_data(x, n_columns: int, what: str, unit_interval: bool, name: str = "x") -> None:
    """All checks of a data set for a model, once: (N, D) with D = ``n_columns``, finite,
    and in [0, 1] where the likelihood is Bernoulli (``unit_interval``)."""
    check_ndim(x, 2, name, "(N, D)")
    check_columns(x, n_columns, name, what)
    check_finite(x, name)
    if unit_interval:
        check_unit_interval(x, name)


def check_unit_interval(x, name: str) -> None:
    """Raise ValueError unless every entry of ``x`` lies in [0, 1]."""
    xp = array_namespace(x)
    lo, hi = float(xp.min(x)), float(xp.max(x))
    if math.isnan(lo) or math.isnan(hi):  # min and max propagate NaN; NaN fails every comparison
        raise ValueError(f"{name} contains NaN, but must lie in [0, 1] for a Bernoulli "
                         "likelihood; remove or impute the NaN values first")
    if lo < 0.0 or hi > 1.0:
        raise ValueError(
            f"{name} must lie in [0, 1] for a Bernoulli likelihood, but its values run from "
            f"{lo:g} to {hi:g}; scale pixels to [0, 1] (e.g. divide 8-bit images by 255) "
            "or use the Gaussian likelihood"
        )
