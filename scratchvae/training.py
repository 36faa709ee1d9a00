"""The minibatch training loop, for any model on the contract of ``scratchvae.model.Model``.

    trainer = Trainer(model, Adam(lr=1e-3), batch_size=128, seed=0)
    history = trainer.fit(x_train, x_val, epochs=20, checkpoint_path="run/model.npz")
    trainer.fit(x_train, x_val, y_train=labels, y_val=val_labels)   # a conditional VAE

What it adds to the bare loop ``loss_and_grads`` + ``opt.step``:
- shuffling from a seeded generator, so one seed gives the same run every time;
- a KL weight beta (the beta-VAE, L7 (1)), and optional KL warm-up: beta rises
  linearly from 0 to its value over ``kl_warmup`` steps, L7 (2);
- the model's objective, for models that take one (the VAE: "elbo", "elbo_mc", "iwae");
- labels, for models whose loss_and_grads takes y (a conditional VAE): each batch's
  labels travel with its rows;
- optional dynamic binarization (a fresh Bernoulli draw of every batch, as in IWAE);
- a history per epoch of train and validation loss with their parts ("rec", "kl"),
  each a mean per example (the validation loss with the trainer's objective and
  n_samples, at beta = 1);
- a tqdm progress bar with the running loss (``progress=False`` turns it off;
  TQDM_DISABLE does not reach notebook widgets);
- a callback ``callback(trainer, record)`` after every epoch;
- checkpoints after every epoch while saving is cheap (``checkpoint_every``: never more
  than about a tenth of the run; the history is stored as arrays), and
  ``Trainer.resume(path, optimizer)`` (pass a fresh
  optimizer of the saved class) that continues exactly: k epochs, save, resume, m more
  == k + m epochs, bit for bit.
- a NaN or inf loss (or losses too large to sum) stops training with a message naming
  the step; the last checkpoint (written only after a finite epoch) stays intact;
- speed: the compiled twins of ``scratchvae.kernels`` (the same numbers, in fewer passes
  over memory), switched on here and nowhere else; ``kernels=False`` runs the textbook.

No float() of a device scalar per step: losses are summed on the device and read back
every ``log_every`` steps (for the progress bar and the NaN check) and at epoch end.
"""

from __future__ import annotations

import math
import numbers
import time

from array_api_compat import array_namespace

from . import backend, checkpoint
from .threads import ThreadPolicy
from . import kernels as kernels_module
from .arrays import batch_slices
from .checks import as_data, check_beta, check_positive_int


SAVE_SPACING = 10  # checkpoint_every="auto": at most about 1/10 of a run goes to saving


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or infinite."""


class Trainer:
    """Inputs:
    - model: a ``scratchvae.model.Model`` (the VAE, an autoencoder, or your own).
    - optimizer: a scratchvae.optim optimizer (None for a Trainer that only evaluates).
    - batch_size: examples per step.
    - n_samples: L, for models whose loss_and_grads takes n_samples (the VAE); None
      leaves the model's default. Other models refuse it.
    - kl_warmup: steps over which beta rises from 0 to ``beta`` (0: no warm-up); > 0
      only for models whose loss_and_grads takes beta (the VAE).
    - beta: the weight of the KL once warmed up (1: the ELBO; the beta-VAE's beta);
      != 1 only for models whose loss_and_grads takes beta.
    - objective: passed to loss_and_grads for models that take one (the VAE: "elbo",
      "elbo_mc", "iwae", where n_samples is the IWAE's k); None leaves the model's default.
    - binarize: "dynamic" to draw x ~ Bernoulli(x) afresh for every batch.
    - seed: seeds shuffling (and binarization).
    - progress: show a tqdm progress bar.
    - log_every: steps between reading the running loss back from the device.
    - callback: called as callback(trainer, record) after every epoch.
    - kernels: run the compiled twins of the hottest formulas (``scratchvae.kernels``:
      the same numbers, faster) where this backend has them; False runs the textbook
      alone; None (the default) follows ``kernels.enabled()`` (SCRATCHVAE_KERNELS).
      The model's parts are swapped for their twins in place; ``trainer.swapped``
      names them.
    - threads: BLAS threads while training: "auto" (the policy of ``scratchvae.threads``:
      one thread for small products, else the faster of 1 and N measured on the first
      steps and again when the step time drifts), a number, or None for
      SCRATCHVAE_THREADS (else "auto"). ``trainer.thread_policy.describe()`` says what runs.
    """

    def __init__(self, model, optimizer, batch_size: int = 128, n_samples: int | None = None,
                 kl_warmup: int = 0, binarize: str | None = None, seed: int = 0,
                 progress: bool = True, log_every: int = 10, callback=None, kernels: bool | None = None,
                 objective: str | None = None, beta: float = 1.0, threads=None):
        if binarize not in (None, "dynamic"):
            raise ValueError(f"binarize must be None or 'dynamic', got {binarize!r}")
        batch_size = check_positive_int(batch_size, "batch_size")
        if n_samples is not None:
            n_samples = check_positive_int(n_samples, "n_samples")
        if isinstance(kl_warmup, bool) or not isinstance(kl_warmup, numbers.Integral) or kl_warmup < 0:
            raise ValueError(f"kl_warmup must be an integer >= 0 (steps; 0 turns it off), got {kl_warmup!r}")
        beta = check_beta(beta)  # refused here, not with a TypeError at the first step
        if objective is not None and not isinstance(objective, str):
            raise ValueError(f"objective must be a name such as 'elbo' or 'iwae' (or None), got {objective!r}")
        for option, keyword, used in (("n_samples", "n_samples", n_samples is not None),
                                      ("kl_warmup", "beta", kl_warmup > 0),
                                      ("beta", "beta", beta != 1.0),
                                      ("objective", "objective", objective is not None)):
            if used and keyword not in getattr(model, "options", ()):
                raise ValueError(
                    f"{option} applies to models whose loss_and_grads takes {keyword} (the VAE); "
                    f"{type(model).__name__}.options does not list it. Leave {option} at its default")
        self.model, self.optimizer = model, optimizer
        self.batch_size, self.n_samples = int(batch_size), n_samples
        self.kl_warmup, self.binarize, self.objective = int(kl_warmup), binarize, objective
        self.beta_max = float(beta)
        self.seed, self.progress, self.log_every, self.callback = seed, progress, max(1, int(log_every)), callback
        self.rng = backend.RNG(seed)
        use_kernels = kernels_module.enabled() if kernels is None else bool(kernels)
        self.swapped = kernels_module.install(model) if use_kernels else []
        # the optimizer's update as this trainer runs it: its compiled twin, or optimizer.step
        # (None without an optimizer: a Trainer that only evaluates)
        self.update = (None if optimizer is None else
                       kernels_module.optimizer_step(optimizer) if use_kernels else optimizer.step)
        self.thread_policy = ThreadPolicy(threads, largest_product_flops=_largest_product(model, self.batch_size),
                                          device="gpu" if backend.current().name == "cupy" else "cpu")
        self.thread_policy.start()
        self._threads_shown = 0  # choices already printed
        self.step = 0  # optimizer steps taken
        self.epoch = 0  # epochs completed
        self.history: dict = {}
        self.extra: dict = {}  # JSON-able notes saved with every checkpoint (e.g. the data set)

    # ---- one step ----------------------------------------------------------------

    def beta(self) -> float:
        """KL weight at the current step: beta min(1, step / kl_warmup), L7 (2)."""
        return self.beta_max if self.kl_warmup <= 0 else self.beta_max * min(1.0, self.step / self.kl_warmup)

    def model_options(self) -> dict:
        """The keywords this trainer passes to ``model.loss_and_grads`` at this step."""
        kw = {"check": False}
        if self.n_samples is not None:
            kw["n_samples"] = self.n_samples
        if self.kl_warmup > 0 or self.beta_max != 1.0:
            kw["beta"] = self.beta()
        if self.objective is not None:
            kw["objective"] = self.objective
        return kw

    def _eval_options(self) -> dict:
        """What the validation loss is computed with: the training options at beta = 1."""
        return {k: v for k, v in self.model_options().items() if k in ("n_samples", "objective")}

    def _batch(self, X, idx):
        xb = array_namespace(X).take(X, idx, axis=0)
        if self.binarize == "dynamic":
            xp = array_namespace(xb)
            xb = xp.astype(self.rng.uniform(xb.shape) < xb, xb.dtype)  # x ~ Bernoulli(x)
        return xb

    def train_step(self, xb, yb=None):
        """One step on the batch ``xb`` (with its labels ``yb`` for a conditional model):
        the model's loss and gradients, then the optimizer's update (its compiled twin
        where the kernels run). Returns (loss, stats) as ``model.loss_and_grads``."""
        kw = self.model_options() if yb is None else {**self.model_options(), "y": yb}
        loss, stats = self.model.loss_and_grads(xb, **kw)
        self.update(self.model.params, self.model.grads)
        self.step += 1
        return loss, stats

    # ---- epochs ------------------------------------------------------------------

    def fit(self, x_train, x_val=None, epochs: int = 10, checkpoint_path=None, y_train=None,
            y_val=None, checkpoint_every="auto") -> dict:
        """Train for ``epochs`` more epochs. Returns the history (a dict of lists).

        ``x_train``, ``x_val``: (N, D) data, a backend array, a NumPy array or a list of
        rows. ``epochs``: a positive integer. ``checkpoint_path``: a file (e.g.
        "run/model.npz"; its folder is made if missing), or None. ``checkpoint_every``:
        save after every k-th epoch (k an integer), or "auto": after an epoch once the time
        since the last save is at least SAVE_SPACING times what that save took, so saving
        costs at most about 1/SAVE_SPACING of the run (every epoch while a save is cheap;
        sparser as a long history makes it dear). The first and the last epoch of a fit
        are always saved.
        ``y_train`` and ``y_val``: the labels (one integer per row) of x_train and x_val,
        for a model whose loss_and_grads takes y (a conditional VAE); each batch's labels
        go with its rows. Every argument is checked before the first step.
        """
        epochs = check_positive_int(epochs, "epochs")
        if checkpoint_every != "auto":
            checkpoint_every = check_positive_int(checkpoint_every, "checkpoint_every (or 'auto')")
        if checkpoint_path is not None:
            checkpoint.check_target(checkpoint_path, "checkpoint_path")
        if x_val is None and y_val is not None:
            raise ValueError("y_val was given without x_val; pass the validation images too, or leave y_val out")
        X, Y = self._prepare(x_train, "x_train", y_train)
        V, YV = self._prepare(x_val, "x_val", y_val) if x_val is not None else (None, None)
        with self.thread_policy.limits():
            return self._fit(X, Y, V, YV, epochs, checkpoint_path, checkpoint_every)

    def _fit(self, X, Y, V, YV, epochs, checkpoint_path, checkpoint_every) -> dict:
        """fit's epochs, inside the thread policy's limits."""
        from tqdm.auto import tqdm

        xp = array_namespace(X)
        N = X.shape[0]
        batches = batch_slices(N, self.batch_size)
        steps_per_epoch = len(batches)
        policy = self.thread_policy
        saved, saved_epoch = None, 0  # the checkpoint written by this call (once an epoch has ended well)
        saved_at, save_cost = 0.0, 0.0  # when the last save ended, and what it took (seconds)
        for e in range(epochs):
            t0 = time.perf_counter()
            perm = self.rng.permutation(N)
            sums = None  # device-side sums over the epoch of loss * rows (and each stat * rows)
            bad = -1  # the first step whose loss was not finite
            too_large = False  # finite losses whose sum overflowed
            bar = tqdm(total=steps_per_epoch, desc=f"epoch {self.epoch + 1}", leave=False,
                       disable=not self.progress, unit="step")
            window = []  # this window's losses, still on the device
            for i in range(steps_per_epoch):
                idx = perm[batches[i]]
                xb = self._batch(X, idx)
                policy.threads_for_next_step()
                t_step = time.perf_counter()
                loss, stats = self.train_step(xb, None if Y is None else xp.take(Y, idx, axis=0))
                policy.record(time.perf_counter() - t_step)  # NumPy is synchronous; a GPU's policy is off
                if len(policy.changes) > self._threads_shown:  # a new choice: said once
                    self._threads_shown = len(policy.changes)
                    if self.progress and policy.choice is not None:
                        tqdm.write(policy.describe())
                rows = idx.shape[0]  # the last batch may be short: weight each mean by its rows
                terms = {k: v * rows for k, v in {"loss": loss, **stats}.items()}
                sums = terms if sums is None else {k: sums[k] + v for k, v in terms.items()}
                window.append(loss)
                if len(window) == self.log_every or i + 1 == steps_per_epoch:
                    running = float(xp.sum(xp.stack(window))) / len(window)  # one read per window
                    if not math.isfinite(running):
                        # the first non-finite loss; if all are finite their sum overflowed,
                        # and the window's first step is named
                        first = next((j for j, v in enumerate(window) if not math.isfinite(float(v))), None)
                        too_large = first is None
                        bad = self.step - len(window) + 1 + (first or 0)
                        break
                    bar.set_postfix(loss=f"{running:.3f}")
                    bar.update(len(window))
                    window = []
            bar.close()
            if bad >= 0:
                what = ("grew too large to sum (each loss finite, their sum infinite) in the steps from"
                        if too_large else "became NaN or infinite at")
                raise TrainingDiverged(
                    f"the loss {what} step {bad} (epoch {self.epoch + 1}); "
                    "training stopped. Lower the learning rate or check the data"
                    + (f"; the last good checkpoint is {saved} (epoch {saved_epoch})" if saved else
                       "; this fit wrote no checkpoint (it diverged in its first epoch)"
                       if checkpoint_path else "")
                )
            self.epoch += 1
            record = {"epoch": self.epoch, "time": time.perf_counter() - t0, "beta": self.beta()}
            record.update({f"train_{k}": float(v) / N for k, v in sums.items()})  # per-example means
            if V is not None:
                record.update({f"val_{k}": v for k, v in self.evaluate(V, y=YV, **self._eval_options()).items()})
            for k, v in record.items():
                self.history.setdefault(k, []).append(v)
            if checkpoint_path is not None and (
                    saved is None or e == epochs - 1 or
                    (self.epoch % checkpoint_every == 0 if checkpoint_every != "auto" else
                     time.perf_counter() - saved_at >= SAVE_SPACING * save_cost)):
                t_save = time.perf_counter()
                self.save(checkpoint_path)
                saved, saved_epoch, saved_at = checkpoint_path, self.epoch, time.perf_counter()
                save_cost = saved_at - t_save
            if self.callback is not None:
                self.callback(self, record)
        return self.history

    def evaluate(self, x, batch_size: int = 1000, y=None, **kwargs) -> dict:
        """Mean loss and stats over ``x`` (with its labels ``y`` for a conditional model)
        without gradients (``model.loss``); ``kwargs`` go to it (e.g. ``n_samples=10``,
        ``objective="iwae"``)."""
        X, Y = self._prepare(x, "x", y)
        batch_size = check_positive_int(batch_size, "batch_size")
        totals: dict = {}
        for rows in batch_slices(X.shape[0], batch_size):
            xb = X[rows, ...]
            labels = {} if Y is None else {"y": Y[rows]}
            loss, stats = self.model.loss(xb, check=False, **labels, **kwargs)
            for k, v in {"loss": loss, **stats}.items():
                totals[k] = totals.get(k, 0.0) + float(v) * xb.shape[0]
        return {k: v / X.shape[0] for k, v in totals.items()}

    def _prepare(self, x, name: str, y=None):
        """x (and its labels y) on the backend, checked once by the model: (X, Y or None)."""
        X = as_data(x, name)
        Y = None if y is None else backend.asarray(y)
        y_name = "y" + name[1:]
        if "y" in getattr(self.model, "options", ()):
            # the model's own checks (shape, NaN, columns, pixel range; its labels), once
            self.model.check_data(X, name, y=Y)
        elif Y is not None:
            raise ValueError(f"{y_name} applies to models whose loss_and_grads takes y (a conditional VAE); "
                             f"{type(self.model).__name__}.options does not list it. Leave {y_name} out")
        else:
            self.model.check_data(X, name)
        return X, Y

    # ---- checkpoints ---------------------------------------------------------------

    def save(self, path) -> None:
        """Checkpoint the model, optimizer, both RNGs, step, epoch and history."""
        extra = {**self.extra, "step": self.step, "epoch": self.epoch,
                 "trainer": {"batch_size": self.batch_size, "n_samples": self.n_samples,
                             "kl_warmup": self.kl_warmup, "beta": self.beta_max, "binarize": self.binarize,
                             "objective": self.objective, "threads": self.thread_policy.setting,
                             "seed": self.seed, "log_every": self.log_every},
                 "threads": self.thread_policy.record_dict()}
        checkpoint.save(path, self.model, optimizer=self.optimizer, rngs={"trainer": self.rng}, extra=extra,
                        series=self.history)  # binary arrays: a long history stays cheap to write

    @classmethod
    def resume(cls, path, optimizer, progress: bool = True, callback=None, kernels: bool | None = None) -> "Trainer":
        """Rebuild model and trainer from a checkpoint written by ``save``; ``optimizer``
        is a fresh optimizer of the class that was saved (its state is restored)."""
        ck = checkpoint.read(path)  # once: the model, the optimizer and the trainer come from it
        extra = ck["meta"]["extra"]
        if "trainer" not in extra:
            raise checkpoint.CheckpointError(
                f"{path} was not written by a Trainer (Trainer.save); it cannot resume training, "
                "but checkpoint.load_model can load its model")
        model = checkpoint.model_from(ck, path)
        checkpoint.restore_optimizer(optimizer, ck, path)
        t = cls(model, optimizer, progress=progress, callback=callback, kernels=kernels, **extra["trainer"])
        t.rng.set_state(ck["meta"]["rng_states"]["trainer"])
        t.step, t.epoch = extra["step"], extra["epoch"]
        t.history = extra["history"] if "history" in extra else ck["series"]  # JSON before 0.2
        t.extra = {k: v for k, v in extra.items() if k not in ("step", "epoch", "history", "trainer", "threads")}
        return t


def _largest_product(model, rows: int) -> float:
    """2 N D H of the largest product x W a step makes (a batch of ``rows``): for the
    thread policy, which gives products too small to share one thread."""
    sizes = [math.prod(p.shape) for p in model.params.values() if len(p.shape) == 2]
    return 2.0 * rows * max(sizes, default=0)
