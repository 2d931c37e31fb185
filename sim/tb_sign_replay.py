"""cocotb testbench: an update trace replayed through the weight-update controller.

A command driver (random idle cycles) feeds the recorded update commands to ``upd``; a
monitor (random backpressure) collects the failed-cell stream; the golden online chip
(:class:`rrambnn.gen.online_sign.SignChip`) applies the same commands. Checked, against the
golden model:

* the failed-cell addresses, in order (in-order checker);
* the pulse counters (SET, RESET), the failed-cell count and the number of weights updated;
* every cell of every plane and every switch counter, read back through the read port, and
  so every weight's code;
* classification of a few images afterwards (inference sees the updated sign cells).

Configuration arrives as JSON through $RRAMBNN_TB_CONFIG (written by
:func:`rrambnn.sim.chip_sim.replay_sign`); the seed is logged.
"""

from __future__ import annotations

import gc
import random
import time

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge

from rrambnn.fileio import read_npz
from rrambnn.gen import online_sign, planes
from rrambnn.gen.network import BinaryNetwork
from rrambnn.hw.config import ChipConfig
from rrambnn.hw.verilog import build_chip
from rrambnn.sim.runner import testbench_config, write_result
from rrambnn.sim.tb_chip import (ImageDriver, Monitor, field_table, pack_fields, pack_rows, start, stream,
                                 unpack_fields)


def pack_command(layout, cmd: online_sign.Command) -> int:
    """An update command as the ``upd`` payload (rank-1 vectors padded to the widest layer)."""
    x = e = 0
    if cmd.rank1:
        x = pack_rows(cmd.x[None])[0]
        ew = layout["e"].shape.elem_shape.width
        e = sum((int(v) & ((1 << ew) - 1)) << (j * ew) for j, v in enumerate(cmd.e))
    return pack_fields(layout, {"layer": cmd.layer, "rank1": int(cmd.rank1), "row": cmd.row, "col": cmd.col,
                                "delta": cmd.delta, "x": x, "e": e})


COUNTERS = {"pulses_set": "n_set", "pulses_reset": "n_reset", "cells_failed": "n_failed",
            "weight_updates": "n_updates"}


async def check_device(dut, hw, golden_counts: dict, golden_failed: list, arrays, failed_mon) -> dict:
    """After an update run: the pulse, failure and update counters, the failed-cell stream (in
    order) and every cell and switch counter read back, against the golden values."""
    fields = field_table(hw.programmer.addr_layout)
    hw_failed = [tuple(unpack_fields(fields, v)[k] for k in ("layer", "plane", "row", "col"))
                 for v in failed_mon.received]
    hw_counts = {k: getattr(dut, port).value.to_unsigned() for k, port in COUNTERS.items()}
    failures = []
    if hw_counts != golden_counts:
        failures.append(f"counters differ: hardware {hw_counts}, golden {golden_counts}")
    if hw_failed != golden_failed:
        failures.append(f"failed-cell streams differ: {hw_failed[:5]} vs {golden_failed[:5]}")
    if int(dut.prog_overflow.value):
        failures.append("the failed-cell FIFO overflowed")
    t = time.perf_counter()
    hw_cells, bad_cells, bad_counts, examples = await read_back(dut, arrays)
    if bad_cells or bad_counts:
        failures.append(f"read-back differs: {bad_cells} cells, {bad_counts} counters, e.g. {examples[:3]}")
    return {"failures": failures, "hardware": hw_counts, "hw_failed": hw_failed, "hw_cells": hw_cells,
            "cell_mismatches": bad_cells, "count_mismatches": bad_counts, "examples": examples,
            "readback_wall_s": round(time.perf_counter() - t, 2), "failed_match": hw_failed == golden_failed}


async def read_back(dut, arrays):
    """Read every cell and switch counter of every plane through the read port; compare with the
    golden :class:`rrambnn.gen.planes.PlaneArrays`. Returns (cells, cell mismatches, counter
    mismatches, up to 10 examples)."""
    bad_cells = bad_counts = 0
    examples = []
    hw_cells = [np.zeros_like(a.cells) for a in arrays]
    for k, a in enumerate(arrays):
        for p in range(a.n):
            dut.read_layer.value, dut.read_plane.value = k, p
            for r in range(a.n_in):
                dut.read_row.value = r
                for col in range(a.n_out):
                    dut.read_col.value = col
                    await RisingEdge(dut.clk)
                    bit, cnt = int(dut.read_bit.value), dut.read_count.value.to_unsigned()
                    hw_cells[k][p, r, col] = bit
                    if bit != a.cells[p, r, col] or cnt != a.counts[p, r, col]:
                        bad_cells += bit != a.cells[p, r, col]
                        bad_counts += cnt != a.counts[p, r, col]
                        if len(examples) < 10:
                            examples.append({"layer": k, "plane": p, "row": r, "col": col,
                                             "bit": [bit, int(a.cells[p, r, col])],
                                             "count": [cnt, int(a.counts[p, r, col])]})
    return hw_cells, int(bad_cells), int(bad_counts), examples


@cocotb.test()
async def replay_matches_golden(dut):
    cfg = testbench_config()
    net = BinaryNetwork.load(cfg["weights"])
    chip_cfg = ChipConfig.from_dict(cfg["chip"])
    arrays = read_npz(cfg["arrays"], "testbench arrays")
    L = len(net.weights)
    cells = [arrays[f"cells{k}"] for k in range(L)]
    faults = [arrays[f"faults{k}"] for k in range(L)]
    hw = build_chip(net, chip_cfg, cells, faults)
    golden = online_sign.SignChip(net, online_sign.SignConfig(wbits=chip_cfg.update_bits, err_bits=chip_cfg.step_bits,
                                                        retries=chip_cfg.retries, tile=chip_cfg.tile,
                                                        device=chip_cfg.device),
                               faults=faults, cells=cells)
    _, commands = online_sign.load_trace(cfg["trace"])
    x_img = np.load(cfg["images"])
    seed = int(cfg["seed"])
    rng = random.Random(seed)
    dut._log.info(f"seed {seed} (replay with the same seed)")
    gc.freeze()

    await start(dut, [(h, 0) for h in (dut.i__valid, dut.o__ready, dut.thr__valid, dut.prog__valid, dut.failed__ready,
                                       dut.upd__valid, dut.read_layer, dut.read_row, dut.read_col, dut.read_plane)])

    layout = hw.updater.cmd_layout
    payloads = [pack_command(layout, cmd) for cmd in commands]
    failed_mon = Monitor(dut.failed__valid, dut.failed__ready, dut.failed__payload, rng, cfg.get("p_stall", 0.2))
    p_idle = cfg.get("p_idle", 0.2)
    t0 = time.perf_counter()
    cycles = 0
    sent = last_accept = 0
    valid = False
    limit = 2000 + 4000 * sum(max(1, int(cmd.x.sum()) * int(np.count_nonzero(cmd.e))) if cmd.rank1 else 1
                              for cmd in commands) * chip_cfg.update_bits
    failed_mon.drive()
    while True:
        if not valid and sent < len(payloads) and not (p_idle and rng.random() < p_idle):
            dut.upd__payload.value = payloads[sent]
            dut.upd__valid.value = valid = True
        await RisingEdge(dut.clk)
        cycles += 1
        if valid and dut.upd__ready.value:
            golden.apply(commands[sent])
            sent += 1
            last_accept = cycles
            dut.upd__valid.value = valid = False
        failed_mon.sample(cycles)
        failed_mon.drive()
        # (values read at an edge are those before it: a command accepted at this edge shows
        # upd_busy only at the next one, hence the wait after the last acceptance)
        if sent == len(payloads) and not valid and cycles - last_accept >= 2 and not dut.upd_busy.value \
                and not dut.prog_busy.value and not dut.failed__valid.value:
            break
        if cycles > limit:
            raise AssertionError(f"timeout after {cycles} cycles: {sent} of {len(payloads)} commands sent")
    replay_s = time.perf_counter() - t0

    # counters, the failed-cell stream in order, every cell and counter of every plane
    g = golden.stats
    golden_counts = {k: v for k, v in g.as_dict().items() if k in COUNTERS}
    state = await check_device(dut, hw, golden_counts, [tuple(f) for f in g.failed], golden.arrays, failed_mon)
    failures = state["failures"]
    hw_counts, hw_failed, hw_cells = state["hardware"], state["hw_failed"], state["hw_cells"]
    bad_cells, bad_counts, examples = state["cell_mismatches"], state["count_mismatches"], state["examples"]
    readback_s = state["readback_wall_s"]

    # inference on the updated chip
    sign_net = golden.sign_network()
    want = sign_net.forward(x_img).labels(chip_cfg.output)
    images = pack_rows(x_img)
    driver = ImageDriver(dut, rng, p_idle)
    results = Monitor(dut.o__valid, dut.o__ready, dut.o__payload, rng, cfg.get("p_stall", 0.2))
    out_fields = field_table(hw.out_layout)
    await stream(dut, driver, results, images, range(len(images)), 0)
    got = [unpack_fields(out_fields, v)["cls"] for v in results.received]
    class_mismatches = int(sum(int(a) != int(b) for a, b in zip(got, want)))
    if class_mismatches:
        failures.append(f"{class_mismatches} of {len(images)} classifications differ after the updates")

    codes_equal = all((planes.decode(h) == g).all() for h, g in zip(hw_cells, golden.codes()))
    if not codes_equal:
        failures.append("weight codes decoded from the read-back cells differ from the golden codes")
    result = {"seed": seed, "commands": len(commands), "cycles": cycles, "replay_wall_s": round(replay_s, 2),
              "readback_wall_s": round(readback_s, 2), "hardware": hw_counts, "golden": golden_counts,
              "failed_cells": len(hw_failed), "failed_match": hw_failed == [tuple(f) for f in g.failed],
              "cells_read": int(sum(a.cells.size for a in golden.arrays)), "cell_mismatches": int(bad_cells),
              "count_mismatches": int(bad_counts), "codes_match": bool(codes_equal),
              "switches_total": int(sum(a.counts.sum() for a in golden.arrays)),
              "worn_out_cells": int(sum((a.counts >= chip_cfg.device.endurance).sum() for a in golden.arrays))
              if chip_cfg.device.endurance else 0,
              "images": len(images), "class_mismatches": class_mismatches, "examples": examples,
              "passed_checks": not failures, "failures": failures}
    write_result(cfg, result)
    assert not failures, "; ".join(failures)
