"""`scratchvae train`: a new run, or `--resume` of one; checkpoint, metrics and figures."""

from __future__ import annotations

import csv
import io
import json
import os
import time
from pathlib import Path

import numpy as np

from .. import __version__, backend, datasets
from .common import (DTYPE_ENV, ENVIRONMENT, RUN_FILES, UserError, class_figure, dtype_from_env, holds_run,
                     labels_of, latent_use, quote, reconstruction_figure, writable, write_atomic)
from .options import build_parser

RESUME_KEEPS = ("epochs", "quiet", "data_dir")  # what --resume takes from the command line; the rest is saved


def train(args) -> int:
    from ..models import VAE
    from ..optim import Adam
    from ..training import Trainer

    from ..threads import parse_setting

    saved = resume_config(args) if args.resume is not None else None  # args now hold the run's configuration
    if args.epochs is None:
        args.epochs = 300
    out = Path(args.out)
    held = [name for name in RUN_FILES if (out / name).is_file()]
    if saved is None and held and not args.force:  # refused before anything is read or written
        raise UserError(f"{out} already holds a run ({', '.join(held)}): continue it with "
                        f"`scratchvae train --resume {quote(out)}`, start over with --force, or choose a new --out")
    args.threads = parse_setting(args.threads)  # SCRATCHVAE_THREADS checked before anything is written
    b = backend.use(args.backend, dtype=_run_dtype(args, saved))
    if b.name == "numpy":
        # This process is the command's own, so it may set what a library call must not:
        # glibc keeps freed memory for the arrays each step makes anew, instead of handing
        # it back and faulting it in again (at batch 1024, 1,150-1,750 page faults and
        # 1.5-2.5 ms a step; see backend.retain_freed_memory). 64 MB covers a step's 25 MB.
        backend.retain_freed_memory(64)
    if args.data_dir is not None:  # absolute: evaluate and reconstruct may run from another folder
        args.data_dir = str(Path(args.data_dir).resolve())
    ds = datasets.load(args.dataset, split_seed=args.seed, binarize=args.binarize if args.binarize == "fixed" else None,
                       data_dir=args.data_dir)
    kernels_option = False if args.no_kernels else None
    if saved is None:
        _check_model_fits(ds.n_features, args.hidden, args.z_dim, b.xp.finfo(b.dtype).bits // 8)
        model = VAE(ds.n_features, hidden=tuple(args.hidden), z_dim=args.z_dim, likelihood=args.likelihood,
                    activation=args.activation, seed=args.seed,
                    decoder_logvar="learned" if args.decoder_logvar is None else args.decoder_logvar,
                    n_classes=ds.n_classes if args.conditional else None)
        trainer = Trainer(model, Adam(lr=args.lr), batch_size=args.batch_size, n_samples=args.samples,
                          kl_warmup=args.kl_warmup, binarize="dynamic" if args.binarize == "dynamic" else None,
                          seed=args.seed, progress=not args.quiet, kernels=kernels_option,
                          objective=args.objective, beta=args.beta, threads=args.threads)
    else:  # the optimizer, both RNGs, step, epoch and history come back exactly as saved
        trainer = Trainer.resume(out / "model.npz", Adam(lr=args.lr), kernels=kernels_option)
        model = trainer.model
        if trainer.epoch > args.epochs or (trainer.epoch == args.epochs and (out / "metrics.json").is_file()):
            raise UserError(f"the run in {out} has trained {trainer.epoch} epochs already; "
                            f"give --epochs with more than {trainer.epoch} to train it further")
    # the folder only now: a refused option, backend or data set leaves nothing behind
    writable(out)
    for name in ("model.npz", "config.json", "history.csv", "metrics.json"):
        if (out / name).is_dir():  # found now, not when the first epoch's checkpoint is written
            raise UserError(f"{out / name} is a folder, where this run writes a file; move it or choose another --out")
    for stale in [*out.glob(".model.npz.*.tmp"), *(out / f".{n}.tmp" for n in RUN_FILES)]:
        stale.unlink(missing_ok=True)  # left by a run that was killed while writing
    start = trainer.epoch
    print(f"scratchvae {__version__}: {ds!r} on {b.name} ({b.device}, {b.dtype_name}); "
          + (f"output in {out}/" if not saved else f"resuming {out}/ after epoch {start} of {args.epochs}"
             + ("" if start < args.epochs else ": its epochs are trained; writing its metrics and figures")))
    trainer.extra = {"data": {"name": ds.name, "split_seed": args.seed, "binarize": args.binarize,
                              "data_dir": args.data_dir, "image_shape": list(ds.image_shape)}}
    config = {"version": __version__,
              **{k: v for k, v in vars(args).items() if k not in ("resume", "force")},
              "backend": b.name, "dtype": b.dtype_name, "dataset": ds.name, "model": model.config,
              "kernels": trainer.swapped,  # the compiled twins this run ran ([]: the textbook alone)
              "environment": {var: os.environ.get(var) for var in ENVIRONMENT}}  # as set when the run (re)started

    from tqdm.auto import tqdm

    epochs_bar = tqdm(total=args.epochs, initial=start, desc="training", unit="epoch", disable=args.quiet)
    trainer.progress = False  # one bar for the run; per-step bars would flood the terminal
    def after_epoch(t, rec) -> None:
        if rec["epoch"] == start + 1:  # fit has just written this run's first model.npz: its config goes beside it
            config["threads"] = t.thread_policy.record_dict()  # the setting, and what the policy chose
            if not args.quiet:  # once, in the progress output
                epochs_bar.write(t.thread_policy.describe())
            write_atomic(out / "config.json", json.dumps(config, indent=2) + "\n")
        epochs_bar.update(1)
        epochs_bar.set_postfix(train=f"{rec['train_loss']:.2f}", val=f"{rec.get('val_neg_elbo', float('nan')):.2f}")

    # config.json is written with the first checkpoint, so the two always belong to one run:
    # a run that fails before it leaves the earlier run's pair, one that fails later its own
    trainer.callback = after_epoch
    t0 = time.perf_counter()
    if args.epochs > start:
        history = trainer.fit(ds.x_train, ds.x_val, epochs=args.epochs - start, checkpoint_path=out / "model.npz",
                              y_train=labels_of(model, ds, "train"), y_val=labels_of(model, ds, "val"))
    else:  # every epoch was trained, but an interrupt came while the results were written
        history = trainer.history
    epochs_bar.close()
    train_time = time.perf_counter() - t0
    write_atomic(out / "history.csv", history_csv(history))

    metrics = run_metrics(model, trainer, ds, args.iwae_k, args.eval_samples)
    metrics.update({"time_per_epoch_s": float(np.mean(history["time"])), "train_time_s": train_time,
                    "epochs": trainer.epoch, "backend": b.name, "device": str(b.device), "dtype": b.dtype_name})
    drawn = figures(model, ds, history, out, args.seed)
    write_atomic(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")  # last: it marks a finished run
    written = ["model.npz", "config.json", "history.csv", "metrics.json", *drawn]
    print(f"test: negative ELBO {metrics['test']['neg_elbo']:.2f} nats "
          f"(rec {metrics['test']['rec']:.2f} + KL {metrics['test']['kl']:.2f}), "
          f"IWAE (k={args.iwae_k}) -log p(x{' | y' if args.conditional else ''}) ~ {metrics['test_nll_iwae']:.2f}, "
          f"{metrics['active_units']} of {args.z_dim} latent units active; "
          f"{train_time:.1f} s for {trainer.epoch - start} epochs"
          + (f" (epochs {start + 1} to {trainer.epoch})" if start else ""))
    if args.conditional:
        print(f"samples drawn for each class: {100 * metrics['samples_read_as_asked']:.1f}% read as the class "
              "asked for by a 1-nearest-neighbour classifier on the training images")
    print(f"wrote {', '.join(sorted(written))}")
    stale = out / "manifold.png"
    if "manifold.png" not in written and stale.is_file():
        stale.unlink()  # an earlier run's (this z_dim draws none): left there, it would pass for this run's
        print(f"removed {stale.name}, left by an earlier run: only a 2-D latent space has a manifold figure")
    return 0


def _check_model_fits(n_features: int, hidden, z_dim: int, itemsize: int) -> None:
    """Refuse, before allocating, a model whose weights, gradients and Adam's two moments
    (4 copies) would not fit in this machine's memory."""
    sizes = [n_features, *hidden, z_dim]
    weights = sum(a * b for a, b in zip(sizes, sizes[1:])) * 2  # encoder and decoder, about
    need = 4 * weights * itemsize
    try:
        have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not on this platform: let the allocation tell
        return
    if need > have:
        raise UserError(f"--hidden {' '.join(map(str, hidden))} makes a model of about {weights / 1e9:.1f} billion "
                        f"weights, {need / 2**30:.0f} GiB with their gradients and Adam's moments, more than this "
                        f"machine's {have / 2**30:.0f} GiB of memory; choose smaller --hidden sizes")


def _run_dtype(args, saved) -> str:
    """The dtype of this run: --dtype, else $SCRATCHVAE_DTYPE, else float32. A resumed run
    keeps the dtype and the backend it was trained on (config.json: they change the
    numbers); a variable that would change them is refused, not ignored."""
    env = dtype_from_env()
    if saved is None:
        return args.dtype or env or "float32"
    args.dtype = args.dtype or "float32"  # a config.json from before 0.2 trained in float32
    for var, value, kept in ((DTYPE_ENV, env, args.dtype),
                             ("SCRATCHVAE_BACKEND", os.environ.get("SCRATCHVAE_BACKEND", "").strip().lower() or None,
                              args.backend)):
        if value is not None and kept is not None and value != kept:
            raise UserError(f"the run in {args.out} trains on {kept} (its config.json), but {var}={value}: "
                            f"unset {var} to resume it, or start a new run")
    return args.dtype


def resume_config(args) -> dict:
    """``--resume D``: put the configuration saved in D/config.json into ``args`` (the
    command line may change only RESUME_KEEPS); returns the saved configuration."""
    out = Path(args.resume)
    defaults = vars(build_parser().parse_args(["train"]))
    given = {k for k, v in vars(args).items()
             if k not in ("command", "resume", *RESUME_KEEPS) and v != defaults[k]}
    if given:
        names = ", ".join("--" + k.replace("_", "-") for k in sorted(given))
        raise UserError(f"--resume continues the run with its saved configuration, so {names} cannot be "
                        f"given with it (only --epochs, --data-dir, --quiet); to change it, start a new run")
    if not holds_run(out):
        raise UserError(f"{out} holds no run to resume (no model.npz with its config.json, written after "
                        f"the first epoch); start one with `scratchvae train --out {quote(out)}`")
    try:
        saved = json.loads((out / "config.json").read_text())
        threads = saved.get("threads")
        for k in vars(args):
            if k in saved and k not in ("command", "resume", "force", "out", "threads", *RESUME_KEEPS):
                setattr(args, k, saved[k])
    except (ValueError, AttributeError) as exc:
        raise UserError(f"{out / 'config.json'} cannot be read ({exc}); it cannot be resumed") from None
    # BLAS threads do not change the numbers: SCRATCHVAE_THREADS, where set, is honoured
    args.threads = os.environ.get("SCRATCHVAE_THREADS") or (threads.get("setting") if isinstance(threads, dict)
                                                             else threads)
    if args.epochs is None:
        args.epochs = saved.get("epochs", 0)
    if args.data_dir is None:
        args.data_dir = saved.get("data_dir")
    args.out = str(out)
    return saved


def run_metrics(model, trainer, ds, k: int, n_samples: int) -> dict:
    """Negative ELBO (rec + KL) on each split; on the test set the IWAE estimate, the
    active units and the KL per latent dimension; for a conditional VAE, how often its
    samples are read as the class asked for."""
    metrics = {}
    for split in ("train", "val", "test"):
        x = getattr(ds, f"x_{split}")
        ev = trainer.evaluate(x, n_samples=n_samples, y=labels_of(model, ds, split))
        metrics[split] = {"neg_elbo": ev["neg_elbo"], "rec": ev["rec"], "kl": ev["kl"]}
    y = labels_of(model, ds, "test")
    metrics["test_nll_iwae"] = -model.log_likelihood(ds.x_test, k=k, y=y)
    metrics["iwae_k"] = k
    metrics["elbo_samples"] = n_samples
    metrics.update(latent_use(model, ds.x_test, y))
    if model.n_classes is not None:
        metrics["samples_read_as_asked"] = read_as_asked(model, ds)
    return metrics


def read_as_asked(model, ds, per_class: int = 100, seed: int = 0) -> float:
    """The share of a conditional VAE's samples, per_class drawn for each class, that a
    1-nearest-neighbour classifier on the real training images reads as the class asked for."""
    asked = np.repeat(np.arange(model.n_classes), per_class)
    model.rng = backend.RNG(seed)
    drawn = backend.to_numpy(model.sample(len(asked), y=asked)).astype(np.float64)
    x = ds.x_train.astype(np.float64)
    sq = (x * x).sum(axis=1)
    read = np.concatenate([ds.y_train[np.argmin(sq[None, :] - 2.0 * q @ x.T, axis=1)]  # ||q - x||^2 - ||q||^2
                           for q in np.array_split(drawn, max(1, len(drawn) // 256))])
    return float(np.mean(read == asked))


def history_csv(history: dict) -> str:
    keys = list(history)
    f = io.StringIO(newline="")
    w = csv.writer(f)
    w.writerow(keys)
    for row in zip(*(history[k] for k in keys)):
        w.writerow([f"{v:.6g}" if isinstance(v, float) else v for v in row])
    return f.getvalue()


def figures(model, ds, history, out: Path, seed: int) -> list:
    """Draw the figures into ``out``; returns the names written (manifold.png only for a
    2-D latent space)."""
    from .. import plotting

    to_host = backend.to_numpy
    skip = {"epoch", "time", "beta"}
    for split in ("train", "val"):  # a bound that is the loss itself (no warm-up; the IWAE's) is drawn once
        skip |= {k for k in (f"{split}_neg_elbo", f"{split}_neg_iwae") if history.get(k) == history.get(f"{split}_loss")}
    plotting.learning_curves({k: v for k, v in history.items() if k not in skip}, path=out / "curves.png")
    reconstruction_figure(model, ds, out / "reconstructions.png")
    model.rng = backend.RNG(seed + 1)
    if model.n_classes is None:
        plotting.image_grid(to_host(model.sample(100)), ds.image_shape, nrow=10,
                            title="samples from the prior: E[x | z], z ~ N(0, I)", path=out / "samples.png")
    else:
        class_figure(model, ds.image_shape, 10, out / "samples.png")
    mu, _ = model.encode(backend.asarray(ds.x_test), y=labels_of(model, ds, "test"))
    plotting.latent_scatter(to_host(mu), ds.y_test, path=out / "latent.png",
                            title="test set: posterior means of z, coloured by label")
    names = ["curves.png", "reconstructions.png", "samples.png", "latent.png"]
    if model.z_dim == 2 and model.n_classes is None:  # a conditional VAE's z means nothing without y
        plotting.manifold(lambda z: to_host(model.mean_image(model.decode(backend.asarray(z)))),
                          ds.image_shape, n=20, path=out / "manifold.png")
        names.append("manifold.png")
    return names
