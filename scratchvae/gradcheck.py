"""Gradient checking: is a hand-written backward pass right?

The numerical gradient is the central difference (lesson 1)

    df/dx_i ~ (f(x + h e_i) - f(x - h e_i)) / (2 h)        error O(h^2)          L1 (6)

and the comparison is cs231n's relative error, element by element,

    rel_error(a, b) = max_i |a_i - b_i| / max(1e-8, |a_i| + |b_i|).             L1 (8)

The 1e-8 floor keeps 0 / 0 finite, but an entry whose true gradient is exactly 0 (a ReLU
unit that is off for every example, say) still reads as an error: the central
difference gives rounding noise of about eps |f| / h there (1e-13 for |f| ~ 1), and
1e-13 / 1e-8 = 1e-5 fails the pass mark. ``atol`` says how large a difference counts as
no difference: entries with |a_i - b_i| <= atol score 0 (as numpy.allclose's atol).
Leave it at 0 unless you know the scale of the rounding; the report points at exact
zeros when they are what fails.

What to expect in float64 with h = 1e-5: about 1e-10 or smaller when the gradient is
right; 1e-7 is the pass mark; 1e-2 or worse means a bug. In float32 the central
difference itself is only good to about 1e-3, which is why checks run in float64: its
error is truncation plus rounding, h^2 |f'''| / 6 + eps |f| / h, L1 (7).

An array-valued f is checked through the scalar sum_j dy_j f_j(x), whose gradient is
the vector-Jacobian product J' dy that backward computes, L1 (9), with a random dy:
all ones would check only the column sums of J.

The arrays are perturbed in place, one entry at a time, on whichever backend they live
on; only the final comparison is copied to the host, explicitly, through ``to_numpy``.

Public API
----------
numerical_grad(f, x)         gradient of a scalar function f(x)
numerical_vjp(f, x, dy)      vector-Jacobian product sum_j dy_j df_j/dx of an array f(x)
rel_error(a, b, atol=0)     the relative error above, as a float
check_function(f, inputs, grads, dy=None)   compare given gradients with numerical ones
check_layer(layer, x)        forward/backward of a layer (or model) against numerics
GradReport                   the result: printable table, .ok, .assert_ok()
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

from . import backend

# The report needs host arrays to locate the worst entry; it gets them through
# backend.to_numpy, an explicit copy, never by converting silently.

DEFAULT_H = 1e-5  # near the best step of L1 (7) in float64, h* ~ eps^(1/3) = 6e-6
DEFAULT_TOL = 1e-7


def _require_float64(x, name: str) -> None:
    xp = backend.namespace(x)
    if x.dtype != xp.float64:
        raise TypeError(
            f"gradient checks run in float64, but {name} has dtype {x.dtype}; create the "
            "arrays and layers inside `with scratchvae.backend.using(dtype='float64'):`"
        )


def _indices(shape):
    return itertools.product(*(range(n) for n in shape))


# Central-difference stencils: offsets k and weights c with df/dx ~ sum_k c_k f(x + k h) / h.
# No one-sided (f(x+h) - f(x)) / h, L1 (5): its error is O(h), too large for a check.
#   order 2: (f(x+h) - f(x-h)) / 2h                              error O(h^2), L1 (6)
#   order 4: (f(x-2h) - 8 f(x-h) + 8 f(x+h) - f(x+2h)) / 12h     error O(h^4)
# Order 4 with h = 1e-3 is about 100x more accurate on smooth functions (rounding error
# ~ eps |f| / h shrinks as h grows), but a larger h is likelier to step over a ReLU kink.
STENCILS = {2: ((-1, -0.5), (1, 0.5)), 4: ((-2, 1 / 12), (-1, -8 / 12), (1, 8 / 12), (2, -1 / 12))}


def _derivative(x, idx, f, h, order):
    """sum_k c_k f(x + k h e_idx) / h, leaving x as it was."""
    try:
        stencil = STENCILS[order]
    except KeyError:
        raise ValueError(f"order must be 2 or 4, got {order!r}") from None
    old = float(x[idx])
    total = 0.0
    for k, c in stencil:
        x[idx] = old + k * h
        total += c * f()
    x[idx] = old
    return total / h


def numerical_grad(f, x, h: float = DEFAULT_H, order: int = 2):
    """Central-difference gradient of a scalar function.

    Inputs:
    - f: callable f(x) returning a float or a 0-d array; x is perturbed in place.
    - x: array of any shape, float64.
    - h: step; order: 2 (the textbook formula below) or 4 (see STENCILS).
    Returns:
    - grad: array like x, grad[i] = (f(x + h e_i) - f(x - h e_i)) / (2 h), L1 (6).
    """
    _require_float64(x, "x")
    xp = backend.namespace(x)
    grad = xp.zeros_like(x)
    for idx in _indices(x.shape):
        grad[idx] = _derivative(x, idx, lambda: float(f(x)), h, order)
    return grad


def numerical_vjp(f, x, dy, h: float = DEFAULT_H, order: int = 2):
    """Central-difference vector-Jacobian product J' dy of an array function, L1 (9).

    Inputs:
    - f: callable f(x) returning an array y; x is perturbed in place.
    - x: array, float64.
    - dy: upstream gradient, same shape as y (use random values, never all ones:
      ones hide errors that cancel across outputs).
    Returns:
    - dx: array like x, dx[i] = sum_j dy_j (f_j(x + h e_i) - f_j(x - h e_i)) / (2 h).
    """
    xp = backend.namespace(x)
    return numerical_grad(lambda v: xp.sum(f(v) * dy), x, h, order)


def rel_error(a, b, atol: float = 0.0) -> float:
    """cs231n's relative error max_i |a_i - b_i| / max(1e-8, |a_i| + |b_i|), L1 (8);
    entries with |a_i - b_i| <= atol count as equal (score 0)."""
    return _worst(a, b, atol)[0]


def _worst(a, b, atol: float = 0.0):
    a, b = backend.to_numpy(a), backend.to_numpy(b)
    if a.shape != b.shape:
        raise ValueError(f"cannot compare gradients of shapes {a.shape} and {b.shape}")
    if not atol >= 0.0:
        raise ValueError(f"atol must be >= 0, got {atol}")
    if a.size == 0:
        return 0.0, ()
    # a NaN or inf gradient is wrong, whatever the other says (x != x: NaN)
    bad = (a != a) | (b != b) | (abs(a) == math.inf) | (abs(b) == math.inf)
    if bad.any():
        return math.inf, tuple(int(i) for i in divmod_index(int(bad.argmax()), a.shape))
    diff = abs(a - b)
    err = diff / (abs(a) + abs(b)).clip(min=1e-8) * (diff > atol)  # L1 (8); within atol: equal, 0
    flat = int(err.argmax())
    idx = tuple(int(i) for i in divmod_index(flat, a.shape))
    return float(err.max()), idx


def divmod_index(flat: int, shape) -> tuple:
    """The multi-index of entry ``flat`` in a C-ordered array of ``shape``."""
    idx = []
    for n in reversed(shape):
        flat, r = divmod(flat, n)
        idx.append(r)
    return tuple(reversed(idx))


@dataclass
class GradCheck:
    """One array's comparison."""

    name: str
    shape: tuple
    error: float
    where: tuple
    analytic: float
    numeric: float


@dataclass
class GradReport:
    """The result of a gradient check: one row per array.

    ``print(report)`` shows name, shape, largest relative error and where it occurs.
    """

    checks: list = field(default_factory=list)
    tol: float = DEFAULT_TOL
    atol: float = 0.0

    @property
    def max_error(self) -> float:
        return max((c.error for c in self.checks), default=0.0)

    @property
    def ok(self) -> bool:
        return self.max_error < self.tol

    def __getitem__(self, name: str) -> GradCheck:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def __str__(self) -> str:
        head = f"{'array':<16}{'shape':<14}{'max rel error':>14}  {'at':<12}{'analytic':>12}{'numeric':>12}  verdict"
        lines = [head, "-" * len(head)]
        for c in self.checks:
            verdict = "ok" if c.error < self.tol else "WRONG" if c.error > 1e-4 else "suspect"
            lines.append(
                f"{c.name:<16}{str(c.shape):<14}{c.error:>14.2e}  {str(c.where):<12}"
                f"{c.analytic:>12.4g}{c.numeric:>12.4g}  {verdict}"
            )
        lines.append(f"pass mark: max rel error < {self.tol:g} (expect about 1e-10 in float64)"
                     + (f"; differences <= atol = {self.atol:g} count as 0" if self.atol else ""))
        for c in self.checks:
            if c.error >= self.tol and c.analytic == 0.0 and abs(c.numeric) < 1e-8:
                lines.append(f"note: {c.name}'s worst entry is an exact 0 against {c.numeric:.1e}: if that is "
                             "rounding noise (about eps |f| / h), compare with atol (gradcheck docstring)")
        return "\n".join(lines)

    __repr__ = __str__

    def assert_ok(self) -> "GradReport":
        if not self.ok:
            raise AssertionError("gradient check failed:\n" + str(self))
        return self

    def add(self, name: str, analytic, numeric) -> None:
        err, where = _worst(analytic, numeric, self.atol)
        a, n = backend.to_numpy(analytic), backend.to_numpy(numeric)
        self.checks.append(
            GradCheck(name, tuple(a.shape), err, where,
                      float(a[where]) if a.size else 0.0, float(n[where]) if n.size else 0.0)
        )


def check_function(f, inputs: dict, grads: dict, dy=None, h: float = DEFAULT_H,
                   tol: float = DEFAULT_TOL, order: int = 2, atol: float = 0.0) -> GradReport:
    """Compare analytic gradients with central differences.

    Inputs:
    - f: callable f(**inputs) returning a scalar (then dy must be None) or an array.
    - inputs: dict name -> float64 array; each is perturbed in place, then restored.
    - grads: dict name -> analytic gradient of sum(dy * f) (or of f if scalar) with
      respect to inputs[name]; names not in grads are held fixed.
    - dy: upstream gradient for an array-valued f (random, not all ones).
    - h, order: the finite-difference step and stencil (see numerical_grad).
    - tol, atol: the pass mark, and differences that count as none (module docstring).
    Returns a GradReport.
    """
    report = GradReport(tol=tol, atol=atol)
    for name, g in grads.items():
        x = inputs[name]
        _require_float64(x, name)
        if dy is None:
            num = numerical_grad(lambda _: f(**inputs), x, h, order)
        else:
            num = numerical_vjp(lambda _: f(**inputs), x, dy, h, order)
        report.add(name, g, num)
    return report


def check_layer(layer, x, seed: int = 0, h: float = DEFAULT_H, tol: float = DEFAULT_TOL,
                order: int = 2, atol: float = 0.0) -> GradReport:
    """Check ``layer.backward`` for the input and every parameter.

    Works for anything with the layer contract: ``forward(x)``, ``backward(dy)``,
    ``params``, ``grads``, ``zero_grad()`` (a Dense, an activation, a Sequential).
    The upstream gradient dy is drawn from N(0, 1) with ``seed`` (random, not all ones:
    see L1 (9)).

    Inputs:
    - layer: the layer, its parameters in float64.
    - x: (N, D) float64 input.
    Returns a GradReport with rows "x" and one per parameter name.
    """
    _require_float64(x, "x")
    for name, p in layer.params.items():
        _require_float64(p, f"parameter {name!r}")
    y = layer.forward(x)
    dy = backend.RNG(seed).normal(y.shape)
    dy = backend.namespace(x).astype(dy, x.dtype)  # the RNG gives the backend dtype
    layer.zero_grad()
    dx = layer.backward(dy)
    analytic = {"x": dx, **{k: g for k, g in layer.grads.items()}}
    # Copy the analytic gradients: the numerical loop calls forward again, and a
    # backward elsewhere must not change them under us.
    xp = backend.namespace(x)
    analytic = {k: xp.asarray(v, copy=True) for k, v in analytic.items()}
    targets = {"x": x, **layer.params}
    report = GradReport(tol=tol, atol=atol)
    for name, target in targets.items():
        num = numerical_vjp(lambda _: layer.forward(x), target, dy, h, order)
        report.add(name, analytic[name], num)
    return report
