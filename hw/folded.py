"""The emulation twin: the whole classifier in synthesizable logic, weights in block RAM.

For FPGA prototypes the analog crossbar is replaced by a digital twin that computes the same
column sums ``S_j = 2*popcount(x AND c_j) - popcount(x)``, folded over several cycles: a layer
holds its cells in a memory whose word ``d`` packs the columns ``d*lanes .. d*lanes+lanes-1``
(column ``l`` of the word at bits ``l*n_in .. l*n_in+n_in-1``), and computes ``lanes`` neurons
per cycle. Thresholds live in a second memory of the same depth. A layer's pass takes
``ceil(n_out / lanes)`` cycles plus one of read latency.

Layers overlap: each holds its input (flip-flops) and its result, so layer k works on image
m+1 while layer k+1 works on image m; the design accepts one image every
``max_k ceil(n_out_k / lanes_k) + 3`` cycles (the testbench measures it). Cells and thresholds stay writable while no image is in
flight: a threshold in one cycle, a cell in two (its word is read and written back with the
one bit changed), which is what the programming path uses on the board.
"""

from __future__ import annotations

import numpy as np
from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from rrambnn.gen.network import OUTPUT_MODES
from rrambnn.hw.crossbar import _bits, column_major, sum_width
from rrambnn.hw.layer import threshold_width
from rrambnn.hw.output import attach_output_stage


def popcount(value, width: int):
    """Number of ones of ``value`` as a balanced adder tree (short carry chains)."""
    terms = [value[i] for i in range(width)]
    while len(terms) > 1:
        nxt = [terms[i] + terms[i + 1] for i in range(0, len(terms) - 1, 2)]
        if len(terms) % 2:
            nxt.append(terms[-1])
        terms = nxt
    return terms[0] if terms else Const(0, 1)


def check_lanes(lanes, n_out) -> int:
    if not isinstance(lanes, int) or isinstance(lanes, bool) or not 1 <= lanes <= n_out:
        raise ValueError(f"Lanes must be an integer from 1 to the layer's {n_out} outputs, not {lanes!r}")
    return lanes


class FoldedLayer(wiring.Component):
    """One layer of the emulation twin; ``start`` takes ``x`` and runs a pass, ``valid`` holds
    the result (``fires``, ``margins``) until ``take``. Writes (``cell_we``, ``thr_we``) only
    while ``idle``."""

    def __init__(self, cells: np.ndarray, thresholds: np.ndarray, lanes: int):
        cells = np.asarray(cells)
        if cells.ndim != 2 or not np.isin(cells, (0, 1)).all():
            raise ValueError("Folded layer cells must be a 2-D array of 0/1")
        self.n_in, self.n_out = cells.shape
        self.lanes = check_lanes(lanes, self.n_out)
        self.depth = -(-self.n_out // self.lanes)
        self.sw, self.tw = sum_width(self.n_in), threshold_width(self.n_in)
        self.mw = max(self.sw, self.tw) + 1
        # word d packs columns d*lanes.. column-major (the crossbar's parameter order); padding is 0
        L, pad = self.lanes, self.depth * self.lanes - self.n_out
        cells = np.pad(cells, ((0, 0), (0, pad)))
        thr = np.pad(np.asarray(thresholds, np.int64) & ((1 << self.tw) - 1), (0, pad))[None]
        self.words = [column_major(cells[:, d * L:(d + 1) * L], 1) for d in range(self.depth)]
        self.thr_words = [column_major(thr[:, d * L:(d + 1) * L], self.tw) for d in range(self.depth)]
        super().__init__({
            "x": In(self.n_in), "start": In(1), "idle": Out(1),
            "valid": Out(1), "take": In(1),
            "fires": Out(self.n_out), "margins": Out(self.n_out * self.mw),
            # cell writes (row, col, bit) and threshold writes (index, value), one per cycle when idle
            "cell_we": In(1), "cell_row": In(_bits(self.n_in)), "cell_col": In(_bits(self.n_out)), "cell_bit": In(1),
            "thr_we": In(1), "thr_index": In(_bits(self.n_out)), "thr_value": In(signed(self.tw)),
        })

    def margin(self, j: int):
        return self.margins[j * self.mw:(j + 1) * self.mw].as_signed()

    def elaborate(self, platform):
        m = Module()
        L, n_in, D = self.lanes, self.n_in, self.depth
        m.submodules.cells = cells = Memory(shape=L * n_in, depth=D, init=self.words)
        m.submodules.thresholds = thr = Memory(shape=L * self.tw, depth=D, init=self.thr_words)
        rd = cells.read_port()
        trd = thr.read_port()
        wr = cells.write_port()
        twr = thr.write_port(granularity=self.tw)

        # threshold writes: one lane of a word (index // lanes, lane index % lanes)
        t_lane = Signal(range(L))
        m.d.comb += [
            t_lane.eq(self.thr_index % L),
            twr.addr.eq(self.thr_index // L),
            twr.data.eq(self.thr_value.as_unsigned().replicate(L)),
            twr.en.eq(one_hot(self.thr_we, t_lane, L)),
        ]
        # cell writes: read the word now, write it back with the one bit changed next cycle
        pending = Signal(name="cell_write_pending")
        p_word = Signal(range(D))
        p_lane = Signal(range(L))
        p_row = Signal(range(n_in))
        p_bit = Signal()
        with m.If(self.cell_we):
            m.d.sync += [pending.eq(1), p_word.eq(self.cell_col // L), p_lane.eq(self.cell_col % L),
                         p_row.eq(self.cell_row), p_bit.eq(self.cell_bit)]
        with m.If(pending):
            m.d.sync += pending.eq(0)
        row_mask = Signal(n_in)
        m.d.comb += row_mask.eq(Const(1, n_in) << p_row)
        bit = Cat(*(Mux(p_lane == lane, row_mask, 0) for lane in range(L)))
        m.d.comb += [
            wr.addr.eq(p_word), wr.en.eq(pending),
            wr.data.eq(Mux(p_bit, rd.data | bit, rd.data & ~bit)),
        ]

        x = Signal(n_in, name="x_reg")
        active = Signal(range(n_in + 1))
        step = Signal(range(D + 1))
        running = Signal()
        data_valid = Signal()  # the memories' outputs belong to the previous step
        fires_sr = Signal(D * L)
        margins_sr = Signal(D * L * self.mw)
        m.d.comb += [
            self.idle.eq(~running & ~data_valid & ~self.valid & ~pending),
            rd.addr.eq(Mux(self.cell_we, self.cell_col // L, step)), trd.addr.eq(step),
            self.fires.eq(fires_sr[:self.n_out]),
            self.margins.eq(margins_sr[:self.n_out * self.mw]),
        ]
        with m.If(self.start & self.idle):
            m.d.sync += [x.eq(self.x), active.eq(popcount(self.x, n_in)), step.eq(0), running.eq(1)]
        with m.If(running):
            m.d.sync += step.eq(step + 1)
            with m.If(step == D - 1):
                m.d.sync += running.eq(0)
        m.d.sync += data_valid.eq(running)

        new_fires = []
        new_margins = []
        for lane in range(L):
            s = Signal(signed(self.sw + 1), name=f"sum{lane}")
            mg = Signal(signed(self.mw), name=f"margin{lane}")
            theta = trd.data[lane * self.tw:(lane + 1) * self.tw].as_signed()
            m.d.comb += [
                s.eq(2 * popcount(x & rd.data[lane * n_in:(lane + 1) * n_in], n_in) - active),
                mg.eq(s - theta),
            ]
            new_fires.append(mg >= 0)
            new_margins.append(mg.as_unsigned())
        with m.If(data_valid):  # shift the lanes' results in at the top
            m.d.sync += [
                fires_sr.eq(Cat(fires_sr[L:], *new_fires)),
                margins_sr.eq(Cat(margins_sr[L * self.mw:], *new_margins)),
            ]
            with m.If(~running):
                m.d.sync += self.valid.eq(1)
        with m.If(self.valid & self.take):
            m.d.sync += self.valid.eq(0)
        return m


def one_hot(we, index, width):
    """Write enable of one element: bit ``index`` of ``width`` when ``we``."""
    return Mux(we, Const(1, width) << index, 0)


class FoldedNetwork(wiring.Component):
    """The classifier for the FPGA: folded layers in a chain, an output stage, streams.

    * ``i``: image bits in; ``o``: ``cls`` and ``hit`` out (valid/ready).
    * ``wr``: writes one cell (``thr`` = 0: ``layer``, ``row``, ``col``, ``value`` bit 0) or one
      threshold (``thr`` = 1: ``layer``, ``col`` = neuron, ``value``); taken only when no image
      is in flight (``ready`` low otherwise); a threshold takes one cycle, a cell two.
    """

    def __init__(self, cells, thresholds, *, lanes, output: str = "priority"):
        if not isinstance(cells, (list, tuple)) or not cells or len(cells) != len(thresholds):
            raise ValueError("Folded network needs one cell array and one threshold vector per layer")
        if output not in OUTPUT_MODES:
            raise ValueError(f"Output stage must be 'priority' or 'argmax', not {output!r}")
        lanes = list(lanes) if isinstance(lanes, (list, tuple)) else [lanes] * len(cells)
        if len(lanes) != len(cells):
            raise ValueError(f"Folded network needs one lane count per layer ({len(cells)}), not {len(lanes)}")
        self.layers = [FoldedLayer(c, t, n) for c, t, n in zip(cells, thresholds, lanes)]
        self.output = output
        self.arch = (self.layers[0].n_in,) + tuple(layer.n_out for layer in self.layers)
        # cycles per image, steady state: the slowest layer's pass (depth reads + 1 cycle of read
        # latency), its result handed on, and the start of its next pass
        self.interval = max(layer.depth for layer in self.layers) + 3
        lw = _bits(len(self.layers))
        self.wr_layout = data.StructLayout({
            "layer": lw, "thr": 1, "row": _bits(max(self.arch[:-1])), "col": _bits(max(self.arch[1:])),
            "value": signed(max(layer.tw for layer in self.layers))})
        self.out_layout = data.StructLayout({"cls": _bits(self.arch[-1]), "hit": 1})
        super().__init__({
            "i": In(stream.Signature(self.arch[0])),
            "o": Out(stream.Signature(self.out_layout)),
            "wr": In(stream.Signature(self.wr_layout)),
        })

    def elaborate(self, platform):
        m = Module()
        for k, layer in enumerate(self.layers):
            m.submodules[f"layer{k}"] = layer
        first, last = self.layers[0], self.layers[-1]
        all_idle = Signal()
        m.d.comb += all_idle.eq(Cat(*(layer.idle for layer in self.layers)).all())

        # image in -> layer 0; layer k's result -> layer k+1 when that one is idle
        m.d.comb += [first.x.eq(self.i.payload), first.start.eq(self.i.valid & ~self.wr.valid),
                     self.i.ready.eq(first.idle & ~self.wr.valid)]
        for prev, nxt in zip(self.layers, self.layers[1:]):
            m.d.comb += [nxt.x.eq(prev.fires), nxt.start.eq(prev.valid), prev.take.eq(prev.valid & nxt.idle)]

        result = Signal(self.out_layout)
        m.d.comb += result.cls.eq(attach_output_stage(m, self.output, last))
        m.d.comb += [result.hit.eq(last.fires.any()), self.o.payload.eq(result), self.o.valid.eq(last.valid),
                     last.take.eq(self.o.ready)]

        # writes, when nothing is in flight (images wait while a write is offered)
        w = self.wr.payload
        m.d.comb += self.wr.ready.eq(all_idle)
        for k, layer in enumerate(self.layers):
            here = self.wr.valid & all_idle & (w.layer == k)
            m.d.comb += [
                layer.cell_we.eq(here & ~w.thr), layer.cell_row.eq(w.row), layer.cell_col.eq(w.col),
                layer.cell_bit.eq(w.value[0]),
                layer.thr_we.eq(here & w.thr), layer.thr_index.eq(w.col), layer.thr_value.eq(w.value),
            ]
        return m
