"""Fast Amaranth-simulator tests of the periphery blocks, and generator parameter checks."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from rrambnn.gen.network import priority_encode, random_network
from rrambnn.hw.chip import Chip
from rrambnn.hw.crossbar import CrossbarTile
from rrambnn.hw.layer import Layer, check_tile
from rrambnn.hw.output import Argmax, PriorityEncoder


def run_comb(dut, bench):
    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("n", [1, 3, 10, 16, 17, 200, 400])
def test_priority_encoder_matches_golden(n, rng):
    """Chains (up to 16 inputs) and trees; sparse vectors put the lowest set bit anywhere."""
    dut = PriorityEncoder(n)
    density = rng.choice([0.5, 0.05, 2 / n, 1 / (4 * n)], 200)
    vectors = rng.random((200, n)) < density[:, None]
    vectors[0] = False
    vectors[1] = False
    vectors[1, n - 1] = True
    want_idx, want_hit = priority_encode(vectors)

    async def bench(ctx):
        for v, wi, wh in zip(vectors, want_idx, want_hit):
            ctx.set(dut.fires, int(sum(1 << j for j in range(n) if v[j])))
            assert (ctx.get(dut.index), ctx.get(dut.hit)) == (int(wi), int(wh))
    run_comb(dut, bench)


@pytest.mark.parametrize("n, width", [(1, 4), (5, 4), (10, 11), (7, 3)])
def test_argmax_matches_golden_with_ties(n, width, rng):
    dut = Argmax(n, width)
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    scores = rng.integers(lo, hi + 1, (300, n))
    scores[:50] = rng.integers(lo, lo + 2, (50, n))  # many ties

    async def bench(ctx):
        for row in scores:
            ctx.set(dut.scores, sum((int(s) & ((1 << width) - 1)) << (width * j) for j, s in enumerate(row)))
            assert ctx.get(dut.index) == int(np.argmax(row))  # numpy: lowest index on ties
    run_comb(dut, bench)


@pytest.mark.parametrize("tile, exc, message", [
    ((0, 4), ValueError, "Tile rows must be an integer from 1 to 1024, not 0"),
    ((4, 2000), ValueError, "Tile columns must be an integer from 1 to 1024, not 2000"),
    ("12y4", ValueError, "Tile size must look like 128x128, not '12y4'"),
    ((4.0, 4), TypeError, r"Tile size must be a \(rows, cols\) pair of integers, not \(4.0, 4\)"),
])
def test_tile_validation(tile, exc, message):
    with pytest.raises(exc, match=message):
        check_tile(tile)
    assert check_tile("64x32") == (64, 32)


def test_component_validation(rng):
    net = random_network("6-4-3", rng)
    with pytest.raises(TypeError, match="Number of output neurons must be a positive integer, not 0"):
        PriorityEncoder(0)
    with pytest.raises(TypeError, match="Score width must be an integer of at least 2, not 1"):
        Argmax(3, 1)
    with pytest.raises(ValueError, match="Crossbar cells must be 0 \\(HRS\\) or 1 \\(LRS\\)"):
        CrossbarTile(np.full((2, 2), 3))
    with pytest.raises(ValueError, match=r"Layer thresholds must lie in \[-6, 7\]"):
        Layer(net.weights[0], np.full(4, 9))
    with pytest.raises(ValueError, match="Output stage must be 'priority' or 'argmax', not 'max'"):
        Chip(net.weights, net.thresholds, output="max")
    with pytest.raises(ValueError, match="Layer 1 has 4 inputs but layer 0 has 3 outputs"):
        Chip([net.weights[0][:, :3], net.weights[1]], net.thresholds)
    with pytest.raises(TypeError, match="Pipeline must be a bool, not 1"):
        Chip(net.weights, net.thresholds, pipeline=1)


def test_tiling_geometry(rng):
    net = random_network("400-128-128-10", rng)
    chip = Chip(net.weights, net.thresholds)
    assert [layer.n_tiles for layer in chip.layers] == [4, 1, 1] and chip.n_tiles == 6
    chip = Chip(net.weights, net.thresholds, tile=(100, 50))
    assert [(layer.row_blocks, layer.col_blocks) for layer in chip.layers] == [(4, 3), (2, 3), (2, 1)]
    assert chip.latency == 1 and Chip(net.weights, net.thresholds, pipeline=True).latency == 4
