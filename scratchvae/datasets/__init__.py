"""Data sets, host-side (NumPy): what the models train on.

>>> from scratchvae import datasets
>>> ds = datasets.load("digits", split_seed=0)      # embedded, no network
>>> ds.x_train.shape, ds.image_shape                # ((1297, 64), (8, 8))
>>> ds = datasets.load("mnist")                     # downloaded once, then cached

Image sets (``load``): "digits" (8x8, 1797 images, embedded; split 1297/250/250) and
"mnist" (28x28; 50,000/10,000 train/validation from the 60,000 training images, the
official 10,000 test images). Pixels are float32 in [0, 1], one flattened image per row.

Modules, one idea each:
- ``split``      the Dataset record, the seeded split, value checks, ``binarize``
- ``digits``     the embedded 8x8 digits
- ``mnist``      MNIST download (pooch, checksums, mirrors) and cache
- ``idx``        the IDX file format (MNIST's)
- ``synthetic``  Gaussian mixture, low-rank linear-Gaussian, noisy arc, two moons
"""

from __future__ import annotations

import numbers

from . import digits, idx, mnist, split, synthetic
from .idx import read_idx, write_idx
from .mnist import MNISTUnavailable
from .split import Dataset, binarize, check_images, make_dataset, split_indices
from .synthetic import gaussian_mixture, low_rank, noisy_arc, two_moons

_NAMES = ("digits", "mnist")


def available() -> tuple[str, ...]:
    """Names ``load`` accepts: ("digits", "mnist")."""
    return _NAMES


def load(name: str, split_seed: int = 0, binarize: str | None = None, data_dir=None) -> Dataset:
    """Load an image data set, split into train / validation / test.

    Inputs:
    - name: one of ``available()``: "digits" or "mnist".
    - split_seed: seed of the train/validation(/test) split; the same seed gives the
      same split on every machine.
    - binarize: None (grey levels) or "fixed" (one Bernoulli draw per pixel, seeded by
      split_seed). For dynamic binarization keep None and call ``binarize(x, rng)``
      every epoch.
    - data_dir: MNIST only: folder holding (or to receive) the four IDX files; default
      ``$SCRATCHVAE_DATA`` or the user cache folder.

    Returns:
    - Dataset with x_* (N, D) float32 in [0, 1], y_* (N,) int64, image_shape, name,
      n_classes.

    Raises ValueError for an unknown name, MNISTUnavailable when MNIST is neither on
    disk nor downloadable (the message says what to do).
    """
    if isinstance(split_seed, bool) or not isinstance(split_seed, numbers.Integral) or split_seed < 0:
        raise ValueError(f"split_seed must be a non-negative integer (the same seed gives the "
                         f"same split every time), got {split_seed!r}")
    key = str(name).strip().lower()
    if key == "digits":
        x, y = digits.read_digits()
        x = x.astype("float32") / digits.MAX_COUNT  # counts 0..16 -> [0, 1]
        return make_dataset("digits", x, y, digits.IMAGE_SHAPE, 10, n_val=250, n_test=250,
                            seed=split_seed, binarize_mode=binarize)
    if key == "mnist":
        x_train, y_train, x_test, y_test = mnist.read_mnist(data_dir)
        # 1/6 of the training images (10,000 of 60,000) become the validation set
        return make_dataset("mnist", x_train.astype("float32") / 255.0, y_train,
                            mnist.IMAGE_SHAPE, 10, n_val=len(x_train) // 6, n_test=0,
                            seed=split_seed, binarize_mode=binarize,
                            x_test=x_test.astype("float32") / 255.0, y_test=y_test)
    raise ValueError(
        f"unknown data set {name!r}: choose one of {', '.join(map(repr, _NAMES))} "
        "(synthetic sets are functions: datasets.gaussian_mixture, low_rank, noisy_arc, two_moons)"
    )


__all__ = [
    "Dataset", "MNISTUnavailable", "available", "binarize", "check_images", "digits",
    "gaussian_mixture", "idx", "load", "low_rank", "make_dataset", "mnist", "noisy_arc",
    "read_idx", "split", "split_indices", "synthetic", "two_moons", "write_idx",
]
