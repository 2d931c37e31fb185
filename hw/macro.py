"""The digital periphery of a test chip whose crossbar arrays are an external macro.

This is the tape-out view on an FPGA: input flip-flops, the sense/threshold stage (thresholds
in block RAM, ``fires_j = S_j >= theta_j``), the output stage and a write-verify controller stay
digital; the arrays (word-line drivers, column current summation and its digitised column
sums, SET/RESET drivers, cell sensing) sit behind a narrow byte port that a test chip can be
wired to (:class:`CrossbarMacro` is its behavioural model, the same tiles and device model as
the chip's arrays).

Crossbar port (synchronous to the periphery's clock; 18 pins plus the clock on the board):

* ``bus_out`` (periphery to macro, 8 bits + valid; the macro takes a byte every cycle):
  5-byte frames ``[op << 5 | layer, row_lo, row_hi, col, data]``;
* ``bus_in`` (macro to periphery, 8 bits + valid): replies.

=========  ==  ==========================================================================
op         #   meaning
=========  ==  ==========================================================================
``WL``     1   word lines ``8*row .. 8*row+7`` of ``layer`` := ``data`` (bit i: row 8*row+i)
``SENSE``  2   reply the column sum S of column ``col`` for the word lines now applied:
               two bytes, signed 16-bit little endian
``PULSE``  3   one programming pulse to cell (``row``, ``col``): SET if ``data`` bit 0 else
               RESET; the periphery waits ``pulse_cycles`` before the next frame
``READ``   4   reply one byte: the cell's state (1 = LRS) in bit 0
=========  ==  ==========================================================================

Per image every layer loads its inputs (``ceil(n_in / 8)`` WL frames) and senses each column
(one SENSE frame and its reply), so an image takes about ``sum_k 5 ceil(n_in_k / 8) +
(8 + latency) n_out_k`` cycles: a slow link, but the macro needs no wide port.

Beside the crossbar port and its counters the periphery has the ports of the emulation twin
(``i``, ``o``, ``wr``, ``idle``: the members of a :class:`rrambnn.hw.interfaces.CoreSignature`),
so the same UART host link drives it; a cell write (``thr`` = 0) is one write-verify: read the
cell, pulse it if it differs, read back, up to ``retries`` more pulses, else count it failed.
"""

from types import SimpleNamespace

import numpy as np
from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from rrambnn.hw.crossbar import _bits, sum_width
from rrambnn.hw.interfaces import CoreSignature
from rrambnn.hw.layer import Layer, threshold_width
from rrambnn.hw.output import attach_output_stage, check_output_stage

OP_WL, OP_SENSE, OP_PULSE, OP_READ = 1, 2, 3, 4
FRAME_BYTES = 5


def _check_arch(arch):
    if not isinstance(arch, (tuple, list)) or len(arch) < 2 or len(arch) - 1 > 31:
        raise ValueError(f"Macro periphery needs 2 to 32 layer sizes, not {arch!r}")
    for n in arch:
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 2040:
            raise ValueError(f"Layer sizes must be integers from 1 to 2040, not {n!r}")
    if max(arch[1:]) > 256:
        raise ValueError(f"Macro periphery columns are addressed with one byte: at most 256 outputs, not {max(arch[1:])}")
    return tuple(arch)


def field(value, width: int):
    """``value`` zero-extended (or cut) to ``width`` bits."""
    value = value.as_unsigned() if hasattr(value, "as_unsigned") else value
    return Cat(value, Const(0, max(0, width - len(value))))[:width]


class MacroPeriphery(wiring.Component):
    """The test chip's digital periphery for a network of ``arch`` with ``thresholds``."""

    kind = 1  # for the host link's query reply

    def __init__(self, arch, thresholds, *, output: str = "priority", retries: int = 3, pulse_cycles: int = 5):
        self.arch = _check_arch(arch)
        check_output_stage(output)
        if len(thresholds) != len(self.arch) - 1:
            raise ValueError("Macro periphery needs one threshold vector per layer")
        if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= 255:
            raise ValueError(f"Retries must be an integer from 0 to 255, not {retries!r}")
        if not isinstance(pulse_cycles, int) or isinstance(pulse_cycles, bool) or not 1 <= pulse_cycles <= 1 << 16:
            raise ValueError(f"Pulse width in cycles must be an integer from 1 to 65536, not {pulse_cycles!r}")
        self.output, self.retries, self.pulse_cycles = output, retries, pulse_cycles
        self.n_layers = len(self.arch) - 1
        self.tw = max(threshold_width(n) for n in self.arch[:-1])
        self.mw = max(sum_width(max(self.arch[:-1])), self.tw) + 1
        self.thresholds = [np.asarray(t, np.int64) for t in thresholds]
        self.wr_layout = data.StructLayout({
            "layer": _bits(self.n_layers), "thr": 1, "row": _bits(max(self.arch[:-1])),
            "col": _bits(max(self.arch[1:])), "value": signed(self.tw)})
        core = CoreSignature(self.arch[0], self.arch[-1], self.wr_layout)
        self.out_layout = core.out_layout
        super().__init__({
            **core.members,
            "bus_out": Out(stream.Signature(8)),
            "bus_in": In(stream.Signature(8)),
            "n_set": Out(32), "n_reset": Out(32), "n_failed": Out(32),
        })

    @property
    def interval(self) -> int:
        """Cycles per image, free-flowing, with a macro that replies one cycle after a frame:
        per layer 6 per word-line byte (a frame and a step) and 9 per column (a frame, the
        macro's cycle, two reply bytes and a step), one between layers, two per image."""
        return sum(-(-n_in // 8) * (FRAME_BYTES + 1) + n_out * (FRAME_BYTES + 4)
                   for n_in, n_out in zip(self.arch[:-1], self.arch[1:])) + self.n_layers + 1

    def fold(self):
        """(lanes, chunk) per layer as the host link reports it: one column at a time, word
        lines a byte at a time."""
        return [(1, 8)] * self.n_layers

    def cell_write(self, layer: int, row: int, col: int, value: int) -> dict:
        return {"layer": layer, "thr": 0, "row": row, "col": col, "value": int(value) & 1}

    def threshold_write(self, layer: int, col: int, value: int) -> dict:
        return {"layer": layer, "thr": 1, "row": 0, "col": col, "value": int(value)}

    def elaborate(self, platform):
        m = Module()
        L = self.n_layers
        bases = [int(b) for b in np.cumsum([0, *self.arch[1:-1]])]
        init = [int(t) & ((1 << self.tw) - 1) for thr in self.thresholds for t in thr]
        m.submodules.thresholds = thr_mem = Memory(shape=signed(self.tw), depth=len(init),
                                                   init=[v - (1 << self.tw) if v >> (self.tw - 1) else v
                                                         for v in init])
        trd = thr_mem.read_port()
        twr = thr_mem.write_port()
        base_of = [Const(b, _bits(len(init) + 1)) for b in bases]

        layer = Signal(range(max(2, L)))
        n_in_of = [Const(n, 12) for n in self.arch[:-1]]
        n_out_of = [Const(n, 12) for n in self.arch[1:]]
        n_in = Signal(12)
        n_out = Signal(12)
        base = Signal.like(base_of[0])
        with m.Switch(layer):
            for k in range(L):
                with m.Case(k):
                    m.d.comb += [n_in.eq(n_in_of[k]), n_out.eq(n_out_of[k]), base.eq(base_of[k])]

        act = Signal(max(self.arch[:-1]), name="act_ff", reset_less=True)  # the layer's input
        fires = Signal(max(self.arch[1:]), name="fires_ff", reset_less=True)
        n_last = self.arch[-1]
        margins = Signal(n_last * self.mw, reset_less=True)
        idx = Signal(12)  # WL byte or column
        byte_i = Signal(range(FRAME_BYTES))
        reply = Signal(16, reset_less=True)
        got = Signal(2)
        timer = Signal(range(self.pulse_cycles + 1))
        tries = Signal(range(self.retries + 2))
        w = Signal(self.wr_layout, reset_less=True)

        # replies from the macro
        m.d.comb += self.bus_in.ready.eq(1)
        with m.If(self.bus_in.valid):
            m.d.sync += [reply.eq(Cat(reply[8:], self.bus_in.payload)), got.eq(got + 1)]

        def send(state, frame, next_state, expect=0):
            """A state sending a 5-byte ``frame`` (then ``expect`` reply bytes are awaited)."""
            with m.State(state):
                m.d.comb += [self.bus_out.valid.eq(1), self.bus_out.payload.eq(frame.word_select(byte_i, 8))]
                with m.If(self.bus_out.ready):
                    m.d.sync += byte_i.eq(byte_i + 1)
                    with m.If(byte_i == FRAME_BYTES - 1):
                        m.d.sync += [byte_i.eq(0), got.eq(0)]
                        m.next = next_state

        def frame(op, row, col, data_):
            return Cat(field(layer, 5), Const(op, 3), field(row, 16), field(col, 8), field(data_, 8))

        margin = Signal(signed(self.mw + 1))
        m.d.comb += [trd.addr.eq(base + idx), margin.eq(reply.as_signed() - trd.data)]
        lane_act = Signal(8)
        n_bytes = -(-len(act) // 8)
        m.d.comb += lane_act.eq(field(act, 8 * n_bytes).word_select(idx[:_bits(n_bytes)], 8))
        col = idx[:_bits(max(self.arch[1:]))]

        with m.FSM(name="periphery"):
            with m.State("IDLE"):
                m.d.comb += self.idle.eq(~self.o.valid)
                with m.If(self.wr.valid & ~self.o.valid):
                    m.d.sync += [w.eq(self.wr.payload), layer.eq(self.wr.payload.layer)]
                    with m.If(self.wr.payload.thr):
                        m.next = "THRESHOLD"
                    with m.Else():
                        m.d.sync += tries.eq(0)
                        m.next = "READ"
                with m.Elif(self.i.valid & ~self.o.valid):
                    m.d.comb += self.i.ready.eq(1)
                    m.d.sync += [act.eq(self.i.payload), layer.eq(0), idx.eq(0)]
                    m.next = "WL"

            # inference: word lines, then every column's sum against its threshold
            send("WL", frame(OP_WL, idx, Const(0, 8), lane_act), "WL_NEXT")
            with m.State("WL_NEXT"):
                m.d.sync += idx.eq(idx + 1)
                with m.If((idx + 1) * 8 >= n_in):
                    m.d.sync += idx.eq(0)
                    m.next = "SENSE"
                with m.Else():
                    m.next = "WL"
            send("SENSE", frame(OP_SENSE, Const(0, 16), idx, Const(0, 8)), "SENSE_WAIT")
            with m.State("SENSE_WAIT"):  # trd.data (this column's threshold) is ready by now
                with m.If(got == 2):
                    m.d.sync += [fires.bit_select(col, 1).eq(margin >= 0), idx.eq(idx + 1)]
                    with m.If(layer == L - 1):
                        m.d.sync += margins.word_select(col[:_bits(n_last)], self.mw).eq(margin[:self.mw])
                    m.next = "SENSE"
                    with m.If(idx + 1 == n_out):
                        m.d.sync += idx.eq(0)
                        with m.If(layer == L - 1):
                            m.d.sync += self.o.valid.eq(1)
                            m.next = "IDLE"
                        with m.Else():
                            m.next = "NEXT_LAYER"
            with m.State("NEXT_LAYER"):
                m.d.sync += [act.eq(fires), fires.eq(0), layer.eq(layer + 1)]
                m.next = "WL"

            # programming: thresholds directly, cells with write-verify over the port
            with m.State("THRESHOLD"):
                m.d.comb += [twr.addr.eq(base + w.col), twr.data.eq(w.value), twr.en.eq(1), self.wr.ready.eq(1)]
                m.next = "IDLE"
            send("READ", frame(OP_READ, w.row, w.col, Const(0, 8)), "READ_WAIT")
            with m.State("READ_WAIT"):
                with m.If(got == 1):
                    with m.If(reply[8] == w.value[0]):
                        m.d.comb += self.wr.ready.eq(1)
                        m.next = "IDLE"
                    with m.Elif(tries == self.retries + 1):
                        m.d.comb += self.wr.ready.eq(1)
                        m.d.sync += self.n_failed.eq(self.n_failed + 1)
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += tries.eq(tries + 1)
                        with m.If(w.value[0]):
                            m.d.sync += self.n_set.eq(self.n_set + 1)
                        with m.Else():
                            m.d.sync += self.n_reset.eq(self.n_reset + 1)
                        m.next = "PULSE"
            send("PULSE", frame(OP_PULSE, w.row, w.col, w.value.as_unsigned()), "PULSE_WAIT")
            with m.State("PULSE_WAIT"):
                m.d.sync += timer.eq(timer + 1)
                with m.If(timer == self.pulse_cycles - 1):
                    m.d.sync += timer.eq(0)
                    m.next = "READ"

        with m.If(self.o.valid & self.o.ready):
            m.d.sync += [self.o.valid.eq(0), fires.eq(0), margins.eq(0)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [fires.eq(0), margins.eq(0)]

        last = SimpleNamespace(fires=fires[:n_last], margins=margins, n_out=n_last, mw=self.mw)
        result = Signal(self.out_layout)
        m.d.comb += [result.cls.eq(attach_output_stage(m, self.output, last)), result.hit.eq(fires[:n_last].any()),
                     self.o.payload.eq(result)]
        return m


class CrossbarMacro(wiring.Component):
    """Behavioural model of the external macro on the periphery's port: the chip's layers
    (tiles, current summation, device model: faults, pulse failures, endurance) behind the
    byte protocol. Replies leave one cycle after a frame's last byte."""

    def __init__(self, weights, *, tile=(128, 128), initial_cells=None, faults=None, device=None):
        from rrambnn.gen.device import DeviceParams, fail_threshold
        device = device or DeviceParams()
        n = len(weights)
        initial_cells = initial_cells or [None] * n
        faults = faults or [None] * n
        self.layers = [Layer(w, np.zeros(w.shape[1], np.int64), tile, initial_cells=ic, faults=f, index=k,
                             seed=device.seed, fail_threshold=fail_threshold(device.p_fail),
                             endurance=device.endurance)
                       for k, (w, ic, f) in enumerate(zip(weights, initial_cells, faults))]
        self.arch = (self.layers[0].n_in,) + tuple(layer.n_out for layer in self.layers)
        super().__init__({"bus_in": In(stream.Signature(8)), "bus_out": Out(stream.Signature(8))})

    def elaborate(self, platform):
        m = Module()
        frame = Signal(8 * FRAME_BYTES)
        count = Signal(range(FRAME_BYTES + 1))
        m.d.comb += self.bus_in.ready.eq(1)
        go = Signal()
        with m.If(self.bus_in.valid):
            m.d.sync += [frame.eq(Cat(frame[8:], self.bus_in.payload)), count.eq(count + 1)]
        m.d.comb += go.eq(count == FRAME_BYTES)
        with m.If(go):
            m.d.sync += count.eq(Mux(self.bus_in.valid, 1, 0))
        head, row, col, dat = frame[:8], frame[8:24], frame[24:32], frame[32:40]
        op, k = head[5:], head[:5]

        out = Signal(16)
        left = Signal(2)  # reply bytes still to send
        m.d.comb += [self.bus_out.valid.eq(left != 0), self.bus_out.payload.eq(out[:8])]
        with m.If(self.bus_out.valid & self.bus_out.ready):
            m.d.sync += [out.eq(out >> 8), left.eq(left - 1)]
        for i, layer in enumerate(self.layers):
            m.submodules[f"layer{i}"] = layer
            x = Signal(layer.n_in, name=f"word_lines{i}")
            m.d.comb += layer.x.eq(x)
            here = go & (k == i)
            with m.If(here & (op == OP_WL)):
                for b in range(-(-layer.n_in // 8)):
                    with m.If(row == b):
                        m.d.sync += x[8 * b:8 * b + 8].eq(dat[:min(8, layer.n_in - 8 * b)])
            m.d.comb += [layer.pulse_valid.eq(here & (op == OP_PULSE)), layer.pulse_row.eq(row),
                         layer.pulse_col.eq(col), layer.pulse_set.eq(dat[0]),
                         layer.read_row.eq(row), layer.read_col.eq(col), layer.thr_we.eq(0)]
            with m.If(here & (op == OP_SENSE)):
                sums = Signal(signed(16), name=f"sum{i}")
                with m.Switch(col):
                    for j in range(layer.n_out):
                        with m.Case(j):
                            m.d.comb += sums.eq(layer.sums[j * layer.sw:(j + 1) * layer.sw].as_signed())
                m.d.sync += [out.eq(sums.as_unsigned()), left.eq(2)]
            with m.If(here & (op == OP_READ)):
                m.d.sync += [out.eq(layer.read_bit), left.eq(1)]
        return m


def macro_periphery_of(net, *, output: str | None = None, retries: int = 3, pulse_cycles: int = 5) -> MacroPeriphery:
    """The periphery of the binary network ``net`` (its shape and thresholds; ``output``
    defaults to its output stage). Every periphery is built here: the board design, the host's
    write packing, the testbench and its golden side."""
    return MacroPeriphery(net.arch, net.thresholds, output=output or net.output_mode, retries=retries,
                     pulse_cycles=pulse_cycles)


class MacroBench(wiring.Component):
    """The macro periphery and the macro model wired together: the simulation top of the macro variant
    (the periphery's core ports and counters)."""

    def __init__(self, periphery: MacroPeriphery, macro: CrossbarMacro):
        self.periphery, self.macro = periphery, macro
        super().__init__({
            **CoreSignature(periphery.arch[0], periphery.arch[-1], periphery.wr_layout).members,
            "n_set": Out(32), "n_reset": Out(32), "n_failed": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.periphery = p = self.periphery
        m.submodules.macro = mac = self.macro
        wiring.connect(m, p.bus_out, mac.bus_in)
        wiring.connect(m, mac.bus_out, p.bus_in)
        wiring.connect(m, wiring.flipped(self.i), p.i)
        wiring.connect(m, p.o, wiring.flipped(self.o))
        wiring.connect(m, wiring.flipped(self.wr), p.wr)
        m.d.comb += [self.idle.eq(p.idle), self.n_set.eq(p.n_set), self.n_reset.eq(p.n_reset),
                     self.n_failed.eq(p.n_failed)]
        return m
