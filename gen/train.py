"""Training of the binary network and the signed batch-norm merge.

Forward pass (what the chip computes): inputs and activations in {0,1}, weights
sign(W) in {-1,+1} from latent real weights W clipped to [-1, 1]. Hidden layers
use batch norm followed by a step; the straight-through estimator passes the
gradient of the step where |z| <= 1. The output layer uses a *shared-scale*
affine stage z_j = s * y_j + b_j (one positive scale s for the layer), so that
its argmax equals the argmax of the integer scores y_j - theta_j after merging.

The loss is softmax cross-entropy (for argmax) plus a priority-encoder loss (the
right output neuron must fire and no lower-index neuron may; see
:func:`loss_and_grad`); per-neuron BCE is available as an option. Adam with a cosine learning-rate
schedule; random +-``shift`` pixel translations as augmentation.

After training, :func:`signed_merge` folds BN into one integer threshold per
neuron exactly, and :func:`calibrate_output` tunes the output thresholds on the
*training* set for the output stage.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np
from tqdm import tqdm

from rrambnn.errors import RrambnnError
from rrambnn.gen.mnist import Preprocess
from rrambnn.gen.network import BinaryNetwork, check_output_mode, parse_arch
from rrambnn.gen.sliced import SlicedNetwork, crop_inputs, quantise_pixels, sum_bound

BN_EPS = 1e-4
HIDDEN_NORMS = ("bn", "shared")


@dataclass
class TrainConfig:
    arch: tuple[int, ...] = (400, 128, 128, 10)
    crop: int = 20
    threshold: int = 128
    epochs: int = 150
    batch: int = 100
    lr: float = 0.003
    lr_final: float = 1e-5
    shift: int = 1
    bce_weight: float = 0.0
    priority_weight: float = 1.0
    seed: int = 0
    output_mode: str = "priority"
    bn_momentum: float = 0.1
    ema: float = 0.999  # >0: merge an exponential moving average of the parameters (decay per step)
    ste: str = "box"  # gradient of the {0,1} step: "box" 0.5*[|z|<=1], "triangle" max(0, 1-|z|)
    hidden_norm: str = "bn"  # hidden layers: "bn" (batch norm) or "shared" (z = s*y + b_j, one scale a layer)
    wbits: int = 1  # > 1: odd n-bit weight codes in bit slices (rrambnn.gen.sliced)
    abits: int = 1  # > 1: m-bit activations and input pixels
    device_noise: str = ""  # a device profile: its variation, offsets and read noise injected in every read

    def validate(self):
        self.arch = parse_arch(self.arch)
        pre = Preprocess(crop=self.crop, threshold=self.threshold)
        if self.arch[0] != pre.n_inputs:
            raise RrambnnError(
                f"Architecture input size {self.arch[0]} does not match crop {self.crop}x{self.crop} "
                f"= {pre.n_inputs} inputs"
            )
        if self.arch[-1] != 10:
            raise RrambnnError(f"MNIST needs 10 outputs, architecture ends with {self.arch[-1]}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or not 0 <= self.seed < 2 ** 32:
            raise RrambnnError(f"Seed must be an integer from 0 to 2^32 - 1, not {self.seed!r}")
        for name, lo in (("epochs", 1), ("batch", 1)):
            v = getattr(self, name)
            if not isinstance(v, int) or v < lo:
                raise RrambnnError(f"{name.capitalize()} must be a positive integer, not {v!r}")
        if not isinstance(self.shift, int) or not 0 <= self.shift <= 4:
            raise RrambnnError(f"Shift must be an integer from 0 to 4 pixels, not {self.shift!r}")
        if not (self.lr > 0 and self.lr_final > 0 and math.isfinite(self.lr)):
            raise RrambnnError(f"Learning rates must be positive, not {self.lr!r} / {self.lr_final!r}")
        check_output_mode(self.output_mode)
        if not 0.0 <= self.ema < 1.0:
            raise RrambnnError(f"EMA decay must be from 0 to 1 (exclusive), not {self.ema!r}")
        if self.ste not in ("box", "triangle"):
            raise RrambnnError(f"STE must be 'box' or 'triangle', not {self.ste!r}")
        if self.hidden_norm not in HIDDEN_NORMS:
            raise RrambnnError(f"Hidden normalisation must be 'bn' or 'shared', not {self.hidden_norm!r}")
        from rrambnn.gen.sliced import check_bits
        check_bits("Weight bits", self.wbits)
        check_bits("Activation bits", self.abits)
        return pre

    @property
    def binary(self) -> bool:
        return self.wbits == 1 and self.abits == 1


class Adam:
    def __init__(self, params, b1=0.9, b2=0.999, eps=1e-8):
        self.params = params
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.b1, self.b2, self.eps, self.t = b1, b2, eps, 0

    def step(self, grads, lr):
        self.t += 1
        c1 = 1 - self.b1 ** self.t
        c2 = 1 - self.b2 ** self.t
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            m *= self.b1
            m += (1 - self.b1) * g
            v *= self.b2
            v += (1 - self.b2) * g * g
            p -= (lr / c1) * m / (np.sqrt(v / c2) + self.eps)


def binarise_weights(w: np.ndarray) -> np.ndarray:
    return np.where(w >= 0, 1.0, -1.0).astype(np.float32)


def weight_codes(w: np.ndarray, bits: int) -> np.ndarray:
    """Latent weights in [-1, 1] -> odd n-bit codes in [-(2^n-1), 2^n-1] (n = 1: the sign, 0 -> +1)."""
    top = (1 << bits) - 1
    if bits == 1:
        return np.where(w >= 0, 1, -1).astype(np.int16)
    u = np.clip(np.floor((w.astype(np.float64) + 1.0) * 0.5 * (top + 1)), 0, top)
    return (2 * u - top).astype(np.int16)


def quantise_weights(w: np.ndarray, bits: int) -> np.ndarray:
    """The forward pass's weights: codes / (2^n - 1), in [-1, 1]."""
    if bits == 1:
        return binarise_weights(w)
    return (weight_codes(w, bits) / ((1 << bits) - 1)).astype(np.float32)


def level_offsets(bits: int) -> np.ndarray:
    """Pre-activation z where each activation level begins: level l >= 1 iff z >= t_l.
    The quantiser is a = round(clip((z + 1) / 2, 0, 1) * (2^m - 1)); m = 1 gives t = [0]."""
    top = (1 << bits) - 1
    return 2.0 * (np.arange(1, top + 1) - 0.5) / top - 1.0


def activate(z: np.ndarray, bits: int) -> np.ndarray:
    """Activation in [0, 1] (codes / (2^m - 1)); m = 1: the step z >= 0. Its straight-through
    gradient is the box 0.5*[|z| <= 1] for every m."""
    if bits == 1:
        return (z >= 0).astype(np.float32)
    top = (1 << bits) - 1
    codes = np.searchsorted(level_offsets(bits).astype(z.dtype), z, side="right")  # #{l : z >= t_l}
    return (codes / top).astype(z.dtype)


@dataclass
class FloatBNN:
    """Latent-weight training model; see the module docstring."""

    arch: tuple[int, ...]
    rng: np.random.Generator
    hidden_norm: str = "bn"  # "shared": gamma[k] holds log(s_k) (one scale a layer), beta[k] the biases
    wbits: int = 1
    abits: int = 1
    noise: dict | None = None  # variation-aware training: :func:`read_noise` of a device profile
    W: list = field(default_factory=list)
    gamma: list = field(default_factory=list)
    beta: list = field(default_factory=list)
    run_mean: list = field(default_factory=list)
    run_var: list = field(default_factory=list)

    def __post_init__(self):
        for n_in, n_out in zip(self.arch[:-1], self.arch[1:]):
            a = math.sqrt(6.0 / (n_in + n_out))
            self.W.append(self.rng.uniform(-a, a, size=(n_in, n_out)).astype(np.float32))
        for n_in, n in zip(self.arch[:-2], self.arch[1:-1]):
            if self.hidden_norm == "shared":  # s*y with s ~ 1/std(y): y sums about n_in/2 terms of +-1
                self.gamma.append(np.array([math.log(1.0 / math.sqrt(n_in / 2 * self._w2(len(self.gamma))))],
                                           np.float32))
            else:
                self.gamma.append(np.ones(n, np.float32))
            self.beta.append(np.zeros(n, np.float32))
            self.run_mean.append(np.zeros(n, np.float32))
            self.run_var.append(np.ones(n, np.float32))
        n_last = self.arch[-2]
        # output stage z = exp(log_s) * y + b, one shared positive scale
        self.log_s = np.array([math.log(1.0 / math.sqrt(n_last / 2 * self._w2(len(self.W) - 1)))], np.float32)
        self.b_out = np.zeros(self.arch[-1], np.float32)

    def _w2(self, k: int) -> float:
        """Mean square of layer k's initial forward weights (1 for binary)."""
        return float(np.mean(np.square(self.qw(k), dtype=np.float64))) or 1.0

    def qw(self, k: int) -> np.ndarray:
        """Layer k's forward weights (quantised, in [-1, 1])."""
        return quantise_weights(self.W[k], self.wbits)

    @property
    def scale(self) -> int:
        """Integer sum per unit of the float sum: (2^m - 1) * (2^n - 1) (1 for binary)."""
        return ((1 << self.abits) - 1) * ((1 << self.wbits) - 1)

    def params(self):
        return [*self.W, *self.gamma, *self.beta, self.log_s, self.b_out]

    def read(self, a, wb):
        """The crossbar read of a training step: ``a @ wb``, with variation-aware training the
        device's effects drawn afresh (:func:`read_noise`); the gradient goes through the
        nominal weights."""
        y = a @ wb
        nz = self.noise
        if nz is None:
            return y
        sd = np.where(wb > 0, nz["sd1"], nz["sd0"]).astype(np.float32)
        y = y + a @ (self.rng.standard_normal(wb.shape, dtype=np.float32) * sd)
        if nz["offset"]:
            y = y + self.rng.standard_normal(wb.shape[1], dtype=np.float32) * nz["offset"]
        if nz["read"]:
            g2 = np.where(wb > 0, nz["g1"] ** 2, nz["g0"] ** 2).astype(np.float32)
            y = y + nz["read"] * np.sqrt(a @ g2) * self.rng.standard_normal(y.shape, dtype=np.float32)
        return y

    def forward_train(self, x, momentum):
        cache = []
        a = x
        n_hidden = len(self.arch) - 2
        for k in range(n_hidden):
            wb = self.qw(k)
            y = self.read(a, wb)
            if self.hidden_norm == "shared":
                s = float(np.exp(self.gamma[k][0]))
                z = s * y + self.beta[k]
                cache.append((a, wb, y, s, z))
                a = activate(z, self.abits)
                continue
            mu = y.mean(axis=0)
            var = y.var(axis=0)
            inv = 1.0 / np.sqrt(var + BN_EPS)
            xhat = (y - mu) * inv
            z = self.gamma[k] * xhat + self.beta[k]
            self.run_mean[k] = (1 - momentum) * self.run_mean[k] + momentum * mu
            self.run_var[k] = (1 - momentum) * self.run_var[k] + momentum * var
            a_next = activate(z, self.abits)
            cache.append((a, wb, xhat, inv, z))
            a = a_next
        wb = self.qw(len(self.W) - 1)
        y = self.read(a, wb)
        s = float(np.exp(self.log_s[0]))
        z = s * y + self.b_out
        cache.append((a, wb, y, s))
        return z, cache

    def backward(self, dz, cache, ste="box"):
        grads_W = [None] * len(self.W)
        grads_g = [None] * len(self.gamma)
        grads_b = [None] * len(self.beta)
        a, wb, y, s = cache[-1]
        g_log_s = np.array([np.sum(dz * y) * s], np.float32)
        g_b_out = dz.sum(axis=0)
        dy = dz * s
        grads_W[-1] = a.T @ dy
        da = dy @ wb.T
        for k in range(len(self.gamma) - 1, -1, -1):
            z = cache[k][-1]
            if ste == "box":  # straight-through estimator of the {0,1} step
                dzk = da * (np.abs(z) <= 1.0) * 0.5
            else:  # Bi-Real Net's ApproxSign, halved for {0,1}
                dzk = da * np.maximum(0.0, 1.0 - np.abs(z))
            grads_b[k] = dzk.sum(axis=0)
            if self.hidden_norm == "shared":
                a, wb, y, s_k, _ = cache[k]
                grads_g[k] = np.array([np.sum(dzk * y) * s_k], np.float32)
                dy = dzk * s_k
            else:
                a, wb, xhat, inv, _ = cache[k]
                grads_g[k] = (dzk * xhat).sum(axis=0)
                dxhat = dzk * self.gamma[k]
                n = dxhat.shape[0]
                dy = (inv / n) * (n * dxhat - dxhat.sum(axis=0) - xhat * (dxhat * xhat).sum(axis=0))
            grads_W[k] = a.T @ dy
            if k > 0:
                da = dy @ wb.T
        # straight-through to the latent weights, cancelled where |W| > 1
        grads_W = [g * (np.abs(w) <= 1.0) for g, w in zip(grads_W, self.W)]
        return [*grads_W, *grads_g, *grads_b, g_log_s, g_b_out]

    def float_eval(self, x):
        """The BN network with binarised weights, in float64 (the merge's reference)."""
        a = x.astype(np.float64)
        for k in range(len(self.gamma)):
            y = a @ self.qw(k).astype(np.float64)
            if self.hidden_norm == "shared":
                z = np.exp(np.float64(self.gamma[k][0])) * y + self.beta[k]
            else:
                z = self.gamma[k].astype(np.float64) * (y - self.run_mean[k]) / np.sqrt(
                    self.run_var[k].astype(np.float64) + BN_EPS) + self.beta[k]
            a = activate(z, self.abits).astype(np.float64)
        y = a @ self.qw(len(self.W) - 1).astype(np.float64)
        return np.exp(np.float64(self.log_s[0])) * y + self.b_out.astype(np.float64)


def read_noise(spec: str) -> dict:
    """What variation-aware training injects for device profile ``spec``, in units of one ideal
    cell (:mod:`rrambnn.gen.analog`): each cell's current spread (the standard deviation of a
    lognormal or normal device, LRS ``sd1`` and HRS ``sd0``), the sense offset's sigma (drawn per
    column and step) and the read noise (relative sigma of every cell's current, ``g1``/``g0``
    the nominal conductances). IR drop and drift are systematic: calibration answers them."""
    from rrambnn.gen import analog
    p = analog.load_profile(spec)
    dg = (p.g_lrs_us - p.g_hrs_us) / 2
    g1, g0 = p.g_lrs_us / dg, p.g_hrs_us / dg

    def sd(g, sigma):
        if p.distribution == "lognormal":
            return g * math.sqrt(math.expm1(sigma * sigma)) * math.exp(sigma * sigma / 2)
        return g * sigma

    return {"profile": p.name, "sd1": sd(g1, p.sigma_lrs), "sd0": sd(g0, p.sigma_hrs), "offset": p.offset,
            "read": p.read_noise, "g1": g1, "g0": g0}


def _softplus(v):
    return np.logaddexp(0.0, v)


def loss_and_grad(z, labels, bce_weight=0.0, priority_weight=1.0):
    """Softmax cross-entropy (argmax) + ``priority_weight`` * priority loss + ``bce_weight`` * BCE.

    The priority encoder answers y iff neuron y fires and no neuron j < y fires; neurons
    above y do not matter. The priority loss is exactly that, smoothed:
    softplus(-z_y) + sum_{j<y} softplus(z_j). Plain per-neuron BCE also pushes j > y down.
    """
    n, k = z.shape
    onehot = np.zeros_like(z)
    onehot[np.arange(n), labels] = 1.0
    zm = z - z.max(axis=1, keepdims=True)
    e = np.exp(zm)
    p = e / e.sum(axis=1, keepdims=True)
    loss = -np.log(p[np.arange(n), labels] + 1e-12).mean()
    dz = (p - onehot) / n
    sig = 1.0 / (1.0 + np.exp(-z))
    if bce_weight:
        bce = (_softplus(z) - onehot * z).sum(axis=1).mean()
        loss += bce_weight * bce
        dz += bce_weight * (sig - onehot) / n
    if priority_weight:
        below = (np.arange(k)[None, :] < labels[:, None]).astype(z.dtype)  # j < y
        pl = (below * _softplus(z)).sum(axis=1) + _softplus(-z[np.arange(n), labels])
        loss += priority_weight * pl.mean()
        dz += priority_weight * (below * sig + onehot * (sig - 1.0)) / n
    return float(loss), dz.astype(np.float32)


def shifted_crops(bits28: np.ndarray, idx: np.ndarray, pre: Preprocess, shift: int, rng):
    """Crops of binarised 28x28 images, each randomly translated by up to +-shift pixels."""
    n = len(idx)
    c, o = pre.crop, pre.offset
    if shift == 0:
        return bits28[idx, o:o + c, o:o + c].reshape(n, c * c)
    dy = rng.integers(-shift, shift + 1, size=n)
    dx = rng.integers(-shift, shift + 1, size=n)
    padded = np.pad(bits28[idx], ((0, 0), (shift, shift), (shift, shift)))
    r = (o + shift - dy)[:, None, None] + np.arange(c)[None, :, None]
    col = (o + shift - dx)[:, None, None] + np.arange(c)[None, None, :]
    return padded[np.arange(n)[:, None, None], r, col].reshape(n, c * c)


def signed_merge(model: FloatBNN) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Fold batch norm into integer thresholds, exactly.

    BN(y) >= 0 with gamma > 0  <=>  y >= mu - beta*sigma/gamma  <=>  y >= ceil(t);
    with gamma < 0 the inequality flips: negate the weight column (swap LRS/HRS)
    and use -y >= ceil(-t). gamma == 0 makes the neuron constant. The output
    stage z = s*y + b (s > 0) gives y >= ceil(-b/s).

    Multi-bit points (:mod:`rrambnn.gen.sliced`): the integer sum is Y = c*y with
    c = (2^m - 1)(2^n - 1), and activation level l begins at BN(y) >= t_l, so each hidden
    neuron gets 2^m - 1 thresholds ceil(c * (mu + sigma*(t_l - beta)/gamma)), non-decreasing
    in l (for gamma < 0 after the column's codes are negated). Binary networks return int8
    weights and one threshold per neuron; multi-bit ones int16 codes and (n_out, 2^m - 1).
    """
    c = float(model.scale)
    t_lv = level_offsets(model.abits)  # [0] for binary activations
    binary = model.wbits == 1 and model.abits == 1
    wtype = np.int8 if binary else np.int16
    weights, thresholds = [], []
    for k in range(len(model.gamma)):
        wb = weight_codes(model.W[k], model.wbits).astype(wtype)
        bound = sum_bound(wb.shape[0], model.wbits, model.abits)
        if model.hidden_norm == "shared":  # s*y + b >= t  with s > 0  <=>  Y >= ceil(c*(t - b)/s)
            s_k = np.exp(np.float64(model.gamma[k][0]))
            theta = np.ceil(c * (t_lv[None, :] - model.beta[k].astype(np.float64)[:, None]) / s_k)
        else:
            g = model.gamma[k].astype(np.float64)[:, None]
            sigma = np.sqrt(model.run_var[k].astype(np.float64) + BN_EPS)[:, None]
            mu = model.run_mean[k].astype(np.float64)[:, None]
            beta = model.beta[k].astype(np.float64)[:, None]
            with np.errstate(divide="ignore", invalid="ignore"):
                t = c * (mu + (t_lv[None, :] - beta) * sigma / g)
            pos, neg, zero = g[:, 0] > 0, g[:, 0] < 0, g[:, 0] == 0
            theta = np.empty(t.shape)
            theta[pos] = np.ceil(t[pos])
            theta[neg] = np.ceil(-t[neg])
            wb[:, neg] = -wb[:, neg]
            theta[zero] = np.where(beta[zero] >= t_lv[None, :], -bound, bound + 1)
        theta = np.clip(theta, -bound, bound + 1).astype(np.int32)
        weights.append(wb)
        thresholds.append(theta[:, 0] if binary else theta)
    wb = weight_codes(model.W[-1], model.wbits).astype(wtype)
    bound = sum_bound(wb.shape[0], model.wbits, model.abits)
    s = np.exp(np.float64(model.log_s[0]))
    theta = np.clip(np.ceil(-c * model.b_out.astype(np.float64) / s), -bound, bound + 1)
    weights.append(wb)
    thresholds.append(theta.astype(np.int32))
    return weights, thresholds


def calibrate_output(net: BinaryNetwork, x: np.ndarray, labels: np.ndarray, *, span: int = 12,
                     rounds: int = 3, priority_weight: float = 1.0) -> dict:
    """Coordinate descent on the output thresholds, on training data, maximising
    ``priority_weight`` * priority-encoder accuracy + argmax accuracy (the chip has one
    threshold per neuron for both)."""
    s = net.forward(x, trace=True).sums[-1]
    theta = net.thresholds[-1].astype(np.int32).copy()
    wbits, abits = getattr(net, "wbits", 1), getattr(net, "abits", 1)
    bound = net.bound(len(net.weights) - 1) if hasattr(net, "bound") else sum_bound(net.arch[-2], wbits, abits)
    step = max(1, ((1 << wbits) - 1) * ((1 << abits) - 1) // 2)  # binary: 1; else half a float unit

    def score(th):
        fires = s >= th
        hit = fires.any(axis=1)
        prio_ok = hit & (fires.argmax(axis=1) == labels)
        amax_ok = (s - th).argmax(axis=1) == labels
        return priority_weight * prio_ok.mean() + amax_ok.mean()

    best = score(theta)
    before = best
    n = len(labels)
    for _ in range(rounds):
        improved = False
        for j in range(len(theta)):
            # the score with threshold j at any value, the others fixed: what the other columns
            # decide is computed once (the same integers score() counts, so the same floats)
            col = s[:, j]
            fires = s >= theta
            fires[:, j] = False
            earlier = fires[:, :j].any(axis=1)  # the priority answer does not depend on j
            prio_fixed = int((earlier & (fires[:, :j].argmax(axis=1) == labels)).sum()) if j else 0
            rest = ~earlier
            later = fires[:, j + 1:]
            later_ok = (later.any(axis=1) & (later.argmax(axis=1) + j + 1 == labels)) if later.shape[1] \
                else np.zeros(n, bool)
            j_ok_rest = rest & (labels == j)  # j is the answer where it fires and nothing earlier does
            later_ok_rest = rest & later_ok  # else the first later one, if any
            margins = (s - theta).astype(np.float64)
            margins[:, j] = -np.inf
            om, oi = margins.max(axis=1), margins.argmax(axis=1)  # the best other column, first of ties
            lab_j, lab_oi, lab_tie = labels == j, oi == labels, np.minimum(oi, j) == labels

            def score_j(cand):
                fj = col >= cand
                prio = prio_fixed + int((fj & j_ok_rest).sum()) + int((~fj & later_ok_rest).sum())
                d = col - cand
                amax = np.where(d > om, lab_j, np.where(d == om, lab_tie, lab_oi))
                return priority_weight * (prio / n) + int(amax.sum()) / n

            for cand in range(theta[j] - span * step, theta[j] + span * step + 1, step):
                if cand == theta[j] or not -bound <= cand <= bound + 1:
                    continue
                sc = score_j(cand)
                if sc > best + 1e-12:
                    best, improved = sc, True
                    theta = theta.copy()
                    theta[j] = cand
        if not improved:
            break
    net.thresholds[-1] = theta
    net.__post_init__()
    return {"train_score_before": float(before), "train_score_after": float(best)}


def train(cfg: TrainConfig, train_images: np.ndarray, train_labels: np.ndarray, *,
          progress: bool = True, log=print) -> tuple[BinaryNetwork, FloatBNN, list[dict]]:
    """Train, merge and calibrate. Deterministic for a given config (seed included)."""
    pre = cfg.validate()
    rng = np.random.default_rng(cfg.seed)
    noise = None
    if cfg.device_noise:
        if not cfg.binary:
            raise RrambnnError("--device-noise trains binary networks (the analog device model's chips) for now, "
                               f"not {cfg.wbits}-bit weights or {cfg.abits}-bit activations")
        noise = read_noise(cfg.device_noise)
        if not any(noise[k] for k in ("sd1", "sd0", "offset", "read")):
            noise = None  # a profile without read effects (ideal, or drift and IR drop only): the plain run
    model = FloatBNN(cfg.arch, rng, cfg.hidden_norm, cfg.wbits, cfg.abits, noise)
    levels = (1 << cfg.abits) - 1
    opt = Adam(model.params())
    bits28 = pre.binarise(train_images) if cfg.abits == 1 else quantise_pixels(train_images, cfg.abits)
    n = len(train_labels)
    steps_per_epoch = math.ceil(n / cfg.batch)
    total = steps_per_epoch * cfg.epochs
    history = []
    step = 0
    t0 = time.time()
    ema = [p.copy() for p in model.params()] if cfg.ema else None
    bar = tqdm(range(cfg.epochs), desc="train", unit="epoch", disable=not progress)
    for epoch in bar:
        perm = rng.permutation(n)
        loss_sum, correct = 0.0, 0
        for b in range(steps_per_epoch):
            idx = perm[b * cfg.batch:(b + 1) * cfg.batch]
            x = shifted_crops(bits28, idx, pre, cfg.shift, rng).astype(np.float32)
            if levels > 1:
                x /= levels
            y = train_labels[idx]
            z, cache = model.forward_train(x, cfg.bn_momentum)
            loss, dz = loss_and_grad(z, y, cfg.bce_weight, cfg.priority_weight)
            grads = model.backward(dz, cache, cfg.ste)
            lr = cfg.lr_final + 0.5 * (cfg.lr - cfg.lr_final) * (1 + math.cos(math.pi * step / total))
            opt.step(grads, lr)
            for w in model.W:
                np.clip(w, -1.0, 1.0, out=w)
            if ema is not None:  # warm-up keeps short runs from averaging in the initial weights
                decay = min(cfg.ema, (1 + step) / (10 + step))
                for e, p in zip(ema, model.params()):
                    e *= decay
                    e += (1 - decay) * p
            loss_sum += loss * len(idx)
            correct += int((z.argmax(axis=1) == y).sum())
            step += 1
        rec = {"epoch": epoch + 1, "loss": loss_sum / n, "train_acc": correct / n,
               "lr": lr, "seconds": time.time() - t0}
        history.append(rec)
        bar.set_postfix(loss=f"{rec['loss']:.4f}", acc=f"{rec['train_acc']:.4f}")
    if ema is not None:
        for p, e in zip(model.params(), ema):
            p[...] = e
    # BN statistics over the clean (unshifted) training set for inference
    x_train = pre(train_images) if cfg.abits == 1 else crop_inputs(train_images, cfg.crop, cfg.abits)
    recompute_bn_stats(model, x_train.astype(np.float32) / levels)
    weights, thresholds = signed_merge(model)
    meta = {"seed": cfg.seed, "train_config": _jsonable(asdict(cfg))}
    if cfg.binary:
        net = BinaryNetwork(weights, thresholds, pre, cfg.output_mode, meta)
    else:
        net = SlicedNetwork(weights, thresholds, cfg.wbits, cfg.abits, cfg.crop, cfg.output_mode, meta)
    cal = calibrate_output(net, x_train, train_labels)
    net.meta["calibration"] = cal
    net.meta["train_seconds"] = round(time.time() - t0, 1)
    return net, model, history


def recompute_bn_stats(model: FloatBNN, x: np.ndarray):
    """Exact population statistics of each BN layer's input on ``x`` (replaces running averages)."""
    a = x.astype(np.float32)
    for k in range(len(model.gamma)):
        y = (a @ model.qw(k)).astype(np.float64)
        if model.hidden_norm == "shared":  # no statistics: the layer's own scale and biases
            a = activate(np.exp(np.float64(model.gamma[k][0])) * y + model.beta[k], model.abits).astype(np.float32)
            continue
        model.run_mean[k] = y.mean(axis=0).astype(np.float32)
        model.run_var[k] = y.var(axis=0).astype(np.float32)
        z = model.gamma[k] * (y - model.run_mean[k]) / np.sqrt(model.run_var[k] + BN_EPS) + model.beta[k]
        a = activate(z, model.abits)


def _jsonable(d):
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


def train_and_save(cfg, out, data_dir=None, *, progress: bool = False):
    """Train a network (:class:`rrambnn.gen.train.TrainConfig`), record its test accuracy and
    history in its metadata, and write it to ``out`` (.npz). Returns the network."""
    from pathlib import Path

    from rrambnn.gen.mnist import load_split
    from rrambnn.fileio import check_writable
    from rrambnn.gen.netfile import network_inputs
    cfg.validate()
    if Path(out).suffix != ".npz" or Path(out).is_dir():
        raise RrambnnError(f"--out must name a .npz file, not {str(out)!r}")
    out = check_writable(out)
    tr = load_split("train", data_dir)
    te = load_split("test", data_dir)
    net, _, history = train(cfg, tr.images, tr.labels, progress=progress)
    net.meta["accuracy"] = net.accuracy(network_inputs(net, te.images), te.labels)
    net.meta["history"] = history
    net.save(out)
    return net
