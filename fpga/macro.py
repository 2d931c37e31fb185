"""The macro variant on a board: :class:`rrambnn.hw.macro.MacroPeriphery` behind the UART
host link, its crossbar port on the board's pins (where a test chip is wired).

Pins (3.3 V LVCMOS; ``xb_clk`` is the design clock, forwarded through a DDR output, and every
port signal changes and is sampled on its rising edge):

==============  =========================================  ====================================
signal          iCEBreaker                                 ULX3S
==============  =========================================  ====================================
``xb_dout[7:0]``  PMOD1A pins 1-4, 7-10 (to the macro)       GPIO 0+ 0- 1+ 1- 2+ 2- 3+ 3-
``xb_din[7:0]``   PMOD1B pins 1-4, 7-10 (from the macro)     GPIO 4+ 4- 5+ 5- 6+ 6- 7+ 7-
``xb_dvalid``     PMOD2 pin 1                                GPIO 8+
``xb_rvalid``     PMOD2 pin 2                                GPIO 8-
``xb_clk``        PMOD2 pin 3                                GPIO 9+
==============  =========================================  ====================================
"""


from amaranth import ClockSignal, Module
from amaranth.build import Attrs, Pins, Resource, Subsignal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rrambnn.hw.host import HostLink
from rrambnn.hw.macro import MacroPeriphery, macro_periphery_of

PINS = {
    "ice40": ({"dout": ("1 2 3 4 7 8 9 10", ("pmod", 0)), "din": ("1 2 3 4 7 8 9 10", ("pmod", 1)),
               "dvalid": ("1", ("pmod", 2)), "rvalid": ("2", ("pmod", 2)), "clk": ("3", ("pmod", 2))},
              Attrs(IO_STANDARD="SB_LVCMOS")),
    "ecp5": ({"dout": ("0+ 0- 1+ 1- 2+ 2- 3+ 3-", ("gpio", 0)), "din": ("4+ 4- 5+ 5- 6+ 6- 7+ 7-", ("gpio", 0)),
              "dvalid": ("8+", ("gpio", 0)), "rvalid": ("8-", ("gpio", 0)), "clk": ("9+", ("gpio", 0))},
             Attrs(IO_TYPE="LVCMOS33")),
}
DIRS = {"dout": "o", "din": "i", "dvalid": "o", "rvalid": "i", "clk": "o"}


def crossbar_port_resource(family: str) -> Resource:
    pins, attrs = PINS[family]
    return Resource("xbar", 0, *(Subsignal(name, Pins(p, dir=DIRS[name], conn=conn))
                                 for name, (p, conn) in pins.items()), attrs)


class MacroBoard(wiring.Component):
    """The macro periphery and its host link; the crossbar port as plain signals for the pins."""

    rx: In(1, init=1)
    tx: Out(1, init=1)
    error: Out(1)
    xb_dout: Out(8)
    xb_dvalid: Out(1)
    xb_din: In(8)
    xb_rvalid: In(1)

    def __init__(self, periphery: MacroPeriphery, divisor: int, clock_hz: int):
        self.periphery = periphery
        self.link = HostLink(periphery, divisor, clock_hz=clock_hz)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.link = link = self.link
        p = self.periphery
        m.d.comb += [link.rx.eq(self.rx), self.tx.eq(link.tx), self.error.eq(link.error),
                     self.xb_dout.eq(p.bus_out.payload), self.xb_dvalid.eq(p.bus_out.valid), p.bus_out.ready.eq(1),
                     p.bus_in.payload.eq(self.xb_din), p.bus_in.valid.eq(self.xb_rvalid)]
        return m

    def connect_pins(self, m, platform, family: str):
        """Request the crossbar port's pins and wire them (called by the board top)."""
        platform.add_resources([crossbar_port_resource(family)])
        port = platform.request("xbar", 0, xdr={"clk": 2})
        m.d.comb += [port.dout.o.eq(self.xb_dout), port.dvalid.o.eq(self.xb_dvalid),
                     self.xb_din.eq(port.din.i), self.xb_rvalid.eq(port.rvalid.i),
                     port.clk.o_clk.eq(ClockSignal("sync")), port.clk.o0.eq(1), port.clk.o1.eq(0)]


def macro_design(net, *, f_clk: float, baud: int = 115200):
    """The macro variant's board design for ``net`` and what the report says about it."""
    from rrambnn.errors import RrambnnError
    try:
        periphery = macro_periphery_of(net)
    except ValueError as e:
        raise RrambnnError(str(e)) from None
    divisor = round(f_clk / baud)
    extra = {"variant": "macro", "arch": list(net.arch), "interval_cycles": periphery.interval,
             "crossbar_port": "5-byte frames on xb_dout/xb_dvalid, replies on xb_din/xb_rvalid, xb_clk forwarded",
             "pins": 19, "baud": baud}
    return MacroBoard(periphery, divisor, int(f_clk)), extra
