"""The crossbar read: the one place where the golden model computes a column sum.

A crossbar holds signed integer weights in binary cells (one cell per weight for binary
networks, one cell per bit slice or per plane for multi-bit ones: the slices' column currents
are shifted and added) and is driven on its word lines by unsigned integer codes (one bit per
read for binary activations; bit-serial planes added for multi-bit ones). What the sense stage
sees of column ``j`` is the integer

    S_j = sum_i x_i * w_ij

which for one binary slice is the digital twin ``2 * popcount(x AND c_j) - popcount(x)``
(``c`` the cell states, 1 = LRS = +1), and for a convolution the same sum over one im2col window.
Every network of the project (binary, multi-bit, n-bit online, convolutional) and the
transposed read of the self-training chip get their sums from :func:`read`; :func:`twin` is the
bit-level form that tests and cycle-level models check it against. Device effects on reads
(the analog profile: variation, noise, offsets, IR drop) belong here, in one place.

The products are BLAS matrix products and exact: float32 while every partial sum stays below
2^24, float64 below 2^53, int64 beyond.
"""

from __future__ import annotations

import numpy as np

EXACT_F32 = 1 << 24
EXACT_F64 = 1 << 53


def exact_dtype(bound: int):
    """The cheapest dtype whose matrix product is exact for sums of magnitude up to ``bound``."""
    if bound < EXACT_F32:
        return np.float32
    if bound < EXACT_F64:
        return np.float64
    return np.int64


def _absmax(a: np.ndarray) -> int:
    return int(np.abs(a).max()) if a.size else 0


def read(x: np.ndarray, w: np.ndarray, *, bound: int | None = None) -> np.ndarray:
    """Column sums ``x @ w`` of one crossbar read, exactly.

    ``x`` (N, rows) or (rows,) for one sample: non-negative integer codes on the word lines; ``w`` (rows, cols): the
    signed integer weights the columns hold. ``bound`` is an upper bound of every |partial sum|
    (default: rows * max|x| * max|w|). Returns the sums in the product's dtype (float arrays
    hold exact integers): callers compare them with integer thresholds or cast them."""
    x = np.asarray(x)
    w = np.asarray(w)
    if x.ndim == 1:  # one sample: an integer dot product (no conversion of the whole array)
        return x.astype(np.int64, copy=False) @ w.astype(np.int64, copy=False)
    if bound is None:
        bound = x.shape[-1] * _absmax(x) * _absmax(w)
    dt = exact_dtype(bound)
    return x.astype(dt, copy=False) @ w.astype(dt, copy=False)


def read_int(x: np.ndarray, w: np.ndarray, *, bound: int | None = None) -> np.ndarray:
    """:func:`read` as int64."""
    return read(x, w, bound=bound).astype(np.int64)


def read_active(rows: np.ndarray, w: np.ndarray) -> np.ndarray:
    """One sample's read with the word lines ``rows`` at 1 and the others at 0 (int64): what
    :func:`read` gives for that input, summed over the driven rows only (binary inputs are sparse)."""
    return np.asarray(w)[rows].sum(axis=0, dtype=np.int64)


def transposed_read(xc: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The transposed read: column inputs ``xc`` (cols,) drive the bit lines and every row
    senses ``sum_j xc_j * w_ij`` (int64); ``w`` (..., rows, cols), e.g. a layer's planes."""
    return read_int(np.asarray(xc), np.swapaxes(np.asarray(w), -1, -2))


def twin(x: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """The digital twin of one binary slice, bit by bit: ``2*popcount(x AND c_j) - popcount(x)``.

    ``x`` is (N, rows) in {0,1}, ``cells`` is (rows, cols) in {0,1}. Independent of the BLAS
    path on purpose: tests and cycle-level models check :func:`read` against it."""
    xp = np.packbits(x.astype(np.uint8), axis=1)  # (N, bytes)
    cp = np.packbits(cells.astype(np.uint8).T, axis=1)  # (cols, bytes)
    both = np.bitwise_count(xp[:, None, :] & cp[None, :, :]).sum(axis=2, dtype=np.int32)
    return 2 * both - np.bitwise_count(xp).sum(axis=1, dtype=np.int32)[:, None]
