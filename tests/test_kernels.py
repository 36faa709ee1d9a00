"""The fused kernels (scratchvae.kernels) against the array-API reference they replace.

On the CPU (numba) a kernel computes the reference's operations in the reference's
order, so the numbers must be equal bit for bit. On a GPU the CUDA compiler contracts
a * b + c into one fused multiply-add, so CuPy's agree to rounding.

The numpy-f64 cases of the other test files (test_losses, test_vae) run through these
kernels too, float64 gradient checks included; the array-api-strict cases run the
reference.
"""

import contextlib
import os
import subprocess
import sys

import numpy as np
import pytest

from scratchvae import backend, kernels
from scratchvae.gradcheck import check_function
from scratchvae.layers import ReLU
from scratchvae.losses import bernoulli_nll, kl_std_normal
from scratchvae.models import VAE
from scratchvae.optim import Adam

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


def _cupy_or_skip() -> str:
    try:
        backend.use("cupy")
    except backend.BackendError as exc:
        pytest.skip(str(exc))
    finally:
        backend.use("numpy")
    return "cupy"


@pytest.fixture(params=KINDS)
def kind(request):
    """"numpy" or "cupy": the kind of array the kernels are fed (CuPy skipped where it
    cannot run)."""
    return _cupy_or_skip() if request.param == "cupy" else request.param


@pytest.fixture
def kind_cupy():
    return _cupy_or_skip()


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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_kernel_equals_the_reference(kind, dtype):
    rng = np.random.default_rng(0)
    shapes = {"W": (50, 30), "b": (30,), "one": (1,)}
    params = {k: to_kind(kind, rng.standard_normal(s).astype(dtype)) for k, s in shapes.items()}
    ref_params = {k: p.copy() for k, p in params.items()}
    fused, reference = Adam(lr=0.05), Adam(lr=0.05)
    for step in range(6):
        grads = {k: to_kind(kind, rng.standard_normal(s).astype(dtype) * 10.0 ** (step - 3))
                 for k, s in shapes.items()}
        grads["W"][0, :] = 0.0  # a zero gradient: the update is 0 / (sqrt(v) + eps), not NaN
        assert kernels.find("adam", params["W"], grads["W"], params["W"], params["W"]) is not None
        fused.step(params, grads)
        with kernels.disabled():
            reference.step(ref_params, grads)
        for k in shapes:
            assert_same(kind, params[k], ref_params[k])
            assert_same(kind, fused.state["m"][k], reference.state["m"][k])
            assert_same(kind, fused.state["v"][k], reference.state["v"][k])
    assert params["W"].dtype == dtype and fused.state["v"]["W"].dtype == dtype


@needs_numba
@pytest.mark.parametrize("mixed", [False, True], ids=["one-dtype", "mixed-dtypes"])
def test_adam_updates_every_parameter_in_one_call_on_numpy(monkeypatch, mixed):
    """On NumPy, Adam.step makes one compiled call (adam_all) for all its parameters,
    with the numbers of one call per parameter; parameters of mixed dtypes fall back to
    one call each."""
    from scratchvae.kernels import cpu

    rng = np.random.default_rng(1)
    shapes = {"W": (7, 5), "b": (5,), "s": (1,)}
    dtypes = {"W": np.float32, "b": np.float64 if mixed else np.float32, "s": np.float32}
    start = {k: rng.standard_normal(s).astype(dtypes[k]) for k, s in shapes.items()}
    grads = [{k: rng.standard_normal(s).astype(dtypes[k]) for k, s in shapes.items()} for _ in range(3)]

    def train():
        params, opt = {k: p.copy() for k, p in start.items()}, Adam(lr=0.05)
        for g in grads:
            opt.step(params, g)
        return params, opt.state

    calls = {"adam": 0, "adam_all": 0}
    for name in calls:
        def counted(*args, _f=getattr(cpu, name), _name=name, **kw):
            calls[_name] += 1
            return _f(*args, **kw)
        monkeypatch.setattr(cpu, name, counted)
    one_call = train()
    assert calls == ({"adam": 9, "adam_all": 0} if mixed else {"adam": 0, "adam_all": 3})
    monkeypatch.setattr(kernels, "find_each", lambda *a: None)  # one call per parameter
    per_param = train()
    assert calls["adam"] == (18 if mixed else 9)  # the second run: one call per parameter either way
    for k in shapes:
        np.testing.assert_array_equal(one_call[0][k], per_param[0][k], err_msg=k)
        for slot in ("m", "v"):
            np.testing.assert_array_equal(one_call[1][slot][k], per_param[1][slot][k], err_msg=k)


def test_find_each_returns_none_where_lists_do_not_line_up():
    a, b = np.zeros((4, 5), np.float32), np.zeros(5, np.float32)
    assert kernels.find_each("adam_all", [a, b], [a, b], [a], [a, b]) is None  # lengths differ
    assert kernels.find_each("adam_all", [a, b], [a, a], [a, b], [a, b]) is None  # k-th shapes differ
    assert kernels.find_each("adam_all", [a, b], [a, b.astype(np.float64)], [a, b], [a, b]) is None
    assert kernels.find_each("adam_all", [a.T, b], [a.T, b], [a.T, b], [a.T, b]) is None  # not C-contiguous
    assert kernels.find_each("adam_all", [], [], [], []) is None
    with kernels.disabled():
        assert kernels.find_each("adam_all", [a], [a], [a], [a]) is None
    with pytest.raises(ValueError, match="unknown kernel 'adamw'"):
        kernels.find_each("adamw", [a])
    with pytest.raises(ValueError, match="'adam' is found with kernels.find "):
        kernels.find_each("adam", [a], [a], [a], [a])
    with pytest.raises(ValueError, match="'adam_all' is found with kernels.find_each"):
        kernels.find("adam_all", a, a, a, a)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_kernel_flushes_subnormal_moments_as_the_reference_does(kind, dtype):
    tiny = np.finfo(dtype).tiny
    # moments at the edge of the normal range, and gradients of 0: one step takes
    # b1 m (b2 v) below it for some entries and not for others
    m0 = np.array([1.3, -1.3, 1.05, -1.05, 2.0, 0.0, 1e10, 3.0], dtype) * tiny
    v0 = np.array([1.3, 1.3, 1.05, 1.0005, 2.0, 1.0, 1e10, 1e20], dtype) * tiny
    runs = []
    for off in (False, True):
        p = to_kind(kind, np.ones(8, dtype))
        opt = Adam(lr=1e-3)
        opt.state = {"m": {"W": to_kind(kind, m0.copy())}, "v": {"W": to_kind(kind, v0.copy())}}
        opt.t = 5
        with kernels.disabled() if off else contextlib.nullcontext():
            assert (kernels.find("adam", p, p, p, p) is None) == off
            opt.step({"W": p}, {"W": to_kind(kind, np.zeros(8, dtype))})
        runs.append((p, opt.state["m"]["W"], opt.state["v"]["W"]))
    for got, want in zip(*runs):
        assert_same(kind, got, want)
    m, v = (backend.to_numpy(a) for a in runs[0][1:])
    assert not np.any((m != 0) & (np.abs(m) < tiny)) and not np.any((v != 0) & (v < tiny))
    # in units of the smallest normal number: 0.9 * 1.05 < 1 <= 0.9 * 1.3, 0.999 * 1.0005 < 1 <= 0.999 * 1.05
    assert m[2] == 0 and m[3] == 0 and m[0] != 0 and m[1] != 0 and v[3] == 0 and v[2] != 0


@pytest.mark.parametrize("eps", [1e-8, 0.0])
def test_adam_kernel_keeps_nan_and_spares_v_when_eps_is_0(kind, eps):
    """A NaN gradient must reach p, m and v as in the reference (a diverged run must
    not look healthy), and with eps = 0 a subnormal v is kept: flushed to 0 under a
    nonzero m, m / sqrt(v) would be inf."""
    if kind == "cupy" and eps == 0.0:
        pytest.skip("CuPy's compiled arithmetic flushes subnormal results to 0 itself, so on a GPU "
                    "v is 0 here whatever Adam does (kernel and reference agree: p = -inf)")
    tiny = np.finfo(np.float32).tiny
    g0 = np.array([np.nan, 1e-19, 0.5], np.float32)  # (1 - b2) (1e-19)^2 is subnormal in float32
    runs = []
    for off in (False, True):
        p = to_kind(kind, np.ones(3, np.float32))
        opt = Adam(lr=1e-3, eps=eps)
        with kernels.disabled() if off else contextlib.nullcontext():
            opt.step({"W": p}, {"W": to_kind(kind, g0)})
        runs.append([backend.to_numpy(a) for a in (p, opt.state["m"]["W"], opt.state["v"]["W"])])
    for got, want in zip(*runs):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        assert_same(kind, got[1:], want[1:])  # (a NaN would make a GPU tolerance NaN)
    p, m, v = runs[0]
    assert np.isnan(p[0]) and np.isnan(m[0]) and np.isnan(v[0])
    assert np.isfinite(p[1:]).all()
    assert (v[1] == 0) == (eps > 0) and (eps > 0 or 0 < v[1] < tiny)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows", [3, 200])  # 200 x 784 is cut into blocks of rows on NumPy
def test_bernoulli_kernel_equals_the_reference(kind, dtype, rows):
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((rows, 784)) * 6.0
    logits[0, :6] = [0.0, -0.0, 1e-9, -1e-9, 88.0, -88.0]  # the branch point; exp(-|l|) tiny
    x = rng.random((rows, 784))
    x[1:, ::3] = x[1:, ::3] < 0.5  # binary pixels among grey ones
    logits, x = to_kind(kind, logits.astype(dtype)), to_kind(kind, x.astype(dtype))
    assert kernels.find("bernoulli_nll_rows", logits, x) is not None
    value, dlogits = bernoulli_nll(logits, x)
    with kernels.disabled():
        ref_value, ref_dlogits = bernoulli_nll(logits, x)
    assert_same(kind, value, ref_value)
    assert_same(kind, dlogits, ref_dlogits)
    assert dlogits.dtype == dtype and backend.to_numpy(value).dtype == dtype


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_backward_kernel_equals_the_reference(kind, dtype):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((37, 50))
    x[0, :5] = [0.0, -0.0, 1e-30, -1e-30, 5.0]  # y = 0 exactly: no gradient through it
    x, dy = to_kind(kind, x.astype(dtype)), to_kind(kind, rng.standard_normal((37, 50)).astype(dtype))
    relu = ReLU()
    y = relu.forward(x)
    assert kernels.find("relu_backward", y, dy) is not None
    dx = relu.backward(dy)
    with kernels.disabled():
        ref = relu.backward(dy)
    assert_same(kind, dx, ref)
    assert dx.dtype == dtype and dx is not dy


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kl_kernel_equals_the_reference_on_cupy(kind_cupy, dtype):
    rng = np.random.default_rng(5)
    mu = to_kind("cupy", rng.standard_normal((64, 20)).astype(dtype))
    logvar = to_kind("cupy", (rng.standard_normal((64, 20)) * 3).astype(dtype))
    assert kernels.find("kl_std_normal", mu, logvar) is not None
    fused = kl_std_normal(mu, logvar)
    with kernels.disabled():
        reference = kl_std_normal(mu, logvar)
    for a, b in zip(fused, reference):
        assert_same("cupy", a, b)


def test_kl_has_no_cpu_kernel():
    """On the CPU the latent arrays are (N, 20): too small for a kernel to pay."""
    a = np.zeros((8, 3))
    assert kernels.find("kl_std_normal", a, a) is None


@needs_numba
def test_fused_bernoulli_gradient_passes_the_float64_check():
    """The central-difference check, on the kernel itself (random upstream: a scalar)."""
    rng = np.random.default_rng(2)
    logits, x = rng.standard_normal((4, 9)) * 3.0, (rng.random((4, 9)) < 0.5).astype(np.float64)
    assert kernels.find("bernoulli_nll_rows", logits, x) is not None
    _, dlogits = bernoulli_nll(logits, x)
    report = check_function(lambda logits: bernoulli_nll(logits, x)[0], {"logits": logits},
                            {"logits": dlogits}, order=4, h=1e-3)
    assert report.max_error < 1e-7, report


@needs_numba
def test_training_with_kernels_equals_training_without():
    """Twenty steps of a VAE: the same parameters to the last bit, kernels on or off."""
    data = (np.random.default_rng(3).random((64, 30)) < 0.4).astype(np.float32)

    def train():
        with backend.using("numpy", dtype="float32"):
            model, opt = VAE(30, hidden=(16,), z_dim=3, seed=5), Adam(lr=1e-2)
            for step in range(20):
                model.loss_and_grads(data[(step % 4) * 16:(step % 4 + 1) * 16])
                opt.step(model.params, model.grads)
            return {k: v.copy() for k, v in model.params.items()}

    fused = train()
    with kernels.disabled():
        reference = train()
    for k in fused:
        np.testing.assert_array_equal(fused[k], reference[k], err_msg=k)


def test_find_returns_none_where_a_kernel_cannot_walk_the_arrays():
    a = np.zeros((4, 5), np.float32)
    assert kernels.find("adam", a, a.astype(np.float64), a, a) is None  # mixed dtypes
    assert kernels.find("adam", a, a[:, :4].copy(), a, a) is None  # mixed shapes
    assert kernels.find("adam", a.T, a.T, a.T, a.T) is None  # not C-contiguous
    assert kernels.find("adam", *(a.astype(np.int32),) * 4) is None  # not floating
    assert kernels.find("adam", *(a.astype(np.float16),) * 4) is None  # float16: no kernel
    assert kernels.find("relu_backward", *(a.astype(">f4"),) * 2) is None  # big-endian: numba refuses
    with backend.using("array_api_strict", dtype="float32"):
        s = backend.asarray(a)
        assert kernels.find("adam", s, s, s, s) is None  # the reference runs there
    with kernels.disabled():
        assert kernels.find("adam", a, a, a, a) is None
    with pytest.raises(ValueError, match="unknown kernel 'adamw'.*choose one of"):
        kernels.find("adamw", a)


@needs_numba
def test_find_gives_the_numba_kernel_for_numpy_arrays_and_status_says_so():
    a = np.zeros((4, 5), np.float32)
    assert kernels.find("adam", a, a, a, a) is not None
    assert kernels.status()["numpy"].startswith("numba ")
    with kernels.disabled():
        assert kernels.status()["numpy"].startswith("off")
    assert kernels.enabled()


def _run(code: str, **env) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, **env}, check=True)
    return out.stdout


def test_without_numba_the_reference_runs_and_status_says_why():
    code = (
        "import sys; sys.modules['numba'] = None\n"  # as if numba were not installed
        "import numpy as np\n"
        "from scratchvae import kernels\n"
        "from scratchvae.optim import Adam\n"
        "a = np.ones(3, np.float32)\n"
        "print(kernels.find('adam', a, a, a, a))\n"
        "p = {'w': a.copy()}; Adam(lr=0.1).step(p, {'w': a})\n"
        "print(p['w'].tolist())\n"
        "print(kernels.status()['numpy'])\n"
    )
    lines = _run(code).splitlines()
    assert lines[0] == "None"
    assert [float(v) for v in lines[1].strip("[]").split(",")] == [pytest.approx(0.9)] * 3  # 1 - lr sign(g)
    assert "numba is not installed" in lines[2] and 'pip install "scratchvae[fast]"' in lines[2]


def test_environment_variable_turns_kernels_off():
    out = _run("from scratchvae import kernels; print(kernels.enabled(), kernels.status()['numpy'])",
               SCRATCHVAE_KERNELS="off")
    assert out.startswith("False off: array-API reference")
