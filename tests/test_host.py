"""The board's host link: UART, protocol and the emulation twin behind it, in Amaranth
simulation against the golden model; the host tool against a board double on a pseudo-terminal."""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from rrambnn.errors import RrambnnError
from rrambnn.fpga.host import (Board, decode_result, encode_bench, encode_image, encode_write, parse_query,
                               twin_for)
from rrambnn.gen.network import random_network
from rrambnn.hw.folded import EventNetwork, FoldedNetwork
from rrambnn.hw.host import HostLink, query_reply
from rrambnn.hw.uart import UARTRx, UARTTx
from conftest import network_and_images

DIV = 5


def uart_bits(data: bytes, rng, max_gap=3):
    """Line levels, one per bit time, for ``data`` (8N1) with random idle gaps."""
    for byte in data:
        yield from [1] * rng.randrange(max_gap + 1)
        yield 0
        yield from ((byte >> i) & 1 for i in range(8))
        yield 1


def decode_line(samples, div):
    """Bytes from a per-cycle record of a UART line (sampled mid-bit)."""
    out, i = [], 0
    while i < len(samples):
        if samples[i] == 0:
            if i + div * 9 + div // 2 >= len(samples):
                break  # a frame still arriving
            bits = [samples[i + div * (b + 1) + div // 2] for b in range(8)]
            assert samples[i + div * 9 + div // 2] == 1, "stop bit"
            out.append(sum(bit << b for b, bit in enumerate(bits)))
            i += div * 9 + div // 2
        else:
            i += 1
    return bytes(out)


def run_link(dut, data: bytes, reply_len: int, seed: int):
    rng = random.Random(seed)
    line = []

    async def driver(ctx):
        for level in uart_bits(data, rng):
            ctx.set(dut.rx, level)
            await ctx.tick().repeat(DIV)

    async def monitor(ctx):
        extra = None  # once the expected bytes are in, listen a while for unexpected ones
        while extra is None or extra > 0:
            _, _, tx = await ctx.tick().sample(dut.tx)
            line.append(tx)
            if extra is not None:
                extra -= 1
            elif len(line) % (DIV * 10) == 0 and len(decode_line(line, DIV)) >= reply_len:
                extra = DIV * 30

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(driver)
    sim.add_testbench(monitor)
    sim.run()
    return decode_line(line, DIV)


def test_uart_loopback():
    rx, tx = UARTRx(DIV), UARTTx(DIV)
    data = bytes(random.Random(1).randrange(256) for _ in range(20))
    got = []
    rng = random.Random(2)

    async def driver(ctx):
        for level in uart_bits(data, rng):
            ctx.set(rx.rx, level)
            await ctx.tick().repeat(DIV)

    async def monitor(ctx):
        while len(got) < len(data):
            _, _, valid, payload = await ctx.tick().sample(rx.o.valid, rx.o.payload)
            if valid:
                got.append(payload)

    from amaranth import Module
    m = Module()
    m.submodules.rx, m.submodules.tx = rx, tx
    sim = Simulator(m)
    sim.add_clock(1e-8)
    ctx_ready = rx.o.ready
    sim.add_testbench(driver)
    sim.add_testbench(monitor)

    async def take(ctx):
        ctx.set(ctx_ready, 1)
    sim.add_testbench(take)
    sim.run()
    assert bytes(got) == data


def test_divisor_is_checked():
    with pytest.raises(ValueError, match="UART divisor must be an integer of at least 4 cycles per bit, not 2"):
        UARTRx(2)


@pytest.mark.parametrize("arch, lanes, chunks, rows, output, seed", [
    ("20-9-4", [3, 2], [8, 9], None, "priority", 1),
    ("17-6-3", 1, None, None, "argmax", 2),
    ("20-9-4", None, None, [4, 3], "argmax", 3),  # event-driven layers
])
def test_host_link_matches_golden(arch, lanes, chunks, rows, output, seed):
    """Query, images, writes (cells and thresholds), an unknown opcode, more images: every
    reply byte as the golden model says."""
    rng = np.random.default_rng(seed)
    net = random_network(arch, rng, output_mode=output)
    if rows:
        twin = EventNetwork(net.cells, net.thresholds, rows=rows, output=output)
    else:
        twin = FoldedNetwork(net.cells, net.thresholds, lanes=lanes, chunks=chunks, output=output)
    dut = HostLink(twin, DIV, clock_hz=12_345_678)
    x = rng.integers(0, 2, (12, net.arch[0])).astype(np.uint8)
    before = net.forward(x)
    writes = [twin.cell_write(0, 3, 2, 1 - int(net.cells[0][3, 2])), twin.threshold_write(1, 1, -2),
              twin.cell_write(1, 5, 0, 1 - int(net.cells[1][5, 0]))]
    net.weights[0][3, 2] *= -1
    net.weights[1][5, 0] *= -1
    net.thresholds[1][1] = -2
    net.__post_init__()
    after = net.forward(x)
    data = b"Q" + b"".join(encode_image(r) for r in x) + b"".join(encode_write(twin, w) for w in writes)
    data += b"Z" + b"".join(encode_image(r) for r in x)
    n_bench = 9
    data += encode_image(x[0]) + encode_bench(x[1], n_bench) + encode_image(x[2])
    info = query_reply(twin, 12_345_678)
    want = info
    want += bytes(int(c) | (int(h) << 7) for c, h in zip(before.labels(output), before.hit))
    want += b"KKK?"
    want += bytes(int(c) | (int(h) << 7) for c, h in zip(after.labels(output), after.hit))
    res = [int(c) | (int(h) << 7) for c, h in zip(after.labels(output), after.hit)]
    want += bytes([res[0], res[1]])  # then the bench run's 4-byte cycle count, then image 2
    got = run_link(dut, data, len(want) + 5, seed)
    assert got[:len(want)] == want and got[-1] == res[2] and len(got) == len(want) + 5
    cycles = int.from_bytes(got[len(want):len(want) + 4], "little")
    # N images back to back: (N - 1) intervals plus one image's way through the layers
    interval, latency = twin.interval, twin.latency
    if rows:  # the pace of this image on the written cells
        model = EventNetwork(net.cells, net.thresholds, rows=rows, output=output).timing(x[1:2].repeat(n_bench, 0))
        interval, latency = model["interval"], model["latency"]
    assert (n_bench - 1) * interval <= cycles <= n_bench * interval + latency
    parsed = parse_query(info)
    if rows:  # the host tool rebuilds the same event-driven twin from the query reply
        assert parsed.lanes == tuple(rows) and parsed.chunks == (0, 0)
        rebuilt, reply = twin_for(net, parsed)
        assert rebuilt.event and reply == info
    assert parsed.arch == net.arch and parsed.output == output and parsed.clock_hz == 12_345_678
    assert [decode_result(b) for b in got[len(info):len(info) + 3]] == \
        [(int(c), int(h)) for c, h in zip(before.labels(output)[:3], before.hit[:3])]


class BoardDouble:
    """A board in Python: the golden network behind the byte protocol (for the host tool; a
    bench run reports the cycles of the handshake model)."""

    def __init__(self, net, lanes, chunks):
        self.net = net
        self.twin = FoldedNetwork(net.cells, net.thresholds, lanes=lanes, chunks=chunks, output=net.output_mode)
        self.inbox, self.outbox = bytearray(), bytearray()
        self.n_img = -(-net.arch[0] // 8)
        self.n_wr = -(-self.twin.wr_layout.size // 8)

    def write(self, data):
        self.inbox += data
        while self.inbox:
            op = self.inbox[0]
            if op == ord("Q"):
                self.outbox += query_reply(self.twin)
                del self.inbox[:1]
            elif op == ord("I") and len(self.inbox) > self.n_img:
                bits = np.unpackbits(np.frombuffer(bytes(self.inbox[1:1 + self.n_img]), np.uint8), bitorder="little")
                t = self.net.forward(bits[None, :self.net.arch[0]])
                self.outbox.append(int(t.labels(self.net.output_mode)[0]) | (int(t.hit[0]) << 7))
                del self.inbox[:1 + self.n_img]
            elif op == ord("W") and len(self.inbox) > self.n_wr:
                self.outbox += b"K"
                del self.inbox[:1 + self.n_wr]
            elif op == ord("B") and len(self.inbox) > 4 + self.n_img:
                n = int.from_bytes(self.inbox[1:5], "little")
                bits = np.unpackbits(np.frombuffer(bytes(self.inbox[5:5 + self.n_img]), np.uint8), bitorder="little")
                t = self.net.forward(bits[None, :self.net.arch[0]])
                self.outbox.append(int(t.labels(self.net.output_mode)[0]) | (int(t.hit[0]) << 7))
                self.outbox += int((n - 1) * self.twin.interval + self.twin.latency).to_bytes(4, "little")
                del self.inbox[:5 + self.n_img]
            else:
                break

    def read(self, n):
        out = bytes(self.outbox[:n])
        del self.outbox[:n]
        return out


def test_host_tool_against_a_board_double(rng):
    net = random_network("30-8-4", rng, output_mode="priority")
    board = Board(BoardDouble(net, [2, 4], [10, 8]), timeout=0.2)
    info = board.query()
    assert info.arch == (30, 8, 4) and info.lanes == (2, 4) and info.chunks == (10, 8)
    x = rng.integers(0, 2, (37, 30)).astype(np.uint8)
    got = board.classify(x, window=8)
    t = net.forward(x)
    assert got[:, 0].tolist() == t.labels("priority").tolist() and got[:, 1].tolist() == t.hit.astype(int).tolist()
    assert board.program(net) == 30 * 8 + 8 + 8 * 4 + 4
    with pytest.raises(RrambnnError, match="images must have 30 pixels for this board, not shape"):
        board.classify(x[:, :29])
    other = random_network("30-9-4", rng)
    with pytest.raises(RrambnnError, match="the board runs a 30-8-4 network, the weights are 30-9-4"):
        twin_for(other, info)


def test_a_bench_reply_faster_than_one_image_a_cycle_is_one_error(rng):
    """A board that times N images in fewer than N cycles (0 included) is not believed."""
    net = random_network("30-8-4", rng, output_mode="priority")
    double = BoardDouble(net, [2, 4], [10, 8])
    board = Board(double, timeout=0.2)
    x = rng.integers(0, 2, 30).astype(np.uint8)
    assert board.bench(x, 5)["cycles"] >= 5
    double.twin.interval, double.twin.latency = 0, 0  # the double now replies 0 cycles
    with pytest.raises(RrambnnError, match="timed 5 images in 0 cycles: not a reply this tool trusts"):
        board.bench(x, 5)


def test_silent_port_is_one_clear_error():
    class Silent:
        def write(self, data):
            pass

        def read(self, n):
            return b""
    with pytest.raises(RrambnnError, match="no reply from the board within 0.1 s after 0 of 6 bytes"):
        Board(Silent(), timeout=0.1).query()


# the same link as Verilog on Verilator (cocotb): bytes on the UART lines against the golden model
@pytest.mark.parametrize("arch, lanes, chunks, rows, n, seed", [
    ("23-17-9-5", [4, 3, 2], [8, 17, 3], None, 200, 3),
    ("23-17-9-5", None, None, [5, 4, 3], 200, 5),  # event-driven layers
    pytest.param("400-128-128-10", 1, [200, 64, 16], None, 300, 4, marks=pytest.mark.slow),  # the iCEBreaker design
    # the ULX3S build's design: a bench run's images queue up behind its slowest layer
    pytest.param("400-128-128-10", None, None, [32, 24, 16], 100, 1, marks=pytest.mark.slow),
])
def test_host_link_verilog_matches_golden(arch, lanes, chunks, rows, n, seed, mnist_test):
    from rrambnn.sim.chip_sim import simulate_host
    net, x = network_and_images(arch, n, seed, mnist_test)
    res = simulate_host(net, lanes, chunks, x, segment=16, rows=rows, seed=seed, bench=100)
    assert res["passed"] and res["mismatches"] == 0 and res["checked"] == n, (res.get("examples"), res["log"])
    assert res["bench"]["images"] == 100
    if rows:  # the board's cycle count is the cycle model's, exactly
        assert res["bench"]["cycles"] == res["bench"]["model_cycles"]


@pytest.mark.slow
def test_host_link_verilog_on_2000_images(mnist_test):
    from rrambnn.gen.network import BinaryNetwork
    from rrambnn.sim.chip_sim import simulate_host
    from rrambnn.weights import shipped
    net = BinaryNetwork.load(shipped())
    x = net.preprocess(mnist_test.images[:2000])
    res = simulate_host(net, 1, [200, 64, 16], x, segment=16, seed=12, writes=50, bench=500)
    assert res["passed"] and res["mismatches"] == 0 and res["checked"] == 2000, (res.get("examples"), res["log"])


def test_an_absurd_baud_rate_is_one_line_before_any_port_or_build():
    from conftest import one_error_line, rr
    one_error_line(rr("board", "info", "--port", "/dev/null", "--baud", "0"), "--baud must be from 300 to 12,000,000")
    one_error_line(rr("fpga", "--board", "icebreaker", "--baud", "99999999999999"), "--baud must be from 300")
