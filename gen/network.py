"""The golden binary network: the specification every piece of hardware must equal.

Every layer computes, per column j, the integer column sum

    S_j = sum_i x_i * w_ij = 2 * popcount(x AND c_j) - popcount(x)

with inputs x_i in {0,1}, weights w_ij in {-1,+1} and cell states c_ij = (w_ij == +1)
(1 = LRS). The sense stage fires ``out_j = S_j >= theta_j``. The last layer feeds
the output stage:

* ``priority``: class = lowest index j whose output fires; ``hit`` = any fires
  (class 0 with hit = 0 when none fires);
* ``argmax``: class = argmax_j (S_j - theta_j), lowest index on ties.

``hit`` is reported in both modes.

Column sums come from the one crossbar read, :func:`rrambnn.gen.crossbar.read` (BLAS-backed
and exact; :func:`rrambnn.gen.crossbar.twin` is its bit-level form).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rrambnn.errors import RrambnnError
from rrambnn.fileio import Entries, layer_arrays, read_npz, rethrow_in, write_npz
from rrambnn.gen import crossbar, spec
from rrambnn.gen.mnist import Preprocess

FORMAT = "rrambnn-bnn"
VERSION = 1
OUTPUT_MODES = ("priority", "argmax")


MAX_LAYER = spec.MAX_LAYER


def parse_arch(text) -> tuple[int, ...]:
    """'400-128-128-10' -> (400, 128, 128, 10): a fully connected chain of the layer-spec grammar
    (:mod:`rrambnn.gen.spec`), with a clear error."""
    parts = list(text) if isinstance(text, (tuple, list)) else str(text).split("-")
    if not all(re.fullmatch(r"[0-9]{1,12}", str(p).strip()) for p in parts):
        try:
            net = spec.parse_spec(text)
        except RrambnnError:
            net = None
        if net is not None and not net.is_dense:
            raise RrambnnError(f"{spec.shown(text)} is a convolutional network; this takes a fully connected chain "
                               f"like 400-128-128-10")
        raise RrambnnError(f"Architecture must look like 400-128-128-10, not {spec.shown(text)}")
    return spec.parse_spec(parts).widths


def check_output_mode(mode) -> str:
    if mode not in OUTPUT_MODES:
        raise RrambnnError(f"Output mode must be one of {', '.join(OUTPUT_MODES)}, not {mode!r}")
    return mode


@dataclass
class Trace:
    """Everything one batch did: per layer column sums and activations; the output stage."""

    sums: list[np.ndarray]  # int32 (N, n_out) per layer
    acts: list[np.ndarray]  # uint8 (N, n_out) per layer (the sense-stage outputs)
    priority: np.ndarray  # int64 (N,) class from the priority encoder
    argmax: np.ndarray  # int64 (N,) class from argmax of S - theta
    hit: np.ndarray  # bool (N,) some output neuron fired

    def labels(self, mode: str) -> np.ndarray:
        """The output stage's ``cls`` field (0 for a priority reject, as the hardware gives it)."""
        return self.priority if check_output_mode(mode) == "priority" else self.argmax

    def answers(self, mode: str) -> np.ndarray:
        """The class each image is given, :data:`REJECT` where the priority encoder rejects."""
        return answers(self.labels(mode), self.hit, mode)


REJECT = -1  # the answer of a priority output stage when no output neuron fires


def answers(cls, hit, mode: str) -> np.ndarray:
    """The chip's answers from its output fields: ``cls``, except :data:`REJECT` where the
    priority stage has no hit (its ``cls`` is then 0, which is no answer). The argmax stage
    always answers (``hit`` 0 only says no neuron reached its threshold)."""
    cls = np.asarray(cls, dtype=np.int64)
    if check_output_mode(mode) == "argmax":
        return cls
    return np.where(np.asarray(hit, dtype=bool), cls, REJECT)


def score(prio, amax, hit, labels) -> dict:
    """Accuracy of both output stages; a priority reject (no output fires) is a wrong answer.
    ``rejects`` counts the images no output neuron fired for. An empty test set is an error."""
    labels = np.asarray(labels)
    if not len(labels):
        raise RrambnnError("cannot score an empty test set")
    hit = np.asarray(hit, dtype=bool)
    return {"priority": float((answers(prio, hit, "priority") == labels).mean()),
            "argmax": float((np.asarray(amax) == labels).mean()),
            "rejects": int((~hit).sum())}


def priority_encode(fires: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    hit = fires.any(axis=1)
    return np.where(hit, fires.argmax(axis=1), 0), hit


@dataclass
class BinaryNetwork:
    """An integer, hardware-exact binary network (what the chip runs)."""

    weights: list[np.ndarray]  # int8 (n_in, n_out), values +-1
    thresholds: list[np.ndarray]  # int32 (n_out,)
    preprocess: Preprocess | None = field(default_factory=Preprocess)  # None: raw input bits
    output_mode: str = "priority"
    meta: dict = field(default_factory=dict)
    where: str = field(default="network", repr=False, compare=False)  # names the source in errors

    def __post_init__(self):
        self.validate(self.where)
        self._wf = [w.astype(np.float32) for w in self.weights]
        self._tf = [t.astype(np.float32) for t in self.thresholds]

    # -- structure ---------------------------------------------------------------
    @property
    def arch(self) -> tuple[int, ...]:
        return (self.weights[0].shape[0],) + tuple(w.shape[1] for w in self.weights)

    @property
    def cells(self) -> list[np.ndarray]:
        """Cell states per layer, 1 = LRS = +1."""
        return [(w > 0).astype(np.uint8) for w in self.weights]

    def validate(self, where: str = "network"):
        if len(self.weights) == 0 or len(self.weights) != len(self.thresholds):
            raise RrambnnError(f"{where}: needs one threshold vector per weight matrix")
        prev = None
        for i, (w, t) in enumerate(zip(self.weights, self.thresholds)):
            if not isinstance(w, np.ndarray) or w.ndim != 2:
                raise RrambnnError(f"{where}: layer {i} weights must be a 2-D array")
            if prev is not None and w.shape[0] != prev:
                raise RrambnnError(
                    f"{where}: layer {i} weights have {w.shape[0]} rows, previous layer has {prev} outputs"
                )
            if w.dtype != np.int8 or not np.isin(w, (-1, 1)).all():
                raise RrambnnError(f"{where}: layer {i} weights must be int8 with values -1/+1 only")
            if not isinstance(t, np.ndarray) or t.shape != (w.shape[1],) or t.dtype != np.int32:
                raise RrambnnError(
                    f"{where}: layer {i} thresholds must be int32 of shape ({w.shape[1]},), "
                    f"not {getattr(t, 'dtype', type(t))} {getattr(t, 'shape', '')}"
                )
            n = w.shape[0]
            if t.size and (t.min() < -n or t.max() > n + 1):
                raise RrambnnError(
                    f"{where}: layer {i} thresholds must lie in [-{n}, {n + 1}] (fan-in {n})"
                )
            prev = w.shape[1]
        if self.preprocess is not None and self.preprocess.n_inputs != self.weights[0].shape[0]:
            raise RrambnnError(
                f"{where}: crop {self.preprocess.crop}x{self.preprocess.crop} gives "
                f"{self.preprocess.n_inputs} inputs but the first layer has {self.weights[0].shape[0]}"
            )
        check_output_mode(self.output_mode)

    def set_layer_weights(self, k: int, w: np.ndarray):
        """Replace layer k's weights (int8 +-1, same shape) without re-validating everything."""
        if w.shape != self.weights[k].shape or w.dtype != np.int8:
            raise RrambnnError(f"layer {k} weights must keep shape {self.weights[k].shape} and dtype int8")
        self.weights[k] = w
        self._wf[k] = w.astype(np.float32)

    # -- inference ---------------------------------------------------------------
    def forward(self, x: np.ndarray, *, trace: bool = True, chunk: int = 8192):
        """Run a batch of input bits (N, n_in) in {0,1}.

        Returns a :class:`Trace` (``trace=True``) or just the output-stage triple
        (priority class, argmax class, hit) for speed.
        """
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.arch[0]:
            raise RrambnnError(f"inputs must have shape (N, {self.arch[0]}), not {x.shape}")
        parts = [self._forward_chunk(x[i:i + chunk], trace) for i in range(0, len(x), chunk)]
        if not parts:
            parts = [self._forward_chunk(x, trace)]
        if not trace:
            return tuple(np.concatenate(p) for p in zip(*parts))
        n_layers = len(self.weights)
        return Trace(
            sums=[np.concatenate([p[0][k] for p in parts]) for k in range(n_layers)],
            acts=[np.concatenate([p[1][k] for p in parts]) for k in range(n_layers)],
            priority=np.concatenate([p[2] for p in parts]),
            argmax=np.concatenate([p[3] for p in parts]),
            hit=np.concatenate([p[4] for p in parts]),
        )

    def _forward_chunk(self, x, trace):
        a = x.astype(np.float32)
        sums, acts = [], []
        for w, t in zip(self._wf, self._tf):
            s = crossbar.read(a, w, bound=w.shape[0])
            fires = s >= t
            if trace:
                sums.append(s.astype(np.int32))
                acts.append(fires.astype(np.uint8))
            a = fires.astype(np.float32)
        prio, hit = priority_encode(fires)
        amax = (s - t).argmax(axis=1)
        if trace:
            return sums, acts, prio, amax, hit
        return prio, amax, hit

    def classify(self, x: np.ndarray, mode: str | None = None) -> np.ndarray:
        """The answers of the output stage (:data:`REJECT` for a priority reject)."""
        prio, amax, hit = self.forward(x, trace=False)
        mode = check_output_mode(mode or self.output_mode)
        return answers(prio if mode == "priority" else amax, hit, mode)

    def accuracy(self, x: np.ndarray, labels: np.ndarray) -> dict:
        """Both output stages; a priority reject counts as wrong (see :func:`score`)."""
        return score(*self.forward(x, trace=False), labels)

    # -- files -------------------------------------------------------------------
    def save(self, path: str | os.PathLike):
        """Write the .npz atomically: an existing file is replaced only by a complete one."""
        path = Path(path)
        arrays = {
            "format": np.array(FORMAT),
            "version": np.array(VERSION, dtype=np.int32),
            "arch": np.array(self.arch, dtype=np.int32),
            "crop": np.array(self.preprocess.crop if self.preprocess else 0, dtype=np.int32),
            "binarise_threshold": np.array(self.preprocess.threshold if self.preprocess else 128, dtype=np.int32),
            "output_mode": np.array(self.output_mode),
            "meta": np.array(json.dumps(self.meta, sort_keys=True)),
            **layer_arrays(self.weights, self.thresholds),
        }
        write_npz(path, arrays)

    @classmethod
    def load(cls, path: str | os.PathLike, entries: dict | None = None) -> "BinaryNetwork":
        """The network in ``path`` (``entries``: its entries when already read, see
        :func:`rrambnn.gen.netfile.read_network`)."""
        e = Entries(path, read_npz(path, ".npz weights file") if entries is None else entries)
        e.header(FORMAT, VERSION)
        weights, thresholds = e.layers(e.arch())
        meta = e.json("meta")
        crop = e.int("crop")
        try:
            pre = None if crop == 0 else Preprocess(crop=crop, threshold=e.int("binarise_threshold"))
            mode = check_output_mode(e.str("output_mode"))
        except RrambnnError as err:
            raise rethrow_in(path, err) from None
        return cls(weights, thresholds, pre, mode, meta, where=str(path))


def random_network(arch, rng: np.random.Generator, *, output_mode: str = "priority") -> BinaryNetwork:
    """Random weights and thresholds (for hardware tests of arbitrary shapes; raw input bits).

    Thresholds are drawn near the middle of each column's sum distribution so that
    activations are neither all on nor all off.
    """
    arch = parse_arch(arch)
    weights, thresholds = [], []
    for n_in, n_out in zip(arch[:-1], arch[1:]):
        weights.append(rng.choice(np.array([-1, 1], dtype=np.int8), size=(n_in, n_out)))
        spread = max(1, int(np.sqrt(n_in)))
        thresholds.append(rng.integers(-spread, spread + 1, size=n_out).astype(np.int32))
    return BinaryNetwork(weights, thresholds, None, output_mode, {})
