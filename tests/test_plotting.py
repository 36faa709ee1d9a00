"""Plotting: every function writes a real PNG, checks its inputs, and draws what it says."""

import matplotlib

matplotlib.use("Agg")  # headless, whatever the environment says

import matplotlib.pyplot as plt
import numpy as np
import pytest

from scratchvae import backend, datasets, plotting

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def digits():
    return datasets.load("digits")


@pytest.fixture(autouse=True)
def close_all():
    yield
    plt.close("all")


def _check_png(path, min_bytes=5000):
    raw = path.read_bytes()
    assert raw[:8] == PNG_MAGIC and len(raw) > min_bytes
    img = plt.imread(path)
    assert img.ndim == 3 and min(img.shape[:2]) > 100
    assert img[..., :3].std() > 0.05  # not a blank canvas


def _mosaic(fig):
    return fig.axes[0].images[0].get_array()


# ---- image_grid ----------------------------------------------------------------------

def test_image_grid_writes_png_and_closes(tmp_path, digits):
    path = tmp_path / "sub" / "grid.png"  # parent folders are made
    fig = plotting.image_grid(digits.x_train[:30], (8, 8), title="digits", path=path)
    _check_png(path)
    assert not plt.fignum_exists(fig.number)  # closed after saving
    # 30 images, ceil(sqrt(30)) = 6 per row -> 5 rows of 8 px tiles with 1 px gaps
    m = _mosaic(fig)
    assert m.shape == (5 * 9 - 1, 6 * 9 - 1)
    np.testing.assert_array_equal(m[9:17, 18:26], digits.x_train[8].reshape(8, 8))  # row 1, col 2
    assert fig.axes[0].get_title() == "digits"


def test_image_grid_layout_and_inputs(digits):
    imgs = digits.x_val[:10].reshape(10, 8, 8)  # (N, H, W) accepted too
    fig = plotting.image_grid(imgs, (8, 8), nrow=5)
    assert plt.fignum_exists(fig.number)  # left open when not saved
    m = _mosaic(fig)
    assert m.shape == (2 * 9 - 1, 5 * 9 - 1)
    np.testing.assert_array_equal(m[9:, 0:8], imgs[5])
    assert np.all(m[8, :] == plotting.PAD)  # the gap row


def test_tile_gap():
    imgs = np.arange(3 * 2 * 2, dtype=float).reshape(3, 2, 2)
    touching = plotting.tile(imgs, 2, gap=0)  # the tiles touch; the empty cell is pad_value
    np.testing.assert_array_equal(touching, [[0, 1, 4, 5], [2, 3, 6, 7],
                                             [8, 9, .5, .5], [10, 11, .5, .5]])
    wide = plotting.tile(imgs, 3, pad_value=-1.0, gap=2)
    assert wide.shape == (2, 3 * 4 - 2)
    np.testing.assert_array_equal(wide[:, 2:4], -1.0)
    np.testing.assert_array_equal(wide[:, 8:10], imgs[2])
    np.testing.assert_array_equal(plotting.tile(imgs, 2), plotting.tile(imgs, 2, gap=1))  # the default
    with pytest.raises(ValueError, match="gap"):
        plotting.tile(imgs, 2, gap=-1)


def test_image_grid_grows_with_the_mosaic_up_to_a_cap():
    """Small grids keep their 6-inch longer side; a big one gets about OUT_PX output pixels
    per image pixel at DPI, up to MAX_INCHES (figures built, never drawn: fast)."""
    imgs = np.zeros((32 * 32, 28 * 28))
    small = plotting.image_grid(imgs[:16], (28, 28)).get_size_inches()
    np.testing.assert_allclose(small, [6.0, 6.0])  # 4 x 4: as before
    big = plotting.image_grid(imgs, (28, 28)).get_size_inches()
    side = 32 * 29 - 1  # mosaic pixels
    assert big[0] > 2 * small[0]
    np.testing.assert_allclose(big, side * plotting.OUT_PX / plotting.DPI)
    # a mosaic 20,000 pixels long (cheap: a row of 1 x 1 images) stays within the cap
    huge = plotting.image_grid(np.zeros((10_000, 1)), (1, 1), nrow=10_000).get_size_inches()
    np.testing.assert_allclose(huge[0], plotting.MAX_INCHES)
    assert huge[1] == 1.5  # the floor for a thin strip
    # the same rule for the other mosaics: 100 row pairs of reconstructions, 500 samples a class
    rec = plotting.reconstructions(imgs[:1000], imgs[:1000], (28, 28), n=1000).get_size_inches()
    assert rec[1] == pytest.approx(plotting.MAX_INCHES + 0.2)  # 200 rows of 28: capped
    few = plotting.reconstructions(imgs[:10], imgs[:10], (28, 28)).get_size_inches()
    assert few[0] == pytest.approx(7.0 + 1.2)  # one row pair: as before
    rows = np.zeros((10, 40, 28 * 28))
    cls = plotting.samples_by_class(rows, (28, 28)).get_size_inches()
    assert cls[0] == pytest.approx((40 * 29 - 1) * plotting.OUT_PX / plotting.DPI + 0.8)


@pytest.mark.parametrize("images, shape, message", [
    (np.zeros((4, 64)), (28, 28), r"shape \(4, 64\).*\(N, 784\) rows"),
    (np.zeros((4, 8, 8)), (7, 9), "does not hold images of shape"),
    (np.zeros(64), (8, 8), "does not hold images"),
    (np.zeros((4, 64)), (64,), r"image_shape must be \(H, W\)"),
    (np.zeros((4, 64)), 8, r"image_shape must be \(H, W\).*got 8"),
    (np.zeros((4, 64)), None, r"image_shape must be \(H, W\)"),
    (np.zeros((0, 64)), (8, 8), "images is empty; pass at least one image"),
])
def test_image_grid_rejects_wrong_shapes(images, shape, message):
    with pytest.raises(ValueError, match=message):
        plotting.image_grid(images, shape)


def test_image_grid_rejects_nan_and_clips_range():
    x = np.full((4, 4), 0.5)
    x[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        plotting.image_grid(x, (2, 2))
    fig = plotting.image_grid(np.array([[-1.0, 2.0, 0.25, 0.5]]), (2, 2))
    np.testing.assert_array_equal(_mosaic(fig), [[0.0, 1.0], [0.25, 0.5]])


def test_image_grid_takes_backend_arrays(bk, digits):
    x = backend.asarray(digits.x_test[:4])
    fig = plotting.image_grid(x, (8, 8))
    np.testing.assert_array_equal(_mosaic(fig)[:8, :8], digits.x_test[0].reshape(8, 8))


# ---- samples_by_class ------------------------------------------------------------------

def test_samples_by_class_puts_each_class_on_its_row(tmp_path, digits):
    """Row c holds the images drawn for class c, named on the left."""
    rows = np.stack([digits.x_train[digits.y_train == c][:6] for c in range(10)])  # (10, 6, 64)
    path = tmp_path / "by_class.png"
    fig = plotting.samples_by_class(rows, (8, 8), title="by class", path=path)
    _check_png(path)
    m = _mosaic(fig)
    assert m.shape == (10 * 9 - 1, 6 * 9 - 1)
    np.testing.assert_array_equal(m[3 * 9:3 * 9 + 8, 2 * 9:2 * 9 + 8], rows[3, 2].reshape(8, 8))
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == [str(c) for c in range(10)]
    assert fig.axes[0].get_title() == "by class" and fig.axes[0].get_ylabel() == "class asked for"
    named = plotting.samples_by_class(rows[:2].reshape(2, 6, 8, 8), (8, 8), classes=["even", "odd"], ylabel="")
    assert [t.get_text() for t in named.axes[0].get_yticklabels()] == ["even", "odd"]
    assert named.axes[0].get_ylabel() == ""


@pytest.mark.parametrize("images, kw, message", [
    (np.zeros((4, 64)), {}, r"shape \(C, n, H\*W\) or \(C, n, H, W\).*got \(4, 64\)"),
    (np.zeros((0, 3, 64)), {}, "one row of n images per class"),
    (np.zeros((2, 3, 63)), {}, "does not hold images of shape"),
    (np.zeros((2, 3, 64)), {"classes": ["a"]}, "give one name per row"),
])
def test_samples_by_class_rejects_wrong_shapes(images, kw, message):
    with pytest.raises(ValueError, match=message):
        plotting.samples_by_class(images, (8, 8), **kw)


# ---- reconstructions -------------------------------------------------------------------

def test_reconstructions(tmp_path, digits):
    x = digits.x_test[:13]
    x_hat = 1.0 - x
    path = tmp_path / "rec.png"
    fig = plotting.reconstructions(x, x_hat, (8, 8), n=13, path=path)
    _check_png(path)
    m = _mosaic(fig)
    assert m.shape == (4 * 9 - 1, 10 * 9 - 1)  # two row pairs of 10 columns
    np.testing.assert_array_equal(m[0:8, 9:17], x[1].reshape(8, 8))  # original on top
    np.testing.assert_array_equal(m[9:17, 9:17], x_hat[1].reshape(8, 8))  # its reconstruction below
    np.testing.assert_array_equal(m[27:35, 18:26], x_hat[12].reshape(8, 8))  # second pair
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["original", "reconstruction"] * 2
    with pytest.raises(ValueError, match="same shape"):
        plotting.reconstructions(x, x_hat[:5], (8, 8))
    with pytest.raises(ValueError, match="does not hold images"):
        plotting.reconstructions(x, x_hat, (28, 28))


# ---- latent_scatter ----------------------------------------------------------------------

def test_latent_scatter_2d_with_class_legend(tmp_path, hrng):
    z = hrng.normal(size=(300, 2))
    labels = hrng.integers(0, 10, 300)
    path = tmp_path / "z.png"
    fig = plotting.latent_scatter(z, labels, path=path, title="codes")
    _check_png(path)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "$z_1$" and ax.get_title() == "codes"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == [str(k) for k in np.unique(labels)]
    np.testing.assert_allclose(np.concatenate([c.get_offsets() for c in ax.collections]).mean(0),
                               z.mean(0), atol=1e-12)


def test_latent_scatter_projects_with_pca_and_says_so(tmp_path, hrng):
    # a 5-D cloud with most variance along two known directions
    z = hrng.normal(size=(400, 5)) * np.array([5.0, 0.1, 3.0, 0.1, 0.1])
    fig = plotting.latent_scatter(z, path=tmp_path / "pca.png")
    ax = fig.axes[0]
    assert "PC 1 of 5-D z" in ax.get_xlabel() and "% of variance" in ax.get_ylabel()
    p = ax.collections[0].get_offsets()
    # the projection's variances are the top two eigenvalues of the sample covariance
    evals = np.linalg.eigvalsh(np.cov(z.T))[::-1]
    np.testing.assert_allclose(np.var(p, axis=0, ddof=1), evals[:2], rtol=1e-10)
    _, explained = plotting.pca_2d(z)
    np.testing.assert_allclose(explained, evals[:2] / evals.sum(), rtol=1e-10)


def test_pca_2d_matches_scikit_learn(hrng):
    decomposition = pytest.importorskip("sklearn.decomposition")
    z = hrng.normal(size=(200, 6)) @ hrng.normal(size=(6, 6))
    p, explained = plotting.pca_2d(z)
    ref = decomposition.PCA(2).fit(z)
    np.testing.assert_allclose(explained, ref.explained_variance_ratio_, rtol=1e-10)
    q = ref.transform(z)
    np.testing.assert_allclose(np.abs(p), np.abs(q), atol=1e-10)  # equal up to each axis's sign


def test_latent_scatter_continuous_labels_get_a_colorbar(hrng):
    arc = datasets.noisy_arc(n=200)
    fig = plotting.latent_scatter(arc.x, arc.t)
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "label"  # the colorbar


def test_latent_scatter_1d_and_bad_input(hrng):
    fig = plotting.latent_scatter(hrng.normal(size=(50, 1)), np.arange(50) % 3)
    assert "jitter" in fig.axes[0].get_ylabel()
    with pytest.raises(ValueError, match=r"shape \(N, L\)"):
        plotting.latent_scatter(np.zeros(10))
    with pytest.raises(ValueError, match="labels has 9 entries but z has 10 rows"):
        plotting.latent_scatter(np.zeros((10, 2)), np.zeros(9))
    for empty in (np.zeros((0, 2)), np.zeros((0, 5)), np.zeros((5, 0))):
        with pytest.raises(ValueError, match="z is empty"):
            plotting.latent_scatter(empty)
    with pytest.raises(ValueError, match="1 row of 5 dimensions.*at least 2"):
        plotting.latent_scatter(hrng.normal(size=(1, 5)))  # no principal axes in one point


def test_latent_scatter_many_string_classes_get_a_colorbar(hrng):
    labels = np.array([f"c{i % 25}" for i in range(50)])  # 25 classes: too many for a legend
    fig = plotting.latent_scatter(hrng.normal(size=(50, 2)), labels)
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "label"
    codes = fig.axes[0].collections[0].get_array()
    np.testing.assert_array_equal(codes, np.unique(labels, return_inverse=True)[1])


# ---- manifold ------------------------------------------------------------------------------

def test_normal_quantiles_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    q = plotting.normal_quantiles(15)
    np.testing.assert_allclose(q, stats.norm.ppf((np.arange(15) + 0.5) / 15), rtol=0, atol=1e-12)
    np.testing.assert_allclose(q, -q[::-1], atol=1e-15)  # symmetric about 0
    assert q[7] == 0.0


def test_manifold_grid_orientation(tmp_path):
    seen = []

    def decode(z):
        # image (2, 2): top-left pixel Phi(z_1), bottom-right pixel Phi(z_2)
        seen.append(z)
        from statistics import NormalDist
        cdf = np.vectorize(NormalDist().cdf)
        out = np.zeros((len(z), 4))
        out[:, 0], out[:, 3] = cdf(z[:, 0]), cdf(z[:, 1])
        return out

    n = 5
    path = tmp_path / "manifold.png"
    fig = plotting.manifold(decode, (2, 2), n=n, path=path)
    _check_png(path, min_bytes=2000)
    (z,) = seen
    assert z.shape == (n * n, 2) and z.dtype == np.float64
    m = np.asarray(_mosaic(fig))
    assert m.shape == (2 * n, 2 * n)  # n x n tiles of 2 x 2, touching: no gaps
    tiles = m.reshape(n, 2, n, 2)  # [tile row, y, tile col, x]
    u = (np.arange(n) + 0.5) / n  # evenly spaced probabilities
    np.testing.assert_allclose(tiles[0, 0, :, 0], u, atol=1e-12)  # z_1 grows to the right
    np.testing.assert_allclose(tiles[:, 1, 0, 1], u[::-1], atol=1e-12)  # z_2 grows upwards


def test_manifold_is_one_image_without_gaps():
    fig = plotting.manifold(lambda z: np.ones((len(z), 12)), (3, 4), n=4)
    m = np.asarray(_mosaic(fig))
    assert m.shape == (4 * 3, 4 * 4) and np.all(m == 1.0)  # no grey PAD anywhere
    vlines, hlines = fig.axes[0].collections  # big tiles: a hairline drawn between them
    np.testing.assert_allclose([seg[0, 0] for seg in vlines.get_segments()], [3.5, 7.5, 11.5])
    np.testing.assert_allclose([seg[0, 1] for seg in hlines.get_segments()], [2.5, 5.5, 8.5])
    assert vlines.get_linewidths()[0] <= 0.5  # points: about one output pixel at DPI 150
    small = plotting.manifold(lambda z: np.ones((len(z), 1)), (1, 1), n=200)
    assert not small.axes[0].collections  # tiles of a few output pixels: no lines


def _tick_values(labels):
    return [float(t.replace("\N{MINUS SIGN}", "-")) for t in labels]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 15, 20, 21])
def test_manifold_ticks_are_symmetric(n):
    H, W = 3, 4
    fig = plotting.manifold(lambda z: np.zeros((len(z), H * W)), (H, W), n=n)
    ax = fig.axes[0]
    q = plotting.normal_quantiles(n)
    minus = "\N{MINUS SIGN}"
    xlabels = [t.get_text() for t in ax.get_xticklabels()]
    assert [t.get_text() for t in ax.get_yticklabels()] == xlabels  # the same on both axes
    assert 1 <= len(xlabels) <= 5 and "0" in xlabels  # the centre
    for a, b in zip(xlabels, xlabels[::-1]):  # the label of tick j is minus that of tick -1-j
        assert a == b == "0" or a == minus + b or b == minus + a
    values = _tick_values(xlabels)
    assert values == sorted(values)
    # placed symmetric about the centre too; a tick at a tile's centre names its grid point
    for ticks, size, index in ((ax.get_xticks(), W, lambda t: t), (ax.get_yticks(), H, lambda t: n * H - 1 - t)):
        np.testing.assert_allclose(ticks + ticks[::-1], n * size - 1)
        for t, v in zip(ticks, values):
            i = (index(t) - (size - 1) / 2) / size
            if i == int(i):
                assert v == pytest.approx(q[int(i)], abs=0.005)
            else:  # even n: the edge between the middle two tiles, where u = 1/2
                assert v == 0 and i == n / 2 - 0.5
    assert ax.get_xlabel().startswith("$z_1") and ax.get_ylabel().startswith("$z_2")


def test_manifold_ticks_for_the_command_line_grid():
    fig = plotting.manifold(lambda z: np.zeros((len(z), 64)), (8, 8), n=20)
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert _tick_values(labels) == [-1.96, -0.6, 0.0, 0.6, 1.96]


def test_manifold_checks_the_decoder_output():
    with pytest.raises(ValueError, match="returned 3 images for 9 latent points"):
        plotting.manifold(lambda z: np.zeros((3, 4)), (2, 2), n=3)
    with pytest.raises(ValueError, match=r"decode_fn\(z\) has shape \(9, 5\)"):
        plotting.manifold(lambda z: np.zeros((len(z), 5)), (2, 2), n=3)
    with pytest.raises(ValueError, match="n \\(grid size\\)"):
        plotting.manifold(lambda z: z, (2, 2), n=0)


def test_manifold_accepts_a_backend_decoder(bk):
    def decode(z):
        xp = backend.current().xp
        zz = backend.asarray(z)
        return xp.broadcast_to(xp.mean(zz, axis=1, keepdims=True) * 0.0 + 0.5, (zz.shape[0], 4))

    fig = plotting.manifold(decode, (2, 2), n=3)
    assert np.all(_mosaic(fig) == 0.5)


# ---- learning_curves -------------------------------------------------------------------------

def test_learning_curves(tmp_path):
    e = np.arange(12)
    history = {
        "train_loss": list(100 / (1 + e)), "val_loss": list(110 / (1 + e)),
        "train_rec": list(90 / (1 + e)), "train_kl": list(10 + 0 * e),
        "val_rec": [None] * 11 + [9.0], "val_kl": [float("nan")] * 11 + [11.0],
        "val_iwae": list(-50 + e), "config": "not a series",
    }
    path = tmp_path / "curves.png"
    fig = plotting.learning_curves(history, path=path)
    _check_png(path)
    loss_ax, split_ax, other_ax = fig.axes
    assert [l.get_label() for l in loss_ax.lines] == ["train_loss", "val_loss"]
    assert [l.get_label() for l in split_ax.lines] == ["train_rec", "train_kl", "val_rec", "val_kl"]
    assert [l.get_label() for l in other_ax.lines] == ["val_iwae"]
    x, y = loss_ax.lines[1].get_data()
    np.testing.assert_array_equal(x, np.arange(1, 13))  # epochs count from 1
    np.testing.assert_allclose(y, history["val_loss"])
    x, y = split_ax.lines[2].get_data()
    assert list(x) == [12] and list(y) == [9.0]  # missing epochs are left out
    assert split_ax.lines[0].get_color() == split_ax.lines[2].get_color()  # train/val rec paired
    assert split_ax.lines[2].get_linestyle() == "--"
    legend = [[t.get_text() for t in ax.get_legend().get_texts()] for ax in fig.axes]
    assert legend == [["train: loss", "validation: loss"],
                      ["train: reconstruction", "train: KL", "validation: reconstruction", "validation: KL"],
                      ["validation: IWAE bound"]]


def test_learning_curves_legends_say_the_keys_in_words():
    keys = ["train_loss", "val_loss", "train_rec", "train_kl", "train_neg_elbo", "val_rec", "val_kl",
            "val_neg_elbo", "val_neg_iwae", "log_likelihood"]
    fig = plotting.learning_curves({k: [3.0, 2.0, 1.0] for k in keys})
    texts = [t.get_text() for ax in fig.axes for t in ax.get_legend().get_texts()]
    assert len(texts) == len(keys) and not any("_" in t for t in texts)
    assert {"validation: \N{MINUS SIGN}ELBO", "validation: \N{MINUS SIGN}IWAE bound",
            "log likelihood"} <= set(texts)
    assert sorted(l.get_label() for ax in fig.axes for l in ax.lines) == sorted(keys)  # keys kept on lines
    other = fig.axes[2]  # the bounds: train solid, validation dashed, one colour per quantity
    styles = {l.get_label(): (l.get_color(), l.get_linestyle()) for l in other.lines}
    assert styles["train_neg_elbo"][0] == styles["val_neg_elbo"][0] != styles["val_neg_iwae"][0]
    assert styles["train_neg_elbo"][1] == "-" and styles["val_neg_elbo"][1] == "--"


def test_learning_curves_only_loss_and_bad_input():
    fig = plotting.learning_curves({"train_loss": [3.0, 2.0, 1.5]})
    assert len(fig.axes) == 1
    with pytest.raises(ValueError, match="non-empty dict"):
        plotting.learning_curves({})
    with pytest.raises(ValueError, match="no numeric per-epoch lists"):
        plotting.learning_curves({"note": "hello"})


def test_learning_curves_skip_numeric_config_entries():
    fig = plotting.learning_curves({"train_loss": [3.0, 2.0, 1.5], "lr": 1e-3, "batch_size": 128,
                                    "table": [[1.0, 2.0], [3.0, 4.0]]})
    assert len(fig.axes) == 1 and [l.get_label() for l in fig.axes[0].lines] == ["train_loss"]
    with pytest.raises(ValueError, match="no numeric per-epoch lists"):
        plotting.learning_curves({"lr": 1e-3})


def test_learning_curves_take_device_scalars_and_any_key(bk):
    # a history of 0-d backend arrays (losses never read back), and a key that is not a str
    losses = [backend.asarray(np.array(v)) for v in (3.0, 2.0, 1.5)]
    fig = plotting.learning_curves({"train_loss": losses, 7: [1.0, 2.0, 3.0]})
    labels = sorted(l.get_label() for ax in fig.axes for l in ax.lines)
    assert labels == ["7", "train_loss"]
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), [3.0, 2.0, 1.5])
