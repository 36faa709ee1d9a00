"""The ``scratchvae`` command, end to end on a tiny budget."""

import json
import subprocess
import sys

import numpy as np
import pytest

from scratchvae import cli, kernels

FIGURES = ["curves.png", "reconstructions.png", "samples.png", "latent.png", "manifold.png"]
FILES = ["model.npz", "config.json", "history.csv", "metrics.json", *FIGURES]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    code = cli.main(["train", "--out", str(out), "--epochs", "3", "--hidden", "32", "--iwae-k", "200",
                     "--eval-samples", "20", "--quiet", "--backend", "numpy"])
    assert code == 0
    return out


def test_train_writes_every_file(run):
    for name in FILES:
        assert (run / name).is_file() and (run / name).stat().st_size > 0, name
    for name in FIGURES:
        assert (run / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_metrics_are_finite_and_consistent(run):
    m = json.loads((run / "metrics.json").read_text())
    for split in ("train", "val", "test"):
        s = m[split]
        assert all(np.isfinite([s["neg_elbo"], s["rec"], s["kl"]]))
        assert s["neg_elbo"] == pytest.approx(s["rec"] + s["kl"], rel=1e-6)
        assert s["kl"] > 0
    # the importance-weighted bound is tighter: -log p(x) estimate <= negative ELBO
    assert np.isfinite(m["test_nll_iwae"]) and m["test_nll_iwae"] <= m["test"]["neg_elbo"]
    assert m["time_per_epoch_s"] > 0 and m["backend"] == "numpy" and m["epochs"] == 3


def test_history_and_config(run):
    lines = (run / "history.csv").read_text().splitlines()
    header = lines[0].split(",")
    assert {"epoch", "train_loss", "val_loss", "train_rec", "train_kl", "val_rec", "val_kl"} <= set(header)
    assert len(lines) == 1 + 3
    config = json.loads((run / "config.json").read_text())
    assert config["dataset"] == "digits" and config["model"]["z_dim"] == 2


@pytest.mark.parametrize("argv, message", [
    (["train", "--epochs", "0"], "argument --epochs: expected a positive integer, got '0'"),
    (["train", "--z-dim", "-1"], "argument --z-dim: expected a positive integer, got '-1'"),
    (["train", "--hidden", "64", "0"], "argument --hidden: expected a positive integer, got '0'"),
    (["sample", "m.npz", "--n", "two"], "argument --n: expected a positive integer, got 'two'"),
    (["evaluate", "m.npz", "--k", "0"], "argument --k: expected a positive integer, got '0'"),
    (["bench", "--repeats", "0"], "argument --repeats: expected a positive integer, got '0'"),
])
def test_counts_must_be_positive(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_config_records_the_backend_and_data_set_that_ran(tmp_path, monkeypatch):
    monkeypatch.delenv("SCRATCHVAE_BACKEND", raising=False)
    assert cli.main(["train", "--out", str(tmp_path), "--epochs", "1", "--hidden", "8", "--iwae-k", "5",
                     "--eval-samples", "2", "--quiet"]) == 0  # no --backend: the default is used
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["backend"] == "numpy" and config["dataset"] == "digits" and config["dtype"] == "float32"


def test_commands_from_a_checkpoint(run, tmp_path, capsys):
    ck = str(run / "model.npz")
    assert cli.main(["sample", ck, "--n", "16", "--out", str(tmp_path / "s.png")]) == 0
    assert cli.main(["reconstruct", ck, "--out", str(tmp_path / "r.png")]) == 0
    assert (tmp_path / "s.png").stat().st_size > 0 and (tmp_path / "r.png").stat().st_size > 0
    capsys.readouterr()
    assert cli.main(["evaluate", ck, "--k", "50"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["split"] == "test" and result["nll_iwae"] <= result["neg_elbo"]


def test_figure_out_names_the_file_it_writes(run, tmp_path, capsys):
    ck = str(run / "model.npz")
    folder = tmp_path / "figs"
    folder.mkdir()
    for out, written in [(folder, folder / "samples.png"),  # a folder: the default name in it
                         (tmp_path / "grid", tmp_path / "grid.png"),  # no extension: .png
                         (tmp_path / "grid.pdf", tmp_path / "grid.pdf")]:  # another format
        capsys.readouterr()
        assert cli.main(["sample", ck, "--n", "4", "--out", str(out)]) == 0
        assert capsys.readouterr().out.strip() == f"wrote {written}" and written.stat().st_size > 0
    _one_line_error(capsys, ["sample", ck, "--out", str(tmp_path / "grid.xyz")], "cannot write '.xyz' files")
    assert not (tmp_path / "grid.xyz").exists()


def test_info(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert "scratchvae" in out and "backend:" in out and "data cache:" in out
    assert f"kernels:     NumPy: {kernels.status()['numpy']}" in out  # numba's version, or why not


def _one_line_error(capsys, argv, pattern):
    code = cli.main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert pattern in err, err


def test_errors_are_one_clear_line(tmp_path, capsys):
    _one_line_error(capsys, ["train", "--dataset", "cifar", "--out", str(tmp_path / "a")], "unknown")
    blocker = tmp_path / "file"
    blocker.write_text("")
    _one_line_error(capsys, ["train", "--out", str(blocker / "sub")], "cannot write to")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a checkpoint")
    _one_line_error(capsys, ["sample", str(bad)], "not a scratchvae checkpoint (not an .npz archive)")
    bad.write_bytes(b"PK\x03\x04 a zip archive cut short")
    _one_line_error(capsys, ["sample", str(bad)], "damaged or truncated")
    _one_line_error(capsys, ["evaluate", str(tmp_path / "none.npz")], "no checkpoint at")


def test_mnist_offline_fails_fast_with_advice(tmp_path, capsys, monkeypatch):
    from scratchvae.datasets import mnist

    monkeypatch.setenv("SCRATCHVAE_DATA", str(tmp_path / "cache"))
    monkeypatch.setattr(mnist, "MIRRORS", ("http://127.0.0.1:9/mnist/",))  # refuses at once
    _one_line_error(capsys, ["train", "--dataset", "mnist", "--out", str(tmp_path / "o")], "digits")


def test_python_dash_m_and_help():
    r = subprocess.run([sys.executable, "-m", "scratchvae", "train", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "examples:" in r.stdout and "--kl-warmup" in r.stdout
