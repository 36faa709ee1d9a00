"""The ``scratchvae`` command, end to end on a tiny budget."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from scratchvae import backend, checkpoint, cli, datasets, kernels, training

FIGURES = ["curves.png", "reconstructions.png", "samples.png", "latent.png", "manifold.png"]
FILES = ["model.npz", "config.json", "history.csv", "metrics.json", *FIGURES]
TINY = ["--epochs", "1", "--hidden", "8", "--iwae-k", "5", "--eval-samples", "2", "--quiet", "--backend", "numpy"]


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


@pytest.mark.parametrize("command", [["train"], ["sample", "m.npz"], ["reconstruct", "m.npz"], ["evaluate", "m.npz"]])
def test_seeds_must_be_non_negative(capsys, command):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*command, "--seed", "-1"])
    assert exit_info.value.code == 2
    assert "argument --seed: expected a non-negative integer, got '-1'" in capsys.readouterr().err
    assert cli.build_parser().parse_args([*command, "--seed", "0"]).seed == 0


def test_paths_may_start_with_a_tilde(monkeypatch, tmp_path):
    """``--out=~/x`` reaches the program with its ~ (the shell expands only a word's start)."""
    monkeypatch.setenv("HOME", str(tmp_path))
    parse = cli.build_parser().parse_args
    args = parse(["train", "--out=~/run", "--data-dir=~/data"])
    assert (args.out, args.data_dir) == (str(tmp_path / "run"), str(tmp_path / "data"))
    for command in ("sample", "reconstruct"):
        args = parse([command, "~/run/model.npz", "--out=~/fig.png"])
        assert (args.checkpoint, args.out) == (str(tmp_path / "run/model.npz"), str(tmp_path / "fig.png"))
    assert parse(["evaluate", "~/m.npz", "--data-dir=~/d"]).data_dir == str(tmp_path / "d")
    assert parse(["bench", "--json=~/b.json"]).json == str(tmp_path / "b.json")


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
    for out, written in [(folder, folder / "samples-seed0-n4.png"),  # a folder: the default name in it
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


def test_info_says_which_path_training_runs_and_why(capsys):
    """The compiled twins where they run (with numba's version), else the textbook and why."""
    def training_line(*argv):
        assert cli.main(["info", *argv]) == 0
        (line,) = [s for s in capsys.readouterr().out.splitlines() if s.startswith("training:")]
        return line

    status = kernels.status()["numpy"]
    line = training_line("--backend", "numpy")
    if status.startswith("numba"):
        assert f"the compiled twins ({status})" in line and "SCRATCHVAE_KERNELS=off" in line
    else:  # no numba here: the reason kernels.status gives
        assert "the textbook" in line and status.split(": ", 1)[-1] in line
    with kernels.disabled():
        assert "the textbook (SCRATCHVAE_KERNELS=off)" in training_line("--backend", "numpy")
    line = training_line("--backend", "array_api_strict")
    assert "the textbook" in line and "array_api_strict" in line


def test_train_no_kernels_runs_the_textbook(tmp_path, monkeypatch):
    """--no-kernels passes kernels=False to the Trainer; without it the default (None)
    follows SCRATCHVAE_KERNELS."""
    seen = []
    real_init = training.Trainer.__init__

    def spy(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        seen.append((kwargs.get("kernels"), list(self.swapped)))

    monkeypatch.setattr(training.Trainer, "__init__", spy)
    for flag in (["--no-kernels"], []):
        assert cli.main(["train", "--out", str(tmp_path / "r"), *TINY, *flag, "--force"]) == 0
    (off, off_swapped), (default, _) = seen
    assert off is False and off_swapped == [] and default is None
    assert json.loads((tmp_path / "r" / "config.json").read_text())["no_kernels"] is False


def _one_line_error(capsys, argv, pattern):
    code = cli.main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert pattern in err, err


def test_errors_are_one_clear_line(tmp_path, capsys):
    _one_line_error(capsys, ["train", "--dataset", "cifar", "--out", str(tmp_path / "a")], "unknown")
    assert not (tmp_path / "a").exists()  # the folder is made once backend and data set have loaded
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


def test_a_bad_backend_makes_no_output_folder(tmp_path, capsys, monkeypatch):
    def bogus(*args, **kwargs):
        raise backend.BackendError("unknown backend 'bogus'")

    monkeypatch.setattr(backend, "use", bogus)
    _one_line_error(capsys, ["train", "--out", str(tmp_path / "new")], "unknown backend 'bogus'")
    assert not (tmp_path / "new").exists()


def test_a_failed_run_leaves_the_earlier_runs_config(tmp_path, capsys, monkeypatch):
    assert cli.main(["train", "--out", str(tmp_path), *TINY]) == 0
    before = {name: (tmp_path / name).read_bytes() for name in ("config.json", "history.csv", "metrics.json")}

    def diverge(self, *args, **kwargs):
        raise training.TrainingDiverged("the loss became NaN or infinite at step 1")

    monkeypatch.setattr(training.Trainer, "fit", diverge)
    _one_line_error(capsys, ["train", "--out", str(tmp_path), *TINY, "--z-dim", "3", "--force"], "became NaN")
    assert {name: (tmp_path / name).read_bytes() for name in before} == before
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files


def test_config_is_written_with_the_first_checkpoint(tmp_path, monkeypatch):
    # config.json and model.npz belong to one run at every moment: the config is written
    # right after the first checkpoint, so a run that fails in a later epoch leaves its own pair
    seen = []
    save = training.Trainer.save

    def save_and_look(self, path):
        save(self, path)
        config = path.parent / "config.json"
        seen.append(json.loads(config.read_text())["z_dim"] if config.exists() else None)

    monkeypatch.setattr(training.Trainer, "save", save_and_look)
    assert cli.main(["train", "--out", str(tmp_path), *TINY, "--epochs", "3", "--z-dim", "3"]) == 0
    assert seen[0] is None and seen[1:] == [3] * (len(seen) - 1) and len(seen) >= 2  # the first, ..., the last
    assert checkpoint.read(tmp_path / "model.npz")["meta"]["config"]["z_dim"] == 3


def test_wrote_names_this_runs_files_and_removes_a_stale_manifold(tmp_path, capsys):
    assert cli.main(["train", "--out", str(tmp_path), *TINY]) == 0  # z_dim 2: a manifold
    assert (tmp_path / "manifold.png").is_file()
    (tmp_path / "notes.txt").write_text("mine")
    capsys.readouterr()
    assert cli.main(["train", "--out", str(tmp_path), *TINY, "--z-dim", "3", "--force"]) == 0
    lines = capsys.readouterr().out.splitlines()
    written = sorted(set(FILES) - {"manifold.png"})
    assert f"wrote {', '.join(written)}" in lines
    assert any(line.startswith("removed manifold.png") for line in lines)
    assert not (tmp_path / "manifold.png").exists() and (tmp_path / "notes.txt").read_text() == "mine"


def test_a_relative_data_dir_is_recorded_absolute_and_can_be_overridden(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", "--out", "run", "--data-dir", "data", *TINY]) == 0
    data = checkpoint.read(tmp_path / "run/model.npz")["meta"]["extra"]["data"]
    assert data["data_dir"] == str(tmp_path / "data")
    assert json.loads((tmp_path / "run/config.json").read_text())["data_dir"] == str(tmp_path / "data")
    seen = []
    real_load = datasets.load
    monkeypatch.setattr(datasets, "load", lambda *a, **kw: seen.append(kw["data_dir"]) or real_load(*a, **kw))
    ck = str(tmp_path / "run/model.npz")
    assert cli.main(["evaluate", ck, "--k", "2", "--samples", "1"]) == 0
    assert cli.main(["evaluate", ck, "--k", "2", "--samples", "1", "--data-dir", "elsewhere"]) == 0
    assert cli.main(["reconstruct", ck, "--data-dir", "there", "--out", str(tmp_path / "r.png")]) == 0
    assert seen == [str(tmp_path / "data"), "elsewhere", "there"]


def _edited_checkpoint(run, path, edit):
    with np.load(run / "model.npz") as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(str(arrays["meta"]))
    edit(meta)
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(path, **arrays)
    return str(path)


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.pop("extra"), "does not say which data set it was trained on"),
    (lambda m: m["extra"].update(data=[1, 2]), "does not say which data set it was trained on"),
    (lambda m: m["extra"]["data"].pop("split_seed"), "does not record the seed of its data split"),
    (lambda m: m["config"].update(bogus=1), "holds a model config that VAE does not accept"),
    (lambda m: m.pop("rng_states"), "holds no RNG state"),
])
def test_an_edited_checkpoint_gives_one_line(run, tmp_path, capsys, edit, message):
    ck = _edited_checkpoint(run, tmp_path / "edited.npz", edit)
    _one_line_error(capsys, ["evaluate", ck, "--k", "2", "--samples", "1"], f"{ck}")
    _one_line_error(capsys, ["reconstruct", ck, "--out", str(tmp_path / "r.png")], message)


def test_os_errors_are_one_line(tmp_path, capsys, monkeypatch):
    from scratchvae import profile

    (tmp_path / "model.npz").mkdir()  # in the way of the checkpoint: found before training
    _one_line_error(capsys, ["train", "--out", str(tmp_path), *TINY], f"{tmp_path / 'model.npz'} is a folder")
    monkeypatch.setattr(profile, "step_ms", lambda *a, **kw: pytest.fail("timed before checking --json"))
    _one_line_error(capsys, ["bench", "--json", str(tmp_path)], f"Is a directory: {tmp_path}")
    _one_line_error(capsys, ["bench", "--json", str(tmp_path / "no" / "b.json")], "No such file or directory")
    assert not os.path.exists(tmp_path / "no")


def test_train_keeps_freed_memory_in_its_own_process(tmp_path, monkeypatch):
    """The command owns its process, so it asks glibc to keep freed memory (no page
    faults for the arrays each step makes anew); library calls never do this."""
    from scratchvae import backend

    calls = []
    monkeypatch.setattr(backend, "retain_freed_memory", lambda megabytes=512: calls.append(megabytes) or True)
    code = cli.main(["train", "--out", str(tmp_path / "r"), "--epochs", "1", "--hidden", "8", "--iwae-k", "2",
                     "--eval-samples", "2", "--quiet", "--backend", "numpy"])
    assert code == 0 and calls == [64]


def test_train_with_the_iwae_objective(tmp_path):
    assert cli.main(["train", "--out", str(tmp_path), *TINY, "--epochs", "2", "--objective", "iwae",
                     "--samples", "3"]) == 0
    header = (tmp_path / "history.csv").read_text().splitlines()[0].split(",")
    assert {"train_neg_iwae", "val_neg_iwae", "train_neg_elbo"} <= set(header)
    assert json.loads((tmp_path / "config.json").read_text())["objective"] == "iwae"
    assert checkpoint.read(tmp_path / "model.npz")["meta"]["extra"]["trainer"]["objective"] == "iwae"
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["active_units"] <= 2 and len(m["kl_per_dim"]) == len(m["activity"]) == 2
    assert sum(m["kl_per_dim"]) == pytest.approx(m["test"]["kl"], rel=1e-5)  # the closed-form KL, split


def test_train_conditional_draws_a_row_per_class(tmp_path, capsys):
    out = tmp_path / "cvae"
    assert cli.main(["train", "--out", str(out), *TINY, "--epochs", "2", "--conditional"]) == 0
    printed = capsys.readouterr().out
    assert "-log p(x | y)" in printed and "read as the class asked for" in printed
    m = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= m["samples_read_as_asked"] <= 1.0
    assert checkpoint.read(out / "model.npz")["meta"]["config"]["n_classes"] == 10
    assert (out / "samples.png").is_file() and not (out / "manifold.png").exists()
    ck = str(out / "model.npz")
    assert cli.main(["sample", ck, "--n", "30", "--out", str(tmp_path / "rows.png")]) == 0
    assert cli.main(["sample", ck, "--label", "3", "--n", "4", "--out", str(tmp_path / "threes.png")]) == 0
    assert cli.main(["reconstruct", ck, "--out", str(tmp_path / "r.png")]) == 0
    capsys.readouterr()
    assert cli.main(["evaluate", ck, "--k", "5", "--samples", "1"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["nll_iwae"] <= result["neg_elbo"] + 1.0 and len(result["kl_per_dim"]) == 2
    _one_line_error(capsys, ["sample", ck, "--label", "10"], "this VAE knows classes 0..9")


def test_label_needs_a_conditional_checkpoint(run, capsys):
    _one_line_error(capsys, ["sample", str(run / "model.npz"), "--label", "3"], "--label applies to a conditional VAE")


def test_unknown_objective_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--objective", "iwea"])
    assert exit_info.value.code == 2 and "invalid choice: 'iwea'" in capsys.readouterr().err


def test_train_records_the_thread_policy_and_refuses_a_bad_setting(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    assert cli.main(["train", "--out", str(out), "--epochs", "1", "--iwae-k", "5", "--eval-samples", "1",
                     "--threads", "1", "--quiet"]) == 0
    record = json.loads((out / "config.json").read_text())["threads"]
    assert record["setting"] == 1 and record["threads"] == 1 and "set by the user" in record["reason"]
    monkeypatch.setenv("SCRATCHVAE_THREADS", "lots")
    assert cli.main(["train", "--out", str(tmp_path / "bad"), "--epochs", "1"]) != 0
    assert "'auto' or a positive whole number" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()  # refused before anything was written
    assert cli.main(["info"]) == 0 and "training will refuse to start" in capsys.readouterr().out
    monkeypatch.delenv("SCRATCHVAE_THREADS")
    assert cli.main(["info"]) == 0 and "threads:     auto" in capsys.readouterr().out


def test_a_folder_that_holds_a_run_is_refused_and_kept(tmp_path, capsys):
    assert cli.main(["train", "--out", str(tmp_path), *TINY]) == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    _one_line_error(capsys, ["train", "--out", str(tmp_path), *TINY, "--z-dim", "3"], "already holds a run")
    code = cli.main(["train", "--out", str(tmp_path), *TINY])
    err = capsys.readouterr().err
    assert code == 2 and f"--resume {tmp_path}" in err and "--force" in err and "new --out" in err
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # byte for byte
    assert cli.main(["train", "--out", str(tmp_path), *TINY, "--z-dim", "3", "--force"]) == 0  # starts over
    assert json.loads((tmp_path / "config.json").read_text())["z_dim"] == 3


def _params(path):
    with np.load(path) as f:
        return {k: f[k] for k in f.files if k.startswith("param/")}


def test_resume_ends_where_an_uninterrupted_run_ends(tmp_path, capsys):
    """k epochs, then --resume to n, is the run of n epochs: parameters and test metrics."""
    opts = [*TINY[2:], "--threads", "1", "--seed", "3"]
    assert cli.main(["train", "--out", str(tmp_path / "straight"), "--epochs", "4", *opts]) == 0
    assert cli.main(["train", "--out", str(tmp_path / "cut"), "--epochs", "2", *opts]) == 0
    capsys.readouterr()
    assert cli.main(["train", "--resume", str(tmp_path / "cut"), "--epochs", "4", "--quiet"]) == 0
    assert "resuming" in capsys.readouterr().out
    a, b = _params(tmp_path / "straight/model.npz"), _params(tmp_path / "cut/model.npz")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-6, atol=1e-6, err_msg=k)
    ma, mb = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("straight", "cut"))
    assert mb["epochs"] == 4 and mb["test"] == pytest.approx(ma["test"], rel=1e-5)
    assert mb["test_nll_iwae"] == pytest.approx(ma["test_nll_iwae"], rel=1e-5)
    assert len((tmp_path / "cut/history.csv").read_text().splitlines()) == 1 + 4
    config = json.loads((tmp_path / "cut/config.json").read_text())
    assert config["epochs"] == 4 and config["seed"] == 3 and config["hidden"] == [8]
    # done: resuming again needs a larger --epochs; a new option would be silently lost, so it is refused
    _one_line_error(capsys, ["train", "--resume", str(tmp_path / "cut")], "has trained 4 epochs already")
    _one_line_error(capsys, ["train", "--resume", str(tmp_path / "cut"), "--lr", "0.1"], "--lr cannot be given")
    _one_line_error(capsys, ["train", "--resume", str(tmp_path / "none")], "holds no run to resume")


def test_ctrl_c_says_how_to_resume(tmp_path, capsys, monkeypatch):
    def interrupt(t, rec):
        raise KeyboardInterrupt

    real_fit = training.Trainer.fit

    def fit_then_interrupt(self, *args, **kwargs):
        self.callback = lambda t, rec, first=self.callback: (first(t, rec), interrupt(t, rec))
        return real_fit(self, *args, **kwargs)

    monkeypatch.setattr(training.Trainer, "fit", fit_then_interrupt)
    assert cli.main(["train", "--out", str(tmp_path), *TINY, "--epochs", "3"]) == 130
    assert f"interrupted; continue with `scratchvae train --resume {tmp_path}`" in capsys.readouterr().err
    monkeypatch.setattr(training.Trainer, "fit", real_fit)
    assert cli.main(["train", "--resume", str(tmp_path), "--quiet"]) == 0
    assert json.loads((tmp_path / "metrics.json").read_text())["epochs"] == 3


@pytest.mark.parametrize("argv, message", [
    (["--lr", "nan"], "argument --lr: expected a finite number > 0, got 'nan'"),
    (["--lr", "0"], "argument --lr: expected a finite number > 0, got '0'"),
    (["--out", ""], "argument --out: expected a path, got an empty one"),
])
def test_a_refused_argument_is_a_usage_error(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", *argv])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_a_refused_argument_leaves_nothing_behind(tmp_path, capsys):
    _one_line_error(capsys, ["train", "--out", str(tmp_path / "a"), *TINY, "--activation", "nope"], "nope")
    _one_line_error(capsys, ["train", "--resume", str(tmp_path / "b")], "holds no run")
    assert list(tmp_path.iterdir()) == []


def test_stale_temporary_files_are_cleaned(tmp_path):
    (tmp_path / ".model.npz.abc123.tmp").write_bytes(b"half a checkpoint")  # a run killed mid-write
    (tmp_path / ".metrics.json.tmp").write_text("{")
    (tmp_path / "notes.tmp").write_text("mine")
    assert cli.main(["train", "--out", str(tmp_path), *TINY]) == 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == ["notes.tmp"]
    (tmp_path / ".model.npz.def456.tmp").write_bytes(b"")
    assert cli.main(["train", "--resume", str(tmp_path), "--epochs", "2"]) == 0
    assert not (tmp_path / ".model.npz.def456.tmp").exists()


def test_an_interrupt_while_the_results_are_written_is_resumed_to_them(tmp_path, capsys, monkeypatch):
    """Ctrl-C after the last epoch, while the figures are drawn: --resume trains nothing more
    and writes what was missing (metrics.json, written last, marks a finished run)."""
    from scratchvae.cli import train as train_command

    real = train_command.figures

    def interrupted(*args, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_command, "figures", interrupted)
    assert cli.main(["train", "--out", str(tmp_path), *TINY, "--epochs", "2"]) == 130
    assert f"--resume {tmp_path}" in capsys.readouterr().err and not (tmp_path / "metrics.json").exists()
    monkeypatch.setattr(train_command, "figures", real)
    trained = (tmp_path / "model.npz").read_bytes()
    assert cli.main(["train", "--resume", str(tmp_path)]) == 0
    assert "its epochs are trained; writing its metrics and figures" in capsys.readouterr().out
    assert (tmp_path / "model.npz").read_bytes() == trained  # no epoch more
    for name in FILES:
        assert (tmp_path / name).is_file(), name
    assert json.loads((tmp_path / "metrics.json").read_text())["epochs"] == 2
