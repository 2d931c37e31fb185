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


U_LEVELS = 1 << 16  # the read disturbance's draws: 16-bit uniform codes


class Disturbed:
    """One read of every driven cell with the training literature's read disturbance: each weight a
    read uses is ``w (1 + u)``, ``u ~ U[-d, d]`` drawn afresh for every read, i.e. for every sample
    (and every convolution window) and every driven word line (a row at 0 is not read: it adds
    nothing whatever its cells hold). ``u`` is drawn at 16-bit resolution,
    ``u = d (k + 1/2 - 2^15) / 2^15`` with ``k`` uniform on 0 .. 2^16 - 1 (raw 64-bit draws of the
    generator's bit generator, four codes each), so it is symmetric and inside (-d, d).

    ``x`` (P, rows) real codes (one read per row of ``x``), ``w`` (rows, cols); :attr:`sums` the
    disturbed column sums (P, cols). The draws are kept so the backward pass differentiates the
    read that was made (:meth:`grad_w`, :meth:`grad_x`). The driven cells are processed in
    blocks small enough to stay in cache."""

    BLOCK = 1 << 14  # driven cells per block

    def __init__(self, x: np.ndarray, w: np.ndarray, d: float, rng: np.random.Generator, dtype=np.float32):
        x = np.asarray(x)
        self.dtype = dtype
        self.x = x.astype(dtype, copy=False)
        self.w = np.asarray(w, dtype)
        self.scale = dtype(d / (U_LEVELS // 2))
        self.p, self.r = np.nonzero(x)
        self.v = x[self.p, self.r].astype(dtype, copy=False)
        n, cols = len(self.p), self.w.shape[1]
        words = -(-n * cols // 4)
        self.k = rng.bit_generator.random_raw(words).view(np.uint16)[:n * cols].reshape(n, cols)
        self.sums = self.x @ self.w
        for p, r, v, u in self._blocks():
            t = self.w[r]
            t *= u
            t *= v[:, None]
            first = np.flatnonzero(np.r_[True, p[1:] != p[:-1]])  # the block's reads (p is sorted)
            self.sums[p[first]] += self.scale * np.add.reduceat(t, first, axis=0)

    def _blocks(self):
        """(positions, rows, codes, centred draws) of each block of driven cells."""
        for s in range(0, len(self.p), self.BLOCK):
            e = s + self.BLOCK
            u = self.k[s:e].astype(self.dtype)
            u -= self.dtype((U_LEVELS - 1) / 2)
            yield self.p[s:e], self.r[s:e], self.v[s:e], u

    def grad_w(self, dy: np.ndarray) -> np.ndarray:
        """dL/dw of the disturbed read for the upstream gradient ``dy`` (P, cols)."""
        g = self.x.T @ dy
        for p, r, v, u in self._blocks():
            t = dy[p]
            t *= u
            t *= v[:, None]
            order = np.argsort(r.astype(np.uint16) if len(g) <= 1 << 16 else r, kind="stable")  # radix sort
            rs = r[order]
            first = np.flatnonzero(np.r_[True, rs[1:] != rs[:-1]])
            g[rs[first]] += self.scale * np.add.reduceat(t[order], first, axis=0)
        return g

    def grad_x(self, dy: np.ndarray) -> np.ndarray:
        """dL/dx of the disturbed read (P, rows): through ``w (1 + u)`` where the row was driven
        (the draw that was read), through ``w`` where it was not (no cell was read there)."""
        dx = dy @ self.w.T
        for p, r, v, u in self._blocks():
            t = dy[p]
            t *= self.w[r]
            dx[p, r] += self.scale * np.einsum("ic,ic->i", t, u)
        return dx
