"""cocotb testbench of the inference chip against the golden model.

Structure: a stream driver (random idle cycles) feeds images; a monitor with
random backpressure collects results; the golden model predicts every result
(class, hit and, with a debug build, every layer's activations and the last
layer's column sums); an in-order checker compares them. One clock loop steps
driver and monitor each cycle (one await per cycle keeps the testbench fast).

Phases:
1. random traffic over all images (seeded; the seed is logged for replay);
2. throughput: no idles, no backpressure, images accepted per clock;
3. (``reprogram``) rewrite thresholds and program cells through the ports, update
   the golden network the same way, and check a second pass of images.

Configuration arrives as JSON through $RRAMBNN_TB_CONFIG (see ``rrambnn.sim.chip_sim``).
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import deque

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge

from rrambnn.gen.network import BinaryNetwork
from rrambnn.gen.verilog import ChipConfig, build_chip


def pack_rows(bits: np.ndarray) -> list[int]:
    """Rows of {0,1} -> Python ints with bit i = column i."""
    packed = np.packbits(bits.astype(np.uint8), axis=1, bitorder="little")
    return [int.from_bytes(row.tobytes(), "little") for row in packed]


class Expectation:
    """Golden model -> expected output payloads (as integers in the chip's layout)."""

    def __init__(self, net: BinaryNetwork, chip, cfg: ChipConfig):
        self.net, self.layout, self.cfg, self.chip = net, chip.out_layout, cfg, chip

    def payloads(self, x: np.ndarray) -> list[int]:
        t = self.net.forward(x)
        fields = {"cls": t.labels(self.cfg.output), "hit": t.hit.astype(np.int64)}
        ints = {name: [int(v) for v in arr] for name, arr in fields.items()}
        if self.cfg.debug:
            for k, act in enumerate(t.acts):
                ints[f"act{k}"] = pack_rows(act)
            sw = self.chip.layers[-1].sw
            twos = (t.sums[-1].astype(np.int64) & ((1 << sw) - 1))
            ints["sums"] = [sum(int(v) << (sw * j) for j, v in enumerate(row)) for row in twos]
        out = [0] * len(x)
        for name, f in self.layout:
            col = ints[name]
            for n in range(len(x)):
                out[n] |= col[n] << f.offset
        return out

    def decode(self, payload: int) -> dict:
        return {name: (payload >> f.offset) & ((1 << f.width) - 1) for name, f in self.layout}


class StreamDriver:
    """Source side of the image stream, with random idle cycles."""

    def __init__(self, dut, rng: random.Random, p_idle: float):
        self.valid, self.ready, self.payload = dut.i__valid, dut.i__ready, dut.i__payload
        self.rng, self.p_idle = rng, p_idle
        self.queue: deque[int] = deque()
        self.current = None
        self.valid_now = None
        self.accepted = 0
        self.accept_cycles: list[int] = []

    def sample(self, cycle: int):
        """At a rising edge: did the chip take the current image?"""
        if self.current is not None and self.ready.value:
            self.current = None
            self.accepted += 1
            self.accept_cycles.append(cycle)

    def drive(self):
        if self.current is None and self.queue and not (self.p_idle and self.rng.random() < self.p_idle):
            self.current = self.queue.popleft()
            self.payload.value = self.current
        valid = self.current is not None
        if valid != self.valid_now:  # GPI writes cost time: only write changes
            self.valid.value = self.valid_now = valid


class StreamMonitor:
    """Sink side of the result stream, with random backpressure."""

    def __init__(self, dut, rng: random.Random, p_stall: float):
        self.valid, self.ready, self.payload = dut.o__valid, dut.o__ready, dut.o__payload
        self.rng, self.p_stall = rng, p_stall
        self.received: list[int] = []
        self.receive_cycles: list[int] = []
        self.ready_now = None

    def sample(self, cycle: int):
        if self.ready_now and self.valid.value:
            self.received.append(self.payload.value.to_unsigned())
            self.receive_cycles.append(cycle)

    def drive(self):
        ready = not (self.p_stall and self.rng.random() < self.p_stall)
        if ready != self.ready_now:
            self.ready.value = self.ready_now = ready


class Scoreboard:
    """In-order checker."""

    def __init__(self, expect: Expectation, limit: int = 20):
        self.expect, self.limit = expect, limit
        self.expected: deque[int] = deque()
        self.index = 0
        self.checked = 0
        self.mismatches = 0
        self.examples: list[dict] = []

    def check(self, got: int):
        want = self.expected.popleft()
        if got != want:
            self.mismatches += 1
            if len(self.examples) < self.limit:
                g, w = self.expect.decode(got), self.expect.decode(want)
                self.examples.append({"image": self.index,
                                      "fields": {k: {"got": g[k], "want": w[k]} for k in g if g[k] != w[k]}})
        self.index += 1
        self.checked += 1


async def run_traffic(dut, driver, monitor, board, images: list[int], expected: list[int],
                      cycle0: int, max_cycles: int) -> int:
    driver.queue.extend(images)
    board.expected.extend(expected)
    target = len(monitor.received) + len(images)
    cycle = cycle0
    driver.drive()
    monitor.drive()
    while len(monitor.received) < target:
        await RisingEdge(dut.clk)
        cycle += 1
        driver.sample(cycle)
        n_before = len(monitor.received)
        monitor.sample(cycle)
        if len(monitor.received) > n_before:
            board.check(monitor.received[-1])
        driver.drive()
        monitor.drive()
        if cycle - cycle0 > max_cycles:
            raise AssertionError(f"timeout: {len(monitor.received)} of {target} results after {max_cycles} cycles")
    return cycle


@cocotb.test()
async def chip_matches_golden(dut):
    cfg = json.loads(open(os.environ["RRAMBNN_TB_CONFIG"]).read())
    net = BinaryNetwork.load(cfg["weights"])
    chip_cfg = ChipConfig.checked(tuple(cfg["chip"]["tile"]), cfg["chip"]["pipeline"],
                                  cfg["chip"]["output"], cfg["chip"]["debug"])
    chip = build_chip(net, chip_cfg)
    x = np.load(cfg["images"])
    seed = int(cfg["seed"])
    dut._log.info(f"seed {seed} (replay: set seed in the config or --seed)")
    rng = random.Random(seed)
    expect = Expectation(net, chip, chip_cfg)
    result = {"seed": seed, "images": int(len(x)), "arch": list(chip.arch), "latency": chip.latency}

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.i__valid.value = 0
    dut.o__ready.value = 0
    dut.thr__valid.value = 0
    dut.cell__valid.value = 0
    dut.read_layer.value = 0
    dut.read_row.value = 0
    dut.read_col.value = 0
    dut.rst.value = 1
    for _ in range(2):
        await RisingEdge(dut.clk)
    dut.rst.value = 0

    driver = StreamDriver(dut, rng, cfg.get("p_idle", 0.2))
    monitor = StreamMonitor(dut, rng, cfg.get("p_stall", 0.2))
    board = Scoreboard(expect)

    # Phase 1: random idles and backpressure.
    t0 = time.perf_counter()
    images = pack_rows(x)
    cycle = await run_traffic(dut, driver, monitor, board, images, expect.payloads(x), 0,
                              max_cycles=20 * len(x) + 100)
    result["random_phase"] = {"cycles": cycle, "wall_s": round(time.perf_counter() - t0, 3),
                              "images_per_s": round(len(x) / (time.perf_counter() - t0), 1)}

    # Phase 2: throughput with a free-flowing stream.
    n_tp = min(len(x), int(cfg.get("throughput_images", 1000)))
    if n_tp:
        driver.p_idle, monitor.p_stall = 0.0, 0.0
        driver.accept_cycles.clear()
        start = cycle
        t1 = time.perf_counter()
        cycle = await run_traffic(dut, driver, monitor, board, images[:n_tp],
                                  expect.payloads(x[:n_tp]), cycle, max_cycles=4 * n_tp + 100)
        acc = driver.accept_cycles
        span = acc[-1] - acc[0] + 1
        first_out = monitor.receive_cycles[-n_tp]
        result["throughput"] = {"images": n_tp, "accept_span_cycles": span,
                                "images_per_cycle": round(n_tp / span, 4),
                                "latency_cycles": first_out - acc[0], "total_cycles": cycle - start,
                                "wall_s": round(time.perf_counter() - t1, 3),
                                "images_per_s": round(n_tp / (time.perf_counter() - t1), 1)}
        driver.p_idle, monitor.p_stall = cfg.get("p_idle", 0.2), cfg.get("p_stall", 0.2)

    # Phase 3: rewrite thresholds and cells through the ports; the golden model follows.
    if cfg.get("reprogram"):
        prng = np.random.default_rng(seed)
        await drain(dut, monitor)
        n_thr = n_cells = 0
        for k, layer in enumerate(net.weights):
            n_in, n_out = layer.shape
            for j in prng.choice(n_out, size=min(n_out, 4), replace=False):
                new = int(prng.integers(-n_in, n_in + 2))
                await write_port(dut.thr__valid, dut.thr__payload, chip.signature.members["thr"],
                                 {"layer": k, "index": int(j), "value": new}, dut.clk)
                net.thresholds[k][j] = new
                n_thr += 1
            for _ in range(min(n_in * n_out, 16)):
                r, c, s = int(prng.integers(n_in)), int(prng.integers(n_out)), int(prng.integers(2))
                await write_port(dut.cell__valid, dut.cell__payload, chip.signature.members["cell"],
                                 {"layer": k, "row": r, "col": c, "set": s}, dut.clk)
                net.weights[k][r, c] = 1 if s else -1
                n_cells += 1
                dut.read_layer.value, dut.read_row.value, dut.read_col.value = k, r, c
                await RisingEdge(dut.clk)
                await RisingEdge(dut.clk)
                assert dut.read_bit.value == s, f"read-back of layer {k} cell ({r},{c}) is not {s}"
        net.__post_init__()  # refresh the golden model's cached matrices
        n2 = min(len(x), int(cfg.get("reprogram_images", 500)))
        cycle = await run_traffic(dut, driver, monitor, board, images[:n2], expect.payloads(x[:n2]),
                                  cycle, max_cycles=20 * n2 + 100)
        result["reprogram"] = {"thresholds_written": n_thr, "cells_pulsed": n_cells, "images": n2}

    labels_hw = [expect.decode(p)["cls"] for p in monitor.received[:len(x)]]
    result.update({"checked": board.checked, "mismatches": board.mismatches, "examples": board.examples,
                   "hw_labels": labels_hw, "cycles": cycle})
    with open(cfg["result"], "w") as f:
        json.dump(result, f)
    assert board.mismatches == 0, f"{board.mismatches} mismatches, first: {board.examples[:3]}"


async def drain(dut, monitor):
    """Let in-flight results leave before touching configuration."""
    for _ in range(8):
        await RisingEdge(dut.clk)


async def write_port(valid, payload, member, fields: dict, clk):
    layout = member.signature.members["payload"].shape
    value = 0
    for name, f in layout:
        v = fields[name]
        value |= (v & ((1 << f.width) - 1)) << f.offset
    payload.value = value
    valid.value = 1
    await RisingEdge(clk)
    valid.value = 0
