import gzip
import struct

import numpy as np
import pytest

from rrambnn.errors import RrambnnError
from rrambnn.gen.mnist import ENV_VAR, Preprocess, find_mnist_dir, load_split, read_idx


def write_idx(path, arr, magic, gz=True, cut=0):
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in arr.shape)
    raw = header + arr.astype(np.uint8).tobytes()
    raw = raw[:len(raw) - cut] if cut else raw
    path.write_bytes(gzip.compress(raw) if gz else raw)


def make_dir(tmp_path, n=5, gz=True):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (n, 28, 28))
    labs = rng.integers(0, 10, n)
    sfx = ".gz" if gz else ""
    write_idx(tmp_path / f"t10k-images-idx3-ubyte{sfx}", imgs, 2051, gz)
    write_idx(tmp_path / f"t10k-labels-idx1-ubyte{sfx}", labs, 2049, gz)
    return imgs, labs


@pytest.mark.parametrize("gz", [True, False])
def test_load_small_files(tmp_path, gz):
    imgs, labs = make_dir(tmp_path, gz=gz)
    s = load_split("test", tmp_path)
    assert (s.images == imgs).all() and (s.labels == labs).all()


def test_real_mnist(mnist_test):
    assert mnist_test.images.shape == (10000, 28, 28)
    assert mnist_test.labels.shape == (10000,)
    assert np.bincount(mnist_test.labels).min() > 800


def test_truncated_file(tmp_path):
    make_dir(tmp_path)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((5, 28, 28)), 2051, cut=100)
    with pytest.raises(RrambnnError, match=r"t10k-images-idx3-ubyte.gz: truncated or corrupt: header says 5 items"):
        load_split("test", tmp_path)


def test_corrupt_gzip(tmp_path):
    make_dir(tmp_path)
    p = tmp_path / "t10k-labels-idx1-ubyte.gz"
    p.write_bytes(p.read_bytes()[:20])
    with pytest.raises(RrambnnError, match=r"t10k-labels-idx1-ubyte.gz: cannot read"):
        load_split("test", tmp_path)


def test_bad_magic(tmp_path):
    make_dir(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(5), 1234)
    with pytest.raises(RrambnnError, match="bad magic number 1234 \\(expected 2049\\)"):
        load_split("test", tmp_path)


def test_count_mismatch_and_label_range(tmp_path):
    make_dir(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(4), 2049)
    with pytest.raises(RrambnnError, match="5 images but 4 labels"):
        load_split("test", tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.full(5, 12), 2049)
    with pytest.raises(RrambnnError, match="labels contain 12"):
        load_split("test", tmp_path)


def test_missing_file_and_dir(tmp_path, monkeypatch):
    with pytest.raises(RrambnnError, match=r"MNIST file t10k-images-idx3-ubyte\[.gz\] not found in"):
        load_split("test", tmp_path)
    with pytest.raises(RrambnnError, match=r"MNIST directory not found \(looked in --data: .*nope\)"):
        find_mnist_dir(tmp_path / "nope")
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "envdir"))
    with pytest.raises(RrambnnError, match=r"\$RRAMBNN_MNIST: .*envdir"):
        find_mnist_dir()
    make_dir(tmp_path)
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    assert find_mnist_dir() == tmp_path


def test_preprocess_contract():
    img = np.zeros((1, 28, 28), np.uint8)
    img[0, 4, 4] = 128  # first pixel of the default 20x20 crop, exactly at threshold
    img[0, 4, 5] = 127  # just below
    img[0, 23, 23] = 255  # last pixel of the crop
    img[0, 3, 3] = 255  # outside the crop
    bits = Preprocess()(img)
    assert bits.shape == (1, 400) and bits.dtype == np.uint8
    assert bits[0, 0] == 1 and bits[0, 1] == 0 and bits[0, 399] == 1 and bits.sum() == 2
    b16 = Preprocess(crop=16)(img)  # rows/cols 6..21
    assert b16.shape == (1, 256) and b16.sum() == 0
    img[0, 6, 7] = 200
    assert Preprocess(crop=16)(img)[0, 1] == 1  # bit i = row*width + col


@pytest.mark.parametrize("crop", [0, 29, "20", True])
def test_bad_crop(crop):
    with pytest.raises(RrambnnError, match="Crop must be an integer from 1 to 28"):
        Preprocess(crop=crop)


def test_read_idx_header_too_short(tmp_path):
    p = tmp_path / "x"
    p.write_bytes(b"\x00\x00")
    with pytest.raises(RrambnnError, match="truncated header"):
        read_idx(p, 2049, 0)
