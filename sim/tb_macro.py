"""cocotb testbench of the periphery variant: :class:`rrambnn.hw.macro.MacroPeriphery` and the
behavioural crossbar macro (the chip's arrays and device model behind the byte port), against
the golden network and the golden device model.

Images (random idles and backpressure) -> results checked in order; then cell writes
(write-verify over the port: faults, pulse failures, retries) and threshold writes, the pulse
and failure counters checked after each; then the images again, on the arrays as written.
Configuration arrives as JSON through $RRAMBNN_TB_CONFIG (written by
:func:`rrambnn.sim.chip_sim.simulate_macro`); the seed is logged.
"""

from __future__ import annotations


import cocotb
import numpy as np
from cocotb.triggers import RisingEdge

from rrambnn.gen.device import Chip as DeviceChip
from rrambnn.gen.device import DeviceParams, load_fault_maps, program
from rrambnn.gen.network import BinaryNetwork
from rrambnn.hw.crossbar import _bits
from rrambnn.hw.macro import macro_periphery_of
from rrambnn.hw.config import ChipConfig
from rrambnn.sim.runner import write_result
from rrambnn.sim.tb_chip import ImageDriver, Monitor, pack_fields, pack_rows, read_config, start, stream


class MacroGolden:
    """The network as the arrays hold it (device model cells), thresholds in the periphery;
    writes are write-verified exactly as the periphery does (``retries`` more pulses)."""

    def __init__(self, net: BinaryNetwork, tile, device: DeviceParams, faults, retries: int = 3):
        self.max_out, self.retries = max(net.arch[1:]), retries
        self.chip = DeviceChip(net.arch, tile, net.cells, device, faults)
        self.thresholds = [np.asarray(t, np.int32).copy() for t in net.thresholds]
        self.counters = [0, 0, 0]  # SET pulses, RESET pulses, failed cells

    def classify(self, x, output):
        eff = BinaryNetwork(self.chip.weights(), [t.copy() for t in self.thresholds], None, output)
        t = eff.forward(x)
        return [(int(c), int(h)) for c, h in zip(t.labels(output), t.hit)]

    def write(self, layer, thr, row, col, value):
        if thr:
            self.thresholds[layer][col] = value
            return
        rep = program(self.chip, [(layer, row, 0, value << col, 1 << col)], self.max_out, self.retries)
        self.counters[0] += rep.pulses_set
        self.counters[1] += rep.pulses_reset
        self.counters[2] += len(rep.failed)


def random_writes(arch, rng, n):
    """(layer, thr, row, col, value): three cell writes for every threshold write."""
    writes = []
    for _ in range(n):
        k = int(rng.integers(len(arch) - 1))
        n_in, n_out = arch[k], arch[k + 1]
        if rng.random() < 0.75:
            writes.append((k, 0, int(rng.integers(n_in)), int(rng.integers(n_out)), int(rng.integers(2))))
        else:
            writes.append((k, 1, 0, int(rng.integers(n_out)), int(rng.integers(-n_in // 3, n_in // 3 + 1))))
    return writes


@cocotb.test()
async def macro_matches_golden(dut):
    cfg, net, x, seed, rng = read_config(dut)
    chip = ChipConfig.from_dict(cfg["chip"])
    faults = load_fault_maps(cfg["faults"], net.arch)
    periphery = macro_periphery_of(net, output=chip.output, retries=chip.retries,
                             pulse_cycles=chip.pulse_cycles)  # its write layout
    golden = MacroGolden(net, chip.tile, chip.device, faults, chip.retries)
    output = chip.output
    cls_w = _bits(net.arch[-1])

    await start(dut, [(dut.i__valid, 0), (dut.o__ready, 0), (dut.wr__valid, 0)])

    images = pack_rows(x)
    per_image = 20 * sum(-(-n // 8) * 5 + 10 * m for n, m in zip(net.arch[:-1], net.arch[1:]))
    driver = ImageDriver(dut, rng, cfg.get("p_idle", 0.2))
    results = Monitor(dut.o__valid, dut.o__ready, dut.o__payload, rng, cfg.get("p_stall", 0.2))
    want = golden.classify(x, output)
    cycle = await stream(dut, driver, results, images, range(len(x)), 0, per_image)

    writes = random_writes(net.arch, np.random.default_rng(seed), int(cfg["writes"]))
    counters, want_counters = [], []
    for w in writes:
        golden.write(*w)
        want_counters.append(list(golden.counters))
        k, thr, row, col, value = w
        dut.wr__payload.value = pack_fields(periphery.wr_layout, periphery.threshold_write(k, col, value) if thr
                                            else periphery.cell_write(k, row, col, value))
        dut.wr__valid.value = 1
        await RisingEdge(dut.clk)
        while not dut.wr__ready.value:
            await RisingEdge(dut.clk)
        dut.wr__valid.value = 0
        await RisingEdge(dut.clk)
        counters.append([dut.n_set.value.to_unsigned(), dut.n_reset.value.to_unsigned(),
                         dut.n_failed.value.to_unsigned()])
    want += golden.classify(x, output)
    cycle = await stream(dut, driver, results, images, range(len(x)), cycle, per_image)

    got = [(v & ((1 << cls_w) - 1), (v >> cls_w) & 1) for v in results.received]

    # free-flowing: cycles per image
    n_tp = min(len(x), 12)
    driver.p_idle, results.p_stall = 0.0, 0.0
    first = len(driver.accept_cycles)
    await stream(dut, driver, results, images, range(n_tp), cycle, per_image)
    acc = driver.accept_cycles[first:]
    mismatches = [i for i, (g, w_) in enumerate(zip(got, want)) if g != w_]
    counter_diffs = [i for i, (g, w_) in enumerate(zip(counters, want_counters)) if g != w_]
    result = {"seed": seed, "images": len(x), "checked": len(got), "mismatches": len(mismatches),
              "examples": [{"image": i, "got": got[i], "want": want[i]} for i in mismatches[:10]],
              "writes": len(writes), "counters": counters[-1] if counters else None,
              "counter_mismatches": len(counter_diffs),
              "cycles_per_image": (acc[-1] - acc[1]) / (len(acc) - 2)}
    write_result(cfg, result)
    assert not mismatches, f"{len(mismatches)} mismatches, first {result['examples'][:3]}"
    assert not counter_diffs, f"counters differ after write {counter_diffs[0]}: " \
        f"{counters[counter_diffs[0]]} != {want_counters[counter_diffs[0]]}"
