"""The emulation twin (folded layers, weights in block RAM) against the golden model, in
Amaranth simulation: random networks, lane counts, both output stages, random idles and
backpressure, cells and thresholds rewritten between images."""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from rrambnn.gen.network import BinaryNetwork, random_network
from rrambnn.hw.folded import EventNetwork, FoldedLayer, FoldedNetwork, TwinNetwork, emulation_twin
from rrambnn.sim.tb_chip import pack_rows


async def send_writes(ctx, dut: TwinNetwork, writes) -> None:
    """Offer ``writes`` ``(layer, thr, row, col, value)`` to the twin's ``wr`` stream, back to back."""
    for layer, thr, row, col, value in writes:
        ctx.set(dut.wr.payload, dut.threshold_write(layer, col, value) if thr else dut.cell_write(layer, row, col, value))
        ctx.set(dut.wr.valid, 1)
        await ctx.tick().until(dut.wr.ready)
        ctx.set(dut.wr.valid, 0)


def run_folded(net: BinaryNetwork, lanes, output, x, seed, writes=(), chunks=None, p_idle=0.3, p_ready=0.7,
               segment=32, rows=None, queue=4):
    """Stream ``x`` through the twin (then apply ``writes`` and stream ``x`` again); return the
    (class, hit) pairs, the design and the cycles at which images were taken. ``rows``: an
    event-driven twin with these row lanes instead of ``lanes`` and ``chunks``."""
    if rows is None:
        dut = FoldedNetwork(net.cells, net.thresholds, lanes=lanes, chunks=chunks, output=output, segment=segment)
    else:
        dut = EventNetwork(net.cells, net.thresholds, rows=rows, queue=queue, output=output)
    taken = []
    rng = random.Random(seed)
    got = []
    n_total = len(x) * (2 if writes else 1)

    cycle = [0]

    async def driver(ctx):
        for rnd in range(2 if writes else 1):
            if rnd == 1:
                while len(got) < len(x):  # let the first round drain, then write
                    await ctx.tick()
                await send_writes(ctx, dut, writes)
            for image in pack_rows(x):
                while rng.random() < p_idle:
                    await ctx.tick()
                    cycle[0] += 1
                ctx.set(dut.i.payload, image)
                ctx.set(dut.i.valid, 1)
                while True:
                    _, _, ready = await ctx.tick().sample(dut.i.ready)
                    cycle[0] += 1
                    if ready:
                        break
                taken.append(cycle[0])
                ctx.set(dut.i.valid, 0)

    async def monitor(ctx):
        while len(got) < n_total:
            ready = rng.random() < p_ready
            ctx.set(dut.o.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if valid and ready:
                got.append((int(payload.cls), int(payload.hit)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(driver)
    sim.add_testbench(monitor)
    sim.run()
    return got, dut, taken


def random_writes(net: BinaryNetwork, rng, n: int = 12) -> list[tuple]:
    """``n`` writes ``(layer, thr, row, col, value)``: flipped random cells (60%) and random
    thresholds."""
    writes = []
    for _ in range(n):
        k = int(rng.integers(len(net.weights)))
        n_in, n_out = net.weights[k].shape
        if rng.random() < 0.6:
            r, c = int(rng.integers(n_in)), int(rng.integers(n_out))
            writes.append((k, 0, r, c, int(net.weights[k][r, c] < 0)))  # the flipped cell
        else:
            writes.append((k, 1, 0, int(rng.integers(n_out)), int(rng.integers(-n_in, n_in + 2))))
    return writes


def apply_writes(net: BinaryNetwork, writes) -> BinaryNetwork:
    """The golden network after ``writes`` (changed in place)."""
    for k, thr, r, c, v in writes:
        if thr:
            net.thresholds[k][c] = v
        else:
            net.weights[k][r, c] = 1 if v else -1
    net.__post_init__()
    return net


def results(trace, output) -> list[tuple[int, int]]:
    """(class, hit) of every image of a golden trace."""
    return [(int(c), int(h)) for c, h in zip(trace.labels(output), trace.hit)]


@pytest.mark.parametrize("arch, lanes, chunks, output, seed, segment", [
    ("23-17-9-5", [4, 3, 2], None, "priority", 1, 32),
    ("23-17-9-5", [17, 1, 5], [5, 17, 2], "argmax", 2, 32),
    ("12-10", 3, 4, "argmax", 3, 32),
    ("30-8-6", [1, 6], [7, 1], "priority", 4, 32),  # chunks that do not divide the inputs
    ("9-4-3", [4, 3], None, "argmax", 5, 32),  # one word per layer: back-to-back images
    ("23-17-9-5", [2, 3, 2], [23, 9, 4], "argmax", 6, 4),  # popcounts split into segments
])
def test_folded_network_matches_golden(arch, lanes, chunks, output, seed, segment):
    rng = np.random.default_rng(seed)
    net = random_network(arch, rng, output_mode=output)
    x = rng.integers(0, 2, (40, net.arch[0])).astype(np.uint8)
    writes = random_writes(net, rng)
    golden_before = net.forward(x)
    got, dut, _ = run_folded(net, lanes, output, x, seed, writes, chunks, segment=segment)
    assert got == results(golden_before, output) + results(apply_writes(net, writes).forward(x), output)
    chunks = chunks if isinstance(chunks, list) else [chunks] * len(dut.layers)
    depths = [-(-n_out // layer.lanes) * -(-n_in // (k or n_in))
              for n_in, n_out, layer, k in zip(net.arch, net.arch[1:], dut.layers, chunks)]
    assert [layer.depth for layer in dut.layers] == depths
    assert dut.interval >= max(depths)


@pytest.mark.parametrize("lanes, chunks, interval", [
    ([4, 3], None, 3),  # one word per layer: the pipeline sets the pace (two images per 6 cycles)
    ([4, 1], [2, 2], 7.5),  # 5 words (1 group x 5 chunks), then 6 (3 groups x 2 chunks)
    ([1, 3], [1, 4], 36),  # 36 words, then 1: the slow layer sets the pace exactly
    ([1, 1], [3, 1], 14),  # 12 and 12 words: the result register alternates 12 and 16
])
def test_folded_network_takes_one_image_per_interval(lanes, chunks, interval):
    """Free-flowing, images are taken every ``interval`` cycles on average, as the cycle model
    of the handshakes (:func:`handshake_model`) says."""
    rng = np.random.default_rng(9)
    net = random_network("9-4-3", rng, output_mode="argmax")
    x = rng.integers(0, 2, (30, 9)).astype(np.uint8)
    got, dut, taken = run_folded(net, lanes, "argmax", x, 9, chunks=chunks, p_idle=0, p_ready=1)
    t = net.forward(x)
    assert got == [(int(c), int(h)) for c, h in zip(t.labels("argmax"), t.hit)]
    assert dut.interval == interval
    assert (taken[-1] - taken[-25]) / 24 == interval


def test_shipped_network_on_mnist_images(mnist_test):
    from rrambnn.weights import shipped
    net = BinaryNetwork.load(shipped())
    x = net.preprocess(mnist_test.images[:25])
    got, dut, _ = run_folded(net, [4, 4, 2], net.output_mode, x, 7, chunks=[100, 64, 128])
    t = net.forward(x)
    assert got == [(int(c), int(h)) for c, h in zip(t.labels(net.output_mode), t.hit)]
    assert dut.interval == 128


def test_parameters_are_checked():
    cells, thr = np.zeros((4, 3), np.uint8), np.zeros(3, np.int32)
    with pytest.raises(ValueError, match="Lanes must be an integer from 1 to the layer's 3 outputs, not 4"):
        FoldedLayer(cells, thr, 4)
    with pytest.raises(ValueError, match="Chunk must be an integer from 1 to the layer's 4 inputs, not 0"):
        FoldedLayer(cells, thr, 1, 0)
    with pytest.raises(ValueError, match="Popcount segment must be a positive integer, not 0"):
        FoldedLayer(cells, thr, 1, 2, 0)
    with pytest.raises(ValueError, match="RAM style must be None, 'block' or 'distributed', not 'fast'"):
        FoldedLayer(cells, thr, 1, 2, 16, "fast")
    with pytest.raises(ValueError, match=r"one lane count per layer \(1\), not 2"):
        FoldedNetwork([cells], [thr], lanes=[1, 2])
    with pytest.raises(ValueError, match=r"one chunk size per layer \(1\), not 3"):
        FoldedNetwork([cells], [thr], lanes=1, chunks=[1, 2, 3])


def test_addresses_follow_the_word_layout():
    cells = np.zeros((10, 7), np.uint8)
    cells[9, 5] = 1
    layer = FoldedLayer(cells, np.zeros(7, np.int32), lanes=3, chunk=4)
    assert (layer.groups, layer.chunks, layer.depth, layer.width) == (3, 3, 9, 12)
    word, pos = layer.cell_address(9, 5)
    assert (word, pos) == (1 * 3 + 2, 2 * 4 + 1)
    assert [w for w, value in enumerate(layer.words) if value] == [word] and layer.words[word] == 1 << pos
    assert layer.threshold_address(5) == (1, 2)


# the same design as Verilog on Verilator (cocotb), against the golden model
@pytest.mark.parametrize("arch, lanes, chunks, output, n, seed", [
    ("23-17-9-5", [4, 3, 2], [8, 17, 3], "argmax", 400, 5),
    pytest.param("400-128-128-10", [8, 8, 10], None, None, 1000, 6, marks=pytest.mark.slow),  # 2+ min: slow set
    pytest.param("400-128-128-10", 1, [200, 64, 16], None, 500, 7, marks=pytest.mark.slow),  # the iCEBreaker fold
])
def test_folded_verilog_matches_golden(arch, lanes, chunks, output, n, seed, mnist_test):
    from rrambnn.sim.chip_sim import simulate_folded
    from rrambnn.weights import shipped
    if arch == "400-128-128-10":
        net = BinaryNetwork.load(shipped())
        x = net.preprocess(mnist_test.images[:n])
        output = net.output_mode
    else:
        rng = np.random.default_rng(seed)
        net = random_network(arch, rng, output_mode=output)
        x = rng.integers(0, 2, (n, net.arch[0])).astype(np.uint8)
    res = simulate_folded(net, lanes, output, x, chunks=chunks, seed=seed, throughput_images=min(n, 200))
    assert res["passed"] and res["mismatches"] == 0 and res["checked"] == n, (res.get("examples"), res["log"])
    assert res["throughput"]["cycles_per_image"] == res["interval_cycles"]


@pytest.mark.slow
@pytest.mark.parametrize("board", ["icebreaker", "ulx3s-85f"])
def test_board_folds_match_golden_on_all_test_images(board, mnist_test):
    """The done-when regression: each board's default fold of the twin (the iCEBreaker's folded,
    the ULX3S's event-driven), every MNIST test image; an event-driven twin's every acceptance
    at the cycle its model gives."""
    from rrambnn.fpga.twin import default_rows
    from rrambnn.fpga.build import board_spec
    from rrambnn.sim.chip_sim import simulate_folded
    from rrambnn.weights import shipped
    spec = board_spec(board)
    net = BinaryNetwork.load(shipped())
    x = net.preprocess(mnist_test.images)
    rows = default_rows(spec, len(net.weights))
    assert (rows is not None) == (board == "ulx3s-85f")
    if rows:
        res = simulate_folded(net, None, net.output_mode, x, rows=rows, seed=11, throughput_images=len(x))
    else:
        res = simulate_folded(net, list(spec.lanes), net.output_mode, x, chunks=list(spec.chunks),
                              segment=spec.segment, seed=11)
    assert res["passed"] and res["mismatches"] == 0 and res["checked"] == 10000, (res.get("examples"), res["log"])
    if rows:
        assert res["throughput"]["timing_mismatches"] == 0
    else:
        assert res["throughput"]["cycles_per_image"] == res["interval_cycles"]


# event-driven layers (rrambnn.hw.sparse): only the active inputs' rows are read
@pytest.mark.parametrize("arch, rows, queue, output, density, seed", [
    ("23-17-9-5", [4, 3, 2], 4, "argmax", 0.3, 11),
    ("23-17-9-5", [23, 1, 9], 2, "priority", 0.5, 12),  # one slot per lane; one lane for all inputs
    ("30-8-6", [7, 8], 3, "argmax", 0.15, 13),  # row lanes that do not divide the inputs
    ("12-40-3", [5, 16], 4, "priority", 0.9, 14),  # wide layer, dense inputs
])
def test_event_driven_twin_matches_golden(arch, rows, queue, output, density, seed):
    rng = np.random.default_rng(seed)
    net = random_network(arch, rng, output_mode=output)
    x = (rng.random((40, net.arch[0])) < density).astype(np.uint8)
    x[5], x[6] = 0, 1  # no active input at all, every input active
    writes = random_writes(net, rng)
    before = net.forward(x)
    got, dut, _ = run_folded(net, None, output, x, seed, writes, rows=rows, queue=queue)
    assert got == results(before, output) + results(apply_writes(net, writes).forward(x), output)
    assert dut.event and dut.fold() == [(r, 0) for r in rows]


def test_event_driven_cell_writes_reach_every_column_group():
    """Writes travel through the column groups, a cycle each. Rounds of back-to-back cell and
    threshold writes into every group of a 40-wide layer (3 groups; the last write in the last
    group), each followed at once by an image: the network must hold it back until the write is
    through. The layer's margins are checked against the golden network after every round."""
    rng = np.random.default_rng(31)
    net = random_network("12-40", rng, output_mode="argmax")  # one layer: its margins are kept
    dut = EventNetwork(net.cells, net.thresholds, rows=[5], queue=4, output="argmax")
    assert [layer.write_cycles for layer in dut.layers] == [5]
    layer0 = dut.layers[0]
    x = np.ones((20, 12), np.uint8)  # every row read: a stale row shows in the sums
    rounds, expected = [], []
    for k in range(len(x)):
        cells = [(int(rng.integers(12)), int(c)) for c in (rng.integers(40), rng.integers(32), rng.integers(32, 40))]
        rounds.append([(0, 1, 0, int(rng.integers(40)), int(rng.integers(-12, 14)))]
                      + [(0, 0, r, c, int(net.weights[0][r, c] < 0)) for r, c in cells])
        if k % 2:  # every other round ends with a threshold in the last group
            rounds[-1].append((0, 1, 0, int(rng.integers(32, 40)), int(rng.integers(-12, 14))))
        apply_writes(net, rounds[-1])
        expected.append((net.forward(x[k:k + 1]).sums[0][0] - net.thresholds[0]).tolist())
    margins = []

    async def driver(ctx):
        for image, writes in zip(pack_rows(x), rounds):
            await send_writes(ctx, dut, writes)
            ctx.set(dut.i.payload, image)
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
            ctx.set(dut.i.valid, 0)

    async def monitor(ctx):
        ctx.set(dut.o.ready, 1)
        while len(margins) < len(x):
            _, _, valid, take, *m = await ctx.tick().sample(layer0.valid, layer0.take,
                                                             *(layer0.margin(j) for j in range(40)))
            if valid and take:
                margins.append(m)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(driver)
    sim.add_testbench(monitor)
    sim.run()
    assert margins == expected


@pytest.mark.parametrize("rows, queue, density", [([4, 3, 2], 4, 0.3), ([2, 2, 2], 2, 0.6), ([23, 17, 9], 3, 0.4)])
def test_event_driven_twin_takes_images_when_the_cycle_model_says(rows, queue, density):
    """Free-flowing, every image is accepted at the cycle :func:`event_model` gives."""
    rng = np.random.default_rng(21)
    net = random_network("23-17-9-5", rng, output_mode="argmax")
    x = (rng.random((60, 23)) < density).astype(np.uint8)
    x[10] = 0
    got, dut, taken = run_folded(net, None, "argmax", x, 3, rows=rows, queue=queue, p_idle=0, p_ready=1)
    t = net.forward(x)
    assert got == [(int(c), int(h)) for c, h in zip(t.labels("argmax"), t.hit)]
    model = dut.timing(x)
    assert [a - model["accept"][0] for a in model["accept"]] == [a - taken[0] for a in taken]
    assert all(w <= layer.slots for w, layer in zip(model["worst_cycles"], dut.layers))


def test_image_cycles_are_the_busiest_lane():
    from rrambnn.hw.sparse import image_cycles
    x = np.zeros((3, 10), np.uint8)
    x[1, [0, 3, 6, 9]] = 1  # all in lane 0 of 3 (inputs 0, 3, 6, 9)
    x[2, [0, 1, 2]] = 1  # one per lane
    assert image_cycles(x, 3).tolist() == [1, 4, 1]
    assert image_cycles(x, 10).tolist() == [1, 1, 1] and image_cycles(x, 1).tolist() == [1, 4, 3]


def test_event_driven_parameters_and_addresses():
    from rrambnn.hw.sparse import SparseLayer
    cells, thr = np.zeros((10, 7), np.uint8), np.zeros(7, np.int32)
    with pytest.raises(ValueError, match="Row lanes must be an integer from 1 to the layer's 10 inputs, not 0"):
        SparseLayer(cells, thr, 0)
    with pytest.raises(ValueError, match="Row lanes must be an integer from 1 to the layer's 10 inputs, not 11"):
        SparseLayer(cells, thr, 11)
    with pytest.raises(ValueError, match="Result queue depth must be an integer from 2 to 16, not 1"):
        SparseLayer(cells, thr, 2, queue=1)
    with pytest.raises(ValueError, match="An event-driven twin takes row lanes"):
        emulation_twin(random_network("10-7", np.random.default_rng(0)), rows=2, lanes=1)
    with pytest.raises(ValueError, match=r"one row lane count per layer \(1\), not 2"):
        EventNetwork([cells], [thr], rows=[2, 2])
    cells[9, 5] = 1
    layer = SparseLayer(cells, thr, 3)
    assert (layer.slots, layer.sbits, layer.width) == (4, 2, 7)
    word, pos = layer.cell_address(9, 5)
    assert (word, pos) == (0 << 2 | 3, 5)
    assert layer.lane_words[0][3] == 1 << 5 and sum(map(sum, layer.lane_words)) == 1 << 5
    assert layer.threshold_address(6) == (0, 6)


@pytest.mark.slow
def test_event_driven_verilog_matches_golden(mnist_test):
    """The ULX3S's default fold (row lanes 32/24/16) on Verilator: results and every acceptance
    cycle against the model, 1,000 test images (all 10,000 in the slow board regression)."""
    from rrambnn.fpga.build import board_spec
    from rrambnn.sim.chip_sim import simulate_folded
    from rrambnn.weights import shipped
    net = BinaryNetwork.load(shipped())
    n = 1000
    x = net.preprocess(mnist_test.images[:n])
    rows = list(board_spec("ulx3s-85f").rows)
    assert rows == [32, 24, 16]
    res = simulate_folded(net, None, net.output_mode, x, rows=rows, seed=8, throughput_images=n)
    assert res["passed"] and res["mismatches"] == 0 and res["checked"] == n, (res.get("examples"), res["log"])
    assert res["throughput"]["timing_mismatches"] == 0
