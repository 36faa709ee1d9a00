"""Checkpoints: atomic writes, exact round trips, no pickle, clear refusals."""

import json
import os
import re
import stat
import zipfile

import numpy as np
import pytest

from scratchvae import backend, checkpoint
from scratchvae.checkpoint import CheckpointError
from scratchvae.models.vae import VAE
from scratchvae.optim import Adam


def _trained(seed=0):
    m = VAE(6, hidden=(5,), z_dim=2, likelihood="gaussian", seed=seed)
    opt = Adam(1e-2)
    x = backend.RNG(1).uniform((8, 6))
    for _ in range(3):
        m.loss_and_grads(x)
        opt.step(m.params, m.grads)
    return m, opt


def test_round_trip_restores_parameters_rng_and_config(tmp_path, bk):
    m, opt = _trained()
    checkpoint.save(tmp_path / "m.npz", m, optimizer=opt)
    back = checkpoint.load_model(tmp_path / "m.npz", expect=VAE)
    assert back.config == m.config
    for k, v in m.params.items():
        assert np.array_equal(backend.to_numpy(v), backend.to_numpy(back.params[k])), k
    # the model's noise stream continues where it was
    assert np.array_equal(backend.to_numpy(m.sample(3)), backend.to_numpy(back.sample(3)))


def test_optimizer_state_needs_a_checkpoint_that_has_it(tmp_path):
    m, opt = _trained()
    checkpoint.save(tmp_path / "model-only.npz", m)
    with pytest.raises(checkpoint.CheckpointError, match=r"model-only\.npz holds no optimizer state"):
        checkpoint.restore_optimizer(Adam(0.5), checkpoint.read(tmp_path / "model-only.npz"), tmp_path / "model-only.npz")


def test_optimizer_state_round_trip(tmp_path):
    m, opt = _trained()
    checkpoint.save(tmp_path / "m.npz", m, optimizer=opt)
    for fresh in (Adam(), Adam(1e-2)):  # a fresh Adam, or one with the run's own settings
        checkpoint.restore_optimizer(fresh, checkpoint.read(tmp_path / "m.npz"))
        assert fresh.t == opt.t == 3 and fresh.lr == opt.lr == 1e-2
        for key, a in opt.state_dict().items():
            b = fresh.state_dict()[key]
            assert np.array_equal(backend.to_numpy(a), backend.to_numpy(b)), key


def test_an_optimizer_setting_chosen_on_purpose_is_not_dropped_silently(tmp_path):
    m, opt = _trained()  # trained with lr = 1e-2
    checkpoint.save(tmp_path / "m.npz", m, optimizer=opt)
    asked = Adam(0.5)
    with pytest.raises(CheckpointError, match=r"trained with lr=0\.01, but the Adam passed has lr=0\.5.*"
                                              r"trainer\.optimizer\.lr = 0\.5"):
        checkpoint.restore_optimizer(asked, checkpoint.read(tmp_path / "m.npz"))
    assert asked.t == 0 and asked.lr == 0.5  # refused before anything was restored


def test_series_are_stored_as_arrays_and_come_back_as_they_were(tmp_path):
    m, _ = _trained()
    history = {"epoch": [1, 2, 3], "train_loss": [0.1, 1e-300, float("nan")], "time": [1.5, 2, 3]}
    checkpoint.save(tmp_path / "m.npz", m, series=history)
    ck = checkpoint.read(tmp_path / "m.npz")
    assert ck["series"]["epoch"] == [1, 2, 3] and all(type(e) is int for e in ck["series"]["epoch"])
    assert ck["series"]["train_loss"][:2] == [0.1, 1e-300] and np.isnan(ck["series"]["train_loss"][2])
    assert ck["series"]["time"] == [1.5, 2.0, 3.0]
    assert "train_loss" not in str(ck["meta"])  # binary arrays, not JSON text
    with pytest.raises(ValueError, match="series 'names' must hold numbers"):
        checkpoint.save(tmp_path / "bad.npz", m, series={"names": ["a", "b"]})


def test_write_is_atomic(tmp_path, monkeypatch):
    """A crash while writing leaves the old checkpoint untouched and no temporary file."""
    m, _ = _trained()
    path = tmp_path / "m.npz"
    checkpoint.save(path, m)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(path, _trained(seed=5)[0])
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]


def test_truncated_file_is_refused(tmp_path):
    m, _ = _trained()
    checkpoint.save(tmp_path / "m.npz", m)
    data = (tmp_path / "m.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="damaged or truncated"):
        checkpoint.load_model(tmp_path / "cut.npz", expect=VAE)


def test_foreign_files_are_refused(tmp_path):
    np.savez(tmp_path / "other.npz", W=np.ones(3))
    with pytest.raises(CheckpointError, match="not a scratchvae checkpoint"):
        checkpoint.load_model(tmp_path / "other.npz", expect=VAE)
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(CheckpointError, match=r"not a scratchvae checkpoint \(not an .npz archive\)") as info:
        checkpoint.load_model(tmp_path / "text.npz", expect=VAE)
    assert "pickle" not in str(info.value)  # never numpy's advice to load it unsafely
    with pytest.raises(CheckpointError, match=r"is a folder; pass the checkpoint in it, e\.g\. .*model\.npz"):
        checkpoint.load_model(tmp_path, expect=VAE)
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        checkpoint.load_model(tmp_path / "missing.npz", expect=VAE)


def test_loading_never_unpickles(tmp_path):
    """An object array (which only pickle can read) makes the file unreadable, not code."""
    m, _ = _trained()
    checkpoint.save(tmp_path / "m.npz", m)
    with np.load(tmp_path / "m.npz") as f:
        arrays = {k: f[k] for k in f.files}
    arrays["param/enc.fc1.W"] = np.array([{"evil": 1}], dtype=object)
    np.savez(tmp_path / "pickled.npz", **arrays)
    with pytest.raises(CheckpointError, match="damaged or truncated"):
        checkpoint.load_model(tmp_path / "pickled.npz", expect=VAE)


def test_mismatched_shapes_are_refused(tmp_path):
    m, _ = _trained()
    checkpoint.save(tmp_path / "m.npz", m)
    ck = checkpoint.read(tmp_path / "m.npz")
    other = VAE(6, hidden=(7,), z_dim=2, likelihood="gaussian")
    with pytest.raises(CheckpointError, match="does not match this model"):
        checkpoint.restore_params(other, ck["params"])


def test_a_diverged_model_is_refused_and_a_failed_restore_changes_nothing(tmp_path):
    m, _ = _trained()
    m.params["dec.out.b"][1] = float("nan")  # a model whose training diverged, saved by hand
    checkpoint.save(tmp_path / "nan.npz", m)
    with pytest.raises(CheckpointError, match=r"nan\.npz holds NaN or infinite values in 'dec.out.b'"):
        checkpoint.load_model(tmp_path / "nan.npz", expect=VAE)
    # the checks come before the first copy: a refused restore leaves every parameter as it was
    other, _ = _trained()
    before = {k: backend.to_numpy(v).copy() for k, v in other.params.items()}
    with pytest.raises(CheckpointError, match="NaN"):
        checkpoint.restore_params(other, checkpoint.read(tmp_path / "nan.npz")["params"])
    for k, v in other.params.items():
        np.testing.assert_array_equal(backend.to_numpy(v), before[k])


def test_meta_is_plain_json(tmp_path):
    m, opt = _trained()
    checkpoint.save(tmp_path / "m.npz", m, optimizer=opt, extra={"epoch": 4})
    with zipfile.ZipFile(tmp_path / "m.npz") as z:
        assert "meta.npy" in z.namelist() and "format.npy" in z.namelist()
    meta = checkpoint.read(tmp_path / "m.npz")["meta"]
    assert json.loads(json.dumps(meta)) == meta
    assert meta["extra"] == {"epoch": 4} and meta["model_class"] == "VAE"


def test_unwritable_folder_gives_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CheckpointError, match="cannot write a checkpoint"):
        checkpoint.save(blocker / "sub" / "m.npz", _trained()[0])


@pytest.mark.skipif(os.name != "posix", reason="POSIX mode bits")
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_checkpoint_gets_the_mode_of_any_new_file(tmp_path, umask, mode):
    """Not mkstemp's 0600: another user (a student reading an instructor's run) can load it."""
    path = tmp_path / "m.npz"
    old = os.umask(umask)
    try:
        checkpoint.save(path, _trained()[0])
        assert os.umask(umask) == umask  # saving put the umask back as it found it
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == mode


def _edited(tmp_path, edit_meta=None, edit_arrays=None):
    """A checkpoint written by save, then edited by hand (meta and arrays)."""
    m, _ = _trained()
    checkpoint.save(tmp_path / "m.npz", m)
    with np.load(tmp_path / "m.npz") as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(str(arrays["meta"]))
    if edit_meta is not None:
        meta = edit_meta(meta)
    if edit_arrays is not None:
        edit_arrays(arrays)
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "edited.npz", **arrays)
    return tmp_path / "edited.npz"


def _string_param(arrays):
    arrays["param/enc.fc1.W"] = np.full(arrays["param/enc.fc1.W"].shape, "x")


@pytest.mark.parametrize("edit_meta, edit_arrays, message", [
    (lambda m: {**m, "config": {**m["config"], "bogus": 1}}, None, "model config that VAE does not accept"),
    (lambda m: {**m, "config": {**m["config"], "likelihood": "poisson"}}, None, "does not accept: unknown likelihood"),
    (lambda m: {k: v for k, v in m.items() if k != "config"}, None, "model config that VAE does not accept"),
    (lambda m: {k: v for k, v in m.items() if k != "rng_states"}, None, "holds no RNG state"),
    (lambda m: {**m, "rng_states": {"model": "{}"}}, None, "RNG state cannot be restored"),
    (lambda m: [1, 2], None, "meta record is a JSON list, not an object"),
    (lambda m: "hello", None, "meta record is a JSON str, not an object"),
    (lambda m: {**m, "model_class": ["VAE"]}, None, "holds a ['VAE'], not VAE"),
    (None, _string_param, "parameter 'enc.fc1.W' holds <U1 data, not numbers"),
])
def test_edited_checkpoints_are_refused_with_a_message(tmp_path, edit_meta, edit_arrays, message):
    path = _edited(tmp_path, edit_meta, edit_arrays)
    with pytest.raises(CheckpointError, match=re.escape(message)) as info:
        checkpoint.load_model(path, expect=VAE)
    assert str(path) in str(info.value)


def test_the_deprecated_save_and_load_methods_still_work_and_say_what_replaces_them(tmp_path):
    m, opt = _trained()
    with pytest.warns(DeprecationWarning, match="checkpoint.save"):
        m.save(tmp_path / "m.npz", optimizer=opt)
    with pytest.warns(DeprecationWarning, match="checkpoint.load_model"):
        back = VAE.load(tmp_path / "m.npz")
    assert back.config == m.config
