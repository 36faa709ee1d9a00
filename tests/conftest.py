"""The backend fixture: every core test runs on each CPU backend (and CuPy on a GPU).

- numpy-f64:        NumPy, float64
- strict-cpu-f64:   array-api-strict on its CPU device, float64
- strict-dev1-f32:  array-api-strict on device1 (refuses silent host copies), float32
- cupy-f32:         CuPy on a GPU, float32; marked ``gpu``, skipped where CuPy cannot run

``bk`` gives the backend at its own dtype; ``bk64`` the same namespace and device in
float64, for gradient checks (always float64).
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from scratchvae import backend

BACKENDS = [
    pytest.param(("numpy", "float64", None), id="numpy-f64"),
    pytest.param(("array_api_strict", "float64", "CPU_DEVICE"), id="strict-cpu-f64"),
    pytest.param(("array_api_strict", "float32", "device1"), id="strict-dev1-f32"),
    pytest.param(("cupy", "float32", None), id="cupy-f32", marks=pytest.mark.gpu),
]


@pytest.fixture(params=BACKENDS)
def bk(request):
    name, dtype, device = request.param
    ctx = backend.using(name, dtype=dtype, device=device)
    try:
        b = ctx.__enter__()
    except backend.BackendError as exc:  # CuPy where no GPU runs
        pytest.skip(str(exc))
    try:
        yield b
    finally:
        ctx.__exit__(None, None, None)


@pytest.fixture
def bk64(bk):
    """The same namespace and device as ``bk``, in float64 (for gradient checks)."""
    with backend.using(dtype="float64") as b:
        yield b


def tol(b, f64=1e-10, f32=1e-4):
    """A tolerance scaled to the backend's dtype."""
    return f64 if b.dtype_name == "float64" else f32


def host(a):
    return backend.to_numpy(a)


@pytest.fixture
def hrng():
    """A host generator for test data (moved to the backend with backend.asarray)."""
    return np.random.default_rng(1234)


ROOT = Path(__file__).resolve().parents[1]


def load_tool(name):
    """Import tools/<name>.py (the course scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
