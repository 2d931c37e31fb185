"""RRAM device model (golden side): faults, pulse failures, endurance, write-verify.

The Verilog crossbar model implements exactly the same rules; tests hold the two
together bit for bit. All randomness is reproducible from a seed.

Per cell: a state (1 = LRS, 0 = HRS), a switch counter, and a fault code
(0 = healthy, 1 = stuck at HRS, 2 = stuck at LRS). Per crossbar tile: one
xorshift32 pseudo-random generator.

A programming pulse (SET -> LRS or RESET -> HRS) on a tile always advances that
tile's generator once: ``s ^= s << 13; s ^= s >> 17; s ^= s << 5`` (32-bit). Then:

1. a stuck cell does not change;
2. a cell whose counter has reached the endurance limit E (E > 0) does not change;
3. the pulse fails, and nothing changes, iff the new generator value is below
   ``fail_threshold = round(p_fail * 2**32)`` (clamped to 2**32 - 1);
4. otherwise the cell takes the pulse's state; if that changed it, its counter
   increments (saturating at 2**32 - 1).

Fault maps come from a bit yield Y and a seed (each cell independently faulty
with probability 1 - Y, stuck at LRS or HRS with equal probability), or from a
file: an int8 array per layer of shape (n_in, n_out) with codes 0/1/2.

Write-verify (the programming controller; same order in hardware): for each
command (layer, row, word, bits, mask), for each masked column of the word in
increasing order: read the cell; if it differs from the target, pulse (SET for 1,
RESET for 0) and read back, up to 1 + retries pulses; a cell still wrong then is
reported as failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rrambnn.errors import RrambnnError
from rrambnn.fileio import read_npz

MASK32 = 0xFFFFFFFF
HEALTHY, STUCK_HRS, STUCK_LRS = 0, 1, 2


def xorshift32(s: int) -> int:
    s ^= (s << 13) & MASK32
    s ^= s >> 17
    s ^= (s << 5) & MASK32
    return s


def tile_seed(seed: int, layer: int, br: int, bc: int, plane: int = 0) -> int:
    """The per-tile generator seed (never 0, which would stall xorshift). ``plane`` > 0: the
    arrays holding magnitude bits of multi-bit weights (:mod:`rrambnn.gen.planes`)."""
    h = (seed * 0x9E3779B1 + layer * 0x85EBCA77 + br * 0xC2B2AE3D + bc * 0x27D4EB2F + plane * 0x61C88647
         + 0x165667B1) & MASK32
    for _ in range(4):
        h = xorshift32(h or 0x1234567)
    return h or 0x1234567


def fail_threshold(p_fail: float) -> int:
    return min(MASK32, int(round(p_fail * 2 ** 32)))


@dataclass(frozen=True)
class DeviceParams:
    """Non-idealities of the arrays; the defaults are the ideal chip."""

    yield_: float = 1.0
    p_fail: float = 0.0
    endurance: int = 0  # 0 = unlimited
    seed: int = 0

    def __post_init__(self):
        if not (isinstance(self.yield_, (int, float)) and 0.0 <= self.yield_ <= 1.0):
            raise RrambnnError(f"Bit yield must be a number from 0 to 1, not {self.yield_!r}")
        if not (isinstance(self.p_fail, (int, float)) and 0.0 <= self.p_fail <= 1.0):
            raise RrambnnError(f"Pulse failure probability must be from 0 to 1, not {self.p_fail!r}")
        if not isinstance(self.endurance, int) or isinstance(self.endurance, bool) or not 0 <= self.endurance < 2 ** 32:
            raise RrambnnError(f"Endurance must be a non-negative integer (0 = unlimited), not {self.endurance!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise RrambnnError(f"Seed must be a non-negative integer, not {self.seed!r}")

    @property
    def ideal(self) -> bool:
        return self.yield_ == 1.0 and self.p_fail == 0.0 and self.endurance == 0


def fault_maps(arch, yield_: float, seed: int, plane: int = 0) -> list[np.ndarray]:
    """Random fault codes per layer, (n_in, n_out) int8, from a yield and a seed (``plane`` > 0:
    the magnitude arrays of multi-bit weights; plane 0 is the inference crossbar)."""
    rng = np.random.default_rng([seed, 0xFA017] + ([plane] if plane else []))
    maps = []
    for n_in, n_out in zip(arch[:-1], arch[1:]):
        faulty = rng.random((n_in, n_out)) >= yield_
        lrs = rng.random((n_in, n_out)) < 0.5
        maps.append(np.where(faulty, np.where(lrs, STUCK_LRS, STUCK_HRS), HEALTHY).astype(np.int8))
    return maps


def device_faults(arch, params: "DeviceParams", faults=None) -> list[np.ndarray]:
    """The fault maps a chip has: ``faults`` when given (a measured map), else the ones drawn
    from the device's yield and seed (all healthy at yield 1)."""
    return faults if faults is not None else fault_maps(arch, params.yield_, params.seed)


def load_fault_maps(path, arch) -> list[np.ndarray]:
    """A measured fault map: .npz with fault0, fault1, ... (codes 0 ok, 1 stuck HRS, 2 stuck LRS)."""
    want = f"fault-map file with fault0..fault{len(arch) - 2}"
    if not Path(path).is_file():
        raise RrambnnError(f"{path}: not a {want} (no such file)")
    z = read_npz(path, want)
    try:
        maps = [z[f"fault{k}"] for k in range(len(arch) - 1)]
    except KeyError as e:
        raise RrambnnError(f"{path}: not a fault-map file with fault0..fault{len(arch) - 2} ({e})") from None
    for k, m in enumerate(maps):
        if m.shape != (arch[k], arch[k + 1]) or not np.isin(m, (0, 1, 2)).all():
            raise RrambnnError(f"{path}: fault{k} must have shape ({arch[k]}, {arch[k + 1]}) and codes 0/1/2")
    return [m.astype(np.int8) for m in maps]


@dataclass
class Tile:
    """One array's state: the golden twin of rrambnn_crossbar with device effects."""

    cells: np.ndarray  # uint8 (rows, cols)
    faults: np.ndarray  # int8 (rows, cols)
    rng_state: int
    threshold: int
    endurance: int
    counts: np.ndarray = field(default=None)

    def __post_init__(self):
        self.cells = np.where(self.faults == STUCK_LRS, 1,
                              np.where(self.faults == STUCK_HRS, 0, self.cells)).astype(np.uint8)
        if self.counts is None:
            self.counts = np.zeros(self.cells.shape, np.int64)

    def pulse(self, r: int, c: int, set_: int) -> None:
        self.rng_state = xorshift32(self.rng_state)
        if self.faults[r, c] != HEALTHY:
            return
        if self.endurance and self.counts[r, c] >= self.endurance:
            return
        if self.rng_state < self.threshold:
            return
        if self.cells[r, c] != set_:
            self.cells[r, c] = set_
            self.counts[r, c] = min(self.counts[r, c] + 1, MASK32)


class Chip:
    """All tiles of a network's layers, addressed with global (layer, row, col)."""

    def __init__(self, arch, tile, initial_cells, params: DeviceParams, faults=None):
        self.arch, self.tile, self.params = tuple(arch), tuple(tile), params
        R, C = self.tile
        self.faults = faults = device_faults(arch, params, faults)
        thr = fail_threshold(params.p_fail)
        self.tiles: list[dict] = []
        for k, (cells, f) in enumerate(zip(initial_cells, faults)):
            n_in, n_out = cells.shape
            tiles = {}
            for br in range(-(-n_in // R)):
                for bc in range(-(-n_out // C)):
                    sl = (slice(br * R, (br + 1) * R), slice(bc * C, (bc + 1) * C))
                    tiles[br, bc] = Tile(cells[sl].astype(np.uint8).copy(), f[sl], tile_seed(params.seed, k, br, bc),
                                         thr, params.endurance)
            self.tiles.append(tiles)

    def _at(self, layer, r, c):
        R, C = self.tile
        return self.tiles[layer][r // R, c // C], r % R, c % C

    def read(self, layer: int, r: int, c: int) -> int:
        t, lr, lc = self._at(layer, r, c)
        return int(t.cells[lr, lc])

    def pulse(self, layer: int, r: int, c: int, set_: int) -> None:
        t, lr, lc = self._at(layer, r, c)
        t.pulse(lr, lc, set_)

    def _assemble(self, what: str) -> list[np.ndarray]:
        R, C = self.tile
        out = []
        for k, tiles in enumerate(self.tiles):
            n_in, n_out = self.arch[k], self.arch[k + 1]
            full = np.zeros((n_in, n_out), np.int64)
            for (br, bc), t in tiles.items():
                full[br * R:br * R + t.cells.shape[0], bc * C:bc * C + t.cells.shape[1]] = getattr(t, what)
            out.append(full)
        return out

    def cells(self) -> list[np.ndarray]:
        return [c.astype(np.uint8) for c in self._assemble("cells")]

    def counts(self) -> list[np.ndarray]:
        return self._assemble("counts")

    def weights(self) -> list[np.ndarray]:
        """Effective weights the arrays hold now (what inference sees)."""
        return [np.where(c == 1, 1, -1).astype(np.int8) for c in self.cells()]


@dataclass
class ProgramReport:
    pulses_set: int = 0
    pulses_reset: int = 0
    failed: list = field(default_factory=list)  # (layer, row, col) in order of detection

    def as_dict(self):
        return {"pulses_set": self.pulses_set, "pulses_reset": self.pulses_reset,
                "cells_failed": len(self.failed), "failed": [list(f) for f in self.failed]}


def commands_for(target_cells, word: int, current=None):
    """Programming commands (layer, row, word_index, bits, mask) covering every cell, row by
    row; with ``current`` (cells believed present), only words where some cell differs are sent
    (the controller still verifies every masked cell it is given)."""
    cmds = []
    for k, t in enumerate(target_cells):
        n_in, n_out = t.shape
        for r in range(n_in):
            for w0 in range(0, n_out, word):
                seg = t[r, w0:w0 + word]
                if current is not None and (current[k][r, w0:w0 + word] == seg).all():
                    continue
                bits = int(sum(int(b) << i for i, b in enumerate(seg)))
                mask = (1 << len(seg)) - 1
                cmds.append((k, r, w0 // word, bits, mask))
    return cmds


MAX_RETRIES = 255  # the write-verify controller's retry counter is 8 bits


def check_retries(retries) -> int:
    if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= MAX_RETRIES:
        raise RrambnnError(f"Retries must be an integer from 0 to {MAX_RETRIES}, not {retries!r}")
    return retries


def program(chip: Chip, commands, word: int, retries: int) -> ProgramReport:
    """Golden write-verify over ``commands``; mutates ``chip``; same order as the hardware."""
    rep = ProgramReport()
    for layer, r, w, bits, mask in commands:
        n_out = chip.arch[layer + 1]
        for i in range(word):
            c = w * word + i
            if not (mask >> i) & 1 or c >= n_out:
                continue
            want = (bits >> i) & 1
            if chip.read(layer, r, c) == want:
                continue
            for _ in range(1 + retries):
                chip.pulse(layer, r, c, want)
                if want:
                    rep.pulses_set += 1
                else:
                    rep.pulses_reset += 1
                if chip.read(layer, r, c) == want:
                    break
            else:
                rep.failed.append((layer, r, c))
    return rep


def programmed_cells_ideal_pulses(target_cells, faults, params: DeviceParams):
    """Final cells after write-verify when pulses never fail and endurance is unlimited
    (p_fail == 0, E == 0): healthy cells reach their target, stuck cells keep their value.
    Exactly what :func:`program` gives in that case, without the cell-by-cell replay."""
    if params.p_fail or params.endurance:
        raise ValueError("the shortcut holds only without pulse failures and endurance limits")
    return [np.where(f == STUCK_LRS, 1, np.where(f == STUCK_HRS, 0, t)).astype(np.uint8)
            for t, f in zip(target_cells, faults)]


def program_network(net, params: DeviceParams, *, tile=(128, 128), word=16, retries=3,
                    initial: str = "hrs", faults=None):
    """Program ``net``'s cells into a device (from all-HRS, random, or already-correct arrays) with
    write-verify; return (device chip, report, commands, initial cells)."""
    rng = np.random.default_rng([params.seed, 0x1A17])
    if initial == "hrs":
        init = [np.zeros(c.shape, np.uint8) for c in net.cells]
    elif initial == "random":
        init = [rng.integers(0, 2, c.shape).astype(np.uint8) for c in net.cells]
    elif initial == "weights":
        init = [c.copy() for c in net.cells]
    else:
        raise RrambnnError(f"Initial array state must be hrs, random or weights, not {initial!r}")
    chip = Chip(net.arch, tile, init, params, faults)
    cmds = commands_for(net.cells, word)
    rep = program(chip, cmds, word, check_retries(retries))
    return chip, rep, cmds, init
