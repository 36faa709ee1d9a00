"""The engine room (scratchvae.kernels): each compiled twin against the textbook it
stands in for, and the switch that installs them.

On the CPU (numba) a twin computes the textbook's operations in the textbook's order,
so the numbers must be equal bit for bit; the one designed difference is the fused
Adam's flush of subnormal moments (tested on its own below). On a GPU the CUDA
compiler contracts a * b + c into one fused multiply-add, so CuPy's agree to rounding.
"""

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from scratchvae import backend, kernels, layers, losses
from scratchvae.gradcheck import check_function, check_layer
from scratchvae.models import VAE, Autoencoder, TiedAutoencoder
from scratchvae.optim import SGD, Adam
from scratchvae.training import Trainer

try:
    import numba  # noqa: F401

    HAVE_NUMBA = True
except Exception:
    HAVE_NUMBA = False

needs_numba = pytest.mark.skipif(not HAVE_NUMBA, reason='numba is not installed (pip install -e ".[test]")')

KINDS = [
    pytest.param("numpy", id="numba", marks=needs_numba),
    pytest.param("cupy", id="cupy", marks=pytest.mark.gpu),
]


@pytest.fixture(params=KINDS)
def kind(request):
    """"numpy" or "cupy": the kind of array the twins are fed (CuPy skipped where it
    cannot run); the backend is that kind's, in float32 (a test may pass float64 arrays)."""
    try:
        ctx = backend.using(request.param, dtype="float32")
        ctx.__enter__()
    except backend.BackendError as exc:
        pytest.skip(str(exc))
    try:
        yield request.param
    finally:
        ctx.__exit__(None, None, None)


def to_kind(kind, a):
    if kind == "cupy":
        import cupy

        return cupy.asarray(a)
    return np.array(a)


def assert_same(kind, actual, expected):
    actual, expected = backend.to_numpy(actual), backend.to_numpy(expected)
    if kind == "numpy":
        np.testing.assert_array_equal(actual, expected)
    else:
        rtol = 1e-5 if actual.dtype == np.float32 else 1e-12
        np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * np.abs(expected).max())


# ---- Adam ---------------------------------------------------------------------------


def _adam_pair(kind, dtype, shapes, lr=0.05, eps=1e-8, seed=0):
    rng = np.random.default_rng(seed)
    params = {k: to_kind(kind, rng.standard_normal(s).astype(dtype)) for k, s in shapes.items()}
    return params, {k: p.copy() for k, p in params.items()}, Adam(lr=lr, eps=eps), Adam(lr=lr, eps=eps)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_twin_equals_the_textbook(kind, dtype):
    shapes = {"W": (50, 30), "b": (30,), "one": (1,)}
    params, ref_params, fused, textbook = _adam_pair(kind, dtype, shapes)
    rng = np.random.default_rng(1)
    for step in range(6):
        grads = {k: to_kind(kind, rng.standard_normal(s).astype(dtype) * 10.0 ** (step - 3))
                 for k, s in shapes.items()}
        grads["W"][0, :] = 0.0  # a zero gradient: the update is 0 / (sqrt(v) + eps), not NaN
        kernels.optimizer_step(fused)(params, grads)
        textbook.step(ref_params, grads)
        assert fused.t == textbook.t == step + 1
        for k in shapes:
            assert_same(kind, params[k], ref_params[k])
            assert_same(kind, fused.state["m"][k], textbook.state["m"][k])
            assert_same(kind, fused.state["v"][k], textbook.state["v"][k])
    assert params["W"].dtype == dtype and fused.state["v"]["W"].dtype == dtype


@needs_numba
@pytest.mark.parametrize("mixed", [False, True], ids=["one-dtype", "mixed-dtypes"])
def test_adam_twin_is_one_compiled_call_for_every_parameter(monkeypatch, mixed):
    """One call of cpu.adam_all per step on NumPy; parameters of mixed dtypes (which no
    kernel walks together) get the textbook update, one parameter at a time."""
    from scratchvae.kernels import cpu

    calls = {"adam_all": 0, "update": 0}

    def count(name, f):
        def counted(*args, **kw):
            calls[name] += 1
            return f(*args, **kw)
        return counted

    monkeypatch.setattr(cpu, "adam_all", count("adam_all", cpu.adam_all))
    monkeypatch.setattr(Adam, "update", count("update", Adam.update))
    rng = np.random.default_rng(1)
    dtypes = {"W": np.float32, "b": np.float64 if mixed else np.float32, "s": np.float32}
    params = {k: rng.standard_normal(s).astype(dtypes[k]) for k, s in {"W": (7, 5), "b": (5,), "s": (1,)}.items()}
    opt = Adam(lr=0.05)
    step = kernels.optimizer_step(opt)
    for _ in range(3):
        step(params, {k: rng.standard_normal(p.shape).astype(p.dtype) for k, p in params.items()})
    assert calls == ({"adam_all": 0, "update": 9} if mixed else {"adam_all": 3, "update": 0})


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_twin_flushes_subnormal_moments_which_the_textbook_keeps(kind, dtype):
    """A weight whose gradient stays 0 (a pixel 0 in every batch, a dead ReLU unit) has
    its moment decay geometrically, into the subnormal numbers that x86 CPUs compute in
    microcode. The fused update sets them to 0; the textbook keeps them (as PyTorch)."""
    tiny = np.finfo(dtype).tiny
    # moments at the edge of the normal range, and gradients of 0: one step takes
    # b1 m (b2 v) below it for some entries and not for others
    m0 = np.array([1.3, -1.3, 1.05, -1.05, 2.0, 0.0, 1e10, 3.0], dtype) * tiny
    v0 = np.array([1.3, 1.3, 1.05, 1.0005, 2.0, 1.0, 1e10, 1e20], dtype) * tiny
    runs = []
    for fused in (True, False):
        p = to_kind(kind, np.ones(8, dtype))
        opt = Adam(lr=1e-3)
        opt.state = {"m": {"W": to_kind(kind, m0.copy())}, "v": {"W": to_kind(kind, v0.copy())}}
        opt.t = 5
        (kernels.optimizer_step(opt) if fused else opt.step)({"W": p}, {"W": to_kind(kind, np.zeros(8, dtype))})
        runs.append([backend.to_numpy(a) for a in (p, opt.state["m"]["W"], opt.state["v"]["W"])])
    (p, m, v), (p_ref, m_ref, v_ref) = runs
    assert not np.any((m != 0) & (np.abs(m) < tiny)) and not np.any((v != 0) & (v < tiny))
    # in units of the smallest normal number: 0.9 * 1.05 < 1 <= 0.9 * 1.3, 0.999 * 1.0005 < 1 <= 0.999 * 1.05
    assert m[2] == 0 and m[3] == 0 and m[0] != 0 and m[1] != 0 and v[3] == 0 and v[2] != 0
    normal = (np.abs(m_ref) >= tiny) | (m_ref == 0)
    assert_same(kind, m[normal], m_ref[normal])  # the flush is the only difference
    if kind == "numpy":  # a GPU flushes subnormal results by itself
        assert m_ref[2] != 0 and abs(m_ref[2]) < tiny and 0 < v_ref[3] < tiny
    np.testing.assert_allclose(p, p_ref, rtol=1e-6)  # a subnormal moment moves no weight


@pytest.mark.parametrize("eps", [1e-8, 0.0])
def test_adam_twin_keeps_nan_and_spares_v_when_eps_is_0(kind, eps):
    """A NaN gradient must reach p, m and v as in the textbook (a diverged run must not
    look healthy), and with eps = 0 a subnormal v is kept: flushed to 0 under a nonzero
    m, m / sqrt(v) would be inf."""
    if kind == "cupy" and eps == 0.0:
        pytest.skip("CuPy's compiled arithmetic flushes subnormal results to 0 itself, so on a GPU "
                    "v is 0 here whatever Adam does")
    tiny = np.finfo(np.float32).tiny
    g0 = np.array([np.nan, 1e-19, 0.5], np.float32)  # (1 - b2) (1e-19)^2 is subnormal in float32
    runs = []
    for fused in (True, False):
        p = to_kind(kind, np.ones(3, np.float32))
        opt = Adam(lr=1e-3, eps=eps)
        (kernels.optimizer_step(opt) if fused else opt.step)({"W": p}, {"W": to_kind(kind, g0)})
        runs.append([backend.to_numpy(a) for a in (p, opt.state["m"]["W"], opt.state["v"]["W"])])
    for got, want in zip(*runs):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    p, m, v = runs[0]
    assert np.isnan(p[0]) and np.isnan(m[0]) and np.isnan(v[0])
    assert np.isfinite(p[1:]).all()
    assert (v[1] == 0) == (eps > 0) and (eps > 0 or 0 < v[1] < tiny)


def test_optimizer_step_gives_a_twin_to_adam_alone():
    with backend.using("numpy"):
        sgd, adam = SGD(lr=0.1, momentum=0.9), Adam()

        class MyAdam(Adam):  # a subclass may change update: it keeps its own step
            pass

        mine = MyAdam()
        assert kernels.optimizer_step(sgd) == sgd.step
        assert kernels.optimizer_step(mine) == mine.step
        assert kernels.optimizer_step(adam) != adam.step or not HAVE_NUMBA
        with kernels.disabled():
            assert kernels.optimizer_step(adam) == adam.step
    with backend.using("array_api_strict"):
        adam = Adam()
        assert kernels.optimizer_step(adam) == adam.step


# ---- the Bernoulli loss and ReLU -----------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows", [3, 200])
def test_bernoulli_twin_equals_the_textbook(kind, dtype, rows):
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((rows, 784)) * 6.0
    logits[0, :6] = [0.0, -0.0, 1e-9, -1e-9, 88.0, -88.0]  # the branch point; exp(-|l|) tiny
    x = rng.random((rows, 784))
    x[1:, ::3] = x[1:, ::3] < 0.5  # binary pixels among grey ones
    logits, x = to_kind(kind, logits.astype(dtype)), to_kind(kind, x.astype(dtype))
    value, dlogits = kernels.bernoulli_nll(logits, x, check=False)
    ref_value, ref_dlogits = losses.bernoulli_nll(logits, x, check=False)
    assert_same(kind, value, ref_value)
    assert_same(kind, dlogits, ref_dlogits)
    assert dlogits.dtype == dtype and backend.to_numpy(value).dtype == dtype and value.ndim == 0


@needs_numba
def test_bernoulli_twin_runs_the_textbook_for_checks_and_for_arrays_no_kernel_walks(monkeypatch):
    from scratchvae.kernels import cpu

    calls = []
    monkeypatch.setattr(cpu, "bernoulli_nll", lambda *a: calls.append(a) or (0.0, None))
    a = np.full((4, 5), 0.5, np.float32)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        kernels.bernoulli_nll(a, a + 1.0)  # check=True: the textbook, with its checks
    for logits, x in [(a, a.astype(np.float64)), (a.T, a.T), (a.astype(np.float16),) * 2, (a[:0], a[:0])]:
        with pytest.raises(ValueError) if logits.shape[0] == 0 else _nothing():
            kernels.bernoulli_nll(logits, x, check=False)
    with kernels.disabled():
        kernels.bernoulli_nll(a, a, check=False)
    assert not calls
    kernels.bernoulli_nll(a, a, check=False)
    assert len(calls) == 1


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@needs_numba
def test_bernoulli_twin_gradient_passes_the_float64_check():
    """The central-difference check, on the compiled twin itself."""
    rng = np.random.default_rng(2)
    logits, x = rng.standard_normal((4, 9)) * 3.0, (rng.random((4, 9)) < 0.5).astype(np.float64)
    _, dlogits = kernels.bernoulli_nll(logits, x, check=False)
    report = check_function(lambda logits: kernels.bernoulli_nll(logits, x, check=False)[0], {"logits": logits},
                            {"logits": dlogits}, order=4, h=1e-3)
    assert report.max_error < 1e-7, report


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_twin_equals_the_textbook(kind, dtype):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((37, 50))
    x[0, :5] = [0.0, -0.0, 1e-30, -1e-30, 5.0]  # y = 0 exactly: no gradient through it
    dy = rng.standard_normal((37, 50))
    dy[0, :2] = np.nan  # where x <= 0 the gradient is 0, even of a NaN
    x, dy = to_kind(kind, x.astype(dtype)), to_kind(kind, dy.astype(dtype))
    twin, textbook = kernels.ReLU(), layers.ReLU()
    assert_same(kind, twin.forward(x), textbook.forward(x))
    dx = twin.backward(dy)
    assert_same(kind, dx, textbook.backward(dy))
    assert dx.dtype == dtype and dx is not dy and not np.isnan(backend.to_numpy(dx)).any()


@needs_numba
def test_relu_twin_passes_the_float64_check():
    with backend.using("numpy", dtype="float64"):
        rng = np.random.default_rng(5)
        x = rng.standard_normal((6, 7))
        x[np.abs(x) < 0.05] = 0.5  # away from the kink
        report = check_layer(kernels.ReLU(), x, seed=7)
        assert report.max_error < 1e-7, report


# ---- the switch ----------------------------------------------------------------------


@needs_numba
def test_install_swaps_the_relus_and_the_bernoulli_loss_in_place():
    with backend.using("numpy"):
        vae = VAE(8, hidden=(6, 5), z_dim=2)
        assert kernels.install(vae) == ["bernoulli_nll", "enc_body.act1", "enc_body.act2",
                                        "dec_body.act1", "dec_body.act2"]
        assert vae.bernoulli_nll is kernels.bernoulli_nll and type(vae.enc_body["act1"]) is kernels.ReLU
        assert kernels.install(vae) == []  # once is enough
        assert kernels.install(VAE(8, hidden=(6,), z_dim=2, activation="tanh", likelihood="gaussian")) == []
        assert kernels.install(Autoencoder(8, hidden=(4,), z_dim=2, loss="bernoulli")) == [
            "bernoulli_nll", "enc.act1", "dec.act1"]
        assert kernels.install(TiedAutoencoder(8, 2, activation="relu")) == ["g"]
        with kernels.disabled():
            assert kernels.install(VAE(8, hidden=(6,), z_dim=2)) == []
    with backend.using("array_api_strict"):
        assert kernels.install(VAE(8, hidden=(6,), z_dim=2)) == []


@needs_numba
@pytest.mark.parametrize("make", [lambda: VAE(30, hidden=(16,), z_dim=3, seed=5),
                                  lambda: Autoencoder(30, hidden=(16,), z_dim=3, loss="bernoulli", seed=5)],
                         ids=["vae", "autoencoder"])
def test_training_with_the_twins_equals_training_with_the_textbook(make):
    """Three epochs through the Trainer: the same parameters to the last bit."""
    data = (np.random.default_rng(3).random((64, 30)) < 0.4).astype(np.float32)

    def train(use):
        with backend.using("numpy", dtype="float32"):
            model = make()
            t = Trainer(model, Adam(lr=1e-2), batch_size=16, progress=False, kernels=use)
            assert bool(t.swapped) == use and (t.update == t.optimizer.step) != use
            t.fit(data, epochs=3)
            return {k: v.copy() for k, v in model.params.items()}

    fused, textbook = train(True), train(False)
    for k in fused:
        np.testing.assert_array_equal(fused[k], textbook[k], err_msg=k)


def _run(code: str, **env) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, **env}, check=True)
    return out.stdout


def test_without_numba_the_textbook_runs_and_status_says_why():
    code = (
        "import sys; sys.modules['numba'] = None\n"  # as if numba were not installed
        "import numpy as np\n"
        "from scratchvae import kernels\n"
        "from scratchvae.models import VAE\n"
        "from scratchvae.optim import Adam\n"
        "from scratchvae.training import Trainer\n"
        "t = Trainer(VAE(4, hidden=(3,), z_dim=2), Adam(), batch_size=2, progress=False)\n"
        "print(t.swapped, t.update == t.optimizer.step)\n"
        "t.fit(np.full((4, 4), 0.5), epochs=1)\n"
        "print(kernels.status()['numpy'])\n"
    )
    lines = _run(code).splitlines()
    assert lines[0] == "[] True"
    assert "numba is not installed" in lines[1]


def test_environment_variable_turns_kernels_off():
    out = _run("from scratchvae import kernels; print(kernels.enabled(), kernels.status()['numpy'])",
               SCRATCHVAE_KERNELS="off")
    assert out.startswith("False off: the textbook")


def test_find_is_deprecated_and_returns_none():
    a = np.zeros(3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert kernels.find("adam", a, a, a, a) is None
    assert any(issubclass(w.category, DeprecationWarning) and "install" in str(w.message) for w in caught)
