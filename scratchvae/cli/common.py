"""What the commands share: the one-line error, atomic writes, the checks of an output
folder, a VAE and its data set from a checkpoint, the figures train and the
checkpoint commands both draw."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .. import backend, checkpoint, datasets, kernels


RUN_FILES = ("model.npz", "config.json", "history.csv", "metrics.json", "curves.png", "reconstructions.png",
             "samples.png", "latent.png", "manifold.png")  # what `scratchvae train` writes into a run folder


def holds_run(folder: Path) -> bool:
    """Whether ``folder`` holds a run of `scratchvae train` (its checkpoint and config.json)."""
    return (folder / "model.npz").is_file() and (folder / "config.json").is_file()


class UserError(Exception):
    """A mistake the user can fix; printed as one line."""


def quote(path) -> str:
    import shlex

    return shlex.quote(str(path))


def writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".scratchvae-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write to {folder}: {exc.strerror}; choose another folder with --out") from None


def write_atomic(path: Path, text: str) -> None:
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


def labels_of(model, ds, split: str):
    """The labels of a split for a conditional model, None for a VAE."""
    return getattr(ds, f"y_{split}") if model.n_classes is not None else None


def latent_use(model, x, y) -> dict:
    """Active units (Burda et al.) and the KL per latent dimension, on x."""
    from ..models import active_units, kl_per_dimension

    count, activity = active_units(model, x, y=y)
    return {"active_units": count, "activity": [float(a) for a in backend.to_numpy(activity)],
            "kl_per_dim": [float(a) for a in backend.to_numpy(kl_per_dimension(model, x, y=y))]}


def class_figure(model, image_shape, per_class: int, path) -> None:
    """A conditional VAE's samples, a row of per_class for each class (model.rng draws)."""
    from .. import plotting

    C = model.n_classes
    drawn = backend.to_numpy(model.sample(C * per_class, y=np.repeat(np.arange(C), per_class)))
    plotting.samples_by_class(drawn.reshape(C, per_class, -1), image_shape, path=path,
                              title="samples E[x | z, y], z ~ N(0, I), a row per class y")


def reconstruction_figure(model, ds, path, n: int = 10) -> None:
    from .. import plotting

    x = ds.x_test[:n]
    y = None if model.n_classes is None else ds.y_test[:n]
    plotting.reconstructions(x, backend.to_numpy(model.reconstruct(backend.asarray(x), y=y)), ds.image_shape,
                             n=n, path=path)


DTYPE_ENV = "SCRATCHVAE_DTYPE"
# the variables the README documents for the command; train records them in config.json
ENVIRONMENT = ("SCRATCHVAE_BACKEND", DTYPE_ENV, "SCRATCHVAE_THREADS", "SCRATCHVAE_KERNELS", "SCRATCHVAE_DATA")


def chosen_dtype(args) -> str | None:
    """The dtype asked for: --dtype, else $SCRATCHVAE_DTYPE, else None (the command's own
    default)."""
    return args.dtype if args.dtype is not None else dtype_from_env()


def dtype_from_env() -> str | None:
    """$SCRATCHVAE_DTYPE, or None where it is unset; a value that is not a dtype is refused
    here, in one line, by every command."""
    value = os.environ.get(DTYPE_ENV, "").strip().lower()
    if not value:
        return None
    if value not in backend.DTYPES:
        raise UserError(f"{DTYPE_ENV}={os.environ[DTYPE_ENV]!r} is not a dtype scratchvae computes in: "
                        f"set it to {' or '.join(backend.DTYPES)}, or unset it")
    return value


def load_vae(args):
    """The VAE in args.checkpoint, on the backend asked for, in the dtype asked for (--dtype
    or $SCRATCHVAE_DTYPE), else in the dtype it was saved in; (model, its data record)."""
    from ..models import VAE

    asked = chosen_dtype(args)  # a bad variable is named before a bad path
    ck = checkpoint.read(args.checkpoint)
    saved = {str(a.dtype) for a in ck["params"].values()}
    dtype = asked or (saved.pop() if len(saved) == 1 and saved <= set(backend.DTYPES) else "float32")
    backend.use(args.backend, dtype=dtype)
    model = checkpoint.model_from(ck, args.checkpoint, expect=VAE)
    extra = ck["meta"].get("extra")
    return model, extra.get("data") if isinstance(extra, dict) else None


def dataset_of(data, args):
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


def training_path(b) -> str:
    """Which path ``Trainer`` (and ``scratchvae train``) runs on backend ``b``, and why."""
    if b.name not in ("numpy", "cupy"):
        return f"the textbook (the compiled twins walk NumPy and CuPy arrays, not {b.name}'s)"
    what = kernels.status()[b.name]
    if not kernels.enabled():
        return "the textbook (SCRATCHVAE_KERNELS=off)"
    if what.startswith("the textbook"):
        return f"the textbook ({what.split(': ', 1)[-1]})"
    return f"the compiled twins ({what}); --no-kernels or SCRATCHVAE_KERNELS=off gives the textbook"
