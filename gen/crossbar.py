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

import contextlib
import copy
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from rrambnn.errors import RrambnnError

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
_POOL: list = []
# a child process forked after the pool started has the pool's bookkeeping but not its threads
os.register_at_fork(after_in_child=_POOL.clear)
_STEPPED = (np.random.PCG64, np.random.PCG64DXSM)  # advance(n) = n raw 64-bit draws


def _pool(threads: int) -> ThreadPoolExecutor:
    """One pool of worker threads for the process (created on first use)."""
    if not _POOL:
        _POOL.append(ThreadPoolExecutor(threads, thread_name_prefix="crossbar"))
    return _POOL[0]


def lane_threads() -> int:
    """Threads for the lanes of :class:`Disturbed`: ``Disturbed.THREADS`` if set, else
    ``RRAMBNN_THREADS`` if set (a positive integer), else the cores this process may run on; at
    most :data:`Disturbed.LANES`."""
    n = Disturbed.THREADS
    if n is None:
        text = os.environ.get("RRAMBNN_THREADS", "").strip()
        if text:
            try:
                n = int(text)
            except ValueError:
                n = 0
            if n < 1:
                raise RrambnnError(f"RRAMBNN_THREADS must be a positive integer, not {text!r}")
        else:
            n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(Disturbed.LANES, n))


def own_cores(active: bool = True):
    """A context for a run of disturbed reads (:class:`Disturbed`) whose lanes use the cores
    themselves (more than one lane thread): BLAS single-threaded while it lasts (an idle BLAS
    thread pool spinning on the other core slows the lanes down; the training's own matrix
    products are small enough not to miss it). Otherwise nothing."""
    if not active or lane_threads() <= 1:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits
    return threadpool_limits(1, user_api="blas")


class Disturbed:
    """One read of every driven cell with the training literature's read disturbance: each weight a
    read uses is ``w (1 + u)``, ``u ~ U[-d, d]`` drawn afresh for every read, i.e. for every sample
    (and every convolution window) and every driven word line (a row at 0 is not read: it adds
    nothing whatever its cells hold). ``u`` is drawn at 16-bit resolution,
    ``u = d (k + 1/2) / 2^15`` with ``k`` uniform on -2^15 .. 2^15 - 1 (raw 64-bit draws of the
    generator's bit generator, four codes each), so it is symmetric and inside (-d, d).

    ``x`` (P, rows) real codes (one read per row of ``x``), ``w`` (rows, cols); :attr:`sums` the
    disturbed column sums (P, cols). The backward pass differentiates the read that was made
    (:meth:`grads`): it replays the same draws from a copy of the bit generator's state.

    How it is computed: a code is drawn for every cell of every read that drives any row, driven
    or not, laid out (reads, cols, rows) in chunks of reads small enough to stay in cache (a read
    of all zeros reads nothing and draws nothing). With
    ``a (1 + u) = a (1 + d/2^16) + (d/2^15) a k`` for a driven cell's product ``a``, the first part
    is the clean BLAS product scaled and the second a batched product of each read's
    ``(d/2^15) w k`` (a small matrix) with its inputs. The codes of cells whose row was not
    driven are drawn and never used (they multiply an input of 0; the input gradient there goes
    through ``w``), so the driven cells' draws are still independent and uniform."""

    CHUNK_CELLS = 1 << 17  # codes per chunk
    LANES = 2  # the chunks are split into this many runs of consecutive chunks, each summed on its own
    THREADS: int | None = None  # threads running the lanes (None: :func:`lane_threads` decides)

    def __init__(self, x: np.ndarray, w: np.ndarray, d: float, rng: np.random.Generator, dtype=np.float32):
        x = np.asarray(x)
        self.dtype = dtype
        self.x = x.astype(dtype, copy=False)
        self.w = np.asarray(w, dtype)
        self.scale = dtype(d / (U_LEVELS // 2))
        self.half = dtype(d / U_LEVELS)  # scale / 2: the codes' half-step offset
        self.swT = self.scale * np.ascontiguousarray(self.w.T)
        live = np.flatnonzero(np.any(x != 0, axis=1))  # the reads that drive a row
        self.live = slice(None) if len(live) == len(x) else live  # every read: no gathering
        self.xl = self.x[self.live]
        n, (rows, cols) = len(live), self.w.shape
        step = max(1, min(n, self.CHUNK_CELLS // max(rows * cols, 1)))
        self.spans = [(s, min(n, s + step)) for s in range(0, n, step)]
        self.words = [-(-rows * cols * (e - s) // 4) for s, e in self.spans]  # raw draws of each chunk
        self._bits = copy.deepcopy(rng.bit_generator)
        noise = np.empty((n, cols), dtype)

        def chunk(i, k, _):
            s, e = self.spans[i]
            t = np.multiply(k, self.swT, dtype=dtype)
            noise[s:e] = np.matmul(t, self.xl[s:e, :, None])[:, :, 0]

        self._lanes(rng.bit_generator, chunk)
        self.sums = self.x @ self.w
        self.sums += self.half * self.sums
        self.sums[self.live] += noise

    def _lanes(self, bits, chunk, acc_shape=None):
        """``chunk(i, k, acc)`` for every chunk ``i`` with its codes ``k`` (reads, cols, rows, int16)
        drawn from ``bits`` in order: each chunk takes whole 64-bit draws (the codes left over in
        its last one are not used, so the stream depends on the chunk size) and ``bits`` ends as
        if it had made them all itself. With a bit generator that can jump ahead by a number of
        draws (PCG64, PCG64DXSM), the chunks go in :data:`LANES` runs of consecutive chunks, each
        with its own accumulator of ``acc_shape`` (if any) and its own copy of the bit generator
        advanced to the run's first draw, run by up to :func:`lane_threads` threads; with any other
        one, in one run on the calling thread. Returns the accumulators' sum, in lane order: the
        result does not depend on the threads."""
        rows, cols = self.w.shape
        lanes = min(self.LANES, len(self.spans)) if isinstance(bits, _STEPPED) else min(1, len(self.spans))
        bounds = [len(self.spans) * j // max(lanes, 1) for j in range(lanes + 1)]
        start = np.concatenate([[0], np.cumsum(self.words, dtype=np.int64)])
        accs = [np.zeros(acc_shape, self.dtype) if acc_shape is not None else None for _ in range(lanes)]

        def run(j, b):
            for i in range(bounds[j], bounds[j + 1]):
                s, e = self.spans[i]
                k = b.random_raw(self.words[i]).view(np.int16)[:rows * cols * (e - s)].reshape(e - s, cols, rows)
                chunk(i, k, accs[j])

        if lanes == 1:
            run(0, bits)
        elif lanes > 1:
            copies = []
            for j in range(lanes):
                b = copy.deepcopy(bits)
                b.advance(int(start[bounds[j]]))
                copies.append(b)
            threads = lane_threads()
            if threads > 1:
                list(_pool(threads).map(run, range(lanes), copies))
            else:
                for j in range(lanes):
                    run(j, copies[j])
            kept = bits.state  # advance() drops a buffered 32-bit half-draw; serial raw draws keep it
            bits.advance(int(start[-1]))
            moved = bits.state
            moved["has_uint32"], moved["uinteger"] = kept["has_uint32"], kept["uinteger"]
            bits.state = moved
        if acc_shape is None:
            return None
        total = accs[0] if accs else np.zeros(acc_shape, self.dtype)
        for a in accs[1:]:
            total += a
        return total

    def _replay(self, chunk, acc_shape=None):
        return self._lanes(copy.deepcopy(self._bits), chunk, acc_shape)

    def draws(self) -> np.ndarray:
        """``u`` of every cell of every read (P, rows, cols), float64; 0 where the row was not driven."""
        k = np.zeros(self.x.shape[:1] + self.swT.shape, np.int16)

        def chunk(i, codes, _):
            s, e = self.spans[i]
            k[np.arange(len(self.x))[self.live][s:e]] = codes

        self._replay(chunk)
        return np.where(self.x[:, :, None] != 0, (k.transpose(0, 2, 1) + 0.5) * float(self.scale), 0.0)

    def grads(self, dy: np.ndarray, inputs: bool = True):
        """(dL/dw, dL/dx) of the disturbed read for the upstream gradient ``dy`` (P, cols); dL/dx
        is None unless ``inputs``. dL/dx goes through ``w (1 + u)`` where the row was driven (the
        draw that was read), through ``w`` where it was not (no cell was read there)."""
        dy = np.asarray(dy, self.dtype)
        dyl = dy[self.live]
        dx = dy @ self.w.T if inputs else None
        noise = self.half * dx[self.live] if inputs else None  # the driven cells' half-step offset

        def chunk(i, k, gw):
            s, e = self.spans[i]
            t = np.multiply(k, self.xl[s:e, None, :], dtype=self.dtype)
            gw += np.matmul(t.transpose(1, 2, 0), dyl[s:e].T[:, :, None])[:, :, 0]  # sum x dy k, (cols, rows)
            if inputs:
                np.multiply(k, self.swT, out=t, dtype=self.dtype)
                noise[s:e] += np.matmul(dyl[s:e, None, :], t)[:, 0, :]
                noise[s:e] *= self.xl[s:e] != 0

        gw = self._replay(chunk, self.swT.shape)
        if inputs:
            dx[self.live] += noise
        g = self.x.T @ dy
        g += self.half * g
        g += self.scale * gw.T
        return g, dx
