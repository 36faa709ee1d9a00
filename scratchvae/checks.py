"""Input checks that turn a user's mistake into a message saying what to do.

Each check costs a reduction or two; the hot loops can skip them where the data was
checked once up front. Data enter every model through ``as_data`` (a NumPy array, a list
of rows or a backend array: real floats on the backend), which costs nothing for a
backend array already in the backend's dtype.
"""

from __future__ import annotations

import argparse
import math
import numbers

from array_api_compat import array_namespace

from . import backend

# A Gaussian likelihood (the VAE's) wants data near unit scale: its encoder's log-variance
# grows with the inputs, and exp(logvar) overflows (float32: NaN at step 1 for 0-255 pixels).
# Data whose root-mean-square passes this are refused, with the fix.
UNIT_SCALE_RMS = 10.0


def check_positive_int(n, name: str) -> int:
    """Return ``n`` as an int; raise ValueError unless it is a positive integer (Python's
    or NumPy's; not a bool, not a float)."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"{name} must be a positive integer, got {n!r}")
    return int(n)


def check_finite_non_negative(x, name: str, meaning: str = "") -> float:
    """Return ``x`` as a float; raise ValueError unless it is a finite number >= 0 (a
    Python or NumPy number, not a bool or a string). ``meaning``: what it is, for the message."""
    if isinstance(x, bool) or not isinstance(x, numbers.Real) or not 0.0 <= float(x) < math.inf:
        raise ValueError(f"{name} must be a finite number >= 0{meaning}, got {x!r}")
    return float(x)


def check_tol(tol, name: str = "tol") -> float:
    """An EM stopping tolerance as a float: any finite number (one below 0 never stops
    early: every iteration up to max_iter runs); NaN, inf, bools and strings are refused."""
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not math.isfinite(float(tol)):
        raise ValueError(f"{name} must be a finite number (the relative rise of the log-likelihood that stops "
                         f"EM; below 0: never stop early), got {tol!r}")
    return float(tol)


def check_beta(beta, name: str = "beta") -> float:
    """The KL weight ``beta`` as a float: a finite number >= 0."""
    return check_finite_non_negative(beta, name, " (the KL weight; 1 is the ELBO)")


def as_data(x, name: str = "x"):
    """Data as it enters a model: a NumPy array, a list of rows or a backend array -> a
    backend array of real floats in the backend's dtype (``backend.asarray``).

    Integers and booleans (uint8 pixels, 0/1 masks) become floats; complex numbers,
    strings and objects are refused, naming ``name``. A backend array already in the
    backend's dtype passes through as it is (no copy, no reduction: cheap in a loop).
    Values that fit float64 but not the backend's float32 (which would turn them into
    inf) are refused, saying so.
    """
    try:
        X = backend.asarray(x)
    except TypeError:  # complex numbers, strings, objects
        dtype = getattr(x, "dtype", None)
        dtype = backend.to_numpy(x).dtype if dtype is None else dtype
        fix = (f"pass {name}.real (or abs({name}))" if "complex" in str(dtype) else
               f"convert it to numbers first, e.g. {name}.astype(float)")
        raise ValueError(f"{name} must hold real numbers (float), got {dtype}; {fix}") from None
    except ValueError as exc:
        if hasattr(x, "dtype"):  # an array the backend cannot take (uint64 past int64): its own message
            raise
        raise ValueError(f"{name} cannot be made an array of numbers ({exc}); "
                         "pass one example per row, all rows of the same length") from None
    xp = array_namespace(X)
    if not xp.isdtype(X.dtype, "real floating"):
        X = xp.astype(X, backend.current().dtype)  # integers and booleans: exact as floats
    if X is not x and X.dtype == xp.float32:
        _check_float32_cast(x, X, name)
    return X


def _check_float32_cast(x, X, name: str) -> None:
    """Raise ValueError if ``x`` held finite values that ``X``, its float32 copy, holds as inf."""
    xp = array_namespace(X)
    if bool(xp.all(xp.isfinite(X))):
        return
    X64 = backend.asarray(x, dtype=xp.float64)
    if not bool(xp.all(xp.isfinite(X64))):
        return  # the data hold NaN or inf themselves: check_finite says so
    amax = float(xp.max(xp.abs(X64)))
    fits_float64 = amax * amax < float(xp.finfo(xp.float64).max)  # then float64 is a fix too
    raise ValueError(
        f"{name} holds values as large as {amax:.3g}, beyond the largest float32 ({xp.finfo(xp.float32).max:.3g}), "
        f"the backend's dtype, which turns them into inf; scale the data first: {name} / abs({name}).max()"
        + (' (or use float64: backend.use(dtype="float64"))' if fits_float64 else "")
    )


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


def check_magnitude(x, name: str, terms: int = 1) -> None:
    """Raise ValueError if ``x`` (finite) holds values whose squares overflow its dtype or,
    with ``terms`` > 1, whose squares summed ``terms`` at a time can (a variance sums
    N D of them). One reduction."""
    xp = array_namespace(x)
    if math.prod(x.shape) == 0:
        return
    big = float(xp.finfo(x.dtype).max)
    amax = float(xp.max(xp.abs(x)))
    if amax > math.sqrt(big / terms):
        what = ("whose squares overflow" if terms == 1 else
                f"whose squares, summed {terms} at a time (as in a variance), can overflow")
        raise ValueError(
            f"{name} holds values as large as {amax:.3g}, {what} {_dtype_name(x)} (largest {big:.3g}); "
            f"scale the data first: {name} / abs({name}).max()"
        )


def check_unit_scale(x, name: str) -> None:
    """Raise ValueError, with the fix, if ``x`` (finite) lies far from unit scale, as a
    Gaussian VAE needs: its root-mean-square is above UNIT_SCALE_RMS. Two reductions."""
    xp = array_namespace(x)
    amax = float(xp.max(xp.abs(x)))
    if amax == 0.0:
        return
    s = x / amax  # scaled first: the squares of 1e20 overflow float32
    rms = amax * math.sqrt(float(xp.mean(s * s)))
    if rms > UNIT_SCALE_RMS:
        raise ValueError(
            f"{name} has root-mean-square {rms:.3g} (values up to {amax:.3g}), too far from unit scale for "
            f"a Gaussian VAE: its encoder's log-variance grows with the inputs and exp(logvar) overflows "
            f"(a NaN or huge loss from step 1); scale it: {name} / 255 "
            f"for 8-bit images, else standardize: ({name} - {name}.mean(0)) / ({name}.std(0) + 1e-8)"
        )


def _dtype_name(x) -> str:
    return f"float{array_namespace(x).finfo(x.dtype).bits}"


def positive_int(text: str) -> int:
    """An ``argparse`` type for counts (epochs, sizes, samples): a positive integer, or
    a usage error that says so."""
    try:
        return check_positive_int(int(text), "the value")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None


def check_data(x, n_columns: int, what: str, unit_interval: bool, name: str = "x",
               unit_scale: bool = False) -> None:
    """All checks of a data set for a model, once: real numbers (``as_data``), (N, D) with
    D = ``n_columns``, finite, in [0, 1] where the likelihood is Bernoulli
    (``unit_interval``), squares that fit the dtype, and near unit scale where the
    likelihood is Gaussian (``unit_scale``)."""
    x = as_data(x, name)
    check_ndim(x, 2, name, "(N, D)")
    check_columns(x, n_columns, name, what)
    check_finite(x, name)
    if unit_interval:
        check_unit_interval(x, name)
    else:  # data in [0, 1] pass it
        check_magnitude(x, name)
    if unit_scale:
        check_unit_scale(x, name)


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
            f"{lo:g} to {hi:g}; scale pixels to [0, 1] (e.g. divide 8-bit images by 255): pass "
            f"{name} / 255, or ({name} - {name}.min()) / ({name}.max() - {name}.min()) for data that are not 8-bit"
        )
