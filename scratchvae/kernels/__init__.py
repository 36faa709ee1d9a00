"""Fused kernels: the hottest elementwise formulas as one compiled loop, where a
compiler is at hand.

The array-API code (``optim.Adam._update``, ...) is the reference: it is what a student
reads, and it runs on every backend. Each of its lines is one pass over memory, so
Adam's update of one parameter reads and writes 630k numbers twelve times. A kernel
here computes the same formula, in the same order of operations, in a single pass:

    NumPy arrays and numba installed   numba, compiled on first use and cached on disk
                                       (``pip install "scratchvae[fast]"``)
    CuPy arrays                        cupy.ElementwiseKernel (CUDA, compiled by CuPy)
    anything else (array-api-strict,   None: the caller runs the reference
    numba missing, kernels turned off)

A caller asks for a kernel with the arrays it will pass, and falls back when there is
none::

    fused = kernels.find("adam", p, g, m, v)
    if fused is not None:
        fused(p, g, m, v, b1=0.9, b2=0.999, a=1e-3, eps_t=1e-8)
    else:
        ...  # the reference, line by line

``find`` returns None unless the arrays are all of one kind (all NumPy or all CuPy),
one floating dtype, one shape, and contiguous (a kernel walks raw memory).

Turn kernels off with ``SCRATCHVAE_KERNELS=off`` (read at import), ``kernels.enable(False)``
or ``with kernels.disabled():``; ``kernels.status()`` says what is in use. The tests
check every kernel against its reference (tests/test_kernels.py), on the CPU with numba
and on a GPU with CuPy.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import os

NAMES = ("adam",)

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
def numba_available() -> bool:
    return importlib.util.find_spec("numba") is not None


@functools.cache
def _module(kind: str):
    """The kernels for one kind of array (imported on first use: numba, CuPy)."""
    return importlib.import_module(f".{'cpu' if kind == 'numpy' else 'gpu'}", __name__)


def _kind(arrays) -> str | None:
    """"numpy" or "cupy" if every array is of that kind, one dtype (float32/float64),
    one shape and C-contiguous; else None."""
    first = arrays[0]
    module = type(first).__module__.split(".")[0]
    if module not in ("numpy", "cupy"):
        return None
    for a in arrays:
        if type(a) is not type(first) or a.dtype != first.dtype or a.shape != first.shape:
            return None
        if not a.flags.c_contiguous:
            return None
    if first.dtype.char not in "fd":  # float32, float64 (dtype.name is 20x slower)
        return None
    return module


def find(name: str, *arrays):
    """The fused kernel ``name`` for these arrays, or None (then run the reference)."""
    if name not in NAMES:
        raise ValueError(f"unknown kernel {name!r}: choose one of {NAMES}")
    if not _enabled or not arrays:
        return None
    kind = _kind(arrays)
    if kind == "cupy" or (kind == "numpy" and numba_available()):
        return getattr(_module(kind), name)
    return None


def status() -> dict:
    """What runs where: {"numpy": ..., "cupy": ...}, for ``scratchvae info`` and benchmarks."""
    if not _enabled:
        return {"numpy": "off (array-API reference)", "cupy": "off (array-API reference)"}
    if numba_available():
        import numba

        cpu_line = f"numba {numba.__version__}"
    else:
        cpu_line = 'none: numba is not installed (pip install "scratchvae[fast]"); array-API reference'
    return {"numpy": cpu_line, "cupy": "cupy.ElementwiseKernel"}


__all__ = ["NAMES", "disabled", "enable", "enabled", "find", "numba_available", "status"]
