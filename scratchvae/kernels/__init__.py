"""Fused kernels: the hottest elementwise formulas as one compiled loop, where a
compiler is at hand.

The array-API code is the reference: it is what a student reads, and it runs on every
backend. Each of its lines is one pass over memory, so Adam's update of a 784x400
weight reads and writes 313,600 numbers twelve times (more with the flush of subnormal
moments), and the Bernoulli loss makes about fifteen passes over the logits. A kernel here computes the same formula, in the
same order of operations, in one pass (or a few):

    kernel                 reference it replaces                  tested against it
    "adam"                 optim.Adam._update                     bit for bit on the CPU
    "adam_all"             the same, every parameter in one call  bit for bit on the CPU
                           (numba only; CuPy runs "adam" for each)
    "bernoulli_nll_rows"   losses._bernoulli_nll_rows             bit for bit on the CPU
    "relu_backward"        layers.ReLU.backward                   bit for bit on the CPU
    "kl_std_normal"        losses.kl_std_normal (CuPy only: on    to rounding on a GPU
                           the CPU its arrays are too small to
                           gain)

    NumPy arrays, numba installed     numba, compiled on first use, cached on disk
                                      (``pip install "scratchvae[fast]"``)
    CuPy arrays                       cupy.ElementwiseKernel (CUDA, compiled by CuPy)
    anything else (array-api-strict,  None: the caller runs the reference
    numba missing, kernels off)

A caller asks for a kernel with the arrays it will pass, and falls back when there is
none::

    fused = kernels.find("adam", p, g, m, v)
    if fused is not None:
        fused(p, g, m, v, b1=0.9, b2=0.999, a=1e-3, eps_t=1e-8)
    else:
        ...  # the reference, line by line

``find`` returns None unless the arrays are all of one kind (all NumPy or all CuPy),
one floating dtype, one shape, and C-contiguous (a kernel walks raw memory).
``find_each`` does the same for a kernel that takes lists of arrays, one entry per
parameter (``"adam_all"``): the k-th entries of the lists share a shape, and every array
shares the kind and dtype.

Turn kernels off with ``SCRATCHVAE_KERNELS=off`` (read at import), ``kernels.enable(False)``
or ``with kernels.disabled():``; ``kernels.status()`` says what runs (also printed by
``scratchvae info``). tests/test_kernels.py checks every kernel against its reference.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os

NAMES = ("adam", "adam_all", "bernoulli_nll_rows", "relu_backward", "kl_std_normal")
_TAKE_LISTS = ("adam_all",)  # found with find_each, not find

_enabled = os.environ.get("SCRATCHVAE_KERNELS", "auto").strip().lower() not in ("off", "0", "false", "no")


def enable(on: bool = True) -> None:
    """Turn the fused kernels on (the default) or off for this process."""
    global _enabled
    _enabled = bool(on)


def enabled() -> bool:
    return _enabled


@contextlib.contextmanager
def disabled():
    """``with kernels.disabled():`` runs the array-API reference everywhere inside."""
    before = _enabled
    enable(False)
    try:
        yield
    finally:
        enable(before)


@functools.cache
def _load(kind: str):
    """(module, None) with the kernels for one kind of array, or (None, why not).

    Imported on first use, once: numba takes a moment to import, and a numba that does
    not support this NumPy fails on import; the reference then runs, and ``status``
    says why.
    """
    name = "cpu" if kind == "numpy" else "gpu"
    try:
        return importlib.import_module(f".{name}", __name__), None
    except ImportError as exc:
        if kind == "numpy" and exc.name == "numba":
            return None, 'numba is not installed (pip install "scratchvae[fast]")'
        return None, f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # a broken numba or CUDA install
        return None, f"{type(exc).__name__}: {exc}"


def _kind(arrays, same_shape: bool = True) -> str | None:
    """"numpy" or "cupy" if every array is of that kind, one dtype (float32/float64, in
    native byte order), one shape (unless ``same_shape`` is False) and C-contiguous;
    else None."""
    first = arrays[0]
    module = type(first).__module__.split(".")[0]
    if module not in ("numpy", "cupy"):
        return None
    for a in arrays:
        if type(a) is not type(first) or a.dtype != first.dtype or (same_shape and a.shape != first.shape):
            return None
        if not a.flags.c_contiguous:
            return None
    if first.dtype.char not in "fd":  # float32, float64 (dtype.name is 20x slower)
        return None
    if not first.dtype.isnative:  # e.g. ">f8" from a file: numba cannot type it
        return None
    return module


def _check_name(name: str, lists: bool) -> None:
    if name not in NAMES:
        raise ValueError(f"unknown kernel {name!r}: choose one of {NAMES}")
    if (name in _TAKE_LISTS) != lists:
        use = "find_each (lists of arrays)" if name in _TAKE_LISTS else "find (arrays)"
        raise ValueError(f"kernel {name!r} is found with kernels.{use}")


def find(name: str, *arrays):
    """The fused kernel ``name`` for these arrays, or None (then run the reference)."""
    _check_name(name, lists=False)
    if not _enabled or not arrays:
        return None
    kind = _kind(arrays)
    if kind is None:
        return None
    module, _ = _load(kind)
    return None if module is None else getattr(module, name, None)  # not every kernel everywhere


def find_each(name: str, *lists):
    """The fused kernel ``name`` for lists of arrays with an entry per parameter (the
    k-th entries share a shape), or None (then run the reference, or ``find`` each)."""
    _check_name(name, lists=True)
    if not _enabled or not lists or not lists[0]:
        return None
    shapes = [a.shape for a in lists[0]]
    if any([a.shape for a in arrays] != shapes for arrays in lists[1:]):
        return None
    kind = _kind([a for arrays in lists for a in arrays], same_shape=False)
    if kind is None:
        return None
    module, _ = _load(kind)
    return None if module is None else getattr(module, name, None)


def status() -> dict:
    """What runs on NumPy and on CuPy arrays (for ``scratchvae info`` and the
    benchmarks): the compiler, or why the array-API reference runs instead."""
    out = {}
    for kind in ("numpy", "cupy"):
        if not _enabled:
            out[kind] = "off: array-API reference (SCRATCHVAE_KERNELS=off or kernels.enable(False))"
            continue
        module, why = _load(kind)
        if module is None:
            out[kind] = f"array-API reference: {why}"
        elif kind == "numpy":
            out[kind] = f"numba {module.numba.__version__}"
        else:
            out[kind] = f"cupy.ElementwiseKernel (CuPy {module.cupy.__version__})"
    return out


__all__ = ["NAMES", "disabled", "enable", "enabled", "find", "find_each", "status"]
