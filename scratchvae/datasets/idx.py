"""The IDX file format of MNIST: read and write, with errors that name the file.

Layout (all integers big-endian), as published with MNIST (LeCun et al.):

    bytes 0-1   0x00 0x00                 (magic, first half: always zero)
    byte  2     dtype code                (0x08 uint8, 0x09 int8, 0x0B int16,
                                           0x0C int32, 0x0D float32, 0x0E float64)
    byte  3     number of dimensions d    (magic, second half)
    then        d sizes, each a 4-byte unsigned integer
    then        prod(sizes) values of the dtype, C order (last index fastest)

MNIST images are ``idx3`` (N, 28, 28) uint8; labels are ``idx1`` (N,) uint8. A file may be
gzip-compressed (recognized by its first two bytes 0x1f 0x8b, whatever its name).
"""

from __future__ import annotations

import gzip
import math
import os
import zlib

import numpy as np

# dtype code -> big-endian numpy dtype
DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"
_ADVICE = "delete it and download it again, or replace it with a good copy"


def _read_bytes(path) -> bytes:
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:  # truncated or corrupted gzip stream
        raise ValueError(
            f"IDX file {os.fspath(path)!r} is gzip-compressed but cannot be decompressed "
            f"({type(exc).__name__}: {exc}); {_ADVICE}"
        ) from None


def read_idx(path) -> np.ndarray:
    """Read one IDX file (plain or gzip-compressed) into a NumPy array.

    Inputs:
    - path: str or os.PathLike.

    Returns:
    - array of shape given by the header (e.g. (N, 28, 28) for MNIST images, (N,) for
      labels), in the native-endian version of the header's dtype (uint8 for MNIST).

    Raises ValueError naming the file when the magic number is wrong, the dtype code is
    unknown, or the data is shorter or longer than the header's sizes say.
    """
    name = os.fspath(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise ValueError(f"IDX file {name!r} is {len(raw)} bytes long, too short for a header; {_ADVICE}")
    if raw[0] != 0 or raw[1] != 0:
        raise ValueError(
            f"{name!r} is not an IDX file: its magic number starts with bytes "
            f"{raw[0]:#04x} {raw[1]:#04x}, expected 0x00 0x00; {_ADVICE}"
        )
    code, ndim = raw[2], raw[3]
    if code not in DTYPES:
        known = ", ".join(f"{c:#04x}" for c in DTYPES)
        raise ValueError(f"IDX file {name!r} has unknown dtype code {code:#04x} (known: {known}); {_ADVICE}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(
            f"IDX file {name!r} is truncated inside its header: {ndim} dimensions need "
            f"{header} header bytes, the file has {len(raw)}; {_ADVICE}"
        )
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = DTYPES[code]
    expected = math.prod(shape) * dtype.itemsize  # Python ints: huge sizes cannot wrap to 0
    got = len(raw) - header
    if got != expected:
        raise ValueError(
            f"IDX file {name!r} has the wrong length: its header says shape {shape} of "
            f"{dtype.name} ({expected} data bytes) but it holds {got} data bytes "
            f"({'truncated' if got < expected else 'trailing bytes'}); {_ADVICE}"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))  # a native-endian, writable copy


def write_idx(path, array, compress: bool | None = None) -> None:
    """Write an array as an IDX file (the inverse of ``read_idx``).

    Inputs:
    - path: destination; compressed with gzip when ``compress`` is True, or when it is
      None and the name ends in ".gz".
    - array: NumPy array of a dtype IDX knows (uint8, int8, int16, int32, float32,
      float64), at least 1-D.
    """
    a = np.asarray(array)
    codes = {dt.newbyteorder("="): c for c, dt in DTYPES.items()}
    if a.dtype not in codes:
        raise ValueError(
            f"IDX cannot store dtype {a.dtype}; convert first, e.g. to uint8 for images "
            "(np.uint8) or float32"
        )
    if a.ndim < 1 or a.ndim > 255:
        raise ValueError(f"IDX stores arrays with 1 to 255 dimensions, got shape {a.shape}")
    header = bytes([0, 0, codes[a.dtype], a.ndim]) + np.asarray(a.shape, dtype=">u4").tobytes()
    body = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder(">")).tobytes()
    if compress is None:
        compress = os.fspath(path).endswith(".gz")
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:
        f.write(header + body)


__all__ = ["DTYPES", "read_idx", "write_idx"]
