"""The RRAM crossbar tile: a behavioural Verilog model instantiated from Amaranth.

The crossbar is an analog macro. Its simulation model is one parameterised
Verilog module, :data:`CROSSBAR_MODULE`, that the generator writes next to the
periphery (never edited by hand); Amaranth instantiates it with ``Instance``.

Cell state 1 = LRS = weight +1, 0 = HRS = weight -1. The compute port gives
each column the signed integer

    s_j = 2 * popcount(x AND c_j) - popcount(x)

which is the column current minus the per-row reference (I_LRS + I_HRS) / 2,
in units of (I_LRS - I_HRS) / 2: the digital twin of the analog column.

Cells are non-volatile: reset does not touch them. They change only through
the programming port: a pulse (``pulse_valid`` for one clock) SETs
(``pulse_set`` = 1, to LRS) or RESETs the cell at (``pulse_row``,
``pulse_col``). The read port (``read_row``, ``read_col`` -> ``read_bit``)
senses one cell, for write-verify.

A tile made with ``transposed`` also has the *transposed read* (the backward pass of
on-chip training): the column inputs ``xt`` drive the bit lines and every row senses

    t_r = 2 * popcount(xt AND row_r) - popcount(xt)

the same cells, the same fault map, rows and columns exchanged.
"""

from __future__ import annotations

import numpy as np

from amaranth import ClockSignal, Const, Instance, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

MODULE_NAME = "rrambnn_crossbar"

CROSSBAR_MODULE = r"""
// rrambnn_crossbar: behavioural model of one RRAM crossbar array (simulation model of an
// analog macro; written by the rrambnn generator). Cell (r, c) is INIT[c*ROWS + r];
// 1 = LRS = +1, 0 = HRS = -1. Column c drives s[c*SW +: SW] (signed):
//   s_c = 2*popcount(x & cells_c) - popcount(x)
// TRANSPOSE != 0 adds the transposed read: column inputs xt, row r drives t[r*TW +: TW]:
//   t_r = 2*popcount(xt & row_r) - popcount(xt)   (same cells, rows and columns exchanged)
// Cells are non-volatile (no reset): only programming pulses change them.
// Device model (rrambnn.gen.device is the same rules in Python):
//   FAULTS[2*(c*ROWS + r) +: 2]: 0 healthy, 1 stuck at HRS, 2 stuck at LRS;
//   every pulse advances a xorshift32 generator (seed SEED); it fails if the new value
//   < FAIL_THR; a cell with ENDURANCE (> 0) switches stays where it is.
// Synthesis tools (which define SYNTHESIS) see a black box: the array is an analog macro.
`ifdef SYNTHESIS
(* blackbox *)
`endif
module rrambnn_crossbar #(
    parameter integer ROWS = 128,
    parameter integer COLS = 128,
    parameter integer SW = 9,            // width of one signed column sum
    parameter integer RW = 7,            // row address width
    parameter integer CW = 7,            // column address width
    parameter [ROWS*COLS-1:0] INIT = 0,  // initial cell states, column-major
    parameter [2*ROWS*COLS-1:0] FAULTS = 0,
    parameter [31:0] SEED = 32'h1234567,
    parameter [31:0] FAIL_THR = 0,
    parameter [31:0] ENDURANCE = 0,      // 0 = unlimited
    parameter integer COMPUTE = 1,       // 0: a storage-only array (magnitude bits), s = 0
    parameter integer TRANSPOSE = 0,     // 1: the transposed read (xt -> t)
    parameter integer TW = 1             // width of one signed row sum of the transposed read
) (
    input  wire               clk,
    input  wire [ROWS-1:0]    x,
    output wire [COLS*SW-1:0] s,
    input  wire [COLS-1:0]    xt,
    output wire [ROWS*TW-1:0] t,
    input  wire               pulse_valid,
    input  wire [RW-1:0]      pulse_row,
    input  wire [CW-1:0]      pulse_col,
    input  wire               pulse_set,
    input  wire [RW-1:0]      read_row,
    input  wire [CW-1:0]      read_col,
    output wire               read_bit,
    output wire [31:0]        read_count
);
`ifndef SYNTHESIS
    reg [ROWS-1:0] cells [0:COLS-1];
    reg [1:0] faults [0:ROWS*COLS-1];
    reg [31:0] counts [0:ROWS*COLS-1];
    reg [31:0] rng;
    integer c, r;
    initial begin
        rng = SEED;
        for (c = 0; c < COLS; c = c + 1) begin
            for (r = 0; r < ROWS; r = r + 1) begin
                faults[c*ROWS + r] = FAULTS[2*(c*ROWS + r) +: 2];
                counts[c*ROWS + r] = 0;
                cells[c][r] = (FAULTS[2*(c*ROWS + r) +: 2] == 2'd2) ? 1'b1 :
                              (FAULTS[2*(c*ROWS + r) +: 2] == 2'd1) ? 1'b0 : INIT[c*ROWS + r];
            end
        end
    end

    genvar g;
    generate
        if (COMPUTE != 0) begin : compute
            wire [31:0] active = $countones(x);
            for (g = 0; g < COLS; g = g + 1) begin : column
                assign s[g*SW +: SW] = SW'(2 * $countones(x & cells[g]) - active);
            end
        end else begin : storage_only
            assign s = {(COLS*SW){1'b0}};
            /* verilator lint_off UNUSEDSIGNAL */
            wire unused_x = &{1'b0, x};  // no word lines: the inputs are not used
            /* verilator lint_on UNUSEDSIGNAL */
        end
    endgenerate

    genvar h;
    generate
        if (TRANSPOSE != 0) begin : transposed
            wire [31:0] t_active = $countones(xt);
            for (g = 0; g < ROWS; g = g + 1) begin : row
                wire [COLS-1:0] line;
                for (h = 0; h < COLS; h = h + 1) begin : bitline
                    assign line[h] = cells[h][g];
                end
                assign t[g*TW +: TW] = TW'(2 * $countones(xt & line) - t_active);
            end
        end else begin : forward_only
            assign t = {(ROWS*TW){1'b0}};
            /* verilator lint_off UNUSEDSIGNAL */
            wire unused_xt = &{1'b0, xt};  // no transposed read: the column inputs are not used
            /* verilator lint_on UNUSEDSIGNAL */
        end
    endgenerate

    localparam integer IW = (ROWS*COLS > 1) ? $clog2(ROWS*COLS) : 1;
    wire          p_in_range = 32'(pulse_row) < ROWS && 32'(pulse_col) < COLS;
    wire [IW-1:0] p_index = IW'(32'(pulse_col) * ROWS + 32'(pulse_row));
    wire [31:0] r1 = rng ^ (rng << 13);
    wire [31:0] r2 = r1 ^ (r1 >> 17);
    wire [31:0] rng_next = r2 ^ (r2 << 5);
    wire pulse_fails;
    generate
        if (FAIL_THR == 0) begin : never_fails
            assign pulse_fails = 1'b0;
        end else begin : may_fail
            assign pulse_fails = rng_next < FAIL_THR;
        end
    endgenerate
    always @(posedge clk) begin
        if (pulse_valid && p_in_range) begin
            rng <= rng_next;
            if (faults[p_index] == 2'd0
                    && !(ENDURANCE != 0 && counts[p_index] >= ENDURANCE)
                    && !pulse_fails
                    && cells[pulse_col][pulse_row] != pulse_set) begin
                cells[pulse_col][pulse_row] <= pulse_set;
                if (counts[p_index] != 32'hFFFFFFFF) counts[p_index] <= counts[p_index] + 1;
            end
        end
    end

    wire        r_in_range = 32'(read_row) < ROWS && 32'(read_col) < COLS;
    assign read_bit = r_in_range ? cells[read_col][read_row] : 1'b0;
    assign read_count = r_in_range ? counts[IW'(32'(read_col) * ROWS + 32'(read_row))] : 32'd0;
`endif
endmodule
"""


def column_major(values: np.ndarray, bits: int) -> int:
    """Pack (rows, cols) values as a parameter: element (r, c) at bits*(c*rows + r)."""
    flat = values.T.reshape(-1).astype(object)
    out = 0
    for i in np.flatnonzero(flat):
        out |= int(flat[i]) << (bits * int(i))
    return out


def _bits(n: int) -> int:
    """Width of an unsigned address for values 0..n-1 (at least 1)."""
    return max(1, (n - 1).bit_length())


def add_tree(values):
    """Sum of ``values`` as a balanced tree of adders."""
    values = list(values)
    while len(values) > 1:
        nxt = [values[i] + values[i + 1] for i in range(0, len(values) - 1, 2)]
        if len(values) % 2:
            nxt.append(values[-1])
        values = nxt
    return values[0]


def sum_width(rows: int) -> int:
    """Signed width of a column sum in [-rows, rows]."""
    return rows.bit_length() + 1


class CrossbarTile(wiring.Component):
    """One crossbar array of ``rows`` x ``cols`` cells starting as ``cells`` (rows, cols) in {0,1}.

    Device effects (see :mod:`rrambnn.gen.device`): ``faults`` (rows, cols) codes 0/1/2,
    ``seed`` of the tile's pulse generator, ``fail_threshold`` (32-bit), ``endurance``
    (0 = unlimited). Ports: ``x`` (word-line inputs), ``sums`` (flat, ``sum_width`` bits
    per column), a pulse port, and a read port giving a cell's state and switch count.
    ``compute=False``: a storage-only array (the magnitude bits of multi-bit weights), whose
    column sums are 0. ``transposed``: the transposed read, ``xt`` (column inputs) -> ``tsums``
    (flat, ``sum_width(cols)`` bits per row).
    """

    def __init__(self, cells, *, faults=None, seed: int = 0x1234567, fail_threshold: int = 0,
                 endurance: int = 0, compute: bool = True, transposed: bool = False, analog=None):
        cells = np.asarray(cells)
        if cells.ndim != 2 or cells.shape[0] < 1 or cells.shape[1] < 1:
            raise ValueError(f"Crossbar cells must be a non-empty 2-D array, not shape {cells.shape}")
        if not np.isin(cells, (0, 1)).all():
            raise ValueError("Crossbar cells must be 0 (HRS) or 1 (LRS)")
        faults = np.zeros(cells.shape, np.int8) if faults is None else np.asarray(faults)
        if faults.shape != cells.shape or not np.isin(faults, (0, 1, 2)).all():
            raise ValueError("Crossbar faults must match the cells' shape, with codes 0, 1 or 2")
        for name, v in (("seed", seed), ("fail threshold", fail_threshold), ("endurance", endurance)):
            if not isinstance(v, (int, np.integer)) or not 0 <= v < 2 ** 32:
                raise ValueError(f"Crossbar {name} must be a 32-bit unsigned integer, not {v!r}")
        if seed == 0:
            raise ValueError("Crossbar seed must not be 0 (xorshift32 would stay at 0)")
        self.rows, self.cols = cells.shape
        self.cells = cells.astype(np.uint8)
        self.faults = faults.astype(np.uint8)
        self.seed, self.fail_threshold, self.endurance = int(seed), int(fail_threshold), int(endurance)
        self.compute = bool(compute)
        if not isinstance(transposed, bool):
            raise TypeError(f"Crossbar transposed must be a bool, not {transposed!r}")
        if transposed and not self.compute:
            raise ValueError("A storage-only crossbar has no transposed read")
        self.transposed = transposed
        self.sw = sum_width(self.rows)
        self.tsw = sum_width(self.cols) if transposed else 1
        self.rw, self.cw = _bits(self.rows), _bits(self.cols)
        super().__init__({
            "x": In(self.rows),
            "sums": Out(self.cols * self.sw),
            "pulse_valid": In(1),
            "pulse_row": In(self.rw),
            "pulse_col": In(self.cw),
            "pulse_set": In(1),
            "read_row": In(self.rw),
            "read_col": In(self.cw),
            "read_bit": Out(1),
            "read_count": Out(32),
            **({"xt": In(self.cols), "tsums": Out(self.rows * self.tsw)} if transposed else {}),
            **({"currents": Out(self.cols * analog.aw), "squares": Out(self.cols * analog.vw)} if analog else {}),
        })
        self.analog = analog  # analog reads: a rrambnn.hw.analog.TileAnalog

    def row_sum(self, r: int):
        """Row r of the transposed read (signed)."""
        return self.tsums[r * self.tsw:(r + 1) * self.tsw].as_signed()

    def column_sum(self, j: int):
        return self.sums[j * self.sw:(j + 1) * self.sw].as_signed()

    def elaborate(self, platform):
        m = Module()
        n = self.rows * self.cols
        common = dict(
            p_ROWS=self.rows, p_COLS=self.cols, p_SW=self.sw, p_RW=self.rw, p_CW=self.cw,
            p_INIT=Const(column_major(self.cells, 1), n),
            p_FAULTS=Const(column_major(self.faults, 2), 2 * n),
            p_SEED=Const(self.seed, 32), p_FAIL_THR=Const(self.fail_threshold, 32),
            p_ENDURANCE=Const(self.endurance, 32), p_COMPUTE=int(self.compute),
            p_TRANSPOSE=int(self.transposed), p_TW=self.tsw,
            i_xt=self.xt if self.transposed else Const(0, self.cols),
            o_t=self.tsums if self.transposed else Signal(self.rows, name="no_t"),
            i_clk=ClockSignal(),  # no reset: cells are non-volatile
            i_x=self.x, o_s=self.sums,
            i_pulse_valid=self.pulse_valid, i_pulse_row=self.pulse_row,
            i_pulse_col=self.pulse_col, i_pulse_set=self.pulse_set,
            i_read_row=self.read_row, i_read_col=self.read_col, o_read_bit=self.read_bit,
            o_read_count=self.read_count,
        )
        if self.analog:
            m.submodules.array = self.analog.instance(self, common)
        else:
            m.submodules.array = Instance(MODULE_NAME, **common)
        return m
