"""Host side of the board's UART link (the protocol is in :mod:`rrambnn.hw.host`).

:class:`Board` talks to any byte transport with ``write(bytes)`` and ``read(n)`` (a pyserial
port, a pseudo-terminal, a test double); the cocotb testbench of the link encodes and decodes
with the same functions, so the protocol is tested without a board.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from rrambnn.errors import RrambnnError
from rrambnn.gen.network import answers
from rrambnn.hw.host import OP_BENCH, OP_IMAGE, OP_QUERY, OP_WRITE, PROTOCOL_VERSION, REPLY_OK, nbytes

DEFAULT_BAUD = 115200


@dataclasses.dataclass(frozen=True)
class BoardInfo:
    """What a board answers to ``Q``."""
    version: int
    arch: tuple[int, ...]
    lanes: tuple[int, ...]
    chunks: tuple[int, ...]
    output: str
    image_bytes: int
    write_bytes: int
    clock_hz: int
    kind: int = 0  # 0: emulation twin; 1: the macro periphery (the macro variant)


def parse_query(reply: bytes) -> BoardInfo:
    if len(reply) < 6 or reply[:2] != b"RB":
        raise RrambnnError(f"the board's reply to a query is not an rrambnn board's ({reply[:8]!r})")
    version, n_layers, output, kind = reply[2], reply[3], reply[4], reply[5]
    if version != PROTOCOL_VERSION:
        raise RrambnnError(f"the board speaks protocol version {version}, this tool {PROTOCOL_VERSION}")
    want = query_length(n_layers)
    if len(reply) != want:
        raise RrambnnError(f"the board's reply to a query has {len(reply)} bytes, not {want}")
    u16 = [int.from_bytes(reply[i:i + 2], "little") for i in range(6, len(reply) - 4, 2)]
    n = n_layers + 1
    info = BoardInfo(version, tuple(u16[:n]), tuple(u16[n:n + 2 * n_layers:2]),
                     tuple(u16[n + 1:n + 2 * n_layers:2]), "argmax" if output else "priority",
                     u16[n + 2 * n_layers], u16[n + 2 * n_layers + 1], int.from_bytes(reply[-4:], "little"), kind)
    check_board_info(info, output)
    return info


def check_board_info(info: BoardInfo, output: int = 0) -> None:
    """Every field of a query reply must describe a chip this tool can drive; else one line
    naming the field (a board that replies nonsense is not trusted with images). A clock of 0
    means unknown; a chunk of 0 marks an event-driven layer, whose lanes are row lanes."""
    def bad(what):
        raise RrambnnError(f"the board's reply to a query is not a chip this tool can drive: {what}")
    if len(info.arch) < 2 or min(info.arch) < 1:
        bad(f"layer sizes {'-'.join(map(str, info.arch))}")
    for k, lanes in enumerate(info.lanes):
        if not 1 <= lanes <= max(info.arch[k], info.arch[k + 1]):
            bad(f"layer {k}: {lanes} lane(s) for {info.arch[k]} inputs and {info.arch[k + 1]} neurons")
    if info.image_bytes != -(-info.arch[0] // 8):
        bad(f"{info.image_bytes} bytes per image for {info.arch[0]} inputs")
    if info.write_bytes < 1:
        bad("0 bytes per write")
    if output not in (0, 1) or info.kind not in (0, 1):
        bad(f"output stage code {output}, design code {info.kind}")


def query_length(n_layers: int) -> int:
    return 6 + 2 * (n_layers + 1) + 4 * n_layers + 4 + 4


def encode_image(x: np.ndarray) -> bytes:
    """``I`` and the image's bits, pixel i at bit i % 8 of byte i // 8."""
    return bytes([OP_IMAGE]) + np.packbits(np.asarray(x, np.uint8), bitorder="little").tobytes()


def decode_result(byte: int) -> tuple[int, int]:
    """(class, hit) of an image's reply byte."""
    return byte & 0x7F, byte >> 7


def encode_bench(x: np.ndarray, n: int) -> bytes:
    """``B``, the repeat count and the image."""
    if not isinstance(n, int) or not 1 <= n < 2 ** 32:
        raise RrambnnError(f"the bench repeat count must be from 1 to 2**32 - 1, not {n!r}")
    return bytes([OP_BENCH]) + n.to_bytes(4, "little") + encode_image(x)[1:]


def encode_write(twin, payload: dict) -> bytes:
    """``W`` and the packed ``wr`` payload of ``twin`` (an emulation twin or a macro periphery), little endian."""
    value = twin.wr_layout.const(payload).as_value().value
    return bytes([OP_WRITE]) + value.to_bytes(nbytes(twin.wr_layout.size), "little")


def twin_for(net, info: BoardInfo):
    """The design a board described by ``info`` runs (an emulation twin,
    :class:`rrambnn.hw.folded.TwinNetwork`, or a macro periphery), holding ``net``'s weights: it packs
    writes exactly as the board unpacks them. Returns it and the query reply it would give
    (which must equal the board's)."""
    from rrambnn.hw.folded import emulation_twin
    from rrambnn.hw.host import query_reply
    from rrambnn.hw.macro import MacroPeriphery, macro_periphery_of

    if tuple(net.arch) != info.arch:
        raise RrambnnError(f"the board runs a {'-'.join(map(str, info.arch))} network, "
                           f"the weights are {'-'.join(map(str, net.arch))}")
    if info.kind == MacroPeriphery.kind:
        design = macro_periphery_of(net, output=info.output)
    elif all(c == 0 for c in info.chunks):  # event-driven layers report (row lanes, 0)
        design = emulation_twin(net, rows=list(info.lanes), output=info.output)
    else:
        design = emulation_twin(net, lanes=list(info.lanes), chunks=list(info.chunks), output=info.output)
    return design, query_reply(design, info.clock_hz)


class Board:
    """A board running the emulation bitstream, on ``transport``."""

    def __init__(self, transport, *, timeout: float = 2.0, name: str = "the board"):
        self.t, self.timeout, self.name = transport, check_timeout(timeout), name
        self.info = None

    def _read(self, n: int) -> bytes:
        out = bytearray()
        deadline = time.monotonic() + self.timeout
        while len(out) < n:
            chunk = self.t.read(n - len(out))
            if chunk:
                out += chunk
                deadline = time.monotonic() + self.timeout
            elif time.monotonic() > deadline:
                raise RrambnnError(f"no reply from {self.name} within {self.timeout:g} s after {len(out)} of "
                                   f"{n} bytes (is the emulation bitstream loaded, at {DEFAULT_BAUD} baud?)")
        return bytes(out)

    def query(self) -> BoardInfo:
        self.t.write(bytes([OP_QUERY]))
        head = self._read(6)
        if head[:2] != b"RB":
            raise RrambnnError(f"{self.name} does not answer like an rrambnn board ({head!r})")
        self.info = parse_query(head + self._read(query_length(head[3]) - 6))
        return self.info

    def classify(self, x: np.ndarray, *, window: int = 16, progress=None) -> np.ndarray:
        """Classes and hits (n, 2) of images ``x`` (n, n_in); up to ``window`` images in flight."""
        x = np.asarray(x, np.uint8)
        info = self.info or self.query()
        if x.ndim != 2 or x.shape[1] != info.arch[0]:
            raise RrambnnError(f"images must have {info.arch[0]} pixels for this board, not shape {x.shape}")
        out = np.zeros((len(x), 2), np.int64)
        sent = got = 0
        while got < len(x):
            batch = []
            while sent < len(x) and sent - got < window:
                batch.append(encode_image(x[sent]))
                sent += 1
            if batch:
                self.t.write(b"".join(batch))
            n = min(sent - got, max(1, window // 2)) if sent < len(x) else sent - got
            for i, b in enumerate(self._read(n)):
                out[got + i] = decode_result(b)
            got += n
            if progress:
                progress(n)
        return out

    def bench(self, x: np.ndarray, n: int) -> dict:
        """Feed image ``x`` ``n`` times back to back on the board; the board times it."""
        info = self.info or self.query()
        self.t.write(encode_bench(x, n))
        reply = self._read(5)
        cycles = int.from_bytes(reply[1:], "little")
        if cycles < n:  # one image a cycle at the most
            raise RrambnnError(f"{self.name} timed {n:,} images in {cycles:,} cycles: not a reply this tool trusts")
        out = {"images": n, "cycles": cycles, "cycles_per_image": round(cycles / n, 3),
               "result": decode_result(reply[0])}
        if info.clock_hz:
            out["clock_mhz"] = info.clock_hz / 1e6
            out["images_per_s"] = round(n * info.clock_hz / cycles)
        return out

    def write(self, twin, payload: dict) -> None:
        self.t.write(encode_write(twin, payload))
        reply = self._read(1)
        if reply[0] != REPLY_OK:
            raise RrambnnError(f"{self.name} refused a write (reply {reply!r})")

    def program(self, net, *, progress=None) -> int:
        """Write every cell and threshold of ``net`` (the board's fold must match); returns the
        number of writes."""
        info = self.info or self.query()
        twin, _ = twin_for(net, info)
        blobs = []
        for k, (cells, thr) in enumerate(zip(net.cells, net.thresholds)):
            for r, c in np.ndindex(cells.shape):
                blobs.append(encode_write(twin, twin.cell_write(k, r, c, int(cells[r, c]))))
            for j, t in enumerate(thr):
                blobs.append(encode_write(twin, twin.threshold_write(k, j, int(t))))
        step = 64  # writes in flight; every one is acknowledged
        for i in range(0, len(blobs), step):
            part = blobs[i:i + step]
            self.t.write(b"".join(part))
            acks = self._read(len(part))
            if acks != bytes([REPLY_OK]) * len(part):
                raise RrambnnError(f"{self.name} refused a write (replies {acks[:8]!r})")
            if progress:
                progress(len(part))
        return len(blobs)


MIN_BAUD, MAX_BAUD = 300, 12_000_000  # what UARTs and USB bridges run at


def check_baud(baud) -> int:
    """A UART baud rate, checked before a port is opened or a bitstream built."""
    if not isinstance(baud, int) or isinstance(baud, bool) or not MIN_BAUD <= baud <= MAX_BAUD:
        raise RrambnnError(f"--baud must be from {MIN_BAUD:,} to {MAX_BAUD:,}, not {baud!r}")
    return baud


def open_serial(port: str, baud: int = DEFAULT_BAUD):
    check_baud(baud)
    try:
        import serial
    except ImportError:
        raise RrambnnError("talking to a board needs pyserial (pip install pyserial)") from None
    try:
        return serial.serial_for_url(port, baudrate=baud, timeout=0.1)
    except (serial.SerialException, OSError, ValueError) as e:
        raise RrambnnError(f"cannot open serial port {port}: {e}") from None


def check_timeout(timeout) -> float:
    """A reply timeout in seconds, checked before any port is opened."""
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not 0 < timeout <= 3600:
        raise RrambnnError(f"--timeout must be from 0 to 3600 seconds (exclusive of 0), not {timeout!r}")
    return float(timeout)


def bench_against_golden(board: Board, net, x: np.ndarray, repeat: int) -> dict:
    """One image fed ``repeat`` times back to back, timed on the board; its result against the
    golden model."""
    info = board.info or board.query()
    res = board.bench(x, repeat)
    golden = net.forward(np.asarray(x)[None])
    res["matches_golden"] = tuple(res["result"]) == (int(golden.labels(info.output)[0]), int(golden.hit[0]))
    return res


def classify_against_golden(board: Board, net, x: np.ndarray, labels: np.ndarray, *, progress=None) -> dict:
    """The images ``x`` classified on the board, each (class, hit) against the golden model."""
    info = board.info or board.query()
    got = board.classify(x, progress=progress)
    t = net.forward(x)
    want = np.stack([t.labels(info.output), t.hit.astype(np.int64)], axis=1)
    differ = np.flatnonzero((got != want).any(axis=1))
    got_answers = answers(got[:, 0], got[:, 1], info.output)  # a priority reject is a wrong answer
    return {"images": len(x), "accuracy": float((got_answers == labels).mean()),
            "golden_accuracy": float((t.answers(info.output) == labels).mean()),
            "rejects": int((got[:, 1] == 0).sum()), "differ_from_golden": len(differ),
            "first_differences": differ[:10].tolist()}
