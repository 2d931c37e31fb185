"""Event-driven layers of the emulation twin: only the active inputs are read.

A dense fold reads every weight bit of a layer for every image. A binary layer's input is
sparse, though: a binarised MNIST crop has about 100 of its 400 pixels set, and a hidden layer
about half its neurons. Since ``S_j = 2*popcount(x AND c_j) - popcount(x)``, a column only
needs the cells of the rows whose input is 1. An :class:`SparseLayer` therefore reads *rows*:

* the inputs are dealt to ``rows`` row lanes (input ``i`` to lane ``i % rows``, slot
  ``i // rows``); each lane keeps its rows' cells, a row's columns in one word, in small
  memories of its own (LUT RAM on an ECP5): one per group of 16 columns, each beside its
  columns' counters, so that the wiring stays local;
* each cycle every lane finds its lowest active input that is still pending (a priority
  encoder over its slots), reads that row and clears the bit; the ``rows`` words read in one
  cycle are counted per column and accumulated;
* so an image takes ``max(1, max over lanes of the lane's active inputs)`` cycles
  (:func:`image_cycles`): data dependent, about 5 cycles on the MNIST test set with 32 lanes
  on the 400 inputs, against 400 for one input row per cycle.

One set of pending masks and priority encoders makes the decisions. The column groups run as
a systolic chain: the lanes' row addresses (and the tags that travel with the reads) reach
group c one cycle after group c - 1, so group c reads group 0's rows c cycles later, and
registers line the groups' results up before the queue (``result_delay``). No signal has to
reach every group in one cycle: on a chip the size of an ECP5-85F, one such net took up to
20 ns of routing.

The layer copies its input into the lanes' pending masks when it starts an image, so the
producer is free at once, and starts the next image in the cycle of the last read. Results
go through a queue of ``queue`` entries; a layer starts an image only while the queue has a
place for its result, so nothing is lost when the next layer is slower. The cycle model
:func:`event_model` reproduces the handshakes exactly (the testbenches compare every
accepted image's cycle with it).

Cells and thresholds stay writable while nothing is in flight, with the interface of
:class:`rrambnn.hw.folded.FoldedLayer`. A write travels through the column groups, a cycle
each: a threshold is set when the request reaches its group, a cell in ``write_cycles`` (each
group reads the lane's word and writes it back with the one bit changed). ``idle`` is a
register, so that no combinational path runs from the host's handshakes into the layers (at
100 MHz on an ECP5 the cross-chip routing of such a path alone took 19 ns).
"""

from __future__ import annotations

import numpy as np
from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory

from rrambnn.hw.crossbar import _bits, add_tree, sum_width
from rrambnn.hw.layer import threshold_width
from rrambnn.hw.interfaces import TwinLayerSignature

SEGMENT = 8  # row lanes counted before the pipeline register, the partial counts added after
COLUMN_GROUP = 16  # columns that share memories, a hop of the systolic chain
# cycles from a layer's last read to its result in the last column group, before the registers
# that line the groups' results up for the queue (see SparseLayer.result_delay; the testbenches
# check the cycle model against the RTL)
RESULT_DELAY = 4


def check_rows(rows, n_in) -> int:
    if not isinstance(rows, int) or isinstance(rows, bool) or not 1 <= rows <= n_in:
        raise ValueError(f"Row lanes must be an integer from 1 to the layer's {n_in} inputs, not {rows!r}")
    return rows


def check_queue(queue) -> int:
    if not isinstance(queue, int) or isinstance(queue, bool) or not 2 <= queue <= 16:
        raise ValueError(f"Result queue depth must be an integer from 2 to 16, not {queue!r}")
    return queue


def image_cycles(x: np.ndarray, rows: int) -> np.ndarray:
    """Cycles an event-driven layer with ``rows`` row lanes spends on each input of ``x``
    (N, n_in) in {0,1}: the most active inputs of one lane, at least 1."""
    x = np.asarray(x, dtype=np.int64)
    n, n_in = x.shape
    slots = -(-n_in // rows)
    padded = np.zeros((n, slots * rows), np.int64)
    padded[:, :n_in] = x
    return np.maximum(1, padded.reshape(n, slots, rows).sum(axis=1).max(axis=1))


def event_model(cycles: list[np.ndarray], queue: int, delays: list[int], *, images: int | None = None,
                consumer_ready=None, feed_ready=None) -> dict:
    """Cycle model of a chain of event-driven layers: ``cycles[k][n]`` are layer k's cycles
    for image n (:func:`image_cycles` of its input). Returns the cycle each image is accepted
    (``accept``), the cycle each result is first offered (``offered``), the mean ``interval``
    between acceptances, the ``latency`` of the first image, and the cycles until the last
    result was taken.

    It mirrors :class:`SparseLayer` and its result queue (``SyncFIFOBuffered``): a layer
    starts an image (and takes its input) when it is idle or in its last read and fewer than
    ``queue`` of its images are in flight (started, result not taken); the result is written
    into the queue ``delays[k]`` cycles after the last read (:attr:`SparseLayer.result_delay`),
    and the queue's output register
    takes the oldest entry from the cycle after its write on, when it is empty or being read.
    Images reach layer 0 through an input register (as in
    :class:`rrambnn.hw.folded.EventNetwork`): an image is accepted when the register is empty
    or its image starts in layer 0 in the same cycle. ``feed_ready(t)`` says whether an image is
    offered at cycle t, ``consumer_ready(t)`` whether the last layer's result is taken (default:
    always)."""
    n_layers = len(cycles)
    n = len(cycles[0]) if images is None else images
    remaining = [0] * n_layers  # reads left of the image in progress, this cycle's included
    current = [0] * n_layers
    in_flight = [0] * n_layers
    writes = [[] for _ in range(n_layers)]  # (cycle of the queue write, image)
    inner = [[] for _ in range(n_layers)]  # queued behind the output register: (readable from, image)
    head = [None] * n_layers  # the output register: the image whose result is offered
    fed, done, t = 0, 0, 0
    held = None  # the image in the input register
    accept, offered = [], [None] * n
    limit = 100 + sum(int(np.max(c[:n])) + d + 4 for c, d in zip(cycles, delays)) * max(n, 1) * 4
    while done < n:
        if t > limit:
            raise RuntimeError("event model did not finish")
        if head[-1] is not None and offered[head[-1]] is None:
            offered[head[-1]] = t
        starts = []
        for k in range(n_layers):
            can = remaining[k] <= 1 and in_flight[k] < queue
            avail = held is not None if k == 0 else head[k - 1] is not None
            starts.append(can and avail)
        taken = starts[1:] + [head[-1] is not None and (consumer_ready is None or consumer_ready(t))]
        for k in range(n_layers):
            if remaining[k] == 1:
                writes[k].append((t + delays[k], current[k]))
            if remaining[k]:
                remaining[k] -= 1
            if starts[k]:
                img = held if k == 0 else head[k - 1]
                current[k], remaining[k] = img, int(cycles[k][img])
        if starts[0]:
            held = None
        if held is None and fed < n and (feed_ready is None or feed_ready(t)):
            accept.append(t)
            held = fed
            fed += 1
        for k in range(n_layers):
            move = bool(inner[k]) and inner[k][0][0] <= t and (head[k] is None or taken[k])
            if taken[k] and k == n_layers - 1:
                done += 1
            if move:
                head[k] = inner[k].pop(0)[1]
            elif taken[k]:
                head[k] = None
            while writes[k] and writes[k][0][0] == t:
                inner[k].append((t + 1, writes[k].pop(0)[1]))
            in_flight[k] += starts[k] - taken[k]
        t += 1
    interval = (accept[-1] - accept[0]) / (n - 1) if n > 1 else float(t)
    return {"accept": accept, "offered": offered, "interval": interval, "latency": offered[0] - accept[0],
            "cycles": t}


class SparseLayer(wiring.Component):
    """One event-driven layer (see the module docstring). Ports: those of
    :class:`rrambnn.hw.folded.FoldedLayer` (:class:`rrambnn.hw.interfaces.TwinLayerSignature`):
    ``x`` with ``start`` (copied when ``consumed``), ``valid``/``take`` with ``fires`` and
    ``margins`` (``S_j - theta_j``; zero unless ``margins``), cell writes (``cell_word`` =
    lane << slot bits | slot, ``cell_pos`` = column) and threshold writes (one group,
    ``thr_lane`` = neuron) while ``idle``."""

    def __init__(self, cells: np.ndarray, thresholds: np.ndarray, rows: int, *, queue: int = 6,
                 margins: bool = True, ram_style: str | None = None):
        cells = np.asarray(cells)
        if cells.ndim != 2 or not np.isin(cells, (0, 1)).all():
            raise ValueError("Event-driven layer cells must be a 2-D array of 0/1")
        self.n_in, self.n_out = cells.shape
        self.rows = check_rows(rows, self.n_in)
        self.queue = check_queue(queue)
        if ram_style not in (None, "block", "distributed"):
            raise ValueError(f"RAM style must be None, 'block' or 'distributed', not {ram_style!r}")
        self.ram_style = ram_style
        self.keep_margins = bool(margins)
        self.slots = -(-self.n_in // self.rows)
        self.sbits = _bits(self.slots)
        self.depth = self.rows << self.sbits  # the cell address space: lane << sbits | slot
        self.width = self.n_out
        self.lanes, self.chunk = self.rows, 0  # the fold as the host link reports it (chunk 0: event-driven)
        self.sw, self.tw = sum_width(self.n_in), threshold_width(self.n_in)
        self.mw = max(self.sw, self.tw) + 1
        G, R = self.rows, self.slots
        padded = np.zeros((R * G, self.n_out), np.int64)
        padded[:self.n_in] = cells
        # lane g, slot s holds row s*G + g; a word's bit j is column j
        weights = 1 << np.arange(self.n_out, dtype=object)
        self.lane_words = [[int((padded[s * G + g].astype(object) * weights).sum()) for s in range(R)]
                           for g in range(G)]
        self.words = self.lane_words  # for the Verilog cache key
        self.thr_init = [int(v) for v in np.asarray(thresholds, np.int64)]
        self.thr_words = self.thr_init
        self.segment = SEGMENT
        # cycles from a cell write's request until the last column group has written it back
        n_groups = len(self.column_groups())
        self.write_cycles = n_groups + 2
        # cycles from an image's last read in group 0 until its result is written into the queue
        self.result_delay = RESULT_DELAY + n_groups
        super().__init__(TwinLayerSignature(self.n_in, self.n_out, mw=self.mw, depth=self.depth, width=self.width,
                                            tw=self.tw, groups=1, lanes=self.n_out))

    def cell_address(self, row: int, col: int) -> tuple[int, int]:
        """(word, bit position in the word) of cell (``row``, ``col``)."""
        return ((row % self.rows) << self.sbits | row // self.rows, col)

    def threshold_address(self, col: int) -> tuple[int, int]:
        """(group, lane) of neuron ``col``'s threshold: one group, the neuron's own register."""
        return 0, col

    def column_groups(self) -> list[tuple[int, int]]:
        """The column ranges that have their own memories (a hop of the systolic chain each)."""
        return [(lo, min(lo + COLUMN_GROUP, self.n_out)) for lo in range(0, self.n_out, COLUMN_GROUP)]

    def margin(self, j: int):
        return self.margins[j * self.mw:(j + 1) * self.mw].as_signed()

    def elaborate(self, platform):
        m = Module()
        G, R, N = self.rows, self.slots, self.n_out
        attrs = {"ram_style": self.ram_style} if self.ram_style else None
        # a memory per lane and column group (rds[c][g]: group c's columns of lane g's rows)
        spans = self.column_groups()
        rds, wrs = [], []
        for c, (lo, hi) in enumerate(spans):
            rds.append([])
            wrs.append([])
            for g in range(G):
                init = [(w >> lo) & ((1 << (hi - lo)) - 1) for w in self.lane_words[g]]
                mem = Memory(shape=hi - lo, depth=R, init=init, attrs=attrs)
                m.submodules[f"cells{g}_{c}"] = mem
                rds[c].append(mem.read_port())
                wrs[c].append(mem.write_port())

        # Only the control registers are reset: a reset that reaches every register is one net
        # across the whole chip (on the ULX3S at 100 MHz it alone took 12 ns). Cells and
        # thresholds keep their values through a reset, as the arrays' cells do.
        #
        # Writes travel down a chain through the column groups, a cycle per group. Every group
        # has its own copy of the request, registered from the copy before it: a single register
        # (or identical copies, which synthesis merges) fanned out to every group across the chip,
        # and on the ULX3S its routing alone took 19-21 ns (the cell write's address into every
        # lane's read-address mux, then the threshold value into every threshold register).
        # A threshold is written when its group's copy arrives, c + 1 cycles after the request
        # (a result's margins are formed cycles after any image that can start meanwhile). A cell
        # write's group reads the lane's word in that cycle and writes it back with the one bit
        # changed in the cycle after: ``write_cycles`` in all.
        w_lane = self.cell_word[self.sbits:] if G > 1 else Const(0, 1)
        w_slot = self.cell_word[:self.sbits]
        prev = {"we": self.cell_we, "lane": w_lane, "slot": w_slot, "pos": self.cell_pos, "bit": self.cell_bit,
                "twe": self.thr_we, "tlane": self.thr_lane, "tvalue": self.thr_value}
        chain = []
        for c, (lo, hi) in enumerate(spans):
            k = {"read": Signal(name=f"cell_write_read_{c}"), "pending": Signal(name=f"cell_write_pending_{c}"),
                 "lane": Signal(_bits(G), name=f"cell_write_lane_{c}", reset_less=True),
                 "slot": Signal(self.sbits, name=f"cell_write_slot_{c}", reset_less=True),
                 "pos": Signal.like(self.cell_pos, name=f"cell_write_pos_{c}", reset_less=True),
                 "bit": Signal(name=f"cell_write_bit_{c}", reset_less=True),
                 # the group's columns that take the bit (one-hot, or none)
                 "sel": Signal(hi - lo, name=f"cell_write_sel_{c}", reset_less=True),
                 "twe": Signal(name=f"thr_write_{c}"),
                 "tlane": Signal.like(self.thr_lane, name=f"thr_write_lane_{c}", reset_less=True),
                 "tvalue": Signal.like(self.thr_value, name=f"thr_write_value_{c}", reset_less=True)}
            m.d.sync += [k["read"].eq(prev["we"]), k["pending"].eq(k["read"])]
            m.d.sync += [k[f].eq(prev[f]) for f in ("twe", "tlane", "tvalue")]
            with m.If(prev["we"]):
                m.d.sync += [k[f].eq(prev[f]) for f in ("lane", "slot", "pos", "bit")]
                m.d.sync += k["sel"].eq(Cat(*(prev["pos"] == j for j in range(lo, hi))))
            chain.append(k)
            prev = {"we": k["read"], **{f: k[f] for f in ("lane", "slot", "pos", "bit", "twe", "tlane", "tvalue")}}
        writing = Cat(*(k[f] for k in chain for f in ("read", "pending", "twe"))).any()

        # thresholds: one register per neuron, in its column group
        theta = [Signal(signed(self.tw), init=v, name=f"theta{j}", reset_less=True) for j, v in enumerate(self.thr_init)]
        for c, (lo, hi) in enumerate(spans):
            for j in range(lo, hi):
                with m.If(chain[c]["twe"] & (chain[c]["tlane"] == j)):
                    m.d.sync += theta[j].eq(chain[c]["tvalue"])

        # images in flight (started, result not yet taken): at most ``queue``, so every result has
        # a place in the queue. One copy of the lanes' pending masks and priority encoders makes
        # the decisions. The column groups run as a systolic chain: what group c - 1 read a cycle
        # ago (each lane's row address and whether it has one, and the tags that travel with the
        # reads) reaches group c through registers, so group c reads group 0's rows c cycles
        # later (writes reach it c cycles later too), and no net has to reach every group in one
        # cycle; registers line the groups' results up before the queue. An image never starts
        # during a write: the network offers writes only while every layer is idle, and holds
        # images back meanwhile.
        released = Signal()
        m.d.comb += released.eq(self.valid & self.take)
        ctl = {name: Signal(name=f"a_{name}", reset_less=name in ("final", "first"))
             for name in ("busy", "final", "last", "started", "first")}
        ctl["in_flight"] = Signal(range(self.queue + 1), name="a_in_flight")
        masks = [Signal(R, name=f"a_pending{g}", reset_less=True) for g in range(G)]
        x_pad = Cat(self.x, Const(0, R * G - self.n_in))
        new_masks = [Cat(*(x_pad[s * G + g] for s in range(R))) for g in range(G)]
        m.d.comb += [ctl["last"].eq(ctl["busy"] & ctl["final"]),
                     ctl["started"].eq(self.start & (~ctl["busy"] | ctl["last"]) & (ctl["in_flight"] < self.queue))]
        m.d.sync += ctl["in_flight"].eq(ctl["in_flight"] + ctl["started"] - released)
        rows_read = {"busy": ctl["busy"], "first": ctl["first"], "last": ctl["last"]}  # group 0's reads
        found, index, rest = [], [], []
        for g in range(G):
            p = masks[g]
            # log-depth logic, no carry chains: the lowest pending row, and the others
            below = [Const(0, 1)] + [p[:s].any() for s in range(1, R)]
            lowest = [p[s] & ~below[s] for s in range(R)]
            r = Signal(R, name=f"a_rest{g}")
            m.d.comb += r.eq(Cat(*(p[s] & below[s] for s in range(R))))
            idx = Signal(self.sbits, name=f"a_row{g}")
            for bit in range(self.sbits):
                hot = [lowest[s] for s in range(R) if s >> bit & 1]
                m.d.comb += idx[bit].eq(Cat(*hot).any() if hot else 0)
            found.append(p.any())
            index.append(idx)
            rest.append(r)
        rows_read["found"] = Cat(*found)
        rows_read["index"] = Cat(*index)
        # the last read: every lane has at most one pending row (at most two before this read)
        with m.If(ctl["started"]):
            m.d.sync += [mk.eq(v) for mk, v in zip(masks, new_masks)]
            m.d.sync += [ctl["busy"].eq(1), ctl["first"].eq(1),
                         ctl["final"].eq(Cat(*(~at_least(v, 2) for v in new_masks)).all())]
        with m.Elif(ctl["busy"]):
            m.d.sync += [mk.eq(v) for mk, v in zip(masks, rest)]
            m.d.sync += [ctl["busy"].eq(~ctl["final"]), ctl["first"].eq(0),
                         ctl["final"].eq(Cat(*(~at_least(v, 3) for v in masks)).all())]
        reads = [rows_read]  # reads[c]: what group c reads this cycle
        for c in range(1, len(spans)):
            hop = {name: Signal(len(v), name=f"a_{name}_{c}", reset_less=name in ("first", "index"))
                   for name, v in rows_read.items()}
            m.d.sync += [hop[name].eq(reads[-1][name]) for name in hop]
            reads.append(hop)
        for c in range(len(spans)):
            for g in range(G):
                idx = reads[c]["index"][g * self.sbits:(g + 1) * self.sbits]
                m.d.comb += [rds[c][g].addr.eq(Mux(chain[c]["read"], chain[c]["slot"], idx)),
                             rds[c][g].en.eq(~chain[c]["pending"])]
        # ``idle`` is registered (from this cycle's state and what starts now: never idle too
        # early), so the host's handshakes do not chain into the layers' control
        idle = Signal(init=1, name="idle_reg")
        m.d.comb += [self.consumed.eq(ctl["started"]), self.idle.eq(idle)]
        m.d.sync += idle.eq((ctl["in_flight"] == 0) & ~ctl["busy"] & ~writing & ~ctl["started"] & ~self.cell_we
                           & ~self.thr_we)

        # cell write-back (the word was read in the cycle before)
        for c, (lo, hi) in enumerate(spans):
            k = chain[c]
            for g in range(G):
                new_word = [Mux(k["sel"][i], k["bit"], rds[c][g].data[i]) for i in range(hi - lo)]
                m.d.comb += [wrs[c][g].addr.eq(k["slot"]), wrs[c][g].data.eq(Cat(*new_word)),
                             wrs[c][g].en.eq(k["pending"] & (k["lane"] == g))]

        # stage B: the rows arrive; count them per column, a segment of lanes at a time; stage C:
        # add the segments; stage D: accumulate over the image's reads (each group with its own
        # copy of the tags that travel with the reads)
        tags = ("on", "first", "last")
        col_parts = [[] for _ in range(N)]
        active_parts = [[] for _ in spans]  # per group: the active inputs, counted where used
        stage = []
        for c, (lo, hi) in enumerate(spans):
            rd = reads[c]
            b = {tag: Signal(name=f"b_{tag}_{c}") for tag in tags}
            cc = {tag: Signal(name=f"c_{tag}_{c}") for tag in tags}
            d = {tag: Signal(name=f"d_{tag}_{c}") for tag in tags}
            m.d.sync += [b["on"].eq(rd["busy"]), b["first"].eq(rd["first"]), b["last"].eq(rd["last"])]
            m.d.sync += [cc[tag].eq(b[tag]) for tag in tags] + [d[tag].eq(cc[tag]) for tag in tags]
            stage.append(d)
            b_found = Signal(G, name=f"b_found_{c}", reset_less=True)
            m.d.sync += b_found.eq(rd["found"] & rd["busy"].replicate(G))
            for s_lo in range(0, G, SEGMENT):
                s_hi = min(s_lo + SEGMENT, G)
                for j in range(lo, hi + 1):
                    column = j < hi
                    bits = [b_found[g] & (rds[c][g].data[j - lo] if column else 1) for g in range(s_lo, s_hi)]
                    part = Signal(range(s_hi - s_lo + 1), name=f"c_count{j}_{s_lo}" if column else f"c_active{c}_{s_lo}",
                                  reset_less=True)
                    m.d.sync += part.eq(add_tree(bits))
                    (col_parts[j] if column else active_parts[c]).append(part)
        totals = []
        parts = col_parts + active_parts
        names = [f"{j}" for j in range(N)] + [f"_active{c}" for c in range(len(spans))]
        for j, name in enumerate(names):
            d = stage[j // COLUMN_GROUP if j < N else j - N]
            rows_here = Signal(range(G + 1), name=f"d_count{name}", reset_less=True)
            m.d.sync += rows_here.eq(add_tree(parts[j]))
            acc = Signal(range(self.n_in + 1), name=f"acc{name}", reset_less=True)
            total = Signal(range(self.n_in + 1), name=f"e_total{name}", reset_less=True)
            running = Signal(range(self.n_in + 1), name=f"d_running{name}")
            m.d.comb += running.eq(Mux(d["first"], 0, acc) + rows_here)
            with m.If(d["on"]):
                m.d.sync += acc.eq(running)
                with m.If(d["last"]):
                    m.d.sync += total.eq(running)
            totals.append(total)

        # stage E: margins S - theta, the sense stage, per group; then registers that line the
        # groups' results up (group c's come c cycles after group 0's) before the result queue
        C = len(spans)
        fires, margins = [], []
        for c, (lo, hi) in enumerate(spans):
            word = []
            for j in range(lo, hi):
                active = totals[N + c]  # the group's own count of the active inputs
                mg = Signal(signed(self.mw), name=f"margin{j}")
                m.d.comb += mg.eq(2 * totals[j] - active - theta[j])
                word.append(mg)
            result = Cat(*(mg >= 0 for mg in word), *(mg.as_unsigned() for mg in word if self.keep_margins))
            for step in range(C - c):
                reg = Signal(len(result), name=f"e_result{c}_{step}", reset_less=True)
                m.d.sync += reg.eq(result)
                result = reg
            fires.append(result[:hi - lo])
            margins.append(result[hi - lo:])
        # the last group's results are complete the cycle after its last accumulation, and in the
        # queue one cycle later
        tot_valid = Signal(name="e_valid")
        q_valid = Signal(name="f_valid")
        m.d.sync += [tot_valid.eq(stage[-1]["on"] & stage[-1]["last"]), q_valid.eq(tot_valid)]
        width = N + (N * self.mw if self.keep_margins else 0)
        # at most queue - 1 older results wait when one is written, but SyncFIFOBuffered's w_rdy
        # counts its queue behind the output register only, so it gets one entry more
        m.submodules.results = q = SyncFIFOBuffered(width=width, depth=self.queue + 1)
        m.d.comb += [q.w_data.eq(Cat(*fires, *(margins if self.keep_margins else []))), q.w_en.eq(q_valid),
                     self.valid.eq(q.r_rdy), q.r_en.eq(self.take), self.fires.eq(q.r_data[:N])]
        if self.keep_margins:
            m.d.comb += self.margins.eq(q.r_data[N:])
        return m


def at_least(bits, k: int):
    """``bits`` has at least ``k`` ones (k = 2 or 3), as a balanced tree of small functions
    (flags "at least 1 .. k" per subtree), not a carry chain."""
    def leaf(b):
        return [b] + [Const(0, 1)] * (k - 1)

    def combine(a, b):
        one = [Const(1, 1)] + a, [Const(1, 1)] + b
        return [Cat(*(one[0][i] & one[1][n - i] for i in range(n + 1))).any() for n in range(1, k + 1)]

    nodes = [leaf(bits[i]) for i in range(len(bits))]
    while len(nodes) > 1:
        nxt = [combine(nodes[i], nodes[i + 1]) for i in range(0, len(nodes) - 1, 2)]
        if len(nodes) % 2:
            nxt.append(nodes[-1])
        nodes = nxt
    return nodes[0][k - 1]
