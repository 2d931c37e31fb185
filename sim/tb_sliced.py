"""cocotb testbench of a multi-bit chip (weight slices, bit-serial activations) against the
golden :class:`rrambnn.gen.sliced.SlicedNetwork`.

An image driver with random idle cycles and a result monitor with random backpressure; the
golden network (with the fault map's stuck cells folded into its codes) predicts every result
payload; an in-order checker compares. Phases: random traffic -> throughput (no idles, no
backpressure: cycles per image must equal the chip's ``interval``) -> threshold rewrites (hidden
levels and output neurons) + traffic. Configuration arrives as JSON ($RRAMBNN_TB_CONFIG,
written by :func:`rrambnn.sim.chip_sim.simulate_sliced`); the seed is logged.
"""

from __future__ import annotations

import random

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge

from rrambnn.gen.network import answers
from rrambnn.gen.sliced import SlicedNetwork, bit_planes, slice_codes
from rrambnn.hw.config import ChipConfig
from rrambnn.hw.verilog import build_chip
from rrambnn.sim.runner import testbench_config, write_result
from rrambnn.sim.tb_chip import ImageDriver, Monitor, field_table, pack_fields, pack_rows, start, stream, \
    unpack_fields


def effective_network(net: SlicedNetwork, faults, cells=None) -> SlicedNetwork:
    """The network the arrays compute (``cells`` per layer (n, n_in, n_out), default the
    network's own): stuck cells (1 = HRS, 2 = LRS) override their slice bit."""
    weights = []
    for k in range(len(net.weights)):
        cells_k = net.cells(k) if cells is None else cells[k]
        f = np.asarray(faults[k])
        c = np.where(f == 1, 0, np.where(f == 2, 1, cells_k))
        weights.append(slice_codes(c, net.wbits, net.ternary))
    return SlicedNetwork(weights, [t.copy() for t in net.thresholds], net.wbits, net.abits, net.crop,
                         net.output_mode, net.meta, ternary=net.ternary)


def image_payloads(x: np.ndarray, abits: int) -> list[int]:
    """Input codes (N, n_in) -> payloads with pixel i's code in bits [i*m, (i+1)*m)."""
    planes = bit_planes(x, abits)  # (m, N, n_in)
    bits = np.transpose(planes, (1, 2, 0)).reshape(len(x), -1)
    return pack_rows(bits)


def expected_payloads(net: SlicedNetwork, layout, output: str, x: np.ndarray) -> list[int]:
    return trace_payloads(net.forward(x), layout, output)


def trace_payloads(t, layout, output: str) -> list[int]:
    """A golden :class:`rrambnn.gen.network.Trace` as the chip's result payloads."""
    values = {"cls": t.labels(output)[:, None], "hit": t.hit[:, None].astype(np.int64), "sums": t.sums[-1]}
    for k, a in enumerate(t.acts):
        values[f"act{k}"] = a.astype(np.int64)
    out = []
    for i in range(len(t.hit)):
        fields = {}
        for name, f in layout:
            v = values[name][i]
            w = f.width // len(v)
            fields[name] = sum((int(e) & ((1 << w) - 1)) << (w * j) for j, e in enumerate(v))
        out.append(pack_fields(layout, fields))
    return out


async def write_threshold(dut, layout, layer: int, index: int, value: int, level: int = 0) -> dict:
    """One threshold write, taken at the next edge (the multi-bit chip's ``thr.ready`` is always
    high); ``level``: the flash converter's level, where the chip has levels. Returns the fields."""
    fields = {"layer": layer, "index": index, "value": value}
    if "level" in {name for name, _ in layout}:
        fields["level"] = level
    dut.thr__payload.value = pack_fields(layout, fields)
    dut.thr__valid.value = 1
    await RisingEdge(dut.clk)
    dut.thr__valid.value = 0
    return fields


@cocotb.test()
async def sliced_chip_matches_golden(dut):
    cfg = testbench_config()
    net = SlicedNetwork.load(cfg["weights"])
    chip_cfg = ChipConfig.from_dict(cfg["chip"]).for_network(net)
    from rrambnn.gen.planes import plane_faults
    analog = None
    if chip_cfg.analog:  # the profile's chip: its slice arrays, offsets and read noise (rrambnn.gen.analog_coded)
        from rrambnn.gen import analog_coded
        analog = analog_coded.chip(net, chip_cfg.profile, chip_cfg.analog_seed)
        chip = build_chip(net, chip_cfg)
        golden = net
    else:
        faults = plane_faults(net.arch, chip_cfg.device, net.wbits)
        chip = build_chip(net, chip_cfg, None, faults)
        golden = effective_network(net, faults)
    x = np.load(cfg["images"])
    seed = int(cfg["seed"])
    rng = random.Random(seed)
    dut._log.info(f"seed {seed} (replay with the same seed); {net.wbits}-bit weights, {net.abits}-bit activations")
    layout = chip.out_layout
    thr_layout = chip.signature.members["thr"].signature.members["payload"].shape
    images = image_payloads(x, net.abits)
    await start(dut, [(h, 0) for h in (dut.i__valid, dut.o__ready, dut.thr__valid, dut.prog__valid,
                                       dut.failed__ready, dut.read_layer, dut.read_row, dut.read_col)])
    driver = ImageDriver(dut, rng, cfg["p_idle"])
    results = Monitor(dut.o__valid, dut.o__ready, dut.o__payload, rng, cfg["p_stall"])
    n = len(x)
    theta, written = None, 0
    if cfg.get("thresholds"):  # a host's per-chip calibration, every level of every neuron, first
        theta = [np.asarray(t, np.int64) for t in cfg["thresholds"]]
        for layer, t in enumerate(theta):
            for j in range(t.shape[0]):
                for lv, value in enumerate(np.atleast_1d(t[j])):
                    await write_threshold(dut, thr_layout, layer, j, int(value), lv)
                    written += 1
        if analog is None:  # (with analog reads the golden currents are compared with theta)
            golden.thresholds = [t.copy() for t in theta]
            golden.__post_init__()
    cycle = await stream(dut, driver, results, images, range(n), 0, cycles_per_image=4 * chip.interval + 20)
    checked = [(i, golden) for i, _ in driver.accepted]
    # throughput: no idles, no backpressure
    driver.p_idle, results.p_stall = 0.0, 0.0
    m = min(n, cfg["throughput_images"])
    c0 = cycle
    cycle = await stream(dut, driver, results, images, range(m), cycle, cycles_per_image=4 * chip.interval + 20)
    first, last = results.receive_cycles[-m], results.receive_cycles[-1]
    interval = (last - first) / max(1, m - 1)
    checked += [(i, golden) for i, _ in driver.accepted[len(checked):]]
    # threshold rewrites: a hidden neuron's level (rows stay non-decreasing) and an output neuron
    rewrites = []
    if cfg["rewrite_thresholds"]:
        golden = effective_network(net, faults)
        if theta is not None:  # the thresholds written first stay
            golden.thresholds = [t.copy() for t in theta]
        for layer in range(len(net.weights)):
            t = golden.thresholds[layer]
            j = rng.randrange(t.shape[0])
            if t.ndim == 2:
                lv = rng.randrange(t.shape[1])
                lo = t[j, lv - 1] if lv else -chip.layers[layer].bound
                hi = t[j, lv + 1] if lv + 1 < t.shape[1] else chip.layers[layer].bound + 1
                value = rng.randint(int(lo), int(hi))
                t[j, lv] = value
            else:
                lv, value = 0, int(t[j]) + rng.choice((-3, -1, 2, 5))
                t[j] = value
            rewrites.append(await write_threshold(dut, thr_layout, layer, j, value, lv))
            cycle += 1
        golden.__post_init__()
        driver.p_idle, results.p_stall = cfg["p_idle"], cfg["p_stall"]
        cycle = await stream(dut, driver, results, images, range(n), cycle, cycles_per_image=4 * chip.interval + 20)
        checked += [(i, golden) for i, _ in driver.accepted[len(checked):]]
    # reprogramming: random words of random planes through the write-verify controller (a device
    # without pulse failures: the cells take their targets unless stuck), then traffic again
    programmed = 0
    if cfg.get("program_commands"):
        cells = [net.cells(k) for k in range(len(net.weights))]
        cmd_layout = chip.programmer.cmd_layout
        word = chip_cfg.word
        for _ in range(cfg["program_commands"]):
            layer = rng.randrange(len(net.weights))
            n_in, n_out = net.weights[layer].shape
            fields = {"layer": layer, "plane": rng.randrange(net.wbits), "row": rng.randrange(n_in),
                      "word": rng.randrange(-(-n_out // word)), "bits": rng.getrandbits(word),
                      "mask": rng.getrandbits(word)}
            dut.prog__payload.value = pack_fields(cmd_layout, fields)
            dut.prog__valid.value = 1
            while True:
                await RisingEdge(dut.clk)
                cycle += 1
                if dut.prog__ready.value:
                    break
            dut.prog__valid.value = 0
            for i in range(word):
                col = fields["word"] * word + i
                if (fields["mask"] >> i) & 1 and col < n_out:
                    cells[layer][fields["plane"], fields["row"], col] = (fields["bits"] >> i) & 1
            programmed += 1
        await RisingEdge(dut.clk)
        while dut.prog_busy.value or not dut.prog_done.value:
            await RisingEdge(dut.clk)
            cycle += 1
        before = golden
        golden = effective_network(net, faults, cells)
        golden.thresholds = [t.copy() for t in before.thresholds]  # keep the rewritten thresholds
        golden.__post_init__()
        cycle = await stream(dut, driver, results, images, range(n), cycle, cycles_per_image=4 * chip.interval + 20)
        checked += [(i, golden) for i, _ in driver.accepted[len(checked):]]
    # in-order check of every result against the golden network of its phase
    mismatches, examples = 0, []
    fields = field_table(layout)
    expected = {}
    if analog is not None:  # the t-th accepted image is the chip's image t (its read-noise key)
        from rrambnn.gen import analog_coded
        order = np.array([i for i, _ in checked], np.int64)
        tr = analog_coded.forward(net, x[order], analog, theta=theta, image_ids=np.arange(len(order)), trace=True)
        checked = [((t, int(i)), golden) for t, i in enumerate(order)]
        expected = {(key, id(golden)): p for (key, _), p in zip(checked, trace_payloads(tr, layout, chip_cfg.output))}
    for (i, g), got in zip(checked, results.received):
        key = (i, id(g))
        if key not in expected:
            for j, p in zip(range(n), expected_payloads(g, layout, chip_cfg.output, x)):
                expected[j, id(g)] = p
        if got != expected[key]:
            mismatches += 1
            if len(examples) < 10:
                a, b = unpack_fields(fields, got), unpack_fields(fields, expected[key])
                examples.append({"image": i, "fields": {k: {"got": a[k], "want": b[k]} for k in a if a[k] != b[k]}})
    _, cls_off, cls_mask = next(f for f in fields if f[0] == "cls")
    _, hit_off, _ = next(f for f in fields if f[0] == "hit")
    res = {"seed": seed, "images": len(checked), "mismatches": mismatches, "examples": examples,
           "hw_labels": answers([(v >> cls_off) & cls_mask for v in results.received[:n]],
                                [(v >> hit_off) & 1 for v in results.received[:n]], chip_cfg.output).tolist(),
           "interval_measured": interval, "interval_model": chip.interval, "cycles": cycle - c0,
           "rewrites": rewrites, "programmed": programmed, "wbits": net.wbits, "abits": net.abits,
           "thresholds_written": written}
    write_result(cfg, res)
    assert len(checked) == len(results.received), "results and accepted images differ in number"
    assert mismatches == 0, f"{mismatches} mismatches, e.g. {examples[:3]}"
    assert interval == chip.interval, f"{interval} cycles per image, model {chip.interval}"
