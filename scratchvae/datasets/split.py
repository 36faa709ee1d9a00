"""From arrays to a ``Dataset``: a seeded train/validation/test split, checks on the
values, and Bernoulli binarization (fixed once, or drawn afresh every epoch).

Binarization treats a grey level as a probability: b = 1[u < x] with u ~ U(0, 1), so
b ~ Bernoulli(x) and E[b] = x. "fixed" draws once with a seed (one binary data set);
calling ``binarize(x, rng)`` every epoch instead gives the "dynamic" binarization of
Burda, Grosse and Salakhutdinov's IWAE paper (2016), which overfits less.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import backend


@dataclass(frozen=True, repr=False, eq=False)
class Dataset:
    """A data set split three ways; host-side NumPy arrays.

    - x_train: (N_train, D), x_val: (N_val, D), x_test: (N_test, D): float32 in [0, 1],
      one flattened image per row (D = H * W).
    - y_train, y_val, y_test: (N_*,) int64 class labels in 0 .. n_classes - 1.
    - image_shape: (H, W), e.g. (8, 8) or (28, 28); reshape a row with x.reshape(H, W).
    - name: e.g. "digits"; n_classes: number of label values (10 for digits).
    - binarized: None, or "fixed" when x holds one Bernoulli draw (0.0 or 1.0).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    image_shape: tuple[int, int]
    n_classes: int
    binarized: str | None = None

    @property
    def n_features(self) -> int:
        """D, the length of one row (pixels per image)."""
        return int(self.x_train.shape[1])

    def __repr__(self) -> str:
        sizes = f"train={len(self.x_train)}, val={len(self.x_val)}, test={len(self.x_test)}"
        extra = f", binarized={self.binarized!r}" if self.binarized else ""
        return (f"Dataset({self.name!r}, {sizes}, image_shape={self.image_shape}, "
                f"n_classes={self.n_classes}{extra})")


def split_indices(n: int, n_val: int, n_test: int, seed: int = 0):
    """A deterministic split of range(n) into train, validation and test indices.

    One permutation from ``numpy.random.default_rng(seed)``: its first n_test entries are
    the test set, the next n_val the validation set, the rest the training set; each part
    is sorted, so it keeps the original order of the rows.

    Returns:
    - (train, val, test): int64 index arrays of lengths n - n_val - n_test, n_val, n_test.
    """
    if n_val < 0 or n_test < 0 or n_val + n_test >= n:
        raise ValueError(
            f"cannot split {n} examples into {n_val} validation and {n_test} test examples "
            "and keep at least one for training; ask for smaller parts"
        )
    perm = np.random.default_rng(seed).permutation(n)
    test, val, train = perm[:n_test], perm[n_test:n_test + n_val], perm[n_test + n_val:]
    return np.sort(train), np.sort(val), np.sort(test)


def check_images(x: np.ndarray, name: str) -> None:
    """Raise ValueError unless x is a 2-D float array with no NaN and values in [0, 1]."""
    if x.ndim != 2:
        raise ValueError(f"{name} must have shape (N, D), one flattened image per row; got {x.shape}")
    if not np.all(np.isfinite(x)):
        n_bad = int(np.sum(~np.isfinite(x)))
        raise ValueError(f"{name} contains {n_bad} NaN or infinite value(s); the data is damaged")
    if x.size and (x.min() < 0.0 or x.max() > 1.0):
        raise ValueError(
            f"{name} must lie in [0, 1] but runs from {float(x.min()):g} to {float(x.max()):g}; "
            "scale the pixels (e.g. divide 8-bit images by 255)"
        )


def binarize(x, rng):
    """One Bernoulli draw per pixel: b = 1[u < x], u ~ U(0, 1), so P(b = 1) = x.

    Call it once for a fixed binarization, or on every epoch for dynamic binarization.

    Inputs:
    - x: (N, D) grey levels in [0, 1]: a host NumPy array (checked), or an array of any
      backend (NumPy, CuPy, array-api-strict; not checked, to avoid a device sync), which
      stays on its device.
    - rng: a ``scratchvae.backend.RNG``, a ``numpy.random.Generator`` or an int seed.
      The uniforms come from its host generator, so one seed gives the same bits on
      every backend.

    Returns:
    - b: same shape, namespace, device and floating dtype as x (float32 for a host
      integer input), values exactly 0.0 or 1.0.
    """
    if isinstance(rng, backend.RNG):
        gen = rng.host
    elif isinstance(rng, np.random.Generator):
        gen = rng
    elif isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        gen = np.random.default_rng(int(rng))
    else:
        raise TypeError(
            f"rng must be a scratchvae.backend.RNG, a numpy.random.Generator or an int seed, "
            f"got {type(rng).__name__}"
        )
    # float32 uniforms, compared the same way on the host and on a device: same bits
    u = gen.random(size=tuple(x.shape), dtype=np.float32)
    if isinstance(x, np.ndarray):
        # a host check is cheap; on a device it would sync. Written so that NaN fails it:
        # NaN < 0 and NaN > 1 are both False, so a min/max test would let NaN through
        if not np.all((x >= 0) & (x <= 1)):
            if not np.all(np.isfinite(x)):
                raise ValueError(f"binarize got {int(np.sum(~np.isfinite(x)))} NaN or infinite value(s); "
                                 "the data is damaged")
            raise ValueError(
                f"binarize needs grey levels in [0, 1] (they are probabilities), got values from "
                f"{x.min()} to {x.max()}; scale first (e.g. divide 8-bit images by 255)"
            )
        dtype = x.dtype if x.dtype.kind == "f" else np.float32
        return (u < x).astype(dtype)
    xp = backend.namespace(x)
    u = xp.asarray(u, dtype=xp.float32, device=x.device)  # one host -> device copy
    return xp.astype(u < x, x.dtype)  # the comparison runs on x's device


def make_dataset(name: str, x: np.ndarray, y: np.ndarray, image_shape, n_classes: int,
                 n_val: int, n_test: int, seed: int = 0, binarize_mode: str | None = None,
                 x_test: np.ndarray | None = None, y_test: np.ndarray | None = None) -> Dataset:
    """Split (x, y) with ``split_indices(len(x), n_val, n_test, seed)`` into a Dataset.

    Inputs:
    - x: (N, D) floats in [0, 1]; y: (N,) integer labels.
    - image_shape: (H, W) with H * W = D; n_classes: number of labels.
    - n_val, n_test: sizes of the held-out parts. When x_test and y_test are given (an
      official test set, as for MNIST), n_test must be 0 and they become the test part.
    - binarize_mode: None or "fixed" (one Bernoulli draw of every split, seeded by
      ``seed``, from a generator independent of the one that splits).

    Returns:
    - a Dataset with float32 x and int64 y, checked: values in [0, 1], no NaN.
    """
    if binarize_mode not in (None, "fixed"):
        raise ValueError(
            f"binarize must be None or 'fixed', got {binarize_mode!r}; for dynamic "
            "binarization load with binarize=None and call datasets.binarize(x, rng) every epoch"
        )
    H, W = image_shape
    if x.ndim != 2 or x.shape[1] != H * W:
        raise ValueError(f"{name}: x must have shape (N, {H * W}) for images {image_shape}, got {x.shape}")
    if len(y) != len(x):
        raise ValueError(f"{name}: {len(x)} images but {len(y)} labels; they must match")
    train, val, test = split_indices(len(x), n_val, n_test, seed)
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    parts = [x[train], y[train], x[val], y[val], x[test], y[test]]
    if x_test is not None:
        if n_test != 0 or y_test is None:
            raise ValueError("give an official test set as x_test and y_test together, with n_test=0")
        if len(y_test) != len(x_test):
            raise ValueError(f"{name}: {len(x_test)} test images but {len(y_test)} test labels")
        parts[4] = np.asarray(x_test, dtype=np.float32)
        parts[5] = np.asarray(y_test, dtype=np.int64)
    for i, part in zip((0, 2, 4), ("x_train", "x_val", "x_test")):
        check_images(parts[i], f"{name} {part}")  # before binarizing, which would hide damage
        if parts[i].shape[1:] != (H * W,):
            raise ValueError(f"{name} {part} has shape {parts[i].shape}, expected (N, {H * W})")
    if binarize_mode == "fixed":
        gen = np.random.default_rng([seed, 1])  # its own stream, apart from the split's
        for i in (0, 2, 4):
            parts[i] = binarize(parts[i], gen)
    return Dataset(name, *parts, image_shape=(int(H), int(W)), n_classes=int(n_classes),
                   binarized=binarize_mode)


__all__ = ["Dataset", "binarize", "check_images", "make_dataset", "split_indices"]
