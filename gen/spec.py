"""The network description: a list of layer specs that the model, training, files, hardware,
cost and exploration read.

Spec strings (``--arch``) are tokens joined by ``-``, inputs first:

=================  =================================================================
``i28`` / ``i28x28x1``  the input: an image of H x W pixels with C channels (``iN`` is N x N x 1)
``c5x6``           a convolution: 5x5 kernels, 6 output channels; options follow
                   ``s2`` (stride, default 1) and ``p2`` (zero padding, default 0):
                   ``c5x6p2``, ``c3x16s2p1``
``p2``             max pooling, 2x2 windows with stride 2 (on binary activations an OR)
``d120`` or ``120``  a dense (fully connected) layer of 120 neurons
=================  =================================================================

A spec of plain numbers is the fully connected chain of every earlier release
(``400-128-128-10``: 400 inputs, then dense layers); a spec with a convolution starts with its
input image (``i28`` is the default: MNIST's whole 28 x 28 image, one channel). ``lenet5`` names
``i28-c5x6p2-p2-c5x16-p2-d120-d84-d10``.

Every convolution and dense layer is one crossbar matrix: a convolution lowers by im2col to
k*k*C_in rows (ordered kernel row, kernel column, input channel) x C_out columns, read once per
output position; a dense layer is n_in x n_out (inputs flattened in row, column, channel order).
Matrices are tiled to the chip's tile size like every layer; the partial sums of row tiles add
before one sense stage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rrambnn.errors import RrambnnError

MAX_LAYER = 16384  # neurons (or inputs) per dense layer: 128 arrays of 128 columns side by side
MAX_SIDE = 1024  # pixels per side of an input image
MAX_KERNEL = 15
MAX_CHANNELS = 1024

NAMES = {"lenet5": "i28-c5x6p2-p2-c5x16-p2-d120-d84-d10"}


@dataclass(frozen=True)
class Conv:
    k: int  # kernel side
    c_out: int  # output channels (crossbar columns)
    stride: int = 1
    pad: int = 0

    @property
    def text(self) -> str:
        return (f"c{self.k}x{self.c_out}" + (f"s{self.stride}" if self.stride != 1 else "")
                + (f"p{self.pad}" if self.pad else ""))


@dataclass(frozen=True)
class Pool:
    k: int  # window side and stride (max pooling)

    @property
    def text(self) -> str:
        return f"p{self.k}"


@dataclass(frozen=True)
class Dense:
    n: int

    @property
    def text(self) -> str:
        return f"d{self.n}"


@dataclass(frozen=True)
class Matrix:
    """One crossbar layer as the hardware sees it: ``rows`` x ``cols`` cells, read ``positions``
    times per image (1 for a dense layer; output height x width for a convolution)."""

    index: int  # position of its layer in the spec
    rows: int
    cols: int
    positions: int

    def tiles(self, tile=(128, 128)) -> tuple[int, int]:
        """Crossbar arrays of ``tile`` cells that hold it: (row tiles, column tiles); the row
        tiles' column currents add before one sense stage."""
        r, c = tile
        return -(-self.rows // r), -(-self.cols // c)


@dataclass(frozen=True)
class NetSpec:
    """An input shape (H, W, C) and its layers; shapes checked when built."""

    input: tuple[int, int, int]
    layers: tuple

    def __post_init__(self):
        self.shapes()  # validates

    # -- shapes -------------------------------------------------------------------
    def shapes(self) -> list[tuple[int, int, int]]:
        """The activation shape (H, W, C) after each layer, the input first; dense outputs are
        (1, 1, n)."""
        h, w, c = self.input
        if not all(isinstance(v, int) and v >= 1 for v in (h, w, c)) or max(h, w) > MAX_SIDE:
            raise RrambnnError(f"an input must be H x W x C with 1 <= H, W <= {MAX_SIDE} and C >= 1, not "
                               f"{h}x{w}x{c}")
        out = [(h, w, c)]
        if not self.layers:
            raise RrambnnError("a network needs at least one layer after its input")
        dense_seen = False
        for i, layer in enumerate(self.layers):
            where = f"layer {i + 1} ({layer.text})"
            if isinstance(layer, Conv):
                if dense_seen:
                    raise RrambnnError(f"{where}: a convolution cannot follow a dense layer")
                if not 1 <= layer.k <= MAX_KERNEL or not 1 <= layer.c_out <= MAX_CHANNELS:
                    raise RrambnnError(f"{where}: kernels from 1 to {MAX_KERNEL} pixels and 1 to {MAX_CHANNELS} "
                                       f"channels")
                if not 1 <= layer.stride <= layer.k or not 0 <= layer.pad < layer.k:
                    raise RrambnnError(f"{where}: the stride must be from 1 to the kernel size and the padding "
                                       f"below it")
                hp, wp = h + 2 * layer.pad, w + 2 * layer.pad
                if layer.k > min(hp, wp):
                    raise RrambnnError(f"{where}: a {layer.k}x{layer.k} kernel is larger than its "
                                       f"{hp}x{wp} input (padding included)")
                if layer.k * layer.k * c > MAX_LAYER:
                    raise RrambnnError(f"{where}: {layer.k}x{layer.k}x{c} = {layer.k * layer.k * c:,} crossbar rows, "
                                       f"more than {MAX_LAYER:,}")
                h, w, c = (hp - layer.k) // layer.stride + 1, (wp - layer.k) // layer.stride + 1, layer.c_out
            elif isinstance(layer, Pool):
                if dense_seen:
                    raise RrambnnError(f"{where}: pooling cannot follow a dense layer")
                if not 2 <= layer.k <= min(h, w):
                    raise RrambnnError(f"{where}: a {layer.k}x{layer.k} pooling window does not fit its "
                                       f"{h}x{w} input (windows from 2 to the input side)")
                h, w = h // layer.k, w // layer.k
            elif isinstance(layer, Dense):
                if not 1 <= layer.n <= MAX_LAYER:
                    raise RrambnnError(f"{where}: dense layers hold 1 to {MAX_LAYER:,} neurons")
                if h * w * c > MAX_LAYER:
                    raise RrambnnError(f"{where}: {h * w * c:,} inputs, more than {MAX_LAYER:,} crossbar rows")
                h, w, c = 1, 1, layer.n
                dense_seen = True
            else:
                raise RrambnnError(f"unknown layer {layer!r}")
            out.append((h, w, c))
        if not isinstance(self.layers[-1], Dense):
            raise RrambnnError(f"the last layer must be dense (the output neurons), not {self.layers[-1].text}")
        return out

    @property
    def text(self) -> str:
        """The canonical spec string (plain numbers for a fully connected chain)."""
        if self.is_dense:
            return "-".join(map(str, self.widths))
        h, w, c = self.input
        head = f"i{h}" if h == w and c == 1 else f"i{h}x{w}x{c}"
        return "-".join([head] + [layer.text for layer in self.layers])

    @property
    def is_dense(self) -> bool:
        """A fully connected chain with a flat input (every network of the earlier releases)."""
        return self.input[:2] == (1, 1) and all(isinstance(layer, Dense) for layer in self.layers)

    @property
    def widths(self) -> tuple[int, ...]:
        """Inputs and layer sizes of a fully connected chain: ``(400, 128, 128, 10)``."""
        if not self.is_dense:
            raise RrambnnError(f"{self.text} is not a fully connected chain")
        return (self.input[2],) + tuple(layer.n for layer in self.layers)

    @property
    def n_inputs(self) -> int:
        h, w, c = self.input
        return h * w * c

    @property
    def n_outputs(self) -> int:
        return self.layers[-1].n

    def matrices(self) -> list[Matrix]:
        """The crossbar layers in order (convolutions and dense layers)."""
        out = []
        shapes = self.shapes()
        for i, layer in enumerate(self.layers):
            h, w, c = shapes[i]
            ho, wo, co = shapes[i + 1]
            if isinstance(layer, Conv):
                out.append(Matrix(i, layer.k * layer.k * c, co, ho * wo))
            elif isinstance(layer, Dense):
                out.append(Matrix(i, h * w * c, co, 1))
        return out

    def arrays(self, tile=(128, 128)) -> int:
        """Crossbar arrays of ``tile`` cells per weight slice, over every matrix."""
        return sum(a * b for a, b in (m.tiles(tile) for m in self.matrices()))

    def macs(self) -> int:
        """Multiply-accumulates per image (rows x columns x positions of every matrix)."""
        return sum(m.rows * m.cols * m.positions for m in self.matrices())


_N = r"([0-9]{1,12})"  # ASCII digits (sizes beyond the limits are refused by name below)
_NUMBER = re.compile(r"[0-9]{1,12}")
_CONV = re.compile(rf"c{_N}x{_N}(?:s{_N})?(?:p{_N})?")
_INPUT = re.compile(rf"i{_N}(?:x{_N}x{_N})?")


def looks_like_layer_spec(text) -> bool:
    """Whether ``text`` is meant as a spec with an input image, convolutions, pooling or named
    layers (a name, or a token like ``i28``, ``c5x6``, ``p2``, ``d120``), not a plain chain of sizes."""
    t = str(text).strip().lower()
    return t in NAMES or any(re.fullmatch(r"[cip][0-9].*|d[0-9]+", tok) for tok in t.split("-"))


def shown(text, limit: int = 80) -> str:
    """``repr(text)`` for an error message, cut to ``limit`` characters."""
    r = repr(text)
    return r if len(r) <= limit else r[:limit - 5] + "...'"


def parse_spec(text) -> NetSpec:
    """A spec string (or a name, or a tuple of widths) -> :class:`NetSpec`, with one clear error."""
    if isinstance(text, NetSpec):
        return text
    if isinstance(text, (tuple, list)):
        text = "-".join(str(v) for v in text)
    raw = str(text).strip()
    src = NAMES.get(raw.lower(), raw)
    tokens = src.split("-")
    usage = ("layer specs like 400-128-128-10 or i28-c5x6p2-p2-c5x16-p2-d120-d84-d10 (or the name lenet5; "
             "c<k>x<channels>[s<stride>][p<pad>], p<pool>, d<neurons>)")
    if not raw or any(not t for t in tokens):
        raise RrambnnError(f"Architecture must be {usage}, not {shown(text)}")
    if all(_NUMBER.fullmatch(t) for t in tokens):  # the fully connected chain of earlier releases
        sizes = [int(t) for t in tokens]
        if len(sizes) < 2 or any(n < 1 for n in sizes):
            raise RrambnnError(f"Architecture needs at least an input and an output size, all positive, not {shown(text)}")
        if max(sizes) > MAX_LAYER:
            raise RrambnnError(f"Architecture layers hold at most {MAX_LAYER:,} neurons (a chip of this project's "
                               f"crossbars), not {max(sizes):,} in {shown(text)}")
        return NetSpec((1, 1, sizes[0]), tuple(Dense(n) for n in sizes[1:]))
    first = _INPUT.fullmatch(tokens[0].lower())
    if first:
        h = int(first.group(1))
        inp = (h, h, 1) if first.group(2) is None else (h, int(first.group(2)), int(first.group(3)))
        tokens = tokens[1:]
    else:
        inp = (28, 28, 1)
    layers = []
    for t in tokens:
        tl = t.lower()
        if m := _CONV.fullmatch(tl):
            k, c, s, p = m.groups()
            layers.append(Conv(int(k), int(c), int(s) if s else 1, int(p) if p else 0))
        elif m := re.fullmatch(rf"p{_N}", tl):
            layers.append(Pool(int(m.group(1))))
        elif m := re.fullmatch(rf"d?{_N}", tl):
            layers.append(Dense(int(m.group(1))))
        else:
            raise RrambnnError(f"Architecture: cannot read {shown(t, 30)} in {shown(text)}; expected {usage}")
    try:
        return NetSpec(inp, tuple(layers))
    except RrambnnError as e:
        raise RrambnnError(f"Architecture {shown(text)}: {e}") from None
