"""The IDX parser and the MNIST loader, on small IDX files written here: no network.

Downloads are tested against a local HTTP server (and a dead port), never the real
mirrors, so the suite neither needs nor uses the internet.
"""

import functools
import gzip
import hashlib
import http.server
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from scratchvae import datasets
from scratchvae.datasets import mnist
from scratchvae.datasets.idx import read_idx, write_idx


# ---- IDX ------------------------------------------------------------------------------

def test_read_idx_parses_header_and_big_endian(tmp_path):
    raw = bytes([0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3]) + bytes(range(6))
    (tmp_path / "plain").write_bytes(raw)
    (tmp_path / "zipped").write_bytes(gzip.compress(raw))  # gzip found by magic, not name
    for name in ("plain", "zipped"):
        a = read_idx(tmp_path / name)
        assert a.dtype == np.uint8 and a.shape == (2, 3)
        np.testing.assert_array_equal(a, [[0, 1, 2], [3, 4, 5]])
    # int16 0x0B, 1-D of 2: values 0x0102 = 258 and 0xFFFE = -2, big-endian
    raw = bytes([0, 0, 0x0B, 1, 0, 0, 0, 2, 0x01, 0x02, 0xFF, 0xFE])
    (tmp_path / "i16").write_bytes(raw)
    a = read_idx(tmp_path / "i16")
    assert a.dtype == np.int16 and a.dtype.isnative
    np.testing.assert_array_equal(a, [258, -2])


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
@pytest.mark.parametrize("name", ["x.idx", "x.idx.gz"])
def test_idx_roundtrip(tmp_path, dtype, name):
    a = (np.arange(2 * 3 * 4) - 5).reshape(2, 3, 4).astype(dtype) if dtype != "uint8" else \
        np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / name, a)
    assert ((tmp_path / name).read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")
    b = read_idx(tmp_path / name)
    assert b.dtype == a.dtype and b.shape == a.shape
    np.testing.assert_array_equal(b, a)


def test_write_idx_rejects_unknown_dtype(tmp_path):
    with pytest.raises(ValueError, match="IDX cannot store dtype int64"):
        write_idx(tmp_path / "x", np.arange(3))


def _header(code=0x08, dims=(2, 3)):
    return bytes([0, 0, code, len(dims)]) + np.asarray(dims, dtype=">u4").tobytes()


@pytest.mark.parametrize("raw, message", [
    (b"\x01\x00\x08\x01" + bytes(8), "is not an IDX file: its magic number starts with bytes 0x01 0x00"),
    (_header(code=0x07) + bytes(6), "unknown dtype code 0x07"),
    (_header() + bytes(5), r"wrong length: its header says shape \(2, 3\) of uint8 \(6 data bytes\) "
                           r"but it holds 5 data bytes \(truncated\)"),
    (_header() + bytes(7), r"holds 7 data bytes \(trailing bytes\)"),
    (_header(dims=(2, 3))[:9], "truncated inside its header"),
    (b"\x00\x00", "too short for a header"),
    # 65536**4 = 2**64 values: an int64 product wraps to 0, which matched the empty data
    (_header(dims=(65536,) * 4), r"wrong length.*\(65536, 65536, 65536, 65536\).*truncated"),
    (gzip.compress(_header() + bytes(6))[:-6], "cannot be decompressed"),
])
def test_read_idx_rejects_bad_files_naming_them(tmp_path, raw, message):
    path = tmp_path / "broken-file.idx"
    path.write_bytes(raw)
    with pytest.raises(ValueError, match=message) as info:
        read_idx(path)
    assert "broken-file.idx" in str(info.value) and "download it again" in str(info.value)


# ---- small MNIST folders ----------------------------------------------------------------

N_TRAIN, N_TEST = 60, 20


def _fake_mnist(n_train=N_TRAIN, n_test=N_TEST, seed=0, shape=(28, 28)):
    rng = np.random.default_rng(seed)
    return {
        "train_images": rng.integers(0, 256, (n_train,) + shape, dtype=np.uint8),
        "train_labels": rng.integers(0, 10, n_train).astype(np.uint8),
        "test_images": rng.integers(0, 256, (n_test,) + shape, dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test).astype(np.uint8),
    }


def _write(folder: Path, arrays, style="gz"):
    folder.mkdir(parents=True, exist_ok=True)
    for key, a in arrays.items():
        gz = mnist.FILES[key]
        name = {"gz": gz, "plain": gz[:-3], "dotted": gz[:-3].replace("-idx", ".idx")}[style]
        write_idx(folder / name, a)
    return folder


@pytest.mark.parametrize("style", ["gz", "plain", "dotted"])
def test_read_mnist_from_a_folder(tmp_path, style):
    arrays = _fake_mnist()
    _write(tmp_path, arrays, style)
    x_train, y_train, x_test, y_test = mnist.read_mnist(tmp_path, mirrors=())
    assert x_train.shape == (N_TRAIN, 784) and x_test.shape == (N_TEST, 784)
    np.testing.assert_array_equal(x_train, arrays["train_images"].reshape(N_TRAIN, 784))
    np.testing.assert_array_equal(y_test, arrays["test_labels"])
    assert y_train.dtype == np.int64


def test_load_mnist_from_a_folder_splits_and_scales(tmp_path):
    arrays = _fake_mnist()
    _write(tmp_path, arrays)
    ds = datasets.load("mnist", split_seed=2, data_dir=tmp_path)
    assert ds.image_shape == (28, 28) and ds.n_classes == 10 and ds.name == "mnist"
    # 1/6 of the training file is validation (10,000 of 60,000 for the real one)
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (50, 10, 20)
    train, val, _ = datasets.split_indices(N_TRAIN, 10, 0, seed=2)
    flat = arrays["train_images"].reshape(N_TRAIN, 784)
    np.testing.assert_array_equal(ds.x_val, flat[val] / np.float32(255))
    np.testing.assert_array_equal(ds.y_train, arrays["train_labels"][train])
    # the official test set, in file order
    np.testing.assert_array_equal(ds.x_test, arrays["test_images"].reshape(N_TEST, 784) / np.float32(255))
    assert ds.x_train.dtype == np.float32 and 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    fixed = datasets.load("mnist", split_seed=2, binarize="fixed", data_dir=tmp_path)
    assert set(np.unique(fixed.x_test)) == {0.0, 1.0}


def test_env_var_chooses_the_folder(tmp_path, monkeypatch):
    _write(tmp_path / "classroom", _fake_mnist())
    monkeypatch.setenv("SCRATCHVAE_DATA", str(tmp_path / "classroom"))
    assert mnist.default_data_dir() == tmp_path / "classroom"
    x_train, *_ = mnist.read_mnist(mirrors=())
    assert x_train.shape == (N_TRAIN, 784)


@pytest.mark.parametrize("change, message", [
    (dict(shape=(27, 27)), r"images of shape \(27, 27\), expected \(28, 28\)"),
    (dict(labels=5), "holds 60 images but .* holds 5 labels"),
    (dict(label_value=12), "labels up to 12"),
    (dict(labels_2d=True), "should hold MNIST labels"),
])
def test_read_mnist_rejects_wrong_contents(tmp_path, change, message):
    arrays = _fake_mnist(shape=change.get("shape", (28, 28)))
    if "labels" in change:
        arrays["train_labels"] = arrays["train_labels"][: change["labels"]]
    if "label_value" in change:
        arrays["train_labels"][3] = change["label_value"]
    if "labels_2d" in change:
        arrays["train_labels"] = arrays["train_labels"].reshape(6, 10)
    _write(tmp_path, arrays)
    with pytest.raises(ValueError, match=message):
        mnist.read_mnist(tmp_path, mirrors=())


@pytest.mark.parametrize("part", ["train_images", "test_images", "test_labels"])
def test_read_mnist_rejects_valid_but_empty_files_naming_them(tmp_path, part):
    arrays = _fake_mnist()
    arrays[part] = arrays[part][:0]
    _write(tmp_path, arrays)
    with pytest.raises(ValueError, match=f"{mnist.FILES[part]} is a valid IDX file but holds no MNIST"):
        mnist.read_mnist(tmp_path, mirrors=())


# ---- downloading: fast failure, mirrors, checksums --------------------------------------

def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def no_proxy(monkeypatch):
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)


def _assert_helpful(message: str, folder):
    for piece in ("train-images-idx3-ubyte.gz", str(folder), "SCRATCHVAE_DATA", "data_dir=",
                  "'digits'", "t10k-labels-idx1-ubyte.gz"):
        assert piece in message, piece


def test_offline_fails_fast_with_instructions(tmp_path, no_proxy):
    dead = f"http://127.0.0.1:{_free_port()}/"  # nothing listens: connection refused
    start = time.perf_counter()
    with pytest.raises(mnist.MNISTUnavailable) as info:
        mnist.fetch(tmp_path, mirrors=[dead, dead + "x/"])
    assert time.perf_counter() - start < 20.0
    _assert_helpful(str(info.value), tmp_path)
    assert dead in str(info.value)
    assert not any(tmp_path.iterdir())  # no partial files left behind


def test_one_mirror_as_a_string_is_one_url(tmp_path, no_proxy):
    dead = f"http://127.0.0.1:{_free_port()}/"
    with pytest.raises(mnist.MNISTUnavailable) as info:
        mnist.fetch(tmp_path, mirrors=dead)  # not split into its letters
    message = str(info.value)
    assert f"  {dead}train-images-idx3-ubyte.gz: " in message
    assert f"from one of {dead} and put them" in message


def test_load_offline_uses_the_module_mirror_list(tmp_path, monkeypatch, no_proxy):
    dead = f"http://127.0.0.1:{_free_port()}/"
    monkeypatch.setattr(mnist, "MIRRORS", (dead,))  # read at call time, not import time
    start = time.perf_counter()
    with pytest.raises(mnist.MNISTUnavailable, match="could not be downloaded") as info:
        datasets.load("mnist", data_dir=tmp_path / "none")
    assert time.perf_counter() - start < 20.0
    _assert_helpful(str(info.value), tmp_path / "none")


def test_unroutable_mirror_fails_within_the_connect_timeout(tmp_path, no_proxy):
    # 192.0.2.1 is TEST-NET-1 (RFC 5737): never routed, so only the connect timeout ends it
    assert mnist.TIMEOUT[0] <= 10.0
    start = time.perf_counter()
    with pytest.raises(mnist.MNISTUnavailable):
        mnist.fetch(tmp_path, mirrors=["http://192.0.2.1/mnist/"])
    assert time.perf_counter() - start < 20.0


def test_silent_server_hits_the_read_timeout(tmp_path, no_proxy):
    # a socket that accepts connections (kernel backlog) but never answers
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        url = f"http://127.0.0.1:{srv.getsockname()[1]}/"
        start = time.perf_counter()
        with pytest.raises(mnist.MNISTUnavailable, match="Timeout|timed out"):
            mnist.fetch(tmp_path, mirrors=[url], timeout=(1.0, 1.0))
        assert time.perf_counter() - start < 10.0


@pytest.fixture
def mirror(tmp_path, monkeypatch, no_proxy):
    """A local HTTP mirror serving small MNIST-shaped .gz files, with their SHA-256
    patched in as the published ones."""
    site = _write(tmp_path / "site", _fake_mnist(seed=4))
    monkeypatch.setattr(mnist, "SHA256", {
        f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in site.iterdir()
    })

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield site, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_download_tries_mirrors_in_turn_and_caches(tmp_path, mirror):
    site, url = mirror
    cache = tmp_path / "cache"
    dead = f"http://127.0.0.1:{_free_port()}/"
    paths = mnist.fetch(cache, mirrors=[dead, url])
    assert sorted(p.name for p in paths.values()) == sorted(mnist.FILES.values())
    for p in paths.values():
        assert p.parent == cache and p.read_bytes() == (site / p.name).read_bytes()
    # cached: a second load needs no mirror at all
    ds = datasets.load("mnist", data_dir=cache)
    ref = _fake_mnist(seed=4)
    np.testing.assert_array_equal(ds.y_test, ref["test_labels"])


def test_download_rejects_a_wrong_checksum(tmp_path, mirror, monkeypatch):
    _, url = mirror
    bad = dict(mnist.SHA256)
    bad["t10k-labels-idx1-ubyte.gz"] = "0" * 64
    monkeypatch.setattr(mnist, "SHA256", bad)
    with pytest.raises(mnist.MNISTUnavailable, match="(?s)t10k-labels-idx1-ubyte.gz.*does not match the known hash"):
        mnist.fetch(tmp_path / "cache", mirrors=[url])
    assert not (tmp_path / "cache" / "t10k-labels-idx1-ubyte.gz").exists()  # never kept
