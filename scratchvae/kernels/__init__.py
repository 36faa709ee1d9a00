"""The engine room: compiled twins of the textbook's hottest formulas.

The maths modules (layers, losses, optim, models, ...) are the textbook: each formula
once, as the lessons write it, and nothing for speed. A training step spends most of
its time in a few of those formulas, and each of their lines is a pass over memory
(Adam's update: about a dozen per parameter). Here each of them has a compiled twin
that computes the same formula, in the same order of operations, in one pass:

    twin                  stands in for            equal to it
    Adam's update         optim.Adam.update        bit for bit on the CPU (see "subnormal
                                                   moments" below for the one difference)
    bernoulli_nll         losses.bernoulli_nll     bit for bit on the CPU
    ReLU                  layers.ReLU (backward)   bit for bit on the CPU

    NumPy arrays, numba importable   numba (a dependency), compiled on first use, cached on disk
    CuPy arrays                      cupy.ElementwiseKernel (to rounding: the GPU fuses a*b + c)
    anything else, or kernels off    the textbook runs

Whoever runs the training switches them on, here and nowhere else. The Trainer (and so
the CLI) does, unless told not to (``Trainer(kernels=False)``, ``--no-kernels``):

    swapped = kernels.install(model)         # the model's parts swapped for twins, in place
    step = kernels.optimizer_step(opt)        # the fused update of this optimizer, or opt.step

A twin checks its arrays on every call and hands them to the textbook where it cannot
walk them (array-api-strict, mixed dtypes, a non-contiguous view) and while kernels are
off: ``SCRATCHVAE_KERNELS=off`` (read at import), ``kernels.enable(False)`` or
``with kernels.disabled():``. ``kernels.status()`` says what runs (``scratchvae info``
prints it). tests/test_kernels.py checks every twin against its textbook.

Subnormal moments. A moment of Adam that stops receiving gradient (the weight of a
pixel that is 0 in every batch, of a dead ReLU unit) decays by b1 each step, and after
some 800 steps falls below float32's smallest normal number, 1.2e-38. Many x86 CPUs
(Intel's among them; not every AMD one) compute on such subnormal numbers in microcode,
many times slower, and a long run slows down (benchmarks/subnormal_experiment.py
measures it on the machine at hand; PyTorch's Adam slows the same way). The
fused update sets such moments to 0: at that size a moment moves no weight (its step
lr m_hat / (sqrt(v_hat) + eps) is below 1e-33 with the default lr and eps). v is spared
when eps = 0, where a v flushed under a nonzero m would divide by zero.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import warnings

from .. import backend, layers, losses, optim

_enabled = os.environ.get("SCRATCHVAE_KERNELS", "auto").strip().lower() not in ("off", "0", "false", "no")


def enable(on: bool = True) -> None:
    """Turn the compiled twins on (the default) or off for this process."""
    global _enabled
    _enabled = bool(on)


def enabled() -> bool:
    return _enabled


@contextlib.contextmanager
def disabled():
    """``with kernels.disabled():`` runs the textbook everywhere inside."""
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
    not support this NumPy fails on import; the textbook then runs, and ``status``
    says why.
    """
    name = "cpu" if kind == "numpy" else "gpu"
    try:
        return importlib.import_module(f".{name}", __name__), None
    except ImportError as exc:
        if kind == "numpy" and exc.name == "numba":
            return None, "numba is not installed (pip install numba)"
        return None, f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # a broken numba or CUDA install
        return None, f"{type(exc).__name__}: {exc}"


def _kind(arrays) -> str | None:
    """"numpy" or "cupy" if every array is of that kind, one dtype (float32/float64, in
    native byte order) and C-contiguous (a kernel walks raw memory); else None."""
    first = arrays[0]
    module = type(first).__module__.split(".")[0]
    if module not in ("numpy", "cupy"):
        return None
    for a in arrays:
        if type(a) is not type(first) or a.dtype != first.dtype or not a.flags.c_contiguous:
            return None
    if first.dtype.char not in "fd" or not first.dtype.isnative:  # e.g. ">f8" from a file
        return None
    return module


def _module_for(*arrays):
    """The kernel module that can walk these arrays, or None (then run the textbook)."""
    if not _enabled or not arrays:
        return None
    kind = _kind(arrays)
    return None if kind is None else _load(kind)[0]


# ---- the twins -----------------------------------------------------------------------


class ReLU(layers.ReLU):
    """layers.ReLU with its backward in one compiled pass: the same numbers."""

    def backward(self, dy):
        module = _module_for(self.y, dy)
        return super().backward(dy) if module is None else module.relu_backward(self.y, dy)


def bernoulli_nll(logits, x, check: bool = True):
    """losses.bernoulli_nll in one compiled pass (a few on the CPU): the same numbers.
    With check=True, or arrays a kernel cannot walk, the textbook runs."""
    fits = not check and logits.ndim == 2 and logits.shape == x.shape and logits.shape[0] > 0
    module = _module_for(logits, x) if fits else None
    return losses.bernoulli_nll(logits, x, check=check) if module is None else module.bernoulli_nll(logits, x)


def adam_step(opt: optim.Adam, params: dict, grads: dict) -> None:
    """``opt.step(params, grads)`` with every parameter's update in one compiled call."""
    opt.begin_step(params, grads)
    names = list(params)
    ps, gs = [params[k] for k in names], [grads[k] for k in names]
    ms, vs = [opt.state["m"][k] for k in names], [opt.state["v"][k] for k in names]
    module = _module_for(*ps, *gs, *ms, *vs) if names else None
    if module is None:
        for k in names:
            opt.update(k, params[k], grads[k])
        return
    module.adam_all(ps, gs, ms, vs, b1=opt.b1, b2=opt.b2, t=opt.t, lr=opt.lr, eps=opt.eps)


# ---- the switch ----------------------------------------------------------------------


def _available() -> bool:
    """Whether kernels are on and compiled ones exist for the current backend's arrays."""
    kind = backend.current().name
    return _enabled and kind in ("numpy", "cupy") and _load(kind)[0] is not None


def install(model) -> list:
    """Swap, in place, the parts of ``model`` that have a compiled twin (its ReLU layers,
    its ``bernoulli_nll``); returns their names. Nothing is swapped while kernels are off
    or where none runs on the current backend. The model computes the same numbers."""
    if not _available():
        return []
    swapped = []

    def visit(owner: dict, prefix: str) -> None:
        for key, value in owner.items():
            if value is losses.bernoulli_nll:
                owner[key] = bernoulli_nll
                swapped.append(f"{prefix}{key}")
            elif type(value) is layers.ReLU:
                owner[key] = ReLU()
                swapped.append(f"{prefix}{key}")
            elif isinstance(value, layers.Sequential):
                visit(value.layers, f"{prefix}{key}.")

    visit(vars(model), "")
    return swapped


def optimizer_step(optimizer):
    """The fused update for ``optimizer`` (a function of params and grads, like its
    ``step``), or its own ``step`` where there is none (SGD, a subclass, kernels off)."""
    if type(optimizer) is optim.Adam and _available():
        return functools.partial(adam_step, optimizer)
    return optimizer.step


def status() -> dict:
    """What runs on NumPy and on CuPy arrays (for ``scratchvae info`` and the
    benchmarks): the compiler, or why the textbook runs instead."""
    out = {}
    for kind in ("numpy", "cupy"):
        if not _enabled:
            out[kind] = "off: the textbook (SCRATCHVAE_KERNELS=off or kernels.enable(False))"
            continue
        module, why = _load(kind)
        if module is None:
            out[kind] = f"the textbook: {why}"
        elif kind == "numpy":
            out[kind] = f"numba {module.numba.__version__}"
        else:
            out[kind] = f"cupy.ElementwiseKernel (CuPy {module.cupy.__version__})"
    return out


def find(name: str, *arrays):
    """Deprecated (goes in 0.3): the maths no longer asks for kernels. Returns None,
    which always meant "run the textbook"; use ``install`` and ``optimizer_step``."""
    warnings.warn("kernels.find is deprecated and goes in scratchvae 0.3; the Trainer switches "
                  "kernels on with kernels.install(model) and kernels.optimizer_step(opt)",
                  DeprecationWarning, stacklevel=2)


find_each = find

__all__ = ["ReLU", "adam_step", "bernoulli_nll", "disabled", "enable", "enabled", "install",
           "optimizer_step", "status"]
