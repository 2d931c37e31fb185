"""Analog reads of multi-bit and convolutional networks (golden model): the device profile of
:mod:`rrambnn.gen.analog` applied to weights held as bit slices and read bit-serially.

A multi-bit weight is n binary cells, one per slice (:func:`rrambnn.gen.sliced.weight_slices`,
``w = sum_b g_b s_b`` with slice gains ``g_b = 2^b``, or 1 and 1 for ternary weights), and an
m-bit activation drives the word lines one bit-plane at a time, so the sense stage of column j
sees ``S_j = sum_a 2^a sum_b g_b I_abj`` (the slices' currents shifted and added, the planes
accumulated). Every slice array is a chip array of :mod:`rrambnn.gen.analog`: each cell has its
own LRS and HRS device (variation, IR drop by its position in its own 128x128 tile, drift), in
the same 2^-FRAC units of half the nominal LRS-HRS difference. So, exactly,

    S_j = sum_i x_i Q_ij + off_j + n_j,   Q_ij = sum_b g_b q_bij   (x the activation code)

with ``q_bij`` the slice cell's current (:class:`rrambnn.gen.analog.LayerMap`), ``off_j`` the
sense offsets and ``n_j`` the read noise. As in the generated chips (and their cost model), each
slice column is sensed once per input plane and the results shifted and added in logic, so each
slice column's frozen offset ``off_bj`` enters every conversion: ``off_j = (2^A - 1) sum_b g_b
off_bj``, coherently (calibration removes it; as programmed it costs far more than in a binary
chip). Every cell of every plane read fluctuates independently with relative sigma
``sigma_r``; their weighted sum is normal with variance ``sigma_r^2 sum_i X_i G2_ij`` where
``X_i = sum_a 4^a bit_a(x_i)`` and ``G2_ij = sum_b g_b^2 g2_bij``, so one draw per column and
read (an image, and for a convolution an output position) has that distribution exactly, keyed
like the binary chip's (chip seed, image index, layer, column) and the output position.

The conversions are taken as exact at 2^-FRAC of a cell (their only error is their offset):
the quantisation of each plane's and slice's column current to whole cells is not modelled. Hidden
layers compare S with their ``2^m - 1`` thresholds (``theta << FRAC``); calibration refits every
level of every column from a calibration set read through the chip, keeping them non-decreasing.
The ``ideal`` profile gives ``Q = 2^FRAC w`` and no offset or noise: every network answers
exactly as its digital twin (tested).

Stuck cells (the profile's yield) are the device model's fault maps, one per layer and slice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import numpy as np

from rrambnn.errors import RrambnnError
from rrambnn.gen import analog, crossbar
from rrambnn.gen import device as dev
from rrambnn.gen.analog import CFRAC, FRAC, NORMAL, ZBITS, ZFRAC, Profile
from rrambnn.gen.network import priority_encode, score
from rrambnn.gen.online_nbit import mix32
from rrambnn.gen.sliced import slice_gains, weight_slices


@dataclass
class CodedChip:
    """A multi-bit or convolutional network's chip: per crossbar layer the merged cell currents
    ``q`` (rows, cols) and squared conductances ``g2`` (2^-2FRAC units) of its slices, and the
    sense offsets (cols,) of the merged sum; ``slices``: per layer each slice array's own map
    (what the generated Verilog's arrays hold)."""

    profile: Profile
    seed: int
    q: list[np.ndarray]
    g2: list[np.ndarray]
    offset: list[np.ndarray]
    slices: list[list[analog.LayerMap]] = field(default_factory=list)


def _ternary(net) -> bool:
    return bool(getattr(net, "ternary", False))


def slice_faults(net, profile: Profile, seed: int) -> list[np.ndarray]:
    """Per crossbar layer the fault maps (n, rows, cols) of its slice arrays on chip ``seed``
    (the profile's yield; slice b of layer k is plane ``1 + k * n + b`` of the device model's
    draws), zeros when every cell works."""
    n = len(slice_gains(net.wbits, _ternary(net)))
    out = []
    for k, w in enumerate(net.weights):
        if profile.yield_ < 1:
            out.append(np.stack([dev.fault_maps(w.shape, profile.yield_, seed & 0xFFFFFFFF, plane=1 + k * n + b)[0]
                                 for b in range(n)]).astype(np.int8))
        else:
            out.append(np.zeros((n,) + w.shape, np.int8))
    return out


def slice_cells(net, faults) -> list[np.ndarray]:
    """Per crossbar layer the cells (n, rows, cols) its slice arrays hold: weight slice b's
    signs, stuck cells at their state."""
    return [np.stack(analog.held_cells([(s > 0).astype(np.uint8) for s in weight_slices(w, net.wbits, _ternary(net))],
                                       f))
            for w, f in zip(net.weights, faults)]


def chip(net, profile: Profile, seed: int) -> CodedChip:
    """Chip ``seed`` of ``profile`` holding ``net``'s weights: slice b of crossbar layer k is
    array ``k * n + b`` of :func:`rrambnn.gen.analog.chip_map` (its own variation, drift and
    offset draws). Each slice column's offset enters every one of its conversions (one per
    input plane), shifted and added with them: ``(2^A - 1) sum_b g_b off_bj``."""
    gains = slice_gains(net.wbits, _ternary(net))
    n = len(gains)
    cells = [c for layer in slice_cells(net, slice_faults(net, profile, seed)) for c in layer]
    m = analog.chip_map(cells, profile, seed)
    q, g2, off, slices = [], [], [], []
    for k in range(len(net.weights)):
        sl = m.layers[k * n:(k + 1) * n]
        slices.append(sl)
        q.append(sum(g * s.q for g, s in zip(gains, sl)))
        g2.append(sum(g * g * s.g2 for g, s in zip(gains, sl)))
        off.append(((1 << net.abits) - 1) * sum(g * s.offset for g, s in zip(gains, sl)))
    return CodedChip(profile, seed, q, g2, off, slices)


def _plane_weights(x: np.ndarray, abits: int) -> np.ndarray:
    """``sum_a 4^a bit_a(x)``: each plane's read weighs its noise variance by (2^a)^2."""
    codes = np.arange(1 << abits, dtype=np.int64)
    table = sum(((codes >> a) & 1) << (2 * a) for a in range(abits))
    return table[np.asarray(x)]


def read(x: np.ndarray, c: CodedChip, k: int, keys: np.ndarray, abits: int) -> np.ndarray:
    """Column currents (M, cols) int64 of crossbar layer ``k`` for activation codes ``x`` (M,
    rows), ``keys`` (M,) uint32 the reads' noise keys (image, and output position)."""
    q = c.q[k]
    xm = int(x.max(initial=0))
    s = crossbar.read_int(x, q, bound=q.shape[0] * max(xm, 1) * int(np.abs(q).max(initial=1))) + c.offset[k]
    sigma = c.profile.read_noise
    if sigma:
        g2 = c.g2[k]
        xw = _plane_weights(x, abits)
        bound = q.shape[0] * int(xw.max(initial=1)) * int(g2.max(initial=1))
        if bound >= 1 << 63:
            raise RrambnnError(f"read noise of crossbar layer {k}: the summed variance can reach {bound:.3g} "
                               f"(2^-{2 * FRAC} cell units), over 64-bit integers; fewer rows, weight or activation "
                               f"bits, or a narrower conductance spread")
        v = crossbar.read_int(xw, g2, bound=bound)
        z = NORMAL[analog.noise_words(c.seed, keys, k, q.shape[1]) >> np.uint32(32 - ZBITS)]
        s = s + ((z * round(sigma * (1 << CFRAC)) * analog.isqrt(v)) >> (ZFRAC + CFRAC))
    return s


def read_keys(images: np.ndarray, positions: int) -> np.ndarray:
    """Noise keys (len(images) * positions,) uint32 of reads at every output position of each
    image (image-major, as im2col orders them); one position: the image indices themselves (so a
    dense network's keys are the binary chip's)."""
    images = np.asarray(images).astype(np.uint32)
    if positions == 1:
        return images
    pos = np.arange(positions, dtype=np.uint32) * np.uint32(0x9E3779B9)
    return (mix32(images ^ np.uint32(0xC0DE5EED))[:, None] ^ pos[None, :]).reshape(-1)


def _steps(net):
    """The network's layers as ("conv", k, layer), ("dense", k, None) or ("pool", None, layer)."""
    if not hasattr(net, "spec"):
        return [("dense", k, None) for k in range(len(net.weights))]
    from rrambnn.gen.spec import Conv, Pool
    out, k = [], 0
    for layer in net.spec.layers:
        if isinstance(layer, Pool):
            out.append(("pool", None, layer))
        else:
            out.append(("conv" if isinstance(layer, Conv) else "dense", k, layer))
            k += 1
    return out


def _layer_sums(net, c: CodedChip, kind, k, layer, a, ids):
    """One crossbar layer's currents: (N, Ho, Wo, cols) for a convolution, (N, cols) else."""
    from rrambnn.gen.cnn import im2col
    if kind == "conv":
        cols = im2col(a, layer.k, layer.stride, layer.pad)
        p = cols.shape[1] * cols.shape[2]
        s = read(cols.reshape(-1, cols.shape[-1]), c, k, read_keys(ids, p), net.abits)
        return s.reshape(cols.shape[:3] + (-1,))
    return read(a.reshape(len(a), -1), c, k, read_keys(ids, 1), net.abits)


def _run(net, c: CodedChip, x, theta, ids, calibrate_from=None, trace=None):
    """The chip on one chunk: (last layer's currents, thresholds used). With
    ``calibrate_from`` (the ideal network's trace of ``x``), every layer's thresholds are first
    refitted on ``x`` read through the chip (and returned). ``trace``: a pair of lists that
    receive every crossbar layer's currents and every layer's activations (codes, pooled maps;
    the last layer's fires)."""
    from rrambnn.gen.cnn import max_pool, ramp
    a = x
    fitted = []
    n = len(net.weights)
    for kind, k, layer in _steps(net):
        if kind == "pool":
            a = max_pool(a, layer.k)
            if trace is not None:
                trace[1].append(a)
            continue
        s = _layer_sums(net, c, kind, k, layer, a, ids)
        t = theta[k]
        if calibrate_from is not None:
            t = _refit(s, calibrate_from.sums[k], net.thresholds[k], t)
            fitted.append(t)
        if k < n - 1:
            a = ramp(s, t)
        if trace is not None:
            trace[0].append(s)
            trace[1].append(a if k < n - 1 else (s >= t).astype(np.uint8))
    return s, (fitted if calibrate_from is not None else theta)


def _refit(s, ideal_s, ideal_t, prior):
    """Thresholds (current units) at which the chip's decisions agree most often with the ideal
    network's, per column and level, non-decreasing over the levels."""
    cols = s.shape[-1]
    s2, i2 = s.reshape(-1, cols), np.asarray(ideal_s).reshape(-1, cols)
    srt = analog.sort_columns(s2)
    if prior.ndim == 1:
        return analog._best_thresholds(s2, i2 >= ideal_t[None, :], prior, srt)
    lv = [analog._best_thresholds(s2, i2 >= ideal_t[None, :, j], prior[:, j], srt) for j in range(prior.shape[1])]
    return np.maximum.accumulate(np.stack(lv, axis=1), axis=1)


def forward(net, x, c: CodedChip, *, theta=None, first_image: int = 0, image_ids=None, chunk: int = 500,
            trace: bool = False):
    """The analog chip on input codes ``x``: (priority, argmax, hit), or with ``trace`` a
    :class:`rrambnn.gen.network.Trace` (every crossbar layer's currents and activations); image
    ``i`` is read as image ``first_image + i`` (the noise key), or as ``image_ids[i]``."""
    from rrambnn.gen.network import Trace
    theta = analog.thresholds(net) if theta is None else theta
    ids_all = np.arange(first_image, first_image + len(x), dtype=np.int64) if image_ids is None else \
        np.asarray(image_ids, np.int64)
    prio, amax, hit, sums, acts = [], [], [], [], []
    for i in range(0, max(len(x), 1), chunk):
        rec = ([], []) if trace else None
        s, _ = _run(net, c, np.asarray(x[i:i + chunk]), theta, ids_all[i:i + chunk], trace=rec)
        p, h = priority_encode(s >= theta[-1])
        prio.append(p)
        hit.append(h)
        amax.append((s - theta[-1]).argmax(axis=1))
        if trace:
            sums.append(rec[0])
            acts.append(rec[1])
    prio, amax, hit = np.concatenate(prio), np.concatenate(amax), np.concatenate(hit)
    if not trace:
        return prio, amax, hit
    return Trace(sums=[np.concatenate([s[k] for s in sums]) for k in range(len(sums[0]))],
                 acts=[np.concatenate([a[k] for a in acts]) for k in range(len(acts[0]))], priority=prio,
                 argmax=amax, hit=hit)


def accuracy(net, x, labels, c: CodedChip, *, theta=None) -> dict:
    """Both output stages of the analog chip; a priority reject counts as wrong."""
    return score(*forward(net, x, c, theta=theta), labels)


def calibrate(net, c: CodedChip, x_cal) -> list[np.ndarray]:
    """Per-chip thresholds (current units) fitted from a calibration set read through the chip,
    layer by layer, each level of each column (:func:`rrambnn.gen.analog.calibrate` for
    multi-level sense stages): what the host does through the threshold (and converter
    reference) programming path with the chip's activations visible."""
    ideal = net.forward(np.asarray(x_cal), trace=True)
    ids = analog.CAL_IMAGE_BASE + np.arange(len(x_cal), dtype=np.int64)
    _, fitted = _run(net, c, np.asarray(x_cal), analog.thresholds(net), ids, calibrate_from=ideal)
    return fitted


class Model(NamedTuple):
    """The analog model of one network: ``chip(profile, seed)``, and the module's ``forward``,
    ``accuracy`` and ``calibrate`` for that chip."""

    chip: Callable
    forward: Callable
    accuracy: Callable
    calibrate: Callable


def model(net) -> Model:
    """The analog model of ``net``: :mod:`rrambnn.gen.analog` for a binary network, this module
    for multi-bit and CNN networks."""
    from rrambnn.gen.network import BinaryNetwork
    if isinstance(net, BinaryNetwork):
        return Model(lambda p, s: analog.chip_map(analog.faulty_cells(net, p, s), p, s), analog.forward,
                     analog.accuracy, analog.calibrate)
    return Model(lambda p, s: chip(net, p, s), forward, accuracy, calibrate)
