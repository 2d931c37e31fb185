"""The emulation twin (folded layers, weights in block RAM) against the golden model, in
Amaranth simulation: random networks, lane counts, both output stages, random idles and
backpressure, cells and thresholds rewritten between images."""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from rrambnn.gen.network import BinaryNetwork, random_network
from rrambnn.hw.folded import FoldedLayer, FoldedNetwork
from rrambnn.sim.tb_chip import pack_rows


def run_folded(net: BinaryNetwork, lanes, output, x, seed, writes=()):
    """Stream ``x`` through the twin (then apply ``writes`` and stream ``x`` again); return the
    (class, hit) pairs and the design."""
    dut = FoldedNetwork(net.cells, net.thresholds, lanes=lanes, output=output)
    rng = random.Random(seed)
    got = []
    n_total = len(x) * (2 if writes else 1)

    async def driver(ctx):
        for rnd in range(2 if writes else 1):
            if rnd == 1:
                while len(got) < len(x):  # let the first round drain, then write
                    await ctx.tick()
                for layer, thr, row, col, value in writes:
                    ctx.set(dut.wr.payload, {"layer": layer, "thr": thr, "row": row, "col": col, "value": value})
                    ctx.set(dut.wr.valid, 1)
                    await ctx.tick().until(dut.wr.ready)
                    ctx.set(dut.wr.valid, 0)
            for image in pack_rows(x):
                while rng.random() < 0.3:
                    await ctx.tick()
                ctx.set(dut.i.payload, image)
                ctx.set(dut.i.valid, 1)
                await ctx.tick().until(dut.i.ready)
                ctx.set(dut.i.valid, 0)

    async def monitor(ctx):
        while len(got) < n_total:
            ready = rng.random() < 0.7
            ctx.set(dut.o.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if valid and ready:
                got.append((int(payload.cls), int(payload.hit)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(driver)
    sim.add_testbench(monitor)
    sim.run()
    return got, dut


@pytest.mark.parametrize("arch, lanes, output, seed", [
    ("23-17-9-5", [4, 3, 2], "priority", 1),
    ("23-17-9-5", [17, 1, 5], "argmax", 2),
    ("12-10", 3, "argmax", 3),
])
def test_folded_network_matches_golden(arch, lanes, output, seed):
    rng = np.random.default_rng(seed)
    net = random_network(arch, rng, output_mode=output)
    x = rng.integers(0, 2, (40, net.arch[0])).astype(np.uint8)
    writes = []
    for _ in range(12):  # flip random cells and rewrite random thresholds
        k = int(rng.integers(len(net.weights)))
        n_in, n_out = net.weights[k].shape
        if rng.random() < 0.6:
            r, c = int(rng.integers(n_in)), int(rng.integers(n_out))
            net_bit = int(net.weights[k][r, c] < 0)  # the flipped cell
            writes.append((k, 0, r, c, net_bit))
        else:
            j = int(rng.integers(n_out))
            writes.append((k, 1, 0, j, int(rng.integers(-n_in, n_in + 2))))
    golden_before = net.forward(x)
    got, dut = run_folded(net, lanes, output, x, seed, writes)
    for k, thr, r, c, v in writes:
        if thr:
            net.thresholds[k][c] = v
        else:
            net.weights[k][r, c] = 1 if v else -1
    net.__post_init__()
    golden_after = net.forward(x)
    want = [(int(c), int(h)) for c, h in zip(golden_before.labels(output), golden_before.hit)]
    want += [(int(c), int(h)) for c, h in zip(golden_after.labels(output), golden_after.hit)]
    assert got == want
    assert dut.interval == max(-(-n // layer.lanes) for n, layer in zip(net.arch[1:], dut.layers)) + 3


def test_shipped_network_on_mnist_images(mnist_test):
    from rrambnn.weights import shipped
    net = BinaryNetwork.load(shipped())
    x = net.preprocess(mnist_test.images[:25])
    got, dut = run_folded(net, [4, 4, 2], net.output_mode, x, 7)
    t = net.forward(x)
    assert got == [(int(c), int(h)) for c, h in zip(t.labels(net.output_mode), t.hit)]
    assert dut.interval == 35


def test_parameters_are_checked():
    cells, thr = np.zeros((4, 3), np.uint8), np.zeros(3, np.int32)
    with pytest.raises(ValueError, match="Lanes must be an integer from 1 to the layer's 3 outputs, not 4"):
        FoldedLayer(cells, thr, 4)
    with pytest.raises(ValueError, match="one lane count per layer"):
        FoldedNetwork([cells], [thr], lanes=[1, 2])


# the same design as Verilog on Verilator (cocotb), against the golden model
@pytest.mark.parametrize("arch, lanes, output, n, seed", [
    ("23-17-9-5", [4, 3, 2], "argmax", 400, 5),
    ("400-128-128-10", [8, 8, 10], None, 2000, 6),
])
def test_folded_verilog_matches_golden(arch, lanes, output, n, seed, mnist_test):
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
    res = simulate_folded(net, lanes, output, x, seed=seed)
    assert res["passed"] and res["mismatches"] == 0 and res["checked"] == n, (res.get("examples"), res["log"])
    assert res["throughput"]["cycles_per_image"] == res["interval_cycles"]
