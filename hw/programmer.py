"""Cell-programming controller with write-verify.

Takes commands ``(layer, row, word, bits, mask)`` (with ``plane`` after ``layer`` when the
arrays hold multi-bit weights): the target states of columns
``word*W .. word*W+W-1`` of one row (bit i of ``bits`` for column word*W+i; cells
whose ``mask`` bit is 0, or whose column is past the layer's width, are skipped).
For every cell the command writes (its mask's cells within the layer's width; the scan goes
straight from one to the next, so a one-cell command costs no word scan), in increasing column
order: read it; if it differs, pulse it
(SET for 1, RESET for 0; a pulse lasts ``pulse_cycles`` clocks and lands at the
end), read back, and retry up to ``retries`` more times; a cell still wrong is
reported as failed. One pulse at a time, to one cell, in one direction: a cell
is never SET and RESET in the same cycle, and every command finishes after at
most ``W * ((1 + retries) * (pulse_cycles + 1) + 2) + 1`` busy cycles (reached when
every cell of the word fails).

Inference is kept out while programming: ``hold`` asks the chip to stop
accepting images as soon as a command waits, and the command is taken only when
the chip reports its pipeline ``drained``.

Reports: ``busy``, ``done`` (sticky: the last command finished and nothing is
waiting), pulse counters ``n_set``/``n_reset``, ``n_failed``, and the failed-cell
stream ``failed`` (a FIFO of ``fifo_depth`` addresses; ``overflow`` is set if a
failure found it full; ``n_failed`` still counts every one).
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Array, Cat, Const, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from rrambnn.hw.crossbar import _bits


def _positive_int(name, v, lo=1, hi=None):
    if not isinstance(v, int) or isinstance(v, bool) or v < lo or (hi is not None and v > hi):
        bound = f"from {lo} to {hi}" if hi is not None else f"at least {lo}"
        raise ValueError(f"{name} must be an integer {bound}, not {v!r}")


@dataclass(frozen=True)
class Programming:
    """The write-verify controller's parameters, checked when made (a chip's ``programming``;
    the number of planes comes from the chip's arrays)."""

    word: int = 16  # cells per command
    retries: int = 3  # write-verify retries after the first pulse
    pulse_cycles: int = 5  # clocks per pulse
    fifo_depth: int = 64  # failed-cell addresses held

    def __post_init__(self):
        Programmer.check_parameters(word=self.word, retries=self.retries, pulse_cycles=self.pulse_cycles,
                                    fifo_depth=self.fifo_depth)


class Programmer(wiring.Component):
    """The controller for a network of layer sizes ``arch`` whose arrays have ``planes`` planes
    (see the module docstring and :class:`Programming` for the other parameters)."""

    @staticmethod
    def check_parameters(*, word: int = 16, retries: int = 3, pulse_cycles: int = 5, fifo_depth: int = 64,
                         planes: int = 1) -> None:
        """Raise ValueError for a parameter the constructor would refuse (without building one)."""
        _positive_int("Word width", word, 1, 64)
        _positive_int("Retries", retries, 0, 255)
        _positive_int("Pulse width in cycles", pulse_cycles, 1, 1 << 16)
        _positive_int("Failed-cell FIFO depth", fifo_depth, 1, 1 << 16)
        _positive_int("Weight planes", planes, 1, 12)

    def __init__(self, arch, *, word: int = 16, retries: int = 3, pulse_cycles: int = 5,
                 fifo_depth: int = 64, planes: int = 1):
        if not isinstance(arch, (tuple, list)) or len(arch) < 2:
            raise ValueError(f"Programmer needs the layer sizes, not {arch!r}")
        self.check_parameters(word=word, retries=retries, pulse_cycles=pulse_cycles, fifo_depth=fifo_depth,
                              planes=planes)
        self.arch, self.planes = tuple(arch), planes
        self.word, self.retries, self.pulse_cycles, self.fifo_depth = word, retries, pulse_cycles, fifo_depth
        n_layers = len(arch) - 1
        self.lw = _bits(n_layers)
        self.rw = _bits(max(arch[:-1]))
        self.cw = _bits(max(arch[1:]))
        n_words = max(-(-n // word) for n in arch[1:])
        plane = {"plane": _bits(planes)} if planes > 1 else {}
        self.cmd_layout = data.StructLayout({"layer": self.lw, **plane, "row": self.rw, "word": _bits(n_words),
                                             "bits": word, "mask": word})
        self.addr_layout = data.StructLayout({"layer": self.lw, **plane, "row": self.rw, "col": self.cw})
        super().__init__({
            "cmd": In(stream.Signature(self.cmd_layout)),
            "failed": Out(stream.Signature(self.addr_layout)),
            "busy": Out(1), "done": Out(1), "overflow": Out(1),
            "n_set": Out(32), "n_reset": Out(32), "n_failed": Out(32),
            "hold": Out(1), "drained": In(1),
            # to the arrays
            "pulse_valid": Out(1), "pulse_set": Out(1),
            "addr": Out(self.addr_layout),  # pulse and read address
            "read_bit": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        W = self.word
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=self.addr_layout.size, depth=self.fifo_depth)
        m.d.comb += [
            self.failed.valid.eq(fifo.r_rdy),
            self.failed.payload.eq(fifo.r_data),
            fifo.r_en.eq(self.failed.ready),
        ]

        cmd = Signal(self.cmd_layout, name="cmd_reg")
        i = Signal(range(W + 1), name="bit_index")
        tries = Signal(range(self.retries + 2))
        timer = Signal(range(self.pulse_cycles))
        widths = Array([Const(n, self.cw + 1) for n in self.arch[1:]])
        col = Signal(self.cw + 1 + _bits(W) + 1, name="col")
        want = Signal()
        in_range = Signal()
        # the direct path: the scan visits only the cells a command writes (its mask's cells within
        # the layer's width), in increasing column order, so a one-cell command does not scan its word
        def cells_of(c):
            return Cat(*[c.mask[j] & (c.word * W + j < widths[c.layer]) for j in range(W)])

        def lowest(cells):
            """The lowest index set in ``cells`` (W bits), or W if none."""
            first = Signal(range(W + 1))
            m.d.comb += first.eq(W)
            for j in reversed(range(W)):
                with m.If(cells[j]):
                    m.d.comb += first.eq(j)
            return first

        # the command's next cell after the current one: its cells above bit i
        nxt = lowest(cells_of(cmd) & ~((Const(2, W + 1) << i) - 1)[:W])
        m.d.comb += [
            col.eq(cmd.word * W + i),
            want.eq(cmd.bits.bit_select(i, 1)),
            in_range.eq(cmd.mask.bit_select(i, 1) & (col < widths[cmd.layer])),
            self.addr.layer.eq(cmd.layer),
            self.addr.row.eq(cmd.row),
            *([self.addr.plane.eq(cmd.plane)] if self.planes > 1 else []),
            self.addr.col.eq(col),
            self.pulse_set.eq(want),
        ]

        with m.FSM(name="prog"):
            with m.State("IDLE"):
                m.d.comb += [self.hold.eq(self.cmd.valid), self.cmd.ready.eq(self.drained)]
                with m.If(self.cmd.valid & self.drained):
                    m.d.sync += [cmd.eq(self.cmd.payload), i.eq(lowest(cells_of(self.cmd.payload))),
                                 self.done.eq(0)]
                    m.next = "SCAN"
            with m.State("SCAN"):  # read the cell (combinational read port)
                m.d.comb += [self.hold.eq(1), self.busy.eq(1)]
                with m.If(i == W):
                    m.d.sync += self.done.eq(1)
                    m.next = "IDLE"
                with m.Elif(~in_range | (self.read_bit == want)):
                    m.d.sync += i.eq(nxt)
                with m.Else():
                    m.d.sync += [tries.eq(0), timer.eq(self.pulse_cycles - 1)]
                    m.next = "PULSE"
            with m.State("PULSE"):  # the pulse lasts pulse_cycles; it lands on the last one
                m.d.comb += [self.hold.eq(1), self.busy.eq(1)]
                with m.If(timer == 0):
                    m.d.comb += self.pulse_valid.eq(1)
                    m.d.sync += tries.eq(tries + 1)
                    with m.If(want):
                        m.d.sync += self.n_set.eq(self.n_set + 1)
                    with m.Else():
                        m.d.sync += self.n_reset.eq(self.n_reset + 1)
                    m.next = "VERIFY"
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
            with m.State("VERIFY"):
                m.d.comb += [self.hold.eq(1), self.busy.eq(1)]
                with m.If(self.read_bit == want):
                    m.d.sync += i.eq(nxt)
                    m.next = "SCAN"
                with m.Elif(tries <= self.retries):
                    m.d.sync += timer.eq(self.pulse_cycles - 1)
                    m.next = "PULSE"
                with m.Else():
                    m.next = "FAIL"
            with m.State("FAIL"):
                m.d.comb += [self.hold.eq(1), self.busy.eq(1),
                             fifo.w_data.eq(self.addr), fifo.w_en.eq(1)]
                m.d.sync += [self.n_failed.eq(self.n_failed + 1), i.eq(nxt)]
                with m.If(~fifo.w_rdy):
                    m.d.sync += self.overflow.eq(1)
                m.next = "SCAN"
        return m
