"""MNIST loading and the preprocessing contract.

The preprocessing is part of the hardware contract: a pixel >= ``threshold``
(default 128) is 1, the 28x28 image is centre-cropped (default 20x20, rows and
columns 4..23), and input bit ``i = row * width + col`` of the crop.
"""

from __future__ import annotations

import gzip
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rrambnn.errors import RrambnnError

ENV_VAR = "RRAMBNN_MNIST"

# name stem -> (magic, number of dimensions after the count)
_FILES = {
    "train-images": ("train-images-idx3-ubyte", 2051, 2),
    "train-labels": ("train-labels-idx1-ubyte", 2049, 0),
    "test-images": ("t10k-images-idx3-ubyte", 2051, 2),
    "test-labels": ("t10k-labels-idx1-ubyte", 2049, 0),
}


def _checkout_fallbacks() -> list[Path]:
    """../shared/mnist relative to this checkout (and to the working directory)."""
    here = Path(__file__).resolve().parent.parent  # the project root in a checkout
    candidates = [here.parent / "shared" / "mnist", Path.cwd().parent / "shared" / "mnist"]
    seen, out = set(), []
    for c in candidates:
        if c not in seen:
            seen.add(c)
            out.append(c)
    return out


def find_mnist_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """Resolve the MNIST directory: explicit argument, then $RRAMBNN_MNIST, then ../shared/mnist."""
    if data_dir is not None:
        tried = [("--data", Path(data_dir))]
    elif os.environ.get(ENV_VAR):
        tried = [(f"${ENV_VAR}", Path(os.environ[ENV_VAR]))]
    else:
        tried = [("checkout default", p) for p in _checkout_fallbacks()]
    for _, path in tried:
        if path.is_dir():
            return path
    where = "; ".join(f"{how}: {p}" for how, p in tried)
    raise RrambnnError(
        f"MNIST directory not found (looked in {where}); pass --data DIR or set {ENV_VAR}"
    )


def _locate(directory: Path, stem: str) -> Path:
    names = [stem + ".gz", stem, stem.replace("-idx", ".idx") + ".gz", stem.replace("-idx", ".idx")]
    for name in names:
        p = directory / name
        if p.is_file():
            return p
    raise RrambnnError(f"MNIST file {stem}[.gz] not found in {directory}")


def read_idx(path: Path, magic: int, extra_dims: int) -> np.ndarray:
    """Read one IDX file (.gz or raw), validating magic number, header and length."""
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise RrambnnError(f"{path}: cannot read ({e.__class__.__name__}: {e})") from None
    header_len = 4 * (2 + extra_dims)
    if len(raw) < header_len:
        raise RrambnnError(f"{path}: truncated header ({len(raw)} bytes)")
    got_magic = int.from_bytes(raw[0:4], "big")
    if got_magic != magic:
        raise RrambnnError(f"{path}: bad magic number {got_magic} (expected {magic})")
    dims = [int.from_bytes(raw[4 + 4 * k: 8 + 4 * k], "big") for k in range(1 + extra_dims)]
    if extra_dims and dims[1:] != [28, 28]:
        raise RrambnnError(f"{path}: images are {dims[1]}x{dims[2]}, expected 28x28")
    expected = int(np.prod(dims))
    body = len(raw) - header_len
    if body != expected:
        raise RrambnnError(
            f"{path}: truncated or corrupt: header says {dims[0]} items ({expected} bytes), "
            f"file has {body} bytes of data"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_len).reshape(dims)


@dataclass(frozen=True)
class Preprocess:
    """Binarisation and crop: part of the hardware contract."""

    crop: int = 20
    threshold: int = 128

    def __post_init__(self):
        if not isinstance(self.crop, int) or isinstance(self.crop, bool) or not 1 <= self.crop <= 28:
            raise RrambnnError(f"Crop must be an integer from 1 to 28, not {self.crop!r}")
        if not isinstance(self.threshold, int) or not 1 <= self.threshold <= 255:
            raise RrambnnError(f"Binarisation threshold must be an integer from 1 to 255, not {self.threshold!r}")

    @property
    def offset(self) -> int:
        return (28 - self.crop) // 2

    @property
    def n_inputs(self) -> int:
        return self.crop * self.crop

    def binarise(self, images: np.ndarray) -> np.ndarray:
        return (images >= self.threshold).astype(np.uint8)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """uint8 images (N, 28, 28) -> input bits (N, crop*crop) uint8 in {0,1}."""
        o, c = self.offset, self.crop
        return self.binarise(images[:, o:o + c, o:o + c]).reshape(len(images), c * c)


@dataclass
class MnistSplit:
    images: np.ndarray  # (N, 28, 28) uint8 raw pixels
    labels: np.ndarray  # (N,) uint8


def load_split(split: str, data_dir=None) -> MnistSplit:
    if split not in ("train", "test"):
        raise RrambnnError(f"MNIST split must be 'train' or 'test', not {split!r}")
    directory = find_mnist_dir(data_dir)
    img_stem, img_magic, img_dims = _FILES[f"{split}-images"]
    lab_stem, lab_magic, lab_dims = _FILES[f"{split}-labels"]
    images = read_idx(_locate(directory, img_stem), img_magic, img_dims)
    labels = read_idx(_locate(directory, lab_stem), lab_magic, lab_dims)
    if len(images) != len(labels):
        raise RrambnnError(
            f"{directory}: {split} has {len(images)} images but {len(labels)} labels"
        )
    if not len(labels):
        raise RrambnnError(f"{directory}: the {split} set is empty (0 images)")
    if labels.max() > 9:
        raise RrambnnError(f"{directory}: {split} labels contain {labels.max()}, expected 0..9")
    return MnistSplit(images, labels)
