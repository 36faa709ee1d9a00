"""The core never imports numpy or cupy directly: it reaches arrays through
``array_api_compat.array_namespace`` (or ``scratchvae.backend``), so the same code runs
on NumPy, CuPy and array-api-strict.

Every .py file under scratchvae/ is core unless it is on the explicit allow-list of
host-side modules below. New modules are core by default.
"""

import ast
from pathlib import Path

import pytest

import scratchvae

PACKAGE = Path(scratchvae.__file__).resolve().parent

# Host-side code, allowed to import numpy (relative to scratchvae/). A name ending in
# "/" allows a whole package.
ALLOWED = {
    "backend.py",
    "datasets.py", "datasets/",
    "plotting.py",
    "cli.py",
    "checkpoint.py", "checkpoint/",
    "bench.py", "benchmarks/",
    "kernels/cpu.py", "kernels/gpu.py",  # compiled kernels for NumPy (numba) and CuPy arrays
    "data/",
    "__main__.py",
}

FORBIDDEN = ("numpy", "cupy", "array_api_compat.numpy", "array_api_compat.cupy")


def _forbidden(module: str) -> bool:
    return any(module == f or module.startswith(f + ".") for f in FORBIDDEN)


def forbidden_imports(source: str, filename: str = "<source>") -> list:
    """(line, text) for every import of numpy/cupy-specific code in ``source``.

    Catches ``import numpy``, ``import numpy.linalg``, ``from numpy import x``,
    ``import array_api_compat.numpy``, ``from array_api_compat import numpy``,
    ``from array_api_compat.cupy import x`` and ``importlib.import_module("numpy")`` /
    ``__import__("cupy")`` with a literal name.
    """
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _forbidden(alias.name):
                    found.append((node.lineno, f"import {alias.name}"))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if _forbidden(node.module):
                found.append((node.lineno, f"from {node.module} import ..."))
            else:
                for alias in node.names:
                    if _forbidden(f"{node.module}.{alias.name}"):
                        found.append((node.lineno, f"from {node.module} import {alias.name}"))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            fn = node.func
            name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
            arg = node.args[0].value
            if name in ("import_module", "__import__") and isinstance(arg, str) and _forbidden(arg):
                found.append((node.lineno, f"{name}({arg!r})"))
    return found


def _is_allowed(rel: str) -> bool:
    return rel in ALLOWED or any(rel.startswith(a) for a in ALLOWED if a.endswith("/"))


def core_files():
    files = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if not _is_allowed(rel):
            files.append(rel)
    return files


def test_core_modules_do_not_import_numpy_or_cupy():
    offenders = []
    for rel in core_files():
        source = (PACKAGE / rel).read_text(encoding="utf-8")
        for line, text in forbidden_imports(source, rel):
            offenders.append(f"scratchvae/{rel}:{line}: {text}")
    assert not offenders, (
        "core modules must not import numpy or cupy (use array_api_compat.array_namespace(x) "
        "and scratchvae.backend; host-side modules go on the allow-list in this test):\n"
        + "\n".join(offenders)
    )


def test_the_scan_covers_the_core():
    files = core_files()
    for rel in ("layers.py", "losses.py", "reparam.py", "optim.py", "gradcheck.py", "arrays.py",
                "checks.py", "__init__.py"):
        assert rel in files
    assert "backend.py" not in files


def test_new_modules_are_core_by_default():
    assert not _is_allowed("models/vae.py") and not _is_allowed("training.py")
    assert not _is_allowed("datasets_extra.py") and not _is_allowed("my_backend.py")
    assert _is_allowed("datasets/mnist.py") and _is_allowed("data/__init__.py")
    assert _is_allowed("datasets.py") and _is_allowed("__main__.py")


@pytest.mark.parametrize(
    "source",
    [
        "import numpy as np",
        "import numpy.linalg",
        "from numpy import exp",
        "from numpy.random import default_rng",
        "import cupy",
        "from cupy import cuda",
        "import array_api_compat.numpy as xp",
        "from array_api_compat import numpy",
        "from array_api_compat import cupy as cp",
        "from array_api_compat.numpy import linalg",
        "import importlib\nxp = importlib.import_module('numpy')",
        "cp = __import__('cupy')",
        "def f():\n    import numpy\n    return numpy",
        "try:\n    import cupy\nexcept ImportError:\n    cupy = None",
    ],
)
def test_the_scanner_catches(source):
    assert forbidden_imports(source), source


@pytest.mark.parametrize(
    "source",
    [
        "from array_api_compat import array_namespace",
        "import array_api_compat",
        "from . import backend",
        "from .numpy_helpers import f",  # a relative module that merely has the name
        "import numpyro",
        "import math, itertools",
        "x = 'import numpy'",
    ],
)
def test_the_scanner_allows(source):
    assert not forbidden_imports(source), source
