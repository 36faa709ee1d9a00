"""The ``scratchvae`` command: train a VAE and write the figures a person wants to see.

    scratchvae train --out runs/digits          # about 10 s on a 2-core laptop CPU
    scratchvae train --resume runs/digits --epochs 500   # continue it (a folder holding a run is never overwritten silently)
    scratchvae sample runs/digits/model.npz
    scratchvae reconstruct runs/digits/model.npz
    scratchvae evaluate runs/digits/model.npz --k 5000
    scratchvae bench --workloads mnist --batch-sizes 128
    scratchvae info

Errors a user can make (unknown data set, no network, unwritable folder, bad checkpoint)
are printed as one line, not a traceback.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from . import __version__, backend, checkpoint, datasets, kernels
from .checks import positive_int
from .models.objectives import OBJECTIVES

EXAMPLES = {
    "train": """examples:
  scratchvae train                                  # digits, 2-D latent, into runs/digits
  scratchvae train --resume runs/digits --epochs 500  # continue that run (after Ctrl-C, or for more epochs)
  scratchvae train --force                          # start over in runs/digits, replacing the run there
  scratchvae train --out runs/wide --z-dim 8 --hidden 512 256
  scratchvae train --dataset mnist --epochs 20 --hidden 400 --z-dim 20
  scratchvae train --likelihood gaussian --samples 5 --kl-warmup 2000
  scratchvae train --out runs/beta4 --z-dim 10 --beta 4       # a beta-VAE
  scratchvae train --out runs/iwae --z-dim 10 --objective iwae --samples 5   # the IWAE bound, k = 5
  scratchvae train --out runs/cvae --conditional    # draws the digit you ask for: samples.png, a row per class
  scratchvae train --backend cupy --batch-size 1024
  scratchvae train --no-kernels                     # the textbook alone, no compiled twins""",
    "sample": """examples:
  scratchvae sample runs/digits/model.npz
  scratchvae sample runs/digits/model.npz --n 100 --seed 3 --out samples.png
  scratchvae sample runs/cvae/model.npz              # a conditional VAE: a row per class
  scratchvae sample runs/cvae/model.npz --label 7    # ... or only 7s""",
    "reconstruct": """examples:
  scratchvae reconstruct runs/digits/model.npz
  scratchvae reconstruct runs/digits/model.npz --n 20 --out recon.png""",
    "evaluate": """examples:
  scratchvae evaluate runs/digits/model.npz              # IWAE with k = 1000 on the test set
  scratchvae evaluate runs/digits/model.npz --k 5000 --split val""",
    "bench": """examples:
  scratchvae bench                                  # NumPy: the 784-400-20 VAE at batch 128 and 1024, digits at 64
  scratchvae bench --workloads mnist --batch-sizes 128 --steps 100 --repeats 3   # quicker
  scratchvae bench --no-kernels                     # the textbook alone, without the compiled twins
  scratchvae bench --backend cupy --json gpu.json   # compare with --backend numpy

The data are synthetic, of MNIST's shape (the data do not change the arithmetic). For
PyTorch beside scratchvae, and peak memory, see benchmarks/bench_vae.py in the repository.""",
    "info": """examples:
  scratchvae info
  SCRATCHVAE_BACKEND=auto scratchvae info""",
}


class UserError(Exception):
    """A mistake the user can fix; printed as one line."""


def non_negative_int(text: str) -> int:
    """An ``argparse`` type for seeds: 0, 1, 2, ... or a usage error naming the option."""
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return n


def _finite_float(text: str, zero_allowed: bool) -> float:
    """A finite number >= 0 (``zero_allowed``) or > 0, for argparse; its error says which."""
    try:
        x = float(text)
    except ValueError:
        x = -1.0
    if not (0.0 <= x if zero_allowed else 0.0 < x) or not x < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number {'>=' if zero_allowed else '>'} 0, got {text!r}")
    return x


def non_negative_float(text: str) -> float:
    """An ``argparse`` type for weights such as beta: a finite number >= 0."""
    return _finite_float(text, zero_allowed=True)


def positive_float(text: str) -> float:
    """An ``argparse`` type for rates such as --lr: a finite number > 0."""
    return _finite_float(text, zero_allowed=False)


def _out_path(text: str) -> str:
    """An ``argparse`` type for output paths: as ``_user_path``, but not empty (which
    would write into the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a path, got an empty one")
    return _user_path(text)


def _user_path(text: str) -> str:
    """An ``argparse`` type for paths: ``~`` is the home folder, even in ``--out=~/x``,
    which the shell leaves as it is."""
    return os.path.expanduser(text)


# ---- train ----------------------------------------------------------------------------


RUN_FILES = ("model.npz", "config.json", "history.csv", "metrics.json", "curves.png", "reconstructions.png",
             "samples.png", "latent.png", "manifold.png")
RESUME_KEEPS = ("epochs", "quiet", "data_dir")  # what --resume takes from the command line; the rest is saved


def _train(args) -> int:
    from .models import VAE
    from .optim import Adam
    from .training import Trainer

    from .threads import parse_setting

    saved = _resume_config(args) if args.resume is not None else None  # args now hold the run's configuration
    if args.epochs is None:
        args.epochs = 300
    out = Path(args.out)
    held = [name for name in RUN_FILES if (out / name).is_file()]
    if saved is None and held and not args.force:  # refused before anything is read or written
        raise UserError(f"{out} already holds a run ({', '.join(held)}): continue it with "
                        f"`scratchvae train --resume {_quote(out)}`, start over with --force, or choose a new --out")
    args.threads = parse_setting(args.threads)  # SCRATCHVAE_THREADS checked before anything is written
    b = backend.use(args.backend, dtype="float32")
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
    _writable(out)
    for name in ("model.npz", "config.json", "history.csv", "metrics.json"):
        if (out / name).is_dir():  # found now, not when the first epoch's checkpoint is written
            raise UserError(f"{out / name} is a folder, where this run writes a file; move it or choose another --out")
    for stale in [*out.glob(".model.npz.*.tmp"), *(out / f".{n}.tmp" for n in RUN_FILES)]:
        stale.unlink(missing_ok=True)  # left by a run that was killed while writing
    start = trainer.epoch
    print(f"scratchvae {__version__}: {ds!r} on {b.name} ({b.device}); "
          + (f"resuming {out}/ after epoch {start} of {args.epochs}" if saved else f"output in {out}/"))
    trainer.extra = {"data": {"name": ds.name, "split_seed": args.seed, "binarize": args.binarize,
                              "data_dir": args.data_dir, "image_shape": list(ds.image_shape)}}
    config = {"version": __version__,
              **{k: v for k, v in vars(args).items() if k not in ("func", "resume", "force")},
              "backend": b.name, "dtype": b.dtype_name, "dataset": ds.name, "model": model.config}

    from tqdm.auto import tqdm

    epochs_bar = tqdm(total=args.epochs, initial=start, desc="training", unit="epoch", disable=args.quiet)
    trainer.progress = False  # one bar for the run; per-step bars would flood the terminal
    def after_epoch(t, rec) -> None:
        if rec["epoch"] == start + 1:  # fit has just written this run's first model.npz: its config goes beside it
            config["threads"] = t.thread_policy.record_dict()  # the setting, and what the policy chose
            if not args.quiet:  # once, in the progress output
                epochs_bar.write(t.thread_policy.describe())
            _write_atomic(out / "config.json", json.dumps(config, indent=2) + "\n")
        epochs_bar.update(1)
        epochs_bar.set_postfix(train=f"{rec['train_loss']:.2f}", val=f"{rec.get('val_neg_elbo', float('nan')):.2f}")

    # config.json is written with the first checkpoint, so the two always belong to one run:
    # a run that fails before it leaves the earlier run's pair, one that fails later its own
    trainer.callback = after_epoch
    t0 = time.perf_counter()
    history = trainer.fit(ds.x_train, ds.x_val, epochs=args.epochs - start, checkpoint_path=out / "model.npz",
                          y_train=_labels(model, ds, "train"), y_val=_labels(model, ds, "val"))
    epochs_bar.close()
    train_time = time.perf_counter() - t0
    _write_atomic(out / "history.csv", _history_csv(history))

    metrics = _metrics(model, trainer, ds, args.iwae_k, args.eval_samples)
    metrics.update({"time_per_epoch_s": float(np.mean(history["time"])), "train_time_s": train_time,
                    "epochs": trainer.epoch, "backend": b.name, "device": str(b.device), "dtype": b.dtype_name})
    _write_atomic(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    written = ["model.npz", "config.json", "history.csv", "metrics.json", *_figures(model, ds, history, out, args.seed)]
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


def _resume_config(args) -> dict:
    """``--resume D``: put the configuration saved in D/config.json into ``args`` (the
    command line may change only RESUME_KEEPS); returns the saved configuration."""
    out = Path(args.resume)
    defaults = vars(_parser().parse_args(["train"]))
    given = {k for k, v in vars(args).items()
             if k not in ("func", "command", "resume", *RESUME_KEEPS) and v != defaults[k]}
    if given:
        names = ", ".join("--" + k.replace("_", "-") for k in sorted(given))
        raise UserError(f"--resume continues the run with its saved configuration, so {names} cannot be "
                        f"given with it (only --epochs, --data-dir, --quiet); to change it, start a new run")
    if not (out / "model.npz").is_file() or not (out / "config.json").is_file():
        raise UserError(f"{out} holds no run to resume (no model.npz with its config.json, written after "
                        f"the first epoch); start one with `scratchvae train --out {_quote(out)}`")
    try:
        saved = json.loads((out / "config.json").read_text())
        threads = saved.get("threads")
        for k in vars(args):
            if k in saved and k not in ("func", "command", "resume", "force", "out", "threads", *RESUME_KEEPS):
                setattr(args, k, saved[k])
    except (ValueError, AttributeError) as exc:
        raise UserError(f"{out / 'config.json'} cannot be read ({exc}); it cannot be resumed") from None
    args.threads = threads.get("setting") if isinstance(threads, dict) else threads
    if args.epochs is None:
        args.epochs = saved.get("epochs", 0)
    if args.data_dir is None:
        args.data_dir = saved.get("data_dir")
    args.out = str(out)
    return saved


def _quote(path) -> str:
    import shlex

    return shlex.quote(str(path))


def _labels(model, ds, split: str):
    """The labels of a split for a conditional model, None for a VAE."""
    return getattr(ds, f"y_{split}") if model.n_classes is not None else None


def _metrics(model, trainer, ds, k: int, n_samples: int) -> dict:
    """Negative ELBO (rec + KL) on each split; on the test set the IWAE estimate, the
    active units and the KL per latent dimension; for a conditional VAE, how often its
    samples are read as the class asked for."""
    metrics = {}
    for split in ("train", "val", "test"):
        x = getattr(ds, f"x_{split}")
        ev = trainer.evaluate(x, n_samples=n_samples, y=_labels(model, ds, split))
        metrics[split] = {"neg_elbo": ev["neg_elbo"], "rec": ev["rec"], "kl": ev["kl"]}
    y = _labels(model, ds, "test")
    metrics["test_nll_iwae"] = -model.log_likelihood(ds.x_test, k=k, y=y)
    metrics["iwae_k"] = k
    metrics["elbo_samples"] = n_samples
    metrics.update(_latent_use(model, ds.x_test, y))
    if model.n_classes is not None:
        metrics["samples_read_as_asked"] = _read_as_asked(model, ds)
    return metrics


def _latent_use(model, x, y) -> dict:
    """Active units (Burda et al.) and the KL per latent dimension, on x."""
    from .models import active_units, kl_per_dimension

    count, activity = active_units(model, x, y=y)
    return {"active_units": count, "activity": [float(a) for a in backend.to_numpy(activity)],
            "kl_per_dim": [float(a) for a in backend.to_numpy(kl_per_dimension(model, x, y=y))]}


def _read_as_asked(model, ds, per_class: int = 100, seed: int = 0) -> float:
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


def _history_csv(history: dict) -> str:
    keys = list(history)
    f = io.StringIO(newline="")
    w = csv.writer(f)
    w.writerow(keys)
    for row in zip(*(history[k] for k in keys)):
        w.writerow([f"{v:.6g}" if isinstance(v, float) else v for v in row])
    return f.getvalue()


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``
    (atomic): an interrupted write leaves the old file whole, never half a new one."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w", newline="") as f:  # open() gives the usual mode: 0666 less the umask
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _figures(model, ds, history, out: Path, seed: int) -> list:
    """Draw the figures into ``out``; returns the names written (manifold.png only for a
    2-D latent space)."""
    from . import plotting

    to_host = backend.to_numpy
    skip = {"epoch", "time", "beta"}
    for split in ("train", "val"):  # a bound that is the loss itself (no warm-up; the IWAE's) is drawn once
        skip |= {k for k in (f"{split}_neg_elbo", f"{split}_neg_iwae") if history.get(k) == history.get(f"{split}_loss")}
    plotting.learning_curves({k: v for k, v in history.items() if k not in skip}, path=out / "curves.png")
    _reconstruction_figure(model, ds, out / "reconstructions.png")
    model.rng = backend.RNG(seed + 1)
    if model.n_classes is None:
        plotting.image_grid(to_host(model.sample(100)), ds.image_shape, nrow=10,
                            title="samples from the prior: E[x | z], z ~ N(0, I)", path=out / "samples.png")
    else:
        _class_figure(model, ds.image_shape, 10, out / "samples.png")
    mu, _ = model.encode(backend.asarray(ds.x_test), y=_labels(model, ds, "test"))
    plotting.latent_scatter(to_host(mu), ds.y_test, path=out / "latent.png",
                            title="test set: posterior means of z, coloured by label")
    names = ["curves.png", "reconstructions.png", "samples.png", "latent.png"]
    if model.z_dim == 2 and model.n_classes is None:  # a conditional VAE's z means nothing without y
        plotting.manifold(lambda z: to_host(model.mean_image(model.decode(backend.asarray(z)))),
                          ds.image_shape, n=20, path=out / "manifold.png")
        names.append("manifold.png")
    return names


def _class_figure(model, image_shape, per_class: int, path) -> None:
    """A conditional VAE's samples, a row of per_class for each class (model.rng draws)."""
    from . import plotting

    C = model.n_classes
    drawn = backend.to_numpy(model.sample(C * per_class, y=np.repeat(np.arange(C), per_class)))
    plotting.samples_by_class(drawn.reshape(C, per_class, -1), image_shape, path=path,
                              title="samples E[x | z, y], z ~ N(0, I), a row per class y")


def _reconstruction_figure(model, ds, path, n: int = 10) -> None:
    from . import plotting

    x = ds.x_test[:n]
    y = None if model.n_classes is None else ds.y_test[:n]
    plotting.reconstructions(x, backend.to_numpy(model.reconstruct(backend.asarray(x), y=y)), ds.image_shape,
                             n=n, path=path)


# ---- working from a checkpoint -----------------------------------------------------


def _load(args):
    from .models import VAE

    backend.use(args.backend, dtype="float32")
    ck = checkpoint.read(args.checkpoint)
    model = checkpoint.model_from(ck, args.checkpoint, expect=VAE)
    extra = ck["meta"].get("extra")
    return model, extra.get("data") if isinstance(extra, dict) else None


def _dataset_of(data, args):
    """The data set a checkpoint was trained on (--data-dir, where given, overrides the
    folder it recorded)."""
    if not isinstance(data, dict):
        raise checkpoint.CheckpointError(f"{args.checkpoint} does not say which data set it was trained on; "
                                         "use a checkpoint written by `scratchvae train`")
    if not isinstance(data.get("split_seed"), int):
        raise checkpoint.CheckpointError(f"{args.checkpoint} does not record the seed of its data split "
                                         "(extra.data.split_seed); use a checkpoint written by `scratchvae train`")
    return datasets.load(data.get("name"), split_seed=data["split_seed"],
                         binarize="fixed" if data.get("binarize") == "fixed" else None,
                         data_dir=getattr(args, "data_dir", None) or data.get("data_dir"))


def _default_out(args, name: str) -> Path:
    """Where a figure goes: --out as given; in it if it is a folder; with .png added
    when it has no extension (matplotlib would add it, and we would print the wrong name)."""
    if not args.out:
        return Path(args.checkpoint).with_name(name)
    out = Path(args.out)
    if out.is_dir():
        return out / name
    if not out.suffix:
        return out.with_name(out.name + ".png")
    formats = _figure_formats()
    if out.suffix[1:].lower() not in formats:
        raise UserError(f"--out {out}: matplotlib cannot write {out.suffix!r} files; end the name "
                        f"with one of {', '.join('.' + f for f in sorted(formats))}")
    return out


def _figure_formats() -> set:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    return set(FigureCanvasAgg(Figure()).get_supported_filetypes())


def _sample(args) -> int:
    from . import plotting

    model, data = _load(args)
    model.rng = backend.RNG(args.seed)
    shape = tuple(data["image_shape"]) if data and "image_shape" in data else _dataset_of(data, args).image_shape
    out = _default_out(args, "samples.png")
    _writable(out.parent)
    if args.label is not None and model.n_classes is None:
        raise UserError(f"--label applies to a conditional VAE (`scratchvae train --conditional`); "
                        f"{args.checkpoint} holds an unconditional one: leave --label out")
    if args.label is not None and args.label >= model.n_classes:
        raise UserError(f"--label {args.label}: this VAE knows classes 0..{model.n_classes - 1}")
    nrow = int(round(args.n ** 0.5))
    if model.n_classes is not None and args.label is None:  # a row per class
        _class_figure(model, shape, max(1, args.n // model.n_classes), out)
    else:
        plotting.image_grid(backend.to_numpy(model.sample(args.n, y=args.label)), shape, nrow=nrow,
                            title="samples from the prior" + (f", class {args.label}" if args.label is not None
                                                              else ""), path=out)
    print(f"wrote {out}")
    return 0


def _reconstruct(args) -> int:
    model, data = _load(args)
    ds = _dataset_of(data, args)
    out = _default_out(args, "reconstructions.png")
    _writable(out.parent)
    _reconstruction_figure(model, ds, out, n=args.n)
    print(f"wrote {out}")
    return 0


def _evaluate(args) -> int:
    from .training import Trainer

    model, data = _load(args)
    ds = _dataset_of(data, args)
    x = getattr(ds, f"x_{args.split}")
    y = _labels(model, ds, args.split)
    model.rng = backend.RNG(args.seed)
    ev = Trainer(model, None, progress=False).evaluate(x, n_samples=args.samples, y=y)
    nll = -model.log_likelihood(x, k=args.k, y=y)
    result = {"split": args.split, "n": int(len(x)), "neg_elbo": ev["neg_elbo"], "rec": ev["rec"],
              "kl": ev["kl"], "nll_iwae": nll, "k": args.k, **_latent_use(model, x, y)}
    print(json.dumps(result, indent=2))
    return 0


# ---- bench ----------------------------------------------------------------------------

EPOCH = 60_000  # examples per reported epoch (MNIST's training set)
WORKLOADS = {  # name: (x_dim, hidden, z_dim), batch sizes
    "mnist": ((784, (400,), 20), (128, 1024)),  # the PyTorch examples' VAE
    "digits": ((64, (256,), 2), (64,)),  # what `scratchvae train` trains by default
}


def _bench(args) -> int:
    """Time training steps of each workload through the Trainer (scratchvae.profile)."""
    import contextlib
    import datetime

    if args.no_memory:
        print("scratchvae bench: --no-memory is deprecated and does nothing: the command no longer "
              "measures memory (benchmarks/bench_vae.py does, in processes of their own)", file=sys.stderr)
    if args.json:
        _check_writable(args.json)  # now, not after minutes of timing
    if args.retain_freed_memory:
        backend.retain_freed_memory()
    b = backend.use(args.backend, dtype="float32")
    limits, threads = _thread_limits(args.threads)
    result = {"tool": "scratchvae bench", "version": __version__,
              "date": datetime.datetime.now().isoformat(timespec="seconds"), "command": " ".join(sys.argv),
              "backend": b.name, "device": str(b.device), "threads": threads,
              "training": "the textbook (--no-kernels)" if args.no_kernels else _training_path(b), "runs": []}
    with limits or contextlib.nullcontext():
        for name in args.workloads:
            (x_dim, hidden, z_dim), sizes = WORKLOADS[name]
            for B in (args.batch_sizes or sizes) if name == "mnist" else (args.digits_batch_size,):
                result["runs"].append(_bench_one(args, name, x_dim, hidden, z_dim, B))
    print(f"scratchvae {__version__} on {b.name} ({b.device}), float32; BLAS threads: {threads}; "
          f"training runs {result['training']}")
    print(_bench_table(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
        print(f"wrote {args.json}")
    return 0


def _bench_one(args, name: str, x_dim: int, hidden: tuple, z_dim: int, B: int) -> dict:
    """One workload at batch B: Trainer.fit's epochs, the phases, the matmul floor."""
    from . import profile
    from .models import VAE
    from .optim import Adam
    from .training import Trainer

    steps = args.steps or -(-EPOCH // B)
    rows = EPOCH if args.steps is None else steps * B
    layers = "-".join(str(n) for n in (x_dim, *hidden, z_dim))
    print(f"{name} {layers} batch {B}: {args.repeats} x {steps} steps ...", file=sys.stderr, flush=True)
    x = profile.synthetic_images(rows, x_dim)
    model = VAE(x_dim, hidden=hidden, z_dim=z_dim, seed=0)
    trainer = Trainer(model, Adam(lr=1e-3), batch_size=B, progress=False,
                      kernels=False if args.no_kernels else None)
    if args.warmup:  # numba compiles on first use; caches fill
        profile.step_ms(trainer, x[:min(args.warmup * B, rows), ...])
    ms = profile.step_ms(trainer, x, args.repeats)
    phases = profile.phases(trainer, x, steps=min(steps, 20))
    floor = profile.matmul_floor(model, B)
    step = statistics.median(ms)
    return {"workload": name, "layers": layers, "batch_size": B, "steps": steps, "repeats": args.repeats,
            "swapped": trainer.swapped, "step_ms": step, "step_ms_best": min(ms), "step_ms_all": ms,
            "epoch_s": step / 1e3 * EPOCH / B, "examples_per_s": 1e3 * B / step, "phases_ms": phases,
            "floor_ms": floor["ms"], "floor_gflops": floor["gflops"], "over_floor": step / floor["ms"]}


def _bench_table(result: dict) -> str:
    head = (f"{'workload':<18}{'batch':>6}{'ms/step':>10}{'best':>9}{'s/epoch':>9}{'ex/s':>9}"
            f"{'floor ms':>10}{'x floor':>9}")
    lines = [head, "-" * len(head)]
    for r in result["runs"]:
        lines.append(f"{r['workload'] + ' ' + r['layers']:<18}{r['batch_size']:>6}{r['step_ms']:>10.3f}"
                     f"{r['step_ms_best']:>9.3f}{r['epoch_s']:>9.2f}{r['examples_per_s']:>9.0f}"
                     f"{r['floor_ms']:>10.3f}{r['over_floor']:>9.2f}")
        total = sum(r["phases_ms"].values()) or 1.0
        lines.append(" " * 24 + "phases, ms/step: " + ", ".join(
            f"{k} {v:.3f} ({100 * v / total:.0f}%)" for k, v in r["phases_ms"].items()))
    lines.append(f"(an epoch is {EPOCH:,} examples; ms/step is the median of the timed epochs, best the fastest; "
                 "the floor is the step's matrix products alone)")
    return "\n".join(lines)


def _thread_limits(n: int):
    """(a context manager that limits the BLAS threads to n, or None; what it does)."""
    if not n:
        return None, "the library's default"
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None, (f"the library's default (threadpoolctl is not installed: pip install threadpoolctl, "
                      f"or set OPENBLAS_NUM_THREADS={n} before starting)")
    return threadpool_limits(n), str(n)


def _check_writable(path: str) -> None:
    """Raise OSError (IsADirectoryError, PermissionError, ...) unless ``path`` can be written;
    a file it had to create for the test is removed again."""
    existed = os.path.lexists(path)
    with open(path, "a"):  # "a": an existing file keeps its contents
        pass
    if not existed:
        os.remove(path)


def _batch_size(text: str) -> int:
    """An ``argparse`` type: a batch size from 1 to EPOCH (the examples an epoch holds)."""
    B = positive_int(text)
    if B > EPOCH:
        raise argparse.ArgumentTypeError(f"a batch cannot hold more than the {EPOCH} examples of the data set, "
                                         f"got {text!r}")
    return B


# ---- info -----------------------------------------------------------------------------


def _training_path(b) -> str:
    """Which path ``Trainer`` (and ``scratchvae train``) runs on backend ``b``, and why."""
    if b.name not in ("numpy", "cupy"):
        return f"the textbook (the compiled twins walk NumPy and CuPy arrays, not {b.name}'s)"
    what = kernels.status()[b.name]
    if not kernels.enabled():
        return "the textbook (SCRATCHVAE_KERNELS=off)"
    if what.startswith("the textbook"):
        return f"the textbook ({what.split(': ', 1)[-1]})"
    return f"the compiled twins ({what}); --no-kernels or SCRATCHVAE_KERNELS=off gives the textbook"


def _threads_line(b) -> str:
    """What the thread policy will do here, before a run measures anything."""
    from . import threads

    if b.name == "cupy":
        return "not applied: the matrix products run on the GPU"
    try:
        setting = threads.parse_setting(None)
    except ValueError as exc:  # info reports; train refuses
        return f"{exc}: training will refuse to start until {threads.ENV} is fixed"
    if setting != "auto":
        return f"{setting} (set by {threads.ENV})"
    return (f"auto: BLAS has {threads.blas_threads()} here; a training run gives products under "
            f"{threads.SMALL_PRODUCT_FLOPS:.0e} flops one thread, else measures 1 against "
            f"{threads.blas_threads()} on its first steps ({threads.ENV} or --threads overrides)")


def _info(args) -> int:
    from .datasets import mnist

    b = backend.use(args.backend)
    info = backend.info()
    print(f"scratchvae {__version__}")
    print(f"backend:     {b.name} on {b.device} ({b.dtype_name})")
    print(f"cupy:        {info['cupy']}")
    print(f"numpy:       {info['numpy']}, array-api-compat {info['array_api_compat']}")
    fused = kernels.status()
    print(f"kernels:     NumPy: {fused['numpy']}")
    print(f"             CuPy: {fused['cupy']}")
    print(f"training:    {_training_path(b)}")
    print(f"threads:     {_threads_line(b)}")
    print(f"data cache:  {mnist.default_data_dir()}  (set SCRATCHVAE_DATA to move it)")
    print(f"data sets:   {', '.join(datasets.available())}")
    return 0


# ---- plumbing -------------------------------------------------------------------------------


def _threads_setting(text: str):
    from .threads import parse_setting

    try:
        return parse_setting(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".scratchvae-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write to {folder}: {exc.strerror}; choose another folder with --out") from None


DATA_DIR_HELP = "MNIST: folder with the IDX files (default: the one the checkpoint recorded)"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="scratchvae", description="Train a variational autoencoder built from scratch, and look at it.",
        epilog="Run `scratchvae COMMAND --help` for each command's options and examples.")
    p.add_argument("--version", action="version", version=f"scratchvae {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def command(name, help_, func):
        sp = sub.add_parser(name, help=help_, description=help_, epilog=EXAMPLES[name],
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        sp.set_defaults(func=func)
        sp.add_argument("--backend", default=None, choices=["numpy", "cupy", "auto", "array_api_strict"],
                        help="array backend (default: $SCRATCHVAE_BACKEND or numpy)")
        return sp

    t = command("train", "train a VAE and write checkpoint, metrics and figures", _train)
    t.add_argument("--out", type=_out_path, default="runs/digits",
                   help="output folder (default: runs/digits); one that holds a run is refused without "
                        "--resume or --force")
    t.add_argument("--resume", type=_out_path, default=None, metavar="DIR",
                   help="continue the run in DIR from its last checkpoint, with its saved configuration, to "
                        "its --epochs or to the --epochs given")
    t.add_argument("--force", action="store_true", help="start over in an --out that holds a run, replacing it")
    t.add_argument("--dataset", default="digits", help=f"one of {', '.join(datasets.available())} (default: digits)")
    t.add_argument("--data-dir", type=_user_path, default=None, help="folder with the MNIST IDX files (default: $SCRATCHVAE_DATA or the cache)")
    t.add_argument("--hidden", type=positive_int, nargs="+", default=[256], help="hidden layer sizes (default: 256)")
    t.add_argument("--z-dim", type=positive_int, default=2, help="latent dimension (default: 2, for the latent map and manifold)")
    t.add_argument("--likelihood", choices=["bernoulli", "gaussian"], default="bernoulli", help="decoder likelihood")
    t.add_argument("--decoder-logvar", type=float, default=None,
                   help="Gaussian decoder: fixed log-variance (default: learned per pixel)")
    t.add_argument("--activation", default="relu", help="hidden activation (default: relu)")
    t.add_argument("--samples", type=positive_int, default=1,
                   help="L, samples of z per example in the ELBO, or the IWAE's k (default: 1)")
    t.add_argument("--objective", choices=list(OBJECTIVES), default="elbo",
                   help="training objective: elbo (the KL in closed form), elbo_mc (Monte-Carlo ELBO, "
                        "log p(x, z) - log q(z | x) per sample), iwae (importance-weighted bound with "
                        "k = --samples) (default: elbo)")
    t.add_argument("--conditional", action="store_true",
                   help="train a conditional VAE on the images and their labels; samples.png then has a "
                        "row per class")
    t.add_argument("--epochs", type=positive_int, default=None,
                   help="epochs in all (default: 300, about 10 s for digits on 2 cores; with --resume, the run's)")
    t.add_argument("--batch-size", type=positive_int, default=64, help="batch size (default: 64)")
    t.add_argument("--lr", type=positive_float, default=1e-3, help="Adam learning rate (default: 1e-3)")
    t.add_argument("--kl-warmup", type=non_negative_int, default=0,
                   help="steps over which the KL weight rises 0 -> beta (default: 0)")
    t.add_argument("--beta", type=non_negative_float, default=1.0,
                   help="weight of the KL, the beta-VAE's beta (default: 1, the ELBO)")
    t.add_argument("--binarize", choices=["fixed", "dynamic"], default=None, help="binarize pixels (default: grey levels)")
    t.add_argument("--iwae-k", type=positive_int, default=1000, help="importance samples for the test log-likelihood (default: 1000)")
    t.add_argument("--eval-samples", type=positive_int, default=10, help="samples per example for the reported ELBOs (default: 10)")
    t.add_argument("--seed", type=non_negative_int, default=0, help="seed of split, weights, noise and shuffling (default: 0)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--threads", type=_threads_setting, default=None,
                   help="BLAS threads while training: auto (the default: measured, and one for small "
                        "products) or a number; SCRATCHVAE_THREADS sets the default")
    t.add_argument("--no-kernels", action="store_true",
                   help="train with the textbook alone, without the compiled twins of scratchvae.kernels "
                        "(default: they run where this backend has them, unless SCRATCHVAE_KERNELS=off)")

    for name, help_, func, default_n in (("sample", "decode random draws from the prior into an image grid", _sample, 64),
                                         ("reconstruct", "test images beside their reconstructions", _reconstruct, 10)):
        s = command(name, help_, func)
        s.add_argument("checkpoint", type=_user_path, help="a model.npz written by `scratchvae train`")
        s.add_argument("--n", type=positive_int, default=default_n, help=f"how many images (default: {default_n})")
        s.add_argument("--out", type=_out_path, default=None, help="figure to write: a file (.png unless it names another format such as .pdf) or a folder (default: beside the checkpoint)")
        s.add_argument("--seed", type=non_negative_int, default=0, help="seed of the draws (default: 0)")
        if name == "reconstruct":
            s.add_argument("--data-dir", type=_user_path, default=None, help=DATA_DIR_HELP)
        else:
            s.add_argument("--label", type=non_negative_int, default=None,
                           help="a conditional VAE: draw only this class (default: a row per class)")

    e = command("evaluate", "negative ELBO and importance-weighted log-likelihood from a checkpoint", _evaluate)
    e.add_argument("checkpoint", type=_user_path, help="a model.npz written by `scratchvae train`")
    e.add_argument("--k", type=positive_int, default=1000, help="importance samples per example (default: 1000)")
    e.add_argument("--samples", type=positive_int, default=10, help="samples per example for the ELBO (default: 10)")
    e.add_argument("--split", choices=["train", "val", "test"], default="test", help="which split (default: test)")
    e.add_argument("--seed", type=non_negative_int, default=0, help="seed of the Monte-Carlo draws (default: 0)")
    e.add_argument("--data-dir", type=_user_path, default=None, help=DATA_DIR_HELP)

    bn = command("bench", "time a training step here: per epoch, per phase, against the matmul floor", _bench)
    bn.add_argument("--workloads", nargs="+", default=["mnist", "digits"], choices=sorted(WORKLOADS),
                    help="what to time: mnist (784-400-20), digits (64-256-2) (default: both)")
    bn.add_argument("--batch-sizes", type=_batch_size, nargs="+", default=None,
                    help="batch sizes of the mnist workload (default: 128 1024)")
    bn.add_argument("--digits-batch-size", type=_batch_size, default=64,
                    help="batch size of the digits workload (default: 64)")
    bn.add_argument("--steps", type=positive_int, default=None,
                    help="steps per timed epoch (default: a whole epoch of 60,000 examples); figures are "
                         "scaled to 60,000 examples")
    bn.add_argument("--repeats", type=positive_int, default=5, help="timed epochs; the median is reported (default: 5)")
    bn.add_argument("--warmup", type=non_negative_int, default=20, help="untimed steps first (default: 20)")
    bn.add_argument("--threads", type=non_negative_int, default=2,
                    help="BLAS threads, 0 for the library's default (default: 2)")
    bn.add_argument("--no-kernels", action="store_true",
                    help="time the textbook alone, without the compiled twins of scratchvae.kernels")
    bn.add_argument("--retain-freed-memory", action="store_true",
                    help="glibc keeps freed memory for reuse (backend.retain_freed_memory), as `scratchvae train` does")
    bn.add_argument("--no-memory", action="store_true",
                    help="deprecated, does nothing: memory is measured by benchmarks/bench_vae.py")
    bn.add_argument("--json", type=_user_path, default=None, help="also write the figures to this JSON file")

    command("info", "version, backend and device, which path training runs, data cache folder", _info)

    return p


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    from .datasets import MNISTUnavailable
    from .training import TrainingDiverged

    try:
        return args.func(args)
    except (UserError, ValueError, checkpoint.CheckpointError, MNISTUnavailable, backend.BackendError,
            TrainingDiverged) as exc:
        message = " ".join(str(exc).split())  # one line, whatever the exception's layout
        print(f"scratchvae {args.command}: error: {message}", file=sys.stderr)
        return 2
    except OSError as exc:  # no such file, permission denied, is a directory, disk full, ...
        where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f)
        print(f"scratchvae {args.command}: error: {exc.strerror or exc}{': ' + where if where else ''}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        out = Path(args.out) if args.command == "train" else None
        how = (f"; continue with `scratchvae train --resume {_quote(out)}`"
               if out is not None and (out / "model.npz").is_file() and (out / "config.json").is_file() else "")
        print(f"scratchvae {args.command}: interrupted{how}", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
