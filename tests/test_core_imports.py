"""How the package's modules may import each other.

1. The core never imports numpy or cupy directly: it reaches arrays through
   ``array_api_compat.array_namespace`` (or ``scratchvae.backend``), so the same code runs
   on NumPy, CuPy and array-api-strict. Every .py file under scratchvae/ is core unless it
   is on the explicit allow-list of host-side modules below. New modules are core by default.
2. There is no import cycle in scratchvae/, lazy imports (inside functions) included.
3. The maths modules (the textbook) never reach the engine room, scratchvae.kernels, and
   Adam reads as its formula: under 40 lines, asking for nothing by name.
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
    "datasets/",
    "plotting.py",
    "cli/",  # the command: host-side, like plotting
    "checkpoint.py",
    "threads.py",  # measures a NumPy product to choose BLAS threads (host-side, like backend)
    "kernels/cpu.py", "kernels/gpu.py",  # compiled kernels for NumPy (numba) and CuPy arrays
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
    assert _is_allowed("datasets/mnist.py") and _is_allowed("kernels/cpu.py")
    assert not _is_allowed("kernels/__init__.py")


def test_the_allow_list_names_only_real_files():
    missing = [a for a in sorted(ALLOWED) if not (PACKAGE / a.rstrip("/")).exists()]
    assert not missing, f"allow-listed but not in scratchvae/: {missing}; remove them from ALLOWED"


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


# ---- the import graph ------------------------------------------------------------------

MATHS = ("layers", "losses", "reparam", "optim", "densities", "arrays", "model", "models", "linear", "mixture")


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_package(name: str) -> bool:
    return (PACKAGE.parent / name.replace(".", "/") / "__init__.py").exists()


def _exists(name: str) -> bool:
    """Whether the dotted name is a module or package of scratchvae on disk."""
    return _is_package(name) or (PACKAGE.parent / (name.replace(".", "/") + ".py")).exists()


def import_edges(source: str, module: str, is_package: bool, exists=_exists) -> set:
    """The scratchvae modules that ``module`` imports, anywhere in its source (lazy
    imports inside functions too). ``from . import x`` names the submodule x when there
    is one; the package that holds a module is not counted as imported by it (Python
    runs it first, but it is the module's parent, not a dependency)."""
    base = module.split(".") if is_package else module.split(".")[:-1]
    edges = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            edges |= {a.name for a in node.names if a.name.split(".")[0] == "scratchvae"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                target = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "scratchvae":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                edges.add(sub if exists(sub) else target)
    edges.discard(module)
    return {e for e in edges if not module.startswith(e + ".")}


def import_graph() -> dict:
    graph = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = _module_name(path)
        graph[name] = import_edges(path.read_text(encoding="utf-8"), name, path.name == "__init__.py")
    return graph


def find_cycle(graph: dict) -> list:
    """One import cycle as a list of modules (first == last), or [] if there is none."""
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == "open":
                return stack[stack.index(n):] + [n]
            if n not in state:
                found = visit(n)
                if found:
                    return found
        state[m] = "done"
        stack.pop()
        return []

    for m in sorted(graph):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return []


def test_no_import_cycle_lazy_imports_included():
    cycle = find_cycle(import_graph())
    assert not cycle, "import cycle: " + " -> ".join(cycle) + " (move the shared piece into a module both can import)"


def test_the_cycle_finder_finds_a_lazy_cycle():
    def exists(name):
        return name in ("scratchvae.a", "scratchvae.b")

    a = import_edges("def f():\n    from . import b\n", "scratchvae.a", False, exists)
    b = import_edges("from .a import f\n", "scratchvae.b", False, exists)
    assert a == {"scratchvae.b"} and b == {"scratchvae.a"}
    assert find_cycle({"scratchvae.a": a, "scratchvae.b": b}) == ["scratchvae.a", "scratchvae.b", "scratchvae.a"]
    assert import_edges("from .. import backend, layers", "scratchvae.models.vae", False) == {
        "scratchvae.backend", "scratchvae.layers"}
    assert import_edges("from .vae import VAE", "scratchvae.models", True) == {"scratchvae.models.vae"}


def test_the_maths_never_reaches_the_kernels():
    graph = import_graph()
    maths = [m for m in graph if m.split(".")[1:2] and m.split(".")[1] in MATHS]
    assert "scratchvae.optim" in maths and "scratchvae.models.vae" in maths and "scratchvae.linear.ppca" in maths
    for m in maths:
        seen, todo = set(), [m]
        while todo:  # everything m imports, directly or through others
            for n in graph.get(todo.pop(), ()):
                if n not in seen:
                    seen.add(n)
                    todo.append(n)
        reached = sorted(n for n in seen if n.startswith("scratchvae.kernels"))
        assert not reached, f"{m} reaches the engine room ({reached}); the Trainer installs kernels, the maths never asks"


def test_adam_reads_as_its_formula():
    source = (PACKAGE / "optim.py").read_text(encoding="utf-8")
    adam = next(n for n in ast.parse(source).body if isinstance(n, ast.ClassDef) and n.name == "Adam")
    doc_lines = set()
    for node in ast.walk(adam):
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and ast.get_docstring(node) is not None:
            d = node.body[0]
            doc_lines |= set(range(d.lineno, d.end_lineno + 1))
    lines = source.splitlines()[adam.lineno - 1: adam.end_lineno]
    code = [l for i, l in enumerate(lines, adam.lineno)
            if l.strip() and not l.strip().startswith("#") and i not in doc_lines]
    assert len(code) < 40, f"Adam has {len(code)} lines of code; the textbook's four lines should read in under 40"
    names = {n.id for n in ast.walk(adam) if isinstance(n, ast.Name)} | {
        n.attr for n in ast.walk(adam) if isinstance(n, ast.Attribute)}
    assert not names & {"kernels", "find", "find_each", "getattr", "import_module"}, names
