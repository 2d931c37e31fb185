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

import heapq

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

def _tables(columns: np.ndarray) -> np.ndarray:
    """The GF(2)-linear map with 32 column images ``columns`` as four tables of 256 images,
    one per byte of the argument."""
    x = np.arange(256, dtype=np.uint32)
    tables = np.zeros((4, 256), np.uint32)
    for b in range(32):
        tables[b // 8] ^= ((x >> np.uint32(b % 8)) & np.uint32(1)) * columns[b]
    return tables


def _apply(tables: np.ndarray, values: np.ndarray) -> np.ndarray:
    return (tables[0][values & 0xFF] ^ tables[1][(values >> 8) & 0xFF] ^ tables[2][(values >> 16) & 0xFF]
            ^ tables[3][values >> 24])


_STEP = np.array([dev.xorshift32(1 << b) for b in range(32)], np.uint32)
_POWERS: list[np.ndarray] = []  # tables of the maps of 2**k steps, k = 0, 1, ...


def _power(k: int) -> np.ndarray:
    """The tables of the map of 2**k generator steps."""
    while len(_POWERS) <= k:
        if not _POWERS:
            _POWERS.append(_tables(_STEP))
        else:
            last, basis = _POWERS[-1], np.uint32(1) << np.arange(32, dtype=np.uint32)
            _POWERS.append(_tables(_apply(last, _apply(last, basis))))  # the map squared
    return _POWERS[k]


def xorshift_stream(state: int, n: int) -> np.ndarray:
    """The next ``n`` values of the xorshift32 generator after ``state`` (uint32 array).

    xorshift32 is linear over GF(2): the stream is grown by doubling, applying the
    map of 2**k steps to the 2**k values already known."""
    if n <= 0:
        return np.zeros(0, np.uint32)
    out = np.array([dev.xorshift32(state)], np.uint32)
    k = 0
    while len(out) < n:
        out = np.concatenate([out, _apply(_power(k), out)])
        k += 1
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
        self._tile_rc: np.ndarray | None = None  # :meth:`_tile_of`'s table, made on first use

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
        flat = (p * self.n_in + rows) * self.n_out + cols
        bad = self.faults.reshape(-1)[flat] != dev.HEALTHY
        if self.params.endurance:
            bad |= self.counts.reshape(-1)[flat] >= self.params.endurance
        return bad

    def tile_ids(self, p, rows, cols) -> np.ndarray:
        """The generator index of each cell's tile (plane, row block, column block), as
        :meth:`tile_key` numbers them."""
        return self._tile_of(p, rows * self.n_out + cols)

    def _tile_of(self, p, rc) -> np.ndarray:
        """:meth:`tile_ids` from the cells' places in their plane (``row * n_out + col``)."""
        if self._tile_rc is None:  # the tile of every place in a plane, planes numbered after
            R, C = self.tile
            cb = -(-self.n_out // C)
            self._tile_rc = ((np.arange(self.n_in)[:, None] // R) * cb + np.arange(self.n_out) // C).ravel()
        return p * (len(self._gens) // self.n) + self._tile_rc[rc]

    def tile_key(self, tid: int) -> tuple[int, int, int]:
        """(plane, row block, column block) of a tile index."""
        R, C = self.tile
        rb, cb = -(-self.n_in // R), -(-self.n_out // C)
        q, rest = divmod(int(tid), rb * cb)
        return q, rest // cb, rest % cb

    def write(self, p: int, rows: np.ndarray, cols: np.ndarray, want: np.ndarray, order: np.ndarray):
        """Write-verify cells (p, rows[k], cols[k]) to ``want[k]`` (only cells that differ are
        given). ``order[k]`` is each cell's position in the hardware's write sequence; every
        tile sees its cells in that order. Returns (pulses_set, pulses_reset, failed order keys)."""
        return self._write_ordered(np.full(len(rows), p), rows, cols, want, order)

    def _write_ordered(self, p, rows, cols, want, order):
        """Write-verify cells of any planes, every tile taking its cells in ``order``. Returns
        (pulses_set, pulses_reset, failed order keys)."""
        t = self.try_ordered(p, rows, cols, order)
        return self.commit(t, p, rows, cols, want, order)

    def try_ordered(self, p, rows, cols, order, bad=None) -> dict:
        """The outcome of writing these cells, every tile taking its cells in ``order``,
        nothing changed yet: ``by`` (the cells in tile and write order), ``attempts`` and ``ok``
        (in that order), ``used`` draws per tile generator."""
        self._flush_skips()
        tile_id = self.tile_ids(p, rows, cols)
        by = np.lexsort((order, tile_id))
        if not len(by):
            return {"by": by, "attempts": np.zeros(0, np.int64), "ok": np.zeros(0, bool), "used": {}}
        tid = tile_id[by]
        step = np.empty(len(tid), bool)
        step[0], step[1:] = False, tid[1:] != tid[:-1]
        heads = np.flatnonzero(step)
        heads = np.concatenate(([0], heads))
        keys = [self.tile_key(t) for t in tid[heads]]
        bad = self.stuck_or_worn(p[by], rows[by], cols[by]) if bad is None else bad[by]
        attempts, ok = self._outcomes(np.cumsum(step), bad, [self._gens[k] for k in keys], [0] * len(keys))
        return {"by": by, "attempts": attempts, "ok": ok,
                "used": dict(zip(keys, np.add.reduceat(attempts, heads).tolist()))}

    def commit(self, t: dict, p, rows, cols, want, order, sel=None):
        """Write the outcome of :meth:`try_ordered` (only the cells ``sel`` of ``t['by']``'s
        order, when given; the generators always advance by all of ``t``'s draws when ``sel``
        is None). Returns (pulses_set, pulses_reset, failed order keys)."""
        by, attempts, ok = t["by"], t["attempts"], t["ok"]
        if sel is not None:
            by, attempts, ok = by[sel], attempts[sel], ok[sel]
        else:
            for k, used in t["used"].items():
                self._gens[k].skip(used)
        w = want[by]
        n_set = int(attempts[w == 1].sum())
        done = by[ok]
        flat = (p[done] * self.n_in + rows[done]) * self.n_out + cols[done]
        counts = self.counts.reshape(-1)
        self.cells.reshape(-1)[flat] = w[ok]
        counts[flat] = np.minimum(counts[flat] + 1, dev.MASK32)
        return n_set, int(attempts.sum()) - n_set, order[by[~ok]].tolist()

    def write_batch(self, p: np.ndarray, rows: np.ndarray, cols: np.ndarray, want: np.ndarray, order: np.ndarray):
        """:meth:`write` for cells of several planes at once (no cell twice): (plane ``p[k]``,
        rows[k], cols[k]). Without pulse failures the outcome of a write does not depend on the
        generator streams, only how far each tile's generator advances, so the whole batch is
        one vectorised step; with pulse failures every tile follows its generator stream."""
        if self.threshold != 0:
            return self._write_ordered(p, rows, cols, want, order)
        n_set, n_reset, bad = self.write_free(p, rows, cols, want)
        return n_set, n_reset, order[bad]

    def write_free(self, p: np.ndarray, rows: np.ndarray, cols: np.ndarray, want: np.ndarray):
        """:meth:`write_batch` without pulse failures, where no outcome depends on the order:
        returns (pulses_set, pulses_reset, the mask of the cells that failed)."""
        rc = rows * self.n_out + cols
        flat = p * (self.n_in * self.n_out) + rc  # one index into the flattened arrays
        bad = self.faults.reshape(-1)[flat] != dev.HEALTHY
        counts = self.counts.reshape(-1)
        held = counts[flat]
        if self.params.endurance:
            bad |= held >= self.params.endurance
        n_bad = np.count_nonzero(bad)
        extra = self.retries  # the pulses a stuck or worn cell takes beyond one
        tid = self._tile_of(p, rc)
        self._skips += np.bincount(tid, minlength=len(self._skips))
        if n_bad:
            n_set = np.count_nonzero(want) + extra * np.count_nonzero(want[bad])
            if extra:
                self._skips += extra * np.bincount(tid[bad], minlength=len(self._skips))
            good = ~bad
            flat, want, held = flat[good], want[good], held[good]
        else:
            n_set = np.count_nonzero(want)
        self.cells.reshape(-1)[flat] = want
        counts[flat] = np.minimum(held + 1, dev.MASK32)
        return int(n_set), int(len(p) + extra * n_bad - n_set), bad

    def _flush_skips(self):
        """Advance every tile's generator by the draws the vectorised writes used."""
        for t in np.flatnonzero(self._skips):
            self._gens[self.tile_key(t)].skip(int(self._skips[t]))
        self._skips[:] = 0

    def _tile_outcome(self, gen, p, r, c, offset: int = 0):
        """Attempts per cell and success per cell for one tile's cells written in this order,
        from its generator ``gen`` after ``offset`` draws (not advanced: the draws used are
        ``attempts.sum()``)."""
        return self._outcomes(np.zeros(len(r), np.int64), self.stuck_or_worn(p, r, c), [gen], [offset])

    def _outcomes(self, group, bad, gens, offsets):
        """Write-verify outcomes of cells in groups (one tile each: ``group`` nondecreasing, the
        cells of a group in write order; ``gens[g]`` its generator after ``offsets[g]`` draws,
        not advanced): (attempts, ok) per cell. A bad (stuck or worn) cell takes 1 + retries
        pulses and fails; a healthy one takes draws until one passes (at most 1 + retries).

        All tiles at once: every cell is first given its nominal draws (1, or 1 + retries when
        bad); then, round by round, each tile's first healthy cell whose first draw fails gets
        its real count and moves the cells after it. Rounds: the most failing first draws in
        one tile."""
        K = len(group)
        tries = 1 + self.retries
        attempts = np.where(bad, tries, 1).astype(np.int64)
        ok = ~bad
        if self.threshold == 0 or K == 0:
            return attempts, ok
        G = len(gens)
        first = np.searchsorted(group, np.arange(G))
        lengths = np.diff(np.append(first, K)) * tries  # the most draws a tile can use
        base = (np.cumsum(lengths) - lengths)[group]  # each tile's stream, one after the other
        fails = np.concatenate([gen.peek(o + n)[o:] for gen, o, n in zip(gens, offsets, lengths.tolist())]
                               if len(gens) > 1 else [gens[0].peek(offsets[0] + K * tries)[offsets[0]:]])
        fails = fails < np.uint32(self.threshold)
        open_ = ~bad  # healthy cells whose count is not final
        steps = np.arange(tries)
        while True:
            before = np.cumsum(attempts) - attempts
            start = base + before - before[first][group]  # each cell's first draw
            cand = np.flatnonzero(open_)
            hit = cand[fails[start[cand]]]
            if not len(hit):
                return attempts, ok
            g = group[hit]
            ev = hit[np.append(True, g[1:] != g[:-1])]  # each tile's first
            passed = ~fails[start[ev][:, None] + steps]
            some = passed.any(axis=1)
            attempts[ev] = np.where(some, passed.argmax(axis=1) + 1, tries)
            ok[ev] = some
            open_[ev] = False
            # the cells before each tile's event (all of a tile without one) are final: their
            # first draws pass
            event_of = np.full(G, K)
            event_of[group[ev]] = ev
            open_[cand[cand < event_of[group[cand]]]] = False


class _Queue:
    """One tile's cells of an :class:`OrderedWrite`, in write order, and how far they are
    tried (from the generator as it stands) and accepted."""

    __slots__ = ("key", "sel", "keys", "done", "att", "ok", "fails", "chunk")

    def __init__(self, key, sel, keys):
        self.key, self.sel, self.keys = key, sel, keys
        self.done = 0  # cells written (their draws consumed)
        self.att = self.ok = None  # trial of cells done.. (None: to try)
        self.fails = None  # order keys of the failed cells in the trial
        self.chunk = len(sel)  # cells to try next: all at first, a growing chunk after a restore


class OrderedWrite:
    """A batch of write-verify with pulse failures in which a weight with a failed cell is
    followed by a restore pass before the next weight (the weight-update controller's order).

    Each tile's outcome depends only on its own earlier pulses, so its cells are tried ahead,
    in growing chunks, and written lazily; a restore pass only re-tries the tiles it touches.
    Use: ``next_failure()`` gives the next weight (order key // ``span``) with a failed cell
    (None: none left) and accepts every cell up to and including it; :meth:`insert` writes
    cells now (the restore pass); :meth:`finish` writes the rest and returns (pulses_set,
    pulses_reset, failed order keys) of everything but the inserted cells."""

    def __init__(self, arrays: "PlaneArrays", p, rows, cols, want, order, span: int):
        arrays._flush_skips()
        self.a, self.p, self.rows, self.cols, self.want, self.order = arrays, p, rows, cols, want, order
        self.span, self.cut = span, 0  # order keys below cut are accepted
        tile_id = arrays.tile_ids(p, rows, cols)
        width = int(order.max()) + 1 if len(order) else 1
        by_tile = np.argsort(tile_id * width + order, kind="stable")
        ids = tile_id[by_tile]
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]).tolist() if len(ids) else []
        self.queues = {}
        for a, b in zip(starts, starts[1:] + [len(ids)]):
            sel = by_tile[a:b]
            self.queues[int(ids[a])] = _Queue(arrays.tile_key(ids[a]), sel, order[sel])
        self.n_set = self.n_reset = 0
        self._heap: list = []  # (a tile's first failed key not accepted, tile, version)
        self._version = dict.fromkeys(self.queues, 0)
        self._w_fails: list = []  # the failed keys of the weight next_failure gave
        for tid in self.queues:
            self._push(tid)
        self.failed: list = []

    def _first_fail(self, t: _Queue):
        """The order key of the tile's first failed cell not accepted (trying further as
        needed), or None."""
        a = self.a
        while True:
            if t.att is not None:
                k = int(np.searchsorted(t.fails, self.cut))
                if k < len(t.fails):
                    return int(t.fails[k])
                if t.done + len(t.att) >= len(t.sel):
                    return None
            start = t.done + (0 if t.att is None else len(t.att))
            offset = 0 if t.att is None else int(t.att.sum())
            n, t.chunk = t.chunk, 2 * t.chunk
            sel = t.sel[start:start + n]
            att, ok = a._tile_outcome(a._gens[t.key], t.key[0], self.rows[sel], self.cols[sel], offset)
            if t.att is None:
                t.att, t.ok, t.fails = att, ok, t.keys[start:start + n][~ok]
            else:
                t.att, t.ok = np.concatenate([t.att, att]), np.concatenate([t.ok, ok])
                t.fails = np.concatenate([t.fails, t.keys[start:start + n][~ok]])

    def _push(self, tid: int):
        """(Re)enter the tile in the heap with its first failed key not accepted."""
        self._version[tid] += 1
        k = self._first_fail(self.queues[tid])
        if k is not None:
            heapq.heappush(self._heap, (k, tid, self._version[tid]))

    def _pop_current(self):
        while self._heap and self._heap[0][2] != self._version[self._heap[0][1]]:
            heapq.heappop(self._heap)  # the tile was tried again since
        return self._heap[0] if self._heap else None

    def next_failure(self):
        top = self._pop_current()
        if top is None:
            self.cut = None
            return None
        w = top[0] // self.span
        self.cut = (w + 1) * self.span
        self._w_fails = []
        while (top := self._pop_current()) is not None and top[0] < self.cut:
            heapq.heappop(self._heap)
            self._w_fails.append(top[0])  # a weight has one cell per plane: one per tile
            self._push(top[1])
        return w

    def _flush(self, queues):
        """Write the accepted cells of these tiles (in one numpy step)."""
        sels, atts, oks, planes_ = [], [], [], []
        for t in queues:
            if t.att is None:
                continue
            m = len(t.att) if self.cut is None else int(np.searchsorted(t.keys[t.done:t.done + len(t.att)], self.cut))
            if m == 0:
                continue
            sels.append(t.sel[t.done:t.done + m])
            atts.append(t.att[:m])
            oks.append(t.ok[:m])
            planes_.append(np.full(m, t.key[0]))
            self.a._gens[t.key].skip(int(t.att[:m].sum()))
            t.fails = t.fails[np.searchsorted(t.fails, t.keys[t.done + m - 1], side="right"):]
            t.done += m
            t.att, t.ok = t.att[m:], t.ok[m:]
        if not sels:
            return
        sel, att, ok, q = np.concatenate(sels), np.concatenate(atts), np.concatenate(oks), np.concatenate(planes_)
        a, r, c, w = self.a, self.rows[sel], self.cols[sel], self.want[sel]
        n_set = int(att[w == 1].sum())
        self.n_set += n_set
        self.n_reset += int(att.sum()) - n_set
        a.cells[q[ok], r[ok], c[ok]] = w[ok]
        a.counts[q[ok], r[ok], c[ok]] = np.minimum(a.counts[q[ok], r[ok], c[ok]] + 1, dev.MASK32)
        self.failed.extend(self.order[sel][~ok].tolist())

    def failed_of(self, w: int) -> np.ndarray:
        """The order keys of the failed cells of ``w``, the weight :meth:`next_failure` gave."""
        if self.cut is None or w != self.cut // self.span - 1:
            raise ValueError(f"weight {w} is not the last failed weight given")
        return np.sort(np.array(self._w_fails, np.int64))

    def insert(self, p, rows, cols, want, order):
        """Write these cells now, after the accepted ones of their tiles."""
        touched = [tid for tid in np.unique(self.a.tile_ids(p, rows, cols)).tolist()
                   if tid in self.queues]
        for tid in touched:
            t = self.queues[tid]
            self._flush([t])
            t.att = t.ok = t.fails = None  # its generator moves: try again, a little at a time
            t.chunk = 32
        res = self.a._write_ordered(p, rows, cols, want, order)
        for tid in touched:
            self._push(tid)
        return res

    def finish(self):
        if self.cut is not None:
            raise RuntimeError("finish() before next_failure() found no more failures")
        self._flush(self.queues.values())
        return self.n_set, self.n_reset, self.failed


class TileGenerator:
    """A tile's xorshift32 generator, read in blocks (``peek``) and advanced lazily (``skip``)."""

    BLOCK = 1 << 16

    def __init__(self, seed: int):
        self._base = seed  # state before self._buf[0]
        self._buf = np.zeros(0, np.uint32)
        self._pos = 0  # draws consumed from the buffer
        self._pending = 0  # draws skipped beyond the buffer, not generated yet
        self.drawn = 0  # draws consumed since the start

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
        if not self._pending and self._pos + n <= len(self._buf):
            return self._buf[self._pos:self._pos + n]
        self._materialise()
        if self._pos + n > len(self._buf):
            start = self.state()
            self._buf = xorshift_stream(start, max(n, self.BLOCK))
            self._base, self._pos = start, 0
        return self._buf[self._pos:self._pos + n]

    def skip(self, n: int):
        self.drawn += n
        room = len(self._buf) - self._pos
        if self._pending == 0 and n <= room:
            self._pos += n
        else:
            if self._pending == 0:
                self._pos, n = len(self._buf), n - room
            self._pending += n


def jump(state: int, steps: int) -> int:
    """The generator state ``steps`` draws after ``state`` (the maps of 2**k steps)."""
    result = np.array([state], np.uint32)
    k = 0
    while steps:
        if steps & 1:
            result = _apply(_power(k), result)
        steps >>= 1
        k += 1
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


def program_layers(target_cells, faults, params: dev.DeviceParams, *, tile=(128, 128), retries: int = 3,
                   initial=None):
    """Golden write-verify programming of whole layers, every tile's outcomes at once: what
    :func:`rrambnn.gen.device.program` gives for the commands of :func:`~rrambnn.gen.device.
    commands_for` (row by row, every cell masked), without its cell-by-cell replay. Within a
    tile the commands reach the cells in row-major order; only cells that read wrong get
    pulses. ``initial``: the arrays before programming (default all HRS). Returns (cells per
    layer, (pulses_set, pulses_reset), failed (layer, row, col) in the order the controller
    reports them, the arrays)."""
    cells, n_set, n_reset, failed, arrays = [], 0, 0, [], []
    for k, (t, f) in enumerate(zip(target_cells, faults)):
        t = np.asarray(t, np.uint8)
        init = np.zeros(t.shape, np.uint8) if initial is None else np.asarray(initial[k], np.uint8)
        a = PlaneArrays(init[None], np.asarray(f)[None], layer=k, tile=tile, params=params, retries=retries)
        rows, cols = np.nonzero(a.cells[0] != t)
        s, r, keys = a.write(0, rows, cols, t[rows, cols], rows.astype(np.int64) * t.shape[1] + cols)
        n_set, n_reset = n_set + s, n_reset + r
        failed += [(k, int(key) // t.shape[1], int(key) % t.shape[1]) for key in sorted(keys)]
        cells.append(a.cells[0].copy())
        arrays.append(a)
    return cells, (n_set, n_reset), failed, arrays
