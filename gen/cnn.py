"""The golden convolutional network: integer, hardware-exact, any layer spec.

A :class:`CnnNetwork` runs a :class:`rrambnn.gen.spec.NetSpec` (convolutions, max pooling,
dense layers) with the multi-bit conventions of :mod:`rrambnn.gen.sliced`:

* input pixels and activations are unsigned ``abits``-bit codes (m = 1: a pixel is 1 iff
  >= 128, the chip's binarisation), whole images (no crop), channels last;
* weights are odd ``wbits``-bit codes ``w = 2u - (2^n - 1)`` stored as n bit slices of binary
  cells (n = 1: one cell per weight, +-1);
* every convolution and dense layer is a crossbar matrix (:meth:`NetSpec.matrices`): a
  convolution reads its im2col window (rows ordered kernel row, kernel column, input channel)
  once per output position; the column sums come from the one crossbar read
  (:func:`rrambnn.gen.crossbar.read`);
* a hidden crossbar layer's sense stage turns each column's sum into the next activation code
  with ``2^m - 1`` non-decreasing integer thresholds per column (``a = #{l : S >= theta_l}``):
  the ``cobits``-bit converter with its per-column references and the activation quantiser,
  batch norm folded in (see :mod:`rrambnn.gen.cnn_train`); m = 1 is one comparator;
* max pooling takes the largest code of each window (for binary activations: an OR);
* the last (dense) layer has one threshold per neuron and the output stage of every chip:
  ``priority`` (lowest firing neuron; a reject when none fires) or ``argmax`` of S - theta.

Weights file (``.npz``, no pickle): ``format`` "rrambnn-cnn", ``version`` 1, ``spec`` (the spec
string), ``wbits``, ``abits``, ``cobits`` (int32; 32 = no converter), ``w{k}`` int16 (rows, cols)
and ``theta{k}`` int32 per crossbar layer k, ``output_mode``, ``meta`` (JSON).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from rrambnn.errors import RrambnnError
from rrambnn.fileio import Entries, read_npz, rethrow_in, write_npz
from rrambnn.gen import crossbar
from rrambnn.gen.network import Trace, answers, check_output_mode, priority_encode, score
from rrambnn.gen.sliced import quantise_pixels, sum_bound
from rrambnn.gen.spec import Conv, NetSpec, Pool, parse_spec

FORMAT = "rrambnn-cnn"
VERSION = 1
MAX_BITS = 8  # weights and activations held by the chip's slices and bit-serial inputs
FLOAT_BITS = 32  # training's "no quantiser"
DISTURB_BLOCK = 500  # images per block of the disturbed evaluation (the draws' order is fixed by it)


def check_bits(name: str, n, *, float_ok: bool = False, top: int = MAX_BITS) -> int:
    """An integer bit width from 1 to ``top``, or 32 (float) where allowed."""
    ok = isinstance(n, (int, np.integer)) and not isinstance(n, bool) and (1 <= n <= top or (float_ok and n == 32))
    if not ok:
        raise RrambnnError(f"{name} must be an integer from 1 to {top}{' or 32 (float)' if float_ok else ''}, "
                           f"not {n!r}")
    return int(n)


def check_disturbance(d) -> float:
    """A read disturbance d: every weight read as w (1 + u), u ~ U[-d, d]; 0 <= d < 1."""
    if isinstance(d, bool) or not isinstance(d, (int, float, np.floating)) or not np.isfinite(d) or not 0 <= d < 1:
        raise RrambnnError(f"Disturbance must be a number from 0 to below 1, not {d!r}")
    return float(d)


def check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2 ** 32:
        raise RrambnnError(f"Seed must be an integer from 0 to 2^32 - 1, not {seed!r}")
    return int(seed)


def centre(spec: NetSpec, images: np.ndarray) -> np.ndarray:
    """The centre of each grey image (N, 28, 28) that the spec's H x W x 1 input takes, (N, H, W)."""
    h, w, c = spec.input
    if c != 1 or h > images.shape[1] or w > images.shape[2]:
        raise RrambnnError(f"a {h}x{w}x{c} input cannot be cut from {images.shape[1]}x{images.shape[2]} grey images")
    oy, ox = (images.shape[1] - h) // 2, (images.shape[2] - w) // 2
    return images[:, oy:oy + h, ox:ox + w]


# -- im2col and pooling ------------------------------------------------------------------

def im2col(x: np.ndarray, k: int, stride: int = 1, pad: int = 0) -> np.ndarray:
    """(N, H, W, C) -> (N, Ho, Wo, k*k*C) windows, rows ordered (kernel row, kernel column,
    channel): the crossbar's word lines for each output position (a strided view, copied once)."""
    if pad:
        x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    v = sliding_window_view(x, (k, k), axis=(1, 2))[:, ::stride, ::stride]  # (N, Ho, Wo, C, k, k)
    n, ho, wo, c = v.shape[:4]
    return v.transpose(0, 1, 2, 4, 5, 3).reshape(n, ho, wo, k * k * c)


def pool_windows(x: np.ndarray, k: int) -> list[np.ndarray]:
    """The k*k strided views of (N, H, W, C) that make up the k x k pooling windows (stride k),
    each (N, H // k, W // k, C), in window order (kernel row, then kernel column)."""
    ho, wo = x.shape[1] // k, x.shape[2] // k
    return [x[:, ky:ho * k:k, kx:wo * k:k] for ky in range(k) for kx in range(k)]


def max_pool(x: np.ndarray, k: int) -> np.ndarray:
    """(N, H, W, C) -> (N, H // k, W // k, C): the largest value of each k x k window (stride k;
    rows and columns beyond the last whole window are dropped)."""
    views = pool_windows(x, k)
    m = views[0].copy()
    for v in views[1:]:
        np.maximum(m, v, out=m)
    return m


def conv_direct(x: np.ndarray, w: np.ndarray, k: int, stride: int = 1, pad: int = 0) -> np.ndarray:
    """The convolution as loops over output positions and kernel taps (int64): the reference
    the im2col read is tested against. ``w`` is (k*k*C, C_out) in im2col row order."""
    if pad:
        x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    n, h, wd, c = x.shape
    ho, wo = (h - k) // stride + 1, (wd - k) // stride + 1
    kern = w.astype(np.int64).reshape(k, k, c, -1)
    out = np.zeros((n, ho, wo, w.shape[1]), np.int64)
    for i in range(ho):
        for j in range(wo):
            for dy in range(k):
                for dx in range(k):
                    out[:, i, j] += x[:, i * stride + dy, j * stride + dx].astype(np.int64) @ kern[dy, dx]
    return out


def ramp(s: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Activation codes ``#{l : s >= theta[:, l]}`` for sums (..., C) and thresholds (C, L)."""
    code = np.zeros(s.shape, np.uint8)
    for lv in range(theta.shape[1]):
        code += s >= theta[:, lv]
    return code


# -- the network ------------------------------------------------------------------------

@dataclass
class CnnNetwork:
    """An integer, hardware-exact network of any layer spec (see the module docstring)."""

    spec: NetSpec
    weights: list[np.ndarray]  # int16 (rows, cols) odd codes, one per crossbar layer
    thresholds: list[np.ndarray]  # int32: hidden (cols, 2^m - 1) non-decreasing rows; last (cols,)
    wbits: int = 1
    abits: int = 1
    cobits: int = FLOAT_BITS  # the converter's bits the thresholds were fitted through (32: none)
    output_mode: str = "priority"
    meta: dict = field(default_factory=dict)
    where: str = field(default="network", repr=False, compare=False)

    def __post_init__(self):
        self.spec = parse_spec(self.spec)
        self.validate(self.where)

    # -- structure ---------------------------------------------------------------
    @property
    def arch(self) -> tuple[int, ...]:
        """Inputs, then each crossbar layer's columns (a summary; :attr:`spec` is the network)."""
        return (self.spec.n_inputs,) + tuple(m.cols for m in self.spec.matrices())

    @property
    def levels(self) -> int:
        return (1 << self.abits) - 1

    def bound(self, k: int) -> int:
        """max |S| of crossbar layer k."""
        return sum_bound(self.weights[k].shape[0], self.wbits, self.abits)

    def validate(self, where: str = "network"):
        self.wbits = check_bits("Weight bits", self.wbits)
        self.abits = check_bits("Activation bits", self.abits)
        self.cobits = check_bits("Converter (CO) bits", self.cobits, float_ok=True, top=16)
        mats = self.spec.matrices()
        if len(self.weights) != len(mats) or len(self.thresholds) != len(mats):
            raise RrambnnError(f"{where}: the spec {self.spec.text} has {len(mats)} crossbar layers, the file "
                               f"{len(self.weights)} weight and {len(self.thresholds)} threshold arrays")
        top = (1 << self.wbits) - 1
        for k, (m, w, t) in enumerate(zip(mats, self.weights, self.thresholds)):
            name = f"{where}: crossbar layer {k} ({self.spec.layers[m.index].text})"
            if not isinstance(w, np.ndarray) or w.shape != (m.rows, m.cols):
                raise RrambnnError(f"{name} weights must have shape ({m.rows}, {m.cols}) (rows = kernel x kernel x "
                                   f"input channels), not {getattr(w, 'shape', type(w))}")
            if w.dtype != np.int16 or (w % 2 == 0).any() or np.abs(w).max() > top:
                raise RrambnnError(f"{name} weights must be int16 odd codes from -{top} to {top}")
            last = k == len(mats) - 1
            shape = (m.cols,) if last else (m.cols, self.levels)
            if not isinstance(t, np.ndarray) or t.shape != shape or t.dtype != np.int32:
                raise RrambnnError(f"{name} thresholds must be int32 of shape {shape}, not "
                                   f"{getattr(t, 'dtype', type(t))} {getattr(t, 'shape', '')}")
            b = self.bound(k)
            if t.size and (t.min() < -b or t.max() > b + 1):
                raise RrambnnError(f"{name} thresholds must lie in [-{b}, {b + 1}]")
            if not last and (np.diff(t, axis=1) < 0).any():
                raise RrambnnError(f"{name} thresholds must not decrease from level to level")
        check_output_mode(self.output_mode)

    # -- inputs ------------------------------------------------------------------
    def inputs(self, images: np.ndarray) -> np.ndarray:
        """uint8 MNIST images (N, 28, 28) -> input codes (N, H, W, 1), the centre of the image
        when the spec's input is smaller."""
        return quantise_pixels(centre(self.spec, images), self.abits)[..., None]

    # -- inference ---------------------------------------------------------------
    def forward(self, x: np.ndarray, *, trace: bool = True, chunk: int = 500, disturbance: float = 0.0,
                seed: int = 0):
        """Input codes (N, H, W, C) -> :class:`Trace` (``sums`` per crossbar layer, (N, Ho, Wo, C)
        for convolutions; ``acts`` per spec layer, pooled maps included) or the (priority,
        argmax, hit) triple.

        ``disturbance`` d > 0 reads every weight as w * (1 + u), u ~ U[-d, d], drawn afresh for
        every read (each image, window, driven word line and column;
        :class:`rrambnn.gen.crossbar.Disturbed`), blocks of :data:`DISTURB_BLOCK` images in order
        (seeded): the training literature's read disturbance, not the hardware-exact network
        (sums are then real numbers compared with the thresholds)."""
        x = np.asarray(x)
        if x.ndim != 4 or x.shape[1:] != self.spec.input:
            raise RrambnnError(f"inputs must have shape (N, {', '.join(map(str, self.spec.input))}), not {x.shape}")
        if x.size and x.max() > self.levels:
            raise RrambnnError(f"inputs must be {self.abits}-bit codes (at most {self.levels})")
        if check_disturbance(disturbance):
            chunk = DISTURB_BLOCK  # the draws are made per block of images, whatever the caller's chunks
        rng = np.random.default_rng(check_seed(seed)) if disturbance else None
        with crossbar.own_cores(bool(disturbance)):
            parts = [self._chunk(x[i:i + chunk], trace, disturbance, rng) for i in range(0, max(len(x), 1), chunk)]
        if not trace:
            return tuple(np.concatenate([p[k] for p in parts]) for k in range(3))
        sums = [np.concatenate([p[0][k] for p in parts]) for k in range(len(parts[0][0]))]
        acts = [np.concatenate([p[1][k] for p in parts]) for k in range(len(parts[0][1]))]
        prio, amax, hit = (np.concatenate([p[k] for p in parts]) for k in (2, 3, 4))
        return Trace(sums=sums, acts=acts, priority=prio, argmax=amax, hit=hit)

    def _read(self, k, a, d, rng):
        w = self.weights[k]
        if d:
            return crossbar.Disturbed(a, w, d, rng, dtype=np.float64).sums
        return crossbar.read(a, w, bound=self.bound(k))

    def _chunk(self, x, trace, d, rng):
        sums, acts = [], []
        a = x
        k = 0
        n_mats = len(self.weights)
        for layer in self.spec.layers:
            if isinstance(layer, Pool):
                a = max_pool(a, layer.k)
            else:
                if isinstance(layer, Conv):
                    cols = im2col(a, layer.k, layer.stride, layer.pad)
                    s = self._read(k, cols.reshape(-1, cols.shape[-1]), d, rng).reshape(cols.shape[:3] + (-1,))
                else:
                    s = self._read(k, a.reshape(len(a), -1), d, rng)
                t = self.thresholds[k]
                if trace:
                    sums.append(s.astype(np.int64) if not d else s)
                if k < n_mats - 1:
                    a = ramp(s, t)
                else:
                    fires = s >= t
                    a = fires.astype(np.uint8)
                    prio, hit = priority_encode(fires)
                    amax = (s - t).argmax(axis=1)
                k += 1
            if trace:
                acts.append(a)
        if trace:
            return sums, acts, prio, amax, hit
        return prio, amax, hit

    def classify(self, x, mode=None) -> np.ndarray:
        prio, amax, hit = self.forward(x, trace=False)
        mode = check_output_mode(mode or self.output_mode)
        return answers(prio if mode == "priority" else amax, hit, mode)

    def accuracy(self, x, labels, **kw) -> dict:
        """Both output stages; a priority reject counts as wrong."""
        return score(*self.forward(x, trace=False, **kw), labels)

    # -- files -------------------------------------------------------------------
    def save(self, path: str | os.PathLike):
        arrays = {"format": np.array(FORMAT), "version": np.array(VERSION, np.int32),
                  "spec": np.array(self.spec.text), "wbits": np.array(self.wbits, np.int32),
                  "abits": np.array(self.abits, np.int32), "cobits": np.array(self.cobits, np.int32),
                  "output_mode": np.array(self.output_mode),
                  "meta": np.array(json.dumps(self.meta, sort_keys=True))}
        for k, (w, t) in enumerate(zip(self.weights, self.thresholds)):
            arrays[f"w{k}"] = w
            arrays[f"theta{k}"] = t
        write_npz(path, arrays)

    @classmethod
    def load(cls, path: str | os.PathLike, entries: dict | None = None) -> "CnnNetwork":
        """The network in ``path`` (``entries``: its entries when already read, see
        :func:`rrambnn.gen.netfile.read_network`)."""
        e = Entries(path, read_npz(path, ".npz weights file") if entries is None else entries)
        e.header(FORMAT, VERSION)
        try:
            spec = parse_spec(e.str("spec"))
            n = len(spec.matrices())
            weights = [e.array(f"w{k}") for k in range(n)]
            thresholds = [e.array(f"theta{k}") for k in range(n)]
            return cls(spec, weights, thresholds, e.int("wbits"), e.int("abits"), e.int("cobits"),
                       e.str("output_mode"), e.json("meta"), where=str(path))
        except RrambnnError as err:
            raise rethrow_in(path, err) from None


def random_cnn(spec, wbits: int, abits: int, rng: np.random.Generator, output_mode: str = "priority") -> CnnNetwork:
    """Random codes and thresholds near the middle of each layer's sum distribution (tests)."""
    spec = parse_spec(spec)
    top, levels = (1 << wbits) - 1, (1 << abits) - 1
    mats = spec.matrices()
    weights, thresholds = [], []
    for k, m in enumerate(mats):
        weights.append((rng.integers(0, top + 1, size=(m.rows, m.cols)) * 2 - top).astype(np.int16))
        spread = max(1, int(np.sqrt(m.rows) * top * levels / 2))
        if k == len(mats) - 1:
            thresholds.append(rng.integers(-spread, spread + 1, size=m.cols).astype(np.int32))
        else:
            thresholds.append(np.sort(rng.integers(-spread, spread + 1, size=(m.cols, levels)), axis=1)
                              .astype(np.int32))
    return CnnNetwork(spec, weights, thresholds, wbits, abits, FLOAT_BITS, output_mode)
