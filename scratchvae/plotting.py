"""Figures for the lessons and the command line: image grids, samples by class,
reconstructions, the latent space, the decoded manifold, and learning curves
(matplotlib, host-side NumPy).

Every function takes NumPy arrays (or any backend's arrays: they are copied to the host
with ``backend.to_numpy``), returns the matplotlib ``Figure``, and with ``path=...``
also writes a PNG and closes the figure (so a script that writes hundreds of figures
does not keep them open). matplotlib picks a non-GUI backend (Agg) by itself where no
display exists. In a notebook the open figure is shown once by the inline backend; end
the line with ``;`` so the returned Figure is not shown a second time.
"""

from __future__ import annotations

import math
from pathlib import Path
from statistics import NormalDist

import numpy as np

from . import backend

DPI = 150
PAD = 0.5  # grey level of the one-pixel gaps between tiles
OUT_PX = 2.0  # a big mosaic gets at least this many output pixels (at DPI) per image pixel ...
MAX_INCHES = 40.0  # ... until its longer side reaches this many inches


def _plt():
    import matplotlib.pyplot as plt  # imported on first use: `import scratchvae` stays light

    return plt


def _finish(fig, path):
    """Save to ``path`` (PNG, parent folders made) and close the figure; return it."""
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=DPI, bbox_inches="tight")
        _plt().close(fig)
    return fig


def _host(a, name: str) -> np.ndarray:
    a = np.asarray(backend.to_numpy(a), dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or infinite values; nothing sensible to plot "
                         "(if it is a model output, training has diverged)")
    return a


def _as_images(images, image_shape, name: str) -> np.ndarray:
    """(N, D) rows or (N, H, W) images -> (N, H, W) float64, checked against image_shape."""
    try:
        H, W = (int(s) for s in image_shape)
    except (TypeError, ValueError):  # an int such as 8, None, three sizes, non-numbers
        H = W = 0
    if H < 1 or W < 1:
        raise ValueError(f"image_shape must be (H, W), e.g. (28, 28); got {image_shape!r}")
    a = _host(images, name)
    if a.ndim == 3 and a.shape[1:] == (H, W):
        return a
    if a.ndim == 2 and a.shape[1] == H * W:
        return a.reshape(len(a), H, W)
    raise ValueError(
        f"{name} has shape {a.shape}, which does not hold images of shape {(H, W)}: pass "
        f"(N, {H * W}) rows or (N, {H}, {W}) images, or the image_shape of your data "
        "(e.g. (8, 8) for digits, (28, 28) for MNIST)"
    )


def tile(images: np.ndarray, ncol: int, pad_value: float = PAD, gap: int = 1) -> np.ndarray:
    """(N, H, W) images -> one (rows (H + gap) - gap, ncol (W + gap) - gap) array,
    row-major, ``gap``-pixel gaps of ``pad_value`` (gap=0: the tiles touch); empty cells
    at the end are filled with ``pad_value`` too."""
    N, H, W = images.shape
    gap = int(gap)
    if gap < 0:
        raise ValueError(f"gap (pixels between tiles) must be >= 0, got {gap}")
    nrows = math.ceil(N / ncol)
    sy, sx = H + gap, W + gap  # the stride from one tile to the next
    out = np.full((nrows * sy - gap, ncol * sx - gap), pad_value)
    for i in range(N):
        r, c = divmod(i, ncol)
        out[r * sy: r * sy + H, c * sx: c * sx + W] = images[i]
    return out


def _mosaic_inches(h: int, w: int, longer: float) -> tuple:
    """Inches (width, height) for an (h, w)-pixel mosaic: the longer side ``longer`` inches,
    or more for a big mosaic, so each pixel gets OUT_PX output pixels at DPI (tiles of
    100,000 images would otherwise shrink below a pixel), at most MAX_INCHES."""
    side = max(h, w)
    per_px = min(max(longer / side, OUT_PX / DPI), max(MAX_INCHES, longer) / side)
    return w * per_px, h * per_px


def _show(ax, mosaic):
    ax.imshow(np.clip(mosaic, 0.0, 1.0), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for s in ax.spines.values():
        s.set_visible(False)


def image_grid(images, image_shape, nrow: int | None = None, title: str | None = None,
               path=None):
    """A grid of greyscale images (values in [0, 1]; outside values are clipped).

    Inputs:
    - images: (N, H*W) rows or (N, H, W).
    - image_shape: (H, W).
    - nrow: images per row (as torchvision's make_grid); default ceil(sqrt(N)).
    - title: optional title; path: optional PNG file to write.

    Returns:
    - the matplotlib Figure.
    """
    imgs = _as_images(images, image_shape, "images")
    N = len(imgs)
    if N == 0:
        raise ValueError("images is empty; pass at least one image")
    ncol = int(nrow) if nrow is not None else math.ceil(math.sqrt(N))
    if ncol < 1:
        raise ValueError(f"nrow (images per row) must be >= 1, got {nrow}")
    mosaic = tile(imgs, ncol)
    w_in, h_in = _mosaic_inches(*mosaic.shape, longer=6.0)  # 6 inches, or more for a big grid
    fig, ax = _plt().subplots(figsize=(max(w_in, 1.5), max(h_in, 1.5) + (0.4 if title else 0)))
    _show(ax, mosaic)
    if title:
        ax.set_title(title)
    return _finish(fig, path)


def samples_by_class(images, image_shape, classes=None, title: str | None = None, path=None,
                     ylabel: str = "class asked for"):
    """Samples of a conditional model, one row per class, the class named on the left.

    Inputs:
    - images: (C, n, H*W) or (C, n, H, W): row c holds n images drawn for class c.
    - image_shape: (H, W).
    - classes: optional C names of the rows (default 0, 1, ..., C-1).
    - title: optional title; path: optional PNG file to write; ylabel: what the rows are.

    Returns:
    - the matplotlib Figure.
    """
    a = _host(images, "images")
    if a.ndim not in (3, 4) or 0 in a.shape[:2]:
        raise ValueError(f"images must have shape (C, n, H*W) or (C, n, H, W), one row of n images per "
                         f"class; got {a.shape}")
    C, n = a.shape[:2]
    imgs = _as_images(a.reshape(C * n, *a.shape[2:]), image_shape, "images")
    names = [str(c) for c in (range(C) if classes is None else classes)]
    if len(names) != C:
        raise ValueError(f"classes names {len(names)} rows, but images holds {C}; give one name per row")
    mosaic = tile(imgs, n)
    w_in, h_in = _mosaic_inches(*mosaic.shape, longer=7.0)
    fig, ax = _plt().subplots(figsize=(w_in + 0.8, h_in + (0.5 if title else 0.2)))
    _show(ax, mosaic)
    H = imgs.shape[1]
    ax.set_yticks([r * (H + 1) + (H - 1) / 2 for r in range(C)], names)
    ax.tick_params(axis="y", length=0)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    return _finish(fig, path)


def reconstructions(x, x_hat, image_shape, n: int = 10, path=None):
    """Originals above their reconstructions, in labelled row pairs.

    Inputs:
    - x: (N, H*W) or (N, H, W) originals; x_hat: the same shape, the reconstructions.
    - image_shape: (H, W); n: how many to show (the first n; at most 10 per row pair).
    - path: optional PNG file to write.

    Returns:
    - the matplotlib Figure.
    """
    a = _as_images(x, image_shape, "x")
    b = _as_images(x_hat, image_shape, "x_hat")
    if a.shape != b.shape:
        raise ValueError(f"x and x_hat must have the same shape, got {a.shape} and {b.shape}")
    n = min(int(n), len(a))
    if n < 1:
        raise ValueError("n must be >= 1 and x must hold at least one image")
    ncol = min(n, 10)
    pairs = math.ceil(n / ncol)
    H = a.shape[1]
    rows = []  # per pair: a row of originals, then a row of reconstructions
    for p in range(pairs):
        sl = slice(p * ncol, min((p + 1) * ncol, n))
        for src in (a, b):
            row = np.full((ncol,) + a.shape[1:], PAD)
            row[: sl.stop - sl.start] = src[sl]
            rows.append(row)
    mosaic = tile(np.concatenate(rows), ncol)
    w_in, h_in = _mosaic_inches(*mosaic.shape, longer=7.0)
    fig, ax = _plt().subplots(figsize=(w_in + 1.2, h_in + 0.2))
    _show(ax, mosaic)
    centers = [r * (H + 1) + (H - 1) / 2 for r in range(2 * pairs)]
    ax.set_yticks(centers, ["original", "reconstruction"] * pairs)
    ax.tick_params(axis="y", length=0)
    return _finish(fig, path)


def pca_2d(z: np.ndarray):
    """Project (N, L) points on their top two principal axes, by SVD.

    Z_c = Z - mean = U S V^T; the projection is Z_c V[:, :2] = U[:, :2] S[:2], and axis j
    explains S_j^2 / sum S^2 of the variance. Signs: the largest loading of each axis
    is positive, so the picture does not flip between runs.

    Returns:
    - p: (N, 2) projected points; explained: (2,) fractions of variance.
    """
    zc = z - z.mean(axis=0)
    _, S, Vt = np.linalg.svd(zc, full_matrices=False)
    V = Vt[:2].T
    V = V * np.sign(V[np.argmax(np.abs(V), axis=0), [0, 1]])
    var = S**2
    return zc @ V, var[:2] / var.sum() if var.sum() > 0 else np.zeros(2)


def latent_scatter(z, labels=None, path=None, title: str = "latent space"):
    """The latent codes as a 2-D scatter, coloured by label.

    Inputs:
    - z: (N, L) codes (e.g. the encoder means mu). L = 2: plotted as they are; L > 2:
      projected on the top two principal axes (PCA by SVD, said in the axis labels);
      L = 1: z against a small random vertical jitter.
    - labels: optional (N,): integer classes (at most 20 distinct) get a legend,
      anything else (e.g. a continuous position t) a colorbar.
    - path: optional PNG file; title: the title.

    Returns:
    - the matplotlib Figure.
    """
    z = _host(z, "z")
    if z.ndim != 2:
        raise ValueError(f"z must have shape (N, L), one code per row; got {z.shape}")
    N, L = z.shape
    if N == 0 or L == 0:
        raise ValueError(f"z is empty (shape {z.shape}); pass at least one code of at least one dimension")
    if L > 2 and N < 2:
        raise ValueError(f"z has {N} row of {L} dimensions: projecting on two principal axes "
                         "needs at least 2 codes; pass more rows")
    if L == 2:
        p, xlabel, ylabel = z, "$z_1$", "$z_2$"
    elif L > 2:
        p, ev = pca_2d(z)
        xlabel = f"PC 1 of {L}-D z ({100 * ev[0]:.0f}% of variance)"
        ylabel = f"PC 2 of {L}-D z ({100 * ev[1]:.0f}% of variance)"
    else:
        jitter = np.random.default_rng(0).uniform(-0.5, 0.5, N)
        p, xlabel, ylabel = np.column_stack([z[:, 0], jitter]), "$z_1$", "jitter (no meaning)"
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.0, 5.0))
    size = 12.0 if N <= 2000 else 3.0
    if labels is None:
        ax.scatter(p[:, 0], p[:, 1], s=size, alpha=0.7, linewidths=0, rasterized=True)
    else:
        lab = np.asarray(backend.to_numpy(labels)).reshape(-1)
        if len(lab) != N:
            raise ValueError(f"labels has {len(lab)} entries but z has {N} rows; give one label per row")
        classes = np.unique(lab)
        if lab.dtype.kind in "fc":
            lab = lab.real.astype(np.float64)
            discrete = bool(np.all(np.isfinite(lab)) and np.all(lab == np.round(lab)))
        else:
            discrete = True  # integers, booleans, strings
        if discrete and len(classes) <= 20:
            cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
            for i, c in enumerate(classes):
                m = lab == c
                ax.scatter(p[m, 0], p[m, 1], s=size, alpha=0.7, linewidths=0, color=cmap(i),
                           label=str(int(c)) if lab.dtype.kind == "f" else str(c), rasterized=True)
            ax.legend(title="label", markerscale=2.0 if N <= 2000 else 4.0, loc="center left",
                      bbox_to_anchor=(1.0, 0.5), frameon=False)
        else:
            if lab.dtype.kind not in "biuf":  # e.g. more than 20 strings: colour by class index
                lab = np.unique(lab, return_inverse=True)[1]
            sc = ax.scatter(p[:, 0], p[:, 1], c=lab.astype(np.float64), s=size, alpha=0.8,
                            linewidths=0, cmap="viridis", rasterized=True)
            fig.colorbar(sc, ax=ax, label="label")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return _finish(fig, path)


def normal_quantiles(n: int) -> np.ndarray:
    """Phi^{-1}((i + 1/2) / n), i = 0..n-1: n evenly spaced quantiles of N(0, 1), the
    midpoints of n equal-probability bins (statistics.NormalDist().inv_cdf)."""
    inv = NormalDist().inv_cdf
    return np.array([inv((i + 0.5) / n) for i in range(n)])


def _manifold_ticks(q: np.ndarray, size: int) -> tuple:
    """Ticks for an axis of n touching tiles, ``size`` pixels each, decoded at the grid
    points q (n,), q[i] = -q[n-1-i]: the first and last tiles, the tiles a quarter in from
    each end, and the centre, z = 0 (for even n the line between the two middle tiles:
    the axis is linear in u = Phi(z), and u = 1/2 there). Tiles i and n-1-i are labelled
    together, so the labels read the same but for the sign (2 decimals, a true minus).

    Returns:
    - positions (in pixels, increasing) and their labels, lists of equal length.
    """
    n = len(q)
    k = int((n - 1) / 4 + 0.5)  # a quarter in, rounded half up
    ticks = {}
    for i in {0, k, n - 1 - k, n - 1} | ({n // 2} if n % 2 else set()):
        mag = f"{abs(q[i] - q[n - 1 - i]) / 2:.2f}"  # |q[i]|, one number for i and n-1-i
        if mag == "0.00":
            ticks[i * size + (size - 1) / 2] = "0"
        else:
            ticks[i * size + (size - 1) / 2] = ("\N{MINUS SIGN}" if 2 * i < n - 1 else "") + mag
    if n % 2 == 0:
        ticks[n // 2 * size - 0.5] = "0"  # the edge between the two middle tiles
    pos = sorted(ticks)
    return pos, [ticks[p] for p in pos]


def manifold(decode_fn, image_shape, n: int = 15, path=None):
    """The learned 2-D manifold: decode an n x n grid of latent points and tile them edge
    to edge, one continuous map of latent space (no gaps between the tiles).

    The grid follows Kingma and Welling (2014, figure 4): evenly spaced quantiles of the
    prior mapped through the inverse normal CDF, so each cell covers the same prior
    mass. Columns run along z_1 (increasing to the right), rows along z_2 (increasing
    upwards). The ticks, the same on both axes, sit symmetric about z = 0: the outer
    tiles, the tiles a quarter in, and the centre.

    Inputs:
    - decode_fn: maps host z (M, 2) float64 to images (M, H*W) in [0, 1] (e.g. the
      decoder's Bernoulli means); any backend's array is accepted back.
    - image_shape: (H, W); n: grid size (n * n decodes in one call).
    - path: optional PNG file to write.

    Returns:
    - the matplotlib Figure.
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"n (grid size) must be >= 1, got {n}")
    q = normal_quantiles(n)
    z1, z2 = np.meshgrid(q, q[::-1])  # row 0 at the top holds the largest z_2
    z = np.column_stack([z1.ravel(), z2.ravel()])  # (n * n, 2), row-major over the grid
    out = decode_fn(z)
    imgs = _as_images(out, image_shape, "decode_fn(z)")
    if len(imgs) != n * n:
        raise ValueError(f"decode_fn returned {len(imgs)} images for {n * n} latent points; "
                         "it must return one image per row of z")
    H, W = imgs.shape[1:]
    mosaic = tile(imgs, n, gap=0)  # one continuous map of latent space: the tiles touch
    w_in, h_in = _mosaic_inches(*mosaic.shape, longer=7.0)
    fig, ax = _plt().subplots(figsize=(w_in, h_in))
    _show(ax, mosaic)
    if min(w_in * DPI / n, h_in * DPI / n) >= 12:  # tiles of 12+ output pixels: a hairline
        # between them (in output pixels, not image pixels), so strokes that reach a
        # tile's edge (8 x 8 digits fill theirs) do not run into the next digit
        edges = np.arange(1, n)
        kw = {"colors": "black", "linewidths": 72 / DPI, "alpha": 0.6, "antialiased": False}  # 1 crisp px
        ax.vlines(edges * W - 0.5, -0.5, n * H - 0.5, **kw)
        ax.hlines(edges * H - 0.5, -0.5, n * W - 0.5, **kw)
    xpos, xlabels = _manifold_ticks(q, W)
    ypos, ylabels = _manifold_ticks(q, H)
    ax.set_xticks(xpos, xlabels)
    ax.set_yticks([mosaic.shape[0] - 1 - p for p in ypos], ylabels)  # z_2 grows upwards
    ax.set_xlabel("$z_1 = \\Phi^{-1}(u_1)$")
    ax.set_ylabel("$z_2 = \\Phi^{-1}(u_2)$")
    ax.set_title("decoded latent grid")
    return _finish(fig, path)


_SPLITS = {"train": "train", "val": "validation"}
_QUANTITIES = {"loss": "loss", "rec": "reconstruction", "kl": "KL",
               "neg_elbo": "\N{MINUS SIGN}ELBO", "elbo": "ELBO",
               "neg_iwae": "\N{MINUS SIGN}IWAE bound", "iwae": "IWAE bound"}


def _in_words(key: str) -> str:
    """A history key said in words: "val_neg_elbo" -> "validation: −ELBO", "train_rec" ->
    "train: reconstruction"; an unknown one with spaces for underscores ("log likelihood")."""
    split, _, qty = key.partition("_")
    if split in _SPLITS and qty:
        return f"{_SPLITS[split]}: {_in_words(qty)}"
    return _QUANTITIES.get(key, key.replace("_", " "))


def learning_curves(history: dict, path=None):
    """Loss per epoch, and the reconstruction / KL split of the negative ELBO.

    Inputs:
    - history: dict of per-epoch lists, e.g. "train_loss", "val_loss", "train_rec",
      "train_kl", "val_rec", "val_kl" (None or NaN where a value was not computed).
      Keys ending in "loss" go in the first panel, "rec" and "kl" in the second, any
      other numeric lists (e.g. "val_iwae") in a third. Train solid, validation dashed,
      one colour per quantity. The legends say the keys in words ("validation: KL");
      each line's label stays the key itself, for a caller to rename.
    - path: optional PNG file to write.

    Returns:
    - the matplotlib Figure.
    """
    if not isinstance(history, dict) or not history:
        raise ValueError("history must be a non-empty dict of per-epoch lists, e.g. "
                         "{'train_loss': [...], 'val_loss': [...]}")
    curves = {}
    for k, v in history.items():
        try:
            if not isinstance(v, (list, tuple)):  # an array (to the host), a scalar, a string
                v = backend.to_numpy(v) if hasattr(v, "shape") else np.asarray(v, dtype=object)
                if v.ndim != 1:
                    continue  # a scalar (a config entry such as "lr": 1e-3) or a table: skip it
            # to_numpy: an entry may be a 0-d array on a device (a loss kept on a GPU); a
            # list entry (a row of a table) fails float() and the key is skipped
            a = np.array([np.nan if e is None else float(backend.to_numpy(e)) for e in v])
        except (TypeError, ValueError):
            continue  # not a numeric series (e.g. a name): skip it
        if a.size and np.any(np.isfinite(a)):
            curves[str(k)] = a
    if not curves:
        raise ValueError(f"history has no numeric per-epoch lists to plot (keys: {list(history)})")
    groups = [
        ("loss", [k for k in curves if k.endswith("loss")]),
        ("reconstruction and KL (nats / example)", [k for k in curves if k.endswith(("rec", "kl"))]),
    ]
    used = {k for _, ks in groups for k in ks}
    groups.append(("other", [k for k in curves if k not in used]))
    groups = [(t, ks) for t, ks in groups if ks]
    from matplotlib.ticker import MaxNLocator

    plt = _plt()
    fig, axes = plt.subplots(1, len(groups), figsize=(5.0 * len(groups), 4.0), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (title, keys) in zip(axes[0], groups):
        quantities = []  # "train_rec" and "val_rec" share a colour: solid train, dashed val
        for k in keys:
            a = curves[k]
            qty = k.split("_", 1)[1] if k.startswith(("train_", "val_")) else k
            if qty not in quantities:
                quantities.append(qty)
            epochs = np.arange(1, len(a) + 1)
            ok = np.isfinite(a)
            ax.plot(epochs[ok], a[ok], "--" if k.startswith("val") else "-",
                    color=colors[quantities.index(qty) % len(colors)],
                    marker="o" if ok.sum() <= 30 else None, markersize=3, label=k)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.legend(ax.get_lines(), [_in_words(line.get_label()) for line in ax.get_lines()], frameon=False)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _finish(fig, path)


__all__ = ["image_grid", "latent_scatter", "learning_curves", "manifold", "normal_quantiles",
           "pca_2d", "reconstructions", "samples_by_class", "tile"]
