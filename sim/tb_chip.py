"""cocotb testbench of the chip against the golden model (network + device model).

Structure: an image driver (random idle cycles) and a command driver feed the
chip; a result monitor (random backpressure) and a failed-cell monitor (random
backpressure) collect its answers; the golden model predicts them; in-order
checkers compare. One clock loop steps every driver and monitor once a cycle
(one await per cycle keeps the testbench fast).

Programming commands may arrive while images stream. The chip holds images off
while a command waits or runs, so each image sees the cells left by exactly the
commands accepted before it: its *generation*. The golden device model
(:mod:`rrambnn.gen.device`) replays the commands in the same order and predicts
every result, the pulse counters and the failed-cell list, and at the end every
cell state and switch counter read back through the read port.

Phases (as configured): programming (with or without traffic) -> thresholds written
(a calibration) -> random traffic -> throughput (no idles, no backpressure) -> threshold rewrite + traffic ->
read-back of all cells and counters. Configuration arrives as JSON through
$RRAMBNN_TB_CONFIG (written by ``rrambnn.sim.chip_sim``); seeds are logged.
"""

from __future__ import annotations

import gc
import random
import time
from collections import deque

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge

from rrambnn.fileio import read_npz
from rrambnn.gen import device as dev
from rrambnn.gen.network import REJECT, BinaryNetwork, Trace
from rrambnn.hw.layer import signed_range
from rrambnn.hw.config import ChipConfig
from rrambnn.hw.verilog import build_chip
from rrambnn.sim.runner import testbench_config, write_result


def pack_rows(bits: np.ndarray) -> list[int]:
    """Rows of {0,1} -> Python ints with bit i = column i."""
    packed = np.packbits(bits.astype(np.uint8), axis=1, bitorder="little")
    return [int.from_bytes(row.tobytes(), "little") for row in packed]


def pack_fields(layout, fields: dict) -> int:
    value = 0
    for name, f in layout:
        value |= (int(fields[name]) & ((1 << f.width) - 1)) << f.offset
    return value


def field_table(layout) -> list[tuple[str, int, int]]:
    """(name, offset, mask) per field, computed once: Amaranth layout lookups are slow per cycle."""
    return [(name, f.offset, (1 << f.width) - 1) for name, f in layout]


def unpack_fields(fields: list[tuple[str, int, int]], value: int) -> dict:
    return {name: (value >> offset) & mask for name, offset, mask in fields}


def read_config(dut):
    """This run's configuration ($RRAMBNN_TB_CONFIG), network, images, seed and a random
    generator from it (the seed is logged, so a failure can be replayed)."""
    cfg = testbench_config()
    net = BinaryNetwork.load(cfg["weights"])
    x = np.load(cfg["images"]) if cfg.get("images") else None
    seed = int(cfg["seed"])
    dut._log.info(f"seed {seed} (replay with the same seed)")
    return cfg, net, x, seed, random.Random(seed)


PERIOD_NS = 10  # the testbenches' clock period


async def start(dut, idle=(), *, cycles: int = 2, period_ns: int = PERIOD_NS):
    """Start the clock, drive each (handle, value) of ``idle``, hold reset for ``cycles``."""
    cocotb.start_soon(Clock(dut.clk, period_ns, unit="ns").start())
    for h, v in idle:
        h.value = v
    dut.rst.value = 1
    for _ in range(cycles):
        await RisingEdge(dut.clk)
    dut.rst.value = 0


class Golden:
    """The golden chip: network thresholds + device state, stepped command by command."""

    def __init__(self, net: BinaryNetwork, chip_hw, cfg: ChipConfig, initial_cells, faults):
        self.net, self.cfg, self.layout, self.sw = net, cfg, chip_hw.out_layout, chip_hw.layers[-1].sw
        self.device = dev.Chip(net.arch, cfg.tile, initial_cells, cfg.device, faults)
        self.report = dev.ProgramReport()
        self.generation = 0
        self._sync_weights()
        self.analog = None  # analog reads: the chip's map (rrambnn.gen.analog), thresholds in current units
        if cfg.analog:
            from rrambnn.gen import analog as ga
            self.analog = ga.chip_map(ga.held_cells(initial_cells, self.device.faults), cfg.profile, cfg.analog_seed)
            self.theta = ga.thresholds(net)

    def _sync_weights(self):
        self.net.weights = self.device.weights()
        self.net.__post_init__()

    def apply(self, cmd: tuple):
        rep = dev.program(self.device, [cmd], self.cfg.word, self.cfg.retries)
        self.report.pulses_set += rep.pulses_set
        self.report.pulses_reset += rep.pulses_reset
        self.report.failed += rep.failed
        self.generation += 1
        self._sync_weights()
        if self.analog is not None:
            self.analog.hold(self.device.cells())

    def payloads(self, x: np.ndarray, images=None) -> list[int]:
        """Expected output payloads, built as one bit matrix in the chip's layout (vectorised);
        ``images``: the chip's index of each image (analog reads: its read-noise key)."""
        if self.analog is not None:
            from rrambnn.gen import analog as ga
            prio, amax, hit, sums, acts = ga.forward(self.net, x, self.analog, theta=self.theta, image_ids=images,
                                                     trace=True)
            t = Trace(sums=sums, acts=acts, priority=prio, argmax=amax, hit=hit)
        else:
            t = self.net.forward(x)
        n = len(x)
        fields = {"cls": t.labels(self.cfg.output)[:, None], "hit": t.hit.astype(np.int64)[:, None]}
        if self.cfg.debug:
            for k, act in enumerate(t.acts):
                fields[f"act{k}"] = act
            fields["sums"] = t.sums[-1].astype(np.int64)
        bits = np.zeros((n, self.layout.size), np.uint8)
        for name, f in self.layout:
            v = fields[name]
            if name.startswith("act"):
                bits[:, f.offset:f.offset + f.width] = v
                continue
            w = f.width // v.shape[1]  # bits per element (sums: sw per column)
            vals = v & ((1 << w) - 1)
            shifts = np.arange(w)
            elem = ((vals[:, :, None] >> shifts) & 1).astype(np.uint8)  # (n, elements, w), LSB first
            bits[:, f.offset:f.offset + f.width] = elem.reshape(n, -1)
        return pack_rows(bits)


class ImageDriver:
    """Source of the image stream, with random idle cycles; records each image's generation."""

    def __init__(self, dut, rng: random.Random, p_idle: float):
        self.valid, self.ready, self.payload = dut.i__valid, dut.i__ready, dut.i__payload
        self.rng, self.p_idle = rng, p_idle
        self.queue: deque[tuple[int, int]] = deque()  # (image index, payload)
        self.current = None
        self.valid_now = None
        self.accepted: list[tuple[int, int]] = []  # (image index, generation)
        self.accept_cycles: list[int] = []

    def sample(self, cycle: int, generation: int):
        if self.current is not None and self.ready.value:
            self.accepted.append((self.current[0], generation))
            self.accept_cycles.append(cycle)
            self.current = None

    def drive(self):
        if self.current is None and self.queue and not (self.p_idle and self.rng.random() < self.p_idle):
            self.current = self.queue.popleft()
            self.payload.value = self.current[1]
        valid = self.current is not None
        if valid != self.valid_now:  # GPI writes cost time: only write changes
            self.valid.value = self.valid_now = valid


class CommandDriver:
    """Source of programming commands, each sent at a random moment of the traffic."""

    def __init__(self, dut, layout, rng: random.Random, p_send: float):
        self.valid, self.ready, self.payload = dut.prog__valid, dut.prog__ready, dut.prog__payload
        self.layout, self.rng, self.p_send = layout, rng, p_send
        self.queue: deque[tuple] = deque()
        self.current = None
        self.accepted: list[tuple] = []
        self.accept_cycles: list[int] = []

    def sample(self, cycle: int) -> tuple | None:
        if self.current is not None and self.ready.value:
            cmd, self.current = self.current, None
            self.accepted.append(cmd)
            self.accept_cycles.append(cycle)
            self.valid.value = 0
            return cmd
        return None

    def drive(self):
        if self.current is None and self.queue and self.rng.random() < self.p_send:
            self.current = self.queue.popleft()
            layer, row, word, bits, mask = self.current
            self.payload.value = pack_fields(self.layout, {"layer": layer, "row": row, "word": word,
                                                           "bits": bits, "mask": mask})
            self.valid.value = 1


class Monitor:
    """Sink of a stream with random backpressure."""

    def __init__(self, valid, ready, payload, rng: random.Random, p_stall: float):
        self.valid, self.ready, self.payload = valid, ready, payload
        self.rng, self.p_stall = rng, p_stall
        self.received: list[int] = []
        self.receive_cycles: list[int] = []
        self.ready_now = None

    def sample(self, cycle: int) -> bool:
        if self.ready_now and self.valid.value:
            self.received.append(self.payload.value.to_unsigned())
            self.receive_cycles.append(cycle)
            return True
        return False

    def drive(self):
        ready = not (self.p_stall and self.rng.random() < self.p_stall)
        if ready != self.ready_now:
            self.ready.value = self.ready_now = ready


async def stream(dut, driver, results, images, indices, cycle0, cycles_per_image: int = 100):
    """Send ``indices`` and collect as many results; returns the cycle count after (fails after
    ``cycles_per_image`` per image, plus 1,000)."""
    driver.queue.extend((i, images[i]) for i in indices)
    target = len(results.received) + len(indices)
    cycle = cycle0
    driver.drive()
    results.drive()
    while len(results.received) < target:
        await RisingEdge(dut.clk)
        cycle += 1
        driver.sample(cycle, 0)
        results.sample(cycle)
        driver.drive()
        results.drive()
        if cycle - cycle0 > cycles_per_image * len(indices) + 1000:
            raise AssertionError(f"timeout: {len(results.received)} of {target} results")
    return cycle


class Scoreboard:
    """In-order checker of results; expectations come from the golden chip at each image's
    generation (computed in batches: all at once when no command is in play)."""

    def __init__(self, golden: Golden, images: np.ndarray, limit: int = 20):
        self.golden, self.images, self.limit = golden, images, limit
        self.fields = field_table(golden.layout)
        _, self.cls_offset, self.cls_mask = next(f for f in self.fields if f[0] == "cls")
        _, self.hit_offset, _ = next(f for f in self.fields if f[0] == "hit")
        self.rejects_count = golden.cfg.output == "priority"  # a priority reject (hit 0) is no answer
        self.cache: dict[tuple[int, int], int] = {}
        self.checked = 0
        self.mismatches = 0
        self.examples: list[dict] = []
        self.labels: list[int] = []  # the chip's answers (REJECT for a priority reject)

    def expect_batch(self, indices: list[int], generation: int, first_image: int):
        """Expectations of ``indices``, the chip taking them in this order from its
        ``first_image``-th image on."""
        assert generation == self.golden.generation, "golden model is not at the image's generation"
        images = np.arange(first_image, first_image + len(indices))
        for i, p in zip(indices, self.golden.payloads(self.images[indices], images)):
            self.cache[i, generation] = p

    def check(self, got: int, accepted: list[tuple[int, int]]):
        idx, gen = accepted[self.checked]
        if (idx, gen) not in self.cache:
            assert self.golden.analog is None, "analog reads: expectations are made before the images are sent"
            self.expect_batch([i for i, g in accepted[self.checked:] if g == gen and (i, g) not in self.cache], gen,
                              self.checked)
        want = self.cache.pop((idx, gen))
        hit = (got >> self.hit_offset) & 1
        self.labels.append((got >> self.cls_offset) & self.cls_mask if hit or not self.rejects_count else REJECT)
        if got != want:
            self.mismatches += 1
            if len(self.examples) < self.limit:
                g, w = unpack_fields(self.fields, got), unpack_fields(self.fields, want)
                self.examples.append({"image": idx, "generation": gen,
                                      "fields": {k: {"got": g[k], "want": w[k]} for k in g if g[k] != w[k]}})
        self.checked += 1


class Bench:
    def __init__(self, dut, cfg: dict):
        self.dut, self.cfg = dut, cfg
        self.net = BinaryNetwork.load(cfg["weights"])
        self.chip_cfg = ChipConfig.from_dict(cfg["chip"])
        arrays = read_npz(cfg["arrays"], "testbench arrays") if cfg.get("arrays") else {}
        n = len(self.net.weights)
        initial = [arrays[f"initial{k}"] for k in range(n)] if "initial0" in arrays else None
        faults = [arrays[f"fault{k}"] for k in range(n)] if "fault0" in arrays else None
        faults = dev.device_faults(self.net.arch, self.chip_cfg.device, faults)
        self.chip = build_chip(self.net, self.chip_cfg, initial, faults)
        initial = initial or self.net.cells
        self.golden = Golden(self.net, self.chip, self.chip_cfg, initial, faults)
        self.x = np.load(cfg["images"])
        self.images = pack_rows(self.x)
        self.seed = int(cfg["seed"])
        self.rng = random.Random(self.seed)
        p_idle, p_stall = cfg.get("p_idle", 0.2), cfg.get("p_stall", 0.2)
        self.driver = ImageDriver(dut, self.rng, p_idle)
        self.commands = CommandDriver(dut, self.chip.programmer.cmd_layout, self.rng, cfg.get("p_send", 0.05))
        self.results = Monitor(dut.o__valid, dut.o__ready, dut.o__payload, self.rng, p_stall)
        self.failed = Monitor(dut.failed__valid, dut.failed__ready, dut.failed__payload, self.rng, p_stall)
        self.board = Scoreboard(self.golden, self.x)
        self.cycle = 0
        self.watch_pulses = bool(cfg.get("commands"))
        self.last_counts = (0, 0)
        self.violations: list[str] = []
        self.busy_since = None
        self.longest_busy = 0
        self.thr_refused = 0  # threshold writes the chip must have refused

    async def reset(self):
        dut = self.dut
        await start(dut, [(h, 0) for h in (dut.i__valid, dut.o__ready, dut.thr__valid, dut.prog__valid,
                                           dut.failed__ready, dut.read_layer, dut.read_row, dut.read_col)])

    def _watch(self):
        """Invariants of the programming controller, every cycle."""
        n_set, n_reset = self.dut.n_set.value.to_unsigned(), self.dut.n_reset.value.to_unsigned()
        d_set, d_reset = n_set - self.last_counts[0], n_reset - self.last_counts[1]
        if d_set + d_reset > 1:
            self.violations.append(f"cycle {self.cycle}: {d_set} SET and {d_reset} RESET pulses in one cycle")
        self.last_counts = (n_set, n_reset)
        busy = bool(self.dut.prog_busy.value)
        if busy and self.busy_since is None:
            self.busy_since = self.cycle
        elif not busy and self.busy_since is not None:
            self.longest_busy = max(self.longest_busy, self.cycle - self.busy_since)
            self.busy_since = None

    async def traffic(self, indices, commands=(), max_cycles=None):
        """Stream images ``indices`` (and programming ``commands``) until every result is back."""
        d, b = self.driver, self.board
        d.queue.extend((i, self.images[i]) for i in indices)
        self.commands.queue.extend(commands)
        target = len(self.results.received) + len(indices)
        n_cmd_target = len(self.commands.accepted) + len(self.commands.queue) + (self.commands.current is not None)
        limit = max_cycles or (20 * len(indices) + 400 * (len(commands) + 1) * self.chip_cfg.word
                               * (self.chip_cfg.retries + 1) * (self.chip_cfg.pulse_cycles + 1))
        programming = bool(commands) or self.commands.current is not None or bool(self.dut.prog_busy.value)
        if not programming:
            b.expect_batch(list(indices), self.golden.generation, len(d.accepted))
        start = self.cycle
        d.drive()
        self.results.drive()
        if programming:
            self.failed.drive()
            self.commands.drive()
        # (values read at an edge are those before it: a command accepted at this edge shows
        # prog_busy only at the next one, hence the extra cycle after the last acceptance)
        while (len(self.results.received) < target
               or (programming and (len(self.commands.accepted) < n_cmd_target or self.dut.prog_busy.value
                                    or self.cycle - self.commands.accept_cycles[-1] < 2))):
            await RisingEdge(self.dut.clk)
            self.cycle += 1
            cmd = None
            if programming:  # the programming handshakes cost GPI calls: only when in play
                if self.watch_pulses:
                    self._watch()
                cmd = self.commands.sample(self.cycle)
                self.failed.sample(self.cycle)
            d.sample(self.cycle, self.golden.generation)
            if cmd is not None:
                self.golden.apply(cmd)
            if self.results.sample(self.cycle):
                b.check(self.results.received[-1], d.accepted)
            d.drive()
            self.results.drive()
            if programming:
                self.failed.drive()
                self.commands.drive()
            if self.cycle - start > limit:
                raise AssertionError(f"timeout after {limit} cycles: {len(self.results.received)} of {target} "
                                     f"results, {len(self.commands.accepted)} of {n_cmd_target} commands")
        # let the failed-cell FIFO empty
        while programming and (self.failed.valid.value or not self.failed.ready_now):
            await RisingEdge(self.dut.clk)
            self.cycle += 1
            self.failed.sample(self.cycle)
            self.failed.ready.value = self.failed.ready_now = True

    async def write_threshold(self, layer: int, index: int, value: int, refused: bool = False):
        """One threshold write, offered until the chip takes it (valid/ready); a ``refused`` one
        (no such neuron, or a value the layer's register cannot hold) must change nothing."""
        layout = self.chip.signature.members["thr"].signature.members["payload"].shape
        self.dut.thr__payload.value = pack_fields(layout, {"layer": layer, "index": index, "value": value})
        self.dut.thr__valid.value = 1
        while True:
            await RisingEdge(self.dut.clk)
            self.cycle += 1
            if self.dut.thr__ready.value:
                break
        self.dut.thr__valid.value = 0
        if refused:
            self.thr_refused += 1
            return
        if self.golden.analog is not None:  # analog reads: thresholds in current units
            self.golden.theta[layer][index] = value
            return
        self.golden.net.thresholds[layer][index] = value
        self.golden.net.__post_init__()

    async def write_thresholds(self, thresholds) -> int:
        """Every neuron's threshold written through the threshold port, as a host writes a
        calibration (per layer, in the chip's units: current units with analog reads). Returns the
        number of writes."""
        n = 0
        for k, t in enumerate(thresholds):
            for j, v in enumerate(t):
                await self.write_threshold(k, j, int(v))
                n += 1
        return n

    async def refused_threshold_writes(self):
        """Writes the chip must refuse: beyond a narrower layer's register, to a missing neuron."""
        field = self.chip.signature.members["thr"].signature.members["payload"].shape
        _, vmax = signed_range(field["value"].width)
        imax = (1 << field["index"].width) - 1
        for k, layer in enumerate(self.chip.layers):
            _, hi = signed_range(layer.tw)
            if hi < vmax:
                await self.write_threshold(k, 0, hi + 1, refused=True)
            if layer.n_out <= imax:
                await self.write_threshold(k, layer.n_out, 0, refused=True)

    async def hold_and_rewrite(self, image: int, hold_cycles: int = 12) -> list[str]:
        """A result held (``o.ready`` low) while a threshold write offered to the last layer would
        change it: the held result must not change, and it is the result of the old thresholds;
        the write takes effect from the next image. Returns the violations."""
        dut, bad = self.dut, []
        x = self.x[image:image + 1]
        t = self.golden.net.forward(x)
        want = self.golden.payloads(x)[0]
        k = len(self.net.weights) - 1
        n_in = self.net.weights[k].shape[0]
        j = int(t.labels(self.chip_cfg.output)[0])
        value = n_in + 1 if t.acts[-1][0, j] else -n_in  # neuron j stops or starts firing
        layout = self.chip.signature.members["thr"].signature.members["payload"].shape
        dut.o__ready.value = 0
        dut.i__payload.value = self.images[image]
        dut.i__valid.value = 1
        while True:  # the image is taken
            await RisingEdge(dut.clk)
            self.cycle += 1
            if dut.i__ready.value:
                break
        dut.i__valid.value = 0
        for _ in range(64):  # its result offered
            await FallingEdge(dut.clk)
            if dut.o__valid.value:
                break
            await RisingEdge(dut.clk)
            self.cycle += 1
        held = dut.o__payload.value.to_unsigned()
        if held != want:
            bad.append(f"held result {held:#x} is not the golden {want:#x}")
        dut.thr__payload.value = pack_fields(layout, {"layer": k, "index": j, "value": value})
        dut.thr__valid.value = 1
        taken_while_held = written = False
        for c in range(hold_cycles + 1):  # held for hold_cycles edges, then taken on the last one
            release = c == hold_cycles
            if release:
                dut.o__ready.value = 1
            await FallingEdge(dut.clk)
            if not bad and (not dut.o__valid.value or dut.o__payload.value.to_unsigned() != held):
                bad.append(f"the held result changed {c} cycles after a threshold write was offered "
                           f"({held:#x} -> {dut.o__payload.value.to_unsigned():#x})")
            ready = bool(dut.thr__ready.value) and not written
            await RisingEdge(dut.clk)
            self.cycle += 1
            if ready:
                written, taken_while_held = True, not release
                dut.thr__valid.value = 0
        if not written:
            bad.append("the threshold write was not taken when the result was")
            dut.thr__valid.value = 0
        dut.o__ready.value = 0
        if taken_while_held and not self.chip_cfg.pipeline:
            bad.append("the unpipelined chip took a threshold write while its result was held")
        self.golden.net.thresholds[k][j] = value
        self.golden.net.__post_init__()
        self.driver.valid_now = self.results.ready_now = None  # the drivers write their lines again
        return bad

    async def read_back(self) -> dict:
        """Every cell state and switch counter through the read port, against the golden device."""
        dut = self.dut
        want_cells, want_counts = self.golden.device.cells(), self.golden.device.counts()
        bad_cells = bad_counts = 0
        examples = []
        for k, cells in enumerate(want_cells):
            n_in, n_out = cells.shape
            for r in range(n_in):
                for c in range(n_out):
                    dut.read_layer.value, dut.read_row.value, dut.read_col.value = k, r, c
                    await RisingEdge(dut.clk)
                    bit, cnt = int(dut.read_bit.value), dut.read_count.value.to_unsigned()
                    if bit != cells[r, c]:
                        bad_cells += 1
                    if cnt != want_counts[k][r, c]:
                        bad_counts += 1
                    if (bit != cells[r, c] or cnt != want_counts[k][r, c]) and len(examples) < 10:
                        examples.append({"layer": k, "row": r, "col": c, "bit": [bit, int(cells[r, c])],
                                         "count": [cnt, int(want_counts[k][r, c])]})
        return {"cells": int(sum(c.size for c in want_cells)), "cell_mismatches": bad_cells,
                "count_mismatches": bad_counts, "examples": examples,
                "switches_total": int(sum(c.sum() for c in want_counts))}

    def programming_report(self) -> dict:
        dut, g = self.dut, self.golden.report
        layout = self.chip.programmer.addr_layout
        hw_failed = [tuple(unpack_fields(field_table(layout), v)[k] for k in ("layer", "row", "col"))
                     for v in self.failed.received]
        hw = {"pulses_set": dut.n_set.value.to_unsigned(), "pulses_reset": dut.n_reset.value.to_unsigned(),
              "cells_failed": dut.n_failed.value.to_unsigned()}
        return {"hardware": hw, "golden": {k: v for k, v in g.as_dict().items() if k != "failed"},
                "failed_hw": [list(f) for f in hw_failed], "failed_golden": [list(f) for f in g.failed],
                "failed_match": hw_failed == g.failed, "overflow": int(dut.prog_overflow.value),
                "commands": len(self.commands.accepted), "longest_busy_cycles": self.longest_busy,
                "violations": self.violations[:10]}


@cocotb.test()
async def chip_matches_golden(dut):
    cfg = testbench_config()
    bench = Bench(dut, cfg)
    gc.freeze()  # the network, the elaborated chip and the images are permanent: keep them out of GC scans
    dut._log.info(f"seed {bench.seed} (replay with the same seed)")
    await bench.reset()
    n = len(bench.x)
    result = {"seed": bench.seed, "images": n, "arch": list(bench.chip.arch), "latency": bench.chip.latency}
    failures = []

    # Programming (optionally while images stream).
    commands = [tuple(c) for c in cfg.get("commands", [])]
    if commands:
        t = time.perf_counter()
        during = list(range(min(n, int(cfg.get("images_during_programming", 0)))))
        await bench.traffic(during, commands)
        result["programming"] = bench.programming_report()
        result["programming"]["wall_s"] = round(time.perf_counter() - t, 3)
        result["programming"]["images_during"] = len(during)
        p = result["programming"]
        if p["hardware"] != p["golden"] or not p["failed_match"] or p["violations"] or p["overflow"]:
            failures.append(f"programming differs from the golden model: {p['hardware']} vs {p['golden']}, "
                            f"failed lists match: {p['failed_match']}, violations {p['violations'][:3]}")

    # Thresholds written by the host once the arrays hold their cells (a per-chip calibration).
    if cfg.get("thresholds"):
        t = time.perf_counter()
        n_thr = await bench.write_thresholds(cfg["thresholds"])
        result["thresholds_written"] = {"writes": n_thr, "cycles": bench.cycle,
                                        "wall_s": round(time.perf_counter() - t, 3)}

    # Random traffic over every image.
    first_label = bench.board.checked
    t0 = time.perf_counter()
    await bench.traffic(range(n))
    result["random_phase"] = {"cycles": bench.cycle, "wall_s": round(time.perf_counter() - t0, 3),
                              "images_per_s": round(n / (time.perf_counter() - t0), 1)}

    # Throughput: free-flowing stream.
    n_tp = min(n, int(cfg.get("throughput_images", 1000)))
    if n_tp:
        bench.driver.p_idle, bench.results.p_stall = 0.0, 0.0
        first_recv = len(bench.results.received)
        first_acc = len(bench.driver.accept_cycles)
        t1 = time.perf_counter()
        await bench.traffic(range(n_tp))
        acc = bench.driver.accept_cycles[first_acc:]
        span = acc[-1] - acc[0] + 1
        result["throughput"] = {"images": n_tp, "accept_span_cycles": span,
                                "images_per_cycle": round(n_tp / span, 4),
                                "latency_cycles": bench.results.receive_cycles[first_recv] - acc[0],
                                "wall_s": round(time.perf_counter() - t1, 3),
                                "images_per_s": round(n_tp / (time.perf_counter() - t1), 1)}
        bench.driver.p_idle, bench.results.p_stall = cfg.get("p_idle", 0.2), cfg.get("p_stall", 0.2)

    # Thresholds rewritten at run time.
    if cfg.get("rewrite_thresholds"):
        held = await bench.hold_and_rewrite(0)
        failures += held
        result["held_result_under_threshold_write"] = "unchanged" if not held else held
        prng = np.random.default_rng(bench.seed)
        for k, w in enumerate(bench.net.weights):
            n_in, n_out = w.shape
            for j in prng.choice(n_out, size=min(n_out, 4), replace=False):
                await bench.write_threshold(k, int(j), int(prng.integers(-n_in, n_in + 2)))
        await bench.refused_threshold_writes()
        n2 = min(n, 500)
        await bench.traffic(range(n2))
        got = dut.n_thr_rejected.value.to_unsigned()
        result["thresholds_rewritten"] = {"images": n2, "refused_writes": got}
        if got != bench.thr_refused:
            failures.append(f"n_thr_rejected is {got}, {bench.thr_refused} writes should have been refused")

    if cfg.get("read_back"):
        rb = await bench.read_back()
        result["read_back"] = rb
        if rb["cell_mismatches"] or rb["count_mismatches"]:
            failures.append(f"read-back differs: {rb['cell_mismatches']} cells, {rb['count_mismatches']} "
                            f"counters, e.g. {rb['examples'][:3]}")

    b = bench.board
    result.update({"checked": b.checked, "mismatches": b.mismatches, "examples": b.examples,
                   "hw_labels": b.labels[first_label:first_label + n], "cycles": bench.cycle,
                   "final_cells": [c.tolist() for c in bench.golden.device.cells()] if cfg.get("return_cells") else None})
    write_result(cfg, result)
    if b.mismatches:
        failures.append(f"{b.mismatches} result mismatches, first: {b.examples[:3]}")
    assert not failures, "; ".join(failures)
