"""scratchvae.profile (where a training step's time goes) and the ``scratchvae bench``
command built on it, on tiny workloads: what they time goes through the Trainer's public
calls, and what they report is well formed."""

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

from scratchvae import backend, cli, kernels, profile
from scratchvae.models import VAE
from scratchvae.optim import Adam
from scratchvae.training import Trainer

from conftest import host


def _trainer(batch=8, kernels=None, **kw):
    model = VAE(12, hidden=(6,), z_dim=2, seed=0)
    return Trainer(model, Adam(lr=1e-3), batch_size=batch, progress=False, kernels=kernels, **kw)


# -- the package helper ------------------------------------------------------------------


def test_synthetic_images_look_like_mnist(bk):
    x = profile.synthetic_images(300, 50, seed=0, unique=100)
    assert x.shape == (300, 50) and x.dtype == bk.dtype
    h = host(x)
    assert h.min() >= 0.0 and h.max() <= 1.0
    assert 0.7 < np.mean(h == 0.0) < 0.9
    np.testing.assert_array_equal(h[100:200], h[:100])  # repeated rows: cheap to make
    assert profile.synthetic_images(7, 5).shape == (7, 5)


def test_step_ms_times_trainer_fit_epochs(bk):
    trainer = _trainer()
    x = profile.synthetic_images(20, 12)  # 3 steps an epoch, the last one short
    ms = profile.step_ms(trainer, x, repeats=2)
    assert len(ms) == 2 and all(m > 0 and math.isfinite(m) for m in ms)
    assert trainer.epoch == 2 and trainer.step == 6  # every timed step is a training step
    assert ms == pytest.approx([1e3 * t / 3 for t in trainer.history["time"]])


def test_phases_go_through_the_public_calls(bk, monkeypatch):
    trainer = _trainer(n_samples=2)
    calls = {"loss": 0, "loss_and_grads": 0, "update": 0}
    model = trainer.model
    for name in ("loss", "loss_and_grads"):
        real = getattr(model, name)

        def counted(*a, _real=real, _name=name, **kw):
            calls[_name] += 1
            assert kw["check"] is False and kw["n_samples"] == 2  # the trainer's settings
            return _real(*a, **kw)

        monkeypatch.setattr(model, name, counted)
    real_update = trainer.update

    def update(params, grads):
        calls["update"] += 1
        real_update(params, grads)

    trainer.update = update
    before = {k: host(p).copy() for k, p in model.params.items()}
    ph = profile.phases(trainer, profile.synthetic_images(32, 12), steps=3)
    assert list(ph) == ["data", "forward", "backward", "optimizer"]
    assert all(v >= 0.0 and math.isfinite(v) for v in ph.values())
    assert calls == {"loss": 3, "loss_and_grads": 3, "update": 3}
    assert any(not np.array_equal(host(p), before[k]) for k, p in model.params.items())  # it trained


def test_matmul_shapes_count_the_step_flops():
    model = VAE(784, hidden=(400,), z_dim=20, seed=0)
    B = 128
    shapes = profile.matmul_shapes(model, B)
    assert len(shapes) == 5 + 5 + 4  # forward: 5 Dense; backward: 5 dW, 4 dx (none for the data)
    forward = 2 * B * (784 * 400 + 2 * 400 * 20 + 20 * 400 + 400 * 784)
    assert sum(2 * m * k * n for _, m, k, n, _ in shapes) == 3 * forward - 2 * B * 784 * 400
    assert "enc.fc1.W: dy W^T" not in [s[0] for s in shapes]
    assert {s[-1] for s in shapes} == {"NN", "TN", "NT"}


def test_matmul_floor_is_finite_and_positive(bk):
    model = VAE(12, hidden=(6,), z_dim=2, seed=0)
    floor = profile.matmul_floor(model, 8, reps=2)
    assert floor["ms"] > 0 and floor["gflops"] > 0
    assert [w for w, _ in floor["products"]] == [s[0] for s in profile.matmul_shapes(model, 8)]
    assert floor["ms"] == pytest.approx(sum(ms for _, ms in floor["products"]))


def test_profiling_the_textbook_and_the_twins_gives_the_same_training():
    """The helper times what the Trainer runs: with the kernels or without, the same
    steps give the same parameters (bit for bit on NumPy, where the twins are exact)."""
    with backend.using("numpy", dtype="float32"):
        x = profile.synthetic_images(48, 12)
        params = []
        for on in (False, True):
            trainer = _trainer(kernels=on)
            profile.step_ms(trainer, x)
            params.append({k: host(p) for k, p in trainer.model.params.items()})
    for k in params[0]:
        np.testing.assert_array_equal(params[0][k], params[1][k], err_msg=k)


def test_the_benchmarks_left_the_package():
    """The harness lives in benchmarks/; the package keeps a small helper (and, for one
    release, a shim for ``python -m scratchvae.bench``)."""
    assert len(Path(importlib.util.find_spec("scratchvae.bench").origin).read_text().splitlines()) < 20
    assert len(Path(profile.__file__).read_text().splitlines()) < 200


# -- scratchvae bench ---------------------------------------------------------------------

QUICK = ["bench", "--backend", "numpy", "--workloads", "digits", "--steps", "2", "--repeats", "2",
         "--warmup", "1", "--threads", "0"]


def test_cli_bench_prints_a_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert cli.main([*QUICK, "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    (run,) = result["runs"]
    assert result["backend"] == "numpy" and run["workload"] == "digits" and run["batch_size"] == 64
    assert run["steps"] == 2 and len(run["step_ms_all"]) == 2 and run["step_ms_best"] <= run["step_ms"]
    for value in (run["step_ms"], run["epoch_s"], run["examples_per_s"], run["floor_ms"], run["over_floor"],
                  *run["phases_ms"].values()):
        assert math.isfinite(value) and value >= 0.0
    assert run["epoch_s"] == pytest.approx(run["step_ms"] / 1e3 * 60_000 / 64)
    assert set(run["phases_ms"]) == {"data", "forward", "backward", "optimizer"}
    printed = capsys.readouterr().out
    assert "digits 64-256-2" in printed and "phases, ms/step" in printed and f"wrote {out}" in printed
    assert f"training runs {result['training']}" in printed  # what ran is on record
    if kernels.status()["numpy"].startswith("numba"):
        assert result["training"].startswith("the compiled twins") and run["swapped"]


def test_cli_bench_no_kernels_times_the_textbook(tmp_path):
    out = tmp_path / "bench.json"
    assert cli.main([*QUICK, "--no-kernels", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["training"] == "the textbook (--no-kernels)" and result["runs"][0]["swapped"] == []
    assert kernels.enabled()  # the switch is the Trainer's, not the process's


def test_cli_bench_mnist_batch_sizes(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(profile, "step_ms",
                        lambda trainer, x, repeats=1: seen.append(trainer.batch_size) or [1.0] * repeats)
    monkeypatch.setattr(profile, "phases", lambda trainer, x, steps=20: dict.fromkeys(("data", "forward"), 0.1))
    monkeypatch.setattr(profile, "matmul_floor", lambda model, batch: {"ms": 0.5, "gflops": 1.0, "products": []})
    assert cli.main(["bench", "--workloads", "mnist", "--batch-sizes", "16", "32", "--steps", "1", "--repeats", "1",
                     "--warmup", "0", "--threads", "0"]) == 0
    assert seen == [16, 32]


def test_cli_bench_no_memory_is_deprecated(capsys):
    assert cli.main([*QUICK, "--repeats", "1", "--no-memory"]) == 0
    assert "--no-memory is deprecated and does nothing" in capsys.readouterr().err


def test_a_batch_larger_than_the_epoch_is_refused(capsys, monkeypatch):
    monkeypatch.setattr(profile, "step_ms", lambda *a, **kw: pytest.fail("timed a batch larger than the data"))
    for option in ("--batch-sizes", "--digits-batch-size"):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["bench", option, "60001"])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and f"argument {option}: a batch cannot hold more than the 60000" in err
    assert cli.build_parser().parse_args(["bench", "--batch-sizes", "60000"]).batch_sizes == [60000]


def test_cli_bench_reports_an_unwritable_json_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(profile, "step_ms", lambda *a, **kw: pytest.fail("timed before checking --json"))
    folder = tmp_path / "a-folder"
    folder.mkdir()
    assert cli.main([*QUICK, "--json", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err and "Is a directory" in err


def test_the_old_module_command_still_runs_and_says_what_replaces_it():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "scratchvae.bench", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "usage: scratchvae bench" in out.stdout
    assert "deprecated" in out.stderr and "scratchvae bench" in out.stderr
