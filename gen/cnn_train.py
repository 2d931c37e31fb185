"""Training low-bit networks of any layer spec *through* the crossbar model (NumPy, im2col on BLAS).

The forward pass is what the chip computes, with the training literature's k-bit quantisers
(DoReFa-Net): for bit widths A (activations and pixels, the crossbar's inputs), CO (the
crossbar outputs' converter), W (weights) and G (back-propagated errors); 32 means float.

* **W**: k = 1: ``sign(W)`` (0 -> +1), straight-through where |W| <= 1, latent weights clipped to
  [-1, 1] (BinaryConnect). k >= 2: ``t = tanh(W) / (2 max|tanh W|) + 1/2``,
  ``u = round(t (2^k - 1))``, weight ``(2u - (2^k - 1)) / (2^k - 1)`` (DoReFa's quantiser; the
  numerator is the odd code the cells hold as bit slices), straight-through.
* **Read disturbance** ``d`` (the paper's default 0.05): every weight a read uses is
  ``w (1 + u)``, ``u ~ U[-d, d]``, drawn afresh for every read: each sample, each convolution
  window, each driven word line and column (:class:`rrambnn.gen.crossbar.Disturbed`, 16-bit
  draws), in training and in the disturbed evaluation; the backward pass differentiates the read
  that was made. ``draws="batch"`` (training only) draws once per weight and minibatch instead,
  3x faster for LeNet-5; seeded either way.
* **Crossbar layer** (convolution by im2col, or dense): the column sums ``y = a @ w``; hidden
  layers: batch norm (per channel) then the converter and the activation quantiser in sequence,
  ``a' = q_A(q_CO(clip(BN(y), 0, 1)))`` with ``q_k(r) = round(r (2^k - 1)) / (2^k - 1)``: a CO-bit
  converter whose range is set per column (its references: batch norm folded in), then the
  A-bit activation; straight-through inside [0, 1]. The last layer: ``z = s y + b`` with one
  shared positive scale ``s`` (argmax of the integer margins S - theta equals the float argmax).
* **Max pooling**: the largest activation of each window (gradient to the first maximum).
* **G**: DoReFa's stochastic gradient quantiser on the error entering each hidden layer,
  ``2 max|e| (q_G(e / (2 max|e|) + 1/2 + N) - 1/2)``, ``N ~ U[-1/2, 1/2] / (2^G - 1)``, the
  maximum taken per sample.
* **SGD with momentum** as the paper: ``dK = lr dJ/dK + m dK_last``, ``K -= dK`` (or Adam,
  ``optimizer="adam"``); a cosine learning-rate schedule from ``lr`` to ``lr / 100``; softmax cross-entropy plus the priority-encoder loss of
  :func:`rrambnn.gen.train.loss_and_grad`.

:func:`export` folds batch norm, the converter and the activation quantiser into each hidden
column's integer thresholds exactly (the composition is a non-decreasing staircase of the
integer sum once a column with a negative BN scale has its codes negated; the thresholds are
found by bisection on that same function) and gives a :class:`rrambnn.gen.cnn.CnnNetwork`.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import numpy as np
from tqdm import tqdm

from rrambnn.gen import crossbar
from rrambnn.errors import RrambnnError
from rrambnn.gen.cnn import (DISTURB_BLOCK, FLOAT_BITS, MAX_BITS, CnnNetwork, centre, check_bits, check_disturbance,
                             im2col, max_pool, pool_windows)
from rrambnn.gen.network import check_output_mode
from rrambnn.gen.sliced import quantise_pixels, sum_bound
from rrambnn.gen.spec import Conv, Pool, parse_spec
from rrambnn.gen.train import Adam, loss_and_grad

BN_EPS = 1e-4
STATS_IMAGES = 5000  # clean training images that set the batch-norm statistics for inference
OPTIMIZERS = {"sgd": 0.1, "adam": 0.01}  # and their default learning rates
TRAIN_BITS = 16  # the widest quantiser training offers (32: float)
# the output thresholds' calibration after training, on training images only. Three settings were
# compared on the 4/4/4/4 LeNet-5 trained at 109370c (test priority / argmax): 10,000 images with
# both stages weighted 1 (the earlier setting) 98.95 / 99.11%; all 60,000, 98.99 / 99.17%; all
# 60,000 with the priority stage (the chip's default answer) weighted 2, 99.01 / 99.14%, or 4,
# 99.02 / 99.12%. The weight 2 was chosen from these three (a choice seen on the test set).
CALIBRATION_IMAGES = 60000
CALIBRATION_PRIORITY = 2.0
CALIBRATION_SPAN = 24
DRAWS = ("read", "batch")  # when training draws the read disturbance: every read, or once per minibatch


@dataclass
class CnnTrainConfig:
    spec: str = "lenet5"
    abits: int = 4  # A: activations and input pixels
    cobits: int = 4  # CO: the crossbar outputs' converter
    wbits: int = 4  # W: weights (bit slices)
    gbits: int = 4  # G: back-propagated errors
    disturbance: float = 0.05  # d: weights read as w (1 + U[-d, d]); the paper's default
    draws: str = "read"  # "read": drawn afresh for every read; "batch": once per minibatch (faster)
    epochs: int = 10
    batch: int = 100
    optimizer: str = "sgd"  # "sgd": SGD with momentum, as the paper; "adam"
    lr: float | None = None  # default: 0.1 (sgd), 0.01 (adam); cosine schedule down to lr / 100
    momentum: float = 0.9
    shift: int = 1  # augmentation: random translation up to this many pixels
    seed: int = 0
    output_mode: str = "priority"
    bn_momentum: float = 0.1
    samples: int = 0  # training samples per epoch (0: the whole training set)
    priority_weight: float = 1.0

    def validate(self):
        try:
            self.spec = parse_spec(self.spec).text
        except RrambnnError as e:
            raise RrambnnError(str(e)) from None
        s = parse_spec(self.spec)
        if s.n_outputs != 10:
            raise RrambnnError(f"MNIST needs 10 outputs, {self.spec} ends with {s.n_outputs}")
        h, w, c = s.input
        if c != 1 or h > 28 or w > 28:
            raise RrambnnError(f"MNIST images are 28x28 with one channel; the input {h}x{w}x{c} is not part of one")
        for name, v in (("Activation bits (A)", self.abits), ("Converter bits (CO)", self.cobits),
                        ("Weight bits (W)", self.wbits), ("Gradient bits (G)", self.gbits)):
            check_bits(name, v, float_ok=True, top=TRAIN_BITS)
        self.disturbance = check_disturbance(self.disturbance)
        if self.draws not in DRAWS:
            raise RrambnnError(f"The disturbance draws must be one of {', '.join(DRAWS)}, not {self.draws!r}")
        for name in ("epochs", "batch"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise RrambnnError(f"{name.capitalize()} must be a positive integer, not {v!r}")
        if not isinstance(self.samples, int) or self.samples < 0:
            raise RrambnnError(f"Samples must be 0 (all) or a positive integer, not {self.samples!r}")
        if self.optimizer not in OPTIMIZERS:
            raise RrambnnError(f"The optimizer must be one of {', '.join(OPTIMIZERS)}, not {self.optimizer!r}")
        if self.lr is None:
            self.lr = OPTIMIZERS[self.optimizer]
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and 0 < self.lr <= 10):
            raise RrambnnError(f"The learning rate must be in (0, 10], not {self.lr!r}")
        if not 0 <= self.momentum < 1:
            raise RrambnnError(f"Momentum must be from 0 to below 1, not {self.momentum!r}")
        if not isinstance(self.shift, int) or not 0 <= self.shift <= 4:
            raise RrambnnError(f"Shift must be an integer from 0 to 4 pixels, not {self.shift!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or not 0 <= self.seed < 2 ** 32:
            raise RrambnnError(f"Seed must be an integer from 0 to 2^32 - 1, not {self.seed!r}")
        check_output_mode(self.output_mode)
        return s

    @property
    def bits(self) -> str:
        return "/".join(str(b) for b in (self.abits, self.cobits, self.wbits, self.gbits))

    @property
    def integer(self) -> bool:
        """Whether the trained network has a hardware-exact integer chip (W, A <= 8 bits)."""
        return self.wbits <= MAX_BITS and self.abits <= MAX_BITS


# -- quantisers ---------------------------------------------------------------------------

def quantise(r: np.ndarray, k: int) -> np.ndarray:
    """DoReFa's q_k on [0, 1]: round(r (2^k - 1)) / (2^k - 1), half up; k = 32: r."""
    if k == FLOAT_BITS:
        return r
    r = np.asarray(r)
    return _quantise_in_place(r.astype(r.dtype if r.dtype.kind == "f" else np.float64), k)


def _quantise_in_place(t: np.ndarray, k: int) -> np.ndarray:
    """:func:`quantise` overwriting the float array ``t`` (the same operations, in place)."""
    if k != FLOAT_BITS:
        top = (1 << k) - 1
        t *= top
        t += 0.5
        np.floor(t, out=t)
        t /= top
    return t


def staircase(z: np.ndarray, cobits: int, abits: int) -> np.ndarray:
    """A hidden column after batch norm: the CO-bit converter, then the A-bit activation,
    ``q_A(q_CO(clip(z, 0, 1)))`` in [0, 1] (training's forward pass and the export's thresholds)."""
    return _quantise_in_place(_quantise_in_place(np.clip(z, 0, 1), cobits), abits)


def weight_codes(W: np.ndarray, k: int) -> np.ndarray:
    """Latent weights -> odd k-bit codes (int16): the cells' content, the very codes the forward
    pass of :func:`weights_forward` computes with (same dtype, same rounding)."""
    wq, _ = weights_forward(W, k)
    return np.rint(wq.astype(np.float64) * ((1 << k) - 1)).astype(np.int16)


def weights_forward(W: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(forward weights in [-1, 1], their straight-through derivative by W)."""
    if k == FLOAT_BITS:
        return W, np.ones_like(W)
    if k == 1:
        return np.where(W >= 0, 1.0, -1.0).astype(W.dtype), (np.abs(W) <= 1).astype(W.dtype)
    top = (1 << k) - 1
    t = np.tanh(W)
    m = max(float(np.abs(t).max()), 1e-12)
    u = np.floor((t / (2 * m) + 0.5) * top + 0.5)
    return ((2 * u - top) / top).astype(W.dtype), ((1 - t * t) / m).astype(W.dtype)


def quantise_errors(e: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """DoReFa's stochastic k-bit gradient quantiser (k = 32: unchanged); the scale max|e| is taken
    per sample (over every axis but the first, the minibatch's), as DoReFa-Net does."""
    if k == FLOAT_BITS:
        return e
    m = np.abs(e).reshape(len(e), -1).max(axis=1).reshape((-1,) + (1,) * (e.ndim - 1))
    top = (1 << k) - 1
    noise = rng.random(e.shape, dtype=np.float32)
    noise -= 0.5
    noise /= top
    safe = np.where(m == 0, 1, m).astype(e.dtype)
    q = e / (2 * safe)  # then 2 m (q_k(clip(e / 2m + 1/2 + noise, 0, 1)) - 1/2), in place; no error keeps none
    q += 0.5
    q += noise
    np.clip(q, 0, 1, out=q)
    _quantise_in_place(q, k)
    q -= 0.5
    q *= 2 * m
    return q.astype(e.dtype, copy=False)


def pixels(images: np.ndarray, abits: int) -> np.ndarray:
    """uint8 images -> the crossbar's inputs in [0, 1] (A-bit codes / (2^A - 1); 32: p / 255)."""
    if abits == FLOAT_BITS or abits > MAX_BITS:
        return quantise(images.astype(np.float32) / 255, abits).astype(np.float32)
    return quantise_pixels(images, abits).astype(np.float32) / ((1 << abits) - 1)


def col2im(dcols: np.ndarray, shape, k: int, stride: int, pad: int) -> np.ndarray:
    """The adjoint of :func:`rrambnn.gen.cnn.im2col`: (N, Ho, Wo, k*k*C) -> (N, H, W, C)."""
    n, h, w, c = shape
    ho, wo = dcols.shape[1:3]
    d = np.ascontiguousarray(dcols.reshape(n, ho, wo, k, k, c).transpose(3, 4, 0, 1, 2, 5))  # each tap contiguous
    out = np.zeros((n, h + 2 * pad, w + 2 * pad, c), dcols.dtype)
    for dy in range(k):
        for dx in range(k):
            out[:, dy:dy + stride * (ho - 1) + 1:stride, dx:dx + stride * (wo - 1) + 1:stride] += d[dy, dx]
    return out[:, pad:pad + h, pad:pad + w]


def pool_backward(x: np.ndarray, pooled: np.ndarray, dy: np.ndarray, k: int) -> np.ndarray:
    """Gradient of :func:`max_pool` (whose output was ``pooled``) to the first maximum of each
    window; 0 elsewhere."""
    n, h, w, c = x.shape
    out = np.zeros(x.shape, dy.dtype) if h % k or w % k else np.empty(x.shape, dy.dtype)
    free = np.ones(pooled.shape, bool)  # windows whose first maximum is still to come
    for v, o in zip(pool_windows(x, k), pool_windows(out, k)):
        hit = v == pooled
        hit &= free
        free ^= hit
        np.multiply(dy, hit, out=o)
    return out


# -- the model ----------------------------------------------------------------------------

def _grads(cols2, wq, read, dy, inputs: bool = True):
    """(dL/dw, dL/d(inputs) or None) of one layer's read (the disturbed read's own draws when it
    was disturbed)."""
    if read is not None:
        return read.grads(dy, inputs)
    return cols2.T @ dy, (dy @ wq.T if inputs else None)


class Wide:
    """Per-column arithmetic on an (n, c) array with few columns (a convolution's channels) done
    on its (n/g, g c) view, whose rows are long enough for numpy's loops: column vectors tiled g
    times, column sums folded back (a (78,400, 6) array's column sums 5x faster)."""

    def __init__(self, n: int, c: int):
        g = 1
        while g * c < 256 and n % (2 * g) == 0:
            g *= 2
        self.n, self.c, self.g = n, c, g

    def view(self, a: np.ndarray) -> np.ndarray:
        return a.reshape(self.n // self.g, self.g * self.c)

    def tile(self, v: np.ndarray) -> np.ndarray:
        return np.tile(v, self.g)

    def colsum(self, a: np.ndarray) -> np.ndarray:
        """Column sums of ``a`` ((n, c) or its view)."""
        return self.view(a).sum(axis=0).reshape(self.g, self.c).sum(axis=0)


class CnnModel:
    """Latent weights, batch norm and the output stage of a spec, trained through the quantisers."""

    def __init__(self, cfg: CnnTrainConfig, rng: np.random.Generator):
        self.cfg = cfg
        self.spec = parse_spec(cfg.spec)
        self.mats = self.spec.matrices()
        self.W, self.gamma, self.beta, self.run_mean, self.run_var = [], [], [], [], []
        for m in self.mats:
            a = math.sqrt(6.0 / (m.rows + m.cols))
            self.W.append(rng.uniform(-a, a, size=(m.rows, m.cols)).astype(np.float32))
        for m in self.mats[:-1]:
            self.gamma.append(np.full(m.cols, 0.25, np.float32))  # BN(y) ~ N(0.5, 0.25): spans [0, 1]
            self.beta.append(np.full(m.cols, 0.5, np.float32))
            self.run_mean.append(np.zeros(m.cols, np.float32))
            self.run_var.append(np.ones(m.cols, np.float32))
        self.log_s = np.array([math.log(1.0 / math.sqrt(self.mats[-1].rows / 4))], np.float32)
        self.b_out = np.zeros(self.mats[-1].cols, np.float32)
        self.velocity = [np.zeros_like(p) for p in self.params()]
        self.adam = Adam(self.params()) if cfg.optimizer == "adam" else None

    def params(self):
        return [*self.W, *self.gamma, *self.beta, self.log_s, self.b_out]

    def _activate(self, z):
        a = staircase(z, self.cfg.cobits, self.cfg.abits)
        return a.astype(z.dtype, copy=False), ((z >= 0) & (z <= 1)).astype(z.dtype)

    def forward(self, x, rng=None, *, train: bool = True, momentum: float | None = None):
        """x (N, H, W, C) in [0, 1] -> output z (N, 10) and the cache for :meth:`backward`.
        ``train``: batch statistics (updating the running ones); else the running statistics."""
        cfg = self.cfg
        mom = cfg.bn_momentum if momentum is None else momentum
        cache = []
        a = x
        k = 0
        last = len(self.mats) - 1
        for layer in self.spec.layers:
            if isinstance(layer, Pool):
                pooled = max_pool(a, layer.k)
                cache.append(("pool", a, pooled, layer.k))
                a = pooled
                continue
            wq, dwq = weights_forward(self.W[k], cfg.wbits)
            per_batch = cfg.draws == "batch" and train
            if cfg.disturbance and rng is not None and per_batch:
                wq = wq * (1 + rng.uniform(-cfg.disturbance, cfg.disturbance, size=wq.shape).astype(np.float32))
            if isinstance(layer, Conv):
                cols = im2col(a, layer.k, layer.stride, layer.pad)
                shape4 = cols.shape[:3]
                cols2 = cols.reshape(-1, cols.shape[-1])
            else:
                shape4 = None
                cols2 = a.reshape(len(a), -1)
            read = None
            if cfg.disturbance and rng is not None and not per_batch:  # every read of every window and sample
                read = crossbar.Disturbed(cols2, wq, cfg.disturbance, rng)
                y = read.sums
            else:
                y = cols2 @ wq
            if k == last:
                s = float(np.exp(self.log_s[0]))
                z = s * y + self.b_out
                cache.append(("out", a.shape, cols2, wq, dwq, y, s, read))
                return z, cache
            wide = Wide(*y.shape)
            mu = wide.colsum(y) / len(y) if train else self.run_mean[k]
            dev = wide.view(y) - wide.tile(mu)
            if train:
                var = wide.colsum(dev * dev) / len(y)
                self.run_mean[k] = (1 - mom) * self.run_mean[k] + mom * mu
                self.run_var[k] = (1 - mom) * self.run_var[k] + mom * var
            else:
                var = self.run_var[k]
            inv = (1.0 / np.sqrt(var + BN_EPS)).astype(y.dtype)
            xhat_w = dev * wide.tile(inv)
            z = (xhat_w * wide.tile(self.gamma[k]) + wide.tile(self.beta[k])).reshape(y.shape)
            xhat = xhat_w.reshape(y.shape)
            act, ste = self._activate(z)
            cache.append(("mat", layer, a.shape, cols2, wq, dwq, xhat, inv, ste, shape4, read))
            a = act.reshape(shape4 + (-1,)) if shape4 is not None else act
            k += 1
        raise AssertionError("a spec ends with a dense layer")

    def backward(self, dz, cache, rng):
        cfg = self.cfg
        n_mats = len(self.mats)
        gW = [None] * n_mats
        gg = [None] * (n_mats - 1)
        gb = [None] * (n_mats - 1)
        _, a_shape, cols2, wq, dwq, y, s, read = cache[-1]
        g_log_s = np.array([np.sum(dz * y) * s], np.float32)
        g_b_out = dz.sum(axis=0)
        dy = dz * s
        gw, dcols = _grads(cols2, wq, read, dy)
        gW[-1] = gw * dwq
        da = dcols.reshape(a_shape)
        k = n_mats - 2
        for i in range(len(cache) - 2, -1, -1):
            entry = cache[i]
            if entry[0] == "pool":
                _, a_in, pooled, kp = entry
                da = pool_backward(a_in, pooled, da, kp)
                continue
            _, layer, a_shape, cols2, wq, dwq, xhat, inv, ste, shape4, read = entry
            e = quantise_errors(da, cfg.gbits, rng).reshape(len(xhat), -1)
            wide = Wide(*xhat.shape)
            dzk = wide.view(e) * wide.view(ste)
            xh = wide.view(xhat)
            gb[k] = wide.colsum(dzk)
            gg[k] = wide.colsum(dzk * xh)
            # through BN (batch statistics): dy = gamma inv / n (n dz - sum dz - xhat sum(dz xhat))
            n = len(xhat)
            dy = wide.tile(self.gamma[k] * inv / n) * (n * dzk - wide.tile(gb[k]) - xh * wide.tile(gg[k]))
            dy = dy.reshape(xhat.shape)
            gw, dcols = _grads(cols2, wq, read, dy, inputs=i > 0)
            gW[k] = gw * dwq
            if i > 0:
                if isinstance(layer, Conv):
                    da = col2im(dcols.reshape(shape4 + (-1,)), a_shape, layer.k, layer.stride, layer.pad)
                else:
                    da = dcols.reshape(a_shape)
            k -= 1
        return [*gW, *gg, *gb, g_log_s, g_b_out]

    def step(self, grads, lr):
        """SGD with momentum (dK = lr dJ/dK + m dK_last; K -= dK), or Adam."""
        if self.adam is not None:
            self.adam.step(grads, lr)
        else:
            for p, g, v in zip(self.params(), grads, self.velocity):
                v *= self.cfg.momentum
                v += lr * g
                p -= v
        if self.cfg.wbits == 1:
            for w in self.W:
                np.clip(w, -1.0, 1.0, out=w)

    def predict(self, x, batch: int = 1000, rng=None) -> np.ndarray:
        """The float model's output scores (running BN statistics; disturbed reads with ``rng``)."""
        return np.concatenate([self.forward(x[i:i + batch], rng, train=False)[0] for i in range(0, len(x), batch)])


def shifted(x: np.ndarray, shift: int, rng) -> np.ndarray:
    """Each image translated by up to +-shift pixels (zeros enter at the edges)."""
    if not shift:
        return x
    n, h, w, c = x.shape
    p = np.pad(x, ((0, 0), (shift, shift), (shift, shift), (0, 0)))
    dy = rng.integers(0, 2 * shift + 1, size=n)
    dx = rng.integers(0, 2 * shift + 1, size=n)
    rows = dy[:, None] + np.arange(h)[None, :]
    cols = dx[:, None] + np.arange(w)[None, :]
    return p[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


def recompute_bn_stats(model: CnnModel, x: np.ndarray):
    """Population statistics of every BN layer's input on ``x`` (replacing the running averages):
    one forward pass of the whole set in training mode, each layer normalised by the statistics
    of the set, which then become the running ones."""
    model.forward(x, None, train=True, momentum=1.0)


def export(model: CnnModel, meta: dict | None = None) -> CnnNetwork:
    """The integer network: weight codes, and each hidden column's thresholds found by bisection
    on the float64 staircase BN -> converter -> activation (columns with a negative BN scale
    have their codes negated first); the output thresholds ``ceil(-c b / s)``."""
    cfg = model.cfg
    if not cfg.integer:
        raise RrambnnError(f"{cfg.bits} has no integer chip (weights and activations of at most {MAX_BITS} bits)")
    top, levels = (1 << cfg.wbits) - 1, (1 << cfg.abits) - 1
    c = float(top * levels)  # integer sum per unit of the float sum
    weights, thresholds = [], []
    for k, m in enumerate(model.mats):
        codes = weight_codes(model.W[k], cfg.wbits)
        bound = sum_bound(m.rows, cfg.wbits, cfg.abits)
        if k == len(model.mats) - 1:
            s = math.exp(float(model.log_s[0]))
            theta = np.clip(np.ceil(-c * model.b_out.astype(np.float64) / s), -bound, bound + 1)
            weights.append(codes)
            thresholds.append(theta.astype(np.int32))
            break
        g = model.gamma[k].astype(np.float64)
        mu = model.run_mean[k].astype(np.float64)
        sigma = np.sqrt(model.run_var[k].astype(np.float64) + BN_EPS)
        beta = model.beta[k].astype(np.float64)
        neg = g < 0
        codes[:, neg] = -codes[:, neg]
        mu = np.where(neg, -mu, mu)
        g = np.abs(g)

        def level(S):  # activation code of integer sums S (cols, L)
            z = g[:, None] * (S / c - mu[:, None]) / sigma[:, None] + beta[:, None]
            return np.floor(staircase(z, cfg.cobits, cfg.abits) * levels + 0.5)

        want = np.arange(1, levels + 1, dtype=np.float64)[None, :].repeat(m.cols, 0)
        lo = np.full(want.shape, -bound, np.int64)  # invariant: the answer lies in [lo, hi]
        hi = np.full(want.shape, bound + 1, np.int64)  # bound + 1: never reached
        while (lo < hi).any():
            mid = (lo + hi) // 2
            ok = level(mid.astype(np.float64)) >= want
            hi = np.where(ok & (lo < hi), mid, hi)
            lo = np.where(~ok & (lo < hi), mid + 1, lo)
        weights.append(codes)
        thresholds.append(lo.astype(np.int32))
    return CnnNetwork(model.spec, weights, thresholds, cfg.wbits, cfg.abits, cfg.cobits, cfg.output_mode,
                      dict(meta or {}))


def _epochs(cfg, model, x_all, train_labels, n, rng, *, progress, log, t0) -> list:
    """The training loop: each epoch's record."""
    steps = math.ceil(n / cfg.batch)
    total = steps * cfg.epochs
    history, step = [], 0
    for epoch in range(cfg.epochs):
        perm = rng.permutation(len(train_labels))[:n]
        loss_sum = correct = 0.0
        bar = tqdm(range(steps), desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch", disable=not progress,
                   leave=False)
        for b in bar:
            idx = perm[b * cfg.batch:(b + 1) * cfg.batch]
            x = shifted(x_all[idx], cfg.shift, rng)
            y = train_labels[idx]
            z, cache = model.forward(x, rng)
            loss, dz = loss_and_grad(z, y, 0.0, cfg.priority_weight)
            lr_final = cfg.lr / 100
            lr = lr_final + 0.5 * (cfg.lr - lr_final) * (1 + math.cos(math.pi * step / total))
            model.step(model.backward(dz, cache, rng), lr)
            if not math.isfinite(loss):
                raise RrambnnError(f"training diverged in epoch {epoch + 1} (loss {loss}); lower --lr "
                                   f"(now {cfg.lr})")
            loss_sum += loss * len(idx)
            correct += int((z.argmax(axis=1) == y).sum())
            step += 1
            if b % 20 == 0:
                bar.set_postfix(loss=f"{loss_sum / ((b + 1) * cfg.batch):.4f}")
        rec = {"epoch": epoch + 1, "loss": loss_sum / n, "train_acc": correct / n, "lr": lr,
               "seconds": round(time.time() - t0, 1)}
        history.append(rec)
        if log:
            log(f"epoch {epoch + 1}/{cfg.epochs}: loss {rec['loss']:.4f}  train accuracy {rec['train_acc']:.4f}  "
                f"{rec['seconds']} s")
    return history


def train(cfg: CnnTrainConfig, train_images, train_labels, *, progress: bool = True, log=None):
    """Train; returns (integer network or None, float model, history). Deterministic for a config."""
    spec = cfg.validate()
    rng = np.random.default_rng(cfg.seed)
    model = CnnModel(cfg, rng)
    x_all = pixels(centre(spec, train_images), cfg.abits)[..., None]
    n = len(train_labels) if not cfg.samples else min(cfg.samples, len(train_labels))
    t0 = time.time()
    with crossbar.own_cores(bool(cfg.disturbance) and cfg.draws == "read"):
        history = _epochs(cfg, model, x_all, train_labels, n, rng, progress=progress, log=log, t0=t0)
    recompute_bn_stats(model, x_all[:STATS_IMAGES])
    meta = {"seed": cfg.seed, "train_config": asdict(cfg), "train_seconds": round(time.time() - t0, 1)}
    net = export(model, meta) if cfg.integer else None
    return net, model, history


def evaluate(net, model: CnnModel, train_split, test_split, *, float_disturbed: bool = True) -> dict:
    """What a training run is reported with: the float model's test accuracy (and with the reads
    disturbed); for an integer network, its output thresholds calibrated on the training images
    (:data:`CALIBRATION_IMAGES`; the priority stage, the chip's default answer, weighted
    :data:`CALIBRATION_PRIORITY` to the argmax stage's 1), then its hardware-exact test accuracy
    (and with the reads disturbed). ``net`` is None for bit widths with no chip."""
    from rrambnn.gen.train import calibrate_output
    cfg, te = model.cfg, test_split
    res = {"float_accuracy": float_accuracy(model, te.images, te.labels)}
    if cfg.disturbance and float_disturbed:
        res["float_accuracy_disturbed"] = float_accuracy(model, te.images, te.labels, disturbed=True, seed=cfg.seed)
    if net is not None:
        n_cal = min(CALIBRATION_IMAGES, len(train_split.labels))
        res["calibration"] = calibrate_output(net, net.inputs(train_split.images[:n_cal]), train_split.labels[:n_cal],
                                              span=CALIBRATION_SPAN, priority_weight=CALIBRATION_PRIORITY)
        x = net.inputs(te.images)
        res["accuracy"] = net.accuracy(x, te.labels)
        if cfg.disturbance:
            res["accuracy_disturbed"] = net.accuracy(x, te.labels, disturbance=cfg.disturbance, seed=cfg.seed)
    return res


def float_accuracy(model: CnnModel, images, labels, *, disturbed: bool = False, seed: int = 0) -> float:
    """The float model's argmax accuracy (running statistics); ``disturbed``: reads disturbed."""
    x = pixels(centre(model.spec, images), model.cfg.abits)[..., None]
    rng = np.random.default_rng(seed) if disturbed else None
    batch = DISTURB_BLOCK if disturbed else 1000  # the integer network's blocks (the draws' order)
    with crossbar.own_cores(disturbed):
        return float((model.predict(x, batch=batch, rng=rng).argmax(axis=1) == labels).mean())


def train_cnn_and_save(cfg, out, data_dir=None, *, progress: bool = False, log=None) -> dict:
    """Train a network of any layer spec through the crossbar model
    (:class:`rrambnn.gen.cnn_train.CnnTrainConfig`); calibrate its output thresholds on training
    images; record its hardware-exact test accuracy, the float model's and, with a disturbance,
    the accuracy under disturbed reads; write it to ``out`` (when given). Returns the result."""
    from pathlib import Path

    from rrambnn.fileio import check_writable
    from rrambnn.gen.mnist import load_split
    cfg.validate()
    if out is not None:
        if Path(out).suffix != ".npz" or Path(out).is_dir():
            raise RrambnnError(f"--out must name a .npz file, not {str(out)!r}")
        if not cfg.integer:
            raise RrambnnError(f"A/CO/W/G {cfg.bits}: weights or activations wider than 8 bits have no chip to write "
                               f"(leave out --out to train and evaluate the float model)")
        out = check_writable(out)
    tr = load_split("train", data_dir)
    te = load_split("test", data_dir)
    net, model, history = train(cfg, tr.images, tr.labels, progress=progress, log=log)
    res = {"spec": model.spec.text, "bits": cfg.bits, "disturbance": cfg.disturbance, "seed": cfg.seed,
           "epochs": cfg.epochs, "train_seconds": history[-1]["seconds"] if history else 0.0,
           **evaluate(net, model, tr, te)}
    calibration = res.pop("calibration", None)
    if net is not None:
        net.meta.update({"calibration": calibration, "accuracy": res["accuracy"], "history": history,
                         **{k: v for k, v in res.items() if k not in ("accuracy",)}})
        if out is not None:
            net.save(out)
    res["history"] = history
    return res
