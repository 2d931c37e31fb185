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
"""

from __future__ import annotations

import numpy as np

from amaranth import ClockSignal, Const, Instance, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

MODULE_NAME = "rrambnn_crossbar"

CROSSBAR_MODULE = r"""
// rrambnn_crossbar: behavioural model of one RRAM crossbar array (simulation model of an
// analog macro; written by the rrambnn generator). Cell (r, c) is INIT[c*ROWS + r];
// 1 = LRS = +1, 0 = HRS = -1. Column c drives s[c*SW +: SW] (signed):
//   s_c = 2*popcount(x & cells_c) - popcount(x)
// Cells are non-volatile (no reset): only programming pulses change them.
module rrambnn_crossbar #(
    parameter integer ROWS = 128,
    parameter integer COLS = 128,
    parameter integer SW = 9,            // width of one signed column sum
    parameter integer RW = 7,            // row address width
    parameter integer CW = 7,            // column address width
    parameter [ROWS*COLS-1:0] INIT = 0   // initial cell states, column-major
) (
    input  wire               clk,
    input  wire [ROWS-1:0]    x,
    output wire [COLS*SW-1:0] s,
    input  wire               pulse_valid,
    input  wire [RW-1:0]      pulse_row,
    input  wire [CW-1:0]      pulse_col,
    input  wire               pulse_set,
    input  wire [RW-1:0]      read_row,
    input  wire [CW-1:0]      read_col,
    output wire               read_bit
);
    reg [ROWS-1:0] cells [0:COLS-1];
    integer c;
    initial begin
        for (c = 0; c < COLS; c = c + 1) cells[c] = INIT[c*ROWS +: ROWS];
    end

    wire [31:0] active = $countones(x);
    genvar g;
    generate
        for (g = 0; g < COLS; g = g + 1) begin : column
            assign s[g*SW +: SW] = SW'(2 * $countones(x & cells[g]) - active);
        end
    endgenerate

    always @(posedge clk) begin
        if (pulse_valid && 32'(pulse_row) < ROWS && 32'(pulse_col) < COLS)
            cells[pulse_col][pulse_row] <= pulse_set;
    end

    assign read_bit = (32'(read_row) < ROWS && 32'(read_col) < COLS) ? cells[read_col][read_row] : 1'b0;
endmodule
"""


def _bits(n: int) -> int:
    """Width of an unsigned address for values 0..n-1 (at least 1)."""
    return max(1, (n - 1).bit_length())


def sum_width(rows: int) -> int:
    """Signed width of a column sum in [-rows, rows]."""
    return rows.bit_length() + 1


class CrossbarTile(wiring.Component):
    """One crossbar array of ``rows`` x ``cols`` cells holding ``cells`` (rows, cols) in {0,1}.

    Ports: ``x`` (word-line inputs), ``sums`` (flat, ``sum_width`` bits per column),
    a pulse port and a read port (see the module docstring).
    """

    def __init__(self, cells):
        cells = np.asarray(cells)
        if cells.ndim != 2 or cells.shape[0] < 1 or cells.shape[1] < 1:
            raise ValueError(f"Crossbar cells must be a non-empty 2-D array, not shape {cells.shape}")
        if not np.isin(cells, (0, 1)).all():
            raise ValueError("Crossbar cells must be 0 (HRS) or 1 (LRS)")
        self.rows, self.cols = cells.shape
        self.cells = cells.astype(np.uint8)
        self.sw = sum_width(self.rows)
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
        })

    def column_sum(self, j: int):
        return self.sums[j * self.sw:(j + 1) * self.sw].as_signed()

    def init_value(self) -> int:
        """INIT parameter: bit c*rows + r is cell (r, c)."""
        flat = self.cells.T.reshape(-1)[::-1]  # MSB first for int parsing
        return int("".join("1" if b else "0" for b in flat), 2) if flat.size else 0

    def elaborate(self, platform):
        m = Module()
        m.submodules.array = Instance(
            MODULE_NAME,
            p_ROWS=self.rows, p_COLS=self.cols, p_SW=self.sw, p_RW=self.rw, p_CW=self.cw,
            p_INIT=Const(self.init_value(), self.rows * self.cols),
            i_clk=ClockSignal(),  # no reset: cells are non-volatile
            i_x=self.x, o_s=self.sums,
            i_pulse_valid=self.pulse_valid, i_pulse_row=self.pulse_row,
            i_pulse_col=self.pulse_col, i_pulse_set=self.pulse_set,
            i_read_row=self.read_row, i_read_col=self.read_col, o_read_bit=self.read_bit,
        )
        return m
