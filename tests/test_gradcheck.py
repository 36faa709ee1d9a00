"""scratchvae.gradcheck itself: the numerical gradient, the relative error, and that a
wrong backward is caught with a report that says where."""

import numpy as np
import pytest

from scratchvae import backend
from scratchvae.gradcheck import (
    DEFAULT_TOL, GradReport, check_function, check_layer, divmod_index, numerical_grad,
    numerical_vjp, rel_error,
)
from scratchvae.layers import Dense, Layer, Sigmoid, Tanh

from conftest import host


def A(h):
    return backend.asarray(h)


def test_numerical_grad_of_sum_of_cubes(bk64, hrng):
    xh = hrng.normal(size=(3, 4))
    x = A(xh.copy())
    g = numerical_grad(lambda v: bk64.xp.sum(v * v * v), x)
    assert rel_error(g, 3.0 * xh**2) < 1e-8
    np.testing.assert_array_equal(host(x), xh)  # x is restored after the nudges


def test_numerical_grad_of_a_0d_input(bk64):
    x = A(1.5)
    g = numerical_grad(lambda v: bk64.xp.exp(v), x)
    assert g.shape == () and abs(float(g) - np.exp(1.5)) < 1e-9


def test_numerical_vjp(bk64, hrng):
    xh, dyh = hrng.normal(size=(2, 3)), hrng.normal(size=(2, 3))
    dx = numerical_vjp(lambda v: bk64.xp.sin(v), A(xh), A(dyh))
    assert rel_error(dx, dyh * np.cos(xh)) < 1e-8


def test_rel_error_by_hand():
    # max_i |a - b| / max(1e-8, |a| + |b|)
    assert rel_error(np.array([1.0, 2.0]), np.array([1.0, 2.2])) == pytest.approx(0.2 / 4.2, rel=1e-12)
    assert rel_error(np.array([-1.0]), np.array([1.0])) == 1.0  # opposite signs: the maximum
    assert rel_error(np.zeros(3), np.zeros(3)) == 0.0  # 0 / 1e-8, no NaN
    assert rel_error(np.array([0.0]), np.array([1e-9])) == pytest.approx(0.1)  # the 1e-8 floor
    assert rel_error(np.array(3.0), np.array(3.0)) == 0.0
    with pytest.raises(ValueError, match=r"cannot compare gradients of shapes \(2,\) and \(3,\)"):
        rel_error(np.zeros(2), np.zeros(3))


def test_rel_error_on_backend_arrays(bk):
    assert rel_error(A([1.0, 4.0]), A([1.0, 2.0])) == pytest.approx(2.0 / 6.0, rel=1e-6)


def test_divmod_index():
    assert divmod_index(5, (2, 3)) == (1, 2)
    assert divmod_index(0, ()) == ()
    assert divmod_index(23, (2, 3, 4)) == (1, 2, 3)


def test_a_right_backward_passes_near_1e_10(bk64, hrng):
    report = check_layer(Tanh(), A(hrng.normal(size=(3, 4))))
    assert report.ok and report.max_error < 1e-8
    report.assert_ok()  # returns quietly
    assert "ok" in str(report) and "WRONG" not in str(report)


class ForgetfulTanh(Tanh):
    """Backward forgets the square: dy (1 - y) instead of dy (1 - y^2)."""

    def backward(self, dy):
        return dy * (1.0 - self.y)


class ForgetfulDense(Dense):
    """dW and dx right; db forgets the sum over the batch (keeps only row 0)."""

    def backward(self, dy):
        self.grads["W"] += self.x.T @ dy
        self.grads["b"] += dy[0, :]
        return dy @ self.params["W"].T


def test_a_wrong_backward_is_caught_and_located(bk64, hrng):
    xh = hrng.normal(size=(3, 4))
    report = check_layer(ForgetfulTanh(), A(xh), seed=7)
    assert not report.ok and report.max_error > 1e-2
    # where the worst error is, computed independently on the host
    dy = host(backend.RNG(7).normal((3, 4)))
    y = np.tanh(xh)
    right, wrong = dy * (1 - y**2), dy * (1 - y)
    err = np.abs(right - wrong) / np.maximum(np.abs(right) + np.abs(wrong), 1e-8)
    where = np.unravel_index(err.argmax(), err.shape)
    row = report["x"]
    assert row.shape == (3, 4) and row.where == tuple(int(i) for i in where)
    assert row.error == pytest.approx(err.max(), rel=1e-6)
    assert row.analytic == pytest.approx(wrong[where]) and row.numeric == pytest.approx(right[where], rel=1e-6)
    text = str(report)
    line = next(l for l in text.splitlines() if l.startswith("x "))
    assert "(3, 4)" in line and str(row.where) in line and "WRONG" in line
    with pytest.raises(AssertionError, match=r"gradient check failed:\n.*array.*max rel error"):
        report.assert_ok()


def test_a_wrong_parameter_gradient_is_named(bk64, hrng):
    layer = ForgetfulDense(4, 3, rng=backend.RNG(0))
    report = check_layer(layer, A(hrng.normal(size=(5, 4))))
    assert not report.ok
    assert report["x"].error < DEFAULT_TOL and report["W"].error < DEFAULT_TOL
    assert report["b"].error > 1e-2 and report["b"].shape == (3,)
    line = next(l for l in str(report).splitlines() if l.startswith("b "))
    assert "(3,)" in line and str(report["b"].where) in line and "WRONG" in line
    with pytest.raises(KeyError):
        report["nope"]


def test_check_function_catches_a_wrong_loss_gradient(bk64, hrng):
    xp = bk64.xp
    x = A(hrng.normal(size=(4,)))
    # f = sum(sigmoid(x)); a "gradient" that forgets the (1 - s) factor
    f = lambda x: xp.sum(1.0 / (1.0 + xp.exp(-x)))
    s = 1.0 / (1.0 + np.exp(-host(x)))
    good = check_function(f, {"x": x}, {"x": A(s * (1 - s))})
    bad = check_function(f, {"x": x}, {"x": A(s)})
    assert good.ok and not bad.ok and bad["x"].error > 0.1


def test_check_function_holds_other_inputs_fixed_and_restores(bk64, hrng):
    ah, bh, dyh = hrng.normal(size=(2, 3)), hrng.normal(size=(2, 3)), hrng.normal(size=(2, 3))
    a, b = A(ah.copy()), A(bh.copy())
    report = check_function(lambda a, b: a * b, {"a": a, "b": b}, {"a": A(dyh * bh)}, dy=A(dyh))
    assert [c.name for c in report.checks] == ["a"] and report.ok
    np.testing.assert_array_equal(host(a), ah)
    np.testing.assert_array_equal(host(b), bh)


def test_check_layer_restores_input_and_parameters(bk64, hrng):
    layer = Dense(3, 2, rng=backend.RNG(0))
    W0 = host(layer.params["W"])
    xh = hrng.normal(size=(2, 3))
    x = A(xh.copy())
    check_layer(layer, x).assert_ok()
    np.testing.assert_array_equal(host(x), xh)
    np.testing.assert_array_equal(host(layer.params["W"]), W0)


def test_float32_input_raises(bk64, hrng):
    x32 = bk64.xp.asarray(A(hrng.normal(size=(2, 3))), dtype=bk64.xp.float32)
    with pytest.raises(TypeError, match=r"gradient checks run in float64, but x has dtype .*float32.*using\(dtype='float64'\)"):
        check_layer(Sigmoid(), x32)
    with pytest.raises(TypeError, match=r"gradient checks run in float64, but x has dtype"):
        numerical_grad(lambda v: bk64.xp.sum(v), x32)
    with pytest.raises(TypeError, match=r"gradient checks run in float64, but w has dtype"):
        check_function(lambda w: bk64.xp.sum(w), {"w": x32}, {"w": x32})


def test_float32_layer_parameters_raise(hrng):
    with backend.using("numpy", dtype="float32"):
        layer = Dense(3, 2)
    with backend.using("numpy", dtype="float64"):
        with pytest.raises(TypeError, match=r"gradient checks run in float64, but parameter 'W' has dtype float32"):
            check_layer(layer, A(hrng.normal(size=(2, 3))))


def test_report_tolerance_and_empty_report():
    assert GradReport().ok and GradReport().max_error == 0.0
    r = GradReport(tol=1e-3)
    r.add("w", np.array([1.0, 2.0]), np.array([1.0, 2.001]))  # error 2.5e-4
    assert r.ok and "pass mark: max rel error < 0.001" in str(r)
    r = GradReport()  # 1e-7 < error 1e-5 < 1e-4: "suspect", not passed
    r.add("w", np.array([1.0]), np.array([1.00002]))
    assert not r.ok and "suspect" in str(r) and "WRONG" not in str(r)


class Twice(Layer):
    """y = 2 x, a parameter-free layer used to check the Layer protocol is enough."""

    def forward(self, x):
        return 2.0 * x

    def backward(self, dy):
        return 2.0 * dy


def test_check_layer_accepts_any_layer_like_object(bk64, hrng):
    report = check_layer(Twice(), A(hrng.normal(size=(2, 2))))
    assert report.ok and [c.name for c in report.checks] == ["x"]


def test_atol_forgives_rounding_at_an_exact_zero_but_not_a_bug(bk64, hrng):
    # log(exp(x)) - x = 0: the true gradient is exactly 0, the central difference only
    # rounding noise (about 1e-12 here), which the 1e-8 floor turns into a large error
    xp = bk64.xp
    x = A(hrng.normal(size=(4, 5)))

    def f(x):
        return xp.sum(xp.log(xp.exp(x)) - x)

    zero = xp.zeros_like(x)
    noisy = check_function(f, {"x": x}, {"x": zero})
    assert float(np.max(np.abs(host(numerical_grad(f, x))))) > 0.0  # the noise is there
    assert not noisy.ok and "exact 0" in str(noisy) and "atol" in str(noisy)
    forgiven = check_function(f, {"x": x}, {"x": zero}, atol=1e-9)
    assert forgiven.ok and forgiven.max_error == 0.0 and "count as 0" in str(forgiven)
    # a real error is still caught
    assert not check_function(f, {"x": x}, {"x": zero + 1e-3}, atol=1e-9).ok
    assert rel_error(np.array([0.0, 1.0]), np.array([1e-12, 1.0 + 1e-3]), atol=1e-9) == pytest.approx(1e-3 / 2.001)
    with pytest.raises(ValueError, match="atol must be >= 0"):
        rel_error(np.zeros(2), np.zeros(2), atol=-1.0)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_nan_or_inf_gradient_fails_in_any_row(bk64, hrng, bad):
    # the second row is the bad one: Python's max() skips a NaN that does not come first
    xp = bk64.xp
    x, y = A(hrng.normal(size=(3,))), A(hrng.normal(size=(2, 2)))

    def f(x, y):
        return xp.sum(x * x) + xp.sum(y * y)

    gy = 2.0 * host(y)
    gy[1, 0] = bad
    report = check_function(f, {"x": x, "y": y}, {"x": 2.0 * x, "y": A(gy)})
    assert not report.ok and report["y"].where == (1, 0) and report["y"].error == float("inf")
    assert "WRONG" in str(report)
    with pytest.raises(AssertionError, match="gradient check failed"):
        report.assert_ok()
    assert rel_error(np.array([1.0, np.nan]), np.array([1.0, 2.0])) == float("inf")
