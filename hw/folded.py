"""The emulation twin: the whole classifier in synthesizable logic, weights in block RAM.

For FPGA prototypes the analog crossbar is replaced by a digital twin that computes the same
column sums ``S_j = 2*popcount(x AND c_j) - popcount(x)``, folded twice:

* over outputs: ``lanes`` neurons are computed side by side (a *group*);
* over inputs: a group's columns are read ``chunk`` rows at a time, and the partial popcounts
  are added up.

A layer keeps its cells in one memory of ``depth = groups * chunks`` words; word
``g*chunks + c`` holds rows ``c*chunk ..`` of columns ``g*lanes ..`` (lane ``l`` at bits
``l*chunk ..``; see :meth:`FoldedLayer.cell_address`), so one word is read per cycle and a
layer needs ``depth`` cycles per image. The thresholds sit in a second memory, one word per
group. Narrow words (a small ``chunk``) fit block RAMs of small devices; many lanes give speed.

Every layer is a pipeline (read, popcount, accumulate, threshold) that starts the next image
while the last words of the previous one are still in flight, and layers overlap, so the
network accepts one image every ``max_k depth_k`` cycles (:attr:`FoldedNetwork.interval`; the
testbenches measure it; layers of fewer than 6 words are slower, see there). Cells and thresholds stay writable while no image is in flight: a
threshold in one cycle, a cell in two (its word is read and written back with the one bit
changed), which is what the host link uses on the board.

:class:`FoldedNetwork` chains folded layers; :class:`EventNetwork` chains the event-driven
layers of :mod:`rrambnn.hw.sparse` instead (row lanes that read only the active inputs' rows).
Both are a :class:`TwinNetwork` (ports, writes, output stage); :func:`emulation_twin` builds
either from a network.
"""

from __future__ import annotations

import numpy as np
from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory

from rrambnn.gen import crossbar
from rrambnn.hw.crossbar import _bits, add_tree, column_major, sum_width
from rrambnn.hw.interfaces import CoreSignature, TwinLayerSignature
from rrambnn.hw.layer import threshold_width
from rrambnn.hw.output import attach_output_stage, check_output_stage
from rrambnn.hw.sparse import SparseLayer, event_model, image_cycles


def popcount(value, width: int):
    """Number of ones of ``value`` as a balanced adder tree (short carry chains)."""
    return add_tree([value[i] for i in range(width)]) if width else Const(0, 1)


def check_lanes(lanes, n_out) -> int:
    if not isinstance(lanes, int) or isinstance(lanes, bool) or not 1 <= lanes <= n_out:
        raise ValueError(f"Lanes must be an integer from 1 to the layer's {n_out} outputs, not {lanes!r}")
    return lanes


class FoldedLayer(wiring.Component):
    """One layer of the emulation twin.

    Images in: ``x`` with ``start``; the layer reads ``x`` over ``depth`` cycles, and the
    producer holds it until ``consumed`` (the cycle of the last read; a stream handshake).
    Result out: ``fires`` and ``margins`` (``S_j - theta_j``) held while ``valid``, released
    by ``take``. Writes
    (``cell_we`` with ``cell_word``/``cell_pos``/``cell_bit``; ``thr_we`` with
    ``thr_group``/``thr_lane``/``thr_value``; addresses from :meth:`cell_address` and
    :meth:`threshold_address`) only while ``idle``. Ports:
    :class:`rrambnn.hw.interfaces.TwinLayerSignature`."""

    def __init__(self, cells: np.ndarray, thresholds: np.ndarray, lanes: int, chunk: int | None = None,
                 segment: int = 32, ram_style: str | None = None):
        cells = np.asarray(cells)
        if cells.ndim != 2 or not np.isin(cells, (0, 1)).all():
            raise ValueError("Folded layer cells must be a 2-D array of 0/1")
        self.n_in, self.n_out = cells.shape
        self.lanes = check_lanes(lanes, self.n_out)
        self.chunk = self.n_in if chunk is None else check_chunk(chunk, self.n_in)
        if not isinstance(segment, int) or isinstance(segment, bool) or segment < 1:
            raise ValueError(f"Popcount segment must be a positive integer, not {segment!r}")
        self.segment = segment  # bits counted before the pipeline register, the rest after
        if ram_style not in (None, "block", "distributed"):
            raise ValueError(f"RAM style must be None, 'block' or 'distributed', not {ram_style!r}")
        self.ram_style = ram_style  # a synthesis hint for the cell memory (Yosys ram_style)
        self.groups = -(-self.n_out // self.lanes)
        self.chunks = -(-self.n_in // self.chunk)
        self.depth = self.groups * self.chunks
        self.width = self.lanes * self.chunk
        self.sw, self.tw = sum_width(self.n_in), threshold_width(self.n_in)
        self.mw = max(self.sw, self.tw) + 1
        L, K = self.lanes, self.chunk
        cells = np.pad(cells, ((0, self.chunks * K - self.n_in), (0, self.groups * L - self.n_out)))
        thr = np.pad(np.asarray(thresholds, np.int64) & ((1 << self.tw) - 1), (0, self.groups * L - self.n_out))[None]
        # padding cells are 0 and meet padding inputs 0: they add nothing
        self.words = [column_major(cells[c * K:(c + 1) * K, g * L:(g + 1) * L], 1)
                      for g in range(self.groups) for c in range(self.chunks)]
        self.thr_words = [column_major(thr[:, g * L:(g + 1) * L], self.tw) for g in range(self.groups)]
        super().__init__(TwinLayerSignature(self.n_in, self.n_out, mw=self.mw, depth=self.depth, width=self.width,
                                            tw=self.tw, groups=self.groups, lanes=L))

    def cell_address(self, row: int, col: int) -> tuple[int, int]:
        """(word, bit position in the word) of cell (``row``, ``col``)."""
        return ((col // self.lanes) * self.chunks + row // self.chunk,
                (col % self.lanes) * self.chunk + row % self.chunk)

    def threshold_address(self, col: int) -> tuple[int, int]:
        """(group, lane) of neuron ``col``'s threshold."""
        return col // self.lanes, col % self.lanes

    def margin(self, j: int):
        return self.margins[j * self.mw:(j + 1) * self.mw].as_signed()

    def elaborate(self, platform):
        m = Module()
        L, K, C, G, D = self.lanes, self.chunk, self.chunks, self.groups, self.depth
        attrs = {"ram_style": self.ram_style} if self.ram_style else None
        m.submodules.cells = cells = Memory(shape=self.width, depth=D, init=self.words, attrs=attrs)
        m.submodules.thresholds = thr = Memory(shape=L * self.tw, depth=G, init=self.thr_words)
        rd = cells.read_port()
        trd = thr.read_port()
        wr = cells.write_port()
        twr = thr.write_port(granularity=self.tw)

        # threshold writes: one lane of a group's word
        m.d.comb += [
            twr.addr.eq(self.thr_group),
            twr.data.eq(self.thr_value.as_unsigned().replicate(L)),
            twr.en.eq(one_hot(self.thr_we, self.thr_lane, L)),
        ]
        # cell writes: read the word now, write it back with the one bit changed next cycle;
        # the bit is selected by two registered one-hot codes (position // 16 and % 16), so
        # each bit of the new word is one 4-input function (select high, select low, bit, old)
        pending = Signal(name="cell_write_pending")
        p_word = Signal.like(self.cell_word)
        n_hi = -(-self.width // 16)
        p_hi = Signal(n_hi, name="cell_write_sel_hi")
        p_lo = Signal(16, name="cell_write_sel_lo")
        p_bit = Signal()
        m.d.sync += pending.eq(self.cell_we)
        with m.If(self.cell_we):
            m.d.sync += [p_word.eq(self.cell_word), p_bit.eq(self.cell_bit),
                         p_hi.eq(Const(1, n_hi) << (self.cell_pos >> 4)), p_lo.eq(Const(1, 16) << self.cell_pos[:4])]
        new_word = [Mux(p_hi[i // 16] & p_lo[i % 16], p_bit, rd.data[i]) for i in range(self.width)]
        m.d.comb += [wr.addr.eq(p_word), wr.en.eq(pending), wr.data.eq(Cat(*new_word))]

        # images in flight (started, result not yet released by the consumer): at most two, so
        # a finished result always has a place (the shift register, then the output register)
        in_flight = Signal(range(3))
        started = Signal()
        m.d.sync += in_flight.eq(in_flight + started - (self.valid & self.take))

        # stage A: read one word per cycle, straight from the input, which the producer holds
        # until ``consumed`` (the cycle of the last word); the next image can start right after
        busy = Signal(name="a_busy")  # in the middle of an image (step > 0)
        issuing = Signal(name="a_issuing")
        step = Signal(range(D), name="a_word")
        g = Signal(range(G), name="a_group")
        c = Signal(range(C), name="a_chunk")
        m.d.comb += [
            started.eq(self.start & ~busy & (in_flight < 2) & ~pending & ~self.cell_we),
            issuing.eq(busy | started),
            self.consumed.eq(issuing & (step == D - 1)),
            self.idle.eq((in_flight == 0) & ~busy & ~pending),
            rd.addr.eq(Mux(self.cell_we, self.cell_word, step)),
            trd.addr.eq(g),
            # never read a word while it is written: block RAMs need no read-during-write logic
            rd.en.eq(~pending), trd.en.eq(~self.thr_we),
        ]
        with m.If(self.consumed):
            m.d.sync += [busy.eq(0), step.eq(0), g.eq(0), c.eq(0)]
        with m.Elif(issuing):
            m.d.sync += [busy.eq(1), step.eq(step + 1)]
            with m.If(c == C - 1):
                m.d.sync += [c.eq(0), g.eq(g + 1)]
            with m.Else():
                m.d.sync += c.eq(c + 1)

        # stage B: the word arrives with its input chunk
        x_chunk = Signal(K, name="b_x_chunk", reset_less=True)
        x_pad = Cat(self.x, Const(0, C * K - self.n_in))
        m.d.sync += x_chunk.eq(x_pad.word_select(c, K) if C > 1 else x_pad)
        tags = ("v", "first", "lastc", "lastg")
        b = {t: Signal(name=f"b_{t}") for t in tags}
        m.d.sync += [b["v"].eq(issuing), b["first"].eq(c == 0), b["lastc"].eq(c == C - 1), b["lastg"].eq(g == G - 1)]

        # stage C: registered partial popcounts per lane, and of the input chunk itself (the
        # active rows), and the thresholds; accumulate over chunks
        cst = {t: Signal(name=f"c_{t}") for t in tags}
        theta_c = Signal(L * self.tw, name="theta_c", reset_less=True)
        m.d.sync += [cst[t].eq(b[t]) for t in tags]
        m.d.sync += theta_c.eq(trd.data)
        # the popcounts are split at the register: segments counted before it, added after
        pcs = []
        for lane in range(L + 1):  # lane L: the active rows
            word = rd.data[lane * K:(lane + 1) * K] if lane < L else Const(-1, K)
            hits = x_chunk & word
            segs = []
            for lo in range(0, K, self.segment):
                width = min(self.segment, K - lo)
                seg = Signal(range(width + 1), name=f"c_popcount{lane}_{lo}" if lane < L else f"c_active_{lo}",
                             reset_less=True)
                m.d.sync += seg.eq(popcount(hits[lo:lo + width], width))
                segs.append(seg)
            pcs.append(add_tree(segs))

        # stage D: a group's totals; margin S - theta; shift into the result
        d_v, d_lastg = Signal(name="d_v"), Signal(name="d_lastg")
        theta_d = Signal(L * self.tw, name="theta_d", reset_less=True)
        m.d.sync += [d_v.eq(cst["v"] & cst["lastc"]), d_lastg.eq(cst["lastg"])]
        with m.If(cst["v"] & cst["lastc"]):
            m.d.sync += theta_d.eq(theta_c)
        totals = []
        for lane in range(L + 1):
            acc = Signal(range(self.n_in + 1), name=f"acc{lane}", reset_less=True)
            total = Signal(range(self.n_in + 1), name=f"d_total{lane}" if lane < L else "d_active",
                           reset_less=True)
            running_sum = Mux(cst["first"], 0, acc) + pcs[lane]
            with m.If(cst["v"]):
                m.d.sync += acc.eq(running_sum)
                with m.If(cst["lastc"]):
                    m.d.sync += total.eq(running_sum)
            totals.append(total)
        active = totals[L]
        new_fires, new_margins = [], []
        for lane in range(L):
            mg = Signal(signed(self.mw), name=f"margin{lane}")
            theta = theta_d[lane * self.tw:(lane + 1) * self.tw].as_signed()
            m.d.comb += mg.eq(2 * totals[lane] - active - theta)
            new_fires.append(mg >= 0)
            new_margins.append(mg.as_unsigned())

        # results: a shift register filled group by group, then the output register
        fires_sr = Signal(G * L, reset_less=True)
        margins_sr = Signal(G * L * self.mw, reset_less=True)
        sr_full = Signal()
        out_fires = Signal(self.n_out, name="fires_out", reset_less=True)
        out_margins = Signal(self.n_out * self.mw, name="margins_out", reset_less=True)
        m.d.comb += [self.fires.eq(out_fires), self.margins.eq(out_margins)]
        move = Signal()  # before the shift: a group finishing in the same cycle keeps sr_full
        m.d.comb += move.eq(sr_full & (~self.valid | self.take))
        with m.If(move):
            m.d.sync += [out_fires.eq(fires_sr[:self.n_out]), out_margins.eq(margins_sr[:self.n_out * self.mw]),
                         self.valid.eq(1), sr_full.eq(0)]
        with m.Elif(self.valid & self.take):
            m.d.sync += self.valid.eq(0)
        with m.If(d_v):
            m.d.sync += [fires_sr.eq(Cat(fires_sr[L:], *new_fires)),
                         margins_sr.eq(Cat(margins_sr[L * self.mw:], *new_margins))]
            with m.If(d_lastg):
                m.d.sync += sr_full.eq(1)
        return m


def one_hot(we, index, width):
    """Write enable of one element: bit ``index`` of ``width`` when ``we``."""
    return Mux(we, Const(1, width) << index, 0)


def check_chunk(chunk, n_in) -> int:
    if not isinstance(chunk, int) or isinstance(chunk, bool) or not 1 <= chunk <= n_in:
        raise ValueError(f"Chunk must be an integer from 1 to the layer's {n_in} inputs, not {chunk!r}")
    return chunk


def per_layer(name: str, value, n: int, what: str = "Folded network") -> list:
    """One value for every layer: a list of ``n``, or one value (None too) for all."""
    values = list(value) if isinstance(value, (list, tuple)) else [value] * n
    if len(values) != n:
        raise ValueError(f"{what} needs one {name} per layer ({n}), not {len(values)}")
    return values


def handshake_model(depths, images: int = 48, window: int = 24) -> tuple[float, int]:
    """(interval, latency) of layers of these depths, free-flowing: a cycle model of
    :class:`FoldedLayer`'s control (start, reads, the three pipeline stages, the shift register
    and the output register, at most two images per layer), nothing else. ``interval``: mean
    cycles between images taken; ``latency``: cycles from the first image offered to its result
    offered.

    A layer starts its next image right after its last read, so the slowest layer sets the
    pace, but its result register stays busy until the next layer has read it: layers of equal
    depth D alternate D and D + 4 (mean D + 2), and layers shorter than ~5 words wait for
    their pipeline."""
    n = len(depths)
    busy, step, in_flight, sr_full, valid = [0] * n, [0] * n, [0] * n, [0] * n, [0] * n
    pending = [set() for _ in range(n)]  # cycles at which an image's last word is in stage D
    taken, t, latency = [], 0, None
    while len(taken) < images and t < images * 4 * max(depths) + 1000:
        if latency is None and valid[-1]:
            latency = t
        start = [1] + valid[:-1]
        started = [start[k] and not busy[k] and in_flight[k] < 2 for k in range(n)]
        issuing = [busy[k] or started[k] for k in range(n)]
        consumed = [issuing[k] and step[k] == depths[k] - 1 for k in range(n)]
        take = consumed[1:] + [1]
        if consumed[0]:
            taken.append(t)
        for k in range(n):
            released = valid[k] and take[k]
            move = sr_full[k] and (not valid[k] or take[k])
            in_flight[k] += started[k] - released
            if move:
                valid[k], sr_full[k] = 1, 0
            elif released:
                valid[k] = 0
            if t in pending[k]:
                pending[k].discard(t)
                sr_full[k] = 1
            if consumed[k]:
                pending[k].add(t + 3)
                busy[k], step[k] = 0, 0
            elif issuing[k]:
                busy[k], step[k] = 1, step[k] + 1
        t += 1
    steady = taken[-window - 1:]
    return (steady[-1] - steady[0]) / (len(steady) - 1), latency


class TwinNetwork(wiring.Component):
    """The classifier for the FPGA: twin layers in a chain, an output stage, streams. The
    common part of :class:`FoldedNetwork` (folded layers) and :class:`EventNetwork`
    (event-driven layers); :func:`emulation_twin` builds the one a network asks for.

    Ports (:class:`rrambnn.hw.interfaces.CoreSignature`, shared with the macro periphery):

    * ``i``: image bits in; ``o``: ``cls`` and ``hit`` out (valid/ready); ``idle``: no image in
      flight and no result waiting.
    * ``wr``: writes one cell (``thr`` = 0: ``layer``, ``addr`` = word, ``pos`` = bit in the
      word, ``value`` bit 0) or one threshold (``thr`` = 1: ``layer``, ``addr`` = group,
      ``pos`` = lane, ``value``); addresses from :meth:`cell_write` / :meth:`threshold_write`.
      Taken only when no image is in flight (images wait while a write is offered); a
      threshold takes one cycle, a cell two (three in an event-driven layer).

    A subclass builds the layers (ports of :class:`rrambnn.hw.interfaces.TwinLayerSignature`;
    ``cell_address``, ``threshold_address``, ``lanes``, ``chunk``, ``depth``, ``width``, ``tw``),
    sets :attr:`interval` and :attr:`latency`, and adds the input stage (:meth:`input_stage`)
    and the cycle model (:meth:`timing`).
    """

    kind = 0  # for the host link's query reply: an emulation twin
    event = False  # event-driven layers (EventNetwork)
    what = "Emulation twin"  # in error messages

    @classmethod
    def check_network(cls, cells, thresholds, output) -> int:
        """Validate the arrays and the output stage; return the number of layers."""
        if not isinstance(cells, (list, tuple)) or not cells or len(cells) != len(thresholds):
            raise ValueError(f"{cls.what} needs one cell array and one threshold vector per layer")
        check_output_stage(output)
        return len(cells)

    def __init__(self, cells, thresholds, layers, output: str):
        """``layers``: the twin's layers, built by the subclass from ``cells`` and ``thresholds``
        (checked by :meth:`check_network`)."""
        self.layers = layers
        self.cells = [np.asarray(c) for c in cells]
        self.thresholds = [np.asarray(t, np.int64) for t in thresholds]
        self.output = output
        self.arch = (self.layers[0].n_in,) + tuple(layer.n_out for layer in self.layers)
        self.wr_layout = data.StructLayout({
            "layer": _bits(len(self.layers)), "thr": 1,
            "addr": _bits(max(layer.depth for layer in self.layers)),
            "pos": _bits(max(layer.width for layer in self.layers)),
            "value": signed(max(layer.tw for layer in self.layers))})
        signature = CoreSignature(self.arch[0], self.arch[-1], self.wr_layout)
        self.out_layout = signature.out_layout
        super().__init__(signature)

    def layer_inputs(self, x: np.ndarray) -> list[np.ndarray]:
        """Every layer's input bits for the images ``x`` (N, n_in), from the twin's initial cells
        and thresholds."""
        a = [np.asarray(x, np.int64)]
        for c, t in zip(self.cells[:-1], self.thresholds[:-1]):
            a.append((crossbar.read(a[-1], 2 * c.astype(np.int8) - 1) >= t).astype(np.int64))
        return a

    def timing(self, x: np.ndarray, **kw) -> dict:
        """The cycle model for the images ``x`` fed back to back (see the subclasses)."""
        raise NotImplementedError

    def fold(self):
        """(lanes, chunk) per layer; an event-driven layer reports (row lanes, 0)."""
        return [(layer.lanes, layer.chunk) for layer in self.layers]

    def cell_write(self, layer: int, row: int, col: int, value: int) -> dict:
        """The ``wr`` payload that sets cell (``row``, ``col``) of ``layer`` to ``value``."""
        word, pos = self.layers[layer].cell_address(row, col)
        return {"layer": layer, "thr": 0, "addr": word, "pos": pos, "value": int(value) & 1}

    def threshold_write(self, layer: int, col: int, value: int) -> dict:
        """The ``wr`` payload that sets neuron ``col``'s threshold of ``layer`` to ``value``."""
        group, lane = self.layers[layer].threshold_address(col)
        return {"layer": layer, "thr": 1, "addr": group, "pos": lane, "value": int(value)}

    def input_stage(self, m: Module, all_idle: Signal) -> None:
        """Feed ``i`` to layer 0 and drive ``all_idle`` (every layer idle, nothing held)."""
        raise NotImplementedError

    def elaborate(self, platform):
        m = Module()
        for k, layer in enumerate(self.layers):
            m.submodules[f"layer{k}"] = layer
        last = self.layers[-1]
        all_idle = Signal()
        self.input_stage(m, all_idle)
        m.d.comb += self.idle.eq(all_idle)
        # layer k's result is layer k+1's input: held until taken (a folded layer reads it in
        # place; an event-driven one copies it)
        for prev, nxt in zip(self.layers, self.layers[1:]):
            m.d.comb += [nxt.x.eq(prev.fires), nxt.start.eq(prev.valid), prev.take.eq(nxt.consumed)]

        result = Signal(self.out_layout)
        m.d.comb += result.cls.eq(attach_output_stage(m, self.output, last))
        m.d.comb += [result.hit.eq(last.fires.any()), self.o.payload.eq(result), self.o.valid.eq(last.valid),
                     last.take.eq(self.o.ready)]

        # writes, when nothing is in flight
        w = self.wr.payload
        m.d.comb += self.wr.ready.eq(all_idle)
        for k, layer in enumerate(self.layers):
            here = self.wr.valid & all_idle & (w.layer == k)
            m.d.comb += [
                layer.cell_we.eq(here & ~w.thr), layer.cell_word.eq(w.addr), layer.cell_pos.eq(w.pos),
                layer.cell_bit.eq(w.value[0]),
                layer.thr_we.eq(here & w.thr), layer.thr_group.eq(w.addr), layer.thr_lane.eq(w.pos),
                layer.thr_value.eq(w.value),
            ]
        return m


class FoldedNetwork(TwinNetwork):
    """The emulation twin of folded layers (:class:`FoldedLayer`: ``lanes`` neurons side by
    side, inputs read ``chunks`` rows at a time; per layer, or one value for all). Ports as
    :class:`TwinNetwork`. It takes an image every :attr:`interval` cycles, free-flowing."""

    what = "Folded network"

    def __init__(self, cells, thresholds, *, lanes, chunks=None, output: str = "priority", segment: int = 32,
                 ram_style: str | None = None):
        n = self.check_network(cells, thresholds, output)
        if lanes is None:
            raise ValueError("A folded twin needs lanes (or rows, for event-driven layers)")
        lanes = per_layer("lane count", lanes, n, self.what)
        chunks = per_layer("chunk size", chunks, n, self.what)
        layers = [FoldedLayer(c, t, ln, k, segment, ram_style)
                  for c, t, ln, k in zip(cells, thresholds, lanes, chunks)]
        # cycles per image, free-flowing, from a cycle model of the layers' handshakes
        self.interval, self.latency = handshake_model([layer.depth for layer in layers])
        super().__init__(cells, thresholds, layers, output)

    def timing(self, x: np.ndarray, **kw) -> dict:
        """A folded twin takes every image in ``interval`` cycles, whatever the images."""
        return {"interval": self.interval, "latency": self.latency}

    def input_stage(self, m, all_idle):
        # image in -> layer 0, which reads it where it is (the stream holds it until ready:
        # the last read)
        first = self.layers[0]
        m.d.comb += [all_idle.eq(Cat(*(layer.idle for layer in self.layers)).all()),
                     first.x.eq(self.i.payload), first.start.eq(self.i.valid & ~self.wr.valid),
                     self.i.ready.eq(first.consumed)]


class EventNetwork(TwinNetwork):
    """The emulation twin of event-driven layers (:class:`rrambnn.hw.sparse.SparseLayer`:
    ``rows`` row lanes per layer, or one value for all, that read only the active inputs' rows;
    result queues of ``queue`` entries; an input register before layer 0). Ports as
    :class:`TwinNetwork`. The pace depends on the images, see :meth:`timing`; ``interval`` and
    ``latency`` are the worst case, every input active."""

    event = True
    what = "Event-driven network"

    def __init__(self, cells, thresholds, *, rows, output: str = "priority", ram_style: str | None = None,
                 queue: int = 6):
        n = self.check_network(cells, thresholds, output)
        rows = per_layer("row lane count", rows, n, self.what)
        layers = [SparseLayer(c, t, r, queue=queue, margins=k == n - 1, ram_style=ram_style)
                  for k, (c, t, r) in enumerate(zip(cells, thresholds, rows))]
        self.queue = layers[0].queue
        # data dependent; these are the worst case (every input active), see timing()
        worst = [np.array([layer.slots]) for layer in layers]
        delays = [layer.result_delay for layer in layers]
        self.latency = event_model(worst, self.queue, delays, images=1)["latency"]
        accept = event_model([np.repeat(w, 96) for w in worst], self.queue, delays)["accept"]
        self.interval = (accept[-1] - accept[48]) / 47  # steady state
        super().__init__(cells, thresholds, layers, output)

    def timing(self, x: np.ndarray, **kw) -> dict:
        """The cycle model (:func:`rrambnn.hw.sparse.event_model`, ``kw`` passed on) for the
        images ``x`` fed back to back: ``accept`` and ``offered`` cycles, mean ``interval``,
        ``latency``, and per layer the mean and worst cycles per image."""
        cycles = [image_cycles(a, layer.rows) for a, layer in zip(self.layer_inputs(x), self.layers)]
        res = event_model(cycles, self.queue, [layer.result_delay for layer in self.layers], **kw)
        res["layer_cycles"] = [float(c.mean()) for c in cycles]
        res["worst_cycles"] = [int(c.max()) for c in cycles]
        return res

    def input_stage(self, m, all_idle):
        # image in -> an input register -> layer 0, so that the producer's handshake and the
        # layer's start (which loads the lanes' masks) do not chain; writes go first
        first = self.layers[0]
        held = Signal(self.arch[0], name="input_image", reset_less=True)
        full = Signal(name="input_full")
        load = Signal()
        # no image is taken while a cell write is under way (the longest layer's write_cycles)
        hold = max(layer.write_cycles for layer in self.layers) - 1
        recent = Signal(hold, name="writes_under_way")
        m.d.sync += recent.eq(Cat(self.wr.valid & self.wr.ready, recent[:-1]))
        m.d.comb += [self.i.ready.eq((~full | first.consumed) & ~self.wr.valid & ~recent.any()),
                     load.eq(self.i.valid & self.i.ready), first.x.eq(held), first.start.eq(full)]
        with m.If(load):
            m.d.sync += [held.eq(self.i.payload), full.eq(1)]
        with m.Elif(first.consumed):
            m.d.sync += full.eq(0)
        m.d.comb += all_idle.eq(Cat(*(layer.idle for layer in self.layers), ~full).all())


def emulation_twin(net, *, lanes=None, chunks=None, rows=None, output: str | None = None, segment: int = 32,
                   ram_style: str | None = None, queue: int = 6) -> TwinNetwork:
    """The emulation twin of a binary network ``net`` (its ``cells``, ``thresholds`` and
    ``output_mode``): a :class:`FoldedNetwork` (``lanes``, ``chunks``) or, with ``rows``, an
    :class:`EventNetwork`. Every twin is built here: the board flow, the host, the testbenches."""
    if rows is not None:
        if lanes is not None or chunks is not None:
            raise ValueError("An event-driven twin takes row lanes (rows), not lanes or chunks")
        return EventNetwork(net.cells, net.thresholds, rows=rows, output=output or net.output_mode,
                            ram_style=ram_style, queue=queue)
    return FoldedNetwork(net.cells, net.thresholds, lanes=lanes, chunks=chunks, output=output or net.output_mode,
                         segment=segment, ram_style=ram_style)
