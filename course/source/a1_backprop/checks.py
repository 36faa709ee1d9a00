"""The checks of assignment 1 (backprop and gradient checking), one per exercise.

Each takes your function(s), runs them on fresh random inputs and compares with the
answer key: scratchvae's layers and scratchvae.gradcheck (numerical gradients in
float64). A check prints "Correct: ..." or stops with "Not yet: ..." and a hint; one
that uses an earlier exercise checks that exercise first and names it if it fails.
"""

import numpy as np

from scratchvae import gradcheck, layers
from verdict import TOL, call, compare, fail, floating_point_errors, own_work, require, returned


def _rng(seed):
    return np.random.default_rng(seed)


# ---------------------------------------------------------------- 1.1 and 1.2: the dense layer

def dense_forward(dense_forward, seed=1, shape=(4, 5, 3)):
    """Exercise 1.1: y = x W + b, L1 (1)."""
    own_work(dense_forward)
    N, D, H = shape
    rng = _rng(seed)
    x, W, b = rng.normal(size=(N, D)), rng.normal(size=(D, H)), rng.normal(size=H)
    y, _ = returned(call(dense_forward, x, W, b), ["y", "cache"], "dense_forward")
    fc = layers.Dense(D, H)
    fc.params["W"], fc.params["b"] = W, b
    compare("y", y, fc.forward(x), "scratchvae.layers.Dense.forward",
            hint="batches are rows: y = x W + b with x (N, D) and W (D, H), so the product is x @ W, "
                 "and b (H,) is added to every row.")


def dense_backward(dense_forward_fn, dense_backward, seed=2, shape=(4, 5, 3)):
    """Exercise 1.2: the gradients of L1 (2), against central differences."""
    require("1.1", "dense_forward", dense_forward, dense_forward_fn)
    own_work(dense_backward)
    N, D, H = shape
    rng = _rng(seed)
    x, W, b, dy = (rng.normal(size=s) for s in [(N, D), (D, H), (H,), (N, H)])
    _, cache = call(dense_forward_fn, x, W, b)
    dx, dW, db = returned(call(dense_backward, dy, cache), ["dx", "dW", "db"], "dense_backward")
    y_of = lambda _: x @ W + b  # numerical_vjp nudges x, W or b in place
    vjp = lambda v: gradcheck.numerical_vjp(y_of, v, dy, h=1e-3)  # y is linear in each: exact
    compare("dW", dW, vjp(W), "the numerical gradient",
            hint="dW has W's shape (D, H): write dL/dW_dj as a sum over the rows n, then find the "
                 "product of x and dy that has that shape, L1 (2).")
    compare("db", db, vjp(b), "the numerical gradient",
            hint="b is added to every row, so dL/db adds up dy over the batch (axis 0): a sum, not a mean.")
    compare("dx", dx, vjp(x), "the numerical gradient",
            hint="dx has x's shape (N, D): write dL/dx_nd as a sum over j, then find the product "
                 "of dy and W that has that shape, L1 (2).")


# ---------------------------------------------------------------- 1.3: the sigmoid

def sigmoid(sigmoid_forward, sigmoid_backward, seed=3, shape=(4, 6)):
    """Exercise 1.3: sigmoid forward (stable) and backward from the cached output."""
    own_work(sigmoid_forward)
    own_work(sigmoid_backward)
    rng = _rng(seed)
    x = rng.normal(0.0, 1.5, size=shape)
    dy = rng.normal(size=shape)
    y, cache = returned(call(sigmoid_forward, x), ["y", "cache"], "sigmoid_forward")
    compare("y", y, layers.sigmoid(x), "scratchvae.layers.sigmoid",
            hint="y = 1 / (1 + exp(-x)), entry by entry.", say_correct=False)
    big = np.array([[800.0, -800.0, 40.0, -40.0, 0.0]])
    try:
        with floating_point_errors():
            y_big, _ = call(sigmoid_forward, big)
    except FloatingPointError as exc:
        fail(f"sigmoid_forward at x = (800, -800, 40, -40, 0) overflows ({exc}): exp(800) is "
             "larger than any float64. Hint: for x < 0 write sigmoid(x) = exp(x) / (1 + exp(x)), "
             "so that exp only ever sees numbers <= 0 (np.where, or np.exp(-np.abs(x))).")
    compare("y at x = (800, -800, 40, -40, 0)", y_big, layers.sigmoid(big), "scratchvae.layers.sigmoid",
            hint="for x < 0 use exp(x) / (1 + exp(x)); for x >= 0, 1 / (1 + exp(-x)).", say_correct=False)
    print("Correct: your sigmoid_forward matches scratchvae.layers.sigmoid, also at x = +-800.")
    dx = returned(call(sigmoid_backward, dy, cache), ["dx"], "sigmoid_backward")
    compare("dx", dx, gradcheck.numerical_vjp(layers.sigmoid, x, dy, h=1e-3, order=4), "the numerical gradient",
            hint="sigmoid'(x) = sigmoid(x) (1 - sigmoid(x)) = y (1 - y): keep y in the cache, then "
                 "multiply dy by that slope entry by entry (as tanh's L1 (3) does with 1 - y^2).")


# ---------------------------------------------------------------- 1.4 - 1.6: the checker itself

def rel_error(rel_error, seed=4):
    """Exercise 1.4: the relative error of L1 (8)."""
    own_work(rel_error)
    rng = _rng(seed)
    a = rng.normal(size=(3, 4))
    b = a * (1.0 + 1e-3 * rng.normal(size=(3, 4)))
    b[1, 2] += 0.5  # one entry far off: the largest error is there
    hint = ("L1 (8): for each entry |a - b| / max(1e-8, |a| + |b|), and the largest over all entries "
            "(a max, not a mean); the 1e-8 floor keeps 0 / 0 out.")
    got = returned(call(rel_error, a, b), ["error"], "rel_error")
    compare("rel_error(a, b)", got, gradcheck.rel_error(a, b), "scratchvae.gradcheck.rel_error", hint=hint)
    zeros = np.zeros((2, 2))
    got0 = returned(call(rel_error, zeros, zeros), ["error"], "rel_error")
    compare("rel_error(0, 0)", got0, 0.0, "0 (two equal arrays)", hint=hint + " At a = b = 0 it must be 0, not NaN.")


def _one_sided(c, x, h):
    """The one-sided difference (f(x + h e_i) - f(x)) / h, L1 (5), of the check's separable
    f(v) = sum(c sin v) + sum(v^3) / 2, entry by entry in closed form."""
    return (c * (np.sin(x + h) - np.sin(x)) + 0.5 * ((x + h) ** 3 - x**3)) / h


def numerical_grad(numerical_grad, seed=5, shape=(3, 4)):
    """Exercise 1.5: the central difference of L1 (6)."""
    own_work(numerical_grad)
    rng = _rng(seed)
    x = rng.normal(size=shape)
    c = rng.normal(size=shape)
    f = lambda v: float(np.sum(c * np.sin(v)) + 0.5 * np.sum(v**3))
    try:
        got = returned(call(numerical_grad, f, x, 1e-5), ["grad"], "numerical_grad")
    except AssertionError as exc:
        if "changed its input x" in str(exc):
            fail("numerical_grad left x changed: after evaluating f at x + h e_i and x - h e_i, put the "
                 "old value of x[i] back before moving on to the next entry, L1 (6).")
        raise
    expected = gradcheck.numerical_grad(f, np.copy(x), h=1e-5)
    hint = ("L1 (6): for each entry i, (f(x + h e_i) - f(x - h e_i)) / (2 h), nudging one entry of x "
            "in place and putting it back before the next.")
    try:
        compare("grad", got, expected, "scratchvae.gradcheck.numerical_grad", hint=hint, say_correct=False)
    except AssertionError:
        if gradcheck.rel_error(got, _one_sided(c, x, 1e-5)) < 1e-6:
            fail("your numerical_grad is the one-sided difference (f(x + h) - f(x)) / h, L1 (5), whose "
                 "error is O(h), about 1e-5 here: too large to check a gradient to 1e-7. Hint: " + hint)
        raise
    print("Correct: your numerical_grad matches scratchvae.gradcheck.numerical_grad "
          f"(rel. error {gradcheck.rel_error(got, expected):.0e}).")


def numerical_vjp(numerical_grad_fn, numerical_vjp, seed=6, shape=(3, 4), out=(2, 5)):
    """Exercise 1.6: the vector-Jacobian product of L1 (9)."""
    require("1.5", "numerical_grad", numerical_grad, numerical_grad_fn)
    own_work(numerical_vjp)
    rng = _rng(seed)
    x = rng.normal(size=shape)
    A = rng.normal(size=(shape[1], out[1]))
    dy = rng.normal(size=(shape[0], out[1]))
    f = lambda v: np.tanh(v @ A)
    got = returned(call(numerical_vjp, f, x, dy, 1e-5), ["dx"], "numerical_vjp")
    compare("dx", got, gradcheck.numerical_vjp(f, np.copy(x), dy, h=1e-5),
            "scratchvae.gradcheck.numerical_vjp",
            hint="L1 (9): the gradient of the scalar sum_j dy_j f_j(x); pass that scalar function "
                 "to your numerical_grad.")


# ---------------------------------------------------------------- 1.7: your checker on your layer

def _db_as_mean(dy, cache):
    inputs, weights = cache
    return dy @ weights.T, inputs.T @ dy, np.mean(dy, axis=0)


def _dx_without_transpose(dy, cache):
    inputs, weights = cache
    return dy @ weights, inputs.T @ dy, np.sum(dy, axis=0)


def _dW_transposed(dy, cache):
    inputs, weights = cache
    return dy @ weights.T, (inputs.T @ dy).T, np.sum(dy, axis=0)


def _forward_for_bugs(x, W, b):
    return x @ W + b, (x, W)


def check_dense(fns, check_dense, seed=7, shape=(4, 3, 3)):
    """Exercise 1.7: your checker, used on your layer and on three buggy ones.

    fns: dict with your dense_forward, dense_backward, rel_error, numerical_grad, numerical_vjp.
    """
    require("1.2", "dense_backward", dense_backward, fns["dense_forward"], fns["dense_backward"])
    require("1.4", "rel_error", rel_error, fns["rel_error"])
    require("1.6", "numerical_vjp", numerical_vjp, fns["numerical_grad"], fns["numerical_vjp"])
    own_work(check_dense)
    N, D, H = shape
    rng = _rng(seed)
    x, W, b, dy = (rng.normal(size=s) for s in [(N, D), (D, H), (H,), (N, H)])

    def errors(forward, backward, who):
        got = call(check_dense, forward, backward, x, W, b, dy)
        if not isinstance(got, dict) or set(got) != {"x", "W", "b"}:
            fail(f"check_dense should return a dict with the keys 'x', 'W' and 'b' (the largest "
                 f"relative error of dx, dW and db), got {got!r}")
        for k, v in got.items():
            if not np.isfinite(float(v)) or float(v) < 0:
                fail(f"check_dense({who}) gave {v!r} for {k!r}: a relative error is a number >= 0.")
        return {k: float(v) for k, v in got.items()}

    own = errors(fns["dense_forward"], fns["dense_backward"], "your layer")
    bad = [k for k, v in own.items() if v >= TOL]
    if bad:
        fail(f"on your own dense layer (which passes exercise 1.2) check_dense reports {own}: "
             f"{', '.join(bad)} at or above the pass mark {TOL:g}. Hint: compare your backward's "
             "gradients with numerical_vjp of the forward's y with respect to x, W and b, holding "
             "the other two fixed, with the dy you were given (not ones).")
    print(f"Correct: on your dense layer your checker reports {', '.join(f'{k}: {v:.1e}' for k, v in own.items())}.")
    for backward, wrong, what in [(_db_as_mean, "b", "averages db over the batch instead of summing it"),
                                  (_dx_without_transpose, "x", "computes dx = dy @ W (no transpose; D = H, so the "
                                                               "shapes fit)"),
                                  (_dW_transposed, "W", "returns dW transposed (D = H, so the shape fits)")]:
        found = errors(_forward_for_bugs, backward, "a buggy layer")
        if found[wrong] < 1e-2 or any(found[k] >= TOL for k in found if k != wrong):
            fail(f"on a dense layer whose backward {what}, check_dense reports {found}; it should flag "
                 f"{wrong!r} (error far above 1e-2) and pass the other two. Hint: each entry must compare "
                 "one gradient, from the backward you are given, with numerical_vjp of that layer's forward.")
        print(f"Correct: your checker catches a backward that {what.split(' (')[0]} "
              f"({wrong}: {found[wrong]:.1e}).")
