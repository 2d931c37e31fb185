"""The periphery variant: the digital periphery behind the narrow byte port, against the golden
network and the golden device model (faults, pulse failures, write-verify): in Amaranth
simulation with the testbench playing the macro, and as Verilog on Verilator with the
behavioural macro."""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from rrambnn.gen.device import Chip as DeviceChip
from rrambnn.gen.device import DeviceParams, fault_maps
from rrambnn.gen.network import random_network
from rrambnn.hw.macro import MacroPeriphery
from rrambnn.sim.tb_chip import pack_rows
from rrambnn.sim.tb_macro import MacroGolden, random_writes
from conftest import network_and_images


def run_macro(net, device, faults, tile, x, writes, seed):
    """The periphery alone; the testbench plays the macro on the byte port with the golden
    device model (its own copy of the arrays)."""
    dut = MacroPeriphery(net.arch, net.thresholds, output=net.output_mode, retries=3, pulse_cycles=3)
    arrays = DeviceChip(net.arch, tile, net.cells, device, faults)
    rng = random.Random(seed)
    got, counters = [], []
    done = [False]

    async def driver(ctx):
        for rnd in range(2):
            if rnd == 1:
                while len(got) < len(x):
                    await ctx.tick()
                for w in writes:
                    payload = dut.threshold_write(w[0], w[3], w[4]) if w[1] else dut.cell_write(w[0], w[2], w[3], w[4])
                    ctx.set(dut.wr.payload, payload)
                    ctx.set(dut.wr.valid, 1)
                    await ctx.tick().until(dut.wr.ready)
                    ctx.set(dut.wr.valid, 0)
                    await ctx.tick()
                    counters.append((ctx.get(dut.n_set), ctx.get(dut.n_reset), ctx.get(dut.n_failed)))
            for image in pack_rows(x):
                while rng.random() < 0.3:
                    await ctx.tick()
                ctx.set(dut.i.payload, image)
                ctx.set(dut.i.valid, 1)
                await ctx.tick().until(dut.i.ready)
                ctx.set(dut.i.valid, 0)

    async def monitor(ctx):
        while len(got) < 2 * len(x):
            ready = rng.random() < 0.6
            ctx.set(dut.o.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if valid and ready:
                got.append((int(payload.cls), int(payload.hit)))
        done[0] = True

    async def macro(ctx):
        frame, replies = [], []
        word_lines = [np.zeros(n, np.uint8) for n in net.arch[:-1]]
        ctx.set(dut.bus_out.ready, 1)
        while not done[0]:
            if replies:
                ctx.set(dut.bus_in.payload, replies.pop(0))
                ctx.set(dut.bus_in.valid, 1)
            else:
                ctx.set(dut.bus_in.valid, 0)
            _, _, valid, byte = await ctx.tick().sample(dut.bus_out.valid, dut.bus_out.payload)
            if not valid:
                continue
            frame.append(int(byte))
            if len(frame) < 5:
                continue
            op, k, row, col, data = frame[0] >> 5, frame[0] & 31, frame[1] | frame[2] << 8, frame[3], frame[4]
            frame = []
            if op == 1:
                bits = [(data >> i) & 1 for i in range(8)][:len(word_lines[k]) - 8 * row]
                word_lines[k][8 * row:8 * row + len(bits)] = bits
            elif op == 2:
                cells = arrays.cells()[k][:, col]
                s_ = 2 * int((word_lines[k] & cells).sum()) - int(word_lines[k].sum())
                replies += list((s_ & 0xFFFF).to_bytes(2, "little"))
            elif op == 3:
                arrays.pulse(k, row, col, data & 1)
            elif op == 4:
                replies.append(arrays.read(k, row, col))
            else:
                raise AssertionError(f"unknown op {op}")

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(driver)
    sim.add_testbench(monitor)
    sim.add_testbench(macro, background=True)
    sim.run()
    return got, counters


@pytest.mark.parametrize("arch, tile, output, yield_, p_fail, seed", [
    ("20-9-4", (8, 8), "priority", 0.8, 0.5, 5),
    ("13-6-5", (16, 16), "argmax", 1.0, 0.0, 2),
])
def test_macro_matches_golden(arch, tile, output, yield_, p_fail, seed):
    rng = np.random.default_rng(seed)
    net = random_network(arch, rng, output_mode=output)
    device = DeviceParams(yield_=yield_, p_fail=p_fail, seed=seed)
    faults = fault_maps(net.arch, yield_, seed)
    x = rng.integers(0, 2, (10, net.arch[0])).astype(np.uint8)
    writes = random_writes(net.arch, rng, 30)
    golden = MacroGolden(net, tile, device, faults)
    want = golden.classify(x, output)
    want_counters = []
    for w in writes:
        golden.write(*w)
        want_counters.append(tuple(golden.counters))
    want += golden.classify(x, output)
    got, counters = run_macro(net, device, faults, tile, x, writes, seed)
    assert got == want
    assert counters == want_counters
    if p_fail:
        assert want_counters[-1][2] > 0  # some cells could not be written: the test sees failures


def test_parameters_are_checked():
    with pytest.raises(ValueError, match="Macro periphery columns are addressed with one byte: at most 256 outputs, not 300"):
        MacroPeriphery((10, 300), [np.zeros(300)])
    with pytest.raises(ValueError, match="Retries must be an integer from 0 to 255, not -1"):
        MacroPeriphery((10, 3), [np.zeros(3)], retries=-1)


@pytest.mark.parametrize("arch, tile, yield_, p_fail, n, seed", [
    ("20-9-4", (8, 8), 0.8, 0.5, 30, 5),
    pytest.param("400-128-128-10", (128, 128), 0.99, 0.02, 60, 6,  # the reference network on MNIST
                 marks=pytest.mark.slow),
])
def test_macro_verilog_matches_golden(arch, tile, yield_, p_fail, n, seed, mnist_test):
    from rrambnn.sim.chip_sim import simulate_macro
    net, x = network_and_images(arch, n, seed, mnist_test)
    device = DeviceParams(yield_=yield_, p_fail=p_fail, seed=seed)
    res = simulate_macro(net, x, tile=tile, device=device, writes=40, seed=seed)
    assert res["passed"] and res["mismatches"] == 0 and res["checked"] == 2 * n, (res.get("examples"), res["log"])
    assert res["counter_mismatches"] == 0 and res["counters"][0] + res["counters"][1] > 0
    assert res["cycles_per_image"] == res["interval_cycles"]
