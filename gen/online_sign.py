"""Online training on the chip: n-bit sign-magnitude weights in binary cells.

The forward pass is the binary network on the sign cells (plane 0, see
:mod:`rrambnn.gen.planes`) with fixed thresholds. Learning changes the n-bit codes; only
cells whose bit flips get a pulse, through write-verify, under the device model (fault
maps per plane, pulse failures, endurance). Everything is integer and deterministic for a
seed: the same commands replayed on the hardware's weight-update controller leave the same
cells, bit for bit.

Learning rule (hardware-friendly, quantised):

* output error, per output neuron j and label y (a hinge on the sense stage, so it serves
  both output stages): ``e_j = +1`` if j == y and ``S_j - theta_j < margin``; ``e_j = -1``
  if j != y and ``S_j - theta_j > -margin``; else 0;
* hidden error, per hidden neuron i of layer k (straight-through estimator with a window):
  ``e_i = clip(sum_j w_ij e_j, -E, E)`` if ``|S_i - theta_i| <= window``, else 0, with
  ``E = 2**(err_bits-1) - 1`` (err_bits = 2: ternary errors);
* update: every weight (r, j) with an active input ``x_r = 1`` moves by ``e_j`` code steps.

``batch == 1``: one rank-1 command per layer and sample ``(layer, x, e)``; the controller
walks the active rows and the columns with a non-zero error. ``batch > 1``: the integer
updates of the batch are summed per weight, clipped to the delta range ``[-M, M]``, and sent
as element commands ``(layer, row, col, delta)`` in row-major order.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from rrambnn.errors import RrambnnError
from rrambnn.fileio import read_npz, write_npz
from rrambnn.gen import crossbar
from rrambnn.gen import device as dev
from rrambnn.gen import planes
from rrambnn.gen.network import BinaryNetwork


@dataclass(frozen=True)
class SignConfig:
    wbits: int = 8
    err_bits: int = 2
    batch: int = 1
    margin: int = 2
    window: int = 2
    init_magnitude: int | None = None  # None: half the range (pretrained start), M // 8 (blank)
    retries: int = 3
    tile: tuple = (128, 128)
    device: dev.DeviceParams = field(default_factory=dev.DeviceParams)
    seed: int = 0

    def __post_init__(self):
        planes.check_bits(self.wbits)
        if not isinstance(self.err_bits, int) or not 2 <= self.err_bits <= 8:
            raise RrambnnError(f"Error bits must be an integer from 2 to 8, not {self.err_bits!r}")
        dev.check_retries(self.retries)
        for name, v, lo in (("Batch size", self.batch, 1), ("Margin", self.margin, 0), ("STE window", self.window, 0)):
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise RrambnnError(f"{name} must be an integer >= {lo}, not {v!r}")
        M = planes.max_magnitude(self.wbits)
        if self.init_magnitude is not None and not 0 <= self.init_magnitude <= M:
            raise RrambnnError(f"Initial magnitude must be from 0 to {M} for {self.wbits}-bit weights, "
                               f"not {self.init_magnitude!r}")

    @property
    def max_error(self) -> int:
        return (1 << (self.err_bits - 1)) - 1


@dataclass
class Command:
    """One update command, as the hardware takes it."""

    layer: int
    rank1: bool
    x: np.ndarray | None = None  # rank-1: active inputs (n_in,) uint8
    e: np.ndarray | None = None  # rank-1: error per column (n_out,) int
    row: int = 0  # element update
    col: int = 0
    delta: int = 0


@dataclass
class Stats:
    pulses_set: int = 0
    pulses_reset: int = 0
    failed: list = field(default_factory=list)  # (layer, plane, row, col) in hardware order
    weight_updates: int = 0
    commands: int = 0

    def as_dict(self):
        return {"pulses_set": self.pulses_set, "pulses_reset": self.pulses_reset, "cells_failed": len(self.failed),
                "weight_updates": self.weight_updates, "commands": self.commands}


class SignChip:
    """The golden chip for online training: thresholds, n planes of cells per layer, device."""

    def __init__(self, net: BinaryNetwork, cfg: SignConfig, *, blank: bool = False, faults=None, cells=None,
                 profile=None):
        """Start from ``net``'s weights as signs (or random signs, ``blank``) with every magnitude at
        ``cfg.init_magnitude``; or from explicit ``cells`` per layer, (n, n_in, n_out). ``profile``:
        a device profile (:class:`rrambnn.gen.analog.Profile`): the sign cells read through chip
        ``cfg.device.seed`` of it (:class:`AnalogSign`), forward and transposed."""
        self.cfg = cfg
        self.net = net
        self.arch = net.arch
        n = cfg.wbits
        if cells is None:
            rng = np.random.default_rng([cfg.seed, 0x0111E])
            M = planes.max_magnitude(n)
            mag = cfg.init_magnitude if cfg.init_magnitude is not None else (M // 8 if blank else (M + 1) // 2)
            cells = []
            for w in net.weights:
                c = planes.encode(np.full(w.shape, mag), n)
                c[0] = rng.integers(0, 2, w.shape).astype(np.uint8) if blank else (w > 0).astype(np.uint8)
                cells.append(c)
        for k, c in enumerate(cells):
            if c.shape != (n,) + net.weights[k].shape:
                raise RrambnnError(f"layer {k} cells must have shape {(n,) + net.weights[k].shape}, not {c.shape}")
        self.initial = [np.asarray(c, np.uint8).copy() for c in cells]
        self.arrays = planes.plane_arrays(self.arch, self.initial, cfg.device, tile=cfg.tile, retries=cfg.retries,
                                          faults=faults)
        self.stats = Stats()
        self.analog = None if profile is None or profile.ideal else \
            AnalogSign(profile, cfg.device.seed, [a.cells[0] for a in self.arrays])

    def accuracy(self, x, y) -> dict:
        """Both output stages of the chip as it is now (through its analog reads, if any: test
        image i read as image i)."""
        if self.analog is None:
            return self.sign_network().accuracy(x, y)
        from rrambnn.gen import analog as ga
        net = self.sign_network()
        return ga.accuracy(net, x, y, self.analog.map, theta=self.analog.thresholds(net))

    def refresh(self, net: BinaryNetwork, layers):
        """``net`` (the forward weights) and the analog reads after ``layers`` changed."""
        for k in layers:
            net.set_layer_weights(k, np.where(self.arrays[k].cells[0] == 1, 1, -1).astype(np.int8))
            if self.analog is not None:
                self.analog.map.hold_layer(k, self.arrays[k].cells[0])

    # -- state ---------------------------------------------------------------------
    def sign_network(self) -> BinaryNetwork:
        """The network inference sees: the sign cells and the thresholds."""
        w = [np.where(a.cells[0] == 1, 1, -1).astype(np.int8) for a in self.arrays]
        return BinaryNetwork(w, [t.copy() for t in self.net.thresholds], self.net.preprocess, self.net.output_mode)

    def codes(self) -> list[np.ndarray]:
        return [planes.decode(a.cells) for a in self.arrays]

    # -- commands ------------------------------------------------------------------
    def apply(self, cmd: Command):
        """Apply one update command exactly as the weight-update controller does."""
        a = self.arrays[cmd.layer]
        if cmd.rank1:
            rows = np.flatnonzero(cmd.x)
            cols = np.flatnonzero(cmd.e)
            rr, cc = np.repeat(rows, len(cols)), np.tile(cols, len(rows))  # row by row
            delta = np.asarray(cmd.e, np.int64)[cc]
        elif cmd.delta:
            rr, cc, delta = np.array([cmd.row]), np.array([cmd.col]), np.array([cmd.delta], np.int64)
        else:  # a zero delta changes nothing and is not counted as an update
            rr = cc = delta = np.zeros(0, np.int64)
        self._update(cmd.layer, a, rr, cc, delta)
        self.stats.commands += 1

    def apply_all(self, cmds: list[Command]):
        """Apply commands in order; runs of element commands on one layer (a mini-batch step, at
        most one per weight) are applied in one vectorised write, with the same result."""
        i = 0
        while i < len(cmds):
            c = cmds[i]
            if c.rank1:
                self.apply(c)
                i += 1
                continue
            j = i
            while j < len(cmds) and not cmds[j].rank1 and cmds[j].layer == c.layer:
                j += 1
            run = [d for d in cmds[i:j] if d.delta]
            if len({(d.row, d.col) for d in run}) != len(run):
                for d in cmds[i:j]:  # a weight appears twice: strictly one after the other
                    self.apply(d)
            else:
                rr = np.array([d.row for d in run], np.int64)
                cc = np.array([d.col for d in run], np.int64)
                self._update(c.layer, self.arrays[c.layer], rr, cc, np.array([d.delta for d in run], np.int64))
                self.stats.commands += j - i
            i = j

    def _update(self, layer, a: planes.PlaneArrays, rr, cc, delta):
        """Update weights (rr[k], cc[k]) by delta[k], in this order (the hardware's)."""
        if len(rr) == 0:
            return
        n = a.n
        old = a.cells[:, rr, cc]
        new = planes.updated(old, delta)
        self.stats.weight_updates += len(rr)
        ps, idx, ranks = [], [], []  # order keys: weight, then plane rank (the write order inside a weight)
        for rank, p in enumerate(planes.plane_order(n)):
            ch = np.flatnonzero(new[p] != old[p])
            if len(ch):
                ps.append(np.full(len(ch), p))
                idx.append(ch)
                ranks.append(np.full(len(ch), rank))
        failed = []
        if ps:
            p, ch, rank = np.concatenate(ps), np.concatenate(idx), np.concatenate(ranks)
            s, r, f = a.write_batch(p, rr[ch], cc[ch], new[p, ch], ch.astype(np.int64) * n + rank)
            self.stats.pulses_set += s
            self.stats.pulses_reset += r
            order = planes.plane_order(n)
            for key in np.asarray(f, np.int64).tolist():
                i = key // n
                failed.append((key, (layer, order[key % n], int(rr[i]), int(cc[i]))))
        self.stats.failed += [addr for _, addr in sorted(failed)]


# -- analog reads -----------------------------------------------------------------------

TRAIN_IMAGE_BASE = 1 << 29  # training reads' noise keys: sample t of the run reads as image 2^29 + t
TRIM_BITS = 4  # the row sense stages' offset trim: 1/16 cell


class AnalogSign:
    """The sign cells of an online chip read through chip ``seed`` of a device profile
    (:mod:`rrambnn.gen.analog`): each cell with its own LRS or HRS device's current as it holds
    now. The forward pass senses column currents against the thresholds in current units; the
    backward pass's transposed read drives the columns with the errors and senses every row's
    current ``sum_j e_j q_ij`` with the row's own sense offset and read noise, rounded to cells
    (``(I + 2^(FRAC-1)) >> FRAC``) before the error is clipped. Training reads are keyed by the
    sample's index in the run (from :data:`TRAIN_IMAGE_BASE`): batching changes nothing.

    ``trim``: the row sense stages' offsets are trimmed before training (a transposed read with
    no bit line driven reads a row's offset alone, noise-free; a trim register of
    :data:`TRIM_BITS` fractional bits cancels it), leaving each offset's rounding remainder,
    at most half a trim step. Untrimmed, a row's fixed offset is an error of fixed sign
    whenever its neuron's window is open, and training drifts (measured in the docs)."""

    def __init__(self, profile, seed: int, sign_cells, *, trim: bool = True):
        from rrambnn.gen import analog as ga
        self.map = ga.chip_map(sign_cells, profile, seed)
        self.trim = trim
        self.row_offsets = ga.row_offsets(self.map)
        if trim:
            step = 1 << (ga.FRAC - TRIM_BITS)
            self.row_offsets = [o - ((o + step // 2) // step) * step for o in self.row_offsets]
        self.reads = 0  # training samples read so far
        self.theta = None  # thresholds in current units (None: the network's; a calibration sets them)

    def thresholds(self, net: BinaryNetwork) -> list[np.ndarray]:
        from rrambnn.gen import analog as ga
        return ga.thresholds(net) if self.theta is None else self.theta

    def forward(self, net: BinaryNetwork, x: np.ndarray):
        """A training batch's forward pass: (sums in current units, activations, noise keys)."""
        from rrambnn.gen import analog as ga
        ids = TRAIN_IMAGE_BASE + np.arange(self.reads, self.reads + len(x), dtype=np.int64)
        self.reads += len(x)
        *_, sums, acts = ga.forward(net, x, self.map, theta=self.thresholds(net), image_ids=ids, trace=True)
        return sums, acts, ids

    def back(self, e: np.ndarray, layer: int, ids: np.ndarray) -> np.ndarray:
        """Layer ``layer``'s transposed read of errors ``e``, in cells (rounded)."""
        from rrambnn.gen import analog as ga
        i = ga.read_transposed(e, self.map, layer, ids, self.row_offsets[layer])
        return (i + (1 << (ga.FRAC - 1))) >> ga.FRAC


# -- the trainer ---------------------------------------------------------------------

def errors(net: BinaryNetwork, sums: list[np.ndarray], labels: np.ndarray, cfg: SignConfig, analog=None,
           ids=None) -> list[np.ndarray]:
    """Quantised errors per layer for a batch: (B, n_out) int per layer (see the module doc).
    ``analog`` (:class:`AnalogSign`): ``sums`` are currents (2^-FRAC cell), the margin and the
    window are compared in the same units, the errors go back through its transposed reads."""
    L = len(net.weights)
    out = []
    unit = 1
    thresholds = net.thresholds
    if analog is not None:
        from rrambnn.gen import analog as ga
        unit, thresholds = 1 << ga.FRAC, analog.thresholds(net)
    s, t = sums[-1], thresholds[-1]
    margin = s - t
    target = np.zeros_like(margin, dtype=bool)
    target[np.arange(len(labels)), labels] = True
    e = np.where(target & (margin < cfg.margin * unit), 1, 0) - np.where(~target & (margin > -cfg.margin * unit), 1, 0)
    out.append(e)
    for k in range(L - 2, -1, -1):
        back = crossbar.transposed_read(e, net.weights[k + 1]) if analog is None else analog.back(e, k + 1, ids)
        gate = np.abs(sums[k] - thresholds[k]) <= cfg.window * unit
        e = np.where(gate, np.clip(back, -cfg.max_error, cfg.max_error), 0)
        out.append(e)
    return out[::-1]


def commands_for_batch(net: BinaryNetwork, x: np.ndarray, labels: np.ndarray, cfg: SignConfig,
                       analog=None) -> list[Command]:
    """The update commands one batch produces (errors from the current weights; ``analog``:
    read through :class:`AnalogSign`)."""
    if analog is None:
        tr = net.forward(x)
        sums, acts, ids = tr.sums, tr.acts, None
    else:
        sums, acts, ids = analog.forward(net, x)
    ins = [x] + acts[:-1]
    errs = errors(net, sums, labels, cfg, analog, ids)
    cmds = []
    if cfg.batch == 1:
        for k, (xi, e) in enumerate(zip(ins, errs)):
            if e[0].any() and xi[0].any():
                cmds.append(Command(k, True, x=xi[0].astype(np.uint8), e=e[0].astype(np.int64)))
        return cmds
    M = planes.max_magnitude(cfg.wbits)
    for k, (xi, e) in enumerate(zip(ins, errs)):
        d = np.clip(xi.astype(np.int64).T @ e, -M, M)
        for r, c in zip(*np.nonzero(d)):
            cmds.append(Command(k, False, row=int(r), col=int(c), delta=int(d[r, c])))
    return cmds


@dataclass
class EpochResult:
    epoch: int
    accuracy: dict
    stats: dict
    seconds: float


def train(chip: SignChip, x_train, y_train, x_test, y_test, *, epochs: int, samples: int | None = None,
          record_updates: int = 0, progress=None) -> tuple[list[EpochResult], list[Command]]:
    """Online training for ``epochs`` over ``samples`` training images per epoch (all by
    default; shuffled by the chip's seed). Returns the accuracy per epoch (epoch 0 = before
    training) and a trace for hardware replay: the commands from the chip's first update until
    the trace holds at least ``record_updates`` weight updates."""
    cfg = chip.cfg
    rng = np.random.default_rng([cfg.seed, 0x7EA1])
    n = len(x_train) if samples is None else min(samples, len(x_train))
    results = [EpochResult(0, chip.accuracy(x_test, y_test), chip.stats.as_dict(), 0.0)]
    trace: list[Command] = []
    for ep in range(1, epochs + 1):
        t = time.time()
        order = rng.permutation(len(x_train))[:n]
        net = chip.sign_network()
        for b0 in range(0, n, cfg.batch):
            idx = order[b0:b0 + cfg.batch]
            cmds = commands_for_batch(net, x_train[idx], y_train[idx], cfg, chip.analog)
            if chip.stats.weight_updates < record_updates:  # recording: command by command
                for cmd in cmds:
                    if chip.stats.weight_updates < record_updates:
                        trace.append(cmd)
                    chip.apply(cmd)
            else:
                chip.apply_all(cmds)
            chip.refresh(net, {c.layer for c in cmds})  # the forward weights of the changed layers
            if progress:
                progress(len(idx))
        results.append(EpochResult(ep, chip.accuracy(x_test, y_test), chip.stats.as_dict(),
                                   time.time() - t))
    return results, trace


def switch_stats(chip: SignChip) -> dict:
    """Switches per bit position (plane 0 = sign, plane b = magnitude bit b-1) and wear."""
    n = chip.cfg.wbits
    per_plane = np.zeros(n, np.int64)
    max_per_plane = np.zeros(n, np.int64)
    worn = np.zeros(n, np.int64)
    E = chip.cfg.device.endurance
    for a in chip.arrays:
        per_plane += a.counts.sum(axis=(1, 2))
        max_per_plane = np.maximum(max_per_plane, a.counts.max(axis=(1, 2)))
        if E:
            worn += (a.counts >= E).sum(axis=(1, 2))
    cells = sum(a.counts[0].size for a in chip.arrays)
    return {"planes": ["sign"] + [f"mag{b - 1}" for b in range(1, n)],
            "switches": per_plane.tolist(), "max_per_cell": max_per_plane.tolist(),
            "mean_per_cell": (per_plane / cells).round(3).tolist(),
            "worn_out_cells": worn.tolist() if E else None}


# -- traces ------------------------------------------------------------------------------

def save_trace(path, commands: list[Command], arch):
    """Commands as .npz: kind (1 = rank-1), layer, row, col, delta, x (K, max_in), e (K, max_out)."""
    K, max_in, max_out = len(commands), max(arch[:-1]), max(arch[1:])
    x = np.zeros((K, max_in), np.uint8)
    e = np.zeros((K, max_out), np.int8)
    for i, c in enumerate(commands):
        if c.rank1:
            x[i, :len(c.x)] = c.x
            e[i, :len(c.e)] = c.e
    arrays = {"format": np.array("rrambnn-update-trace"), "arch": np.array(arch, np.int32),
              "rank1": np.array([c.rank1 for c in commands], np.uint8),
              "layer": np.array([c.layer for c in commands], np.int32),
              "row": np.array([c.row for c in commands], np.int32), "col": np.array([c.col for c in commands], np.int32),
              "delta": np.array([c.delta for c in commands], np.int32), "x": x, "e": e}
    write_npz(path, arrays)


def load_trace(path) -> tuple[tuple, list[Command]]:
    z = read_npz(path, "update trace")
    try:
        if str(z["format"]) != "rrambnn-update-trace":
            raise ValueError("not an update trace")
        arch = tuple(int(a) for a in z["arch"])
        cols = {k: z[k] for k in ("rank1", "layer", "row", "col", "delta", "x", "e")}
    except (ValueError, KeyError) as e:
        raise RrambnnError(f"{path}: not a readable update trace ({e})") from None
    cmds = []
    for i in range(len(cols["rank1"])):
        k = int(cols["layer"][i])
        if not 0 <= k < len(arch) - 1:
            raise RrambnnError(f"{path}: command {i} names layer {k}, the network has {len(arch) - 1}")
        if cols["rank1"][i]:
            cmds.append(Command(k, True, x=cols["x"][i, :arch[k]].copy(), e=cols["e"][i, :arch[k + 1]].astype(np.int64)))
        else:
            cmds.append(Command(k, False, row=int(cols["row"][i]), col=int(cols["col"][i]), delta=int(cols["delta"][i])))
    return arch, cmds


# -- one run, as the CLI and the sweeps use it ------------------------------------------

def start_network(net: BinaryNetwork, blank: bool) -> BinaryNetwork:
    """The network whose thresholds and input preprocessing the chip uses: ``net`` itself for a
    pretrained start; for a blank start the same shape with all thresholds 0 (signs are random)."""
    if not blank:
        return net
    return BinaryNetwork([w.copy() for w in net.weights], [np.zeros_like(t) for t in net.thresholds],
                         net.preprocess, net.output_mode, {"start": "blank"})


def run(net: BinaryNetwork, cfg: SignConfig, data, *, blank: bool, epochs: int, samples: int | None,
        record_updates: int = 0, progress: bool = False, desc: str = "online", profile=None,
        calibration: int = 0) -> dict:
    """Online training on ``data`` = (x_train, y_train, x_test, y_test); returns accuracy per epoch,
    pulse and switch statistics, and (``record_updates`` > 0) the first commands holding at least
    that many weight updates, with the chip's initial state, for hardware replay. ``profile``:
    every read goes through chip ``cfg.device.seed`` of this device profile; ``calibration``:
    with it, the chip's thresholds are first fitted on that many training images read through
    it (:func:`rrambnn.gen.analog.calibrate`) and training runs with them (epoch 0 is the
    calibrated chip; the accuracy as programmed is reported beside it)."""
    from tqdm import tqdm

    x_tr, y_tr, x_te, y_te = data
    start = start_network(net, blank)
    chip = SignChip(start, cfg, blank=blank, profile=profile)
    n = len(x_tr) if samples is None else min(samples, len(x_tr))
    if chip.analog is not None and n * epochs >= TRAIN_IMAGE_BASE:  # keys stay below the calibration reads'
        raise RrambnnError(f"a run through a device profile reads at most {TRAIN_IMAGE_BASE:,} training samples "
                           f"(their noise keys), not {n * epochs:,}")
    as_programmed = None
    if chip.analog is not None and calibration:  # the host calibrates the thresholds, then training starts
        from rrambnn.gen import analog as ga
        as_programmed = chip.accuracy(x_te, y_te)
        chip.analog.theta = ga.calibrate(chip.sign_network(), chip.analog.map, x_tr[:calibration])
    bar = tqdm(total=n * epochs, desc=desc, unit="img", disable=not progress, leave=False)
    results, trace = train(chip, x_tr, y_tr, x_te, y_te, epochs=epochs, samples=n,
                           record_updates=record_updates, progress=bar.update)
    bar.close()
    out = {"arch": list(start.arch), "bits": cfg.wbits, "err_bits": cfg.err_bits, "batch": cfg.batch,
           "start": "blank" if blank else "pretrained", "samples_per_epoch": n, "epochs": epochs,
           "device": {"yield": cfg.device.yield_, "p_fail": cfg.device.p_fail, "endurance": cfg.device.endurance,
                      "seed": cfg.device.seed},
           "margin": cfg.margin, "window": cfg.window, "seed": cfg.seed,
           "per_epoch": [{"epoch": r.epoch, **r.accuracy, **r.stats, "seconds": round(r.seconds, 1)} for r in results],
           "switches": switch_stats(chip)}
    out["final"] = {k: out["per_epoch"][-1][k] for k in ("priority", "argmax")}
    out["best"] = {k: max(e[k] for e in out["per_epoch"]) for k in ("priority", "argmax")}
    if chip.analog is not None:
        out["device_profile"] = {**profile.describe(), "chip_seed": cfg.device.seed}
        out["device_profile"]["offset_trim_bits"] = TRIM_BITS if chip.analog.trim else None
        if calibration:  # epoch 0 is the calibrated chip; before calibration it scored this
            out["device_profile"]["calibration"] = {
                "images": calibration, "as_programmed": {k: as_programmed[k] for k in ("priority", "argmax")}}
    return {"result": out, "trace": trace, "chip": chip, "start_net": start}
