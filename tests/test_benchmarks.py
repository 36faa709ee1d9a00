"""Every script in benchmarks/ runs, at toy size: the paired benchmark (bench_vae.py with
its workers, harness.py and torch_reference.py), subnormal_experiment.py and contention.py. PyTorch is
optional: where it is missing the scripts must say so and time scratchvae alone."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
sys.path.insert(0, str(BENCH))

import bench_vae  # noqa: E402
import harness  # noqa: E402

HAS_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="PyTorch is not installed (optional: pip install torch==2.13.0)")
TOY = ["--workloads", "digits", "--digits-batch-size", "16", "--examples", "64", "--rounds", "2", "--warmup", "1",
       "--floor-reps", "2", "--threads", "1"]


def _script(name, *args, timeout=300):
    out = subprocess.run([sys.executable, str(BENCH / name), *args], capture_output=True, text=True,
                         timeout=timeout, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    return out


def test_every_script_in_benchmarks_is_run_here():
    source = Path(__file__).read_text()
    for script in sorted(BENCH.glob("*.py")):
        assert f'"{script.name}"' in source, f"benchmarks/{script.name} is run by no test"


def test_bench_vae_times_scratchvae_both_ways_in_workers(tmp_path):
    """A paired run of the two scratchvae contenders, each in a harness.py worker."""
    out = tmp_path / "r.json"
    printed = _script("bench_vae.py", *TOY, "--contenders", "scratchvae", "textbook", "--out", str(out)).stdout
    result = json.loads(out.read_text())
    (rec,) = result["runs"]
    assert rec["workload"] == "digits" and rec["batch_size"] == 16 and rec["steps_per_epoch"] == 4
    for key in ("scratchvae", "textbook"):
        c = rec["contenders"][key]
        assert len(c["epoch_s_all"]) == 2 and 0 < c["epoch_s_best"] <= c["epoch_s"]
        assert c["memory"]["peak_rss_mb"] > 0 and c["info"]["dtypes"] == ["float32"]
        # the epoch is scaled from 64 examples to 60,000
        assert c["epoch_s"] == pytest.approx(c["step_ms"] / 1e3 * 4 * 60_000 / 64)
    assert rec["contenders"]["textbook"]["info"]["swapped"] == []
    assert rec["contenders"]["textbook"]["info"]["kernels"] == "the textbook"
    assert rec["floor"]["ms"] > 0 and len(rec["floor"]["ms_all"]) == 3
    for key in ("scratchvae/floor", "scratchvae/floor best", "textbook/floor", "textbook/scratchvae"):
        assert rec["ratios"][key] > 0, key
    assert "matmul floor (NumPy BLAS)" in printed and "textbook / scratchvae" in printed


def test_bench_vae_without_pytorch_says_so_and_skips_its_columns(monkeypatch, capsys):
    monkeypatch.setattr(bench_vae, "torch_missing", lambda: "PyTorch is not installed: its columns are skipped")
    seen = []
    monkeypatch.setattr(bench_vae, "run_workload", lambda name, B, contenders, args, say: seen.append(contenders)
                        or {"workload": name, "layers": "", "batch_size": B, "rounds": 1, "contenders": {},
                            "floor": {}, "ratios": {}})
    assert bench_vae.main(TOY) == 0
    assert seen == [["scratchvae", "textbook"]]
    captured = capsys.readouterr()
    assert "PyTorch is not installed" in captured.err and "PyTorch is not installed" in captured.out
    with pytest.raises(SystemExit, match="nothing left to time"):
        bench_vae.main([*TOY, "--contenders", "torch", "torch_fused"])


def test_ratios_are_median_over_median_and_fastest_over_the_floor():
    c = {"scratchvae": {"epoch_s": 2.0, "epoch_s_best": 1.8, "memory": {"peak_rss_mb": 300.0}},
         "textbook": {"epoch_s": 3.0, "epoch_s_best": 2.7},
         "torch": {"epoch_s": 2.5, "epoch_s_best": 2.0, "memory": {"peak_rss_mb": 500.0}}}
    r = bench_vae.ratios({"contenders": c, "floor": {"epoch_s": 1.2}})
    assert r["scratchvae/torch"] == pytest.approx(0.8) and r["scratchvae/torch best"] == pytest.approx(0.9)
    assert r["scratchvae/floor best"] == pytest.approx(1.5) and r["textbook/scratchvae"] == pytest.approx(1.5)
    assert r["peak_rss scratchvae/torch"] == pytest.approx(0.6) and "peak_rss textbook/torch" not in r


def test_a_worker_that_cannot_start_says_why():
    with pytest.raises(harness.WorkerError, match="no-such-workload"):
        harness.Worker(BENCH / "harness.py", {"contender": "scratchvae", "workload": "no-such-workload", "batch": 8})


def test_synthetic_images_are_the_same_for_every_contender():
    x = harness.synthetic_images(2500, 30, seed=0, unique=1000)
    assert x.shape == (2500, 30) and x.dtype == np.float32 and 0.0 <= x.min() and x.max() <= 1.0
    assert 0.75 < np.mean(x == 0.0) < 0.85
    np.testing.assert_array_equal(x[1000:2000], x[:1000])
    np.testing.assert_array_equal(x, harness.synthetic_images(2500, 30, seed=0, unique=1000))


@needs_torch
def test_torch_reference_by_hand():
    out = _script("torch_reference.py", "--workload", "digits", "--batch-size", "16", "--examples", "64",
                  "--epochs", "1", "--threads", "1").stdout
    assert "s per epoch of 64 examples" in out and "ms per step" in out


@needs_torch
@pytest.mark.slow  # six workers, four of them import PyTorch: about 20 s
def test_bench_vae_with_pytorch_all_contenders(tmp_path):
    out = tmp_path / "r.json"
    printed = _script("bench_vae.py", *TOY, "--out", str(out)).stdout
    (rec,) = json.loads(out.read_text())["runs"]
    assert set(rec["contenders"]) == set(bench_vae.CONTENDERS)
    for key in bench_vae.TORCH:
        assert "epoch_s" in rec["contenders"][key], rec["contenders"][key]
    assert rec["contenders"]["torch_ftz"]["info"]["flush_denormal"] is True
    assert rec["floor"]["torch_blas_ms"] > 0
    for key in ("scratchvae/torch", "scratchvae/torch_fused", "scratchvae/torch_fused_ftz", "textbook/torch",
                "peak_rss scratchvae/torch"):
        assert rec["ratios"][key] > 0, key
    assert "pytorch fused Adam +FTZ" in printed and "peak RSS scratchvae / torch" in printed


def test_subnormal_experiment(tmp_path):
    out = tmp_path / "s.json"
    _script("subnormal_experiment.py", "--workload", "digits", "--batch-size", "16", "--windows", "2", "--window", "3",
            "--examples", "96", "--threads", "1", "--out", str(out))
    result = json.loads(out.read_text())
    assert set(result["rows"]) == {"fused", "textbook Adam"}
    for rows in result["rows"].values():
        assert [r["steps_done"] for r in rows] == [23, 46]  # 3 steps a window, and 20 more for its phases
        assert all(r["step_ms"] > 0 and r["subnormal_entries"] >= 0 for r in rows)


def test_contention_measures_quiet_and_loaded_and_leaves_nothing_running(tmp_path):
    out = tmp_path / "c.json"
    printed = _script("contention.py", "--competitors", "1", "--epochs", "1", "--max-seconds", "60",
                      "--out", str(out), "--train-args", "--iwae-k", "5", "--eval-samples", "1").stdout
    result = json.loads(out.read_text())
    assert {"scratchvae train (default)", "scratchvae train --threads 1"} <= set(result["rows"])
    assert len(result["rows"]) == 3
    for row in result["rows"].values():
        assert row["quiet"] > 0 and row["loaded"] > 0
    assert "loaded / quiet" in printed
    import contention  # noqa: E402

    with contention.competitors(2, max_seconds=30) as procs:
        assert all(p.poll() is None for p in procs)  # running beside the code inside
    assert all(p.poll() is not None for p in procs)  # and stopped on the way out


def test_bench_vae_has_a_contention_mode(tmp_path):
    out = tmp_path / "r.json"
    _script("bench_vae.py", *TOY, "--contenders", "scratchvae", "--contention", "1", "--out", str(out))
    assert json.loads(out.read_text())["contention"] == 1


def test_threads_quiet_compares_the_policy_with_a_fixed_count():
    out = _script("threads_quiet.py", "--workloads", "digits", "--rounds", "1", "--repeats", "1").stdout
    assert "digits auto / 2:" in out and "threads=auto" in out
