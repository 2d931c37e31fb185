"""One network layer: crossbar tiles, current summation, threshold registers, sense stage."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rrambnn.gen.device import tile_seed
from rrambnn.hw.analog import AnalogSense, TileAnalog
from rrambnn.hw.crossbar import CrossbarTile, _bits, sum_width


def check_tile(tile) -> tuple[int, int]:
    """Validate a tile size given as (rows, cols) or 'RxC'."""
    if isinstance(tile, str):
        parts = tile.lower().split("x")
        try:
            tile = tuple(int(p) for p in parts)
        except ValueError:
            raise ValueError(f"Tile size must look like 128x128, not {tile!r}") from None
    if (not isinstance(tile, tuple) or len(tile) != 2
            or not all(isinstance(t, int) and not isinstance(t, bool) for t in tile)):
        raise TypeError(f"Tile size must be a (rows, cols) pair of integers, not {tile!r}")
    rows, cols = tile
    if not 1 <= rows <= 1024:
        raise ValueError(f"Tile rows must be an integer from 1 to 1024, not {rows!r}")
    if not 1 <= cols <= 1024:
        raise ValueError(f"Tile columns must be an integer from 1 to 1024, not {cols!r}")
    return rows, cols


def threshold_width(n_in: int) -> int:
    """Signed width of a threshold in [-n_in, n_in + 1]."""
    return (n_in + 1).bit_length() + 1


def signed_range(width: int) -> tuple[int, int]:
    """The values a two's-complement register of ``width`` bits holds."""
    return -(1 << (width - 1)), (1 << (width - 1)) - 1


@dataclass(frozen=True)
class SynthesisView:
    """What a design is elaborated for, handed to Amaranth as the platform (the built objects are
    never changed for it): ``analog_sense``: the tape-out view of cost synthesis, every layer's
    sense stage a black box (:data:`SENSE_MODULE`); ``ram_init``: threshold RAMs with their
    initial contents (False: a black box for synthesis statistics)."""

    analog_sense: bool = False
    ram_init: bool = True


class Layer(wiring.Component):
    """A fully connected binary layer mapped onto a grid of crossbar tiles.

    Tiles stacked along the rows share columns: their partial column sums add
    (current summation) before the sense stage ``fires_j = S_j >= theta_j``.
    The thresholds live in registers, rewritable through ``thr_we/thr_addr/thr_data``.
    Cells are programmed and read through global (row, col) addresses decoded to a tile.

    ``planes`` > 1: multi-bit weights (:mod:`rrambnn.gen.planes`). Plane 0 is the sign
    (the computing arrays); planes 1.. are storage-only arrays of the same tiling holding the
    magnitude bits, started from ``plane_cells`` with ``plane_faults`` (each (planes-1, n_in,
    n_out)). Pulses and reads carry a plane; ``read_bits`` gives every plane's cell at the
    read address at once (one weight's code).

    ``sliced``: every plane computes (multi-bit inference weights, :mod:`rrambnn.gen.sliced`):
    plane b holds weight bit b of the offset code and the column sum is
    S_j = sum_b 2^b * S_jb, the slices' sums shifted and added before the sense stage.
    ``ternary`` (two sliced planes): the planes are a differential pair of equal weight (codes
    -2, 0, 2), their sums added without a shift.

    ``in_bits`` m > 1: the input arrives bit-serially, most significant plane first, one plane
    per ``acc_step`` (``acc_first`` on the first): an accumulator per column keeps
    acc = 2*acc + S(plane), and the sense stage works on the accumulated sum.

    ``levels`` L > 1: each neuron quantises its sum to a code in [0, L] with L non-decreasing
    thresholds (``thresholds`` (n_out, L)), held in a threshold RAM of L words (one word: the
    thresholds of every neuron at one level). A ramp of L ``ramp_step`` cycles (``ramp_level`` =
    0, 1, ..., L-1; ``ramp_first`` on the first) reads one level per cycle and every neuron's
    counter adds ``S_j >= theta_jl``: the sense-stage comparator reused as a single-slope
    converter. ``codes`` holds the result. Threshold writes take ``thr_level``.

    ``transposed``: the transposed read of every computing plane (on-chip training's backward
    pass): column inputs ``tx`` (n_out) drive the bit lines of every tile, each row senses
    ``2 * popcount(tx AND row) - popcount(tx)``; tiles along the columns add their partial row
    sums (as tiles along the rows add column sums) and the planes are shifted and added, so
    ``tsums`` row r = ``sum_j w_rj tx_j`` with w = 2u - U the offset-code weight.
    """

    def __init__(self, weights: np.ndarray, thresholds: np.ndarray, tile=(128, 128), *,
                 initial_cells=None, faults=None, index: int = 0, seed: int = 0,
                 fail_threshold: int = 0, endurance: int = 0, planes: int = 1, plane_cells=None,
                 plane_faults=None, sliced: bool = False, in_bits: int = 1, levels: int = 1,
                 transposed: bool = False, analog=None, ternary: bool = False):
        weights = np.asarray(weights)
        if weights.ndim != 2 or not np.isin(weights, (-1, 1)).all():
            raise ValueError("Layer weights must be a 2-D array of -1/+1")
        self.n_in, self.n_out = weights.shape
        if not isinstance(sliced, bool):
            raise TypeError(f"Layer sliced must be a bool, not {sliced!r}")
        if not isinstance(in_bits, int) or isinstance(in_bits, bool) or not 1 <= in_bits <= 8:
            raise ValueError(f"Layer input bits must be an integer from 1 to 8, not {in_bits!r}")
        if not isinstance(levels, int) or isinstance(levels, bool) or not 1 <= levels <= 255:
            raise ValueError(f"Layer levels must be an integer from 1 to 255, not {levels!r}")
        if not isinstance(transposed, bool):
            raise TypeError(f"Layer transposed must be a bool, not {transposed!r}")
        if not isinstance(ternary, bool):
            raise TypeError(f"Layer ternary must be a bool, not {ternary!r}")
        if ternary and (not sliced or planes != 2):
            raise ValueError("Ternary layers need two sliced planes")
        self.sliced, self.in_bits, self.levels, self.transposed = sliced, in_bits, levels, transposed
        self.ternary = ternary
        slice_gain = (2 if ternary else (1 << planes) - 1) if sliced and isinstance(planes, int) \
            and 1 <= planes <= 12 else 1
        self.bound = self.n_in * slice_gain * ((1 << in_bits) - 1)  # max |S_j|
        # analog reads (rrambnn.hw.analog.AnalogLayer): the sums are column currents in 2^-8 cell
        # units with the sense stage's offsets and read noise; thresholds in the same units
        self.analog = analog
        if analog is not None:
            if transposed or (planes != 1 and not sliced):
                raise ValueError("Analog reads are modelled for computing planes without the transposed read only")
            if len(analog.maps) != planes:
                raise ValueError(f"Layer analog maps must be one per plane ({planes}), not {len(analog.maps)}")
            for mp in analog.maps:
                if mp.q1.shape != weights.shape:
                    raise ValueError(f"Layer analog map must have shape {weights.shape}, not {mp.q1.shape}")
            self.bound = analog.current_bound(self.n_in)
        thresholds = np.asarray(thresholds)
        t_shape = (self.n_out,) if levels == 1 else (self.n_out, levels)
        if thresholds.shape != t_shape:
            raise ValueError(f"Layer thresholds must have shape {t_shape}, not {thresholds.shape}")
        if thresholds.min() < -self.bound or thresholds.max() > self.bound + 1:
            raise ValueError(f"Layer thresholds must lie in [-{self.bound}, {self.bound + 1}]")
        if levels > 1 and (np.diff(thresholds, axis=1) < 0).any():
            raise ValueError("Layer thresholds must not decrease from level to level")
        self.tile = check_tile(tile)
        self.cells = (weights > 0).astype(np.uint8) if initial_cells is None else np.asarray(initial_cells)
        if self.cells.shape != weights.shape:
            raise ValueError(f"Layer initial cells must have shape {weights.shape}, not {self.cells.shape}")
        self.faults = np.zeros(weights.shape, np.int8) if faults is None else np.asarray(faults)
        if self.faults.shape != weights.shape:
            raise ValueError(f"Layer fault map must have shape {weights.shape}, not {self.faults.shape}")
        if not isinstance(planes, int) or isinstance(planes, bool) or not 1 <= planes <= 12:
            raise ValueError(f"Layer planes must be an integer from 1 to 12, not {planes!r}")
        self.planes = planes
        shape = (planes - 1,) + weights.shape
        self.plane_cells = np.zeros(shape, np.uint8) if plane_cells is None else np.asarray(plane_cells)
        self.plane_faults = np.zeros(shape, np.int8) if plane_faults is None else np.asarray(plane_faults)
        if self.plane_cells.shape != shape or self.plane_faults.shape != shape:
            raise ValueError(f"Layer magnitude planes must have shape {shape}")
        self.index, self.seed = index, seed
        self.fail_threshold, self.endurance = fail_threshold, endurance
        self.thresholds = thresholds.astype(int)
        self.sw = sum_width(self.bound)
        self.tw = threshold_width(self.bound)
        self.mw = max(self.sw, self.tw) + 1  # signed width of S_j - theta_j
        self.code_bits = levels.bit_length()
        self.row_blocks = -(-self.n_in // self.tile[0])
        self.col_blocks = -(-self.n_out // self.tile[1])
        serial = {}
        if in_bits > 1:
            serial.update({"acc_step": In(1), "acc_first": In(1)})
        if transposed:
            self.tsw = sum_width(self.n_out * slice_gain)
            serial.update({"tx": In(self.n_out), "tsums": Out(self.n_in * self.tsw)})
        if analog is not None:  # widths: one plane's column current and squares; the sense model's inputs
            self.aw, self.vw = analog.aw(self.n_in), analog.vw(self.n_in)
            self.saw, self.svw = (self.aw, self.vw) if planes == 1 and in_bits == 1 else \
                (self.sw, max(1, analog.squares_bound(self.n_in).bit_length()))
            if self.svw > 63:
                raise ValueError(f"Layer read noise: the summed variance needs {self.svw} bits, over the sense model's "
                                 f"64-bit integers (fewer rows, weight or activation bits, or a narrower spread)")
            serial["image"] = In(32)  # the image's index: it keys the read noise
        if levels > 1:
            serial.update({"ramp_step": In(1), "ramp_first": In(1), "ramp_level": In(_bits(levels)),
                           "thr_level": In(_bits(levels)), "codes": Out(self.n_out * self.code_bits)})
        super().__init__({
            **serial,
            "x": In(self.n_in),
            "fires": Out(self.n_out),
            "sums": Out(self.n_out * self.sw),
            "margins": Out(self.n_out * self.mw),
            "thr_we": In(1),
            "thr_addr": In(_bits(self.n_out)),
            "thr_data": In(signed(self.tw)),
            "pulse_valid": In(1),
            "pulse_row": In(_bits(self.n_in)),
            "pulse_col": In(_bits(self.n_out)),
            "pulse_set": In(1),
            "read_row": In(_bits(self.n_in)),
            "read_col": In(_bits(self.n_out)),
            "read_bit": Out(1),
            "read_count": Out(32),
            "pulse_plane": In(_bits(planes)),
            "read_plane": In(_bits(planes)),
            "read_bits": Out(planes),
        })

    @property
    def n_tiles(self) -> int:
        """Tiles of one plane (the computing arrays)."""
        return self.row_blocks * self.col_blocks

    def row_sum(self, r: int):
        """Row r of the transposed read (signed)."""
        return self.tsums[r * self.tsw:(r + 1) * self.tsw].as_signed()

    def column_sum(self, j: int):
        return self.sums[j * self.sw:(j + 1) * self.sw].as_signed()

    def margin(self, j: int):
        """S_j - theta_j: the sense stage fires when it is >= 0; argmax compares it."""
        return self.margins[j * self.mw:(j + 1) * self.mw].as_signed()

    def elaborate(self, platform):
        m = Module()
        R, C = self.tile
        tiles = {}
        read_counts = []
        for p in range(self.planes):
            cells = self.cells if p == 0 else self.plane_cells[p - 1]
            faults = self.faults if p == 0 else self.plane_faults[p - 1]
            bits = []
            for br in range(self.row_blocks):
                for bc in range(self.col_blocks):
                    r0, c0 = br * R, bc * C
                    t = CrossbarTile(cells[r0:r0 + R, c0:c0 + C], faults=faults[r0:r0 + R, c0:c0 + C],
                                     seed=tile_seed(self.seed, self.index, br, bc, plane=p),
                                     fail_threshold=self.fail_threshold, endurance=self.endurance,
                                     compute=p == 0 or self.sliced,
                                     transposed=self.transposed and (p == 0 or self.sliced),
                                     analog=TileAnalog(self.analog, r0, c0, self.aw, self.vw, p) if self.analog
                                     else None)
                    name = f"tile_r{br}_c{bc}" if p == 0 else f"plane{p}_tile_r{br}_c{bc}"
                    m.submodules[name] = tiles[p, br, bc] = t
                    m.d.comb += t.x.eq(self.x[r0:r0 + t.rows] if p == 0 or self.sliced else 0)
                    if t.transposed:
                        m.d.comb += t.xt.eq(self.tx[c0:c0 + t.cols])
                    # programming / read address decode (global -> tile-local)
                    p_sel = Signal(name=f"pulse_sel_p{p}_r{br}_c{bc}")
                    m.d.comb += [
                        p_sel.eq((self.pulse_row >= r0) & (self.pulse_row < r0 + t.rows)
                                 & (self.pulse_col >= c0) & (self.pulse_col < c0 + t.cols)
                                 & (self.pulse_plane == p)),
                        t.pulse_valid.eq(self.pulse_valid & p_sel),
                        t.pulse_row.eq(self.pulse_row - r0),
                        t.pulse_col.eq(self.pulse_col - c0),
                        t.pulse_set.eq(self.pulse_set),
                        t.read_row.eq(self.read_row - r0),
                        t.read_col.eq(self.read_col - c0),
                    ]
                    r_sel = Signal(name=f"read_sel_p{p}_r{br}_c{bc}")
                    m.d.comb += r_sel.eq((self.read_row >= r0) & (self.read_row < r0 + t.rows)
                                         & (self.read_col >= c0) & (self.read_col < c0 + t.cols))
                    bits.append(r_sel & t.read_bit)
                    read_counts.append((r_sel & (self.read_plane == p)).replicate(32) & t.read_count)
            m.d.comb += self.read_bits[p].eq(or_all(bits))
        m.d.comb += [self.read_bit.eq(self.read_bits.bit_select(self.read_plane, 1)),
                     self.read_count.eq(or_all(read_counts))]

        # the tape-out view for cost synthesis (SynthesisView.analog_sense): the analog sense stage
        # (the tiles' current summation, comparator, per-slice converted sums) is a black box
        sense = self._sense_macro(m, tiles) if getattr(platform, "analog_sense", False) else None
        if self.transposed and sense is not None:  # converted per slice: shift and add in logic
            for r in range(self.n_in):
                m.d.comb += self.tsums[r * self.tsw:(r + 1) * self.tsw].eq(sense.row_sum(r))
        elif self.transposed:  # row sums: column tiles add, planes shift and add
            for r in range(self.n_in):
                br, rl = divmod(r, R)
                m.d.comb += self.tsums[r * self.tsw:(r + 1) * self.tsw].eq(shift_add(
                    (sum_all([tiles[p, br, bc].row_sum(rl) for bc in range(self.col_blocks)])
                     for p in range(self.planes if self.sliced else 1)), self.ternary))
        if self.levels > 1:
            ramp = self._threshold_ram(m, getattr(platform, "ram_init", True))
        if self.analog is not None:  # the tiles' currents added, then the sense model
            model = self._analog_sums(m, tiles)
        for j in range(self.n_out):
            bc, jl = divmod(j, C)
            if self.analog is not None:
                total = model.i[j * self.sw:(j + 1) * self.sw].as_signed()
            elif sense is not None:  # converted per slice: shift and add in logic
                total = sense.column_sum(j)
            else:  # row tiles add, slices shift and add
                total = shift_add((sum_all([tiles[p, br, bc].column_sum(jl) for br in range(self.row_blocks)])
                                   for p in range(self.planes if self.sliced else 1)), self.ternary)
            s = Signal(signed(self.sw), name=f"sum{j}")  # named: shared by sense and output stage
            if self.in_bits > 1 and self.analog is None:  # bit-serial input: acc = 2*acc + S(plane), MSB first
                now = Signal(signed(self.sw), name=f"plane_sum{j}")
                m.d.comb += now.eq(total)
                with m.If(self.acc_step):
                    m.d.sync += s.eq(Mux(self.acc_first, 0, s << 1) + now)
            else:
                m.d.comb += s.eq(total)
            m.d.comb += self.sums[j * self.sw:(j + 1) * self.sw].eq(s)
            if self.levels > 1:
                code = Signal(self.code_bits, name=f"code{j}")
                theta = ramp[j * self.tw:(j + 1) * self.tw].as_signed()
                with m.If(self.ramp_step):
                    m.d.sync += code.eq(Mux(self.ramp_first, 0, code) + (s >= theta))
                m.d.comb += [self.codes[j * self.code_bits:(j + 1) * self.code_bits].eq(code),
                             self.fires[j].eq(code != 0)]
                continue
            theta = Signal(signed(self.tw), init=int(self.thresholds[j]), name=f"theta{j}")
            with m.If(self.thr_we & (self.thr_addr == j)):
                m.d.sync += theta.eq(self.thr_data)
            d = Signal(signed(self.mw), name=f"margin{j}")
            m.d.comb += [
                d.eq(s - theta),
                self.margins[j * self.mw:(j + 1) * self.mw].eq(d),
                self.fires[j].eq(d >= 0),
            ]
            if sense is not None and self.in_bits == 1:  # the analog comparator decides
                m.d.comb += [sense.theta[j * self.tw:(j + 1) * self.tw].eq(theta), self.fires[j].eq(sense.fires[j])]
        return m

    def _analog_sums(self, m, tiles) -> AnalogSense:
        """Analog reads: per column the row tiles' currents and squares added, the planes shifted
        and added (currents by the slice's gain, squares by its square) and, with bit-serial
        inputs, accumulated over the input planes (``2 acc + I``, ``4 vacc + V``, MSB first);
        then the sense model (offsets, read noise) gives the currents the comparators see."""
        C = self.tile[1]
        m.submodules.sense_model = model = AnalogSense(self.analog, self.n_out, self.saw, self.svw, self.sw)
        n_p = self.planes if self.sliced else 1
        cur, sq = [], []
        for j in range(self.n_out):
            bc, jl = divmod(j, C)
            a = Signal(signed(self.saw), name=f"current{j}")
            v = Signal(unsigned(self.svw), name=f"squares{j}")
            pa = [sum_all([tiles[p, br, bc].currents[jl * self.aw:(jl + 1) * self.aw].as_signed()
                           for br in range(self.row_blocks)]) for p in range(n_p)]
            pv = [sum_all([tiles[p, br, bc].squares[jl * self.vw:(jl + 1) * self.vw] for br in range(self.row_blocks)])
                  for p in range(n_p)]
            now_a = shift_add(pa, self.ternary)
            now_v = sum_all([x << 2 * p if p and not self.ternary else x for p, x in enumerate(pv)])
            if self.in_bits > 1:
                with m.If(self.acc_step):
                    m.d.sync += [a.eq(Mux(self.acc_first, 0, a << 1) + now_a),
                                 v.eq(Mux(self.acc_first, 0, v << 2) + now_v)]
            else:
                m.d.comb += [a.eq(now_a), v.eq(now_v)]
            cur.append(a)
            sq.append(v)
        m.d.comb += [model.a.eq(Cat(*cur)), model.v.eq(Cat(*sq)), model.image.eq(self.image)]
        return model

    def _sense_macro(self, m, tiles):
        """The cost view's sense stage: one black-box instance of :data:`SENSE_MODULE` takes every
        tile's partial sums and the threshold registers and returns the comparator decisions and
        the converted sums that digital logic reads: every slice's column (and transposed row)
        sum converted on its own, as the cost model prices it; the slices' shift-add is logic
        outside the box, so it is synthesized and priced with the periphery."""
        from types import SimpleNamespace

        from amaranth import Instance

        from rrambnn.hw.crossbar import sum_width
        n_p = self.planes if self.sliced else 1
        psw, ptw = sum_width(self.n_in), sum_width(self.n_out)  # one slice's column / row sum
        parts = Cat(*(t.sums for t in tiles.values() if t.compute))
        tparts = Cat(*(t.tsums for t in tiles.values() if t.transposed)) if self.transposed else Signal(1)
        sense = SimpleNamespace(theta=Signal(self.n_out * self.tw, name="sense_theta"),
                                fires=Signal(self.n_out, name="sense_fires"),
                                sums=Signal(self.n_out * n_p * psw, name="sense_sums"),
                                tsums=Signal(self.n_in * n_p * ptw if self.transposed else 1, name="sense_tsums"))

        def slices(bits, i, width):  # the n_p converted slice sums of column (row) i
            return (bits[k * width:(k + 1) * width].as_signed() for k in range(i * n_p, (i + 1) * n_p))

        sense.column_sum = lambda j: shift_add(slices(sense.sums, j, psw), self.ternary)
        sense.row_sum = lambda r: shift_add(slices(sense.tsums, r, ptw), self.ternary)
        m.submodules.sense = Instance(
            SENSE_NAME, p_PW=len(parts), p_TPW=len(tparts), p_TW=len(sense.theta), p_N=self.n_out,
            p_SW=len(sense.sums), p_RW=len(sense.tsums),
            i_parts=parts, i_tparts=tparts, i_theta=sense.theta, o_fires=sense.fires, o_sums=sense.sums,
            o_tsums=sense.tsums)
        return sense

    def _threshold_ram(self, m, ram_init: bool = True):
        """The thresholds of every neuron, one RAM word per level (an SRAM macro); returns the
        ramp's read data."""
        from rrambnn.hw.sram import ThresholdRAM
        m.submodules.thresholds = ram = ThresholdRAM(self.thresholds.T.tolist(), self.tw, ram_init)
        m.d.comb += [ram.waddr.eq(self.thr_level), ram.wdata.eq(self.thr_data), ram.raddr.eq(self.ramp_level)]
        for j in range(self.n_out):
            m.d.comb += ram.we[j].eq(self.thr_we & (self.thr_addr == j))
        return ram.rdata


SENSE_NAME = "rrambnn_sense"

# Declared only in the cost view's Verilog (never simulated): the analog sense stage of one layer.
SENSE_MODULE = r"""
// rrambnn_sense: the analog sense stage of one layer in the cost view (a black box for
// synthesis; never simulated): current summation of the tiles' columns (parts), the
// comparators against the threshold registers (theta -> fires; a slice's column current
// weighted by its mirror), the sample-and-hold and converters of the sums that digital logic
// reads, one per slice (sums, and the transposed read's row sums; shift-add is outside).
(* blackbox *)
module rrambnn_sense #(
    parameter integer PW = 1, parameter integer TPW = 1, parameter integer TW = 1,
    parameter integer N = 1, parameter integer SW = 1, parameter integer RW = 1
) (
    input  wire [PW-1:0]  parts,
    input  wire [TPW-1:0] tparts,
    input  wire [TW-1:0]  theta,
    output wire [N-1:0]   fires,
    output wire [SW-1:0]  sums,
    output wire [RW-1:0]  tsums
);
endmodule
"""


def sum_all(values):
    """Sum of a list of values (at least one), left to right."""
    acc = values[0]
    for v in values[1:]:
        acc = acc + v
    return acc


def shift_add(slices, equal: bool = False):
    """Bit-slice sums combined: slice p weighs 2^p (``equal``: every slice weighs 1, a ternary
    weight's differential pair)."""
    total = 0
    for p, part in enumerate(slices):
        total = total + (part << (0 if equal else p)) if p else part
    return total


def or_all(values):
    """OR of a list of values (at least one)."""
    acc = values[0]
    for v in values[1:]:
        acc = acc | v
    return acc
