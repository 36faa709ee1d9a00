"""The command where users meet it: environment variables, what sample and reconstruct
write beside a run, MNIST offline, a HOME that does not exist, a model too large."""

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from scratchvae import backend, cli
from scratchvae.cli.common import RUN_FILES

TINY = ["--epochs", "1", "--hidden", "8", "--iwae-k", "5", "--eval-samples", "2", "--quiet", "--backend", "numpy"]


@pytest.fixture(autouse=True)
def _restore_backend():
    """The command selects the backend of this process; put the test's back afterwards."""
    before = backend.current()
    yield
    backend.use(before.name, dtype=before.dtype_name, device=before.device)


def _error(capsys, argv) -> str:
    code = cli.main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def _digest(folder) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert cli.main(["train", "--out", str(out), *TINY]) == 0
    return out


# ---- SCRATCHVAE_DTYPE (and the other documented variables) --------------------------


def test_dtype_variable_reaches_the_run_and_its_record(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SCRATCHVAE_DTYPE", "float64")
    assert cli.main(["info", "--backend", "numpy"]) == 0
    assert "numpy on cpu (float64)" in capsys.readouterr().out  # info says what train will do ...
    out = tmp_path / "r"
    assert cli.main(["train", "--out", str(out), *TINY]) == 0
    assert "(cpu, float64)" in capsys.readouterr().out  # ... and train does it
    with np.load(out / "model.npz") as f:
        assert {str(f[k].dtype) for k in f.files if k.startswith("param/")} == {"float64"}
    config = json.loads((out / "config.json").read_text())
    assert config["dtype"] == "float64" and config["environment"]["SCRATCHVAE_DTYPE"] == "float64"
    assert set(config["environment"]) == set(cli.common.ENVIRONMENT)
    assert json.loads((out / "metrics.json").read_text())["dtype"] == "float64"
    # a checkpoint is read back in the dtype it was saved in, unless one is asked for
    monkeypatch.delenv("SCRATCHVAE_DTYPE")
    assert cli.main(["evaluate", str(out / "model.npz"), "--k", "5"]) == 0
    assert json.loads(capsys.readouterr().out)["dtype"] == "float64"
    assert cli.main(["evaluate", str(out / "model.npz"), "--k", "5", "--dtype", "float32"]) == 0
    assert json.loads(capsys.readouterr().out)["dtype"] == "float32"


def test_resume_refuses_a_variable_that_would_change_the_arithmetic(tmp_path, monkeypatch, capsys):
    out = tmp_path / "r"
    assert cli.main(["train", "--out", str(out), *TINY]) == 0
    before = _digest(out)
    monkeypatch.setenv("SCRATCHVAE_DTYPE", "float64")
    err = _error(capsys, ["train", "--resume", str(out), "--epochs", "2"])
    assert "trains on float32" in err and "unset SCRATCHVAE_DTYPE" in err
    assert _digest(out) == before


@pytest.mark.parametrize("command", [["info"], ["train", *TINY], ["sample", "m.npz"], ["evaluate", "m.npz"],
                                     ["bench", "--steps", "1"]])
def test_a_bad_dtype_variable_is_refused_by_every_command(command, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SCRATCHVAE_DTYPE", "float16")
    monkeypatch.chdir(tmp_path)
    err = _error(capsys, command)
    assert "SCRATCHVAE_DTYPE='float16'" in err and "float32 or float64" in err
    assert not any(tmp_path.iterdir())  # refused before anything was written


# ---- sample and reconstruct leave the run's files alone -----------------------------


def test_sample_and_reconstruct_never_overwrite_the_run(run, capsys):
    before = _digest(run)
    ck = str(run / "model.npz")
    assert cli.main(["sample", ck, "--n", "9"]) == 0
    assert cli.main(["reconstruct", ck, "--n", "20"]) == 0
    assert cli.main(["sample", ck, "--n", "9", "--seed", "3"]) == 0
    after = _digest(run)
    assert {k: after[k] for k in before} == before  # the run's files, byte for byte
    assert set(after) - set(before) == {"samples-seed0-n9.png", "reconstructions-n20.png", "samples-seed3-n9.png"}
    for name in ("samples.png", "reconstructions.png"):  # asked for by name: refused, saying why
        err = _error(capsys, ["sample" if name.startswith("s") else "reconstruct", ck, "--out", str(run / name)])
        assert "written by `scratchvae train`" in err
    assert _digest(run) == after
    for name in RUN_FILES:
        assert (run / name).is_file() or name == "manifold.png"


def test_large_n_gets_a_clear_limit(run, capsys):
    ck = str(run / "model.npz")
    for command, limit in (("sample", cli.from_checkpoint.MAX_SAMPLES),
                           ("reconstruct", cli.from_checkpoint.MAX_RECONSTRUCTIONS)):
        with pytest.raises(SystemExit) as exit_:
            cli.main([command, ck, "--n", "100000"])
        assert exit_.value.code == 2
        assert f"at most {limit} images, got 100000" in capsys.readouterr().err
    assert cli.main(["sample", ck, "--n", str(cli.from_checkpoint.MAX_SAMPLES)]) == 0
    assert (run / f"samples-seed0-n{cli.from_checkpoint.MAX_SAMPLES}.png").stat().st_size > 0


# ---- data: MNIST offline, --data-dir a file, nothing made under HOME ----------------


def test_mnist_offline_is_one_short_line_in_the_commands_terms(tmp_path, capsys, monkeypatch):
    from scratchvae.datasets import mnist

    monkeypatch.setenv("SCRATCHVAE_DATA", str(tmp_path / "cache" / "mnist"))
    monkeypatch.setattr(mnist, "MIRRORS", ("http://127.0.0.1:9/a/", "http://127.0.0.1:9/b/"))  # refused at once
    err = _error(capsys, ["train", "--dataset", "mnist", "--out", str(tmp_path / "o")])
    assert "--data-dir FOLDER" in err and "data_dir=" not in err and "--dataset digits" in err
    assert len(err) < 500 and "127.0.0.1" not in err  # no connection errors pasted in
    assert not (tmp_path / "cache").exists() and not (tmp_path / "o").exists()  # nothing cached: nothing made
    afile = tmp_path / "afile"
    afile.write_text("")
    err = _error(capsys, ["train", "--dataset", "mnist", "--data-dir", str(afile), "--out", str(tmp_path / "o")])
    assert err.endswith(f"--data-dir {afile} is a file; pass the folder that holds the four MNIST files")


def test_nothing_is_made_under_a_home_that_does_not_exist(tmp_path):
    home = tmp_path / "nonexistent" / "x"
    env = {**os.environ, "HOME": str(home), "SCRATCHVAE_BACKEND": "numpy"}
    env.pop("MPLCONFIGDIR", None)
    for argv in (["info"], ["train", "--out", str(tmp_path / "run"), *TINY]):
        r = subprocess.run([sys.executable, "-m", "scratchvae", *argv], env=env, capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, r.stderr
    assert (tmp_path / "run" / "samples.png").is_file()  # the figures were drawn ...
    assert not (tmp_path / "nonexistent").exists()  # ... and matplotlib's cache made nothing under HOME


# ---- a model that cannot fit -------------------------------------------------------------


def test_a_model_too_large_for_memory_is_refused_before_allocating(tmp_path, capsys):
    err = _error(capsys, ["train", "--hidden", "100000", "100000", "--out", str(tmp_path / "big"), "--quiet"])
    assert "billion weights" in err and "choose smaller --hidden sizes" in err
    assert not (tmp_path / "big").exists()


def test_a_refused_figure_option_makes_no_folder(run, tmp_path, capsys):
    ck = str(run / "model.npz")
    err = _error(capsys, ["sample", ck, "--label", "3", "--out", str(tmp_path / "new" / "s.png")])
    assert "leave --label out" in err
    with pytest.raises(SystemExit):
        cli.main(["reconstruct", ck, "--n", "101", "--out", str(tmp_path / "new" / "r.png")])
    assert not (tmp_path / "new").exists()
