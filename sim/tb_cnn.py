"""cocotb testbench of the CNN chip (:mod:`rrambnn.hw.cnn`) against the golden
:class:`rrambnn.gen.cnn.CnnNetwork`.

A row driver (random idle cycles between rows and images; while the chip computes it keeps
offering the next row, which the chip must not take) and a result monitor (random
backpressure); the golden network predicts every result payload (class, hit and, with debug,
every layer's activation map and the last column sums); an in-order checker compares. Phases:
random traffic -> throughput (no idles, no backpressure: cycles per image must equal
``CnnChip.interval``).

The chip computes an image in a fixed number of cycles after its last row, so the testbench
lets the simulator run that long without waking (one ``Timer``) instead of stepping each
clock from Python. Configuration arrives as JSON ($RRAMBNN_TB_CONFIG, written by
:func:`rrambnn.sim.chip_sim.simulate_cnn`); the seed is logged.
"""

from __future__ import annotations

import random
import time

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge, Timer

from rrambnn.gen.cnn import CnnNetwork
from rrambnn.gen.network import REJECT
from rrambnn.hw.cnn import CnnChip, input_rows, result_payloads
from rrambnn.sim.runner import testbench_config, write_result
from rrambnn.sim.tb_chip import PERIOD_NS, ImageDriver, Monitor, field_table, start, unpack_fields


class Bench:
    def __init__(self, dut, cfg: dict):
        self.dut, self.cfg = dut, cfg
        net = CnnNetwork.load(cfg["weights"])
        c = cfg["chip"]
        analog, theta = None, None
        if cfg.get("device"):  # analog reads: chip ``seed`` of the profile (rrambnn.gen.analog_coded)
            from rrambnn.gen import analog_coded
            from rrambnn.gen.analog import Profile
            d = cfg["device"]
            analog = analog_coded.chip(net, Profile(**dict(d["profile"])), int(d["seed"]))
            theta = d.get("thresholds")  # calibrated at generation
        self.chip = CnnChip(net, tile=tuple(c["tile"]), positions=c["positions"], output=c["output"],
                            debug=c["debug"], analog=analog, theta=theta)
        self.x = np.load(cfg["images"])
        self.rows = input_rows(self.chip, self.x)
        golden = CnnChip(CnnNetwork.load(cfg["golden"]), tile=tuple(c["tile"]), positions=c["positions"],
                         output=c["output"], debug=c["debug"], analog=analog, theta=theta)
        self.golden = golden
        # without analog reads an image's payload does not depend on when it is read; with them
        # the t-th image the chip computes is its image t (the read-noise key): made after the run
        self.want = result_payloads(golden, self.x) if analog is None else None
        self.h = net.spec.input[0]
        self.seed = int(cfg["seed"])
        self.rng = random.Random(self.seed)
        self.driver = ImageDriver(dut, self.rng, cfg["p_idle"])
        self.results = Monitor(dut.o__valid, dut.o__ready, dut.o__payload, self.rng, cfg["p_stall"])
        self.cycle = 0
        self.order: list[int] = []  # images in the order their last rows were taken
        # cycles from an image's last row to its result, at the least: the layers' steps
        self.quiet = self.chip.interval - self.h - 1

    async def run(self, images, p_idle: float, p_stall: float) -> None:
        """Send ``images`` (indices) and collect as many results."""
        dut, driver, results = self.dut, self.driver, self.results
        driver.p_idle, results.p_stall = p_idle, p_stall
        for i in images:
            driver.queue.extend(((i, r), self.rows[i][r]) for r in range(self.h))
        target = len(results.received) + len(images)
        limit = self.cycle + (self.chip.interval * 4 + 50) * len(images) + 1000
        driver.drive()
        results.drive()
        while len(results.received) < target:
            await RisingEdge(dut.clk)
            self.cycle += 1
            taken = len(driver.accepted)
            driver.sample(self.cycle, 0)
            results.sample(self.cycle)
            driver.drive()
            results.drive()
            if len(driver.accepted) > taken and driver.accepted[-1][0][1] == self.h - 1:
                self.order.append(driver.accepted[-1][0][0])
                if self.quiet > 2:  # the chip computes: nothing to see for this many cycles
                    # one timer to the middle of the cycle before the (quiet - 2)th edge, not
                    # quiet - 2 wake-ups in Python (ClockCycles): 1.5x the images per second
                    await Timer((self.quiet - 3) * PERIOD_NS + PERIOD_NS // 2, unit="ns")
                    await RisingEdge(dut.clk)
                    self.cycle += self.quiet - 2
            if self.cycle > limit:
                raise AssertionError(f"timeout: {len(results.received)} of {target} results after {self.cycle} cycles")


@cocotb.test()
async def cnn_chip_matches_golden(dut):
    cfg = testbench_config()
    b = Bench(dut, cfg)
    chip = b.chip
    dut._log.info(f"seed {b.seed} (replay with the same seed); {chip.net.spec.text}, {chip.positions} position(s) "
                  f"per step, {chip.interval} cycles per image")
    await start(dut, [(dut.i__valid, 0), (dut.o__ready, 0)])
    n = len(b.x)
    t0 = time.time()
    await b.run(range(n), cfg["p_idle"], cfg["p_stall"])
    random_s = time.time() - t0
    m = min(n, cfg["throughput_images"])
    first = len(b.results.received)
    t0 = time.time()
    await b.run(range(m), 0.0, 0.0)
    quick_s = time.time() - t0
    cycles = b.results.receive_cycles[first:]
    interval = (cycles[-1] - cycles[0]) / max(1, m - 1)
    # in-order check
    fields = field_table(chip.out_layout)
    _, cls_off, cls_mask = next(f for f in fields if f[0] == "cls")
    _, hit_off, _ = next(f for f in fields if f[0] == "hit")
    mismatches, examples, labels = 0, [], []
    if b.want is None:
        order = np.array(b.order[:len(b.results.received)], np.int64)
        wants = result_payloads(b.golden, b.x[order], image_ids=np.arange(len(order)))
    else:
        wants = [b.want[i] for i in b.order]
    for i, got, want in zip(b.order, b.results.received, wants):
        if got != want:
            mismatches += 1
            if len(examples) < 10:
                g, w = unpack_fields(fields, got), unpack_fields(fields, want)
                examples.append({"image": i, "fields": sorted(k for k in g if g[k] != w[k]),
                                 "cls": {"got": g["cls"], "want": w["cls"]}})
    for got in b.results.received[:n]:
        hit = (got >> hit_off) & 1
        labels.append((got >> cls_off) & cls_mask if hit or chip.output == "argmax" else REJECT)
    res = {"seed": b.seed, "images": len(b.results.received), "checked": len(b.results.received),
           "mismatches": mismatches, "examples": examples, "hw_labels": labels,
           "interval_measured": interval, "interval_model": chip.interval, "cycles": b.cycle,
           "random_phase": {"images": n, "seconds": round(random_s, 2),
                            "images_per_s": round(n / random_s, 1) if random_s else None},
           "throughput_phase": {"images": m, "seconds": round(quick_s, 2),
                                "images_per_s": round(m / quick_s, 1) if quick_s else None},
           "compared": ("class, hit, every layer's activation map, the last column sums" if chip.debug
                        else "class, hit")}
    write_result(cfg, res)
    assert len(b.order) == len(b.results.received), "results and sent images differ in number"
    assert mismatches == 0, f"{mismatches} mismatches, e.g. {examples[:3]}"
    assert interval == chip.interval, f"{interval} cycles per image, model {chip.interval}"
