"""cocotb testbench of the board's UART host link (:class:`rrambnn.hw.host.HostLink` around the
emulation twin), speaking the same protocol as the host tool (:mod:`rrambnn.fpga.host`).

The line driver sets ``rx`` bit by bit and the line monitor decodes ``tx`` (8N1, ``divisor``
clocks per bit, random gaps between bytes); the protocol's bytes come from the host tool's
encoders. Sequence: query; random cell and threshold writes; every image, pipelined; a bench
run. Every reply is checked against the golden model (after the writes). Configuration
arrives as JSON through $RRAMBNN_TB_CONFIG (written by
:func:`rrambnn.sim.chip_sim.simulate_host`); the seed is logged.
"""

from __future__ import annotations

import random
import time

import cocotb
from cocotb.triggers import FallingEdge, Timer

from rrambnn.fpga.host import decode_result, encode_bench, encode_image, encode_write
from rrambnn.hw.folded import emulation_twin
from rrambnn.hw.host import REPLY_OK, query_reply
from rrambnn.sim.runner import write_result
from rrambnn.sim.tb_chip import read_config, start

PERIOD_NS = 10


class Line:
    """Both UART lines of the DUT: ``send`` bytes on rx, ``received`` bytes from tx."""

    def __init__(self, dut, divisor: int, rng: random.Random, max_gap: int):
        self.dut, self.bit_ns, self.rng, self.max_gap = dut, divisor * PERIOD_NS, rng, max_gap
        self.received = bytearray()

    async def send(self, data: bytes):
        for byte in data:
            gap = self.rng.randrange(self.max_gap + 1)
            if gap:
                await Timer(gap * self.bit_ns, unit="ns")
            for level in (0, *((byte >> i) & 1 for i in range(8)), 1):
                self.dut.rx.value = level
                await Timer(self.bit_ns, unit="ns")

    async def listen(self):
        while True:
            await FallingEdge(self.dut.tx)
            # mid-bit, and half a clock off the edges at which tx changes
            await Timer(self.bit_ns * 3 // 2 + PERIOD_NS // 2, unit="ns")
            byte = 0
            for i in range(8):
                byte |= int(self.dut.tx.value) << i
                await Timer(self.bit_ns, unit="ns")
            assert int(self.dut.tx.value) == 1, "stop bit"
            self.received.append(byte)

    async def expect(self, start: int, n: int, timeout_bits: int):
        """Wait until ``n`` bytes from index ``start`` on have arrived; return them."""
        waited = 0
        while len(self.received) < start + n:
            await Timer(self.bit_ns * 10, unit="ns")
            waited += 10
            assert waited < timeout_bits, f"timeout: {len(self.received) - start} of {n} reply bytes"
        return bytes(self.received[start:start + n])


@cocotb.test()
async def host_link_matches_golden(dut):
    cfg, net, x, seed, rng = read_config(dut)
    twin = emulation_twin(net, **cfg["twin"])
    divisor = int(cfg["divisor"])

    await start(dut, [(dut.rx, 1)], cycles=3, period_ns=PERIOD_NS)
    line = Line(dut, divisor, rng, int(cfg.get("max_gap", 2)))
    cocotb.start_soon(line.listen())
    t0 = time.perf_counter()
    result = {"seed": seed, "images": len(x)}

    # query
    mark = len(line.received)
    await line.send(b"Q")
    info = query_reply(twin, int(cfg["clock_hz"]))
    got = await line.expect(mark, len(info), 100 * len(info))
    assert got == info, f"query reply {got!r}, want {info!r}"

    # random writes: flip cells, move thresholds (the golden network follows)
    writes = []
    for _ in range(int(cfg.get("writes", 20))):
        k = rng.randrange(len(net.weights))
        n_in, n_out = net.weights[k].shape
        if rng.random() < 0.7:
            r, c = rng.randrange(n_in), rng.randrange(n_out)
            net.weights[k][r, c] *= -1
            writes.append(twin.cell_write(k, r, c, int(net.weights[k][r, c] > 0)))
        else:
            j = rng.randrange(n_out)
            net.thresholds[k][j] = rng.randrange(-n_in // 4, n_in // 4 + 1)
            writes.append(twin.threshold_write(k, j, int(net.thresholds[k][j])))
    net.__post_init__()
    mark = len(line.received)
    await line.send(b"".join(encode_write(twin, w) for w in writes))
    acks = await line.expect(mark, len(writes), 100 * len(writes) + 1000)
    assert acks == bytes([REPLY_OK]) * len(writes), f"write replies {acks!r}"

    # every image, pipelined: the replies arrive while images are still being sent
    t = net.forward(x)
    want = [(int(c), int(h)) for c, h in zip(t.labels(twin.output), t.hit)]
    mark = len(line.received)
    sender = cocotb.start_soon(line.send(b"".join(encode_image(row) for row in x)))
    replies = await line.expect(mark, len(x), 20 * len(encode_image(x[0])) * len(x) + 1000)
    await sender
    got = [decode_result(b) for b in replies]
    mismatches = [i for i, (g, w) in enumerate(zip(got, want)) if g != w]
    result.update({"checked": len(got), "mismatches": len(mismatches), "writes": len(writes),
                   "examples": [{"image": i, "got": got[i], "want": want[i]} for i in mismatches[:10]]})

    # bench: one image N times back to back, timed by the board
    n_bench = int(cfg.get("bench", 200))
    # an event-driven twin's pace depends on the image (and the cells, after the writes)
    interval, latency, span = twin.interval, twin.latency, None
    if twin.event:
        model = emulation_twin(net, **cfg["twin"]).timing(x[:1].repeat(n_bench, axis=0))
        # the board counts from the first image offered (and taken: nothing is in flight) to the
        # N-th result offered; later images wait in the layers' queues, so the exact span is the
        # model's, not a bound from the first image's latency
        interval, latency = model["interval"], model["latency"]
        span = model["offered"][-1] - model["accept"][0]
    mark = len(line.received)
    await line.send(encode_bench(x[0], n_bench))
    reply = await line.expect(mark, 5, 100 + n_bench * int(interval + 10) // divisor)
    cycles = int.from_bytes(reply[1:], "little")
    result["bench"] = {"images": n_bench, "cycles": cycles, "result": decode_result(reply[0]),
                       "cycles_per_image": round(cycles / n_bench, 3)}
    if span is not None:
        result["bench"]["model_cycles"] = span
    result["wall_s"] = round(time.perf_counter() - t0, 2)
    write_result(cfg, result)
    assert not mismatches, f"{len(mismatches)} mismatches, first {result['examples'][:3]}"
    assert decode_result(reply[0]) == want[0], "bench result"
    if span is not None:
        assert cycles == span, f"bench cycles {cycles}, the cycle model says {span}"
    else:
        assert (n_bench - 1) * interval <= cycles <= n_bench * interval + latency, "bench cycles"
