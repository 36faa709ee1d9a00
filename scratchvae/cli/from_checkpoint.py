"""`scratchvae sample`, `reconstruct` and `evaluate`: a trained VAE, read from its checkpoint."""

from __future__ import annotations

import json
import math
from pathlib import Path

from .. import backend
from .common import (RUN_FILES, UserError, class_figure, holds_run, dataset_of, labels_of, latent_use, load_vae, reconstruction_figure,
                     writable)


MAX_SAMPLES = 1024  # a 32 x 32 grid: each 28 x 28 digit still gets its pixels on a page
MAX_RECONSTRUCTIONS = 100  # ten pairs of rows of ten, each row pair labelled


def figure_path(args, name: str) -> Path:
    """Where a figure goes: by default beside the checkpoint under ``name`` (never one of
    the files `scratchvae train` wrote); --out as given; in it if it is a folder; with
    .png added when it has no extension (matplotlib would add it, and we would print the
    wrong name). A train figure in a run folder is refused: it belongs to the run."""
    if not args.out:
        out = Path(args.checkpoint).with_name(name)
    else:
        out = Path(args.out)
        if out.is_dir():
            out = out / name
        elif not out.suffix:
            out = out.with_name(out.name + ".png")
        formats = figure_formats()
        if out.suffix[1:].lower() not in formats:
            raise UserError(f"--out {out}: matplotlib cannot write {out.suffix!r} files; end the name "
                            f"with one of {', '.join('.' + f for f in sorted(formats))}")
    if out.name in RUN_FILES and holds_run(out.parent):
        raise UserError(f"{out} was written by `scratchvae train` and belongs to that run; "
                        f"give --out another name (the default, {name}, leaves the run's files alone)")
    return out


def figure_formats() -> set:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    return set(FigureCanvasAgg(Figure()).get_supported_filetypes())


def sample(args) -> int:
    from .. import plotting

    model, data = load_vae(args)
    model.rng = backend.RNG(args.seed)
    shape = tuple(data["image_shape"]) if data and "image_shape" in data else dataset_of(data, args).image_shape
    if args.label is not None and model.n_classes is None:
        raise UserError(f"--label applies to a conditional VAE (`scratchvae train --conditional`); "
                        f"{args.checkpoint} holds an unconditional one: leave --label out")
    if args.label is not None and args.label >= model.n_classes:
        raise UserError(f"--label {args.label}: this VAE knows classes 0..{model.n_classes - 1}")
    label = "" if args.label is None else f"-label{args.label}"
    out = figure_path(args, f"samples{label}-seed{args.seed}-n{args.n}.png")
    writable(out.parent)  # made only now: a refused option leaves nothing behind
    nrow = math.ceil(args.n ** 0.5)
    if model.n_classes is not None and args.label is None:  # a row per class
        class_figure(model, shape, max(1, args.n // model.n_classes), out)
    else:
        plotting.image_grid(backend.to_numpy(model.sample(args.n, y=args.label)), shape, nrow=nrow,
                            title="samples from the prior" + (f", class {args.label}" if args.label is not None
                                                              else ""), path=out)
    print(f"wrote {out}")
    return 0


def reconstruct(args) -> int:
    model, data = load_vae(args)
    ds = dataset_of(data, args)
    if args.n > len(ds.x_test):
        raise UserError(f"--n {args.n}: the test set of {ds.name} holds {len(ds.x_test)} images; "
                        f"give --n {len(ds.x_test)} or fewer")
    out = figure_path(args, f"reconstructions-n{args.n}.png")
    writable(out.parent)  # made only now: a refused option leaves nothing behind
    reconstruction_figure(model, ds, out, n=args.n)
    print(f"wrote {out}")
    return 0


def evaluate(args) -> int:
    from ..training import Trainer

    model, data = load_vae(args)
    ds = dataset_of(data, args)
    x = getattr(ds, f"x_{args.split}")
    y = labels_of(model, ds, args.split)
    model.rng = backend.RNG(args.seed)
    ev = Trainer(model, None, progress=False).evaluate(x, n_samples=args.samples, y=y)
    nll = -model.log_likelihood(x, k=args.k, y=y)
    result = {"split": args.split, "n": int(len(x)), "neg_elbo": ev["neg_elbo"], "rec": ev["rec"],
              "kl": ev["kl"], "nll_iwae": nll, "k": args.k,
              "dtype": backend.current().dtype_name, **latent_use(model, x, y)}
    print(json.dumps(result, indent=2))
    return 0
