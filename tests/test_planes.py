"""Multi-bit weights in binary cells: codes, saturation, and the vectorised device model
against the cell-by-cell one."""

import numpy as np
import pytest

from rrambnn.errors import RrambnnError
from rrambnn.gen import device as dev
from rrambnn.gen import planes


def test_xorshift_stream_matches_the_scalar_generator():
    s = 0x1234567
    want = []
    for _ in range(1000):
        s = dev.xorshift32(s)
        want.append(s)
    assert planes.xorshift_stream(0x1234567, 1000).tolist() == want
    assert planes.xorshift_stream(99, 1).tolist() == [dev.xorshift32(99)]


@pytest.mark.parametrize("n", [2, 3, 8, 12])
def test_codes_round_trip_and_saturate(n):
    M = planes.max_magnitude(n)
    v = np.arange(-M, M + 1)
    cells = planes.encode(v, n)
    assert cells.shape == (n, len(v))
    assert (planes.decode(cells) == v).all()
    assert (cells[0] == (v >= 0)).all()  # sign cell: 1 = positive (zero defaults to 1)
    new = planes.updated(cells, np.full(len(v), 3))
    assert (planes.decode(new) == np.minimum(v + 3, M)).all()
    new = planes.updated(cells, np.full(len(v), -2 * M))
    assert (planes.decode(new) == -M).all() or M == 0


def test_zero_keeps_the_sign_cell():
    cells = planes.encode(np.array([1, -1]), 4)
    new = planes.updated(cells, np.array([-1, 1]))
    assert planes.decode(new).tolist() == [0, 0]
    assert new[0].tolist() == [1, 0]  # no sign pulse for a crossing that lands on zero


def test_bits_are_checked():
    with pytest.raises(RrambnnError, match="Weight bits must be an integer from 2 to 12, not 1"):
        planes.check_bits(1)
    with pytest.raises(RrambnnError, match="not 13"):
        planes.check_bits(13)


def _sequential(cells, faults, layer, tile, params, retries, writes):
    """Reference: dev.Tile cell by cell, in the given order."""
    R, C = tile
    n, n_in, n_out = cells.shape
    thr = dev.fail_threshold(params.p_fail)
    tiles = {}
    for p in range(n):
        for br in range(-(-n_in // R)):
            for bc in range(-(-n_out // C)):
                sl = (p, slice(br * R, (br + 1) * R), slice(bc * C, (bc + 1) * C))
                tiles[p, br, bc] = dev.Tile(cells[sl].copy(), faults[sl], dev.tile_seed(params.seed, layer, br, bc, plane=p),
                                            thr, params.endurance)
    n_set = n_reset = 0
    failed = []
    for key, p, r, c, want in writes:
        t = tiles[p, r // R, c // C]
        for _ in range(1 + retries):
            t.pulse(r % R, c % C, want)
            n_set += want
            n_reset += 1 - want
            if t.cells[r % R, c % C] == want:
                break
        else:
            failed.append(key)
    full = np.zeros_like(cells)
    counts = np.zeros(cells.shape, np.int64)
    for (p, br, bc), t in tiles.items():
        full[p, br * R:br * R + t.cells.shape[0], bc * C:bc * C + t.cells.shape[1]] = t.cells
        counts[p, br * R:br * R + t.cells.shape[0], bc * C:bc * C + t.cells.shape[1]] = t.counts
    return full, counts, n_set, n_reset, failed, {k: t.rng_state for k, t in tiles.items()}


@pytest.mark.parametrize("p_fail,endurance,yield_", [(0.0, 0, 1.0), (0.3, 0, 0.9), (0.1, 2, 0.95), (0.0, 1, 0.8)])
def test_vectorised_writes_equal_the_cell_by_cell_model(p_fail, endurance, yield_):
    rng = np.random.default_rng(7)
    n, n_in, n_out, tile = 4, 23, 17, (8, 6)
    params = dev.DeviceParams(yield_=yield_, p_fail=p_fail, endurance=endurance, seed=3)
    cells = rng.integers(0, 2, (n, n_in, n_out)).astype(np.uint8)
    faults = planes.plane_faults((n_in, n_out), params, n)[0]
    arrays = planes.PlaneArrays(cells, faults, layer=1, tile=tile, params=params, retries=2)
    ref_cells = arrays.cells.copy()
    writes = []
    total = [0, 0, []]
    for step in range(6):  # several batches, each cell at most once per batch
        idx = rng.choice(n * n_in * n_out, size=150, replace=False)
        p, r, c = np.unravel_index(idx, (n, n_in, n_out))
        order = np.arange(len(idx)) + 1000 * step
        for pl in range(n):
            sel = p == pl
            cur = arrays.cells[pl, r[sel], c[sel]]
            want = 1 - cur  # every given cell differs
            s, rs, f = arrays.write(pl, r[sel], c[sel], want.astype(np.uint8), order[sel])
            total[0] += s
            total[1] += rs
            total[2] += f
            writes += [(int(k), pl, int(rr), int(cc), int(w)) for k, rr, cc, w in zip(order[sel], r[sel], c[sel], want)]
    writes.sort(key=lambda w: w[0])  # the global order; each tile sees its subsequence
    full, counts, n_set, n_reset, failed, states = _sequential(ref_cells, faults, 1, tile, params, 2, writes)
    assert (arrays.cells == full).all()
    assert (arrays.counts == counts).all()
    assert (total[0], total[1]) == (n_set, n_reset)
    assert sorted(total[2]) == sorted(failed)
    assert arrays.rng == states
    assert n_set + n_reset > 0


def test_generator_blocks_skips_and_jumps(monkeypatch):
    monkeypatch.setattr(planes.TileGenerator, "BLOCK", 7)
    rng = np.random.default_rng(1)
    g = planes.TileGenerator(12345)
    s = 12345
    for _ in range(60):
        n = int(rng.integers(0, 20))
        if rng.random() < 0.5:
            want = []
            t = s
            for _ in range(n):
                t = dev.xorshift32(t)
                want.append(t)
            assert g.peek(n).tolist() == want
        for _ in range(n):
            s = dev.xorshift32(s)
        g.skip(n)
        assert g.state() == s
    assert planes.jump(12345, 0) == 12345
    assert planes.jump(12345, 1000) == int(planes.xorshift_stream(12345, 1000)[-1])
