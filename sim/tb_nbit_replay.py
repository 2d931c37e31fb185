"""cocotb testbench: a recorded n-bit online-training run replayed on the training chip.

The chip is the multi-bit chip whose n computing planes hold the offset-code weights, with the
weight-update controller working in that code (:mod:`rrambnn.gen.online_nbit`). For every
recorded sample:

1. an image driver (random idle cycles) sends the sample's input bits; a result monitor
   (random backpressure) takes the forward pass: the hidden codes (``act0``) and the output
   sums (``sums``) must equal what the golden chip computes from its present cells;
2. the sample's commands (the hidden layer's rank-1 step, the output layer's element updates)
   go to ``upd`` (random idle cycles); the golden :class:`rrambnn.gen.online_nbit.NbitChip`
   applies the same step, and the step it computes from its own state must equal the recorded
   one.

A monitor with random backpressure collects the failed-cell stream throughout. At the end:
pulse, failure and update counters, the failed cells in order, every cell and switch counter
of every plane read back, and the classification of test images. Configuration arrives as
JSON through $RRAMBNN_TB_CONFIG (written by :func:`rrambnn.sim.chip_sim.replay_nbit`);
the seed is logged.
"""

from __future__ import annotations

import gc
import random
import time

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge

from rrambnn.gen import online_nbit, online_sign
from rrambnn.hw.config import ChipConfig
from rrambnn.hw.verilog import build_chip
from rrambnn.sim.runner import testbench_config, write_result
from rrambnn.sim.tb_chip import Monitor, field_table, start, unpack_fields
from rrambnn.sim.tb_sign_replay import COUNTERS, check_device, pack_command
from rrambnn.sim.tb_sliced import image_payloads


def _vector(value: int, n: int, width: int, signed: bool = False) -> np.ndarray:
    v = np.array([(value >> (i * width)) & ((1 << width) - 1) for i in range(n)], np.int64)
    if signed:
        v = np.where(v >= 1 << (width - 1), v - (1 << width), v)
    return v


def commands(x: np.ndarray, st: online_nbit.Step, n_hid: int) -> list[online_sign.Command]:
    """A sample's commands as the weight-update controller takes them."""
    out = []
    if len(st.cols):
        e = np.zeros(n_hid, np.int64)
        e[st.cols] = st.step
        out.append(online_sign.Command(0, True, x=x.astype(np.uint8), e=e))
    out += [online_sign.Command(1, False, row=int(r), col=int(c), delta=int(d))
            for r, c, d in zip(st.rows2, st.cols2, st.delta2)]
    return out


class Replay:
    """Drives one handshake at a time while the failed-cell monitor keeps sampling."""

    def __init__(self, dut, rng: random.Random, p_idle: float, failed: Monitor):
        self.dut, self.rng, self.p_idle, self.failed = dut, rng, p_idle, failed
        self.cycles = 0

    async def tick(self):
        await RisingEdge(self.dut.clk)
        self.cycles += 1
        self.failed.sample(self.cycles)
        self.failed.drive()

    async def send(self, valid, ready, payload, value: int, limit: int):
        while self.p_idle and self.rng.random() < self.p_idle:
            await self.tick()
        payload.value = value
        valid.value = 1
        start = self.cycles
        while True:
            await self.tick()
            if ready.value:
                break
            if self.cycles - start > limit:
                raise AssertionError(f"timeout: no ready for {limit} cycles")
        valid.value = 0

    async def receive(self, monitor: Monitor, limit: int) -> int:
        n = len(monitor.received)
        start = self.cycles
        while len(monitor.received) == n:
            monitor.drive()
            await self.tick()
            monitor.sample(self.cycles)
            if self.cycles - start > limit:
                raise AssertionError(f"timeout: no result for {limit} cycles")
        monitor.ready.value = monitor.ready_now = 0
        return monitor.received[-1]

    async def idle(self):
        """Until the weight-update and programming controllers rest and the failed FIFO is empty
        (a command accepted at the last edge shows ``upd_busy`` only after the next one)."""
        for _ in range(2):
            await self.tick()
        while self.dut.upd_busy.value or self.dut.prog_busy.value or self.dut.failed__valid.value:
            await self.tick()


def device_result(state: dict, golden: online_nbit.NbitChip) -> dict:
    """The device part of a training testbench's result: counters, failed cells, read-back, wear."""
    E = golden.cfg.device.endurance
    return {"hardware": state["hardware"], "golden": {k: golden.stats[k] for k in COUNTERS},
            "failed_cells": len(state["hw_failed"]), "failed_match": state["failed_match"],
            "cells_read": int(sum(a.cells.size for a in golden.arrays)),
            "cell_mismatches": state["cell_mismatches"], "count_mismatches": state["count_mismatches"],
            "codes_match": all((online_nbit.decode(h) == c).all() for h, c in zip(state["hw_cells"], golden.codes())),
            "switches_total": int(sum(a.counts.sum() for a in golden.arrays)),
            "worn_out_cells": int(sum((a.counts >= E).sum() for a in golden.arrays)) if E else 0,
            "examples": state["examples"], "readback_wall_s": state["readback_wall_s"]}


@cocotb.test()
async def training_replay_matches_golden(dut):
    cfg = testbench_config()
    tr = online_nbit.load_trace(cfg["trace"])
    arch, ncfg = tr["arch"], tr["config"]
    net = online_nbit.training_network(arch, ncfg, [online_nbit.decode(c) for c in tr["cells"]])
    chip_cfg = ChipConfig.from_dict(cfg["chip"])
    hw = build_chip(net, chip_cfg, tr["cells"], tr["faults"])
    golden = online_nbit.chip_from_cells(arch, ncfg, tr["cells"], tr["faults"])
    golden.failed = []
    x_test = np.load(cfg["images"])
    seed = int(cfg["seed"])
    rng = random.Random(seed)
    p_idle, p_stall = cfg.get("p_idle", 0.2), cfg.get("p_stall", 0.2)
    dut._log.info(f"seed {seed} (replay with the same seed); {len(tr['samples'])} samples, {ncfg.wbits}-bit weights, "
                  f"{ncfg.m}-bit neurons")
    gc.freeze()
    await start(dut, [(h, 0) for h in (dut.i__valid, dut.o__ready, dut.thr__valid, dut.prog__valid, dut.failed__ready,
                                       dut.upd__valid, dut.read_layer, dut.read_row, dut.read_col, dut.read_plane)])
    failed_mon = Monitor(dut.failed__valid, dut.failed__ready, dut.failed__payload, rng, p_stall)
    results = Monitor(dut.o__valid, dut.o__ready, dut.o__payload, rng, p_stall)
    bench = Replay(dut, rng, p_idle, failed_mon)
    failed_mon.drive()
    out_fields = field_table(hw.out_layout)
    n_hid, n_out = arch[1], arch[2]
    code_w, sum_w = hw.layers[0].code_bits, hw.layers[-1].sw
    layout = hw.updater.cmd_layout
    per_cmd = (1 + ncfg.retries) * (chip_cfg.pulse_cycles + 2) * ncfg.wbits + 16
    failures = []
    forward_mismatches = step_mismatches = n_cmds = 0
    t0 = time.perf_counter()
    for i, (x, label, epoch, recorded) in enumerate(tr["samples"]):
        await bench.send(dut.i__valid, dut.i__ready, dut.i__payload, image_payloads(x[None], ncfg.m)[0],
                         limit=10 * per_cmd * max(1, arch[0]))
        got = unpack_fields(out_fields, await bench.receive(results, limit=4 * hw.interval + 100))
        st = golden.compute(x, label, epoch)
        h_hw = _vector(got["act0"], n_hid, code_w)
        o_hw = _vector(got["sums"], n_out, sum_w, signed=True)
        if not ((h_hw == st.h).all() and (o_hw == st.o).all()):
            forward_mismatches += 1
            if forward_mismatches <= 3:
                failures.append(f"sample {i}: forward pass differs (hidden codes {int((h_hw != st.h).sum())}, "
                                f"output sums {o_hw.tolist()} vs {st.o.tolist()})")
        same = all(np.array_equal(getattr(st, f), getattr(recorded, f))
                   for f in ("h", "o", "cols", "step", "rows2", "cols2", "delta2"))
        step_mismatches += not same
        cmds = commands(x, st, n_hid)
        weights = sum(int(c.x.sum()) * int(np.count_nonzero(c.e)) if c.rank1 else 1 for c in cmds)
        for cmd in cmds:  # (the controller takes a command once the one before is done)
            await bench.send(dut.upd__valid, dut.upd__ready, dut.upd__payload, pack_command(layout, cmd),
                             limit=per_cmd * weights + 1000)
            n_cmds += 1
        golden.apply(x, st)
        await bench.idle()
        if (i + 1) % 100 == 0:
            dut._log.info(f"{i + 1} samples replayed, {bench.cycles:,} cycles, {forward_mismatches} forward mismatches")
    replay_s = time.perf_counter() - t0
    if step_mismatches:
        failures.append(f"{step_mismatches} samples' golden steps differ from the recorded trace")
    for _ in range(4):
        await bench.tick()

    g = golden.stats
    state = await check_device(dut, hw, {k: g[k] for k in COUNTERS}, golden.failed, golden.arrays, failed_mon)
    failures += state["failures"]

    # test images on the trained chip: hidden codes, output sums and class of each
    class_mismatches = 0
    h_gold, o_gold = online_nbit.forward_batch(golden.w, x_test, golden.ramps)
    for j, x in enumerate(x_test):
        await bench.send(dut.i__valid, dut.i__ready, dut.i__payload, image_payloads(x[None], ncfg.m)[0],
                         limit=4 * hw.interval + 100)
        got = unpack_fields(out_fields, await bench.receive(results, limit=4 * hw.interval + 100))
        ok = ((_vector(got["act0"], n_hid, code_w) == h_gold[j]).all()
              and (_vector(got["sums"], n_out, sum_w, signed=True) == o_gold[j]).all()
              and got["cls"] == int(o_gold[j].argmax()))
        class_mismatches += not ok
    if class_mismatches:
        failures.append(f"{class_mismatches} of {len(x_test)} test images differ after training")
    result = {"seed": seed, "samples": len(tr["samples"]), "commands": n_cmds, "cycles": bench.cycles,
              "cycles_per_sample": round(bench.cycles / max(1, len(tr["samples"])), 1),
              "replay_wall_s": round(replay_s, 2),
              "forward_mismatches": forward_mismatches, "step_mismatches": step_mismatches,
              **device_result(state, golden),
              "images": len(x_test), "class_mismatches": class_mismatches,
              "passed_checks": not failures, "failures": failures}
    write_result(cfg, result)
    assert not failures, "; ".join(failures)
