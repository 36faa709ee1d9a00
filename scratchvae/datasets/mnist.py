"""MNIST (LeCun, Cortes and Burges): 60,000 training and 10,000 test images of
handwritten digits, 28x28 grey levels 0..255, in four IDX files.

Where the files come from, in this order:

1. ``data_dir`` (an argument), else the environment variable ``SCRATCHVAE_DATA``, else
   the user cache folder (``pooch.os_cache("scratchvae")``, e.g. ~/.cache/scratchvae).
   A folder that already holds the four files (gzip-compressed or not, under their
   standard names) is used as it is: no network, which suits a classroom.
2. Otherwise each missing file is downloaded once into that folder with pooch, trying
   the mirrors in turn, and accepted only if its SHA-256 matches the published one.

With no network and no files, ``fetch`` fails within seconds (a short connect timeout,
and it stops at the first file that no mirror serves) with a message saying where to
put the files.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from .idx import read_idx

ENV_VAR = "SCRATCHVAE_DATA"
IMAGE_SHAPE = (28, 28)

MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",  # torchvision's mirror
    "https://storage.googleapis.com/cvdf-datasets/mnist/",  # TensorFlow's mirror
    "http://yann.lecun.com/exdb/mnist/",  # the original site
)

# file -> SHA-256 of the gzip file (md5 as published by torchvision in the comment)
SHA256 = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",  # md5 f68b3c2dcbeaaa9fbdd348bbdeb94873
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",  # md5 d53e105ee54ea40749a09fcbcd1e9432
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",  # md5 9fb629c4189551a2d022fa330f9573f3
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",  # md5 ec29112dd5afa0611ce80d1b7f02629c
}
FILES = {  # what each file holds -> its standard name
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}

# (connect, read) timeouts in seconds: fail fast where no host answers, but let a slow
# link stream (the read timeout bounds each silence, not the whole download)
TIMEOUT = (5.0, 30.0)


class MNISTUnavailable(RuntimeError):
    """MNIST is neither on disk nor downloadable; the message says how to get it.

    ``data_dir`` (the folder looked in) and ``reason`` (one short phrase: why the download
    failed) let a command line say the same in one line, with its own option names."""

    def __init__(self, message: str, data_dir=None, reason: str | None = None):
        super().__init__(message)
        self.data_dir, self.reason = data_dir, reason


def default_data_dir() -> Path:
    """The folder MNIST lives in when no ``data_dir`` is given:
    ``$SCRATCHVAE_DATA`` if set, else the user cache folder for scratchvae."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    try:
        import pooch
    except ImportError:
        return Path("~/.cache/scratchvae").expanduser()
    return Path(pooch.os_cache("scratchvae"))


def _local_names(gz_name: str) -> list[str]:
    """Names a file may carry on disk: "train-images-idx3-ubyte.gz", the same
    uncompressed, and the dotted form some mirrors use ("train-images.idx3-ubyte")."""
    plain = gz_name[: -len(".gz")]
    dotted = plain.replace("-idx", ".idx")
    return [gz_name, plain, dotted, dotted + ".gz"]


def find_local(data_dir) -> dict[str, Path | None]:
    """The four MNIST files found in ``data_dir`` (None for those missing)."""
    found = {}
    for key, gz_name in FILES.items():
        hits = [Path(data_dir) / n for n in _local_names(gz_name)]
        found[key] = next((p for p in hits if p.is_file()), None)
    return found


def _howto(data_dir: Path, mirrors) -> str:
    return (
        f"To fix, either: (1) connect to the internet and run again (the files are kept in "
        f"{data_dir}); or (2) download the four files {', '.join(FILES.values())} by hand "
        f"from one of {', '.join(mirrors or MIRRORS)} and put them, gzip-compressed or "
        f"not, in {data_dir} (choose the folder with data_dir=... or the environment "
        f"variable {ENV_VAR}); or (3) use the embedded data set 'digits', which needs no network."
    )


def _short(text: str, n: int = 240) -> str:
    """Long network errors keep their start (the host) and their end (the cause)."""
    return text if len(text) <= n else text[: n // 3] + " ... " + text[-(2 * n) // 3:]


def fetch(data_dir=None, mirrors=None, timeout=TIMEOUT) -> dict[str, Path]:
    """Make sure the four MNIST files are in ``data_dir``, downloading what is missing.

    Inputs:
    - data_dir: folder to read from and download into; None for ``default_data_dir()``.
    - mirrors: base URLs tried in order for each missing file (ending in "/"); None
      for the module's ``MIRRORS``.
    - timeout: (connect, read) seconds for each request.

    Returns:
    - dict with keys "train_images", "train_labels", "test_images", "test_labels" ->
      path of each file.

    Raises MNISTUnavailable, quickly, when a missing file cannot be downloaded.
    """
    data_dir = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    if data_dir.exists() and not data_dir.is_dir():
        raise MNISTUnavailable(f"{data_dir} is a file, not a folder; pass the folder that holds (or is to receive) "
                               f"the four MNIST files", data_dir=data_dir, reason="it is a file, not a folder")
    if mirrors is None:
        mirrors = MIRRORS
    mirrors = (mirrors,) if isinstance(mirrors, str) else tuple(mirrors)  # one URL, not its letters
    paths = find_local(data_dir)
    missing = [k for k in FILES if paths[k] is None]
    if not missing:
        return paths
    try:
        import pooch
    except ImportError:
        raise MNISTUnavailable(
            f"MNIST is not in {data_dir} and downloading it needs the package pooch: "
            f"`pip install pooch`. {_howto(data_dir, mirrors)}"
        ) from None
    pooch.get_logger().setLevel("WARNING")  # our own message says what happened
    downloader = pooch.HTTPDownloader(timeout=timeout, progressbar=False)
    created = _first_missing(data_dir)  # pooch makes the folder before it downloads
    try:
        _download(missing, paths, data_dir, mirrors, downloader, pooch)
    except MNISTUnavailable:
        if created is not None and not any(p.is_file() for p in created.rglob("*")):
            shutil.rmtree(created, ignore_errors=True)  # nothing cached: nothing made (not even under HOME)
        raise
    return paths


def _first_missing(folder: Path) -> Path | None:
    """The outermost folder of ``folder``'s path that does not exist yet (None if it does)."""
    missing = None
    for p in (folder, *folder.parents):
        if p.exists():
            break
        missing = p
    return missing


def _download(missing, paths, data_dir: Path, mirrors, downloader, pooch) -> None:
    """Download each missing file into ``data_dir``, trying the mirrors in turn; fills ``paths``."""
    order = list(mirrors)
    for key in missing:
        gz_name = FILES[key]
        errors = []
        for base in order:
            try:
                got = pooch.retrieve(base + gz_name, known_hash="sha256:" + SHA256[gz_name],
                                     fname=gz_name, path=data_dir, downloader=downloader)
            except Exception as exc:  # no route, DNS, HTTP error, timeout, checksum mismatch
                why = str(exc) if isinstance(exc, ValueError) else _short(str(exc))  # keep checksums whole
                errors.append(f"  {base + gz_name}: {type(exc).__name__}: {why}")
                continue
            paths[key] = Path(got)
            order.remove(base)
            order.insert(0, base)  # the mirror that worked goes first for the next file
            break
        else:  # stop at the first file no mirror serves: fail fast, do not try the others
            kinds = sorted({e.split(": ")[1] for e in errors})
            raise MNISTUnavailable(
                f"MNIST file {gz_name} is not in {data_dir} and could not be downloaded:\n"
                + "\n".join(errors) + "\n" + _howto(data_dir, mirrors),
                data_dir=data_dir, reason=f"no mirror served it ({', '.join(kinds)})",
            )


def _check(a: np.ndarray, path: Path, ndim: int, what: str) -> np.ndarray:
    if a.ndim != ndim or a.dtype != np.uint8:
        raise ValueError(
            f"{path} should hold MNIST {what} (uint8, {ndim}-D) but holds {a.dtype} of shape "
            f"{a.shape}; check that the four files are the right ones"
        )
    if len(a) == 0:
        raise ValueError(f"{path} is a valid IDX file but holds no MNIST {what} (0 entries); "
                         "replace it with the real file (delete it and it is downloaded again)")
    return a


def read_mnist(data_dir=None, mirrors=None, timeout=TIMEOUT):
    """MNIST as uint8 arrays, fetched first if needed (see ``fetch``).

    Returns:
    - x_train: (N_train, 784) uint8 grey levels 0..255 (60,000 rows for the real files)
    - y_train: (N_train,) int64 labels 0..9
    - x_test:  (N_test, 784) uint8 (10,000 rows)
    - y_test:  (N_test,) int64
    """
    paths = fetch(data_dir, mirrors=mirrors, timeout=timeout)
    out = []
    for part in ("train", "test"):
        images = _check(read_idx(paths[f"{part}_images"]), paths[f"{part}_images"], 3, "images")
        labels = _check(read_idx(paths[f"{part}_labels"]), paths[f"{part}_labels"], 1, "labels")
        if images.shape[1:] != IMAGE_SHAPE:
            raise ValueError(f"{paths[f'{part}_images']} holds images of shape {images.shape[1:]}, "
                             f"expected {IMAGE_SHAPE} for MNIST")
        if len(images) != len(labels):
            raise ValueError(f"{paths[f'{part}_images']} holds {len(images)} images but "
                             f"{paths[f'{part}_labels']} holds {len(labels)} labels; they must match")
        if labels.size and labels.max() > 9:
            raise ValueError(f"{paths[f'{part}_labels']} holds labels up to {labels.max()}, expected 0..9")
        out += [images.reshape(len(images), -1), labels.astype(np.int64)]
    return tuple(out)


__all__ = ["ENV_VAR", "FILES", "IMAGE_SHAPE", "MIRRORS", "MNISTUnavailable", "SHA256", "TIMEOUT",
           "default_data_dir", "fetch", "find_local", "read_mnist"]
