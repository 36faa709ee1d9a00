"""The training loop: reproducible, resumable bit for bit, and loud about divergence."""

import math

import numpy as np
import pytest

from scratchvae import backend, checkpoint
from scratchvae.checkpoint import CheckpointError
from scratchvae.models.autoencoder import Autoencoder
from scratchvae.models.vae import VAE
from scratchvae.optim import SGD, Adam
from scratchvae.training import Trainer, TrainingDiverged


def _data(n=96, d=12, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.uniform(size=(3, d)) < 0.5
    labels = rng.integers(0, 3, n)
    flips = rng.uniform(size=(n, d)) < 0.1
    return (centers[labels] ^ flips).astype(np.float32)


def _trainer(seed=0, optimizer=None, **kw):
    model = VAE(12, hidden=(16,), z_dim=2, seed=seed)
    kw.setdefault("progress", False)
    return Trainer(model, optimizer or Adam(1e-2), batch_size=32, seed=seed, **kw)


def _params(model):
    return {k: backend.to_numpy(v).copy() for k, v in model.params.items()}


def test_one_seed_gives_the_same_run():
    x = _data()
    a, b = _trainer(), _trainer()
    ha, hb = a.fit(x, x[:32], epochs=3), b.fit(x, x[:32], epochs=3)
    assert ha["train_loss"] == hb["train_loss"] and ha["val_loss"] == hb["val_loss"]
    pa, pb = _params(a.model), _params(b.model)
    assert all(np.array_equal(pa[k], pb[k]) for k in pa)
    c = _trainer(seed=1)
    assert c.fit(x, epochs=1)["train_loss"] != ha["train_loss"][:1]


@pytest.mark.parametrize("warmup,binarize", [(0, None), (5, "dynamic")])
def test_resume_continues_bit_for_bit(tmp_path, warmup, binarize):
    """k epochs, save, load, m more epochs == k + m epochs in one go (NumPy)."""
    x = _data()
    straight = _trainer(kl_warmup=warmup, binarize=binarize, n_samples=2)
    straight.fit(x, x[:16], epochs=5)

    first = _trainer(kl_warmup=warmup, binarize=binarize, n_samples=2)
    first.fit(x, x[:16], epochs=2, checkpoint_path=tmp_path / "ck.npz")
    resumed = Trainer.resume(tmp_path / "ck.npz", Adam(1e-2), progress=False)
    assert resumed.epoch == 2 and resumed.step == first.step
    resumed.fit(x, x[:16], epochs=3)

    p1, p2 = _params(straight.model), _params(resumed.model)
    assert all(np.array_equal(p1[k], p2[k]) for k in p1)
    assert straight.history["train_loss"] == resumed.history["train_loss"]
    assert straight.history["val_loss"] == resumed.history["val_loss"]


def test_resume_with_momentum_sgd_continues_bit_for_bit(tmp_path):
    """A fresh SGD() gets the saved momentum and velocity (its slots follow momentum)."""
    x = _data()
    straight = _trainer(optimizer=SGD(lr=0.01, momentum=0.9))
    straight.fit(x, x[:16], epochs=4)

    first = _trainer(optimizer=SGD(lr=0.01, momentum=0.9))
    first.fit(x, x[:16], epochs=2, checkpoint_path=tmp_path / "ck.npz")
    resumed = Trainer.resume(tmp_path / "ck.npz", SGD(), progress=False)
    assert resumed.optimizer.momentum == 0.9 and len(resumed.optimizer.state["velocity"]) > 0
    resumed.fit(x, x[:16], epochs=2)

    p1, p2 = _params(straight.model), _params(resumed.model)
    assert all(np.array_equal(p1[k], p2[k]) for k in p1)
    assert straight.history["train_loss"] == resumed.history["train_loss"]


def test_train_loss_is_a_per_example_mean():
    """33 rows in batches of 32: the short last batch (1 row) weighs 1/33, not 1/2. With
    the parameters frozen (lr = 1e-300 moves nothing), the epoch's train_loss is the
    mean over examples that evaluate computes (to rounding, about 1e-15 in float64)."""
    with backend.using("numpy", dtype="float64"):
        x = np.random.default_rng(0).normal(size=(33, 6))
        x[-5:] *= 10  # a few rows with a large error, so the weighting shows
        t = Trainer(Autoencoder(6, hidden=(4,), z_dim=2), SGD(lr=1e-300), batch_size=32, progress=False)
        h = t.fit(x, epochs=1)
        want = t.evaluate(x)
        for k in ("loss", *[k[len("train_"):] for k in h if k.startswith("train_")]):
            assert math.isclose(h[f"train_{k}"][0], want[k], rel_tol=1e-6), (k, h[f"train_{k}"][0], want[k])


def test_options_the_model_does_not_take_are_refused():
    """The autoencoder's loss_and_grads takes no n_samples and no beta: refused up front,
    not with a TypeError at the first step."""
    ae = Autoencoder(12, hidden=(4,), z_dim=2)
    with pytest.raises(ValueError, match=r"n_samples applies to models whose loss_and_grads takes n_samples"):
        Trainer(ae, Adam(), n_samples=2)
    with pytest.raises(ValueError, match=r"kl_warmup applies to models whose loss_and_grads takes beta"):
        Trainer(ae, Adam(), kl_warmup=10)
    Trainer(ae, Adam(), n_samples=None, kl_warmup=0)  # the defaults are fine


@pytest.mark.parametrize("kw, message", [
    (dict(n_samples=0), r"n_samples must be a positive integer, got 0"),
    (dict(n_samples=2.5), r"n_samples must be a positive integer, got 2.5"),
    (dict(kl_warmup=-1), r"kl_warmup must be an integer >= 0.*got -1"),
    (dict(kl_warmup=1.5), r"kl_warmup must be an integer >= 0.*got 1.5"),
])
def test_bad_n_samples_and_kl_warmup_are_refused(kw, message):
    with pytest.raises(ValueError, match=message):
        _trainer(**kw)


def test_batch_sizes_must_be_positive_integers():
    for bad in (0, None, 2.5):
        with pytest.raises(ValueError, match="batch_size must be a positive integer"):
            Trainer(VAE(12, hidden=(16,), z_dim=2), Adam(), batch_size=bad)
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        _trainer().evaluate(_data(), batch_size=0)


def test_history_records_parts_and_validation():
    x = _data()
    t = _trainer(kl_warmup=6)
    h = t.fit(x, x[:32], epochs=3)
    for key in ("train_loss", "train_rec", "train_kl", "train_neg_elbo", "val_loss", "val_rec", "val_kl", "time"):
        assert len(h[key]) == 3 and all(math.isfinite(v) for v in h[key]), key
    assert h["beta"] == [0.5, 1.0, 1.0]  # 3 steps per epoch, warm-up over 6 steps
    # with beta < 1 the training loss is rec + beta * kl, not the negative ELBO
    assert h["train_loss"][0] < h["train_neg_elbo"][0]


def test_kl_warmup_reaches_the_model():
    seen = []
    model = VAE(12, hidden=(8,), z_dim=2, seed=0)
    real = model.loss_and_grads
    model.loss_and_grads = lambda x, **kw: seen.append(kw["beta"]) or real(x, **kw)
    Trainer(model, Adam(1e-3), batch_size=32, kl_warmup=4, progress=False).fit(_data(), epochs=2)
    assert seen == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    x = _data()
    t = _trainer(log_every=2)
    path = tmp_path / "ck.npz"
    t.fit(x, epochs=1, checkpoint_path=path)
    real = t.model.loss_and_grads

    def poisoned(xb, **kw):  # step 8 (3 steps per epoch: in epoch 3) returns NaN
        loss, stats = real(xb, **kw)
        return (loss * float("nan") if t.step == 7 else loss), stats

    t.model.loss_and_grads = poisoned
    with pytest.raises(TrainingDiverged, match=r"at step 8 \(epoch 3\).*Lower the learning rate"):
        t.fit(x, epochs=3, checkpoint_path=path)
    assert t.epoch == 2  # epoch 2 finished and was saved before the NaN
    assert Trainer.resume(path, Adam(1e-2), progress=False).epoch == 2


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_divergence_from_a_huge_learning_rate_is_named():
    model = VAE(12, hidden=(16,), z_dim=2, likelihood="gaussian", seed=0)
    t = Trainer(model, SGD(1e6), batch_size=32, progress=False, log_every=1)
    with pytest.raises(TrainingDiverged, match="at step"):
        t.fit(_data(), epochs=5)


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_divergence_in_the_first_epoch_says_no_checkpoint_was_written_by_it(tmp_path):
    model = VAE(12, hidden=(16,), z_dim=2, likelihood="gaussian", seed=0)
    t = Trainer(model, SGD(1e6), batch_size=32, progress=False, log_every=1)
    with pytest.raises(TrainingDiverged, match="this fit wrote no checkpoint"):
        t.fit(_data(), epochs=5, checkpoint_path=tmp_path / "model.npz")
    assert not (tmp_path / "model.npz").exists()


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
def test_losses_too_large_to_sum_are_named():
    """Every loss finite (about 1e37 in float32), their sum inf: the first step of the
    window is named, as TrainingDiverged (not a bare StopIteration)."""
    with backend.using("numpy", dtype="float32"):
        x = np.full((20, 6), 4e18, dtype=np.float32)
        t = Trainer(Autoencoder(6, hidden=(4,), z_dim=2), Adam(), batch_size=1, progress=False, log_every=10)
        with pytest.raises(TrainingDiverged, match=r"the loss grew too large to sum .* from step 1 \(epoch 1\)"):
            t.fit(x, epochs=1)


def test_progress_bar_can_be_turned_off(capsys):
    _trainer(progress=False).fit(_data(), epochs=1)
    assert capsys.readouterr().err == ""
    _trainer(progress=True).fit(_data(), epochs=1)
    assert "epoch 1" in capsys.readouterr().err


def test_callback_sees_every_epoch():
    records = []
    _trainer(callback=lambda trainer, rec: records.append(rec["epoch"])).fit(_data(), epochs=3)
    assert records == [1, 2, 3]


def test_bad_training_data_is_refused_before_any_step():
    t = _trainer()
    x = _data()
    x[3, 4] = np.nan
    with pytest.raises(ValueError, match="x_train contains 1 NaN"):
        t.fit(x, epochs=1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        t.fit(_data() * 2, epochs=1)
    with pytest.raises(ValueError, match="x_train has 10 columns"):
        t.fit(_data(d=10), epochs=1)
    with pytest.raises(ValueError, match="x_val contains 1 NaN"):  # each array by its own name
        t.fit(_data(), x, epochs=1)
    with pytest.raises(ValueError, match=r"x_val must lie in \[0, 1\]"):
        t.fit(_data(), _data() * 2, epochs=1)
    assert t.step == 0


def test_resume_refuses_a_checkpoint_without_trainer_state(tmp_path):
    model = VAE(12, hidden=(8,), z_dim=2)
    checkpoint.save(tmp_path / "m.npz", model)
    with pytest.raises(CheckpointError, match=r"m\.npz was not written by a Trainer.*load_model"):
        Trainer.resume(tmp_path / "m.npz", Adam())
    # a Trainer's checkpoint, resumed with another optimizer: named, and what to pass instead
    t = _trainer()
    t.fit(_data(), epochs=1)
    t.save(tmp_path / "t.npz")
    with pytest.raises(CheckpointError, match=r"t\.npz is Adam, not SGD; pass a fresh Adam"):
        Trainer.resume(tmp_path / "t.npz", SGD(0.1))


def test_trainer_runs_on_every_backend(bk):
    x = _data(n=40)
    t = Trainer(VAE(12, hidden=(8,), z_dim=2), Adam(1e-2), batch_size=16, progress=False)
    h = t.fit(x, x[:8], epochs=2)
    assert all(math.isfinite(v) for v in h["train_loss"] + h["val_loss"])


@pytest.mark.parametrize("use_kernels", [True, False], ids=["twins", "textbook"])
def test_a_float32_run_stays_float32(use_kernels):
    """Parameters, gradients, Adam's moments and the losses keep the backend's dtype
    (a Python float or a float64 scalar must not promote a float32 run)."""
    with backend.using("numpy", dtype="float32"):
        model = VAE(12, hidden=(8,), z_dim=2, seed=0)
        t = Trainer(model, Adam(1e-2), batch_size=8, progress=False, kernels=use_kernels)
        x = backend.asarray(np.random.default_rng(0).uniform(size=(32, 12)))
        loss, stats = t.train_step(x[:8, ...])
        t.fit(x, epochs=2)
        arrays = {**model.params, **{f"grad {k}": g for k, g in model.grads.items()},
                  **{f"{s} {k}": a for s in ("m", "v") for k, a in t.optimizer.state[s].items()},
                  "loss": loss, **stats}
        assert {k: str(a.dtype) for k, a in arrays.items() if a.dtype != np.float32} == {}


def _labels(n=96, seed=0):
    return np.random.default_rng(seed + 1).integers(0, 3, n)


def test_objective_reaches_the_model_and_the_history():
    """objective goes to every step and to the validation loss (at the trainer's
    n_samples, beta = 1); the IWAE's bound is recorded beside its ELBO."""
    seen = []
    model = VAE(12, hidden=(8,), z_dim=2, seed=0)
    real = model.loss_and_grads
    model.loss_and_grads = lambda x, **kw: seen.append((kw["objective"], kw["n_samples"])) or real(x, **kw)
    t = Trainer(model, Adam(1e-3), batch_size=32, n_samples=3, objective="iwae", progress=False)
    h = t.fit(_data(), _data()[:20], epochs=2)
    assert seen == [("iwae", 3)] * 6
    for key in ("train_neg_iwae", "val_neg_iwae", "train_neg_elbo", "val_neg_elbo"):
        assert len(h[key]) == 2, key
    assert h["train_loss"] == h["train_neg_iwae"] and h["val_loss"] == h["val_neg_iwae"]
    assert all(a <= b for a, b in zip(h["val_neg_iwae"], h["val_neg_elbo"]))  # a tighter bound
    assert t.evaluate(_data()[:20], objective="elbo_mc").keys() == {"loss", "rec", "kl", "neg_elbo"}


def test_objective_is_refused_where_the_model_takes_none_and_checked_by_the_model():
    with pytest.raises(ValueError, match=r"objective applies to models whose loss_and_grads takes objective"):
        Trainer(Autoencoder(12, hidden=(4,), z_dim=2), Adam(), objective="iwae")
    with pytest.raises(ValueError, match="objective must be a name"):
        _trainer(objective=3)
    t = _trainer(objective="iwea")
    with pytest.raises(ValueError, match=r"unknown objective 'iwea'"):
        t.fit(_data(), epochs=1)
    assert t.step == 0


@pytest.mark.parametrize("objective", ["elbo", "iwae"])
def test_resume_with_labels_continues_bit_for_bit(tmp_path, objective):
    """A conditional VAE: the labels travel with their rows through shuffling; its
    n_classes and the objective are in the checkpoint."""
    x, y = _data(), _labels()

    def trainer():
        model = VAE(12, hidden=(16,), z_dim=2, seed=0, n_classes=3)
        return Trainer(model, Adam(1e-2), batch_size=32, n_samples=2, objective=objective, kl_warmup=4,
                       progress=False)

    straight = trainer()
    straight.fit(x, x[:16], epochs=4, y_train=y, y_val=y[:16])
    first = trainer()
    first.fit(x, x[:16], epochs=2, checkpoint_path=tmp_path / "ck.npz", y_train=y, y_val=y[:16])
    resumed = Trainer.resume(tmp_path / "ck.npz", Adam(1e-2), progress=False)
    assert resumed.model.n_classes == 3 and resumed.objective == objective
    resumed.fit(x, x[:16], epochs=2, y_train=y, y_val=y[:16])
    p1, p2 = _params(straight.model), _params(resumed.model)
    assert all(np.array_equal(p1[k], p2[k]) for k in p1)
    assert straight.history["train_loss"] == resumed.history["train_loss"]
    assert straight.history["val_loss"] == resumed.history["val_loss"]


def test_each_batch_gets_the_labels_of_its_rows():
    seen = []
    model = VAE(12, hidden=(8,), z_dim=2, seed=0, n_classes=96)
    real = model.loss_and_grads
    model.loss_and_grads = lambda x, **kw: seen.append((backend.to_numpy(x), backend.to_numpy(kw["y"]))) or real(
        x, **kw)
    x = np.random.default_rng(0).uniform(size=(96, 12)).astype(np.float32)
    Trainer(model, Adam(1e-3), batch_size=32, progress=False).fit(x, epochs=1, y_train=np.arange(96))
    assert len(seen) == 3
    for xb, yb in seen:
        np.testing.assert_array_equal(xb, x[yb])  # row i of x has label i


def test_labels_are_checked_before_any_step():
    t = Trainer(VAE(12, hidden=(8,), z_dim=2, seed=0, n_classes=3), Adam(), batch_size=32, progress=False)
    with pytest.raises(ValueError, match=r"x_train comes without labels.*y_train=\.\.\."):
        t.fit(_data(), epochs=1)
    with pytest.raises(ValueError, match=r"y_train holds labels from 0 to 3"):
        t.fit(_data(), epochs=1, y_train=np.where(_labels() == 2, 3, _labels()))
    with pytest.raises(ValueError, match=r"x_val comes without labels"):
        t.fit(_data(), _data()[:8], epochs=1, y_train=_labels())
    with pytest.raises(ValueError, match=r"y_val was given without x_val"):
        t.fit(_data(), epochs=1, y_train=_labels(), y_val=_labels()[:8])
    assert t.step == 0
    with pytest.raises(ValueError, match=r"y_train applies to models whose loss_and_grads takes y"):
        Trainer(Autoencoder(12, hidden=(4,), z_dim=2), Adam(), progress=False).fit(_data(), y_train=_labels())
    with pytest.raises(ValueError, match=r"labels y_train were given, but this VAE is unconditional"):
        _trainer().fit(_data(), y_train=_labels())


def test_beta_weights_the_kl_and_warms_up_to_it():
    """Trainer(beta=b): the KL weight b (the beta-VAE), reached over kl_warmup steps."""
    seen = []
    model = VAE(12, hidden=(8,), z_dim=2, seed=0)
    real = model.loss_and_grads
    model.loss_and_grads = lambda x, **kw: seen.append(kw["beta"]) or real(x, **kw)
    t = Trainer(model, Adam(1e-3), batch_size=32, kl_warmup=4, beta=2.0, progress=False)
    h = t.fit(_data(), _data()[:32], epochs=2)
    assert seen == [0.0, 0.5, 1.0, 1.5, 2.0, 2.0] and h["beta"] == [1.5, 2.0]
    assert h["val_loss"] == h["val_neg_elbo"]  # validation at beta = 1
    seen.clear()
    Trainer(model, Adam(1e-3), batch_size=32, beta=0.5, progress=False).fit(_data(), epochs=1)
    assert seen == [0.5] * 3
    with pytest.raises(ValueError, match=r"beta applies to models whose loss_and_grads takes beta"):
        Trainer(Autoencoder(12, hidden=(4,), z_dim=2), Adam(), beta=2.0)
    for bad in (-1.0, float("nan"), "2", True):
        with pytest.raises(ValueError, match="beta must be a finite number >= 0"):
            _trainer(beta=bad)


def test_the_thread_policy_runs_inside_fit_and_is_recorded(tmp_path):
    from threadpoolctl import threadpool_info

    def blas():  # NumPy's BLAS, the one that computes the products (numba loads SciPy's too)
        return {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas" and "numpy" in p["filepath"]}

    before, seen = blas(), []
    with backend.using("numpy", dtype="float32"):
        model = VAE(12, hidden=(8,), z_dim=2, seed=0)
        t = Trainer(model, Adam(1e-2), batch_size=8, progress=False, threads=1,
                    callback=lambda tr, rec: seen.append(blas()))
        assert t.thread_policy.choice == 1 and "set by the user" in t.thread_policy.reason
        t.fit(np.random.default_rng(0).uniform(size=(32, 12)), epochs=2, checkpoint_path=tmp_path / "ck.npz")
        assert seen == [{1}, {1}] and blas() == before  # applied while training, put back after
        auto = Trainer(VAE(12, hidden=(8,), z_dim=2), Adam(1e-2), batch_size=8, progress=False, threads="auto")
        assert auto.thread_policy.choice == 1 and "too small" in auto.thread_policy.reason
        resumed = Trainer.resume(tmp_path / "ck.npz", Adam(1e-2), progress=False)
        assert resumed.thread_policy.setting == 1
        ck = checkpoint.read(tmp_path / "ck.npz")
        assert ck["meta"]["extra"]["threads"]["threads"] == 1
    with pytest.raises(ValueError, match="'auto' or a positive whole number"):
        Trainer(VAE(12, hidden=(8,), z_dim=2), Adam(1e-2), threads=0)


# -- issue 16, items 7 and 8: arguments checked before any step, messages that lead somewhere


@pytest.mark.parametrize("epochs", [0, -3, 2.7, "3", True, None])
def test_epochs_must_be_a_positive_integer(epochs):
    t = _trainer()
    with pytest.raises(ValueError, match=rf"^epochs must be a positive integer, got {epochs!r}"):
        t.fit(_data(), epochs=epochs)
    assert t.step == 0 and t.history == {}
    assert len(_trainer().fit(_data(), epochs=np.int64(2))["epoch"]) == 2  # NumPy's integers are integers


def test_a_bad_checkpoint_path_is_refused_before_any_step(tmp_path):
    t = _trainer()
    with pytest.raises(CheckpointError, match=rf"^checkpoint_path {tmp_path} is a folder; pass a file path such as "
                                              rf"{tmp_path / 'model.npz'}$"):
        t.fit(_data(), epochs=1, checkpoint_path=tmp_path)
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    with pytest.raises(CheckpointError, match=r"lies under .*notes\.txt, which is a file, not a folder"):
        t.fit(_data(), epochs=1, checkpoint_path=tmp_path / "notes.txt" / "run" / "model.npz")
    with pytest.raises(CheckpointError, match=r"checkpoint_path must be a file path such as 'run/model.npz'"):
        t.fit(_data(), epochs=1, checkpoint_path=3)
    assert t.step == 0 and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    t.fit(_data(), epochs=1, checkpoint_path=tmp_path / "new" / "model.npz")  # a missing folder is made
    assert (tmp_path / "new" / "model.npz").exists()


def test_data_enters_as_arrays_or_lists_and_complex_data_is_refused():
    x = _data()
    h_list = _trainer().fit(x.tolist(), x[:32].tolist(), epochs=1)
    h_array = _trainer().fit(x, x[:32], epochs=1)
    assert h_list["train_loss"] == pytest.approx(h_array["train_loss"]) and math.isfinite(h_list["val_loss"][0])
    h_uint8 = _trainer().fit(x.astype(np.uint8), epochs=1)  # 0/1 pixels as uint8: converted
    assert h_uint8["train_loss"] == pytest.approx(h_array["train_loss"])
    t = _trainer()
    with pytest.raises(ValueError, match=r"^x_train must hold real numbers \(float\), got complex128; "
                                         r"pass x_train\.real \(or abs\(x_train\)\)$"):
        t.fit(x.astype(np.complex128), epochs=1)
    with pytest.raises(ValueError, match=r"^x_val must hold real numbers"):
        t.fit(x, x.astype(np.complex64), epochs=1)
    assert t.step == 0


@pytest.mark.parametrize("likelihood", ["gaussian", "bernoulli"])
def test_huge_finite_data_are_not_called_nan(likelihood):
    t = Trainer(VAE(12, hidden=(8,), z_dim=2, likelihood=likelihood), Adam(), progress=False)
    message = (r"x_train holds values as large as 1e\+200, whose squares overflow float64" if likelihood == "gaussian"
               else r"x_train must lie in \[0, 1\] .* run from 1e\+200 to 1e\+200")
    with backend.using("numpy", dtype="float64"), pytest.raises(ValueError, match=message):
        t.fit(np.full((20, 12), 1e200), epochs=1)
    with backend.using("numpy", dtype="float32"), pytest.warns(RuntimeWarning, match="overflow encountered in cast"), \
            pytest.raises(ValueError, match=r"x_train holds values as large as 1e\+39, beyond the largest float32"):
        t.fit(np.full((20, 12), 1e39), epochs=1)
    assert t.step == 0


def test_the_advice_for_8bit_pixels_leads_to_a_run_that_trains():
    """Issue 16, item 8: 0-255 digits. The Bernoulli VAE refuses them saying x / 255; the
    Gaussian VAE (whose encoder log-variance would overflow: NaN at step 1 in float32)
    refuses them saying x / 255 or standardize. Each advice, followed, trains."""
    from scratchvae import datasets

    x255 = np.round(datasets.load("digits").x_train[:400] * 255).astype(np.uint8)

    def fit(likelihood, x):
        model = VAE(64, hidden=(64,), z_dim=2, likelihood=likelihood, seed=0)
        return Trainer(model, Adam(lr=1e-3), batch_size=128, progress=False).fit(x, epochs=3)["train_loss"]

    with backend.using("numpy", dtype="float32"):
        with pytest.raises(ValueError, match=r"run from 0 to 255; .*: pass x_train / 255"):
            fit("bernoulli", x255)
        with pytest.raises(ValueError, match=r"x_train has root-mean-square .* too far from unit scale for a Gaussian "
                                             r"VAE.*x_train / 255 for 8-bit images, else standardize"):
            fit("gaussian", x255)
        x = x255.astype(np.float64)
        for likelihood, fixed in (("bernoulli", x / 255), ("gaussian", x / 255),
                                  ("gaussian", (x - x.mean(0)) / (x.std(0) + 1e-8))):
            losses = fit(likelihood, fixed)
            assert all(math.isfinite(v) for v in losses) and losses[0] > losses[1] > losses[2], (likelihood, losses)


@pytest.mark.parametrize("every, saved", [(1, list(range(1, 11))), (3, [1, 3, 6, 9, 10]), ("auto", [1, 10])])
def test_checkpoint_cadence(tmp_path, monkeypatch, every, saved):
    """checkpoint_every=k saves every k-th epoch; "auto" spaces saves so that saving takes at
    most about 1/SAVE_SPACING of the run (here a save is made to cost 40 ms, far more than an
    epoch, so only the first and the last epoch are saved); both always save the first and
    the last epoch of a fit."""
    import time

    epochs = []
    real_save = Trainer.save

    def slow_save(self, path):
        real_save(self, path)
        time.sleep(0.04)
        epochs.append(self.epoch)

    monkeypatch.setattr(Trainer, "save", slow_save)
    t = _trainer()
    t.fit(_data(n=32), epochs=10, checkpoint_path=tmp_path / "ck.npz", checkpoint_every=every)
    assert epochs == saved
    assert Trainer.resume(tmp_path / "ck.npz", Adam(1e-2), progress=False).epoch == 10


@pytest.mark.parametrize("every", [0, -1, 2.5, "sometimes", True])
def test_checkpoint_every_is_a_positive_integer_or_auto(tmp_path, every):
    with pytest.raises(ValueError, match="checkpoint_every"):
        _trainer().fit(_data(), epochs=1, checkpoint_path=tmp_path / "ck.npz", checkpoint_every=every)
    assert not (tmp_path / "ck.npz").exists()


def test_a_long_history_is_cheap_to_save_and_comes_back_exactly(tmp_path):
    """The history is stored as arrays, not JSON: 100,000 epochs of 10 series is 8 MB of
    numbers, and it comes back as the same lists (ints as ints)."""
    t = _trainer()
    t.fit(_data(), epochs=1)
    n = 100_000
    rng = np.random.default_rng(0)
    t.history = {k: (list(range(1, n + 1)) if k == "epoch" else rng.normal(size=n).tolist()) for k in t.history}
    t.epoch = n
    t.save(tmp_path / "ck.npz")
    size = (tmp_path / "ck.npz").stat().st_size
    assert size < 9 * 8 * n * len(t.history) / 8  # about 8 bytes a number (JSON text took 66 MB)
    back = Trainer.resume(tmp_path / "ck.npz", Adam(1e-2), progress=False)
    assert back.history == t.history and type(back.history["epoch"][0]) is int


def test_resume_refuses_an_optimizer_setting_it_would_drop(tmp_path):
    t = _trainer()  # Adam(1e-2)
    t.fit(_data(), epochs=1, checkpoint_path=tmp_path / "ck.npz")
    with pytest.raises(CheckpointError, match=r"lr=0\.01, but the Adam passed has lr=0\.5"):
        Trainer.resume(tmp_path / "ck.npz", Adam(lr=0.5))
    resumed = Trainer.resume(tmp_path / "ck.npz", Adam(), progress=False)  # a fresh one takes the run's
    resumed.optimizer.lr = 0.5  # ... and a change made on purpose is honoured
    resumed.fit(_data(), epochs=1)
    assert resumed.optimizer.lr == 0.5


def test_a_checkpoint_with_its_history_in_json_still_resumes(tmp_path):
    """Checkpoints written before 0.2 kept the history in the JSON meta record."""
    t = _trainer()
    t.fit(_data(), epochs=2, checkpoint_path=tmp_path / "ck.npz")
    ck = checkpoint.read(tmp_path / "ck.npz")
    extra = {**ck["meta"]["extra"], "history": t.history}
    checkpoint.save(tmp_path / "old.npz", t.model, optimizer=t.optimizer, rngs={"trainer": t.rng}, extra=extra)
    assert checkpoint.read(tmp_path / "old.npz")["series"] == {}
    back = Trainer.resume(tmp_path / "old.npz", Adam(1e-2), progress=False)
    assert back.history == t.history and back.epoch == 2
