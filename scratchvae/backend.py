"""The array backend: which namespace ``xp`` the arrays live in, on which device, in
which floating dtype, and a seeded random generator that gives the same numbers on
every backend.

This is the only module of the core that imports numpy or cupy. Everything else is
written against the Python array API standard and asks for ``xp`` either from its
input arrays (``array_namespace(x)``) or from here (``current().xp``).

Backends
--------
``"numpy"``             NumPy on the CPU (through ``array_api_compat.numpy``).
``"cupy"``              CuPy on a CUDA GPU (through ``array_api_compat.cupy``).
``"array_api_strict"``  the standard's reference namespace: refuses anything outside
                        the standard. Its ``device="device1"`` refuses silent copies
                        to the host, as CuPy does; it is how the CPU test suite proves
                        the code would run on a GPU.
``"auto"``              CuPy if it really runs (import, a visible GPU, one small
                        operation), else NumPy with a one-line notice.

Select with ``use(...)``, temporarily with ``with using(...):``, or with the
environment variables ``SCRATCHVAE_BACKEND`` (and ``SCRATCHVAE_DTYPE``) read at the
first use.

Host data crosses into a backend through ``asarray`` and leaves through ``to_numpy``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import array_api_compat

NAMES = ("numpy", "cupy", "array_api_strict", "auto")
DTYPES = ("float32", "float64")


class BackendError(RuntimeError):
    """A backend was asked for that does not exist or cannot run here."""


@dataclass(frozen=True)
class Backend:
    """The active backend: its name, namespace ``xp``, device and floating dtype."""

    name: str
    xp: Any
    device: Any
    dtype: Any

    @property
    def dtype_name(self) -> str:
        return "float64" if self.dtype == self.xp.float64 else "float32"

    def __repr__(self) -> str:
        return f"Backend(name={self.name!r}, device={self.device!r}, dtype={self.dtype_name!r})"


_current: Backend | None = None

_GPU_HINT = (
    "install CuPy for your CUDA version: `pip install cupy-cuda12x` (CUDA 12) or "
    "`pip install cupy-cuda13x` (CUDA 13; `nvidia-smi` shows the version), "
    "or use backend 'numpy'"
)


def _cupy_or_reason():
    """Return (cupy, None) if CuPy really runs here, else (None, reason)."""
    try:
        import cupy
    except Exception as exc:  # ImportError, or a broken CUDA install
        return None, f"CuPy is not importable ({type(exc).__name__}: {exc})"
    try:
        if not cupy.cuda.is_available():
            return None, "CuPy is installed but sees no CUDA GPU"
        a = cupy.arange(4, dtype=cupy.float32)
        if float((a @ a).get()) != 14.0:  # one real kernel launch and copy back
            return None, "CuPy computed a wrong result on the GPU"
    except Exception as exc:
        return None, f"CuPy failed on the GPU ({type(exc).__name__}: {exc})"
    return cupy, None


def _make(name: str, dtype: str, device: Any) -> Backend:
    if name not in NAMES:
        raise BackendError(
            f"unknown backend {name!r}: choose one of {', '.join(map(repr, NAMES))} "
            "(or set SCRATCHVAE_BACKEND to one of them)"
        )
    if dtype not in DTYPES:
        raise BackendError(f"unknown dtype {dtype!r}: choose 'float32' or 'float64' "
                           "(or set SCRATCHVAE_DTYPE to one of them)")
    if name == "auto":
        cupy, reason = _cupy_or_reason()
        if cupy is None:
            print(f"scratchvae: {reason}; using NumPy on the CPU.", file=sys.stderr)
            name = "numpy"
        else:
            name = "cupy"
    if name == "numpy":
        import array_api_compat.numpy as xp

        if device not in (None, "cpu"):
            raise BackendError(f"NumPy runs on the CPU only; got device={device!r}")
        return Backend("numpy", xp, "cpu", getattr(xp, dtype))
    if name == "cupy":
        cupy, reason = _cupy_or_reason()
        if cupy is None:
            raise BackendError(f"backend 'cupy' cannot run here: {reason}. To fix: {_GPU_HINT}.")
        import array_api_compat.cupy as xp

        dev = cupy.cuda.Device(0 if device is None else getattr(device, "id", device))
        return Backend("cupy", xp, dev, getattr(xp, dtype))
    try:
        import array_api_strict as xp
    except ImportError:
        raise BackendError(
            "backend 'array_api_strict' needs the package: `pip install array-api-strict` "
            "(it comes with the test extra: `pip install -e .[test]`)"
        ) from None
    if isinstance(device, xp.Device):
        return Backend("array_api_strict", xp, device, getattr(xp, dtype))
    try:
        dev = xp.Device("CPU_DEVICE" if device in (None, "cpu") else str(device))
    except ValueError:
        raise BackendError(
            f"array_api_strict has no device {device!r}: use 'CPU_DEVICE', 'device1' or 'device2'"
        ) from None
    return Backend("array_api_strict", xp, dev, getattr(xp, dtype))


def use(name: str | None = None, *, dtype: str | None = None, device: Any = None) -> Backend:
    """Select the backend for arrays made from now on, and return it.

    Inputs:
    - name: "numpy", "cupy", "array_api_strict" or "auto"; None keeps the current one.
    - dtype: "float32" (training default) or "float64" (gradient checks); None keeps it.
    - device: backend-specific: None for the default, "device1" for array_api_strict's
      device that refuses host copies, an integer GPU id for CuPy.
    """
    global _current
    cur = _current if _current is not None else None
    if name is None:
        name = cur.name if cur else os.environ.get("SCRATCHVAE_BACKEND", "numpy")
        if device is None and cur is not None:
            device = cur.device
    if dtype is None:
        dtype = cur.dtype_name if cur else os.environ.get("SCRATCHVAE_DTYPE", "float32")
    _current = _make(name.strip().lower().replace("-", "_"), str(dtype).strip().lower(), device)
    return _current


def current() -> Backend:
    """The active backend (chosen from SCRATCHVAE_BACKEND, default numpy, at first use)."""
    if _current is None:
        use()
    return _current


@contextlib.contextmanager
def using(name: str | None = None, *, dtype: str | None = None, device: Any = None):
    """Use a backend inside a ``with`` block, then restore the previous one.

    ``with using(dtype="float64"):`` keeps the namespace and device and switches the
    dtype only, which is what a gradient check needs.
    """
    global _current
    saved = _current
    try:
        yield use(name, dtype=dtype, device=device)
    finally:
        _current = saved


def asarray(x, dtype=None):
    """Host data (lists, NumPy arrays, scalars) -> an array of the current backend.

    Floating input is cast to the backend's dtype (or ``dtype`` if given), integer input
    to int64, boolean stays boolean; complex input is refused (scratchvae is real-valued).
    The same rule holds for arrays already on the backend (so a NumPy float32 array gets
    the backend dtype on the NumPy backend as on any other); they pass through without a
    copy when the dtype is already right. An array_api_strict array on its CPU device is
    host data: it moves to the backend's device.
    """
    b = current()
    on_backend = _is_backend_array(x, b)
    if on_backend:
        x = _to_backend_device(x, b)
        is_complex = b.xp.isdtype(x.dtype, "complex floating")
    else:
        x = np.asarray(x)
        is_complex = x.dtype.kind == "c"
    if is_complex:
        raise TypeError(f"cannot make a real array from complex data (dtype {x.dtype}): "
                        "scratchvae is real-valued; pass x.real or abs(x)")
    biggest = (lambda: to_numpy(b.xp.max(x))) if on_backend else x.max  # a uint64 past int64?
    if str(x.dtype) == "uint64" and math.prod(x.shape) and int(biggest()) >= 2**63:
        raise ValueError("integers of 2**63 or more do not fit int64, the backend's integer "
                         "type (they would wrap to negative numbers)")
    if dtype is None:
        if on_backend:
            xp = b.xp
            if xp.isdtype(x.dtype, "real floating"):
                dtype = b.dtype
            elif xp.isdtype(x.dtype, "integral"):
                dtype = xp.int64
            elif xp.isdtype(x.dtype, "bool"):
                dtype = x.dtype
            else:  # a NumPy array of strings or objects on the NumPy backend
                raise TypeError(f"cannot make a numeric array from data of dtype {x.dtype}")
        else:
            if x.dtype.kind == "f":
                dtype = b.dtype
            elif x.dtype.kind in "iu":
                dtype = b.xp.int64
            elif x.dtype.kind == "b":
                dtype = b.xp.bool
            else:
                raise TypeError(f"cannot make a numeric array from data of dtype {x.dtype}")
    if on_backend:
        return x if x.dtype == dtype else b.xp.astype(x, dtype)
    return b.xp.asarray(x, dtype=dtype, device=b.device)


def _is_backend_array(x, b: Backend) -> bool:
    if b.name == "numpy":
        return isinstance(x, np.ndarray)
    if b.name == "cupy":
        return array_api_compat.is_cupy_array(x)
    return type(x).__module__.startswith("array_api_strict")


def _to_backend_device(x, b: Backend):
    """An array_api_strict array on another of its devices -> on the backend's device.

    The rule of this package: host data crosses into the backend through ``asarray`` and
    leaves only through ``to_numpy``. CPU_DEVICE is the host, so CPU_DEVICE -> device1 is the crossing
    this call exists for (as numpy -> CuPy is). The other way, device1 -> CPU_DEVICE, would
    be the silent host copy that device1 is there to catch: refused, naming both devices.
    """
    if b.name != "array_api_strict" or x.device == b.device:
        return x
    if b.device == b.xp.Device("CPU_DEVICE"):
        raise ValueError(
            f"asarray got an array on {x.device!r} but the backend is on {b.device!r}: an "
            "array leaves its device only through backend.to_numpy(x); call that first"
        )
    return x.to_device(b.device)


def to_numpy(x) -> np.ndarray:
    """Any backend's array (or a Python number) -> a NumPy array on the host.

    The one explicit device -> host copy; everything the user sees goes through it.
    """
    # Always a fresh copy, as CuPy's .get() is: a NumPy or CPU array_api_strict input
    # must not alias the result, or an in-place update would change a "host copy".
    if isinstance(x, (np.ndarray, np.generic, int, float, bool, list, tuple)):
        return np.array(x, copy=True)
    if array_api_compat.is_cupy_array(x):
        return x.get()
    if type(x).__module__.startswith("array_api_strict"):
        import array_api_strict

        return np.array(x.to_device(array_api_strict.Device("CPU_DEVICE")), copy=True)
    return np.array(x, copy=True)


def namespace(*arrays):
    """The array API namespace ``xp`` of the given arrays (they must share one)."""
    return array_api_compat.array_namespace(*arrays)


class RNG:
    """Seeded random numbers: drawn on the host by ``numpy.random.Generator`` (PCG64),
    then moved to the current backend, so one seed gives the same numbers everywhere.

    >>> rng = RNG(0)
    >>> eps = rng.normal((128, 20))        # on the backend, in its dtype
    >>> idx = rng.permutation(60000)       # int64 indices for xp.take
    """

    def __init__(self, seed: int | None = 0):
        self.seed = seed
        self.host = np.random.default_rng(seed)  # for host-side work (datasets)

    def normal(self, shape, loc=0.0, scale=1.0):
        return asarray(self.host.normal(loc, scale, size=shape))

    def uniform(self, shape, low=0.0, high=1.0):
        """Draws in [low, high), in the backend's dtype. The host draws float64; rounding
        to float32 can give exactly ``high`` (on [0, 1) about once in 2**25 draws, once an
        MNIST epoch), so a ``u < x`` binarization would turn a pixel x = 1 into 0. Those
        draws become the largest value below high in that dtype; the others keep theirs."""
        u = self.host.uniform(low, high, size=shape)
        if low < high:
            ftype = np.dtype(current().dtype_name).type
            top = ftype(high)
            if top >= high:  # high itself, or rounded up past it
                top = np.nextafter(top, ftype(low))
            u = np.minimum(u, top)
        return asarray(u)

    def permutation(self, n: int):
        return asarray(self.host.permutation(n).astype(np.int64))

    def integers(self, low: int, high: int, shape):
        return asarray(self.host.integers(low, high, size=shape).astype(np.int64))

    def get_state(self) -> str:
        """The generator's full state as a JSON string (stored in checkpoints)."""
        return json.dumps(self.host.bit_generator.state)

    def set_state(self, state: str) -> None:
        self.host.bit_generator.state = json.loads(state)


def retain_freed_memory(megabytes: int = 512) -> bool:
    """Ask the C allocator (glibc, on Linux) to keep freed memory for reuse instead of
    handing it back to the operating system at once. Returns False where this does not
    apply (another OS or C library); changes nothing then.

    Why: a training step makes and frees arrays of the same sizes every step. glibc
    returns large freed blocks to the OS, and the next step's arrays fault them back in
    page by page (benchmarks/RESULTS.md has the count at batch 1024). With this the
    freed blocks are reused. The cost: the process keeps up to ``megabytes`` of freed
    memory. It is a process-wide setting, so the library never calls it by itself; the
    ``scratchvae train`` command, whose process is its own, does (64 MB).
    (The environment variables MALLOC_TRIM_THRESHOLD_ and MALLOC_MMAP_THRESHOLD_ do the
    same from outside Python.)
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
        ok = libc.mallopt(M_TRIM_THRESHOLD, int(megabytes) << 20)  # keep this much free memory
        # blocks up to 32 MiB (glibc's largest) come from the reusable heap, not from mmap
        return bool(ok) and bool(libc.mallopt(M_MMAP_THRESHOLD, 32 << 20))
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False


def info() -> dict:
    """What the machine offers: versions, the active backend, and whether CuPy runs."""
    cupy, reason = _cupy_or_reason()
    b = current()
    return {
        "backend": b.name,
        "device": str(b.device),
        "dtype": b.dtype_name,
        "numpy": np.__version__,
        "array_api_compat": array_api_compat.__version__,
        "cupy": "usable" if cupy is not None else reason,
    }


__all__ = [
    "Backend",
    "BackendError",
    "RNG",
    "asarray",
    "current",
    "info",
    "namespace",
    "retain_freed_memory",
    "to_numpy",
    "use",
    "using",
]
