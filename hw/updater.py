"""Weight-update controller: quantised updates of n-bit weights stored in n binary cells.

Takes a stream of update commands (payload :attr:`WeightUpdater.cmd_layout`):

* element (``rank1`` = 0): add ``delta`` to the weight (``layer``, ``row``, ``col``);
* rank-1 (``rank1`` = 1): for every active input ``x[r]`` and every column with a non-zero
  error ``e[j]``, add ``e[j]`` to weight (r, j): one training step of a layer in one command.

For each weight, in the order of :mod:`rrambnn.gen.planes` (rows ascending, columns ascending
inside a row): read the n cells of the weight at once (all planes), compute the saturated new
code exactly as the golden model does, and hand the programming controller one write-verify
command per cell that changes: in the sign-magnitude code (the sign-forward chip) magnitude
bits from the least significant up, the sign cell last; in the offset code (the training chip,
``offset``) from plane 0 up, the most significant last. Cells that do not change get no pulse.

The chip holds images off from the moment a command is accepted until the last cell is
written (and the programming controller waits for the pipeline to drain before any pulse),
so inference never sees a half-updated weight or a half-applied rank-1 step. In the
sign-magnitude code the sign is written last as a second line of defence for designs that
would release images between weights: the sign (all a sign-forward chip reads) then changes
only once the magnitude is final.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from rrambnn.gen.planes import MAX_BITS, max_magnitude, plane_order
from rrambnn.hw.crossbar import _bits
from rrambnn.hw.output import PriorityEncoder


def check_bits(wbits) -> int:
    """Validate the bits of a weight the controller updates."""
    if not isinstance(wbits, int) or isinstance(wbits, bool) or not 2 <= wbits <= MAX_BITS:
        raise ValueError(f"Weight bits must be an integer from 2 to {MAX_BITS}, not {wbits!r}")
    return wbits


def _check_step_bits(step_bits):
    if not isinstance(step_bits, int) or isinstance(step_bits, bool) or not 2 <= step_bits <= 8:
        raise ValueError(f"Step bits (the rank-1 step width) must be an integer from 2 to 8, not {step_bits!r}")


def _check_restore(restore):
    if not isinstance(restore, bool):
        raise TypeError(f"Restore must be a bool, not {restore!r}")


@dataclass(frozen=True)
class WeightUpdate:
    """A chip's weight-update controller (:class:`WeightUpdater`), checked when made: rank-1
    errors of ``step_bits`` bits; ``restore``: a weight whose write failed gets its old code back.
    The weights' bits and code come from the chip's arrays."""

    step_bits: int = 2
    restore: bool = False

    def __post_init__(self):
        _check_step_bits(self.step_bits)
        _check_restore(self.restore)


class WeightUpdater(wiring.Component):
    """``offset``: the weights are offset codes u in [0, 2^n - 1] (plane b = bit b, the code of
    :mod:`rrambnn.gen.online_nbit` and the multi-bit chip); an update gives clip(u + d, 0, 2^n - 1)
    and the cells are written from plane 0 (least significant) up. Element deltas are then
    n + 1 bits wide (a step can span the whole code).

    ``restore``: after a weight's writes the controller reads the weight again; if a cell failed
    (the code is not the target), it writes the weight's other changed cells back, so the weight
    keeps its old code (cells failing again are reported again and stay)."""

    @staticmethod
    def check_parameters(*, wbits: int, step_bits: int = 2, offset: bool = False, restore: bool = False) -> None:
        """Raise ValueError or TypeError for a parameter the constructor would refuse (without
        building one)."""
        check_bits(wbits)
        _check_step_bits(step_bits)
        if not isinstance(offset, bool):
            raise TypeError(f"Offset code must be a bool, not {offset!r}")
        _check_restore(restore)

    def __init__(self, arch, *, wbits: int, step_bits: int = 2, word: int = 16, cmd_layout=None,
                 offset: bool = False, restore: bool = False):
        self.check_parameters(wbits=wbits, step_bits=step_bits, offset=offset, restore=restore)
        if cmd_layout is None:
            raise ValueError("WeightUpdater needs the programming controller's command layout")
        self.restore = restore
        self.arch, self.wbits, self.step_bits, self.word, self.offset = tuple(arch), wbits, step_bits, word, offset
        self.max_in, self.max_out = max(arch[:-1]), max(arch[1:])
        self.lw = _bits(len(arch) - 1)
        self.rw, self.cw = _bits(self.max_in), _bits(self.max_out)
        self.cmd_layout = data.StructLayout({
            "layer": self.lw, "rank1": 1, "row": self.rw, "col": self.cw, "delta": signed(wbits + offset),
            "x": self.max_in, "e": data.ArrayLayout(signed(step_bits), self.max_out),
        })
        self.addr_layout = data.StructLayout({"layer": self.lw, "row": self.rw, "col": self.cw})
        super().__init__({
            "upd": In(stream.Signature(self.cmd_layout)),
            "busy": Out(1),
            # to the arrays: the weight being read, and its n cells (plane 0 = the sign, or bit 0 of an offset code)
            "addr": Out(self.addr_layout),
            "code": In(wbits),
            # to the programming controller
            "prog": Out(stream.Signature(cmd_layout)),
            "prog_busy": In(1),
            "n_updates": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        n, W = self.wbits, self.word
        dw = max(n + self.offset, self.step_bits) + 1
        M = max_magnitude(n)

        layer = Signal(self.lw, name="upd_layer")
        rows_left = Signal(self.max_in)
        cols_left = Signal(self.max_out)
        errs = Signal(data.ArrayLayout(signed(dw), self.max_out), name="errs")
        row = Signal(self.rw, name="upd_row")
        col = Signal(self.cw, name="upd_col")
        target = Signal(n)
        diff = Signal(n)
        orig = Signal(n)  # the code before the update (restore)
        restoring = Signal()
        row_valid = Array([Const((1 << a) - 1, self.max_in) for a in self.arch[:-1]])
        col_valid = Array([Const((1 << a) - 1, self.max_out) for a in self.arch[1:]])

        m.submodules.next_row = next_row = PriorityEncoder(self.max_in)
        m.submodules.next_col = next_col = PriorityEncoder(self.max_out)
        nonzero = Signal(self.max_out)
        m.d.comb += [next_row.fires.eq(rows_left), next_col.fires.eq(cols_left)]
        for j in range(self.max_out):
            m.d.comb += nonzero[j].eq(errs[j] != 0)
        m.d.comb += [self.addr.layer.eq(layer), self.addr.row.eq(row), self.addr.col.eq(col)]

        # the new code of the weight at (row, col): a saturated add in the weight's code
        new = Signal(n)
        total = Signal(signed(dw + 2))
        clipped = Signal(signed(dw + 2))
        if self.offset:
            lo, hi = 0, (1 << n) - 1
            m.d.comb += total.eq(self.code + errs[col])
        else:
            lo, hi = -M, M
            sign = self.code[0]
            mag = self.code[1:]
            value = Signal(signed(n + 1))
            m.d.comb += [value.eq(Mux(sign, mag, -mag)), total.eq(value + errs[col])]
        with m.If(total > hi):
            m.d.comb += clipped.eq(hi)
        with m.Elif(total < lo):
            m.d.comb += clipped.eq(lo)
        with m.Else():
            m.d.comb += clipped.eq(total)
        if self.offset:
            m.d.comb += new.eq(clipped[:n])
        else:  # the sign follows the value and keeps its state at 0
            new_sign = Signal()
            new_mag = Signal(n - 1)
            m.d.comb += [
                new_sign.eq(Mux(clipped > 0, 1, Mux(clipped < 0, 0, sign))),
                new_mag.eq(Mux(clipped < 0, -clipped, clipped)),
                new.eq(Cat(new_sign, new_mag)),
            ]

        # the next cell to write: first changed plane in the write order (sign / MSB last)
        plane = Signal(range(n))
        order = list(range(n)) if self.offset else plane_order(n)
        for p in reversed(order):
            with m.If(diff[p]):
                m.d.comb += plane.eq(p)
        offset = Signal(range(W))
        m.d.comb += offset.eq(col % W)
        pl = self.prog.payload
        m.d.comb += [
            pl.layer.eq(layer), pl.plane.eq(plane), pl.row.eq(row), pl.word.eq(col // W),
            pl.bits.eq(target.bit_select(plane, 1) << offset), pl.mask.eq(Const(1, W) << offset),
        ]

        def without(v, i, width):  # v with bit i cleared
            return v & ~(Const(1, width) << i)

        with m.FSM(name="upd") as fsm:
            with m.State("IDLE"):
                m.d.comb += self.upd.ready.eq(1)
                with m.If(self.upd.valid):
                    c = self.upd.payload
                    m.d.sync += layer.eq(c.layer)
                    with m.If(c.rank1):
                        m.d.sync += rows_left.eq(c.x & row_valid[c.layer])
                        for j in range(self.max_out):
                            m.d.sync += errs[j].eq(c.e[j])
                    with m.Else():
                        m.d.sync += rows_left.eq((Const(1, self.max_in) << c.row) & row_valid[c.layer])
                        for j in range(self.max_out):
                            m.d.sync += errs[j].eq(Mux(c.col == j, c.delta, 0))
                    m.next = "ROW"
            with m.State("ROW"):
                with m.If(rows_left == 0):
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += [row.eq(next_row.index), cols_left.eq(nonzero & col_valid[layer])]
                    m.next = "COL"
            with m.State("COL"):
                with m.If(cols_left == 0):
                    m.d.sync += rows_left.eq(without(rows_left, row, self.max_in))
                    m.next = "ROW"
                with m.Else():
                    m.d.sync += col.eq(next_col.index)
                    m.next = "READ"
            with m.State("READ"):  # once the programming controller is idle, the read port is ours
                with m.If(~self.prog_busy):
                    m.d.sync += [target.eq(new), diff.eq(new ^ self.code), self.n_updates.eq(self.n_updates + 1)]
                    if self.restore:
                        m.d.sync += [orig.eq(self.code), restoring.eq(0)]
                    m.next = "ISSUE"
            with m.State("ISSUE"):
                with m.If(diff == 0):
                    if self.restore:
                        with m.If(restoring):
                            m.d.sync += cols_left.eq(without(cols_left, col, self.max_out))
                            m.next = "COL"
                        with m.Else():
                            m.next = "CHECK"
                    else:
                        m.d.sync += cols_left.eq(without(cols_left, col, self.max_out))
                        m.next = "COL"
                with m.Else():
                    m.d.comb += self.prog.valid.eq(1)
                    with m.If(self.prog.ready):
                        m.d.sync += diff.eq(without(diff, plane, n))
                        m.next = "WAIT"
            with m.State("WAIT"):  # the controller took the command: wait for its write-verify
                with m.If(~self.prog_busy):
                    m.next = "ISSUE"
            if self.restore:
                with m.State("CHECK"):  # read the weight again: a failed cell means restoring the others
                    with m.If(~self.prog_busy):
                        with m.If(self.code != target):
                            m.d.sync += [target.eq(orig), diff.eq(self.code ^ orig), restoring.eq(1)]
                            m.next = "ISSUE"
                        with m.Else():
                            m.d.sync += cols_left.eq(without(cols_left, col, self.max_out))
                            m.next = "COL"
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE"))
        # the controller's state, read (never driven) by the formal harness (sim/formal.py) to state
        # the invariants that make its properties inductive
        self._state = {"fsm": fsm.state, "encoding": dict(fsm.encoding), "diff": diff, "target": target,
                       "orig": orig, "restoring": restoring}
        return m
