"""cocotb testbench: the self-training chip trains itself, against the golden trainer.

Samples (image bits, label) go to ``train`` with random idle cycles; nothing else is sent: the
chip runs the forward pass, the output error, the transposed reads, the hidden steps and the
updates itself (:mod:`rrambnn.hw.trainer`). The golden :class:`rrambnn.gen.online_nbit.NbitChip`
takes the same samples. Checked:

* per sample, the cycles ``train_busy`` is high against :func:`rrambnn.hw.trainer.sample_cycles`
  evaluated on the golden step (pixels, errors, elements, weights, cells, pulses, failures);
* images offered on ``i`` together with a sample (a random fraction) wait until the step is
  done, and their results (hidden codes, output sums, class) are those of the updated weights;
* at the end: ``n_samples``, the pulse/failure/update counters, the failed-cell stream in order
  (a monitor with random backpressure throughout), every cell and switch counter of every plane
  read back, and the classification of test images.

Configuration arrives as JSON through $RRAMBNN_TB_CONFIG (written by
:func:`rrambnn.sim.chip_sim.simulate_self_training`); the seed is logged.
"""

from __future__ import annotations

import gc
import random
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.simtime import get_sim_time
from cocotb.triggers import FallingEdge, First, RisingEdge, Timer
from cocotb.utils import get_sim_steps

from rrambnn.fileio import read_npz
from rrambnn.gen import online_nbit
from rrambnn.hw.trainer import sample_cycles
from rrambnn.hw.config import ChipConfig
from rrambnn.hw.verilog import build_chip
from rrambnn.sim.runner import testbench_config, write_result
from rrambnn.sim.tb_chip import PERIOD_NS, Monitor, field_table, pack_fields, pack_rows, start, unpack_fields
from rrambnn.sim.tb_sign_replay import COUNTERS, check_device
from rrambnn.sim.tb_sliced import image_payloads
from rrambnn.sim.tb_nbit_replay import _vector, device_result

STAT_KEYS = ("weight_updates", "cell_writes", "pulses_set", "pulses_reset", "cells_failed", "restored")


def step_counts(x: np.ndarray, st: online_nbit.Step, before: dict, after: dict) -> dict:
    """What the cycle model needs of one golden step (stats before and after it)."""
    d = {k: after[k] - before[k] for k in STAT_KEYS}
    return {"updated": bool(st.eq.any()), "rank1_rows": int(x.sum()), "rank1_cols": len(st.cols),
            "out_rows": int(np.count_nonzero(st.h)), "out_cols": int(np.count_nonzero(st.eq)),
            "elements": len(st.rows2), "weights": d["weight_updates"], "cell_writes": d["cell_writes"],
            "pulses": d["pulses_set"] + d["pulses_reset"], "failed": d["cells_failed"], "restored": d["restored"]}


class Bench:
    """One clock at a time (the failed-cell monitor samples and drives every cycle), or, while a
    training step runs, asleep until something the checks look at changes (:meth:`step`).
    Cycles are counted from the simulation time, so both agree: after ``await tick()`` the
    values read are those the edge samples (cocotb on Verilator applies the clock's write and
    fires its callbacks before the edge is evaluated)."""

    def __init__(self, dut, failed: Monitor):
        self.dut, self.failed = dut, failed
        self.period = get_sim_steps(PERIOD_NS, "ns")
        self.t0 = None
        self.cycles = 0

    def _now(self) -> int:
        return int(get_sim_time("step"))

    async def tick(self):
        await RisingEdge(self.dut.clk)
        now = self._now()
        if self.t0 is None:
            self.t0 = now - self.period
        cycles, rest = divmod(now - self.t0, self.period)
        assert rest == 0, f"a clock edge off the period grid at {now} steps"
        self.cycles = cycles
        self.failed.sample(self.cycles)
        self.failed.drive()

    async def step(self, image_waiting: bool, limit: int, failures: list, i: int) -> tuple[int, bool]:
        """A training step, from the edge that took its sample: (the cycles ``train_busy`` was
        high, whether a waiting image was taken at the step's last edge). The checks are those
        of a per-cycle loop (no image taken, no result leaving during the step), made at every
        edge where something they look at may have changed: the first edge, every edge while a
        failed cell is offered (the monitor's random backpressure), and the edge after any of
        ``train_busy`` falling, ``failed__valid``, ``i__ready`` or ``o__valid`` rising."""
        dut = self.dut
        start = self.cycles
        ticking = True
        while True:
            if ticking:
                await self.tick()
                if not dut.train_busy.value:
                    return self.cycles - start - 1, image_waiting and bool(dut.i__ready.value)
                if image_waiting and dut.i__ready.value:
                    failures.append(f"sample {i}: an image was taken during the training step")
                if dut.o__valid.value and dut.o__ready.value:
                    failures.append(f"sample {i}: a result left the chip during the training step")
                assert self.cycles - start - 1 < limit, f"timeout: sample {i}'s step took more than {limit} cycles"
                ticking = bool(dut.failed__valid.value)
                continue
            left = (start + limit + 1 - self.cycles) * self.period
            wake = [FallingEdge(dut.train_busy), RisingEdge(dut.failed__valid), RisingEdge(dut.o__valid),
                    Timer(left + self.period // 2, "step")]
            if image_waiting:
                wake.append(RisingEdge(dut.i__ready))
            fired = await First(*wake)
            if fired is wake[1]:  # a failed cell is offered from this edge on: ready for the next one
                self.failed.drive()
            ticking = True  # decide at the next edge (a wake between edges is only a hint)


@cocotb.test()
async def chip_trains_itself_like_golden(dut):
    cfg = testbench_config()
    arrays = read_npz(cfg["arrays"], "testbench arrays")
    data = read_npz(cfg["samples"], "testbench samples")
    ncfg = online_nbit.config_from(cfg["rule"])
    arch = tuple(cfg["arch"])
    cells = [arrays[f"cells{k}"] for k in range(2)]
    faults = [arrays[f"faults{k}"] for k in range(2)]
    chip_cfg = ChipConfig.from_dict(cfg["chip"])
    chip_rule = online_nbit.config_from(cfg["chip_rule"])  # the golden trainer's rule is ncfg (a test may differ)
    net = online_nbit.training_network(arch, chip_rule, [online_nbit.decode(c) for c in cells])
    hw = build_chip(net, chip_cfg, cells, faults)
    golden = online_nbit.chip_from_cells(arch, ncfg, cells, faults)
    golden.failed = []
    x_tr, y_tr = data["x"], data["labels"]
    x_test = data["x_test"]
    seed = int(cfg["seed"])
    rng = random.Random(seed)
    p_idle, p_stall, p_image = cfg.get("p_idle", 0.2), cfg.get("p_stall", 0.2), cfg.get("p_image", 0.05)
    lr_decay = int(cfg.get("lr_decay", 0))
    progress_path = Path(cfg["progress"]) if cfg.get("progress") else None  # samples done, for a progress bar
    epoch = 1 + lr_decay * ncfg.decay if ncfg.decay else 1
    dut._log.info(f"seed {seed} (replay with the same seed); {len(x_tr)} samples, {ncfg.wbits}-bit weights, "
                  f"{ncfg.m}-bit neurons, lr_decay {lr_decay}")
    gc.freeze()
    await start(dut, [(h, 0) for h in (dut.i__valid, dut.o__ready, dut.thr__valid, dut.prog__valid,
                                       dut.failed__ready, dut.train__valid, dut.read_layer, dut.read_row,
                                       dut.read_col, dut.read_plane)])
    dut.lr_decay.value = lr_decay
    # its own generator: the sleeping step draws its stalls only while a failed cell is offered
    failed_mon = Monitor(dut.failed__valid, dut.failed__ready, dut.failed__payload, random.Random(seed ^ 0xFA11ED),
                         p_stall)
    failed_mon.drive()
    bench = Bench(dut, failed_mon)
    out_fields = field_table(hw.out_layout)
    train_layout = hw.trainer.train_layout
    n_in, n_hid, n_out = arch
    code_w, sum_w = hw.layers[0].code_bits, hw.layers[-1].sw
    interval = hw.interval
    per_cell = (1 + ncfg.retries) * (chip_cfg.pulse_cycles + 2) + chip_cfg.word + 8
    failures, cycle_mismatches, held_images, per_sample = [], [], 0, []
    image_mismatches = 0
    measured_total = model_total = 0
    t0 = time.perf_counter()

    async def classify(x, limit, taken=False):
        """Send an inference image (unless ``taken`` already) and take its result; returns (h, o, cls)."""
        n = 0
        if not taken:
            dut.i__payload.value = image_payloads(x[None], ncfg.m)[0]
            dut.i__valid.value = 1
            while True:
                await bench.tick()
                n += 1
                if dut.i__ready.value:
                    break
                assert n < limit, f"timeout: the chip did not take an image for {limit} cycles"
        dut.i__valid.value = 0
        dut.o__ready.value = 1
        while True:
            await bench.tick()
            n += 1
            if dut.o__valid.value:
                got = unpack_fields(out_fields, dut.o__payload.value.to_unsigned())
                break
            assert n < limit, f"timeout: no result for {limit} cycles"
        dut.o__ready.value = 0
        return (_vector(got["act0"], n_hid, code_w), _vector(got["sums"], n_out, sum_w, signed=True), got["cls"])

    for i, (x, label) in enumerate(zip(x_tr, y_tr)):
        while p_idle and rng.random() < p_idle:
            await bench.tick()
        image = x_test[rng.randrange(len(x_test))] if rng.random() < p_image else None
        dut.train__payload.value = pack_fields(train_layout, {"image": pack_rows(x[None])[0], "label": int(label)})
        dut.train__valid.value = 1
        if image is not None:  # offered at the same moment: the sample goes first
            dut.i__payload.value = image_payloads(image[None], ncfg.m)[0]
            dut.i__valid.value = 1
        st = golden.compute(x, int(label), epoch)
        before = dict(golden.stats)
        golden.apply(x, st)
        counts = step_counts(x, st, before, golden.stats)
        model = sample_cycles(arch, ncfg, interval=interval, restore=ncfg.restore,
                              pulse_cycles=chip_cfg.pulse_cycles, **counts)
        limit = 4 * model + 10 * per_cell + 20000  # a step the model does not describe is a mismatch, not a hang
        n = 0
        while True:  # until the sample is taken
            await bench.tick()
            n += 1
            if image is not None and dut.i__ready.value:
                failures.append(f"sample {i}: an image was taken while a training sample waited")
            if dut.train__ready.value:
                break
            assert n < limit, f"timeout: sample {i} not taken in {limit} cycles"
        dut.train__valid.value = 0
        busy, taken = await bench.step(image is not None, limit, failures, i)  # the cycles train_busy is high
        measured_total += busy
        model_total += model
        per_sample.append(busy)
        if busy != model:
            cycle_mismatches.append((i, busy, model))
        if image is not None:
            dut.i__valid.value = 0
            held_images += 1
            h_hw, o_hw, c_hw = await classify(image, 4 * interval + 100, taken)
            h_g, o_g = online_nbit.forward_batch(golden.w, image[None], golden.ramps)
            if not ((h_hw == h_g[0]).all() and (o_hw == o_g[0]).all() and c_hw == int(o_g[0].argmax())):
                image_mismatches += 1
        if progress_path and ((i + 1) % 10 == 0 or i + 1 == len(x_tr)):
            progress_path.write_text(str(i + 1))
        if (i + 1) % 200 == 0:
            dut._log.info(f"{i + 1} samples trained, {bench.cycles:,} cycles, "
                          f"{len(cycle_mismatches)} cycle-model mismatches")
    train_s = time.perf_counter() - t0
    if cycle_mismatches:
        failures.append(f"{len(cycle_mismatches)} samples' cycles differ from the model, e.g. "
                        f"(sample, measured, model) {cycle_mismatches[:3]}")
    if image_mismatches:
        failures.append(f"{image_mismatches} of {held_images} images sent with a sample differ from the golden chip")
    for _ in range(4):
        await bench.tick()
    while dut.failed__valid.value:
        await bench.tick()
    hw_samples = dut.n_samples.value.to_unsigned()
    if hw_samples != len(x_tr):
        failures.append(f"n_samples is {hw_samples}, {len(x_tr)} samples were trained")

    g = golden.stats
    state = await check_device(dut, hw, {k: g[k] for k in COUNTERS}, golden.failed, golden.arrays, failed_mon)
    failures += state["failures"]

    class_mismatches = 0
    h_gold, o_gold = online_nbit.forward_batch(golden.w, x_test, golden.ramps)
    for j, x in enumerate(x_test):
        h_hw, o_hw, c_hw = await classify(x, 4 * interval + 100)
        class_mismatches += not ((h_hw == h_gold[j]).all() and (o_hw == o_gold[j]).all()
                                 and c_hw == int(o_gold[j].argmax()))
    if class_mismatches:
        failures.append(f"{class_mismatches} of {len(x_test)} test images differ after training")
    result = {"seed": seed, "samples": len(x_tr), "cycles": bench.cycles, "train_wall_s": round(train_s, 2),
              "busy_cycles": measured_total, "model_cycles": model_total,
              "cycles_per_sample": round(measured_total / max(1, len(x_tr)), 1),
              "cycle_mismatches": len(cycle_mismatches), "busy_per_sample": per_sample, "images_during_training": held_images,
              "image_mismatches": image_mismatches, "n_samples": hw_samples,
              "updating_samples": g["updating_samples"], "cell_writes": g["cell_writes"],
              **device_result(state, golden),
              "images": len(x_test), "class_mismatches": class_mismatches,
              "passed_checks": not failures, "failures": failures}
    write_result(cfg, result)
    assert not failures, "; ".join(failures)
