"""Online training with the n-bit forward pass: the measured macro's rule, integer and seeded.

The literature's chip trains a sigmoid MLP by back-propagation in which the forward pass, the
backward pass and the errors are all reduced to n bits. This module is that rule as a chip
would run it: every quantity is an integer of stated width, every rounding is defined, and
the only randomness (stochastic rounding of the updates) comes from a counter-based hash of
a few multiplies and shifts, so a run is deterministic for a seed. The training chip
generated here computes the forward pass and applies the updates (weight-update controller,
write-verify, device); the host computes the errors and the rounded steps with this module
and sends them as commands, and a recorded run replays on it bit for bit
(:mod:`rrambnn.sim.tb_nbit_replay`).

**Weight code.** A weight is an n-bit *offset* code ``u`` in [0, U], U = 2^n - 1, held by n
binary cells (plane b = bit b of u, plane n-1 the most significant); its value is the odd
integer ``w = 2u - U``. This is the code of the multi-bit inference chip
(:mod:`rrambnn.gen.sliced`): every plane is a binary crossbar whose column sum is the digital
twin ``2*popcount(x AND c) - popcount(x)``, and ``x.w = sum_b 2^b * S_b`` (shift and add), so
the arrays that store the weight also compute with it. An update adds an integer ``d`` and
saturates: ``u' = clip(u + d, 0, U)``; only cells whose bit changes get a pulse, written from
the least significant plane up (the most significant last).

**Forward** (m-bit neurons, H = 2^m - 1; x = the binarised 20x20 pixels, one bit each):

* hidden sum ``a_j = x . w1_j``; hidden code ``h_j = #{l : a_j >= T1_l}`` in [0, H], a
  quantised sigmoid: ``T1_l = round(U / r1 * logit((l - 1/2) / H))`` (the weights span
  [-r1, r1] in real units: r1 = 1, or 1/2 below 8 bits, where the coarser code needs the
  finer step);
* output sum ``o_k = h . w2_k``; output code ``y_k = #{l : o_k >= T2_l}``,
  ``T2_l = round(H * U / r2 * logit((l - 1/2) / H))`` (r2 = 4 r1);
* classification: argmax of ``o`` (lowest index on ties) or the priority encoder over
  ``o_k >= 0`` (``y_k`` at least half scale); a reject (no output fires) is a wrong answer.

**Backward** (e-bit errors, E = 2^(e-1) - 1; default e = n):

* output error ``e_k = H * [k == label] - y_k`` (sigmoid + cross-entropy: target minus
  output), reduced to e bits: ``eq = sat_E(round(e / 2^(m+1-e)))``;
* hidden error ``g_j = sum_k w2_jk eq_k`` (what a transposed read of the output array gives), times the
  derivative of the quantised sigmoid ``d_j = h_j * (H - h_j)``, reduced to e bits:
  ``delta_j = sat_E(round(g_j * d_j / 2^sd))``, sd = n + m + 3 (about 3% of the non-zero
  errors saturate at 8 bits);
* updates in code steps, with stochastic rounding ``SR(v, s) = floor((v + r) / 2^s)`` where r
  is s random bits: output layer ``du2_jk = SR(h_j * eq_k, s2)`` for every weight (one draw
  each); hidden layer ``du1_ij = x_i * SR(delta_j, s1)`` (one draw per column: a rank-1 step
  with an integer per column, what the weight-update controller's rank-1 command takes).
  s1 and s2 set the learning rate eta = 2^-lr_shift in real units (see :meth:`NbitConfig.shifts`);
  every ``decay`` epochs both grow by one (eta halves).

**Random bits.** ``draw(t, layer, i) = mix32(mix32(seed ^ mix32(t)) ^ (layer << 24) ^ i)``
with ``mix32(x)``: x ^= x >> 16; x *= 0x7feb352d; x ^= x >> 15; x *= 0x846ca68b;
x ^= x >> 16 (32-bit), t the sample counter since the start of training, i the column
(hidden layer) or ``row * n_out + col`` (output layer); r = the top s bits of the draw.

**Device.** The cells live in :class:`rrambnn.gen.planes.PlaneArrays`: fault maps per plane,
pulse failures from each array's xorshift32 generator, the endurance limit, write-verify with
retries. A cell that cannot be written keeps its state, so the code the chip holds (and
computes with) is whatever the cells hold.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field

import numpy as np

from rrambnn.errors import RrambnnError
from rrambnn.fileio import read_npz, write_npz
from rrambnn.gen import crossbar
from rrambnn.gen import device as dev
from rrambnn.gen import planes
from rrambnn.gen.network import priority_encode, score
from rrambnn.gen.sliced import bit_planes

MAX_BITS = planes.MAX_BITS  # weight bits, 2..12
MAX_ACT_BITS = 8  # the bit-serial threshold ramp of the multi-bit chip
MASK = np.uint32(0xFFFFFFFF)
INIT = (0.1, 0.4)  # blank start: real weights uniform in +-INIT, hidden and output layer


PRETRAINED_LR_SHIFT = 5  # fine-tuning a trained network: a quarter of the blank start's learning rate


def default_lr_shift(bits: int, pretrained: bool = False) -> int:
    """The learning rate 2^-K the rule starts with: K = 3 from a blank start at 8 bits and more,
    K = 2 below 8 bits (the coarser code needs the larger steps: at 6 bits the 50-epoch peak is
    96.72% with K = 2, 96.30% with K = 3); K = 5 fine-tuning a pretrained network."""
    return PRETRAINED_LR_SHIFT if pretrained else (3 if bits >= 8 else 2)


def _int(name, v, lo, hi=None):
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < lo or (hi is not None and v > hi):
        rng = f"from {lo} to {hi}" if hi is not None else f">= {lo}"
        raise RrambnnError(f"{name} must be an integer {rng}, not {v!r}")
    return int(v)


@dataclass(frozen=True)
class NbitConfig:
    """The rule's precision and schedule, and the device the chip has."""

    wbits: int = 8  # n: weight code bits
    abits: int | None = None  # m: neuron bits (default min(n, 8))
    err_bits: int | None = None  # e: error bits (default n)
    lr_shift: int | None = None  # eta = 2^-lr_shift (default: default_lr_shift(bits), a blank start's)
    decay: int = 5  # eta halves every `decay` epochs (0: constant)
    range_shift: int | None = None  # real weight ranges r1 = 2^-k, r2 = 4 * 2^-k (default k = 1 below 8 bits)
    retries: int = 3
    tile: tuple = (128, 128)
    device: dev.DeviceParams = field(default_factory=dev.DeviceParams)
    restore: bool = True  # a weight whose write fails returns to its old code
    seed: int = 0

    def __post_init__(self):
        _int("Weight bits", self.wbits, 2, MAX_BITS)
        if not isinstance(self.restore, bool):
            raise RrambnnError(f"Restore must be a bool, not {self.restore!r}")
        if self.abits is not None:
            _int("Neuron bits", self.abits, 1, MAX_ACT_BITS)
        if self.err_bits is not None:
            _int("Error bits", self.err_bits, 2, 16)
        if self.lr_shift is None:
            object.__setattr__(self, "lr_shift", default_lr_shift(self.wbits))
        _int("Learning-rate shift", self.lr_shift, 0, 16)
        _int("Decay period", self.decay, 0)
        if self.range_shift is not None:
            _int("Range shift", self.range_shift, 0, 4)
        dev.check_retries(self.retries)
        _int("Seed", self.seed, 0, 2 ** 32 - 1)

    @property
    def m(self) -> int:
        return self.abits if self.abits is not None else min(self.wbits, MAX_ACT_BITS)

    @property
    def e(self) -> int:
        return self.err_bits if self.err_bits is not None else self.wbits

    @property
    def k(self) -> int:
        return self.range_shift if self.range_shift is not None else int(self.wbits < 8)

    @property
    def r1(self) -> float:
        """Real range of the hidden weights: w = 2u - U stands for w * r1 / U."""
        return 2.0 ** -self.k

    @property
    def r2(self) -> float:
        return 4.0 * 2.0 ** -self.k

    @property
    def U(self) -> int:
        return (1 << self.wbits) - 1

    @property
    def H(self) -> int:
        return (1 << self.m) - 1

    @property
    def E(self) -> int:
        return (1 << (self.e - 1)) - 1

    @property
    def es(self) -> int:
        """Output error: eq = e / 2^es, rounded."""
        return self.m + 1 - self.e

    @property
    def sd(self) -> int:
        """Hidden error: delta = g * d / 2^sd, rounded."""
        return self.wbits + self.m + 3

    def shifts(self, epoch: int = 1) -> tuple[int, int]:
        """(s1, s2) in epoch ``epoch`` (from 1): the real-valued rule's learning rate eta turned
        into code steps. Output layer: du2 = eta * h/H * e/H / (2 r2/U) = h*eq / 2^s2; hidden
        layer: du1 = eta * delta_real / (2 r1/U) = delta / 2^s1."""
        k = (epoch - 1) // self.decay if self.decay else 0
        H, U = self.H, self.U
        k2 = math.log2(2 * self.r2 * H * H / (U * 2.0 ** self.es))
        k1 = math.log2(2 * H ** 3 * self.r1 / (self.r2 * 2.0 ** self.es))
        top = 31  # a draw has 32 bits: the learning rate stops halving there
        return (min(top, round(k1 + self.lr_shift) - self.sd + k), min(top, round(k2 + self.lr_shift) + k))

    def ramps(self) -> tuple[np.ndarray, np.ndarray]:
        """(T1, T2): the quantised sigmoids of the hidden and output neurons, H levels each."""
        lv = (np.arange(1, self.H + 1) - 0.5) / self.H
        logit = np.log(lv / (1 - lv))
        return (np.round(logit * self.U / self.r1).astype(np.int64),
                np.round(logit * self.H * self.U / self.r2).astype(np.int64))

    @property
    def step_bits(self) -> int:
        """Width of a signed hidden-layer step (the rank-1 command's per-column field)."""
        s1, _ = self.shifts(1)
        top = -(-self.E // (1 << s1)) if s1 > 0 else self.E << -s1
        return max(2, top.bit_length() + 1)

    def describe(self) -> dict:
        s1, s2 = self.shifts(1)
        return {"weight_bits": self.wbits, "neuron_bits": self.m, "error_bits": self.e, "lr_shift": self.lr_shift,
                "decay_epochs": self.decay, "restore": self.restore, "r1": self.r1, "r2": self.r2, "s1": s1, "s2": s2, "sd": self.sd, "es": self.es}


# -- codes <-> cells ---------------------------------------------------------------------

def encode(u: np.ndarray, n: int) -> np.ndarray:
    """Offset codes -> cells (n, ...) uint8, plane b = bit b (the multi-bit chip's bit planes)."""
    return bit_planes(np.asarray(u, np.int64), n)


def decode(cells: np.ndarray) -> np.ndarray:
    """Cells (n, ...) -> offset codes."""
    u = np.zeros(cells.shape[1:], np.int64)
    for b in range(cells.shape[0]):
        u |= cells[b].astype(np.int64) << b
    return u


# -- random bits ---------------------------------------------------------------------

def mix32(x):
    """The 32-bit finaliser of the draws (uint32 arrays or ints)."""
    x = np.asarray(x, np.uint32)
    if x.ndim == 0:  # scalar arithmetic warns on the intended wrap-around; arrays do not
        return mix32(x.reshape(1))[0]
    x = x ^ (x >> np.uint32(16))
    x *= np.uint32(0x7FEB352D)
    x ^= x >> np.uint32(15)
    x *= np.uint32(0x846CA68B)
    return x ^ (x >> np.uint32(16))


def clamp(v: np.ndarray, lo, hi) -> np.ndarray:
    """``np.clip`` for the per-sample arrays (two ufuncs, without np.clip's per-call overhead)."""
    return np.minimum(np.maximum(v, lo), hi)


def _mix32_int(x: int) -> int:
    """:func:`mix32` of one Python int (the per-sample key, without array overhead)."""
    x &= 0xFFFFFFFF
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x846CA68B) & 0xFFFFFFFF
    return x ^ (x >> 16)


def draws(seed: int, t: int, layer: int, index: np.ndarray) -> np.ndarray:
    """The random words of sample ``t`` for ``layer`` at ``index`` (uint32)."""
    key = _mix32_int(seed ^ _mix32_int(t))
    return mix32(np.asarray(index, np.uint32) ^ np.uint32(key ^ (layer << 24)))


def stochastic_round(v: np.ndarray, s: int, r: np.ndarray) -> np.ndarray:
    """floor((v + top s bits of r) / 2^s); s <= 0: v * 2^-s."""
    v = np.asarray(v, np.int64)
    if s <= 0:
        return v << -s
    return (v + (r >> np.uint32(32 - s)).astype(np.int64)) >> s


def round_shift(v: np.ndarray, s: int) -> np.ndarray:
    """round(v / 2^s), halves up; s <= 0: v * 2^-s."""
    v = np.asarray(v, np.int64)
    return (v + (1 << (s - 1))) >> s if s > 0 else v << -s


# -- the network's integer arithmetic -------------------------------------------------------

@dataclass
class Step:
    """What one training sample does: the forward results and the update commands."""

    h: np.ndarray  # hidden codes (n_hidden,)
    o: np.ndarray  # output sums (n_out,)
    cols: np.ndarray  # hidden layer: columns with a non-zero step
    step: np.ndarray  # ... and their steps
    rows2: np.ndarray  # output layer: element updates (row, col, delta), row-major
    cols2: np.ndarray
    delta2: np.ndarray
    eq: np.ndarray | None = None  # the output error (e bits), what the backward read is driven with


def forward_batch(w: list[np.ndarray], x: np.ndarray, ramps) -> tuple[np.ndarray, np.ndarray]:
    """Hidden codes and output sums for input bits ``x`` (N, n_in); exact (float64 < 2^53)."""
    T1, _ = ramps
    a = crossbar.read(x, w[0])
    h = np.searchsorted(T1, a.ravel(), side="right").reshape(a.shape)
    return h.astype(np.int64), crossbar.read_int(h, w[1])


def classify(o: np.ndarray) -> dict[str, np.ndarray]:
    """Both output stages on output sums: argmax, and the priority encoder over o >= 0 (the
    output threshold is the sigmoid's midpoint); ``hit`` False = reject."""
    prio, hit = priority_encode(o >= 0)
    return {"argmax": o.argmax(axis=1), "priority": prio, "hit": hit}


def accuracy(w, ramps, x, y) -> dict:
    """Test accuracy; a reject of the priority encoder counts as wrong."""
    _, o = forward_batch(w, x, ramps)
    c = classify(o)
    return score(c["priority"], c["argmax"], c["hit"], y)


class NbitChip:
    """The golden training chip: n planes of cells per layer with the device, the rule."""

    def __init__(self, arch, cfg: NbitConfig, codes: list[np.ndarray], faults=None):
        if len(arch) != 3:
            raise RrambnnError(f"the n-bit rule trains networks with one hidden layer (e.g. 400-200-10), "
                               f"not {'-'.join(map(str, arch))}")
        self.arch, self.cfg = tuple(arch), cfg
        n = cfg.wbits
        for k, u in enumerate(codes):
            if u.shape != (arch[k], arch[k + 1]) or u.min() < 0 or u.max() > cfg.U:
                raise RrambnnError(f"layer {k} codes must have shape ({arch[k]}, {arch[k + 1]}) and lie in "
                                   f"[0, {cfg.U}]")
        self.initial = [encode(u, n) for u in codes]
        if faults is None:
            faults = planes.plane_faults(arch, cfg.device, n)
        self.arrays = planes.plane_arrays(arch, self.initial, cfg.device, tile=cfg.tile, retries=cfg.retries,
                                          faults=faults)
        self.initial = [a.cells.copy() for a in self.arrays]  # stuck cells as programmed
        self.u = [decode(a.cells) for a in self.arrays]
        self.w = [2 * u - cfg.U for u in self.u]
        self.ramps = cfg.ramps()
        self.t = 0  # samples seen
        self.stats = {"pulses_set": 0, "pulses_reset": 0, "cells_failed": 0, "weight_updates": 0,
                      "samples": 0, "updating_samples": 0, "cell_writes": 0, "restored": 0}
        self.failed: list | None = None  # (layer, plane, row, col) in hardware order, while recording
        self._shifts: dict = {}  # epoch -> the learning rate's (s1, s2)
        self._wf: list | None = None  # the weights as floats for :meth:`errors` (made on first use)
        self._level: np.ndarray | None = None  # ... and the hidden codes of every sum
        # every |partial sum| of the two reads: binary inputs, hidden codes up to H
        self._bounds = (arch[0] * cfg.U, arch[1] * cfg.H * cfg.U)

    # -- one sample ---------------------------------------------------------------------
    def compute(self, x: np.ndarray, label: int, epoch: int = 1, ahead=None) -> Step:
        """Forward, backward and the update commands of one sample (no state changes);
        ``ahead``: its (h, o, eq) from :meth:`errors` with the weights as they are now."""
        cfg = self.cfg
        H = cfg.H
        w1, w2 = self.w
        act = np.flatnonzero(x)
        if ahead is None:
            T1, T2 = self.ramps
            a = crossbar.read_active(act, w1)
            h = np.searchsorted(T1, a, side="right").astype(np.int64)
            o = crossbar.read(h, w2)
            y = np.searchsorted(T2, o, side="right")
            e = -y.astype(np.int64)
            e[label] += H
            eq = clamp(round_shift(e, cfg.es), -cfg.E, cfg.E)
        else:
            h, o, eq = ahead
        empty = np.zeros(0, np.int64)
        if not eq.any():
            return Step(h, o, empty, empty, empty, empty, empty, eq)
        if (s12 := self._shifts.get(epoch)) is None:
            s12 = self._shifts[epoch] = cfg.shifts(epoch)
        s1, s2 = s12
        g = crossbar.transposed_read(eq, w2)
        delta = clamp(round_shift(g * (h * (H - h)), cfg.sd), -cfg.E, cfg.E)
        n_hid, n_out = w2.shape
        cols = np.flatnonzero(delta) if len(act) else empty  # no pixel set: no hidden update
        step = stochastic_round(delta[cols], s1, draws(cfg.seed, self.t, 0, cols))
        keep = step != 0
        cols, step = cols[keep], step[keep]
        hr = np.flatnonzero(h)
        kc = np.flatnonzero(eq)
        prod = np.outer(h[hr], eq[kc])
        idx = hr[:, None] * n_out + kc[None, :]
        d2 = stochastic_round(prod, s2, draws(cfg.seed, self.t, 1, idx))
        d2 = clamp(d2, -cfg.U, cfg.U)
        nz = np.nonzero(d2)
        return Step(h, o, cols, step, hr[nz[0]], kc[nz[1]], d2[nz], eq)

    def errors(self, x: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The forward pass of several samples (N, n_in) with the weights as they are now, as
        one crossbar read per layer: hidden codes, output sums and output errors (int64, one row
        per sample; :meth:`compute` gives the same for each). A sample whose error is all zero
        changes nothing, so :func:`train` reads the samples ahead of the next one with an
        error in one go. The weights are kept as floats for BLAS, updated with the codes."""
        cfg = self.cfg
        T1, T2 = self.ramps
        if self._wf is None:
            self._wf = [w.astype(crossbar.exact_dtype(b)) for w, b in zip(self.w, self._bounds)]
        a = crossbar.read(x, self._wf[0], bound=self._bounds[0])
        if self._level is None:  # the hidden quantiser as a table over every possible sum
            b = self._bounds[0]
            self._level = np.searchsorted(T1, np.arange(-b, b + 1), side="right").astype(np.int64)
        h = self._level[a.astype(np.int64) + self._bounds[0]]
        o = crossbar.read(h, self._wf[1], bound=self._bounds[1]).astype(np.int64)
        e = -np.searchsorted(T2, o.ravel(), side="right").reshape(o.shape)
        e[np.arange(len(e)), labels] += cfg.H
        return h, o, clamp(round_shift(e, cfg.es), -cfg.E, cfg.E)

    def skip(self, k: int):
        """``k`` samples without an output error: only the sample counter moves."""
        self.stats["samples"] += k
        self.t += k

    def apply(self, x: np.ndarray, s: Step):
        """The sample's updates through write-verify: the rank-1 step of the hidden layer, then
        the output layer's element updates; advances the sample counter."""
        if len(s.cols):
            act = np.flatnonzero(x)
            rr = np.repeat(act, len(s.cols))
            cc = np.broadcast_to(s.cols, (len(act), len(s.cols))).ravel()
            self._update(0, rr, cc, np.broadcast_to(s.step, (len(act), len(s.cols))).ravel())
        if len(s.rows2):
            self._update(1, s.rows2, s.cols2, s.delta2)
        self.stats["updating_samples"] += bool(len(s.cols) or len(s.rows2))
        self.stats["samples"] += 1
        self.t += 1

    def _update(self, layer: int, rr, cc, du):
        """Add ``du`` to the weights (rr, cc), in this order: only changed bits are written,
        least significant plane first; with ``cfg.restore`` a weight whose write failed in some
        cell gets its other changed cells written back (it keeps its old code, unless a cell
        fails again). Pulse failures make each cell's outcome depend on the cells written before
        it in its array, and a failed weight's restore pass comes before the next weight: then
        the weights go in runs, each up to the next failed weight
        (:class:`rrambnn.gen.planes.OrderedWrite`); otherwise all at once."""
        self.stats["weight_updates"] += len(rr)
        flat = rr * self.arch[layer + 1] + cc
        u = self.u[layer].reshape(-1)
        old = u[flat]
        new = clamp(old + du, 0, self.cfg.U)
        if self.arrays[layer].threshold == 0:
            got = self._pass_free(layer, rr, cc, old, new)
        elif self.cfg.restore:
            got = self._runs(layer, rr, cc, old, new)
        else:
            got = self._pass(layer, rr, cc, old, new)
        u[flat] = got
        w = 2 * got - self.cfg.U
        self.w[layer].reshape(-1)[flat] = w
        if self._wf is not None:
            self._wf[layer].reshape(-1)[flat] = w

    def _pass(self, layer, rr, cc, old, new) -> np.ndarray:
        """Write ``new`` over ``old`` codes (and restore failed weights); return the codes held."""
        got, failed = self._write(layer, rr, cc, old, new, 0)
        if self.cfg.restore:
            back = np.flatnonzero(got != new)
            self.stats["restored"] += len(back)
            if len(back):
                got[back], f2 = self._write(layer, rr[back], cc[back], got[back], old[back], 1, back)
                failed = np.concatenate([failed, f2])
        self._record_failed(layer, rr, cc, failed)
        return got

    def _pass_free(self, layer, rr, cc, old, new) -> np.ndarray:
        """:meth:`_pass` without pulse failures, where a cell fails exactly when it is stuck or
        worn out: both passes from one list of changed cells (the restore pass: the cells of
        the failed weights that did switch)."""
        n = self.cfg.wbits
        a = self.arrays[layer]
        p, i, want = self._changed(old, new)
        got = new.copy()
        if not len(p):
            return got
        rows, cols = rr[i], cc[i]
        n_set, n_reset, bad = a.write_free(p, rows, cols, want)
        writes, failed = len(p), np.zeros(0, np.int64)
        if bad.any():
            fi, fp = i[bad], p[bad]
            failed = fi * (2 * n) + fp
            if self.cfg.restore:
                hit = np.zeros(len(old), bool)
                hit[fi] = True
                got[hit] = old[hit]
                self.stats["restored"] += int(hit.sum())
                back = hit[i] & ~bad
                if back.any():
                    bp, bi = p[back], i[back]
                    s2, r2, bad2 = a.write_free(bp, rows[back], cols[back], 1 - want[back])
                    writes += len(bp)
                    n_set, n_reset = n_set + s2, n_reset + r2
                    if bad2.any():  # a restore that failed leaves the new bit
                        bi, bp = bi[bad2], bp[bad2]
                        np.bitwise_xor.at(got, bi, np.int64(1) << bp)
                        failed = np.concatenate([failed, bi * (2 * n) + n + bp])
            else:  # a failed cell keeps its bit
                np.bitwise_xor.at(got, fi, np.int64(1) << fp)
        self.stats["cell_writes"] += writes
        self.stats["pulses_set"] += n_set
        self.stats["pulses_reset"] += n_reset
        self._record_failed(layer, rr, cc, failed)
        return got

    def _record_failed(self, layer, rr, cc, failed):
        """Count the failed cells (order keys) and, while recording, list them in the hardware's
        order: weight, pass, plane."""
        if len(failed):
            self.stats["cells_failed"] += len(failed)
            if self.failed is not None:
                n = self.cfg.wbits
                keys = np.sort(failed)
                self.failed += [(layer, int(k % n), int(rr[k // (2 * n)]), int(cc[k // (2 * n)])) for k in keys]

    def _runs(self, layer, rr, cc, old, new) -> np.ndarray:
        """:meth:`_pass` with pulse failures and restore: pass 0 of every weight tried ahead
        tile by tile; at each weight with a failed cell its restore pass is written before the
        weights after it. The same pulses, in the same order, as one weight at a time."""
        n = self.cfg.wbits
        p, i, want = self._changed(old, new)
        got = new.copy()
        if not len(p):
            return got
        if (held := self._runs_foreseen(layer, rr, cc, old, new, p, i, want)) is not None:
            return held
        self.stats["cell_writes"] += len(p)
        run = planes.OrderedWrite(self.arrays[layer], p, rr[i], cc[i], want, i.astype(np.int64) * (2 * n) + p, 2 * n)
        failed = []
        while (w := run.next_failure()) is not None:
            fk = run.failed_of(w)
            failed.append(fk)
            got[w] ^= int(np.bitwise_or.reduce(np.int64(1) << (fk % n)))
            self.stats["restored"] += 1
            bp, _, bwant = self._changed(got[w:w + 1], old[w:w + 1])
            if len(bp):
                self.stats["cell_writes"] += len(bp)
                s, r, f2 = run.insert(bp, np.full(len(bp), rr[w]), np.full(len(bp), cc[w]), bwant,
                                      w * (2 * n) + n + bp)
                self.stats["pulses_set"] += s
                self.stats["pulses_reset"] += r
                f2 = np.asarray(f2, np.int64)
                failed.append(f2)
                got[w] = old[w] ^ int(np.bitwise_or.reduce(np.int64(1) << (f2 % n))) if len(f2) else old[w]
        s, r, _ = run.finish()
        self.stats["pulses_set"] += s
        self.stats["pulses_reset"] += r
        self._record_failed(layer, rr, cc, np.concatenate(failed) if failed else np.zeros(0, np.int64))
        return got

    def _runs_foreseen(self, layer, rr, cc, old, new, p, i, want):
        """:meth:`_runs` in one step when the failed weights are those foreseen: the weights with
        a stuck or worn cell to change, their restore passes the cells that did change, failing
        where a cell wears out with that switch. The passes and restores are tried together,
        each tile in write order; when a pulse failure makes an outcome differ from the
        foreseen one, nothing is written and None is returned (then the weights go in runs)."""
        n = self.cfg.wbits
        a = self.arrays[layer]
        rows, cols = rr[i], cc[i]
        bad = a.stuck_or_worn(p, rows, cols)
        back = np.isin(i, i[bad]) & ~bad  # the restore pass: the changed cells of failed weights
        bp, bi = p[back], i[back]
        brows, bcols = rows[back], cols[back]
        bbad = np.zeros(len(bp), bool)
        if self.cfg.device.endurance:
            bbad = a.counts[bp, brows, bcols] + 1 >= self.cfg.device.endurance
        allp, allr, allc = np.r_[p, bp], np.r_[rows, brows], np.r_[cols, bcols]
        order = np.r_[i * (2 * n) + p, bi * (2 * n) + n + bp]
        foreseen = np.r_[~bad, ~bbad]
        t = a.try_ordered(allp, allr, allc, order, np.r_[bad, bbad])
        if not (t["ok"] == foreseen[t["by"]]).all():
            return None
        first = t["by"] < len(p)  # pass 0, then the restore pass over the same cells
        allw = np.r_[want, 1 - want[back]]
        s0, r0, f0 = a.commit(t, allp, allr, allc, allw, order, np.flatnonzero(first))
        s1, r1, f1 = a.commit(t, allp, allr, allc, allw, order, np.flatnonzero(~first))
        for k, used in t["used"].items():
            a._gens[k].skip(used)
        self.stats["cell_writes"] += len(allp)
        self.stats["pulses_set"] += s0 + s1
        self.stats["pulses_reset"] += r0 + r1
        failed_w = np.unique(i[bad])
        self.stats["restored"] += len(failed_w)
        got = new.copy()
        got[failed_w] = old[failed_w]
        if len(f1):  # a restore that failed leaves the new bit
            k = np.asarray(f1, np.int64)
            np.bitwise_xor.at(got, k // (2 * n), np.int64(1) << (k % n))
        self._record_failed(layer, rr, cc, np.asarray(f0 + f1, np.int64))
        return got

    def _changed(self, cur, want_codes):
        """The cells where ``want_codes`` differ from ``cur``: (plane, weight index, bit wanted),
        weight by weight."""
        wide = self.cfg.wbits > 8  # codes of up to 16 bits: two bytes per weight, little-endian
        d = (cur ^ want_codes).astype("<u2" if wide else np.uint8)
        f = np.flatnonzero(np.unpackbits(d.view(np.uint8), bitorder="little").view(bool))
        i, p = (f >> 4, f & 15) if wide else (f >> 3, f & 7)
        return p, i, ((want_codes[i] >> p) & 1).astype(np.uint8)

    def _write(self, layer, rr, cc, cur, want_codes, second: int, index=None):
        """Write-verify the bits where ``want_codes`` differ from ``cur``; returns the codes held
        afterwards and the order keys of the failed cells (weight * 2n + pass * n + plane, the
        weight counted in the whole command)."""
        n = self.cfg.wbits
        p, i, want = self._changed(cur, want_codes)
        got = want_codes.copy()
        if not len(p):
            return got, np.zeros(0, np.int64)
        self.stats["cell_writes"] += len(p)  # write-verify commands (one per changed cell)
        w = i if index is None else np.asarray(index)[i]  # the weight's place in the command
        order = w.astype(np.int64) * (2 * n) + second * n + p
        n_set, n_reset, fk = self.arrays[layer].write_batch(p, rr[i], cc[i], want, order)
        self.stats["pulses_set"] += n_set
        self.stats["pulses_reset"] += n_reset
        fk = np.asarray(fk, np.int64)
        if len(fk):  # a failed cell keeps its bit
            pos = fk // (2 * n) if index is None else np.searchsorted(np.asarray(index), fk // (2 * n))
            np.bitwise_xor.at(got, pos, np.int64(1) << (fk % n))
        return got, fk

    def backward_read(self, eq: np.ndarray) -> np.ndarray:
        """``g = w2 @ eq`` as the self-training chip gets it from the output layer's arrays:
        bit-serial transposed reads (:meth:`rrambnn.gen.planes.PlaneArrays.transposed_read`),
        most significant error bit first; per bit one read driven by the columns whose error is
        positive with that magnitude bit set, one by those whose error is negative; every
        plane's row sums shifted by its bit and added (sum_b 2^b T_b = x . (2u - U) per row):
        ``acc = 2 acc + R(P_c) - R(N_c)``. 2 (e - 1) reads."""
        eq = np.asarray(eq, np.int64)
        a = self.arrays[1]
        weight = np.int64(1) << np.arange(a.n, dtype=np.int64)
        mag = np.abs(eq)
        acc = np.zeros(a.n_in, np.int64)
        for c in range(self.cfg.e - 2, -1, -1):
            bit = (mag >> c) & 1
            acc = 2 * acc + weight @ a.transposed_read(bit * (eq > 0)) - weight @ a.transposed_read(bit * (eq < 0))
        return acc

    # -- state --------------------------------------------------------------------------
    def accuracy(self, x, y) -> dict:
        return accuracy(self.w, self.ramps, x, y)

    def codes(self) -> list[np.ndarray]:
        return [decode(a.cells) for a in self.arrays]


# -- programming a pretrained network onto a faulty chip -----------------------------------

def nearest_codes(codes: np.ndarray, mask: np.ndarray, value: np.ndarray, n: int, chunk: int = 4096) -> np.ndarray:
    """For each weight, the code nearest to ``codes`` whose bits under ``mask`` equal ``value``
    (ties: the lower code)."""
    out = codes.copy()
    todo = np.flatnonzero(mask)
    cand = np.arange(1 << n, dtype=np.int64)
    for i in range(0, len(todo), chunk):
        j = todo[i:i + chunk]
        ok = (cand[None, :] & mask[j, None]) == value[j, None]
        dist = np.where(ok, np.abs(cand[None, :] - codes[j, None]), 1 << 40)
        out[j] = dist.argmin(axis=1)
    return out


def fault_aware_codes(codes: list[np.ndarray], faults: list[np.ndarray], n: int, passes: int = 8):
    """What the host programs after reading the write-verify controller's failed-cell reports:
    program the codes; every failed cell is stuck at the other state, so for each weight with
    such a cell program the nearest code that keeps it; repeat until no new cell fails. Returns
    the codes asked for per layer and the passes taken."""
    out, used = [], 0
    for u, f in zip(codes, faults):
        u = np.asarray(u, np.int64)
        flat_u = u.ravel()
        stuck = (f != dev.HEALTHY).reshape(n, -1)
        lrs = (f == dev.STUCK_LRS).reshape(n, -1)
        mask = np.zeros(flat_u.shape, np.int64)
        value = np.zeros(flat_u.shape, np.int64)
        target = flat_u.copy()
        for k in range(passes):
            bits = encode(target, n)
            failed = stuck & (bits != lrs)  # reported by write-verify
            new = np.zeros_like(mask)
            for b in range(n):
                new |= failed[b].astype(np.int64) << b
            new &= ~mask
            if not new.any():
                break
            used = max(used, k + 1)
            mask |= new
            for b in range(n):
                value |= (lrs[b] & ((new >> b) & 1).astype(bool)).astype(np.int64) << b
            target = nearest_codes(flat_u, mask, value, n)
        out.append(target.reshape(u.shape))
    return out, used


# -- the trainer -------------------------------------------------------------------------

@dataclass
class Trace:
    """The first samples of a run, for hardware replay: inputs, labels, forward results and
    the commands each sample produced (hidden rank-1 step, output element updates)."""

    x: list = field(default_factory=list)
    labels: list = field(default_factory=list)
    steps: list = field(default_factory=list)
    epoch: list = field(default_factory=list)


def blank_codes(arch, cfg: NbitConfig) -> list[np.ndarray]:
    """Random small weights: real values uniform in +-INIT (hidden, output layer)."""
    rng = np.random.default_rng([cfg.seed, 0xB1A4])
    out = []
    for n_in, n_out, init, r in zip(arch[:-1], arch[1:], INIT, (cfg.r1, cfg.r2)):
        w = rng.uniform(-init, init, (n_in, n_out)) * cfg.U / r
        out.append(np.clip(np.floor((w + cfg.U) / 2 + 0.5), 0, cfg.U).astype(np.int64))
    return out


def _next_update(chip: NbitChip, x_tr, y_tr, idx, epoch: int, i: int, ahead: int, batch: int) -> tuple[int, int]:
    """Read the samples ``idx`` (training order from position ``i``) ahead in one forward pass;
    skip those without an output error and apply the first with one. Returns the position
    after it and how many samples to read ahead next: twice the run of error-free samples just
    seen (at least 4, since a read's fixed cost is that of a few rows; at most ``batch``), so
    that late epochs, where few samples update, go in large reads and the first epochs, where
    most do, waste little."""
    h, o, eq = chip.errors(x_tr[idx], y_tr[idx])
    hot = np.flatnonzero(eq.any(axis=1))
    k = int(hot[0]) if len(hot) else len(idx)
    chip.skip(k)
    if k == len(idx):
        return i + k, min(batch, 2 * ahead)
    x = x_tr[idx[k]]
    chip.apply(x, chip.compute(x, int(y_tr[idx[k]]), epoch, ahead=(h[k], o[k], eq[k])))
    return i + k + 1, min(batch, max(4, 2 * k))


def train(chip: NbitChip, data, *, epochs: int, samples: int | None = None, record: int = 0,
          progress=None, batch: int = 512) -> tuple[list[dict], Trace]:
    """``epochs`` epochs over ``samples`` training images each (all by default, shuffled by the
    seed); the accuracy after each (entry 0: before training). ``record`` > 0 keeps the first
    ``record`` samples' inputs and steps for hardware replay. Samples are read ahead up to
    ``batch`` at a time (:func:`_next_update`); the result is the same for every ``batch``,
    sample by sample at 1."""
    x_tr, y_tr, x_te, y_te = data
    cfg = chip.cfg
    n = len(x_tr) if samples is None else min(samples, len(x_tr))
    trace = Trace()
    per_epoch = [{"epoch": 0, **chip.accuracy(x_te, y_te), **chip.stats, "switches": 0, "seconds": 0.0}]
    for ep, order in enumerate(sample_order(cfg, len(x_tr), samples, epochs), start=1):
        t0 = time.time()
        i, ahead, shown = 0, 1, 0
        while i < n:
            if len(trace.x) < record:  # recorded samples one at a time, as the replay sees them
                x, lab = x_tr[order[i]], int(y_tr[order[i]])
                st = chip.compute(x, lab, ep)
                trace.x.append(x.copy())
                trace.labels.append(lab)
                trace.steps.append(st)
                trace.epoch.append(ep)
                chip.apply(x, st)
                i += 1
            else:
                i, ahead = _next_update(chip, x_tr, y_tr, order[i:i + ahead], ep, i, ahead, batch)
            if progress and i - shown >= 256:
                progress(i - shown)
                shown = i
        if progress:
            progress(n - shown)
        per_epoch.append({"epoch": ep, **chip.accuracy(x_te, y_te), **chip.stats,
                          "switches": int(sum(a.counts.sum() for a in chip.arrays)),
                          "seconds": round(time.time() - t0, 1)})
    return per_epoch, trace


def switch_stats(chip: NbitChip) -> dict:
    """Switches per bit position (plane b = code bit b, b = n-1 the most significant) and wear,
    per layer and in total."""
    n = chip.cfg.wbits
    E = chip.cfg.device.endurance
    per_layer = []
    for a in chip.arrays:
        per_layer.append({"switches": a.counts.sum(axis=(1, 2)).tolist(),
                          "max_per_cell": a.counts.max(axis=(1, 2)).tolist(),
                          "worn_out_cells": (a.counts >= E).sum(axis=(1, 2)).tolist() if E else None})
    tot = np.sum([pl["switches"] for pl in per_layer], axis=0)
    cells = sum(a.counts[0].size for a in chip.arrays)
    counts = np.concatenate([a.counts.ravel() for a in chip.arrays])
    hist_edges = [0, 1, 10, 100, 1000, 10000, 100000, 2 ** 32]
    hist = np.histogram(counts, bins=hist_edges)[0]
    return {"planes": [f"b{b}" for b in range(n)], "switches": tot.tolist(),
            "max_per_cell": np.max([pl["max_per_cell"] for pl in per_layer], axis=0).tolist(),
            "mean_per_cell": (tot / cells).round(3).tolist(), "total": int(tot.sum()),
            "worn_out_cells": np.sum([pl["worn_out_cells"] for pl in per_layer], axis=0).tolist() if E else None,
            "per_layer": per_layer,
            "histogram": {"edges": hist_edges[:-1], "cells": hist.tolist()}}


def start_codes(arch, cfg: NbitConfig, codes, data) -> tuple[list[np.ndarray], dict | None]:
    """The codes a run programs: random small weights (``codes`` None, a blank start), or the
    pretrained ``codes``, fault-aware on a chip with stuck cells (then also what naive
    programming would have given on the test set of ``data``)."""
    if codes is None:
        return blank_codes(arch, cfg), None
    codes = [np.asarray(c, np.int64).copy() for c in codes]
    if cfg.device.yield_ >= 1:
        return codes, None
    faults = planes.plane_faults(arch, cfg.device, cfg.wbits)
    naive = NbitChip(arch, cfg, codes, faults=faults).accuracy(data[2], data[3])
    codes, passes = fault_aware_codes(codes, faults, cfg.wbits)
    return codes, {"naive": naive, "fault_aware_passes": passes}


def sample_order(cfg: NbitConfig, n_train: int, samples: int | None, epochs: int):
    """The training order of :func:`train`: per epoch the indices of its samples."""
    rng = np.random.default_rng([cfg.seed, 0x7EA1])
    n = n_train if samples is None else min(samples, n_train)
    for _ in range(epochs):
        yield rng.permutation(n_train)[:n]


def run(arch, cfg: NbitConfig, data, *, codes=None, epochs: int, samples: int | None, record: int = 0,
        progress: bool = False, desc: str = "online") -> dict:
    """One online-training run: from ``codes`` (pretrained) or a blank start. Returns the
    result dict (accuracy per epoch, pulses, switches) with the chip and the trace."""
    from tqdm import tqdm

    start = "blank" if codes is None else "pretrained"
    codes, programming = start_codes(arch, cfg, codes, data)
    chip = NbitChip(arch, cfg, codes)
    x_tr = data[0]
    n = len(x_tr) if samples is None else min(samples, len(x_tr))
    bar = tqdm(total=n * epochs, desc=desc, unit="img", disable=not progress, leave=False, mininterval=1.0)
    t0 = time.time()
    per_epoch, trace = train(chip, data, epochs=epochs, samples=n, record=record, progress=bar.update)
    bar.close()
    d = cfg.device
    res = {"forward": "nbit", "arch": list(arch), "bits": cfg.wbits, "rule": cfg.describe(), "start": start,
           "samples_per_epoch": n, "epochs": epochs,
           "device": {"yield": d.yield_, "p_fail": d.p_fail, "endurance": d.endurance, "seed": d.seed},
           "seed": cfg.seed, "seconds": round(time.time() - t0, 1),
           "per_epoch": per_epoch, "switches": switch_stats(chip)}
    if programming:
        res["programming"] = programming
    res["final"] = {k: per_epoch[-1][k] for k in ("priority", "argmax")}
    res["best"] = {k: max(e[k] for e in per_epoch) for k in ("priority", "argmax")}
    res["best_epoch"] = max(per_epoch, key=lambda e: e["argmax"])["epoch"]
    return {"result": res, "chip": chip, "trace": trace, "initial_codes": codes}


# -- trained networks (the pretrained start) ------------------------------------------

FORMAT = "rrambnn-online"


def save_codes(path, arch, cfg: NbitConfig, codes: list[np.ndarray], meta: dict):
    """An n-bit online network: offset codes per layer and the rule's precision."""
    arrays = {"format": np.array(FORMAT), "version": np.array(1, np.int32), "arch": np.array(arch, np.int32),
              "crop": np.array(int(round(math.sqrt(arch[0]))), np.int32), "bits": np.array(cfg.wbits, np.int32),
              "act_bits": np.array(cfg.m, np.int32), "range_shift": np.array(cfg.k, np.int32),
              "meta": np.array(json.dumps(meta, sort_keys=True))}
    for k, u in enumerate(codes):
        arrays[f"u{k}"] = np.asarray(u, np.uint16)
    write_npz(path, arrays)


def load_codes(path, entries: dict | None = None) -> dict:
    """Read and check a file written by :func:`save_codes` (``entries``: its entries when already
    read)."""
    d = read_npz(path, ".npz file") if entries is None else entries
    if "format" not in d or d["format"].shape != () or str(d["format"]) != FORMAT:
        raise RrambnnError(f"{path}: not an n-bit online network (format {FORMAT!r})")
    try:
        arch = [int(a) for a in d["arch"]]
        bits, act_bits, crop = int(d["bits"]), int(d["act_bits"]), int(d["crop"])
        range_shift = int(d["range_shift"]) if "range_shift" in d else None
        codes = [d[f"u{k}"].astype(np.int64) for k in range(len(arch) - 1)]
        meta = json.loads(str(d["meta"]))
    except (KeyError, ValueError, TypeError) as e:
        raise RrambnnError(f"{path}: missing or malformed entry ({e})") from None
    if (len(arch) != 3 or min(arch) < 1 or crop * crop != arch[0] or not 2 <= bits <= MAX_BITS
            or not 1 <= act_bits <= MAX_ACT_BITS or (range_shift is not None and not 0 <= range_shift <= 4)):
        raise RrambnnError(f"{path}: arch {arch}, crop {crop}, bits {bits}/{act_bits} or range shift {range_shift} "
                           f"out of range")
    for k, u in enumerate(codes):
        if u.shape != (arch[k], arch[k + 1]) or u.min() < 0 or u.max() > (1 << bits) - 1:
            raise RrambnnError(f"{path}: u{k} must have shape ({arch[k]}, {arch[k + 1]}) with codes in "
                               f"[0, {(1 << bits) - 1}]")
    return {"arch": tuple(arch), "bits": bits, "act_bits": act_bits, "range_shift": range_shift, "crop": crop,
            "codes": codes, "meta": meta}


def binary_data(data_dir=None, crop: int = 20):
    """MNIST as the chip sees it: binarised centre crop, bits (N, crop*crop) uint8."""
    from rrambnn.gen.mnist import Preprocess, load_split
    pre = Preprocess(crop=crop)
    tr, te = load_split("train", data_dir), load_split("test", data_dir)
    return (pre(tr.images).astype(np.uint8), tr.labels.astype(np.int64), pre(te.images).astype(np.uint8),
            te.labels.astype(np.int64))


# -- the training chip and its traces ----------------------------------------------------

def training_network(arch, cfg: NbitConfig, codes):
    """The multi-bit network the training chip's arrays compute: odd codes w = 2u - U in n
    slices, the hidden quantised sigmoid as every hidden neuron's threshold ramp, output
    thresholds 0 (the priority encoder fires on o >= 0). Inputs are the binary pixels (codes 0/1)."""
    from rrambnn.gen.sliced import SlicedNetwork
    if cfg.wbits > 8 or cfg.m > 8:
        raise RrambnnError(f"the training chip holds at most 8-bit weights and neurons, not {cfg.wbits}/{cfg.m}")
    T1, _ = cfg.ramps()
    w = [(2 * np.asarray(u, np.int64) - cfg.U).astype(np.int16) for u in codes]
    th = [np.tile(T1.astype(np.int32), (arch[1], 1)), np.zeros(arch[2], np.int32)]
    return SlicedNetwork(w, th, cfg.wbits, cfg.m, int(round(math.sqrt(arch[0]))), "argmax",
                         {"rule": cfg.describe(), "config": config_dict(cfg)})


def rule_of(net) -> NbitConfig:
    """The rule a training network of :func:`training_network` was made for."""
    try:
        return config_from(net.meta["config"])
    except (AttributeError, KeyError, TypeError):
        raise RrambnnError("this network was not made by training_network: it carries no training rule") from None


TRACE_FORMAT = "rrambnn-training-trace"


def config_dict(cfg: NbitConfig) -> dict:
    d = cfg.device
    return {"wbits": cfg.wbits, "abits": cfg.abits, "err_bits": cfg.err_bits, "lr_shift": cfg.lr_shift,
            "decay": cfg.decay, "range_shift": cfg.range_shift, "restore": cfg.restore, "retries": cfg.retries, "tile": list(cfg.tile),
            "device": {"yield_": d.yield_, "p_fail": d.p_fail, "endurance": d.endurance, "seed": d.seed},
            "seed": cfg.seed}


def config_from(d: dict) -> NbitConfig:
    return NbitConfig(**{**d, "tile": tuple(d["tile"]), "device": dev.DeviceParams(**d["device"])})


def save_trace(path, chip: NbitChip, trace: Trace, codes):
    """A recorded run start for hardware replay: the rule and device, the arrays' first state
    (as programmed, stuck cells included) and fault maps, and per sample its input, label,
    epoch, forward results and commands (hidden rank-1 steps dense, output element updates as
    (sample, row, col, delta))."""
    K = len(trace.x)
    n_hid = chip.arch[1]
    steps = np.zeros((K, n_hid), np.int16)
    el = [[], [], [], []]
    for i, st in enumerate(trace.steps):
        steps[i, st.cols] = st.step
        el[0] += [i] * len(st.rows2)
        el[1] += st.rows2.tolist()
        el[2] += st.cols2.tolist()
        el[3] += st.delta2.tolist()
    arrays = {"format": np.array(TRACE_FORMAT), "arch": np.array(chip.arch, np.int32),
              "config": np.array(json.dumps(config_dict(chip.cfg))),
              "x": np.array(trace.x, np.uint8).reshape(K, chip.arch[0]), "labels": np.array(trace.labels, np.int32),
              "epoch": np.array(trace.epoch, np.int32),
              "h": np.array([st.h for st in trace.steps], np.int32).reshape(K, n_hid),
              "o": np.array([st.o for st in trace.steps], np.int64).reshape(K, chip.arch[2]),
              "steps": steps, "el_sample": np.array(el[0], np.int32), "el_row": np.array(el[1], np.int32),
              "el_col": np.array(el[2], np.int32), "el_delta": np.array(el[3], np.int32)}
    for k, a in enumerate(chip.arrays):
        arrays[f"cells{k}"] = chip.initial[k]
        arrays[f"faults{k}"] = a.faults
    write_npz(path, arrays)


def load_trace(path) -> dict:
    """Read a trace of :func:`save_trace`: arch, config, initial cells, faults and the samples
    (x, label, epoch, h, o, Step) in order."""
    d = read_npz(path, "training trace")
    try:
        if "format" not in d or str(d["format"]) != TRACE_FORMAT:
            raise ValueError("not a training trace")
        arch = tuple(int(a) for a in d["arch"])
        cfg = config_from(json.loads(str(d["config"])))
        cells = [d[f"cells{k}"] for k in range(len(arch) - 1)]
        faults = [d[f"faults{k}"] for k in range(len(arch) - 1)]
        samples = []
        for i in range(len(d["labels"])):
            cols = np.flatnonzero(d["steps"][i])
            sel = np.flatnonzero(d["el_sample"] == i)
            st = Step(d["h"][i].astype(np.int64), d["o"][i], cols, d["steps"][i][cols].astype(np.int64),
                      d["el_row"][sel].astype(np.int64), d["el_col"][sel].astype(np.int64),
                      d["el_delta"][sel].astype(np.int64))
            samples.append((d["x"][i], int(d["labels"][i]), int(d["epoch"][i]), st))
    except (ValueError, KeyError, TypeError, IndexError, RrambnnError) as e:
        raise RrambnnError(f"{path}: not a readable training trace ({e})") from None
    return {"arch": arch, "config": cfg, "cells": cells, "faults": faults, "samples": samples}


def chip_from_cells(arch, cfg: NbitConfig, cells, faults) -> NbitChip:
    """A golden chip whose arrays start as ``cells`` (per layer (n, n_in, n_out)) with ``faults``."""
    chip = NbitChip(arch, cfg, [decode(np.asarray(c)) for c in cells], faults=faults)
    return chip
