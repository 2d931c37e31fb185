"""Analog reads in the generated Verilog: the crossbar model with each cell's current and the
sense model with offsets and read noise, the same integers as :mod:`rrambnn.gen.analog`.

Two behavioural modules join the crossbar model when a chip is generated for a device
profile with analog effects (`sim --device`, `run --device`):

* :data:`ANALOG_CROSSBAR_NAME`: the crossbar model (:data:`rrambnn.hw.crossbar.CROSSBAR_MODULE`,
  its cells, fault map, programming and read ports unchanged) whose compute port gives each
  column's current ``sum_r x_r q_rc`` (``q`` the cell's LRS or HRS current as it is held, 2^-8
  units) and ``sum_r x_r g2_rc`` (squared conductances, for the read noise). The per-cell values
  are module parameters, as the fault map is.
* :data:`SENSE_MODEL_NAME`: one per layer, after the tiles' currents are added: the sense
  stage's offset per column and the read noise from the counter-based draw keyed by (chip seed,
  image index, layer, column), the image index counted by the chip as it accepts images and
  carried with each image through the pipeline.

Both are simulation models of analog circuits (synthesis sees black boxes). Without a profile,
or with the ``ideal`` one, none of this is emitted: the Verilog is byte for byte the digital
chip's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth import Const, Instance, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rrambnn.gen import analog as ga
from rrambnn.hw.crossbar import CROSSBAR_MODULE, MODULE_NAME

ANALOG_CROSSBAR_NAME = "rrambnn_crossbar_analog"
SENSE_MODEL_NAME = "rrambnn_analog_sense"


def _once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def _analog_crossbar() -> str:
    """The crossbar model with analog compute outputs, derived from the digital one (so that
    the two never drift apart)."""
    t = CROSSBAR_MODULE
    t = _once(t, f"// {MODULE_NAME}: behavioural model of one RRAM crossbar array",
              f"// {ANALOG_CROSSBAR_NAME}: {MODULE_NAME} with analog column currents (rrambnn.gen.analog):\n"
              f"//   a[c*AW +: AW] = sum_r x_r (cell ? Q1 : Q0)[c*ROWS + r]   (signed, 2^-8 cell units)\n"
              f"//   v[c*VW +: VW] = sum_r x_r (cell ? G1 : G0)[c*ROWS + r]   (squared conductances, 2^-16 units)\n"
              f"// and otherwise the same model:\n"
              f"// {MODULE_NAME}: behavioural model of one RRAM crossbar array")
    t = _once(t, f"module {MODULE_NAME} #(", f"module {ANALOG_CROSSBAR_NAME} #(")
    t = _once(t, "    parameter integer TW = 1             // width of one signed row sum of the transposed read\n",
              "    parameter integer TW = 1,            // width of one signed row sum of the transposed read\n"
              "    parameter integer QW = 2,            // width of one signed cell current\n"
              "    parameter integer GW = 1,            // width of one squared conductance\n"
              "    parameter integer AW = 2,            // width of one signed column current\n"
              "    parameter integer VW = 1,            // width of one column's summed squares\n"
              "    parameter [QW*ROWS*COLS-1:0] Q1 = 0, // each cell's current in LRS, column-major\n"
              "    parameter [QW*ROWS*COLS-1:0] Q0 = 0, // ... in HRS\n"
              "    parameter [GW*ROWS*COLS-1:0] G1 = 0, // each cell's squared conductance in LRS\n"
              "    parameter [GW*ROWS*COLS-1:0] G0 = 0  // ... in HRS\n")
    t = _once(t, "    output wire [31:0]        read_count\n);",
              "    output wire [31:0]        read_count,\n"
              "    output reg  [COLS*AW-1:0] a,\n"
              "    output reg  [COLS*VW-1:0] v\n);")
    t = _once(t, "`endif\nendmodule", """    reg signed [QW-1:0] q1 [0:ROWS*COLS-1];
    reg signed [QW-1:0] q0 [0:ROWS*COLS-1];
    reg [GW-1:0] g1 [0:ROWS*COLS-1];
    reg [GW-1:0] g0 [0:ROWS*COLS-1];
    integer ac, ar;
    initial begin
        for (ac = 0; ac < ROWS*COLS; ac = ac + 1) begin
            q1[ac] = Q1[QW*ac +: QW];
            q0[ac] = Q0[QW*ac +: QW];
            g1[ac] = G1[GW*ac +: GW];
            g0[ac] = G0[GW*ac +: GW];
        end
    end
    reg signed [AW-1:0] sa [0:COLS-1];
    reg [VW-1:0] sv [0:COLS-1];
    // loop bounds held in variables: a simulator compiles the loops as loops (unrolled, the
    // model of a 128x128 array is megabytes of code)
    integer n_cols, n_rows;
    initial begin
        n_cols = COLS;
        n_rows = ROWS;
    end
    // row by row: a row whose word line is low costs one test, so an array at rest (every word
    // line low) costs ROWS tests, not ROWS x COLS (simulators evaluate the block whenever they
    // evaluate the design)
    always @* begin
        for (ac = 0; ac < n_cols; ac = ac + 1) begin
            sa[ac] = 0;
            sv[ac] = 0;
        end
        for (ar = 0; ar < n_rows; ar = ar + 1) begin
            if (x[ar]) begin
                for (ac = 0; ac < n_cols; ac = ac + 1) begin
                    sa[ac] = sa[ac] + (cells[ac][ar] ? {{(AW-QW){q1[ac*ROWS + ar][QW-1]}}, q1[ac*ROWS + ar]}
                                                     : {{(AW-QW){q0[ac*ROWS + ar][QW-1]}}, q0[ac*ROWS + ar]});
                    sv[ac] = sv[ac] + (cells[ac][ar] ? VW'(g1[ac*ROWS + ar]) : VW'(g0[ac*ROWS + ar]));
                end
            end
        end
        for (ac = 0; ac < n_cols; ac = ac + 1) begin
            a[ac*AW +: AW] = sa[ac];
            v[ac*VW +: VW] = sv[ac];
        end
    end
`endif
endmodule""")
    return t


ANALOG_CROSSBAR_MODULE = _analog_crossbar()

SENSE_MODEL_MODULE = r"""
// rrambnn_analog_sense: behavioural model of one layer's analog sense stage (written by the
// rrambnn generator; rrambnn.gen.analog is the same arithmetic in Python). Column c of the
// layer, its tiles' currents added (a, v), gets its sense offset and this read's noise:
//   i_c = a_c + OFFSETS[c] + ((Z[w >> 22] * NOISE_C * isqrt(v_c)) >>> 22)
//   w = mix32(mix32(mix32(SEED ^ 32'h5EED0A11) ^ image) ^ ((LAYER << 16) ^ c))
// Z: 1,024 standard normal quantiles in 2^-10 units. Synthesis sees a black box.
`ifdef SYNTHESIS
(* blackbox *)
`endif
module rrambnn_analog_sense #(
    parameter integer N = 1,             // columns
    parameter integer AW = 2,            // width of one signed column current in
    parameter integer VW = 1,            // width of one column's summed squares
    parameter integer IW = 2,            // width of one signed current out
    parameter integer OW = 2,            // width of one signed offset
    parameter integer ZW = 13,           // width of one signed table entry
    parameter [N*OW-1:0] OFFSETS = 0,
    parameter [31:0] SEED = 0,
    parameter [31:0] LAYER = 0,
    parameter [31:0] NOISE_C = 0,        // round(2^12 sigma_read); 0: no read noise
    parameter [1024*ZW-1:0] ZTABLE = 0
) (
    input  wire [N*AW-1:0] a,
    input  wire [N*VW-1:0] v,
    input  wire [31:0]     image,
    output wire [N*IW-1:0] i
);
`ifndef SYNTHESIS
    function automatic [31:0] mix32(input [31:0] x);
        reg [31:0] y;
        begin
            y = x ^ (x >> 16);
            y = y * 32'h7FEB352D;
            y = y ^ (y >> 15);
            y = y * 32'h846CA68B;
            mix32 = y ^ (y >> 16);
        end
    endfunction
    function automatic [31:0] isqrt(input [63:0] n);
        reg [63:0] rem, root, b;
        integer k;
        begin
            rem = n;
            root = 0;
            b = 64'h4000000000000000;
            for (k = 0; k < 32; k = k + 1) begin
                if (rem >= root + b) begin
                    rem = rem - (root + b);
                    root = (root >> 1) + b;
                end else begin
                    root = root >> 1;
                end
                b = b >> 2;
            end
            isqrt = root[31:0];
        end
    endfunction
    wire [31:0] key = mix32(SEED ^ 32'h5EED0A11);
    wire [31:0] img = mix32(key ^ image);
    genvar g;
    generate
        for (g = 0; g < N; g = g + 1) begin : column
            wire [31:0] w = mix32(img ^ ((LAYER << 16) ^ 32'(g)));
            wire [9:0] zi = w[31:22];  // the table index: the draw's top 10 bits
            /* verilator lint_off UNUSEDSIGNAL */
            wire [21:0] unused_w = w[21:0];
            /* verilator lint_on UNUSEDSIGNAL */
            wire [ZW-1:0] z = ZTABLE[ZW*zi +: ZW];
            wire signed [63:0] zs = {{(64-ZW){z[ZW-1]}}, z};
            wire signed [63:0] cs = {32'd0, NOISE_C};
            wire signed [63:0] rs = {32'd0, isqrt({{(64-VW){1'b0}}, v[g*VW +: VW]})};
            wire signed [63:0] noise = (NOISE_C == 0) ? 64'sd0 : ((zs * cs * rs) >>> 22);
            wire [OW-1:0] off = OFFSETS[g*OW +: OW];
            wire [AW-1:0] cur = a[g*AW +: AW];
            wire signed [63:0] total = $signed({{(64-AW){cur[AW-1]}}, cur}) + $signed({{(64-OW){off[OW-1]}}, off})
                                       + noise;
            assign i[g*IW +: IW] = total[IW-1:0];  // IW holds every current the column can reach
            /* verilator lint_off UNUSEDSIGNAL */
            wire [63-IW:0] unused_total = total[63:IW];
            /* verilator lint_on UNUSEDSIGNAL */
        end
    endgenerate
`endif
endmodule
"""


def signed_width(lo: int, hi: int) -> int:
    """Two's-complement width holding every value in [lo, hi]."""
    return max(int(lo).bit_length() if lo < 0 else 0, int(hi).bit_length()) + 1


def pack(values: np.ndarray, bits: int) -> int:
    """(rows, cols) integers as a parameter, element (r, c) at bits*(c*rows + r), two's complement."""
    flat = np.asarray(values).T.reshape(-1).astype(object)
    mask = (1 << bits) - 1
    out = 0
    for i in np.flatnonzero(flat):
        out |= (int(flat[i]) & mask) << (bits * int(i))
    return out


@dataclass(frozen=True, eq=False)
class AnalogLayer:
    """What a layer's hardware needs of the chip's analog maps (:class:`rrambnn.gen.analog.LayerMap`)
    and profile: per computing plane the cell currents and squares (``maps``; one plane in a
    binary chip, one per weight slice in a multi-bit one, :mod:`rrambnn.gen.analog_coded`), the
    sense offsets of the layer's merged sum, the noise coefficient and seed, and the widths they
    take. ``gains``: what each plane's sum weighs; ``abits``: the input planes read
    bit-serially."""

    maps: tuple
    offset: np.ndarray  # (n_out,) the sense offsets of the merged (shifted and added) sum
    seed: int
    index: int
    noise_c: int  # round(2^CFRAC sigma_read)
    gains: tuple = (1,)
    abits: int = 1

    def _max(self, attr: str, *more: str) -> list[int]:
        """Per plane the largest |value| of the named per-cell arrays."""
        return [max(int(np.abs(getattr(m, a)).max()) for a in (attr,) + more) for m in self.maps]

    @property
    def qw(self) -> int:
        q = np.concatenate([a.ravel() for m in self.maps for a in (m.q1, m.q0)])
        return signed_width(int(q.min()), int(q.max()))

    @property
    def gw(self) -> int:
        return max(1, max(self._max("g21", "g20")).bit_length())

    def squares_bound(self, n_in: int) -> int:
        """The largest merged squares sum of a column: ``sum_a 4^a sum_p gain_p^2 g2_p`` over
        every input."""
        planes = sum(1 << (2 * a) for a in range(self.abits))
        return n_in * planes * sum(g * g * m for g, m in zip(self.gains, self._max("g21", "g20")))

    def current_bound(self, n_in: int) -> int:
        """The largest |current| a column can reach: every cell at its largest |q| in every
        plane and input bit, the offset, the largest noise draw."""
        top = (1 << self.abits) - 1
        q = top * sum(g * m for g, m in zip(self.gains, self._max("q1", "q0")))
        zmax = int(np.abs(ga.NORMAL).max())
        noise = (zmax * self.noise_c * ga.isqrt(np.array([self.squares_bound(n_in)]))[0]) >> (ga.ZFRAC + ga.CFRAC)
        return n_in * q + int(np.abs(self.offset).max(initial=0)) + int(noise) + 1

    def aw(self, rows: int) -> int:
        """Width of one tile's signed column current (any plane)."""
        q = max(self._max("q1", "q0"))
        return signed_width(-rows * q, rows * q)

    def vw(self, rows: int) -> int:
        """Width of one tile's column squares (any plane)."""
        return max(1, (rows * max(self._max("g21", "g20"))).bit_length())


@dataclass(frozen=True, eq=False)
class TileAnalog:
    """One tile's part of a layer's analog map (the tile at row ``r0``, column ``c0`` of plane
    ``plane`` of its layer) and the widths of its current and squares outputs: what a
    :class:`rrambnn.hw.crossbar.CrossbarTile` made with it instantiates instead of the digital
    model."""

    layer: AnalogLayer
    r0: int
    c0: int
    aw: int
    vw: int
    plane: int = 0

    def instance(self, tile, common: dict) -> Instance:
        """The analog crossbar model's instance for ``tile``; ``common``: the digital model's
        parameters and ports."""
        R, C = tile.rows, tile.cols
        sl = (slice(self.r0, self.r0 + R), slice(self.c0, self.c0 + C))
        m = self.layer.maps[self.plane]
        qw, gw = self.layer.qw, self.layer.gw
        return Instance(
            ANALOG_CROSSBAR_NAME, **common,
            p_QW=qw, p_GW=gw, p_AW=self.aw, p_VW=self.vw,
            p_Q1=Const(pack(m.q1[sl], qw), qw * R * C), p_Q0=Const(pack(m.q0[sl], qw), qw * R * C),
            p_G1=Const(pack(m.g21[sl], gw), gw * R * C), p_G0=Const(pack(m.g20[sl], gw), gw * R * C),
            o_a=tile.currents, o_v=tile.squares)


class AnalogSense(wiring.Component):
    """One layer's sense model: merged column currents and squares, the image index -> the
    currents the comparators see (:data:`SENSE_MODEL_MODULE`)."""

    def __init__(self, analog: AnalogLayer, n: int, aw: int, vw: int, iw: int):
        self.analog, self.n, self.aw, self.vw, self.iw = analog, n, aw, vw, iw
        off = analog.offset
        self.ow = signed_width(int(off.min(initial=0)), int(off.max(initial=0)))
        super().__init__({"a": In(n * aw), "v": In(n * vw), "image": In(32), "i": Out(n * iw)})

    def elaborate(self, platform):
        m = Module()
        zw = signed_width(int(ga.NORMAL.min()), int(ga.NORMAL.max()))
        m.submodules.model = Instance(
            SENSE_MODEL_NAME,
            p_N=self.n, p_AW=self.aw, p_VW=self.vw, p_IW=self.iw, p_OW=self.ow, p_ZW=zw,
            p_OFFSETS=Const(pack(self.analog.offset[None, :], self.ow), self.n * self.ow),
            p_SEED=Const(self.analog.seed & 0xFFFFFFFF, 32), p_LAYER=Const(self.analog.index, 32),
            p_NOISE_C=Const(self.analog.noise_c, 32),
            p_ZTABLE=Const(pack(ga.NORMAL[None, :], zw), 1024 * zw),
            i_a=self.a, i_v=self.v, i_image=self.image, o_i=self.i)
        return m


def mix32(x):
    """The draws' 32-bit finaliser (:func:`rrambnn.gen.online_nbit.mix32`) as logic."""
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D)[:32]
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B)[:32]
    return x ^ (x >> 16)


def position_key(image, position):
    """The read-noise key of output position ``position`` of image ``image`` as logic: what
    :func:`rrambnn.gen.analog_coded.read_keys` gives a convolution's reads."""
    return mix32(image ^ 0xC0DE5EED) ^ (position * 0x9E3779B9)[:32]


def analog_layers(maps: ga.ChipMap) -> list[AnalogLayer]:
    """A binary chip's layers: one plane each."""
    c = round(maps.profile.read_noise * (1 << ga.CFRAC))
    return [AnalogLayer((m,), m.offset, maps.seed, k, c) for k, m in enumerate(maps.layers)]


def coded_layers(net, chip) -> list[AnalogLayer]:
    """A multi-bit chip's layers (:class:`rrambnn.gen.analog_coded.CodedChip` ``chip`` of
    ``net``): plane b holds weight slice b's arrays; the sense stage sees the merged sum with
    the merged offsets ``(2^A - 1) sum_b g_b off_b`` (each slice column's offset entering each
    of its conversions)."""
    from rrambnn.gen.sliced import slice_gains
    c = round(chip.profile.read_noise * (1 << ga.CFRAC))
    gains = tuple(slice_gains(net.wbits, bool(getattr(net, "ternary", False))))
    return [AnalogLayer(tuple(sl), off, chip.seed, k, c, gains, net.abits)
            for k, (sl, off) in enumerate(zip(chip.slices, chip.offset))]
