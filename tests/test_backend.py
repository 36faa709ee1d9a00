"""scratchvae.backend: selection, dtype, host <-> device crossing, and the seeded RNG."""

import json

import numpy as np
import pytest

from scratchvae import backend
from scratchvae.backend import BackendError

from conftest import host, tol

CUPY_RUNS = backend._cupy_or_reason()[0] is not None


@pytest.fixture
def fresh(monkeypatch):
    """No backend chosen yet and no environment override; restored afterwards."""
    monkeypatch.setattr(backend, "_current", None)
    monkeypatch.delenv("SCRATCHVAE_BACKEND", raising=False)
    monkeypatch.delenv("SCRATCHVAE_DTYPE", raising=False)


# -- selection ---------------------------------------------------------------------------


def test_use_numpy(fresh):
    b = backend.use("numpy", dtype="float64")
    assert b is backend.current()
    assert (b.name, b.device, b.dtype_name) == ("numpy", "cpu", "float64")
    a = backend.asarray([1.0, 2.0])
    assert isinstance(a, np.ndarray) and a.dtype == np.float64
    assert "numpy" in repr(b) and "float64" in repr(b)


def test_use_numpy_refuses_a_device(fresh):
    with pytest.raises(BackendError, match=r"NumPy runs on the CPU only; got device='device1'"):
        backend.use("numpy", device="device1")


def test_use_array_api_strict_device1(fresh):
    import array_api_strict as xps

    b = backend.use("array_api_strict", device="device1")
    assert b.name == "array_api_strict" and b.xp is xps
    assert b.device == xps.Device("device1")
    assert b.dtype_name == "float32"  # the training default
    a = backend.asarray([[1.0, 2.0], [3.0, 4.0]])
    assert a.device == xps.Device("device1") and a.dtype == xps.float32
    with pytest.raises(RuntimeError, match="device1"):  # it refuses silent host copies
        np.asarray(a)
    np.testing.assert_array_equal(backend.to_numpy(a), [[1.0, 2.0], [3.0, 4.0]])


def test_names_are_normalized(fresh):
    assert backend.use(" NumPy ").name == "numpy"
    assert backend.use("array-api-strict").name == "array_api_strict"


def test_strict_unknown_device(fresh):
    with pytest.raises(BackendError, match=r"array_api_strict has no device 'gpu7': use 'CPU_DEVICE', 'device1'"):
        backend.use("array_api_strict", device="gpu7")


def test_environment_variable(fresh, monkeypatch):
    monkeypatch.setenv("SCRATCHVAE_BACKEND", "array_api_strict")
    monkeypatch.setenv("SCRATCHVAE_DTYPE", "float64")
    b = backend.current()  # chosen at first use
    assert (b.name, b.dtype_name) == ("array_api_strict", "float64")
    assert str(b.device) == str(b.xp.Device("CPU_DEVICE"))


def test_default_without_environment(fresh):
    b = backend.current()
    assert (b.name, b.dtype_name) == ("numpy", "float32")


def test_environment_variable_with_a_bad_name(fresh, monkeypatch):
    monkeypatch.setenv("SCRATCHVAE_BACKEND", "torch")
    with pytest.raises(BackendError, match=r"unknown backend 'torch'.*SCRATCHVAE_BACKEND"):
        backend.current()


@pytest.mark.skipif(CUPY_RUNS, reason="CuPy runs here, so auto picks it")
def test_auto_falls_back_to_numpy_with_one_line(fresh, capsys):
    b = backend.use("auto")
    assert b.name == "numpy"
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.endswith("\n")
    assert err.startswith("scratchvae: ") and "using NumPy on the CPU" in err
    assert "CuPy" in err  # it says why


@pytest.mark.skipif(CUPY_RUNS, reason="CuPy runs here")
def test_cupy_without_gpu_says_why_and_what_to_install(fresh):
    before = backend.use("numpy", dtype="float64")
    with pytest.raises(BackendError) as info:
        backend.use("cupy")
    msg = str(info.value)
    assert "backend 'cupy' cannot run here" in msg
    assert "CuPy" in msg  # the reason: not importable / no GPU
    assert "pip install cupy-cuda12x" in msg and "nvidia-smi" in msg
    assert backend.current() is before  # a failed use() changes nothing


@pytest.mark.gpu
@pytest.mark.skipif(not CUPY_RUNS, reason="needs a working CuPy and a CUDA GPU")
def test_auto_and_cupy_pick_the_gpu_where_it_runs(fresh, capsys):
    assert backend.use("auto").name == "cupy"
    assert capsys.readouterr().err == ""  # no fallback notice
    b = backend.use("cupy", dtype="float64")
    a = backend.asarray([1.0, 2.0])
    assert type(a).__module__.startswith("cupy") and a.dtype == b.dtype
    np.testing.assert_array_equal(backend.to_numpy(a), [1.0, 2.0])


@pytest.mark.gpu
@pytest.mark.skipif(not CUPY_RUNS, reason="needs a working CuPy and a CUDA GPU")
def test_rng_same_numbers_on_cupy():
    with backend.using("numpy", dtype="float64"):
        ref = _draws(7)
    with backend.using("cupy", dtype="float32"):
        gpu = _draws(7)
    np.testing.assert_array_equal(gpu["normal"], ref["normal"].astype(np.float32))
    np.testing.assert_array_equal(gpu["permutation"], ref["permutation"])


def test_unknown_backend_lists_the_choices(fresh):
    with pytest.raises(
        BackendError,
        match=r"unknown backend 'tensorflow': choose one of 'numpy', 'cupy', 'array_api_strict', 'auto'",
    ):
        backend.use("tensorflow")


def test_dtype_environment_variable_is_normalized_and_named(fresh, monkeypatch):
    monkeypatch.setenv("SCRATCHVAE_DTYPE", " Float64 ")
    assert backend.use("numpy").dtype_name == "float64"
    monkeypatch.setattr(backend, "_current", None)
    monkeypatch.setenv("SCRATCHVAE_DTYPE", "float16")
    with pytest.raises(BackendError, match="unknown dtype 'float16'.*SCRATCHVAE_DTYPE"):
        backend.use("numpy")


def test_unknown_dtype(fresh):
    with pytest.raises(BackendError, match=r"unknown dtype 'float16': choose 'float32' or 'float64'"):
        backend.use("numpy", dtype="float16")


def test_using_restores_even_when_the_block_raises(fresh):
    before = backend.use("numpy", dtype="float64")
    with pytest.raises(ZeroDivisionError):
        with backend.using("array_api_strict", device="device1") as b:
            assert backend.current() is b and b.name == "array_api_strict"
            1 / 0
    assert backend.current() is before
    with pytest.raises(BackendError):
        with backend.using("nonsense"):
            pass  # pragma: no cover
    assert backend.current() is before


def test_using_dtype_only_keeps_namespace_and_device(bk):
    with backend.using(dtype="float64") as b64:
        assert b64.xp is bk.xp and b64.device == bk.device and b64.dtype_name == "float64"
        assert backend.asarray([1.0]).dtype == bk.xp.float64
    assert backend.current() is bk


# -- asarray / to_numpy ------------------------------------------------------------------


def test_asarray_casts_floats_and_keeps_ints(bk):
    xp = bk.xp
    for data in ([1.5, 2.5], np.array([1.5, 2.5], dtype=np.float32), np.array([1.5, 2.5]), 1.5):
        a = backend.asarray(data)
        assert a.dtype == bk.dtype and a.device == bk.device
    for data in ([1, 2], np.array([1, 2], dtype=np.int32), np.array([1, 2], dtype=np.uint8), 3):
        a = backend.asarray(data)
        assert a.dtype == xp.int64 and a.device == bk.device
    assert backend.asarray([True, False]).dtype == xp.bool
    a = backend.asarray([1, 2], dtype=xp.float64)
    assert a.dtype == xp.float64
    # a backend array passes through (cast only if a dtype is asked for)
    b = backend.asarray([1.0, 2.0])
    assert backend.asarray(b) is b
    c = backend.asarray(b, dtype=xp.float64)
    assert c.dtype == xp.float64 and c.device == bk.device
    with pytest.raises(TypeError, match="cannot make a numeric array from data of dtype"):
        backend.asarray(np.array(["a", "b"]))


def test_asarray_refuses_complex_data_on_every_backend(bk):
    xp = bk.xp
    for data in ([1 + 2j], np.array([1 + 2j]), 1j, np.array([1.0], dtype=np.complex64),
                 xp.asarray([1 + 2j], device=bk.device)):
        with pytest.raises(TypeError, match="complex data.*real-valued"):
            backend.asarray(data)
    with pytest.raises(TypeError, match="complex data"):
        backend.asarray([1 + 2j], dtype=xp.float64)


def test_asarray_moves_host_strict_arrays_onto_device1_and_never_back():
    import array_api_strict as xs

    cpu, dev1 = xs.Device("CPU_DEVICE"), xs.Device("device1")
    with backend.using("array_api_strict", dtype="float32", device="device1"):
        a = backend.asarray(xs.asarray([1.0, 2.0], dtype=xs.float64, device=cpu))
        assert a.device == dev1 and a.dtype == xs.float32
        host(a + backend.RNG(0).normal((2,)))  # usable with device1 arrays
        b = backend.asarray(xs.asarray([3], device=xs.Device("device2")))
        assert b.device == dev1 and b.dtype == xs.int64
    with backend.using("array_api_strict", dtype="float32"):  # on CPU_DEVICE
        on_dev1 = xs.asarray([1.0], dtype=xs.float32, device=dev1)
        with pytest.raises(ValueError, match="device1.*CPU_DEVICE.*to_numpy"):
            backend.asarray(on_dev1)


def test_to_numpy_round_trip(bk, hrng):
    h = hrng.normal(size=(3, 4))
    a = backend.asarray(h)
    back = backend.to_numpy(a)
    assert isinstance(back, np.ndarray) and back.shape == (3, 4)
    expected = h if bk.dtype_name == "float64" else h.astype(np.float32)
    np.testing.assert_array_equal(back, expected)  # float32 rounding is exact both ways
    ints = backend.to_numpy(backend.asarray(np.arange(5)))
    assert ints.dtype == np.int64
    np.testing.assert_array_equal(ints, np.arange(5))


def test_to_numpy_returns_a_copy(bk):
    a = backend.asarray([1.0, 2.0, 3.0])
    h = backend.to_numpy(a)
    h[0] = 99.0
    assert float(a[0]) == 1.0  # the host copy never aliases the backend array


def test_to_numpy_of_host_values():
    assert backend.to_numpy(2.5).shape == ()
    np.testing.assert_array_equal(backend.to_numpy([1, 2]), [1, 2])


def test_namespace(bk):
    a = backend.asarray([1.0])
    assert backend.namespace(a).__name__ == bk.xp.__name__


def test_info_reports_the_active_backend(bk):
    i = backend.info()
    assert i["backend"] == bk.name and i["dtype"] == bk.dtype_name
    assert i["numpy"] == np.__version__
    if not CUPY_RUNS:
        assert "CuPy" in i["cupy"]


# -- RNG -----------------------------------------------------------------------------------


def _draws(seed):
    rng = backend.RNG(seed)
    return {
        "normal": host(rng.normal((4, 3))),
        "uniform": host(rng.uniform((5,), -2.0, 3.0)),
        "permutation": host(rng.permutation(10)),
        "integers": host(rng.integers(0, 7, (6,))),
    }


def test_rng_same_seed_same_numbers_on_every_backend():
    with backend.using("numpy", dtype="float64"):
        ref = _draws(7)
    with backend.using("array_api_strict", dtype="float64"):
        cpu = _draws(7)
    with backend.using("array_api_strict", dtype="float32", device="device1"):
        dev1 = _draws(7)
    for k in ref:
        np.testing.assert_array_equal(cpu[k], ref[k])
    for k in ("normal", "uniform"):
        assert dev1[k].dtype == np.float32
        np.testing.assert_array_equal(dev1[k], ref[k].astype(np.float32))  # float32 rounding only
    for k in ("permutation", "integers"):
        assert dev1[k].dtype == np.int64
        np.testing.assert_array_equal(dev1[k], ref[k])
    assert sorted(ref["permutation"]) == list(range(10))
    assert ref["uniform"].min() >= -2.0 and ref["uniform"].max() < 3.0
    assert ref["integers"].min() >= 0 and ref["integers"].max() < 7


def test_rng_draws_on_the_backend(bk):
    rng = backend.RNG(0)
    z = rng.normal((2, 3))
    assert z.dtype == bk.dtype and z.device == bk.device
    assert rng.permutation(4).dtype == bk.xp.int64


def test_rng_different_seeds_differ(bk):
    a, b = host(backend.RNG(1).normal((8,))), host(backend.RNG(2).normal((8,)))
    assert not np.allclose(a, b)


def test_rng_state_reproduces_the_stream(bk):
    rng = backend.RNG(3)
    rng.normal((5,))
    state = rng.get_state()
    assert isinstance(state, str) and json.loads(state)["bit_generator"] == "PCG64"
    first = [host(rng.normal((4,))), host(rng.uniform((3,))), host(rng.permutation(6))]
    rng.set_state(state)
    again = [host(rng.normal((4,))), host(rng.uniform((3,))), host(rng.permutation(6))]
    other = backend.RNG(99)
    other.set_state(state)  # a fresh generator continues the same stream
    third = [host(other.normal((4,))), host(other.uniform((3,))), host(other.permutation(6))]
    for a, b, c in zip(first, again, third):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


def test_rng_matches_numpy_generator_directly(bk):
    got = host(backend.RNG(11).normal((3, 2), 1.0, 2.0))
    want = np.random.default_rng(11).normal(1.0, 2.0, size=(3, 2))
    np.testing.assert_allclose(got, want, rtol=tol(bk, 1e-15, 1e-7))


class _FixedDraws:
    """Stands in for the host generator: uniform returns these float64 values."""

    def __init__(self, values):
        self.values = np.asarray(values, dtype=np.float64)

    def uniform(self, low, high, size):
        return self.values


@pytest.mark.parametrize("high, values", [
    # 1 - 2**-26 rounds up to 1.0 in float32; 1 - 2**-24 is float32's largest below 1
    (1.0, [0.5, 1 - 2**-24, 1 - 2**-26, 1 - 2**-53]),
    # 0.1 is not a float32: float32(0.1) > 0.1, so a draw just below 0.1 rounds above it
    (0.1, [0.05, 0.1 - 1e-12]),
])
def test_rng_uniform_stays_below_high_in_the_backend_dtype(bk, high, values):
    rng = backend.RNG(0)
    rng.host = _FixedDraws(values)
    u = host(rng.uniform((len(values),), 0.0, high))
    assert u.dtype == np.dtype(bk.dtype_name) and u.max() < high  # so u < 1 for every pixel of 1.0
    rounded = np.asarray(values).astype(u.dtype)
    kept = rounded < high
    assert not kept.all() or bk.dtype_name == "float64"  # float32 really rounds one up
    np.testing.assert_array_equal(u[kept], rounded[kept])  # the other draws are unchanged
    # a draw that rounded up becomes the largest value below high: one step up reaches it
    assert np.all(np.nextafter(u[~kept], u.dtype.type(np.inf)) >= high)


def test_asarray_refuses_integers_that_int64_cannot_hold(bk):
    with pytest.raises(ValueError, match="do not fit int64"):
        backend.asarray(np.array([1, 2**63], dtype=np.uint64))
    small = backend.asarray(np.array([1, 2**40], dtype=np.uint64))
    assert backend.to_numpy(small).tolist() == [1, 2**40]
