"""The golden multi-bit network: weights as bit slices in binary cells, multi-bit activations.

A design point of ``wbits`` = n and ``abits`` = m generalises the binary network exactly
(n = m = 1 *is* :class:`rrambnn.gen.network.BinaryNetwork`):

* **Weights** are odd integer codes w in {-(2^n - 1), ..., -1, 1, ..., 2^n - 1} stored in n
  binary cells, one per *slice* b (the same crossbar, LRS = +1, HRS = -1):

      w = sum_b 2^b * s_b,   s_b in {-1, +1},   u = (w + 2^n - 1) / 2,   s_b = 2 * bit_b(u) - 1

  so every slice array is a binary crossbar whose column sum is the digital twin
  2*popcount(x AND c) - popcount(x), and the layer's sum is the slices' sums shifted and added
  (binary-weighted current mirrors before the sense stage, or a digital shift-add).
* **Activations** and input pixels are unsigned m-bit codes a in {0, ..., 2^m - 1}. Pixels are
  quantised as ``q = (p * (2^m - 1) + 127) // 255`` (m = 1: p >= 128, the chip's binarisation).
  A layer takes its input one bit-plane at a time (bit-serial word lines): its sum is
  sum_k 2^k * S(plane_k), equal to the integer x @ w.
* **Hidden neurons** quantise with 2^m - 1 non-decreasing integer thresholds:
  a_j = #{l : S_j >= theta_jl} (m = 1: the single sense-stage comparator). The output layer has
  one threshold per neuron and the same output stage as the binary chip (priority / argmax).

The batch-norm merge that produces these thresholds is exact for any n, m
(:func:`rrambnn.gen.train.signed_merge`).

**Ternary weights** (``ternary=True``, n = 2; what FINN calls 2-bit weights: a signed narrow
2-bit quantiser, -1/0/+1 times a scale) are the codes c in {-2, 0, 2} held as two slices of
*equal* significance, a differential pair in two planes of binary cells:

    c = s_0 + s_1,   s_0 = +1 if c >= 0 else -1,   s_1 = +1 if c > 0 else -1

so c = 0 is one LRS and one HRS cell. The layer's sum is the two slices' sums added without a
shift; everything else (activations, thresholds, output stage) is as above.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np

from rrambnn.errors import RrambnnError
from rrambnn.fileio import Entries, layer_arrays, read_npz, rethrow_in, write_npz
from rrambnn.gen import crossbar
from rrambnn.gen.network import Trace, answers, check_output_mode, priority_encode, score

FORMAT = "rrambnn-sliced"
VERSION = 1
MAX_BITS = 8


def check_bits(name: str, n) -> int:
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or not 1 <= n <= MAX_BITS:
        raise RrambnnError(f"{name} must be an integer from 1 to {MAX_BITS}, not {n!r}")
    return int(n)


def quantise_pixels(images: np.ndarray, abits: int) -> np.ndarray:
    """uint8 pixels -> m-bit codes (uint8); m = 1 is the chip's binarisation at 128."""
    levels = (1 << abits) - 1
    return ((images.astype(np.int32) * levels + 127) // 255).astype(np.uint8)


def crop_inputs(images: np.ndarray, crop: int, abits: int) -> np.ndarray:
    """uint8 images (N, 28, 28) -> quantised input codes (N, crop*crop), bit i = row*crop + col."""
    o = (28 - crop) // 2
    return quantise_pixels(images[:, o:o + crop, o:o + crop], abits).reshape(len(images), crop * crop)


def slice_gains(wbits: int, ternary: bool = False) -> list[int]:
    """What each weight slice's column sum weighs: 2^b, or 1 and 1 for ternary weights."""
    return [1, 1] if ternary else [1 << b for b in range(wbits)]


def weight_top(wbits: int, ternary: bool = False) -> int:
    """The largest weight code: 2^n - 1, or 2 for ternary weights."""
    return sum(slice_gains(wbits, ternary))


def weight_slices(w: np.ndarray, wbits: int, ternary: bool = False) -> np.ndarray:
    """Codes (n_in, n_out) -> slices (n, n_in, n_out) of -1/+1 with w = sum_b gain_b s_b
    (:func:`slice_gains`)."""
    if ternary:
        return np.stack([np.where(w >= 0, 1, -1), np.where(w > 0, 1, -1)]).astype(np.int8)
    u = (w.astype(np.int32) + (1 << wbits) - 1) // 2
    return np.stack([(((u >> b) & 1) * 2 - 1).astype(np.int8) for b in range(wbits)])


def slice_codes(cells: np.ndarray, wbits: int, ternary: bool = False) -> np.ndarray:
    """Cell states (n, n_in, n_out), 1 = LRS, -> the codes they hold (the inverse of
    :func:`weight_slices`; any cell pattern is a valid code)."""
    return sum(g * (2 * cells[b].astype(np.int32) - 1)
               for b, g in enumerate(slice_gains(wbits, ternary))).astype(np.int16)


def bit_planes(x: np.ndarray, bits: int) -> np.ndarray:
    """Codes (N, n) -> planes (bits, N, n) of {0,1}, LSB first."""
    return np.stack([((x >> k) & 1).astype(np.uint8) for k in range(bits)])


def sum_bound(n_in: int, wbits: int, abits: int, ternary: bool = False) -> int:
    """max |S| of a layer with ``n_in`` inputs."""
    return n_in * weight_top(wbits, ternary) * ((1 << abits) - 1)


@dataclass
class SlicedNetwork:
    """An integer, hardware-exact network with n-bit weights and m-bit activations."""

    weights: list[np.ndarray]  # int16 (n_in, n_out), odd codes in [-(2^n-1), 2^n-1] (ternary: -2, 0, 2)
    thresholds: list[np.ndarray]  # int32: hidden (n_out, 2^m - 1) non-decreasing rows; last (n_out,)
    wbits: int = 1
    abits: int = 1
    crop: int = 20
    output_mode: str = "priority"
    meta: dict = field(default_factory=dict)
    where: str = field(default="network", repr=False, compare=False)
    ternary: bool = False  # 2-bit weights -1/0/+1 as codes -2/0/2 in two equal slices

    def __post_init__(self):
        self.validate(self.where)
        self._bounds = [self.bound(k) for k in range(len(self.weights))]

    def bound(self, k: int) -> int:
        """max |S| of layer k."""
        return sum_bound(self.weights[k].shape[0], self.wbits, self.abits, self.ternary)

    @property
    def arch(self) -> tuple[int, ...]:
        return (self.weights[0].shape[0],) + tuple(w.shape[1] for w in self.weights)

    @property
    def levels(self) -> int:
        return (1 << self.abits) - 1

    def slices(self, k: int) -> np.ndarray:
        return weight_slices(self.weights[k], self.wbits, self.ternary)

    def cells(self, k: int) -> np.ndarray:
        """Cell states of layer k, (n, n_in, n_out), 1 = LRS; slice b holds weight bit b (ternary:
        the two cells of the differential pair)."""
        return (self.slices(k) > 0).astype(np.uint8)

    def inputs(self, images: np.ndarray) -> np.ndarray:
        return crop_inputs(images, self.crop, self.abits)

    def validate(self, where: str = "network"):
        self.wbits = check_bits("Weight bits", self.wbits)
        self.abits = check_bits("Activation bits", self.abits)
        if not isinstance(self.ternary, bool):
            raise RrambnnError(f"{where}: ternary must be a bool, not {self.ternary!r}")
        if self.ternary and self.wbits != 2:
            raise RrambnnError(f"{where}: ternary weights are 2-bit (two cells per weight), not {self.wbits}-bit")
        if not isinstance(self.crop, int) or not 1 <= self.crop <= 28:
            raise RrambnnError(f"{where}: crop must be an integer from 1 to 28, not {self.crop!r}")
        if len(self.weights) == 0 or len(self.weights) != len(self.thresholds):
            raise RrambnnError(f"{where}: needs one threshold array per weight matrix")
        top = weight_top(self.wbits, self.ternary)
        prev = None
        for i, (w, t) in enumerate(zip(self.weights, self.thresholds)):
            if not isinstance(w, np.ndarray) or w.ndim != 2:
                raise RrambnnError(f"{where}: layer {i} weights must be a 2-D array")
            if prev is not None and w.shape[0] != prev:
                raise RrambnnError(f"{where}: layer {i} weights have {w.shape[0]} rows, previous layer has "
                                   f"{prev} outputs")
            if self.ternary and (w.dtype != np.int16 or w.size == 0 or not np.isin(w, (-2, 0, 2)).all()):
                raise RrambnnError(f"{where}: layer {i} weights must be int16 ternary codes -2, 0 or 2")
            if not self.ternary and (w.dtype != np.int16 or w.size == 0 or (w % 2 == 0).any()
                                     or np.abs(w).max() > top):
                raise RrambnnError(f"{where}: layer {i} weights must be int16 odd codes from -{top} to {top} "
                                   f"({self.wbits}-bit slices)")
            last = i == len(self.weights) - 1
            shape = (w.shape[1],) if last else (w.shape[1], self.levels)
            if not isinstance(t, np.ndarray) or t.shape != shape or t.dtype != np.int32:
                raise RrambnnError(f"{where}: layer {i} thresholds must be int32 of shape {shape}, not "
                                   f"{getattr(t, 'dtype', type(t))} {getattr(t, 'shape', '')}")
            bound = sum_bound(w.shape[0], self.wbits, self.abits, self.ternary)
            if t.size and (t.min() < -bound or t.max() > bound + 1):
                raise RrambnnError(f"{where}: layer {i} thresholds must lie in [-{bound}, {bound + 1}]")
            if not last and (np.diff(t, axis=1) < 0).any():
                raise RrambnnError(f"{where}: layer {i} thresholds must not decrease from level to level")
            prev = w.shape[1]
        if self.crop * self.crop != self.weights[0].shape[0]:
            raise RrambnnError(f"{where}: crop {self.crop}x{self.crop} gives {self.crop ** 2} inputs but the "
                               f"first layer has {self.weights[0].shape[0]}")
        check_output_mode(self.output_mode)

    # -- inference ---------------------------------------------------------------
    def forward(self, x: np.ndarray, *, trace: bool = True, chunk: int = 4096):
        """Input codes (N, n_in) in [0, 2^m - 1] -> :class:`Trace` (acts are codes), or the
        (priority, argmax, hit) triple, the sums from the one crossbar read."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.arch[0]:
            raise RrambnnError(f"inputs must have shape (N, {self.arch[0]}), not {x.shape}")
        if x.size and x.max() > self.levels:
            raise RrambnnError(f"inputs must be {self.abits}-bit codes (at most {self.levels})")
        sums, acts, prio, amax, hit = [], [], [], [], []
        for i in range(0, max(len(x), 1), chunk):
            a = x[i:i + chunk]
            s_l, a_l = [], []
            for k, (w, t) in enumerate(zip(self.weights, self.thresholds)):
                s = crossbar.read(a, w, bound=self._bounds[k])
                if k < len(self.weights) - 1:
                    code = (s[:, :, None] >= t[None]).sum(axis=2)
                else:
                    code = s >= t
                s_l.append(s.astype(np.int64))
                a_l.append(code.astype(np.uint8))
                a = code
            p, h = priority_encode(a_l[-1].astype(bool))
            sums.append(s_l)
            acts.append(a_l)
            prio.append(p)
            hit.append(h)
            amax.append((s_l[-1] - self.thresholds[-1]).argmax(axis=1))
        if not trace:
            return np.concatenate(prio), np.concatenate(amax), np.concatenate(hit)
        n = len(self.weights)
        return Trace(sums=[np.concatenate([s[k] for s in sums]) for k in range(n)],
                     acts=[np.concatenate([a[k] for a in acts]) for k in range(n)],
                     priority=np.concatenate(prio), argmax=np.concatenate(amax), hit=np.concatenate(hit))

    def twin_sums(self, k: int, x: np.ndarray) -> np.ndarray:
        """Layer k's column sums the hardware way: per activation bit-plane and weight slice, the
        crossbar twin 2*popcount(x AND c) - popcount(x), weighted by 2^plane * the slice's gain
        (2^slice; ternary: 1) and added."""
        cells = self.cells(k)
        total = np.zeros((len(x), self.arch[k + 1]), np.int64)
        for p, plane in enumerate(bit_planes(x, self.abits)):
            for b, g in enumerate(slice_gains(self.wbits, self.ternary)):
                total += (crossbar.twin(plane, cells[b]).astype(np.int64) * g) << p
        return total

    def classify(self, x, mode=None):
        """The answers of the output stage (``REJECT`` for a priority reject)."""
        prio, amax, hit = self.forward(x, trace=False)
        mode = check_output_mode(mode or self.output_mode)
        return answers(prio if mode == "priority" else amax, hit, mode)

    def accuracy(self, x, labels) -> dict:
        """Both output stages; a priority reject counts as wrong."""
        return score(*self.forward(x, trace=False), labels)

    # -- files -------------------------------------------------------------------
    def save(self, path: str | os.PathLike):
        arrays = {"format": np.array(FORMAT), "version": np.array(VERSION, np.int32),
                  "arch": np.array(self.arch, np.int32), "crop": np.array(self.crop, np.int32),
                  "wbits": np.array(self.wbits, np.int32), "abits": np.array(self.abits, np.int32),
                  "output_mode": np.array(self.output_mode), "meta": np.array(json.dumps(self.meta, sort_keys=True)),
                  **({"weight_code": np.array("ternary")} if self.ternary else {}),
                  **layer_arrays(self.weights, self.thresholds)}
        write_npz(path, arrays)

    @classmethod
    def load(cls, path: str | os.PathLike, entries: dict | None = None) -> "SlicedNetwork":
        """The network in ``path`` (``entries``: its entries when already read, see
        :func:`rrambnn.gen.netfile.read_network`)."""
        e = Entries(path, read_npz(path, ".npz weights file") if entries is None else entries)
        e.header(FORMAT, VERSION)
        weights, thresholds = e.layers(e.arch())
        meta = e.json("meta")
        code = e.str("weight_code") if "weight_code" in e.data else "binary"
        if code not in ("binary", "ternary"):
            raise e.error(f"'weight_code' must be 'binary' or 'ternary', not {code!r}")
        try:
            return cls(weights, thresholds, e.int("wbits"), e.int("abits"), e.int("crop"), e.str("output_mode"), meta,
                       where=str(path), ternary=code == "ternary")
        except RrambnnError as err:
            raise rethrow_in(path, err) from None


def random_sliced(arch, wbits: int, abits: int, rng: np.random.Generator, crop: int | None = None,
                  output_mode: str = "priority", ternary: bool = False) -> SlicedNetwork:
    """Random codes and thresholds near the middle of each layer's sum distribution (tests)."""
    top = weight_top(wbits, ternary)
    weights, thresholds = [], []
    levels = (1 << abits) - 1
    for k, (n_in, n_out) in enumerate(zip(arch[:-1], arch[1:])):
        if ternary:
            weights.append((rng.integers(-1, 2, size=(n_in, n_out)) * 2).astype(np.int16))
        else:
            weights.append((rng.integers(0, top + 1, size=(n_in, n_out)) * 2 - top).astype(np.int16))
        spread = max(1, int(np.sqrt(n_in) * top * levels / 2))
        if k == len(arch) - 2:
            thresholds.append(rng.integers(-spread, spread + 1, size=n_out).astype(np.int32))
        else:
            thresholds.append(np.sort(rng.integers(-spread, spread + 1, size=(n_out, levels)), axis=1)
                              .astype(np.int32))
    crop = crop if crop is not None else int(round(np.sqrt(arch[0])))
    if crop * crop != arch[0]:
        raise RrambnnError(f"random_sliced needs a square input size, not {arch[0]}")
    return SlicedNetwork(weights, thresholds, wbits, abits, crop, output_mode, ternary=ternary)

