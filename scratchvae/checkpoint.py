"""Checkpoints: one ``.npz`` file, written atomically, read without pickle.

Layout (every entry a plain array; no Python objects):

    "format"            the string "scratchvae-checkpoint-1"
    "meta"              a JSON string: model class and config, optimizer class and
                        hyper-parameters, RNG states, user extras (epoch, history, ...)
    "param/<name>"      model parameters, by their flat names
    "optim/<key>"       optimizer state ("m/enc.fc1.W", ...)
    "series/<key>"      per-epoch series (a Trainer's history): one number per epoch, as
                        binary arrays, not JSON (at 100,000 epochs JSON text was 66 MB)

Writing goes to a temporary file in the same folder, then ``os.replace`` renames it over
the target: a crash mid-write leaves the previous checkpoint intact. The file gets the
mode any new file would (0666 less the umask), not the temporary file's private 0600, so
another user can read a run where the folder allows it. Reading uses
``numpy.load(allow_pickle=False)`` and checks the format marker, so a truncated or
foreign file is refused with a message instead of a traceback (or worse, code execution).
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from . import backend
from .model import Model

FORMAT = "scratchvae-checkpoint-1"


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, foreign or does not match the model."""


def save(path, model, optimizer=None, rngs: dict | None = None, extra: dict | None = None,
         series: dict | None = None) -> Path:
    """Write ``model`` (and optionally its optimizer, named RNGs, JSON-able extras, and
    ``series``: named lists of numbers, such as a history, stored as arrays).

    The model's own ``model.rng`` state is always stored. Returns the path written.
    """
    path = Path(path)
    rngs = {"model": model.rng, **(rngs or {})}
    meta = {
        "model_class": type(model).__name__,
        "config": model.config,
        "rng_states": {k: r.get_state() for k, r in rngs.items()},
        "extra": extra or {},
    }
    arrays = {f"param/{k}": backend.to_numpy(v) for k, v in model.params.items()}
    if optimizer is not None:
        state = optimizer.state_dict()
        meta["optimizer"] = {"class": type(optimizer).__name__,
                             **{k: v for k, v in state.items() if "/" not in k},
                             "hyper": _hyper(optimizer)}
        arrays.update({f"optim/{k}": backend.to_numpy(v) for k, v in state.items() if "/" in k})
    for k, values in (series or {}).items():
        arrays[f"series/{k}"] = _series_array(k, values)
    arrays["format"] = np.array(FORMAT)
    arrays["meta"] = np.array(json.dumps(meta))
    folder = path.parent if str(path.parent) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise CheckpointError(f"cannot write a checkpoint in {folder}: {exc.strerror}; choose a writable folder") from None
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp made it 0600: give it a plain file's mode
        os.replace(tmp, path)  # atomic on POSIX and Windows
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def check_target(path, name: str = "path") -> None:
    """Raise CheckpointError unless ``path`` names a file a checkpoint can be written to:
    not a folder, in a folder that is writable or can be made (``save`` makes it). For a
    caller that writes later (the Trainer, after its first epoch) to fail now."""
    if not isinstance(path, (str, os.PathLike)) or str(path) == "":
        raise CheckpointError(f"{name} must be a file path such as 'run/model.npz' "
                              f"(or None for no checkpoints), got {path!r}")
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{name} {path} is a folder; pass a file path such as {path / 'model.npz'}")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:  # the nearest folder that exists
        folder = folder.parent
    if not folder.is_dir():
        raise CheckpointError(f"{name} {path} lies under {folder}, which is a file, not a folder; "
                              "pass a path in a folder")
    try:
        if folder == path.parent:
            tempfile.TemporaryFile(dir=folder).close()  # the one sure test: make a file there, then drop it
        elif not os.access(folder, os.W_OK | os.X_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as exc:
        raise CheckpointError(f"{name} {path} cannot be written: {folder} is not writable "
                              f"({exc.strerror}); choose a writable folder") from None


def _series_array(name: str, values) -> np.ndarray:
    """A list of numbers as an array that gives the same list back: int64 where every
    entry is an int, else float64 (None as NaN)."""
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return np.array(values, dtype=np.int64).reshape(-1)
    try:
        return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"series {name!r} must hold numbers, one per epoch; got {values[:3]!r}...") from None


def _umask() -> int:
    """The process's umask (os.umask can only read it by setting it: set, then put back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _hyper(optimizer) -> dict:
    keys = ("lr", "momentum", "b1", "b2", "eps")
    return {k: getattr(optimizer, k) for k in keys if hasattr(optimizer, k)}


def read(path) -> dict:
    """Read a checkpoint into host data: {"meta": dict, "params": {...}, "optim": {...},
    "series": {name: list}}."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}; train first (`scratchvae train --out DIR`) or check the path")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; pass the checkpoint in it, e.g. {path / 'model.npz'}")
    with open(path, "rb") as f:
        if f.read(2) != b"PK":  # every .npz is a zip archive; np.load would try pickle next
            raise CheckpointError(f"{path} is not a scratchvae checkpoint (not an .npz archive); "
                                  "pass a file written by scratchvae")
    try:
        with np.load(path, allow_pickle=False) as f:
            files = set(f.files)
            if "format" not in files or "meta" not in files or str(f["format"]) != FORMAT:
                raise CheckpointError(
                    f"{path} is not a scratchvae checkpoint (no '{FORMAT}' marker); "
                    "pass a file written by scratchvae"
                )
            meta = json.loads(str(f["meta"]))
            if not isinstance(meta, dict):
                raise CheckpointError(f"{path} is damaged: its meta record is a JSON {type(meta).__name__}, "
                                      "not an object; use an earlier checkpoint or train again")
            params = {k[len("param/"):]: f[k] for k in f.files if k.startswith("param/")}
            optim = {k[len("optim/"):]: f[k] for k in f.files if k.startswith("optim/")}
            series = {k[len("series/"):]: f[k].tolist() for k in f.files if k.startswith("series/")}
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
        raise CheckpointError(
            f"{path} is damaged or truncated and cannot be read ({type(exc).__name__}: {exc}); "
            "use an earlier checkpoint or train again"
        ) from None
    return {"meta": meta, "params": params, "optim": optim, "series": series}


def restore_params(model, params: dict, path="checkpoint") -> None:
    """Copy host arrays into the model's parameters, in place, checking names and shapes."""
    own = model.params
    if set(own) != set(params):
        diff = sorted(set(own) ^ set(params))
        raise CheckpointError(f"{path} does not match this model: parameters differ ({diff[:6]})")
    for k, p in own.items():  # every check before the first copy: an error leaves the model as it was
        if params[k].dtype.kind not in "fiu":
            raise CheckpointError(f"{path} is damaged: parameter {k!r} holds {params[k].dtype} data, not numbers")
        if tuple(p.shape) != tuple(params[k].shape):
            raise CheckpointError(
                f"{path} does not match this model: {k!r} has shape {params[k].shape}, model has {tuple(p.shape)}"
            )
        if not np.isfinite(params[k]).all():
            raise CheckpointError(f"{path} holds NaN or infinite values in {k!r}: the model it was saved "
                                  "from had diverged; use an earlier checkpoint or train again")
    xp = backend.current().xp
    for k, p in own.items():
        p[...] = xp.astype(backend.asarray(params[k]), p.dtype)


def load_model(path, expect=None):
    """Rebuild the model stored in ``path`` (on the current backend) with its parameters
    and its RNG state. ``expect``: a class the model must be."""
    return model_from(read(path), path, expect)


def model_from(ck: dict, path="checkpoint", expect=None):
    """load_model for a checkpoint already read with ``read`` (``path`` names it in errors)."""
    meta = ck["meta"]
    cls = Model.registry.get(str(meta.get("model_class")))  # str: an edited file may hold a list here
    if cls is None or (expect is not None and cls is not expect):
        want = expect.__name__ if expect is not None else "a scratchvae model"
        raise CheckpointError(f"{path} holds a {meta.get('model_class')!r}, not {want}")
    config = meta.get("config")
    try:
        model = cls(**config)
    except (TypeError, ValueError) as exc:  # not a dict, an unknown key, a bad value
        raise CheckpointError(f"{path} holds a model config that {cls.__name__} does not accept: {exc}") from None
    restore_params(model, ck["params"], path)
    rng_states = meta.get("rng_states")
    if not isinstance(rng_states, dict) or "model" not in rng_states:
        raise CheckpointError(f"{path} is damaged: it holds no RNG state for the model")
    try:
        model.rng.set_state(rng_states["model"])
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{path} is damaged: its RNG state cannot be restored ({exc})") from None
    return model


def restore_optimizer(optimizer, ck: dict, path="this checkpoint") -> None:
    """Put the optimizer state of a read checkpoint back into ``optimizer``."""
    info = ck["meta"].get("optimizer")
    if info is None:
        raise CheckpointError(f"{path} holds no optimizer state (it was saved without one); "
                              "it cannot resume training, but load_model can load its model")
    if info["class"] != type(optimizer).__name__:
        raise CheckpointError(f"the optimizer in {path} is {info['class']}, not "
                              f"{type(optimizer).__name__}; pass a fresh {info['class']} to resume")
    try:
        defaults = type(optimizer)()  # what a fresh optimizer of this class holds
    except TypeError:  # a class with required arguments: every setting must match
        defaults = None
    for k, v in info["hyper"].items():  # a setting chosen on purpose is not dropped silently
        given = getattr(optimizer, k, v)
        if given != v and (defaults is None or given != getattr(defaults, k, given)):
            raise CheckpointError(
                f"{path} was trained with {k}={v!r}, but the {info['class']} passed has {k}={given!r}; "
                f"resuming continues the run exactly: pass a fresh {info['class']}(), then set "
                f"trainer.optimizer.{k} = {given!r} to change it on purpose")
    for k, v in info["hyper"].items():
        setattr(optimizer, k, v)
    optimizer.load_state_dict({"t": info["t"], "lr": info["lr"], **ck["optim"]})
