"""Multi-bit weights stored in binary cells, with the device model, vectorised.

A weight is an n-bit sign-magnitude code held by n cells of the same (row, column)
in n *planes* of arrays:

* plane 0: the sign cell (1 = LRS = positive). The forward pass reads only this plane:
  it is the inference crossbar, with the same tiling and tile seeds as the inference chip.
* plane b (1 <= b < n): bit b-1 of the magnitude m (plane 1 = least significant bit).

Value ``v = +m`` if the sign cell is 1, else ``-m``; ``m`` in [0, M], ``M = 2**(n-1) - 1``.
An update by ``d`` gives ``v' = clip(v + d, -M, M)``; the sign cell follows the sign of
``v'``, and keeps its state when ``v' == 0`` (no pulse for a zero crossing that lands on 0).

Every plane is made of tiles with the device rules of :mod:`rrambnn.gen.device` (fault map,
per-tile xorshift32 pulse generator, endurance, write-verify with retries). Plane 0 uses the
inference chip's tile seeds; plane b > 0 uses ``tile_seed(seed, layer, br, bc, plane=b)``.

Write order (the hardware weight-update controller uses the same): weights in command order
(a rank-1 command goes row by row, increasing column inside a row), and inside one weight the
magnitude cells from the least significant up, then the sign cell last. Each cell is written
with write-verify: pulse, read back, up to 1 + retries pulses, then reported failed.

:class:`PlaneArrays` applies a whole batch of writes at once with numpy; with pulse failures
it follows each tile's generator stream exactly (segments between failures are vectorised),
so it equals the cell-by-cell model of :mod:`rrambnn.gen.device` bit for bit.
"""

from __future__ import annotations

import numpy as np

from rrambnn.errors import RrambnnError
from rrambnn.gen import crossbar
from rrambnn.gen import device as dev

MAX_BITS = 12


def check_bits(n) -> int:
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or not 2 <= n <= MAX_BITS:
        raise RrambnnError(f"Weight bits must be an integer from 2 to {MAX_BITS}, not {n!r}")
    return int(n)


def max_magnitude(n: int) -> int:
    return (1 << (n - 1)) - 1


def plane_order(n: int) -> list[int]:
    """The order cells of one weight are written: magnitude LSB .. MSB, then the sign."""
    return list(range(1, n)) + [0]


# -- codes <-> cells -----------------------------------------------------------------

def encode(values: np.ndarray, n: int, sign_if_zero=None) -> np.ndarray:
    """Values in [-M, M] -> cells (n, ...) uint8. Zero takes ``sign_if_zero`` (default 1)."""
    values = np.asarray(values, np.int64)
    m = np.abs(values)
    if (m > max_magnitude(n)).any():
        raise ValueError("value out of range for the weight bits")
    sign = np.where(values > 0, 1, np.where(values < 0, 0, 1 if sign_if_zero is None else sign_if_zero))
    planes = [sign.astype(np.uint8)]
    planes += [((m >> (b - 1)) & 1).astype(np.uint8) for b in range(1, n)]
    return np.stack(planes)


def decode(cells: np.ndarray) -> np.ndarray:
    """Cells (n, ...) -> values (sign-magnitude)."""
    n = cells.shape[0]
    m = np.zeros(cells.shape[1:], np.int64)
    for b in range(1, n):
        m |= cells[b].astype(np.int64) << (b - 1)
    return np.where(cells[0] == 1, m, -m)


def updated(cells: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """New cells after adding ``delta`` (saturating), for cells (n, K) and delta (K,)."""
    n = cells.shape[0]
    M = max_magnitude(n)
    v = np.clip(decode(cells) + delta, -M, M)
    return encode(v, n, sign_if_zero=cells[0])


# -- the pulse generator stream, vectorised --------------------------------------------

def _apply_gf2(columns: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Apply the GF(2)-linear map with 32 column images ``columns`` to ``values``."""
    out = np.zeros_like(values)
    for b in range(32):
        out ^= ((values >> np.uint32(b)) & np.uint32(1)) * columns[b]
    return out


_STEP = np.array([dev.xorshift32(1 << b) for b in range(32)], np.uint32)


def xorshift_stream(state: int, n: int) -> np.ndarray:
    """The next ``n`` values of the xorshift32 generator after ``state`` (uint32 array).

    xorshift32 is linear over GF(2): the stream is grown by doubling, applying the
    matrix of 2**k steps to the 2**k values already known."""
    if n <= 0:
        return np.zeros(0, np.uint32)
    out = np.array([dev.xorshift32(state)], np.uint32)
    jump = _STEP.copy()  # columns of the matrix for len(out) steps
    while len(out) < n:
        out = np.concatenate([out, _apply_gf2(jump, out)])
        jump = _apply_gf2(jump, jump)
    return out[:n]


# -- arrays with device effects ------------------------------------------------------

class PlaneArrays:
    """The cells of one layer's n planes, with fault maps, switch counters and tile generators.

    ``cells``/``faults``/``counts``: (n, n_in, n_out). ``write`` performs write-verify on an
    ordered list of cells and returns the pulse statistics."""

    def __init__(self, cells: np.ndarray, faults: np.ndarray, *, layer: int, tile, params: dev.DeviceParams,
                 retries: int):
        self.n, self.n_in, self.n_out = cells.shape
        self.layer, self.tile, self.params, self.retries = layer, tuple(tile), params, retries
        self.faults = faults.astype(np.int8)
        self.cells = np.where(self.faults == dev.STUCK_LRS, 1,
                              np.where(self.faults == dev.STUCK_HRS, 0, cells)).astype(np.uint8)
        self.counts = np.zeros(cells.shape, np.int64)
        self.threshold = dev.fail_threshold(params.p_fail)
        R, C = self.tile
        self._gens = {}
        for p in range(self.n):
            for br in range(-(-self.n_in // R)):
                for bc in range(-(-self.n_out // C)):
                    self._gens[p, br, bc] = TileGenerator(dev.tile_seed(params.seed, layer, br, bc, plane=p))
        self._skips = np.zeros(len(self._gens), np.int64)  # draws of vectorised writes, not yet applied

    @property
    def rng(self) -> dict:
        """Each tile's generator state (what the hardware's tile register holds now)."""
        self._flush_skips()
        return {k: g.state() for k, g in self._gens.items()}

    def transposed_read(self, xc: np.ndarray) -> np.ndarray:
        """The transposed read of every plane: column inputs ``xc`` (n_out,) in {0, 1} drive the
        bit lines and each row senses ``2 * popcount(xc AND row) - popcount(xc)`` (the forward
        read's digital twin with rows and columns exchanged; the same cells, stuck ones as they
        are held). Tiles split along the columns add their partial row sums. (n, n_in) int64."""
        xc = np.asarray(xc, np.int64)
        if xc.shape != (self.n_out,) or not np.isin(xc, (0, 1)).all():
            raise RrambnnError(f"a transposed read of layer {self.layer} takes {self.n_out} column bits")
        return crossbar.transposed_read(xc, 2 * self.cells.astype(np.int64) - 1)

    def stuck_or_worn(self, p: int, rows, cols) -> np.ndarray:
        bad = self.faults[p, rows, cols] != dev.HEALTHY
        if self.params.endurance:
            bad |= self.counts[p, rows, cols] >= self.params.endurance
        return bad

    def write(self, p: int, rows: np.ndarray, cols: np.ndarray, want: np.ndarray, order: np.ndarray):
        """Write-verify cells (p, rows[k], cols[k]) to ``want[k]`` (only cells that differ are
        given). ``order[k]`` is each cell's position in the hardware's write sequence; every
        tile sees its cells in that order. Returns (pulses_set, pulses_reset, failed order keys)."""
        self._flush_skips()
        R, C = self.tile
        n_set = n_reset = 0
        failed = []
        tile_id = (rows // R) * 65536 + cols // C
        for tid in np.unique(tile_id):
            sel = np.flatnonzero(tile_id == tid)
            sel = sel[np.argsort(order[sel], kind="stable")]
            r, c, w = rows[sel], cols[sel], want[sel]
            key = (p, int(tid) // 65536, int(tid) % 65536)
            attempts, ok = self._tile_write(key, p, r, c)
            n_set += int(attempts[w == 1].sum())
            n_reset += int(attempts[w == 0].sum())
            self.cells[p, r[ok], c[ok]] = w[ok]
            self.counts[p, r[ok], c[ok]] = np.minimum(self.counts[p, r[ok], c[ok]] + 1, dev.MASK32)
            failed.extend(order[sel][~ok].tolist())
        return n_set, n_reset, failed

    def write_batch(self, p: np.ndarray, rows: np.ndarray, cols: np.ndarray, want: np.ndarray, order: np.ndarray):
        """:meth:`write` for cells of several planes at once (no cell twice): (plane ``p[k]``,
        rows[k], cols[k]). Without pulse failures the outcome of a write does not depend on the
        generator streams, only how far each tile's generator advances, so the whole batch is
        one vectorised step; with pulse failures each plane goes through :meth:`write`."""
        if self.threshold != 0:
            n_set = n_reset = 0
            failed = []
            for q in np.unique(p):
                sel = np.flatnonzero(p == q)
                s, r, f = self.write(int(q), rows[sel], cols[sel], want[sel], order[sel])
                n_set, n_reset = n_set + s, n_reset + r
                failed += f
            return n_set, n_reset, failed
        R, C = self.tile
        bad = self.faults[p, rows, cols] != dev.HEALTHY
        if self.params.endurance:
            bad |= self.counts[p, rows, cols] >= self.params.endurance
        ok = ~bad
        attempts = np.where(bad, 1 + self.retries, 1)
        n_set = int(attempts[want == 1].sum())
        n_reset = int(attempts.sum()) - n_set
        po, ro, co = p[ok], rows[ok], cols[ok]
        self.cells[po, ro, co] = want[ok]
        self.counts[po, ro, co] = np.minimum(self.counts[po, ro, co] + 1, dev.MASK32)
        rb, cb = -(-self.n_in // R), -(-self.n_out // C)
        tid = (p * rb + rows // R) * cb + cols // C
        self._skips += np.bincount(tid, weights=attempts, minlength=self.n * rb * cb).astype(np.int64)
        return n_set, n_reset, order[bad]

    def _flush_skips(self):
        """Advance every tile's generator by the draws the vectorised writes used."""
        R, C = self.tile
        rb, cb = -(-self.n_in // R), -(-self.n_out // C)
        for t in np.flatnonzero(self._skips):
            p, rest = divmod(int(t), rb * cb)
            self._gens[p, rest // cb, rest % cb].skip(int(self._skips[t]))
        self._skips[:] = 0

    def _tile_write(self, key, p, r, c):
        """Attempts per cell and success per cell for one tile, advancing its generator."""
        K = len(r)
        tries = 1 + self.retries
        bad = self.stuck_or_worn(p, r, c)
        gen = self._gens[key]
        if self.threshold == 0:  # pulses never fail: only the number of draws matters
            attempts = np.where(bad, tries, 1)
            gen.skip(int(attempts.sum()))
            return attempts, ~bad
        stream = gen.peek(K * tries)
        fails = stream < np.uint32(self.threshold)
        fail_pos = np.flatnonzero(fails)
        bad_idx = np.flatnonzero(bad)
        attempts = np.ones(K, np.int64)
        ok = np.ones(K, bool)
        i = pos = 0  # next cell, next stream position
        while i < K:
            # cells i.. succeed with one draw each until a bad cell or a failing draw
            b = np.searchsorted(bad_idx, i)
            nb = int(bad_idx[b]) if b < len(bad_idx) else K
            f = np.searchsorted(fail_pos, pos)
            nf = i + int(fail_pos[f] - pos) if f < len(fail_pos) else K
            j = min(nb, nf, K)
            pos += j - i
            i = j
            if i >= K:
                break
            if bad[i]:
                attempts[i], ok[i] = tries, False
                pos += tries
            else:  # draws until one passes, at most `tries`
                a = 0
                while a < tries and fails[pos + a]:
                    a += 1
                attempts[i], ok[i] = min(a + 1, tries), a < tries
                pos += attempts[i]
            i += 1
        gen.skip(pos)
        return attempts, ok


class TileGenerator:
    """A tile's xorshift32 generator, read in blocks (``peek``) and advanced lazily (``skip``)."""

    BLOCK = 1 << 16

    def __init__(self, seed: int):
        self._base = seed  # state before self._buf[0]
        self._buf = np.zeros(0, np.uint32)
        self._pos = 0  # draws consumed from the buffer
        self._pending = 0  # draws skipped beyond the buffer, not generated yet

    def _materialise(self):
        if self._pending:
            self._base = self.state()
            self._buf, self._pos, self._pending = np.zeros(0, np.uint32), 0, 0

    def state(self) -> int:
        if self._pending:
            start = int(self._buf[-1]) if len(self._buf) else self._base
            return jump(start, self._pending)
        return int(self._buf[self._pos - 1]) if self._pos else self._base

    def peek(self, n: int) -> np.ndarray:
        """The next n draws, without consuming them."""
        self._materialise()
        if self._pos + n > len(self._buf):
            start = self.state()
            self._buf = xorshift_stream(start, max(n, self.BLOCK))
            self._base, self._pos = start, 0
        return self._buf[self._pos:self._pos + n]

    def skip(self, n: int):
        room = len(self._buf) - self._pos
        if self._pending == 0 and n <= room:
            self._pos += n
        else:
            if self._pending == 0:
                self._pos, n = len(self._buf), n - room
            self._pending += n


def jump(state: int, steps: int) -> int:
    """The generator state ``steps`` draws after ``state`` (matrix power by squaring)."""
    result = np.array([state], np.uint32)
    power = _STEP.copy()
    while steps:
        if steps & 1:
            result = _apply_gf2(power, result)
        steps >>= 1
        if steps:
            power = _apply_gf2(power, power)  # the map squared
    return int(result[0])


def plane_arrays(arch, codes_cells, params: dev.DeviceParams, *, tile=(128, 128), retries: int = 3,
                 faults=None) -> list[PlaneArrays]:
    """One :class:`PlaneArrays` per layer; fault maps per plane from the yield and seed
    (plane 0's are the inference chip's maps) unless ``faults`` (per layer, (n, n_in, n_out))."""
    if faults is None:
        faults = plane_faults(arch, params, codes_cells[0].shape[0])
    return [PlaneArrays(cells, faults[k], layer=k, tile=tile, params=params, retries=retries)
            for k, cells in enumerate(codes_cells)]


def plane_faults(arch, params: dev.DeviceParams, n: int) -> list[np.ndarray]:
    """Fault maps (n, n_in, n_out) per layer from the yield and seed; plane 0's are the
    inference chip's maps."""
    maps = [dev.fault_maps(arch, params.yield_, params.seed, plane=p) for p in range(n)]
    return [np.stack([maps[p][k] for p in range(n)]) for k in range(len(arch) - 1)]
