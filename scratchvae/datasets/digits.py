"""The 8x8 handwritten digits that ship with scikit-learn, embedded in this package.

1797 images of the digits 0-9 (about 180 of each), 8x8 pixels, each pixel a count 0..16
of "on" pixels in a 4x4 block of a 32x32 bitmap (UCI "Optical Recognition of
Handwritten Digits", test part; E. Alpaydin and C. Kaynak, 1998). The file
``scratchvae/data/digits.csv.gz`` is scikit-learn's ``sklearn/datasets/data/digits.csv.gz``
copied byte for byte (BSD-3-Clause; see ``scratchvae/data/README.md``), so scikit-learn is
not needed at run time. Each row holds 64 pixels, then the label.
"""

from __future__ import annotations

import gzip
from importlib import resources

import numpy as np

N_IMAGES = 1797
IMAGE_SHAPE = (8, 8)
MAX_COUNT = 16  # pixels are counts 0..16: divide by 16 to reach [0, 1]


def read_digits() -> tuple[np.ndarray, np.ndarray]:
    """The raw digits as stored.

    Returns:
    - x: (1797, 64) uint8 pixel counts in 0..16, rows are 8x8 images in row-major order.
    - y: (1797,) int64 labels in 0..9.
    """
    src = resources.files("scratchvae") / "data" / "digits.csv.gz"
    with src.open("rb") as f, gzip.open(f, "rt") as text:
        table = np.loadtxt(text, delimiter=",", dtype=np.int64)
    if table.shape != (N_IMAGES, 65):
        raise RuntimeError(
            f"the embedded digits file {src} has shape {table.shape}, expected ({N_IMAGES}, 65); "
            "the package installation is damaged: reinstall scratchvae"
        )
    return table[:, :64].astype(np.uint8), table[:, 64]


__all__ = ["IMAGE_SHAPE", "MAX_COUNT", "N_IMAGES", "read_digits"]
