"""The self-training chip: the training chip plus a trainer that runs the whole
step of :mod:`rrambnn.gen.online_nbit` on chip.

:class:`Trainer` takes samples (image bits, label) on ``train`` and, per sample:

1. **forward** - feeds the image into the chip's bit-serial datapath and takes the result
   (hidden codes ``act0``, output sums ``sums``);
2. **key** - ``key = mix32(seed ^ mix32(t))``, t the sample counter (2 cycles);
3. **output error** - per output k a binary search over the output ramp T2 (m cycles) gives
   ``y_k``; ``eq_k = sat_E(round((H [k == label] - y_k) / 2^es))``;
4. **backward** - if any ``eq_k`` is non-zero: 2 (e - 1) transposed reads of the output layer,
   most significant error bit first, one read driven by the columns whose error is positive
   with that bit set and one by the negative ones: ``g = 2 g + R(P) - R(N)`` per hidden row,
   so ``g_j = sum_k w2_jk eq_k`` comes from the arrays;
5. **hidden steps** - one hidden row per cycle: ``delta_j = sat_E(round(g_j h_j (H - h_j) /
   2^sd))`` and ``step_j = SR(delta_j, s1, draw(t, 0, j))``;
6. **updates** - a rank-1 command (layer 0, the image, the steps) if a step is non-zero and a
   pixel is set; then for every hidden row with ``h_j != 0`` and output with ``eq_k != 0`` (row
   by row) ``d = sat_U(SR(h_j eq_k, s2, draw(t, 1, j n_out + k)))`` and, if non-zero, an element
   command (layer 1, j, k, d). Each command goes to the weight-update controller, which the
   trainer waits for (write-verify, restore) before it goes on.

``SR(v, s, r) = floor((v + (r >> (32 - s))) / 2^s)``, ``mix32`` and ``draw`` are those of
:mod:`rrambnn.gen.online_nbit`. The learning rate's shifts are ``s = min(31, base + lr_decay)``:
``lr_decay`` is a port the host raises by one every ``decay`` epochs (the schedule; no arithmetic
of the step). :func:`sample_cycles` is the exact cycle count of a step.
"""

from __future__ import annotations

from amaranth import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from rrambnn.hw.crossbar import _bits
from rrambnn.hw.output import PriorityEncoder

MIX_A, MIX_B = 0x7FEB352D, 0x846CA68B
MAX_SHIFT = 31


def mix32(x):
    """The 32-bit finaliser of the draws, as logic (same as :func:`rrambnn.gen.online_nbit.mix32`)."""
    x = x[:32]
    x = x ^ (x >> 16)
    x = (x * MIX_A)[:32]
    x = x ^ (x >> 15)
    x = (x * MIX_B)[:32]
    return x ^ (x >> 16)


def _signed_width(lo: int, hi: int) -> int:
    """Two's-complement width holding every integer in [lo, hi]."""
    return max(max(hi, 0).bit_length(), max(-lo - 1, 0).bit_length()) + 1


def _round_shift(v, s: int):
    """round(v / 2^s), halves up (s <= 0: v * 2^-s), for a signed value and a constant s."""
    return (v + (1 << (s - 1))) >> s if s > 0 else v << -s


def _saturate(m, dst, v, limit: int):
    with m.If(v > limit):
        m.d.comb += dst.eq(limit)
    with m.Elif(v < -limit):
        m.d.comb += dst.eq(-limit)
    with m.Else():
        m.d.comb += dst.eq(v)


def _stochastic_round(v, s, r):
    """floor((v + top s bits of r) / 2^s) with a run-time s (0..31)."""
    return (v + (r >> (32 - s).as_unsigned())) >> s


class Trainer(wiring.Component):
    """The trainer of a self-training chip of ``arch`` (n_in, n_hid, n_out) under
    the rule ``ncfg`` (:class:`rrambnn.gen.online_nbit.NbitConfig`): see the module docstring.

    ``out_layout``: the chip's result layout (with ``act0`` and ``sums``); ``sum_width``: the
    output sums' width; ``tsum_width``: the transposed read's row-sum width; ``cmd_layout``:
    the weight-update controller's command layout."""

    def __init__(self, arch, ncfg, *, out_layout, sum_width: int, tsum_width: int, cmd_layout):
        if len(arch) != 3:
            raise ValueError(f"The self-training chip trains networks with one hidden layer, not {arch!r}")
        s1, s2 = ncfg.shifts(1)
        if s1 < 0 or s2 < 0:
            raise ValueError(f"The self-training chip needs learning-rate shifts >= 0, not {s1} and {s2} "
                             f"(raise the learning-rate shift)")
        self.arch, self.ncfg = tuple(arch), ncfg
        self.s1, self.s2 = s1, s2
        self.sum_width, self.tsum_width = sum_width, tsum_width
        self.out_layout, self.cmd_layout = out_layout, cmd_layout
        n_in, n_hid, n_out = arch
        self.train_layout = data.StructLayout({"image": n_in, "label": _bits(n_out)})
        super().__init__({
            "train": In(stream.Signature(self.train_layout)),
            "lr_decay": In(5),
            "start_ok": In(1),  # the chip is idle: no image in flight, no result waiting
            "img": Out(stream.Signature(n_in * ncfg.m)),
            "res": In(stream.Signature(out_layout)),
            "upd": Out(stream.Signature(cmd_layout)),
            "upd_busy": In(1),
            "tr_x": Out(n_out),
            "tr_sums": In(n_hid * tsum_width),
            "busy": Out(1),
            "n_samples": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.ncfg
        n_in, n_hid, n_out = self.arch
        H, U, E, mb, eb = cfg.H, cfg.U, cfg.E, cfg.m, cfg.e
        _, T2 = cfg.ramps()
        sw, tsw = self.sum_width, self.tsum_width

        x = Signal(n_in, name="tr_image")
        label = Signal(_bits(n_out), name="tr_label")
        h = Signal(data.ArrayLayout(mb, n_hid), name="tr_h")
        o = Signal(data.ArrayLayout(signed(sw), n_out), name="tr_o")
        eq = Signal(data.ArrayLayout(signed(eb), n_out), name="tr_eq")
        gw = _signed_width(-U * E * n_out, U * E * n_out)
        g = Signal(data.ArrayLayout(signed(gw), n_hid), name="tr_g")
        step_w = self.cmd_layout["e"].shape.elem_shape.width
        steps = Signal(data.ArrayLayout(signed(step_w), n_hid), name="tr_steps")
        key = Signal(32, name="tr_key")
        t = self.n_samples  # samples since reset: the draws' counter

        s1 = Signal(range(MAX_SHIFT + 1), name="tr_s1")
        s2 = Signal(range(MAX_SHIFT + 1), name="tr_s2")
        for s, base in ((s1, self.s1), (s2, self.s2)):
            raw = Signal(range(MAX_SHIFT + 32 + 1))
            m.d.comb += [raw.eq(base + self.lr_decay), s.eq(Mux(raw > MAX_SHIFT, MAX_SHIFT, raw))]

        # the chip's input: pixel i's code (0/1) in bits [i*m, (i+1)*m)
        m.d.comb += self.img.payload.eq(Cat(*(Cat(x[i], Const(0, mb - 1)) for i in range(n_in))))

        # output error: binary search of y_k = #{l : T2_l <= o_k}
        t2 = Array([Const(int(v), signed(_signed_width(int(T2.min()), int(T2.max())))) for v in T2])
        o_arr = Array([o[k] for k in range(n_out)])
        ko = Signal(range(max(2, n_out)), name="tr_out_index")
        bit = Signal(range(max(2, mb)), name="tr_search_bit")
        lo = Signal(mb, name="tr_search_lo")
        cand = Signal(mb)
        take = Signal()
        m.d.comb += [cand.eq(lo | (Const(1, mb) << bit)), take.eq(t2[cand - 1] <= o_arr[ko])]
        y = Signal(mb)
        m.d.comb += y.eq(Mux(take, cand, lo))
        e_raw = Signal(signed(mb + 2))
        m.d.comb += e_raw.eq(Mux(ko == label, H, 0) - y)
        e_new = Signal(signed(eb))
        _saturate(m, e_new, _round_shift(e_raw, cfg.es), E)

        # backward: transposed reads of the output layer
        rbit = Signal(range(max(2, eb - 1)), name="tr_read_bit")
        neg = Signal(name="tr_read_negative")
        for k in range(n_out):
            mag = Mux(eq[k] < 0, -eq[k], eq[k])
            m.d.comb += self.tr_x[k].eq(mag.bit_select(rbit, 1) & Mux(neg, eq[k] < 0, eq[k] > 0))
        first = Signal()
        m.d.comb += first.eq(rbit == eb - 2)

        # hidden steps, one row per cycle
        row = Signal(range(max(2, n_hid)), name="tr_row")
        g_arr, h_arr = Array([g[j] for j in range(n_hid)]), Array([h[j] for j in range(n_hid)])
        hj = Signal(mb)
        m.d.comb += hj.eq(h_arr[row])
        d = Signal(2 * mb)
        m.d.comb += d.eq(hj * (H - hj))
        v = Signal(signed(gw + 2 * mb + 1))
        m.d.comb += v.eq(g_arr[row] * d)
        delta = Signal(signed(eb))
        _saturate(m, delta, _round_shift(v, cfg.sd), E)
        draw0 = Signal(32)
        m.d.comb += draw0.eq(mix32(key ^ row))
        step = Signal(signed(eb + 1))
        m.d.comb += step.eq(_stochastic_round(delta, s1, draw0))
        any_step = Signal()
        m.d.comb += any_step.eq(Cat(*(steps[j] != 0 for j in range(n_hid))).any() & x.any())

        # output-layer element updates: rows with h != 0, columns with eq != 0
        m.submodules.next_row = next_row = PriorityEncoder(n_hid)
        m.submodules.next_col = next_col = PriorityEncoder(n_out)
        rows_left = Signal(n_hid, name="tr_rows_left")
        cols_left = Signal(n_out, name="tr_cols_left")
        orow = Signal(range(max(2, n_hid)), name="tr_out_row")
        m.d.comb += [next_row.fires.eq(rows_left), next_col.fires.eq(cols_left)]
        col = next_col.index
        prod = Signal(signed(mb + eb + 1))
        m.d.comb += prod.eq(h_arr[orow] * Array([eq[k] for k in range(n_out)])[col])
        draw1 = Signal(32)
        m.d.comb += draw1.eq(mix32(key ^ (1 << 24) ^ (orow * n_out + col)))
        d2_raw = Signal(signed(mb + eb + 2))
        m.d.comb += d2_raw.eq(_stochastic_round(prod, s2, draw1))
        d2 = Signal(signed(cfg.wbits + 1))
        _saturate(m, d2, d2_raw, U)

        cmd = self.upd.payload
        with m.FSM(name="trainer") as fsm:
            with m.State("IDLE"):
                m.d.comb += self.train.ready.eq(self.start_ok)
                with m.If(self.train.valid & self.start_ok):
                    m.d.sync += [x.eq(self.train.payload.image), label.eq(self.train.payload.label)]
                    m.next = "FEED"
            with m.State("FEED"):
                m.d.comb += self.img.valid.eq(1)
                with m.If(self.img.ready):
                    m.next = "RESULT"
            with m.State("RESULT"):
                m.d.comb += self.res.ready.eq(1)
                with m.If(self.res.valid):
                    m.d.sync += [h.eq(self.res.payload.act0), o.eq(self.res.payload.sums), key.eq(mix32(t))]
                    m.next = "KEY"
            with m.State("KEY"):
                m.d.sync += [key.eq(mix32(key ^ cfg.seed)), ko.eq(0), bit.eq(mb - 1), lo.eq(0)]
                m.next = "ERROR"
            with m.State("ERROR"):
                with m.If(bit != 0):
                    m.d.sync += [lo.eq(y), bit.eq(bit - 1)]
                with m.Else():
                    m.d.sync += [eq[k].eq(Mux(ko == k, e_new, eq[k])) for k in range(n_out)]
                    m.d.sync += [lo.eq(0), bit.eq(mb - 1), ko.eq(ko + 1)]
                    with m.If(ko == n_out - 1):
                        m.d.sync += [rbit.eq(eb - 2), neg.eq(0)]
                        m.next = "CHECK"
            with m.State("CHECK"):  # no error: the sample changes nothing
                with m.If(Cat(*(eq[k] != 0 for k in range(n_out))).any()):
                    m.next = "BACK"
                with m.Else():
                    m.next = "DONE"
            with m.State("BACK"):
                for j in range(n_hid):
                    r = self.tr_sums[j * tsw:(j + 1) * tsw].as_signed()
                    with m.If(~neg):
                        m.d.sync += g[j].eq(Mux(first, 0, g[j] << 1) + r)
                    with m.Else():
                        m.d.sync += g[j].eq(g[j] - r)
                m.d.sync += neg.eq(~neg)
                with m.If(neg):
                    m.d.sync += rbit.eq(rbit - 1)
                    with m.If(rbit == 0):
                        m.d.sync += row.eq(0)
                        m.next = "HIDDEN"
            with m.State("HIDDEN"):
                m.d.sync += [steps[j].eq(Mux(row == j, step, steps[j])) for j in range(n_hid)]
                m.d.sync += row.eq(row + 1)
                with m.If(row == n_hid - 1):
                    m.next = "RANK1"
            with m.State("RANK1"):
                m.d.comb += [cmd.layer.eq(0), cmd.rank1.eq(1), cmd.x.eq(x)]
                for j in range(n_hid):
                    m.d.comb += cmd.e[j].eq(steps[j])
                m.d.sync += rows_left.eq(Cat(*(h[j] != 0 for j in range(n_hid))))
                with m.If(any_step):
                    m.d.comb += self.upd.valid.eq(1)
                    with m.If(self.upd.ready):
                        m.next = "WAIT1"
                with m.Else():
                    m.next = "OROW"
            with m.State("WAIT1"):
                with m.If(~self.upd_busy):
                    m.next = "OROW"
            with m.State("OROW"):
                with m.If(rows_left == 0):
                    m.next = "DONE"
                with m.Else():
                    m.d.sync += [orow.eq(next_row.index), cols_left.eq(Cat(*(eq[k] != 0 for k in range(n_out))))]
                    m.next = "OCOL"
            with m.State("OCOL"):
                m.d.comb += [cmd.layer.eq(1), cmd.rank1.eq(0), cmd.row.eq(orow), cmd.col.eq(col),
                             cmd.delta.eq(d2)]
                clear_col = cols_left & ~(Const(1, n_out) << col)
                with m.If(cols_left == 0):
                    m.d.sync += rows_left.eq(rows_left & ~(Const(1, n_hid) << orow))
                    m.next = "OROW"
                with m.Elif(d2 == 0):
                    m.d.sync += cols_left.eq(clear_col)
                with m.Else():
                    m.d.comb += self.upd.valid.eq(1)
                    with m.If(self.upd.ready):
                        m.d.sync += cols_left.eq(clear_col)
                        m.next = "WAIT2"
            with m.State("WAIT2"):
                with m.If(~self.upd_busy):
                    m.next = "OCOL"
            with m.State("DONE"):
                m.d.sync += self.n_samples.eq(self.n_samples + 1)
                m.next = "IDLE"
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE"))
        return m


def chip_interval(ncfg, n_layers: int = 2) -> int:
    """Cycles of one bit-serial forward pass of the training chip (:attr:`rrambnn.hw.chip.Chip.interval`)."""
    return n_layers * ncfg.m + (n_layers - 1) * ncfg.H + 3


def sample_cycles(arch, ncfg, *, interval: int, updated: bool, rank1_rows: int = 0, rank1_cols: int = 0,
                  out_rows: int = 0, out_cols: int = 0, elements: int = 0, weights: int = 0, cell_writes: int = 0,
                  pulses: int = 0, failed: int = 0, restored: int = 0, restore: bool = False,
                  pulse_cycles: int = 5) -> int:
    """Cycles from a sample's acceptance on ``train`` to the trainer's return to idle (the
    cycles ``train_busy`` is high), for a chip whose bit-serial pass takes ``interval`` cycles:

    * fixed: feed 1, the forward pass (``interval`` - 1), key 1, output error n_out m, check 1,
      done 1; with an error (``updated``): backward 2 (e - 1), hidden steps n_hid, rank-1 1;
    * the rank-1 command (if sent: ``rank1_rows`` pixels x ``rank1_cols`` steps): its controller
      cycles + 1; the output layer's walk: 1 per row with h != 0 (``out_rows``) and 1 more, 1 per
      (row, output with eq != 0) pair plus 1 per row (``out_cols`` = the outputs with eq != 0),
      and per element command sent (``elements``) its controller cycles + 1;
    * the weight-update controller: 1 per command (its last row step), 2 per row of a command
      (row step, end of row), per weight (``weights``) column step, read and a final issue step
      3 (with restore 4: the read-back check, and 1 more for a weight written back,
      ``restored``); per cell written (``cell_writes``) 2 (issue, wait) + the programming
      controller's 2 (the cell's read, the end of the command: its direct path visits only the
      command's one cell, whatever the word width), per pulse (``pulses``) pulse_cycles + 1
      (pulse + verify), per failed cell 1 (its report).
    """
    n_in, n_hid, n_out = arch
    m, e = ncfg.m, ncfg.e
    c = 1 + (interval - 1) + 1 + n_out * m + 1 + 1
    if not updated:
        return c
    c += 2 * (e - 1) + n_hid + 1
    commands = (1 if rank1_rows and rank1_cols else 0) + elements
    c += out_rows * (1 + out_cols + 1) + 1  # OROW per row and the last; OCOL per pair and row end
    c += commands  # the WAIT state's last cycle
    rows = (rank1_rows if rank1_rows and rank1_cols else 0) + elements
    upd = commands + 2 * rows + weights * (3 + (1 if restore else 0)) + (restored if restore else 0)
    upd += cell_writes * (2 + 2) + pulses * (pulse_cycles + 1) + failed
    return c + upd


class SelfTrainingChip(wiring.Component):
    """A training chip (:class:`rrambnn.hw.chip.Chip` with computing planes, a weight-update
    controller, the backward read and debug results) with a :class:`Trainer`: the chip's ports,
    except the update commands and the transposed read (the trainer's now), plus

    * ``train``: samples (``image`` bits, ``label``); ``lr_decay``: extra halvings of the
      learning rate (the host's schedule);
    * ``train_busy``: a step is under way; ``n_samples``: samples trained since reset.

    Training takes priority: while a sample waits on ``train`` or a step is under way, ``i``
    is not ready and ``o`` shows nothing (results of the training images stay inside); a
    sample starts only once the chip is idle, so a result already waiting is never taken."""

    INTERNAL = ("upd", "tr_x", "tr_sums")

    def __init__(self, chip, ncfg):
        from rrambnn.hw.chip import Chip
        if not isinstance(chip, Chip) or chip.updater is None or not chip.layers[-1].transposed or not chip.debug:
            raise ValueError("A self-training chip needs a training chip with the backward read and debug results")
        self.chip = chip
        last = chip.layers[-1]
        self.trainer = Trainer(chip.arch, ncfg, out_layout=chip.out_layout, sum_width=last.sw,
                               tsum_width=last.tsw, cmd_layout=chip.updater.cmd_layout)
        members = {name: mem for name, mem in chip.signature.members.items() if name not in self.INTERNAL}
        members.update({"train": In(stream.Signature(self.trainer.train_layout)), "lr_decay": In(5),
                        "train_busy": Out(1), "n_samples": Out(32)})
        super().__init__(members)

    # what the generator, its header and the testbenches ask of a chip
    def __getattr__(self, name):
        if name in ("arch", "layers", "updater", "programmer", "interval", "latency", "out_layout", "planes",
                    "wbits", "abits", "output", "debug", "pipeline", "tile", "variant", "device",
                    "n_tiles", "threshold_ram_bits", "programming"):
            return getattr(self.chip, name)
        raise AttributeError(name)

    def elaborate(self, platform):
        m = Module()
        m.submodules.chip = chip = self.chip
        m.submodules.trainer = tr = self.trainer
        for name, mem in self.signature.members.items():
            if name in ("i", "o") or not hasattr(chip, name) or name in ("train", "lr_decay", "n_samples"):
                continue
            if mem.is_signature:
                if mem.flow == In:
                    wiring.connect(m, wiring.flipped(getattr(self, name)), getattr(chip, name))
                else:
                    wiring.connect(m, getattr(chip, name), wiring.flipped(getattr(self, name)))
            elif mem.flow == In:
                m.d.comb += getattr(chip, name).eq(getattr(self, name))
            else:
                m.d.comb += getattr(self, name).eq(getattr(chip, name))
        wiring.connect(m, tr.upd, chip.upd)
        m.d.comb += [
            tr.upd_busy.eq(chip.upd_busy), chip.tr_x.eq(tr.tr_x), tr.tr_sums.eq(chip.tr_sums),
            tr.lr_decay.eq(self.lr_decay), self.n_samples.eq(tr.n_samples), self.train_busy.eq(tr.busy),
            tr.train.payload.eq(self.train.payload), tr.train.valid.eq(self.train.valid),
            self.train.ready.eq(tr.train.ready),
            tr.start_ok.eq(chip.i.ready),
            tr.res.payload.eq(chip.o.payload), self.o.payload.eq(chip.o.payload),
        ]
        with m.If(tr.busy):  # the trainer owns the datapath
            m.d.comb += [chip.i.payload.eq(tr.img.payload), chip.i.valid.eq(tr.img.valid),
                         tr.img.ready.eq(chip.i.ready),
                         tr.res.valid.eq(chip.o.valid), chip.o.ready.eq(tr.res.ready)]
        with m.Else():  # inference; a waiting sample goes first
            m.d.comb += [chip.i.payload.eq(self.i.payload), chip.i.valid.eq(self.i.valid & ~self.train.valid),
                         self.i.ready.eq(chip.i.ready & ~self.train.valid),
                         self.o.valid.eq(chip.o.valid), chip.o.ready.eq(self.o.ready)]
        return m
