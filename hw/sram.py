"""The threshold RAM of a multi-level sense stage: a behavioural Verilog SRAM macro.

A layer whose neurons quantise to m-bit codes keeps 2^m - 1 thresholds per neuron. They live in
one RAM of ``words`` = 2^m - 1 words, word l holding every neuron's threshold of level l
(``lanes`` lanes of ``lane`` bits), written one lane at a time and read a whole word at a time
(asynchronously: the ramp presents one level per cycle). On a chip it is an SRAM macro, so like
the crossbar it is a black box to synthesis (:func:`rrambnn.fpga.build.synth_stats`), its bits
reported apart; :data:`RAM_MODULE` is its simulation model, written next to the periphery.
"""

from __future__ import annotations

from amaranth import ClockSignal, Const, Instance, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rrambnn.hw.crossbar import _bits

RAM_NAME = "rrambnn_threshold_ram"

RAM_MODULE = r"""
// rrambnn_threshold_ram: behavioural model of the threshold SRAM macro of a multi-level sense
// stage (written by the rrambnn generator). WORDS words of LANES lanes of LANE bits; word w,
// lane j starts as INIT[(w*LANES + j)*LANE +: LANE]. Lane-enabled synchronous write,
// asynchronous read of a whole word.
module rrambnn_threshold_ram #(
    parameter integer WORDS = 1,
    parameter integer LANES = 1,
    parameter integer LANE = 1,
    parameter integer AW = 1,
    parameter [WORDS*LANES*LANE-1:0] INIT = 0
) (
    input  wire                  clk,
    input  wire [LANES-1:0]      we,
    input  wire [AW-1:0]         waddr,
    input  wire [LANE-1:0]       wdata,
    input  wire [AW-1:0]         raddr,
    output wire [LANES*LANE-1:0] rdata
);
    reg [LANES*LANE-1:0] mem [0:WORDS-1];
    integer w, j;
    initial begin
        for (w = 0; w < WORDS; w = w + 1)
            mem[w] = INIT[w*LANES*LANE +: LANES*LANE];
    end
    always @(posedge clk) begin
        for (j = 0; j < LANES; j = j + 1)
            if (we[j] && waddr < AW'(WORDS)) mem[waddr][j*LANE +: LANE] <= wdata;
    end
    assign rdata = (raddr < AW'(WORDS)) ? mem[raddr] : {LANES*LANE{1'b0}};
endmodule
"""


class ThresholdRAM(wiring.Component):
    """``init``: words x lanes signed thresholds (row = level). ``with_init=False`` leaves the
    INIT parameter at 0 (synthesis of the periphery, where the macro is a black box and a
    megabit literal would only slow the parser down)."""

    def __init__(self, init, lane: int, with_init: bool = True):
        self.words, self.lanes = len(init), len(init[0])
        if self.words < 1 or self.lanes < 1 or any(len(row) != self.lanes for row in init):
            raise ValueError("Threshold RAM needs at least one word of at least one lane, all words alike")
        self.lane, self.aw = lane, _bits(self.words)
        mask = (1 << lane) - 1
        self.with_init = with_init
        self.init_bits = 0 if not with_init else sum((int(v) & mask) << ((w * self.lanes + j) * lane)
                             for w, row in enumerate(init) for j, v in enumerate(row))
        super().__init__({"we": In(self.lanes), "waddr": In(self.aw), "wdata": In(lane),
                          "raddr": In(self.aw), "rdata": Out(self.lanes * lane)})

    @property
    def bits(self) -> int:
        return self.words * self.lanes * self.lane

    def elaborate(self, platform):
        m = Module()
        m.submodules.ram = Instance(
            RAM_NAME, p_WORDS=self.words, p_LANES=self.lanes, p_LANE=self.lane, p_AW=self.aw,
            p_INIT=Const(self.init_bits, self.bits) if self.with_init else 0, i_clk=ClockSignal(), i_we=self.we, i_waddr=self.waddr,
            i_wdata=self.wdata, i_raddr=self.raddr, o_rdata=self.rdata)
        return m
