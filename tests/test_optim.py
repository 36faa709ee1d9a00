"""scratchvae.optim: SGD, momentum and Adam against hand-written NumPy arithmetic,
state on the parameter's device, state_dict round trips, and overfitting a tiny batch."""

import math

import numpy as np
import pytest

from scratchvae import backend, losses
from scratchvae.layers import mlp
from scratchvae.optim import SGD, Adam

from conftest import host, tol


def A(h):
    return backend.asarray(h)


def _setup(hrng, steps=3):
    """Host starting values and a fixed sequence of host gradients for two parameters
    (rounded to float32 so every backend starts from exactly the same numbers)."""
    r = lambda *s: hrng.normal(size=s).astype(np.float32).astype(np.float64)
    p0 = {"enc.fc1.W": r(2, 3), "enc.fc1.b": r(3)}
    gs = [{k: r(*v.shape) for k, v in p0.items()} for _ in range(steps)]
    return p0, gs


def _run(opt, p0, gs):
    # copies: on the NumPy backend asarray passes a float64 array through, and the
    # in-place steps would change the host reference values
    params = {k: A(v.copy()) for k, v in p0.items()}
    trace = []
    for g in gs:
        opt.step(params, {k: A(v) for k, v in g.items()})
        trace.append({k: host(v).astype(np.float64) for k, v in params.items()})
    return params, trace


def test_adam_first_three_steps_by_hand(bk, hrng):
    p0, gs = _setup(hrng)
    lr, b1, b2, eps = 0.1, 0.8, 0.99, 1e-8
    _, trace = _run(Adam(lr=lr, betas=(b1, b2), eps=eps), p0, gs)
    for k in p0:
        p, m, v = p0[k].copy(), np.zeros_like(p0[k]), np.zeros_like(p0[k])
        g1, g2, g3 = (g[k] for g in gs)
        # step 1
        m = 0.8 * m + 0.2 * g1
        v = 0.99 * v + 0.01 * g1**2
        p = p - 0.1 * (m / (1 - 0.8)) / (np.sqrt(v / (1 - 0.99)) + 1e-8)
        np.testing.assert_allclose(trace[0][k], p, rtol=tol(bk), atol=tol(bk))
        # step 1 moves each entry by lr against the sign of its gradient (bias correction)
        np.testing.assert_allclose(trace[0][k] - p0[k], -0.1 * np.sign(g1), rtol=1e-4)
        # step 2
        m = 0.8 * m + 0.2 * g2
        v = 0.99 * v + 0.01 * g2**2
        p = p - 0.1 * (m / (1 - 0.8**2)) / (np.sqrt(v / (1 - 0.99**2)) + 1e-8)
        np.testing.assert_allclose(trace[1][k], p, rtol=tol(bk), atol=tol(bk))
        # step 3
        m = 0.8 * m + 0.2 * g3
        v = 0.99 * v + 0.01 * g3**2
        p = p - 0.1 * (m / (1 - 0.8**3)) / (np.sqrt(v / (1 - 0.99**3)) + 1e-8)
        np.testing.assert_allclose(trace[2][k], p, rtol=tol(bk), atol=tol(bk))


def test_adam_default_hyperparameters(bk, hrng):
    p0, gs = _setup(hrng, steps=2)
    _, trace = _run(Adam(), p0, gs)
    k = "enc.fc1.W"
    g1, g2 = gs[0][k], gs[1][k]
    m1, v1 = 0.1 * g1, 0.001 * g1**2
    p1 = p0[k] - 1e-3 * (m1 / 0.1) / (np.sqrt(v1 / 0.001) + 1e-8)
    m2, v2 = 0.9 * m1 + 0.1 * g2, 0.999 * v1 + 0.001 * g2**2
    p2 = p1 - 1e-3 * (m2 / (1 - 0.9**2)) / (np.sqrt(v2 / (1 - 0.999**2)) + 1e-8)
    np.testing.assert_allclose(trace[1][k], p2, rtol=tol(bk), atol=tol(bk))


def test_sgd_momentum_first_three_steps_by_hand(bk, hrng):
    p0, gs = _setup(hrng)
    _, trace = _run(SGD(lr=0.05, momentum=0.9), p0, gs)
    for k in p0:
        g1, g2, g3 = (g[k] for g in gs)
        v1 = g1  # v <- 0.9 v + g, from v = 0
        p1 = p0[k] - 0.05 * v1
        v2 = 0.9 * v1 + g2
        p2 = p1 - 0.05 * v2
        v3 = 0.9 * v2 + g3
        p3 = p2 - 0.05 * v3
        for got, want in zip(trace, (p1, p2, p3)):
            np.testing.assert_allclose(got[k], want, rtol=tol(bk), atol=tol(bk))


def test_plain_sgd_by_hand(bk, hrng):
    p0, gs = _setup(hrng, steps=2)
    opt = SGD(lr=0.3)
    assert opt.state == {} and opt.state_dict() == {"t": 0, "lr": 0.3}
    _, trace = _run(opt, p0, gs)
    for k in p0:
        p1 = p0[k] - 0.3 * gs[0][k]
        np.testing.assert_allclose(trace[1][k], p1 - 0.3 * gs[1][k], rtol=tol(bk), atol=tol(bk))


def test_updates_in_place_and_state_lives_with_the_parameter(bk, hrng):
    net = mlp([3, 4, 2], "tanh", rng=backend.RNG(0))
    params = net.params
    W = net["fc1"].params["W"]
    before = host(W)
    for g in net.grads.values():
        g[...] = 1.0
    opt = Adam(lr=0.1)
    opt.step(params, net.grads)
    assert net["fc1"].params["W"] is W  # the layer sees the update: same array
    # first Adam step with g = 1: lr * g / (|g| + eps)
    np.testing.assert_allclose(host(W), before - 0.1 / (1.0 + 1e-8), rtol=tol(bk), atol=tol(bk))
    for slot in ("m", "v"):
        s = opt.state[slot]["fc1.W"]
        assert s.shape == W.shape and s.dtype == W.dtype and s.device == W.device
    assert opt.t == 1


@pytest.mark.parametrize("make", [lambda: Adam(lr=0.05, betas=(0.8, 0.95)), lambda: SGD(lr=0.05, momentum=0.7)],
                         ids=["adam", "sgd-momentum"])
@pytest.mark.parametrize("via_host", [False, True], ids=["backend-arrays", "host-arrays"])
def test_state_dict_round_trip_continues_identically(bk, hrng, make, via_host):
    p0, gs = _setup(hrng, steps=6)
    a = make()
    pa = {k: A(v.copy()) for k, v in p0.items()}
    for g in gs[:3]:
        a.step(pa, {k: A(v) for k, v in g.items()})
    state = a.state_dict()
    if via_host:  # as a checkpoint stores it: NumPy arrays and plain numbers
        state = {k: host(v) if hasattr(v, "shape") else v for k, v in state.items()}
    frozen = {k: host(v) for k, v in state.items() if "/" in k}
    b = make()
    b.load_state_dict(state)
    assert b.t == 3 and b.lr == a.lr
    pb = {k: A(host(v)) for k, v in pa.items()}
    for g in gs[3:]:  # both continue on the same gradients
        a.step(pa, {k: A(v) for k, v in g.items()})
        b.step(pb, {k: A(v) for k, v in g.items()})
    for k in pa:
        np.testing.assert_array_equal(host(pa[k]), host(pb[k]))  # bit for bit
    # the state dict was a snapshot: the later steps did not change it
    for k, v in frozen.items():
        np.testing.assert_array_equal(host(state[k]), v)


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"learning rate must be positive, got 0"):
        Adam(lr=0.0)
    with pytest.raises(ValueError, match=r"learning rate must be positive, got -0.1"):
        SGD(lr=-0.1)


@pytest.mark.parametrize("make, message", [
    (lambda: Adam(betas=(1.0, 0.999)), r"betas must lie in \[0, 1\)"),
    (lambda: Adam(betas=(0.9, -0.1)), r"betas must lie in \[0, 1\)"),
    (lambda: Adam(eps=-1e-8), r"eps must be >= 0"),
    (lambda: SGD(momentum=-0.5), r"momentum must be in \[0, 1\)"),
])
def test_bad_hyperparameters_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("make", [lambda: SGD(lr=0.1), lambda: Adam()])
def test_a_gradient_of_the_wrong_shape_is_refused_not_broadcast(bk, make):
    p = {"W": A(np.ones((3, 4)))}
    with pytest.raises(ValueError, match=r"gradient 'W' has shape \(4,\) but the parameter has shape \(3, 4\)"):
        make().step(p, {"W": A(np.ones(4))})
    np.testing.assert_array_equal(host(p["W"]), np.ones((3, 4)))  # untouched


@pytest.mark.parametrize("make", [lambda: SGD(lr=0.1, momentum=0.9), lambda: Adam()], ids=["sgd-momentum", "adam"])
def test_reuse_on_a_differently_shaped_model_is_refused_before_any_change(bk, make):
    """The same names, new shapes (a notebook cell re-run with another layer size)."""
    opt = make()
    opt.step({"W": A(np.ones((3, 4)))}, {"W": A(np.ones((3, 4)))})
    state = {k: host(v) for k, v in opt.state_dict().items() if "/" in k}
    p = {"W": A(np.ones((3, 5)))}
    with pytest.raises(ValueError, match=r"parameter 'W' has shape \(3, 5\).*state for it has shape \(3, 4\)"
                                         r".*differently shaped model; create a fresh optimizer"):
        opt.step(p, {"W": A(np.ones((3, 5)))})
    np.testing.assert_array_equal(host(p["W"]), np.ones((3, 5)))  # the parameter is untouched,
    after = opt.state_dict()
    assert after["t"] == 1  # no step was counted,
    for k, v in state.items():  # and the state is as it was
        np.testing.assert_array_equal(host(after[k]), v)


def test_reuse_with_another_dtype_is_refused():
    opt = Adam()
    opt.step({"W": np.ones(3)}, {"W": np.ones(3)})  # float64 state
    p = {"W": np.ones(3, dtype=np.float32)}
    with pytest.raises(ValueError, match=r"parameter 'W' has shape \(3,\) \(float32\).*\(float64\)"):
        opt.step(p, {"W": np.ones(3, dtype=np.float32)})
    assert opt.t == 1 and np.array_equal(p["W"], np.ones(3))


def test_sgd_slots_follow_momentum():
    """A checkpoint sets the saved momentum on a fresh SGD(), then loads the velocity."""
    saved = SGD(lr=0.1, momentum=0.9)
    saved.step({"W": np.ones(2)}, {"W": np.ones(2)})
    fresh = SGD()
    assert fresh.slots == ()
    fresh.momentum = 0.9
    assert fresh.slots == ("velocity",)
    fresh.load_state_dict(saved.state_dict())
    np.testing.assert_array_equal(fresh.state["velocity"]["W"], np.ones(2))


def test_mismatched_names(bk):
    opt = SGD(lr=0.1)
    with pytest.raises(KeyError, match=r"params and grads must have the same names; these differ: \['b', 'c'\]"):
        opt.step({"a": A([1.0]), "b": A([1.0])}, {"a": A([1.0]), "c": A([1.0])})


def test_load_state_dict_unknown_slot(bk):
    with pytest.raises(KeyError, match=r"optimizer state has unknown slot 'velocity' for Adam"):
        Adam().load_state_dict({"t": 1, "lr": 0.1, "velocity/w": np.zeros(2)})


@pytest.mark.parametrize("task", ["regression", "bernoulli"])
def test_mlp_overfits_a_tiny_batch(bk, task):
    """8 examples, Adam: the loss falls by more than 100x (the cs231n sanity check)."""
    hrng = np.random.default_rng(0)
    X = A(hrng.normal(size=(8, 4)))
    if task == "regression":
        Y = A(hrng.normal(size=(8, 2)))
        loss_fn = losses.mse
        out = 2
    else:
        Y = A((hrng.uniform(size=(8, 3)) > 0.5) * 1.0)
        loss_fn = losses.bernoulli_nll
        out = 3
    net = mlp([4, 32, out], "tanh", rng=backend.RNG(0))
    opt = Adam(lr=0.03)
    first = None
    for _ in range(250):
        value, dout = loss_fn(net.forward(X), Y, check=False)
        first = float(value) if first is None else first
        net.zero_grad()
        net.backward(dout)
        opt.step(net.params, net.grads)
    last = float(loss_fn(net.forward(X), Y)[0])
    assert math.isfinite(last) and last < first / 100, (first, last)
