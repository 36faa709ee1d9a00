"""Corruption for denoising autoencoders: x~ = corrupt(x), then reconstruct the clean x.

Vincent, Larochelle, Bengio and Manzagol (2008), "Extracting and composing robust
features with denoising autoencoders": the encoder sees a corrupted copy
x~ ~ C(x~ | x) and the loss compares the reconstruction with the clean x,

    L_DAE = (1/N) sum_n E_{x~_n ~ C(. | x_n)} ||x_n - g_theta(f_phi(x~_n))||^2,      L3 (5)

so the code must capture structure that survives the corruption. This module draws
x~ from C; the models (``corruption=...``) draw a fresh x~ for every batch.

kind        level means                          x~
"gaussian"  standard deviation s (default 0.3)   x + s eps,  eps ~ N(0, I)
"masking"   fraction p set to 0 (default 0.3)    x * m,      m_d ~ Bernoulli(1 - p)
"blur"      Gaussian sigma in pixels (def. 1.0)  G_sigma * x on each (H, W) image
            (deterministic; needs image_shape; for deblurring)

All three are array API code; the noise comes from a ``scratchvae.backend.RNG``.
"""

from __future__ import annotations

import math
import numbers

from array_api_compat import array_namespace

from ..checks import check_ndim

KINDS = ("gaussian", "masking", "blur")
DEFAULT_LEVEL = {"gaussian": 0.3, "masking": 0.3, "blur": 1.0}


def check_image_shape(image_shape, in_features=None):
    """Return ``image_shape`` as a tuple of ints (None stays None); raise ValueError
    unless it is (H, W) or (C, H, W) of positive integers with prod = ``in_features``
    (the D the rows were flattened to; None skips that check)."""
    if image_shape is None:
        return None
    if (isinstance(image_shape, (str, bytes)) or not hasattr(image_shape, "__len__")
            or len(image_shape) not in (2, 3)
            or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 1
                       for s in image_shape)):
        raise ValueError(
            f"image_shape must be (H, W) or (C, H, W), positive integers, got {image_shape!r}; "
            "e.g. image_shape=(28, 28) for MNIST"
        )
    shape = tuple(int(s) for s in image_shape)
    if in_features is not None and math.prod(shape) != in_features:
        raise ValueError(
            f"image_shape {shape} has {math.prod(shape)} pixels but the data "
            f"has {in_features} columns; pass the shape the rows were flattened from"
        )
    return shape


def check_corruption(kind, level=None, image_shape=None, in_features=None):
    """Validate a corruption setting and return its level (the default if None).

    Inputs:
    - kind: None, "gaussian", "masking" or "blur".
    - level: see the module table; None picks DEFAULT_LEVEL[kind].
    - image_shape: (H, W) or (C, H, W), needed by "blur".
    - in_features: D, the number of columns the data will have (checked against
      image_shape), or None to skip that check.
    Returns: the level as a float, or None when kind is None.
    """
    if kind is None:
        if level is not None:
            raise ValueError(
                f"noise_level={level} was given but corruption=None; pass corruption="
                f"{', '.join(map(repr, KINDS))} to train a denoising autoencoder"
            )
        return None
    if kind not in KINDS:
        raise ValueError(f"unknown corruption {kind!r}: choose None or one of {', '.join(map(repr, KINDS))}")
    level = DEFAULT_LEVEL[kind] if level is None else float(level)
    if not math.isfinite(level):  # inf or nan noise turns every loss into NaN
        raise ValueError(f"{kind} noise level must be a finite number, got {level}")
    if kind == "gaussian" and not level >= 0.0:
        raise ValueError(f"gaussian noise level is a standard deviation and must be >= 0, got {level}")
    if kind == "masking" and not 0.0 <= level < 1.0:
        raise ValueError(f"masking level is the fraction of entries set to 0 and must lie in [0, 1), got {level}")
    if kind == "blur":
        if not level > 0.0:
            raise ValueError(f"blur level is the Gaussian sigma in pixels and must be > 0, got {level}")
        if image_shape is None:
            raise ValueError(
                "corruption='blur' needs image_shape=(H, W) or (C, H, W), got None; "
                "e.g. image_shape=(28, 28) for MNIST"
            )
        check_image_shape(image_shape, in_features)
    return level


def gaussian_noise(x, std: float, rng):
    """x~ = x + std * eps, eps ~ N(0, I) drawn from ``rng``.

    Inputs: x: (N, D); std: float >= 0; rng: scratchvae.backend.RNG.
    Returns: x~: (N, D), x's dtype.
    """
    xp = array_namespace(x)
    eps = xp.astype(rng.normal(x.shape), x.dtype)
    return x + std * eps


def masking_noise(x, p: float, rng):
    """x~ = x * m with m_d ~ Bernoulli(1 - p): each entry is set to 0 with probability p.

    Inputs: x: (N, D); p: float in [0, 1); rng: scratchvae.backend.RNG.
    Returns: x~: (N, D).
    """
    xp = array_namespace(x)
    keep = rng.uniform(x.shape) >= p  # P(keep) = 1 - p
    return xp.where(keep, x, xp.zeros_like(x))


def _shift(a, k: int, axis: int):
    """b[..., i, ...] = a[..., i + k, ...] along ``axis``, 0 where i + k is outside."""
    xp = array_namespace(a)
    n = a.shape[axis]
    if k == 0:
        return a
    if abs(k) >= n:
        return xp.zeros_like(a)
    zshape = list(a.shape)
    zshape[axis] = abs(k)
    zeros = xp.zeros(tuple(zshape), dtype=a.dtype, device=a.device)
    index = [slice(None)] * a.ndim
    if k > 0:
        index[axis] = slice(k, None)
        return xp.concat([a[tuple(index)], zeros], axis=axis)
    index[axis] = slice(None, n + k)
    return xp.concat([zeros, a[tuple(index)]], axis=axis)


def _smooth(a, weights, axis: int):
    """sum_k w_k a[i + k] along ``axis``, k = -R..R (zero outside the image)."""
    R = (len(weights) - 1) // 2
    out = None
    for k in range(-R, R + 1):
        term = weights[k + R] * _shift(a, k, axis)
        out = term if out is None else out + term
    return out


def gaussian_blur(x, image_shape, sigma: float):
    """Blur each row, seen as an image, with a Gaussian of ``sigma`` pixels.

    The kernel is w_k ∝ exp(-k^2 / (2 sigma^2)), k = -R..R, R = int(4 sigma + 0.5),
    applied along rows then columns (separable). Near the border only the pixels
    inside the image count: out = (G * x) / (G * 1), so a constant image stays
    constant; this equals scipy.ndimage.gaussian_filter(x, mode="constant") divided
    by the same filter of an all-ones image.

    Inputs:
    - x: (N, D) with D = prod(image_shape).
    - image_shape: (H, W) or (C, H, W); channels are blurred separately.
    - sigma: float > 0.
    Returns: (N, D), the blurred rows (a convex combination: values stay in [min, max]).
    """
    xp = array_namespace(x)
    N = x.shape[0]
    R = int(4.0 * sigma + 0.5)
    w = [math.exp(-0.5 * (k / sigma) ** 2) for k in range(-R, R + 1)]
    w = [wk / sum(w) for wk in w]
    imgs = xp.reshape(x, (N, *image_shape))
    ones = xp.ones((1, *image_shape), dtype=x.dtype, device=x.device)
    num = _smooth(_smooth(imgs, w, -1), w, -2)  # G * x
    den = _smooth(_smooth(ones, w, -1), w, -2)  # G * 1: the kernel mass inside the image
    return xp.reshape(num / den, (N, x.shape[1]))


def corrupt(x, kind, level=None, rng=None, image_shape=None):
    """Corrupt a batch for a denoising autoencoder: x~ ~ C(x~ | x) of L3 (5) (see the
    module table).

    Inputs:
    - x: (N, D) clean data.
    - kind: None (returns x), "gaussian", "masking" or "blur".
    - level: noise std, masked fraction or blur sigma; None for the default.
    - rng: scratchvae.backend.RNG, needed by "gaussian" and "masking".
    - image_shape: (H, W) or (C, H, W), needed by "blur".
    Returns: x~: (N, D).
    """
    check_ndim(x, 2, "x", "(N, D)")
    level = check_corruption(kind, level, image_shape, x.shape[1])
    if kind is None:
        return x
    if kind == "blur":
        return gaussian_blur(x, image_shape, level)
    if rng is None:
        raise ValueError(f"corruption {kind!r} draws noise: pass rng=scratchvae.backend.RNG(seed)")
    if kind == "gaussian":
        return gaussian_noise(x, level, rng)
    return masking_noise(x, level, rng)
