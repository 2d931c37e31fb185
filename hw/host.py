"""The board's host link: the emulation twin behind a UART, speaking a small byte protocol.

Host to board (every command starts with an opcode byte):

* ``Q`` (0x51): query. Reply: ``R`` ``B``, protocol version, number of layers ``L``, output
  stage (0 priority, 1 argmax), the design (0 emulation twin, 1 macro periphery of an external
  crossbar macro), the ``L + 1`` layer sizes, then per layer ``lanes`` and
  ``chunk`` (an event-driven layer, :mod:`rrambnn.hw.sparse`: its row lanes and 0; all sizes
  16-bit little endian), then the byte lengths of an image and of a
  write, then the clock in Hz (32-bit). The host checks it against the network it means to run.
* ``I`` (0x49) + image bytes: classify. Pixel ``i`` is bit ``i % 8`` of byte ``i // 8``.
  Reply: one byte, the class in bits 0-6 and ``hit`` (some output neuron fired) in bit 7.
  Images may be sent back to back; replies come in order.
* ``W`` (0x57) + write bytes: one cell or one threshold of the twin
  (:meth:`rrambnn.hw.folded.TwinNetwork.cell_write` / ``threshold_write``, the packed
  ``wr`` payload, little endian). It waits for the images in flight; reply ``K``.
* ``B`` (0x42) + count ``N`` (32-bit little endian, at least 1) + image bytes: throughput
  on the board. Once nothing is in flight the image is fed ``N`` times back to back, as fast as
  the twin takes it; reply: the last result byte, then the cycles from the first image offered
  to the ``N``-th result (32-bit little endian).
* anything else: reply ``?``.

A command whose bytes stop coming is dropped: when no byte arrives for ``timeout`` cycles
(default: a tenth of a second at the board's clock) in the middle of a command, the link
forgets the partial command and waits for an opcode again (no reply), so a host that was cut
off mid-command is back in step after a pause; :func:`rrambnn.sim.formal` proves that any
byte sequence followed by silence leaves the link idle.

Replies leave in command order: a query or a write is answered only after every image before
it has left. Received bytes wait in a 16-byte queue and replies in a 64-byte queue, so a host
never needs to pause between commands at the UART's rate (a byte that still finds the receive
queue full is lost and lights the ``error`` output).
"""


from amaranth import Array, Cat, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from rrambnn.hw.interfaces import CoreSignature
from rrambnn.hw.uart import UARTRx, UARTTx

PROTOCOL_VERSION = 1
OP_QUERY, OP_IMAGE, OP_WRITE, OP_BENCH = 0x51, 0x49, 0x57, 0x42
REPLY_OK, REPLY_UNKNOWN = 0x4B, 0x3F


def nbytes(bits: int) -> int:
    return -(-bits // 8)


def check_core(net):
    """``net`` if it is a classifier core the host link can drive: the ports of a
    :class:`rrambnn.hw.interfaces.CoreSignature` (``i``, ``o``, ``wr``, ``idle``) for its ``arch``
    and ``wr_layout``, and the query's ``output``, ``kind`` and ``fold()`` (an emulation twin
    of :mod:`rrambnn.hw.folded`, a :class:`rrambnn.hw.macro.MacroPeriphery`)."""
    try:
        core = CoreSignature(net.arch[0], net.arch[-1], net.wr_layout)
    except (AttributeError, TypeError, IndexError):
        core = None
    if (core is None or not core.implemented_by(net)
            or not all(hasattr(net, name) for name in ("output", "kind", "fold"))):
        raise TypeError(f"Host link needs a classifier core (the ports i, o, wr, idle of a CoreSignature, "
                        f"as an emulation twin or a MacroPeriphery has), not {net!r}")
    return net


def query_reply(net, clock_hz: int = 0) -> bytes:
    """The bytes a board running ``net`` (a classifier core: an emulation twin or a MacroPeriphery,
    see :func:`check_core`) at ``clock_hz`` (0: unknown) answers to ``Q``."""
    def u16(v):
        return int(v).to_bytes(2, "little")
    out = bytearray(b"RB")
    fold = net.fold()
    out += bytes([PROTOCOL_VERSION, len(fold), 0 if net.output == "priority" else 1, net.kind])
    for n in net.arch:
        out += u16(n)
    for lanes, chunk in fold:
        out += u16(lanes) + u16(chunk)
    out += u16(nbytes(net.arch[0])) + u16(nbytes(net.wr_layout.size))
    out += int(clock_hz).to_bytes(4, "little")
    return bytes(out)


class HostLink(wiring.Component):
    """A classifier core (an emulation twin or a MacroPeriphery, see :func:`check_core`) behind a UART
    (``rx``/``tx``; ``divisor`` cycles per bit). ``error``: a received byte was lost or badly
    framed (sticky, for an LED). ``idle``: waiting for an opcode, nothing received, in flight or
    waiting to be sent. ``timeout``: cycles without a byte after which a partial command is
    dropped. ``uart=False`` leaves the UART out: bytes come and go as streams (``bytes_in``,
    ``bytes_out``), for the formal proofs."""

    STATES = ("OPCODE", "IMAGE", "WRITE", "BENCH_COUNT", "SEND_IMAGE", "BENCH_WAIT", "BENCH_REPLY", "SEND_WRITE",
              "REPLY", "INFO")

    def __init__(self, net, divisor: int, clock_hz: int = 0, *, timeout: int | None = None, uart: bool = True):
        check_core(net)
        if net.arch[-1] > 128:
            raise ValueError(f"Host link replies carry a 7-bit class: at most 128 outputs, not {net.arch[-1]}")
        if timeout is None:
            timeout = max(clock_hz // 10, 10_000 * divisor)  # 0.1 s, at least 1,000 byte times
        if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 1:
            raise ValueError(f"Host link timeout must be a positive number of cycles, not {timeout!r}")
        self.net, self.clock_hz, self.timeout, self.uart = net, int(clock_hz), timeout, bool(uart)
        self.uart_rx, self.uart_tx = (UARTRx(divisor), UARTTx(divisor)) if uart else (None, None)
        self.info = query_reply(net, clock_hz)
        ports = {"rx": In(1, init=1), "tx": Out(1, init=1)} if uart else {
            "bytes_in": In(stream.Signature(8)), "bytes_out": Out(stream.Signature(8))}
        super().__init__({**ports, "error": Out(1), "idle": Out(1)})
        # a bench run's state, named here so that the formal harness can state its invariants
        self.bench = Signal(name="bench")  # a bench command is being served
        self.bench_running = Signal(name="running")  # its images are in the core
        self.bench_sent = Signal(32, name="sent")
        self.bench_done = Signal(32, name="done")
        self.bench_reps = Signal(32, name="reps", reset_less=True)
        # the parser's state (one flag per state) and byte counter, for the same purpose
        self.in_state = {name: Signal(name=f"in_{name.lower()}") for name in self.STATES}
        self.count = Signal(range(max(nbytes(net.arch[0]), nbytes(net.wr_layout.size), len(self.info)) + 1),
                            name="count")

    def elaborate(self, platform):
        m = Module()
        net = self.net
        m.submodules.net = net
        m.submodules.rx_fifo = fifo = SyncFIFOBuffered(width=8, depth=16)
        # replies queue here, so a long reply never stops the parser (and the receiver overruns)
        m.submodules.tx_fifo = txq = SyncFIFOBuffered(width=8, depth=64)
        if self.uart:
            m.submodules.uart_rx = urx = self.uart_rx
            m.submodules.uart_tx = utx = self.uart_tx
            m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx), self.error.eq(urx.overrun | urx.frame_error)]
            byte_in, byte_out = urx.o, utx.i
        else:
            byte_in, byte_out = self.bytes_in, self.bytes_out
        m.d.comb += [byte_out.payload.eq(txq.r_data), byte_out.valid.eq(txq.r_rdy), txq.r_en.eq(byte_out.ready),
                     fifo.w_data.eq(byte_in.payload), fifo.w_en.eq(byte_in.valid), byte_in.ready.eq(fifo.w_rdy)]
        byte = fifo.r_data
        # a partial command is dropped after `timeout` cycles without a byte
        quiet = Signal(range(self.timeout + 1), name="quiet_cycles")
        timed_out = Signal()
        m.d.comb += timed_out.eq((quiet == self.timeout) & ~fifo.r_rdy)

        n_img, n_wr = nbytes(net.arch[0]), nbytes(net.wr_layout.size)
        shift = Signal(8 * max(n_img, n_wr), reset_less=True)
        count = self.count
        drained = Signal()  # nothing in flight and no result waiting
        m.d.comb += drained.eq(net.idle)

        # replies from the command parser (images' replies come straight from the network)
        result = Signal(8)
        reply = Signal(8, name="reply_reg")
        reply_byte = Signal(8)
        reply_valid = Signal()
        rom = Array(Const(b, 8) for b in self.info)

        # bench runs: N copies of one image, results swallowed and counted, cycles timed
        bench = self.bench
        running = self.bench_running
        reps, sent, done = self.bench_reps, self.bench_sent, self.bench_done
        cycles = Signal(32)
        last = Signal(8, reset_less=True)
        with m.If(running):
            m.d.sync += cycles.eq(cycles + 1)
        with m.If(running & net.o.valid):
            m.d.sync += [done.eq(done + 1), last.eq(result)]
            with m.If(done + 1 >= reps):
                m.d.sync += running.eq(0)

        with m.FSM(name="host") as fsm:
            with m.State("OPCODE"):
                m.d.comb += fifo.r_en.eq(1)
                with m.If(fifo.r_rdy):
                    m.d.sync += count.eq(0)
                    with m.Switch(byte):
                        with m.Case(OP_QUERY):
                            m.next = "INFO"
                        with m.Case(OP_IMAGE):
                            m.next = "IMAGE"
                        with m.Case(OP_WRITE):
                            m.next = "WRITE"
                        with m.Case(OP_BENCH):
                            m.next = "BENCH_COUNT"
                        with m.Default():
                            m.d.sync += reply.eq(REPLY_UNKNOWN)
                            m.next = "REPLY"
            for state, n, target in (("IMAGE", n_img, "SEND_IMAGE"), ("WRITE", n_wr, "SEND_WRITE")):
                with m.State(state):  # bytes arrive least significant first
                    m.d.comb += fifo.r_en.eq(1)
                    with m.If(fifo.r_rdy):
                        m.d.sync += [shift.eq(Cat(shift[8:], byte) if len(shift) > 8 else byte),
                                     count.eq(count + 1)]
                        with m.If(count == n - 1):
                            m.next = target
                    with m.Elif(timed_out):  # the rest of the command never came
                        m.d.sync += bench.eq(0)
                        m.next = "OPCODE"
            with m.State("BENCH_COUNT"):
                m.d.comb += fifo.r_en.eq(1)
                with m.If(fifo.r_rdy):
                    m.d.sync += [reps.eq(Cat(reps[8:], byte)), count.eq(count + 1)]
                    with m.If(count == 3):
                        m.d.sync += [count.eq(0), bench.eq(1), cycles.eq(0), done.eq(0)]
                        m.next = "IMAGE"
                with m.Elif(timed_out):
                    m.next = "OPCODE"
            # the payloads sit at the top of the shift register once all bytes are in
            top_img = shift[len(shift) - 8 * n_img:]
            top_wr = shift[len(shift) - 8 * n_wr:]
            with m.State("SEND_IMAGE"):
                m.d.comb += [net.i.payload.eq(top_img[:net.arch[0]]), net.i.valid.eq(~bench | drained | running)]
                with m.If(bench & net.i.valid):
                    m.d.sync += running.eq(1)
                with m.If(net.i.valid & net.i.ready):
                    with m.If(~bench):
                        m.next = "OPCODE"
                    with m.Else():
                        m.d.sync += sent.eq(sent + 1)
                        with m.If(sent + 1 >= reps):
                            m.next = "BENCH_WAIT"
            with m.State("BENCH_WAIT"):  # the results of a bench run are counted, not sent
                with m.If(~running):
                    m.d.sync += [bench.eq(0), sent.eq(0), count.eq(0)]
                    m.next = "BENCH_REPLY"
            with m.State("BENCH_REPLY"):
                m.d.comb += [reply_valid.eq(1), reply_byte.eq(Cat(last, cycles).word_select(count, 8))]
                with m.If(txq.w_rdy):
                    m.d.sync += count.eq(count + 1)
                    with m.If(count == 4):
                        m.next = "OPCODE"
            with m.State("SEND_WRITE"):
                m.d.comb += [net.wr.payload.eq(top_wr[:net.wr_layout.size]), net.wr.valid.eq(1)]
                with m.If(net.wr.ready):  # the write is done (a cell write-verified, for the macro periphery)
                    m.d.sync += reply.eq(REPLY_OK)
                    m.next = "REPLY"
            with m.State("REPLY"):
                m.d.comb += [reply_valid.eq(drained), reply_byte.eq(reply)]
                with m.If(drained & ~net.o.valid & txq.w_rdy):
                    m.next = "OPCODE"
            with m.State("INFO"):
                m.d.comb += [reply_valid.eq(drained), reply_byte.eq(rom[count])]
                with m.If(drained & ~net.o.valid & txq.w_rdy):
                    m.d.sync += count.eq(count + 1)
                    with m.If(count == len(self.info) - 1):
                        m.next = "OPCODE"

        receiving = fsm.ongoing("IMAGE") | fsm.ongoing("WRITE") | fsm.ongoing("BENCH_COUNT")
        m.d.comb += [flag.eq(fsm.ongoing(name)) for name, flag in self.in_state.items()]
        with m.If(receiving & ~fifo.r_rdy & ~timed_out):
            m.d.sync += quiet.eq(quiet + 1)
        with m.Else():
            m.d.sync += quiet.eq(0)
        m.d.comb += self.idle.eq(fsm.ongoing("OPCODE") & ~fifo.r_rdy & net.idle & ~net.o.valid & ~txq.r_rdy)

        # one reply queue: results first (a parser reply waits until nothing is in flight)
        m.d.comb += result.eq(Cat(net.o.payload.cls, Const(0, 7 - len(net.o.payload.cls)), net.o.payload.hit))
        with m.If(running):
            m.d.comb += net.o.ready.eq(1)
        with m.Elif(net.o.valid):
            m.d.comb += [txq.w_data.eq(result), txq.w_en.eq(1), net.o.ready.eq(txq.w_rdy)]
        with m.Else():
            m.d.comb += [txq.w_data.eq(reply_byte), txq.w_en.eq(reply_valid)]
        return m
