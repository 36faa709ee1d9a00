"""scratchvae.bench (``python -m scratchvae.bench``, ``scratchvae bench``) on a tiny
workload, and the fast paths of the training step that it times: ``arrays.into``, the
``need_dx`` / ``accumulate`` options of backward, the VAE writing (not adding) its
gradients, Adam's in-place update, float32 throughout."""

import json
import math
import os

import numpy as np
import pytest

from scratchvae import backend, bench, cli, kernels
from scratchvae.arrays import into
from scratchvae.layers import Dense, Layer, ReLU, Sequential, Tanh
from scratchvae.models import VAE
from scratchvae.optim import Adam

from conftest import host, tol


def A(h):
    return backend.asarray(h)


@pytest.fixture(autouse=True)
def no_pauses(monkeypatch):
    monkeypatch.setattr(bench, "SETTLE_S", 0.0)  # the pauses between timed runs


# -- the fast paths keep the maths -------------------------------------------------------


def test_into_writes_the_same_numbers_into_the_given_array(bk, hrng):
    xp = bk.xp
    a, b = A(hrng.normal(size=(3, 4))), A(hrng.normal(size=(4, 2)))
    buf = xp.empty_like(a)
    assert into(buf, xp.multiply, a, a) is buf
    np.testing.assert_allclose(host(buf), host(a) ** 2, rtol=tol(bk))
    assert into(buf, xp.divide, a, buf) is buf  # out may be an input too
    np.testing.assert_allclose(host(buf), 1.0 / host(a), rtol=tol(bk))
    out = xp.zeros((3, 2), dtype=a.dtype, device=a.device)
    into(out, xp.matmul, a, b)
    np.testing.assert_allclose(host(out), host(a) @ host(b), rtol=tol(bk), atol=tol(bk))


def test_dense_backward_options(bk, hrng):
    layer = Dense(3, 2, rng=backend.RNG(0))
    x, dy = A(hrng.normal(size=(5, 3))), A(hrng.normal(size=(5, 2)))
    layer.forward(x)
    dx = layer.backward(dy)
    gW, gb = host(layer.grads["W"]), host(layer.grads["b"])
    layer.grads["W"][...] = 7.0  # stale values: accumulate=False must overwrite them
    layer.grads["b"][...] = 7.0
    assert layer.backward(dy, need_dx=False, accumulate=False) is None
    np.testing.assert_allclose(host(layer.grads["W"]), gW, rtol=tol(bk), atol=tol(bk))
    np.testing.assert_allclose(host(layer.grads["b"]), gb, rtol=tol(bk), atol=tol(bk))
    np.testing.assert_allclose(gW, host(x).T @ host(dy), rtol=tol(bk), atol=tol(bk))
    np.testing.assert_allclose(host(dx), host(dy) @ host(layer.params["W"]).T, rtol=tol(bk), atol=tol(bk))


class _Spy(Layer):
    """A parameter-free layer that counts its backward calls."""

    calls = 0

    def forward(self, x):
        return x

    def backward(self, dy):
        _Spy.calls += 1
        return dy


class _Scale(Layer):
    """y = a * x with a parameter a of shape (D,), whose backward only accumulates."""

    def __init__(self, a):
        super().__init__()
        self.params = {"a": a}
        self.grads = {"a": array_zeros_like(a)}

    def forward(self, x):
        self.x = x
        return x * self.params["a"]

    def backward(self, dy):
        xp = backend.namespace(dy)
        self.grads["a"] += xp.sum(dy * self.x, axis=0)
        return dy * self.params["a"]


def array_zeros_like(a):
    return backend.namespace(a).zeros_like(a)


def test_sequential_backward_options(bk, hrng):
    """need_dx=False stops at the first layer with parameters; accumulate=False gives the
    gradient of one backward whatever the grads held, also for a layer that only adds."""
    net = Sequential(_Spy(), Dense(4, 3, rng=backend.RNG(0)), Tanh(), _Scale(A(hrng.normal(size=3))),
                     Dense(3, 2, rng=backend.RNG(1)))
    x, dy = A(hrng.normal(size=(6, 4))), A(hrng.normal(size=(6, 2)))
    net.forward(x)
    net.zero_grad()
    _Spy.calls = 0
    net.backward(dy)
    assert _Spy.calls == 1
    want = {k: host(g) for k, g in net.grads.items()}
    for g in net.grads.values():
        g[...] = 3.0
    assert net.backward(dy, need_dx=False, accumulate=False) is None
    assert _Spy.calls == 1  # the layer before the first Dense was skipped
    for k, g in net.grads.items():
        np.testing.assert_allclose(host(g), want[k], rtol=tol(bk), atol=tol(bk), err_msg=k)


def test_relu_backward_is_the_mask_times_dy(bk):
    x = A(np.array([[-1.0, 0.0, 2.0, -0.5, 3.0]]))
    dy = A(np.array([[5.0, 6.0, 7.0, 8.0, 9.0]]))
    relu = ReLU()
    np.testing.assert_array_equal(host(relu.forward(x)), [[0.0, 0.0, 2.0, 0.0, 3.0]])
    np.testing.assert_array_equal(host(relu.backward(dy)), [[0.0, 0.0, 7.0, 0.0, 9.0]])  # 0 at x = 0
    np.testing.assert_array_equal(host(dy), [[5.0, 6.0, 7.0, 8.0, 9.0]])  # dy untouched


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_vae_gradients_do_not_depend_on_what_grads_held(bk, hrng, likelihood):
    """loss_and_grads writes every gradient (no zero_grad pass): stale values vanish."""
    x = A(hrng.uniform(size=(5, 6)))
    eps = A(hrng.normal(size=(2, 5, 3)))
    a = VAE(6, hidden=(4,), z_dim=3, likelihood=likelihood, seed=0)
    b = VAE(6, hidden=(4,), z_dim=3, likelihood=likelihood, seed=0)
    for g in a.grads.values():
        g[...] = 11.0
    b.zero_grad()
    la, _ = a.loss_and_grads(x, n_samples=2, eps=eps)
    lb, _ = b.loss_and_grads(x, n_samples=2, eps=eps)
    assert float(la) == float(lb)
    assert a.grads.keys() == b.grads.keys()
    for k in a.grads:
        np.testing.assert_array_equal(host(a.grads[k]), host(b.grads[k]), err_msg=k)


def test_a_training_step_stays_float32_and_adam_reuses_its_buffers():
    with backend.using("numpy", dtype="float32"):
        run = bench.ScratchRun(bench.WORKLOADS["digits"], 16, n_examples=64).setup()
        run.steps(2)
        bufs = {k: v[0] for k, v in run.opt.scratch.items()}
        state = {k: v for k, v in run.opt.state["m"].items()}
        run.steps(3)
        assert run.dtypes() == {"float32"}
        assert all(run.opt.scratch[k][0] is bufs[k] for k in bufs)  # no new arrays per step
        assert all(run.opt.state["m"][k] is state[k] for k in state)
        xb = run.X[:16, ...]
        loss, stats = run.model.loss_and_grads(xb, check=False)
        assert loss.dtype == np.float32 and all(v.dtype == np.float32 for v in stats.values())


def test_adam_bias_correction_folded_into_scalars_matches_the_textbook(bk, hrng):
    """Ten steps of the in-place update against Adam written as in the paper."""
    ph, gs = hrng.normal(size=(4, 3)), [hrng.normal(size=(4, 3)) for _ in range(10)]
    p = A(ph.copy())
    opt = Adam(lr=0.01, betas=(0.8, 0.95), eps=1e-3)  # a large eps, so its placement matters
    m = v = np.zeros_like(ph)
    want = ph.copy()
    for t, g in enumerate(gs, start=1):
        opt.step({"p": p}, {"p": A(g)})
        m = 0.8 * m + 0.2 * g
        v = 0.95 * v + 0.05 * g * g
        want = want - 0.01 * (m / (1 - 0.8**t)) / (np.sqrt(v / (1 - 0.95**t)) + 1e-3)
    np.testing.assert_allclose(host(p), want, rtol=tol(bk, 1e-12, 1e-5), atol=tol(bk, 1e-12, 1e-5))


# -- the benchmark itself ---------------------------------------------------------------------


def test_matmul_shapes_count_the_step_flops():
    w = bench.WORKLOADS["mnist"]
    B = 128
    shapes = bench.matmul_shapes(w, B)
    assert len(shapes) == 5 + 5 + 4  # forward: 5 Dense; backward: 5 dW, 4 dx (none for x)
    forward = 2 * B * (784 * 400 + 2 * 400 * 20 + 20 * 400 + 400 * 784)
    assert bench.flops(shapes) == 3 * forward - 2 * B * 784 * 400
    assert ("enc.fc1 dx = dy W^T" not in [s[0] for s in shapes])


def test_synthetic_images_look_like_mnist():
    x = bench.synthetic_images(3000, 784, seed=0, unique=1000)
    assert x.shape == (3000, 784) and x.dtype == np.float32
    assert x.min() >= 0.0 and x.max() <= 1.0
    assert 0.75 < np.mean(x == 0.0) < 0.85
    np.testing.assert_array_equal(x[1000:2000], x[:1000])  # tiled


def test_bench_runs_and_returns_finite_numbers():
    with backend.using("numpy", dtype="float32"):
        result = bench.bench(workloads=("digits",), steps=3, repeats=2, warmup=1, breakdown_steps=2,
                             floor_reps=2, memory=False, threads=None, n_examples=256, progress=lambda s: None)
    (rec,) = result["runs"]
    s = rec["scratchvae"]
    assert rec["workload"] == "digits" and rec["batch_size"] == 64 and len(s["step_ms_all"]) == 2
    for value in (s["step_ms"], s["epoch_s"], s["examples_per_s"], s["over_floor"], s["final_loss"],
                  rec["floor"]["matmul_ms"], rec["floor"]["gflops"], *s["breakdown_ms"].values()):
        assert math.isfinite(value) and value >= 0.0
    assert s["step_ms"] > 0 and rec["floor"]["matmul_ms"] > 0
    assert s["epoch_s"] == pytest.approx(s["step_ms"] / 1e3 * 60_000 / 64)  # 937.5 steps: the last batch is short
    assert s["step_ms_best"] <= s["step_ms"]
    assert s["dtypes"] == ["float32"]
    assert set(s["breakdown_ms"]) == {"data", "forward", "backward", "optimizer", "other"}
    assert "digits" in bench.table(result) and "matmul floor" in bench.table(result)
    assert result["kernels"] == kernels.status()["numpy"]  # what ran is on record


def test_a_batch_larger_than_the_data_set_is_refused(capsys, monkeypatch):
    """A batch is a slice of the data: one larger than the data would be cut short while
    its examples per second and floor were reported at the size asked for."""
    real_bench = bench.bench
    monkeypatch.setattr(bench, "bench", lambda *a, **kw: pytest.fail("timed a batch larger than the data"))
    for option in ("--batch-sizes", "--digits-batch-size"):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["bench", option, "60001"])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and f"argument {option}: a batch cannot hold more than the 60000" in err
    assert cli._parser().parse_args(["bench", "--batch-sizes", "60000"]).batch_sizes == [60000]
    with pytest.raises(ValueError, match=r"batch size 300 of workload digits is larger than the data set \(256"):
        real_bench(workloads=("digits",), digits_batch_size=300, n_examples=256, memory=False, threads=None,
                   progress=lambda s: pytest.fail("timed before checking the batch size"))


def test_cli_bench_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = cli.main(["bench", "--backend", "numpy", "--workloads", "digits", "--steps", "2", "--repeats", "1",
                     "--warmup", "1", "--no-memory", "--threads", "0", "--json", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    assert result["backend"] == "numpy" and result["runs"][0]["scratchvae"]["step_ms"] > 0
    printed = capsys.readouterr().out
    assert "matmul floor" in printed and f"kernels: {result['kernels']}" in printed


def test_cli_bench_without_kernels_times_the_reference(tmp_path, monkeypatch):
    monkeypatch.setenv("SCRATCHVAE_KERNELS", "auto")  # restored after the test
    out = tmp_path / "bench.json"
    try:
        assert cli.main(["bench", "--workloads", "digits", "--steps", "2", "--repeats", "1", "--warmup", "1",
                         "--no-memory", "--threads", "0", "--no-kernels", "--json", str(out)]) == 0
        assert os.environ["SCRATCHVAE_KERNELS"] == "off"  # memory probes would inherit it
    finally:
        kernels.enable(True)
    assert json.loads(out.read_text())["kernels"].startswith("off: array-API reference")


def test_memory_probe_in_a_child_process():
    mem = bench.probe_memory("digits", 16, 3, "numpy", threads=1)
    assert "error" not in mem, mem
    assert 10 < mem["rss_before_mb"] < 2000 and mem["peak_rss_mb"] > 0


def test_row_blocks_cover_the_rows_once(bk):
    from scratchvae.arrays import row_blocks

    x = bk.xp.zeros((1000, 100), dtype=bk.dtype, device=bk.device)
    blocks = row_blocks(x, entries=2100)  # 21 rows a block
    if bk.name == "numpy":
        assert len(blocks) == 48 and blocks[0] == slice(0, 21) and blocks[-1] == slice(987, 1000)
        covered = [i for s in blocks for i in range(s.start, s.stop)]
        assert covered == list(range(1000))
    else:  # one big block where the array is not NumPy's (a GPU wants few large kernels)
        assert blocks == [slice(None)]
    assert row_blocks(x[:10, ...], entries=2048) == [slice(None)]  # small: one block


def test_bernoulli_nll_in_row_blocks_equals_the_whole(hrng):
    """A batch large enough to be split gives the numbers of the one-block arithmetic."""
    from scratchvae.losses import _bernoulli_nll_rows, bernoulli_nll

    with backend.using("numpy", dtype="float64"):
        logits = A(5.0 * hrng.normal(size=(300, 784)))
        x = A((hrng.uniform(size=(300, 784)) > 0.7) * hrng.uniform(size=(300, 784)))
        value, dlogits = bernoulli_nll(logits, x)
        v1, d1 = _bernoulli_nll_rows(logits, x, 300)
        np.testing.assert_array_equal(host(dlogits), host(d1))
        np.testing.assert_allclose(float(value), float(v1), rtol=1e-13)
        lh, xh = host(logits), host(x)
        want = np.sum(np.logaddexp(0.0, lh) - xh * lh) / 300  # softplus(l) - x l
        np.testing.assert_allclose(float(value), want, rtol=1e-12)
        np.testing.assert_allclose(host(dlogits), (1.0 / (1.0 + np.exp(-lh)) - xh) / 300, rtol=1e-12, atol=1e-15)


def test_module_main_reports_an_unwritable_json_in_one_line(tmp_path, capsys):
    folder = tmp_path / "a-folder"
    folder.mkdir()
    code = bench.main(["--workloads", "digits", "--steps", "2", "--repeats", "1", "--warmup", "1",
                       "--no-memory", "--threads", "0", "--json", str(folder)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
