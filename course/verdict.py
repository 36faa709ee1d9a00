"""Plain-words verdicts for the scratchvae assignments.

One file, copied unchanged into every assignment folder (course/source/<assignment>/);
tests/test_course.py checks that the copies equal course/verdict.py. Each assignment's
``checks.py`` builds its checks from these pieces:

- ``compare``: your array against the answer key, printing "Correct: ..." or stopping
  with "Not yet: ..." that names the array, where it is off, by how much (and by which
  constant factor, when it is one), and a hint;
- ``call`` and ``returned``: run your function on copies of the inputs and say in plain
  words when it changes an input or returns the wrong number of things;
- ``own_work``: the rule of these assignments. scratchvae is the answer key the checks
  compare with, so an answer that calls it (directly, through a name bound to it, or
  through a helper function of the notebook that does) does not count;
- ``require``: a check that needs an earlier exercise runs that exercise's check first,
  and names it ("fix exercise 4.2 (kl_term) first") instead of failing later for a
  reason that is not here.

Everything runs on NumPy in float64, as gradient checks need.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import types

import numpy as np

from scratchvae import backend, gradcheck

backend.use("numpy", dtype="float64")  # NumPy arrays in float64, as gradient checks need
TOL = gradcheck.DEFAULT_TOL  # the pass mark, 1e-7 (Lesson 1, section 6)

#: modules an answer may not use: the answer key, and the checks built on it
KEY_MODULES = ("scratchvae", "verdict", "checks")
#: ...except these parts of scratchvae, which hold data, not answers
DATA_MODULES = ("scratchvae.datasets",)


# ------------------------------------------------------------------ running an answer

def _copy(value):
    if isinstance(value, np.ndarray):
        return np.copy(value)
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    return value


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.shape == b.shape and np.array_equal(a, b, equal_nan=True)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return True


def call(func, *args, **kwargs):
    """func(*args, **kwargs) on copies of the array (and dict-of-array) arguments, so that
    the check's own arrays stay as they were; say so if ``func`` changed one."""
    copies = [_copy(a) for a in args]
    kw_copies = {k: _copy(v) for k, v in kwargs.items()}
    try:
        out = func(*copies, **kw_copies)
    except (NotImplementedError, AssertionError, FloatingPointError):
        raise  # not written yet, a check inside it, or an overflow the caller explains
    except Exception as exc:  # a bug inside it: say so in plain words, keep its traceback
        shapes = ", ".join(f"{k} {v.shape}" for k, v in _named_arrays(func, args, kwargs))
        raise AssertionError(
            f"Not yet: {getattr(func, '__name__', 'your function')} raised {type(exc).__name__}: {exc}. "
            f"It was called with {shapes or 'no arrays'}; the traceback above points at the line. Hint: "
            "print the shapes of the arrays in that line and compare them with the docstring's.") from exc
    try:
        params = list(inspect.signature(func).parameters)
    except (TypeError, ValueError):
        params = []
    changed = [params[i] if i < len(params) else f"number {i + 1}"
               for i, (a, c) in enumerate(zip(args, copies)) if not _same(a, c)]
    changed += [k for k, v in kwargs.items() if not _same(v, kw_copies[k])]
    if changed:
        name = changed[0]
        raise AssertionError(f"Not yet: {func.__name__} changed its input {name} in place "
                             f"(with `{name} *= ...`, `{name}[...] = ...` or the like); "
                             "leave its inputs as they are and return new arrays.")
    return out


def _named_arrays(func, args, kwargs):
    try:
        params = list(inspect.signature(func).parameters)
    except (TypeError, ValueError):
        params = []
    named = [(params[i] if i < len(params) else f"argument {i + 1}", a) for i, a in enumerate(args)]
    return [(k, v) for k, v in named + list(kwargs.items()) if isinstance(v, np.ndarray)]


def returned(out, names, func):
    """Unpack what ``func`` (a name) returned, or say in plain words what is wrong with it."""
    want = ", ".join(names)
    if out is None:
        raise AssertionError(f"Not yet: {func} returned None: is a `return` missing?")
    if len(names) == 1:
        if isinstance(out, (tuple, list)):
            n = f"{len(out)} value" + ("" if len(out) == 1 else "s")
            why = (": the comma after it makes a tuple" if isinstance(out, tuple) and len(out) == 1
                   else ": the brackets make a list" if len(out) == 1 else "")
            raise AssertionError(f"Not yet: {func} should return one value, {want}, but it returned "
                                 f"a {type(out).__name__} of {n}{why}. Return {want} alone: `return {want}`.")
        values = (out,)
    elif isinstance(out, list):
        raise AssertionError(f"Not yet: {func} returned a list of {len(out)} value(s); return "
                             f"the {len(names)} values as a tuple: `return {want}`.")
    elif not isinstance(out, tuple):
        raise AssertionError(f"Not yet: {func} should return {len(names)} values, {want}, "
                             f"but it returned one {type(out).__name__}.")
    elif len(out) != len(names):
        raise AssertionError(f"Not yet: {func} should return {len(names)} values, {want}, "
                             f"but it returned {len(out)} values.")
    else:
        values = out
    for name, value in zip(names, values):
        if value is None:
            raise AssertionError(f"Not yet: {func} returned None for {name}: compute and return it.")
    return values if len(names) > 1 else values[0]


# ------------------------------------------------------------------ comparing with the key

def constant_factor(yours, expected):
    """The number c with yours = c * expected in every entry, if there is one and it is
    not 1 (else None); c = -1 is a flipped sign. For a single number, only a plain factor
    (2, 4, 1/2, ..., as a missing 1/N gives) counts: any two numbers have some ratio."""
    yours, expected = np.ravel(yours), np.ravel(expected)
    if yours.size == 1 and expected.size == 1:  # one number: name the factor only when it is a plain one
        if expected[0] == 0 or yours[0] == 0:
            return None
        c = float(yours[0] / expected[0])
        plain = [k for k in (2, 3, 4, 5, 6, 8, 10, 16, 32, 64, 100) if abs(abs(c) - k) <= 1e-6 * k
                 or abs(abs(c) - 1.0 / k) <= 1e-6 / k]
        return c if plain or abs(c + 1.0) <= 1e-6 else None
    nonzero = np.abs(expected) > 1e-12 * np.max(np.abs(expected), initial=0.0)
    if yours.size < 2 or not nonzero.any() or np.any(np.abs(yours[~nonzero]) > 1e-12):
        return None
    ratios = yours[nonzero] / expected[nonzero]
    c = float(np.median(ratios))
    return c if np.ptp(ratios) <= 1e-6 * abs(c) and abs(c - 1.0) > 1e-6 else None


def as_numbers(name, yours):
    """``yours`` as a float64 array, or a plain-words stop."""
    if isinstance(yours, dict):
        raise AssertionError(f"Not yet: {name} should be an array of numbers, got a dict.")
    try:
        return np.asarray(backend.to_numpy(yours) if not isinstance(yours, (float, int)) else yours,
                          dtype=np.float64)
    except (TypeError, ValueError):
        raise AssertionError(f"Not yet: {name} should be an array of numbers, got {type(yours).__name__}.") from None


def compare(name, yours, expected, against, hint, say_correct=True, tol=TOL, atol=0.0):
    """Print 'Correct: ...' if ``yours`` matches ``expected`` to the pass mark (relative
    error, entry by entry, as scratchvae.gradcheck measures it; differences <= atol count
    as none); else stop with 'Not yet: ...'."""
    yours = as_numbers(name, yours)
    expected = np.asarray(backend.to_numpy(expected), dtype=np.float64)
    if yours.shape != expected.shape:
        what = "a number" if expected.shape == () else f"shape {expected.shape}"
        raise AssertionError(f"Not yet: {name} has shape {yours.shape} but should be {what}. Hint: {hint}")
    if not np.all(np.isfinite(yours)):
        raise AssertionError(f"Not yet: {name} contains NaN or inf values. Hint: {hint}")
    report = gradcheck.GradReport(tol=tol, atol=atol)
    report.add(name, yours, expected)
    row = report[name]
    if row.error < tol:
        if say_correct:
            print(f"Correct: your {name} matches {against} (rel. error {row.error:.0e}).")
        return
    where = f" at {row.where}" if row.where else ""
    digits = 12 if row.error < 1e-4 else 6  # enough digits to see where two close numbers differ
    msg = (f"Not yet: {name} differs from {against}{where}: relative error {row.error:.2g} "
           f"(yours {row.analytic:.{digits}g}, expected {row.numeric:.{digits}g}).")
    c = constant_factor(yours, expected)
    if c is not None and abs(c + 1.0) <= 1e-6:
        msg += " Yours is minus the expected value in every entry: a sign is flipped."
    elif c is not None:
        every = " in every entry" if yours.size > 1 else ""
        msg += f" Yours is {c:.4g} times the expected value{every}: a factor is missing or extra."
    raise AssertionError(f"{msg} Hint: {hint}")


def close(name, yours, expected, against, hint, rtol, atol=0.0, say_correct=True):
    """Like ``compare`` for numbers that agree only to a looser tolerance (a statistic,
    an iterative fit): |yours - expected| <= atol + rtol |expected| entry by entry."""
    yours = as_numbers(name, yours)
    expected = np.asarray(backend.to_numpy(expected), dtype=np.float64)
    if yours.shape != expected.shape:
        raise AssertionError(f"Not yet: {name} has shape {yours.shape} but should have shape "
                             f"{expected.shape}. Hint: {hint}")
    if not np.all(np.isfinite(yours)):
        raise AssertionError(f"Not yet: {name} contains NaN or inf values. Hint: {hint}")
    gap = np.abs(yours - expected)
    bad = gap > atol + rtol * np.abs(expected)
    if not bad.any():
        if say_correct:
            print(f"Correct: your {name} matches {against} (largest difference {np.max(gap, initial=0):.2g}).")
        return
    i = np.unravel_index(int(np.argmax(np.where(bad, gap, -1.0))), gap.shape) if gap.ndim else ()
    where = f" at {tuple(int(j) for j in i)}" if gap.ndim else ""
    raise AssertionError(f"Not yet: {name} differs from {against}{where} (yours {float(yours[i]):.6g}, "
                         f"expected {float(expected[i]):.6g}, allowed difference "
                         f"{atol + rtol * abs(float(expected[i])):.2g}). Hint: {hint}")


def fail(message):
    """Stop with 'Not yet: message'."""
    raise AssertionError(f"Not yet: {message}")


# ------------------------------------------------------------------ the rule: your own work

def _code_objects(code):
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def _from_key(value) -> bool:
    """Is ``value`` part of the answer key (a module, function, class or object of it)?"""
    if isinstance(value, types.ModuleType):
        name = value.__name__
    else:
        name = getattr(value, "__module__", None)
        if not isinstance(name, str):
            name = type(value).__module__
    if not isinstance(name, str) or any(name == m or name.startswith(m + ".") for m in DATA_MODULES):
        return False
    return name.split(".")[0] in KEY_MODULES


def key_uses(func) -> list:
    """The names through which ``func``, or a function of the notebook that it calls,
    reaches scratchvae (or the checks): globals bound to it, imports inside a function,
    default arguments and closures. An empty list means none."""
    found, seen = [], set()

    def visit(f, where):
        f = inspect.unwrap(f)
        if not isinstance(f, types.FunctionType) or id(f) in seen:
            return
        seen.add(id(f))
        g = f.__globals__
        values = []
        for code in _code_objects(f.__code__):
            for name in code.co_names:
                if name.split(".")[0] in KEY_MODULES:  # `import scratchvae...` inside the function
                    found.append(f"{name} (imported in {where})")
                elif name in g:
                    values.append((name, g[name]))
            for const in code.co_consts:
                if isinstance(const, str) and "scratchvae" in const:
                    found.append(f"{const!r} (in {where})")
        values += [(f"a default argument of {where}", v) for v in (f.__defaults__ or ())]
        values += [(f"a default argument of {where}", v) for v in (f.__kwdefaults__ or {}).values()]
        for cell in f.__closure__ or ():
            try:
                values.append((f"a variable {where} closes over", cell.cell_contents))
            except ValueError:  # an empty cell
                pass
        for name, value in values:
            if _from_key(value):
                key = getattr(value, "__qualname__", None) or getattr(value, "__name__", None) or type(value).__name__
                module = value.__name__ if isinstance(value, types.ModuleType) else (
                    getattr(value, "__module__", None) or type(value).__module__)
                found.append(f"{name} (= {module}" + ("" if isinstance(value, types.ModuleType) else f".{key}") + ")")
            elif isinstance(value, types.FunctionType) and value.__module__ == f.__module__:
                visit(value, value.__name__)  # a helper of the notebook: its calls count too

    visit(func, func.__name__)
    return list(dict.fromkeys(found))


def own_work(func, name=None):
    """Stop with 'Not yet: ...' if ``func`` uses scratchvae (see ``key_uses``)."""
    name = name or getattr(func, "__name__", "your function")
    if not callable(func):
        raise AssertionError(f"Not yet: {name} should be a function, got {type(func).__name__}.")
    uses = key_uses(func)
    if uses:
        raise AssertionError(
            f"Not yet: {name} uses the answer key: {', '.join(uses)}. In these assignments "
            "scratchvae is what the checks compare your work with, so an answer may not call it: "
            f"write {name} with NumPy alone (np.exp, np.sum, @, np.linalg, ...).")


# ------------------------------------------------------------------ earlier exercises first

UNWRITTEN = "exercise "  # how require's messages start, so that a chain names the first culprit
FIX_FIRST = "Not yet: fix exercise "


def require(label, what, check, *args, **kwargs):
    """Run an earlier exercise's check quietly; if it fails, name that exercise.

    Inputs:
    - label: the exercise's number, e.g. "4.2"; what: its function, e.g. "kl_term".
    - check: its check function, called as check(*args, **kwargs).
    Raises NotImplementedError if that exercise is not written yet, AssertionError
    ("Not yet: fix exercise 4.2 (kl_term) first ...") if it fails its check.
    """
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            check(*args, **kwargs)
    except NotImplementedError as exc:
        if str(exc).startswith(UNWRITTEN):  # an exercise further back: name that one
            raise NotImplementedError(str(exc)) from None
        raise NotImplementedError(f"{UNWRITTEN}{label} ({what}) is not written yet; this check uses it: "
                                  f"write it, and pass its check, first") from None
    except AssertionError as exc:
        said = str(exc)
        if said.startswith(FIX_FIRST):  # an exercise further back is wrong: name that one
            raise AssertionError(said) from None
        said = said.removeprefix("Not yet: ")
        raise AssertionError(f"{FIX_FIRST}{label} ({what}) first; this check uses it, "
                             f"and its check says: {said}") from None
    except Exception as exc:
        raise AssertionError(f"Not yet: fix exercise {label} ({what}) first; this check uses it, and it "
                             f"raised {type(exc).__name__}: {exc}") from None


def floating_point_errors():
    """A context in which overflow and invalid operations raise FloatingPointError
    (so an exp that overflows is caught where it happens)."""
    return np.errstate(over="raise", invalid="raise", divide="raise")
