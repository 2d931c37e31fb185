"""The CNN chip: a convolutional network of any layer spec (:mod:`rrambnn.gen.spec`) on crossbar
tiles, bit for bit the golden :class:`rrambnn.gen.cnn.CnnNetwork`.

Data flow, one image at a time:

* **Input**: the image streams in raster order on ``i``, one row per transfer (``W x C`` codes
  of ``abits`` bits; pixel x, channel c in bits ``[(x*C + c)*m +: m]``), into the input map.
* **Feature maps** are register files of ``H x W`` entries of ``C x m`` bits, stored with the
  zero border their consumer's padding needs (border entries are constant 0).
* **Window generator**: a convolution with k x k kernels and stride s reads, for output row
  ``oy``, the k map rows ``oy*s .. oy*s + k - 1`` (one row multiplexer per kernel row, shared by
  every copy) and, for each copy's output column ``ox``, the ``k x C`` entries from column
  ``ox*s`` of each row: the k*k*C window in im2col order (kernel row, kernel column, channel),
  presented to the word lines of the layer's crossbar tiles.
* **Crossbar layers** are :class:`rrambnn.hw.layer.Layer` s, the dense layers' hardware: n-bit
  weights as n computing planes of bit slices (shifted and added), the inputs bit-serial (m
  planes, most significant first, an accumulator per column), tiles along the rows adding their
  partial sums before one sense stage. A convolution has ``positions`` P copies of its
  kernel tiles (duplicated kernels) computing P adjacent output columns of one output row at
  once; P = 1 time-multiplexes one copy over every position.
* **Sense stage** of a hidden layer: a flash converter, ``2^m - 1`` comparators per column
  against the folded thresholds (batch norm, the CO converter and the activation quantiser;
  :mod:`rrambnn.gen.cnn_train`): ``code = #{l : S >= theta_l}``.
* **Pooling unit**: a convolution followed by max pooling (window q) writes each code into its
  pooled entry as ``max(entry, code)`` per channel (entries cleared before the image), merging
  the copies of one step that share a window; rows and columns beyond the last whole window are
  dropped, as the golden model does.
* **Output**: the last (dense) layer's comparators give ``fires`` and ``S - theta``; the
  priority encoder or argmax of the other chips (:mod:`rrambnn.hw.output`).

Cycles per image (no idles, no backpressure): :attr:`CnnChip.interval`
``= H_in + sum over crossbar layers of steps * c + 1`` with ``c = m + 1`` cycles per step for
m-bit activations (m accumulation cycles, one sense-and-write cycle; ``c = 1`` for m = 1),
``steps = H_out * ceil(W_out / P)`` for a convolution and 1 for a dense layer, and one cycle
handing the result over.

With ``debug`` the result carries every layer's activation map (``act<i>`` per spec layer, in
(row, column, channel) order, m bits per code; the last layer's ``fires``) and the last layer's
column sums ``sums``. The cells are the network's weights; thresholds are fixed at generation.

With ``analog`` (a chip of a device profile, :class:`rrambnn.gen.analog_coded.CodedChip`) every
slice array reads through its own cells' currents and each crossbar layer's sense model adds
its offsets and read noise (:mod:`rrambnn.hw.analog`, as in the multi-bit MLP chip): sums and
thresholds are currents in 2^-8 cell units, and each read's noise is keyed by the image's
index (counted from 0 at reset as results are taken) and, in a convolution of more than one
output position, the position ``oy * W_out + ox``, as :func:`rrambnn.gen.analog_coded.read_keys`
keys it. One copy
of each kernel's arrays (``positions`` 1): the golden model reads one array per slice.
"""

from __future__ import annotations

import numpy as np
from amaranth import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from rrambnn.errors import RrambnnError
from rrambnn.gen.cnn import CnnNetwork
from rrambnn.gen.sliced import weight_slices
from rrambnn.gen.spec import Conv, Pool
from rrambnn.hw.crossbar import _bits
from rrambnn.hw.layer import Layer, check_tile
from rrambnn.hw.output import attach_output_stage, check_output_stage

MAX_POSITIONS = 64  # copies of a convolution's kernel tiles
MAX_MAP_BITS = 1 << 20  # bits of one feature-map register file


class FeatureMap:
    """A map of h x w entries of c codes (m bits each) with a zero border of ``pad``."""

    def __init__(self, name: str, h: int, w: int, c: int, m: int, pad: int = 0):
        self.name, self.h, self.w, self.c, self.m, self.pad = name, h, w, c, m, pad
        self.ew = c * m  # bits of one entry
        self.hp, self.wp = h + 2 * pad, w + 2 * pad
        self.entries = [[Signal(self.ew, name=f"{name}_y{y}_x{x}") for x in range(w)] for y in range(h)]

    @property
    def bits(self) -> int:
        return self.h * self.w * self.ew

    def padded_row(self, y: int):
        """Row y of the padded map (zeros in the border)."""
        if y < self.pad or y >= self.pad + self.h:
            return Const(0, self.wp * self.ew)
        zero = [Const(0, self.ew)] * self.pad
        return Cat(*zero, *self.entries[y - self.pad], *zero)

    def flat(self):
        """Every entry in (row, column, channel) order: the golden model's flattened map."""
        return Cat(*(e for row in self.entries for e in row))


class Step:
    """One crossbar layer of the chip: what it reads, computes and writes."""

    def __init__(self, k: int, spec_index: int, layer, src: FeatureMap, h_out: int, w_out: int, copies: int,
                 pool: int, last: bool):
        self.k, self.spec_index, self.layer, self.src = k, spec_index, layer, src
        self.h_out, self.w_out, self.copies, self.pool, self.last = h_out, w_out, copies, pool, last
        self.conv = isinstance(layer, Conv)
        self.groups = -(-w_out // copies)  # steps per output row
        self.steps = h_out * self.groups if self.conv else 1
        self.dst = None  # the map it writes (None: the output stage)
        self.debug_map = None  # its unpooled map, with debug, when it is pooled


class CnnChip(wiring.Component):
    """The CNN chip of ``net`` (see the module docstring). ``tile``: crossbar array size;
    ``positions``: copies of each convolution's kernel tiles (output columns per step);
    ``output``: priority or argmax (default the network's); ``debug``: every activation map and
    the last column sums in the result.

    Ports: ``i`` (rows of the input image, raster order), ``o`` (``cls``, ``hit``; with debug
    ``act<i>`` and ``sums``). ``analog``: the chip of a device profile
    (:class:`rrambnn.gen.analog_coded.CodedChip`); ``theta``: with it, per-layer thresholds in
    current units (a per-chip calibration; default the network's). The chip has no threshold
    port: its thresholds are fixed at generation."""

    def __init__(self, net: CnnNetwork, *, tile=(128, 128), positions: int = 1, output: str | None = None,
                 debug: bool = False, analog=None, theta=None):
        if not isinstance(net, CnnNetwork):
            raise TypeError(f"CNN chip needs a CnnNetwork, not {net!r}")
        self.tile = check_tile(tile)
        if (not isinstance(positions, int) or isinstance(positions, bool)
                or not 1 <= positions <= MAX_POSITIONS):
            raise ValueError(f"Positions per step must be an integer from 1 to {MAX_POSITIONS}, not {positions!r}")
        self.output = check_output_stage(output or net.output_mode)
        if not isinstance(debug, bool):
            raise TypeError(f"Debug must be a bool, not {debug!r}")
        self.net, self.positions, self.debug = net, positions, debug
        self.m, self.wbits = net.abits, net.wbits
        self.analog, self.analog_layers, self.theta = analog, None, net.thresholds
        if analog is not None:  # analog reads: thresholds in current units
            from rrambnn.gen import analog as ga
            from rrambnn.hw.analog import coded_layers
            if positions != 1:
                raise ValueError(f"Analog reads model one copy of each kernel's arrays: positions per step must be 1 "
                                 f"with a device profile, not {positions!r}")
            self.analog_layers, self.theta = coded_layers(net, analog), ga.thresholds(net)
            if theta is not None:
                self.theta = _checked_theta(theta, self.theta)
        elif theta is not None:
            raise ValueError("CNN chip thresholds in current units need analog reads (a device profile)")
        self._plan()
        fields = {"cls": _bits(net.spec.n_outputs), "hit": 1}
        if debug:
            for i, bits in enumerate(self.debug_bits):
                fields[f"act{i}"] = bits
            fields["sums"] = self.layers[-1][0].n_out * self.layers[-1][0].sw
        self.out_layout = data.StructLayout(fields)
        h, w, c = net.spec.input
        self.row_bits = w * c * self.m
        self.interval = h + sum(s.steps * self.cycles_per_step for s in self.steps) + 1
        super().__init__({
            "i": In(stream.Signature(self.row_bits)),
            "o": Out(stream.Signature(self.out_layout)),
        })

    @property
    def cycles_per_step(self) -> int:
        return self.m + 1 if self.m > 1 else 1

    # -- the plan: maps, steps and their crossbar layers -----------------------------------
    def _plan(self):
        spec, m = self.net.spec, self.m
        shapes = spec.shapes()
        layers = spec.layers
        mats = spec.matrices()
        if isinstance(layers[0], Pool):
            raise RrambnnError(f"the CNN chip pools the output of a convolution; {spec.text} pools its input image "
                               f"(pool the image before it enters the chip)")
        for a, b in zip(layers, layers[1:]):
            if isinstance(a, Pool) and isinstance(b, Pool):
                raise RrambnnError(f"the CNN chip pools once after a convolution; {spec.text} has p{a.k}-p{b.k} (write "
                                   f"one p{a.k * b.k}: the same windows)")
        # the padding each map needs is its consumer's
        def pad_of(consumer):
            return consumer.pad if isinstance(consumer, Conv) else 0

        h, w, c = shapes[0]
        src = FeatureMap("map_in", h, w, c, m, pad_of(layers[0]))
        self.maps = [src]
        self.steps: list[Step] = []
        self.debug_bits = []  # debug: bits of each spec layer's map
        self.act_sources = []  # per spec layer: the map or None (the last layer's fires)
        k = 0
        i = 0
        while i < len(layers):
            layer = layers[i]
            ho, wo, co = shapes[i + 1]
            last = i == len(layers) - 1
            pool = layers[i + 1].k if i + 1 < len(layers) and isinstance(layers[i + 1], Pool) else 1
            copies = 1
            if isinstance(layer, Conv):
                copies = min(self.positions, wo)
                if pool > 1 and copies % pool and pool % copies:
                    raise RrambnnError(f"{copies} positions per step and {spec.layers[i + 1].text} pooling after "
                                       f"{layer.text}: the positions must be a multiple or a divisor of the pooling "
                                       f"window")
            step = Step(k, mats[k].index, layer, src, ho, wo, copies, pool, last)
            self.steps.append(step)
            if not last:
                after = i + 2 if pool > 1 else i + 1
                ph, pw = (ho // pool, wo // pool) if pool > 1 else (ho, wo)
                dst = FeatureMap(f"map{k}", ph, pw, co, m, pad_of(layers[after]))
                if dst.bits > MAX_MAP_BITS:
                    raise RrambnnError(f"the map after {layer.text} holds {dst.bits:,} bits; the CNN chip's register "
                                       f"files hold at most {MAX_MAP_BITS:,}")
                step.dst = dst
                self.maps.append(dst)
                if pool > 1:
                    if self.debug:
                        step.debug_map = FeatureMap(f"map{k}_unpooled", ho, wo, co, m)
                    self.debug_bits.append(ho * wo * co * m)
                    self.act_sources.append(step.debug_map)
                    self.debug_bits.append(dst.bits)
                    self.act_sources.append(dst)
                else:
                    self.debug_bits.append(dst.bits)
                    self.act_sources.append(dst)
                src = dst
                i = after
            else:
                self.debug_bits.append(co)
                self.act_sources.append(None)
                i += 1
            k += 1
        self.layers = [[self._layer(s, j) for j in range(s.copies)] for s in self.steps]

    def _layer(self, s: Step, copy: int) -> Layer:
        w = self.net.weights[s.k]
        slices = weight_slices(w, self.wbits)  # (n, rows, cols) of -1/+1
        cells = (slices > 0).astype(np.uint8)
        theta = self.theta[s.k] if s.last else np.zeros(w.shape[1], np.int64)
        if self.analog is not None:  # the chip's slice arrays: stuck cells of the profile's yield held
            cells = np.stack([sl.cells for sl in self.analog.slices[s.k]])
        try:
            return Layer(slices[0], theta, self.tile, initial_cells=cells[0], index=s.k,
                         planes=self.wbits, plane_cells=cells[1:], sliced=self.wbits > 1, in_bits=self.m,
                         analog=self.analog_layers[s.k] if self.analog is not None else None)
        except (TypeError, ValueError) as e:
            raise RrambnnError(str(e)) from None

    @property
    def n_tiles(self) -> int:
        """Crossbar arrays, every plane and copy."""
        return sum(len(copies) * copies[0].n_tiles * self.wbits for copies in self.layers)

    @property
    def map_bits(self) -> int:
        """Bits of the feature-map register files (unpooled debug maps excluded)."""
        return sum(mp.bits for mp in self.maps)

    # -- hardware ---------------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        bits = self.m
        n_steps = len(self.steps)
        oy = Signal(range(max(2, max(s.h_out for s in self.steps) + 1)), name="pos_row")
        ox = Signal(range(max(2, max(s.w_out for s in self.steps) + max(s.copies for s in self.steps) + 1)),
                    name="pos_col")
        t = Signal(range(max(2, bits)), name="plane")
        row = Signal(range(max(2, self.maps[0].h + 1)), name="in_row")
        result = Signal(self.out_layout, name="result")
        pooled = [e for s in self.steps if s.pool > 1 for r in s.dst.entries for e in r]

        # input map: one row per transfer
        src0 = self.maps[0]
        take_row = Signal(name="take_row")
        for y in range(src0.h):
            with m.If(take_row & (row == y)):
                m.d.sync += [src0.entries[y][x].eq(self.i.payload[x * src0.ew:(x + 1) * src0.ew])
                             for x in range(src0.w)]

        # analog reads: the image's index (results taken since reset) keys the read noise
        if self.analog is not None:
            image = Signal(32, name="image_index")
            with m.If(self.o.valid & self.o.ready):
                m.d.sync += image.eq(image + 1)
        # every crossbar layer: inputs (window or whole map), codes, writes
        acc = [Signal(name=f"acc_step{s.k}") for s in self.steps]  # accumulate plane t this cycle
        sense = [Signal(name=f"sense{s.k}") for s in self.steps]  # write this step's codes
        for s in self.steps:
            copies = self.layers[s.k]
            for j, layer in enumerate(copies):
                m.submodules[f"layer{s.k}_copy{j}" if s.copies > 1 else f"layer{s.k}"] = layer
                if self.analog is not None:
                    from rrambnn.hw.analog import position_key
                    # one output position (a dense layer, or a convolution covering its whole map): the image
                    m.d.comb += layer.image.eq(position_key(image, oy * s.w_out + ox) if s.h_out * s.w_out > 1
                                               else image)
            windows = self._windows(m, s, oy, ox)
            for j, (layer, win) in enumerate(zip(copies, windows)):
                n_in = layer.n_in
                if bits > 1:
                    plane = Signal(n_in, name=f"plane{s.k}_{j}")
                    m.d.comb += [plane.eq(Cat(*(win[r * bits:(r + 1) * bits].bit_select(t, 1) for r in range(n_in)))),
                                 layer.x.eq(self._driven(plane, acc[s.k])), layer.acc_step.eq(acc[s.k]),
                                 layer.acc_first.eq(t == bits - 1)]
                else:
                    m.d.comb += layer.x.eq(self._driven(win, sense[s.k]))
            if not s.last:
                codes = [self._codes(m, s, j, layer) for j, layer in enumerate(copies)]
                self._write(m, s, codes, oy, ox, sense[s.k])

        cls = attach_output_stage(m, self.output, self.layers[-1][0])
        last = self.layers[-1][0]
        with m.FSM(name="seq"):
            with m.State("LOAD"):
                m.d.comb += [self.i.ready.eq(1), take_row.eq(self.i.valid)]
                with m.If(self.i.valid):
                    m.d.sync += row.eq(row + 1)
                    with m.If(row == src0.h - 1):
                        m.d.sync += [row.eq(0), oy.eq(0), ox.eq(0), t.eq(bits - 1)]
                        m.next = self._first_state(0)
            for s in self.steps:
                nxt = self._first_state(s.k + 1) if s.k + 1 < n_steps else "OUT"
                if bits > 1:
                    with m.State(f"ACC{s.k}"):
                        m.d.comb += acc[s.k].eq(1)
                        m.d.sync += t.eq(t - 1)
                        with m.If(t == 0):
                            m.next = f"SENSE{s.k}"
                with m.State(f"SENSE{s.k}"):
                    m.d.comb += sense[s.k].eq(1)
                    m.d.sync += t.eq(bits - 1)
                    done = Signal(name=f"done{s.k}")
                    if s.conv:
                        m.d.comb += done.eq((oy == s.h_out - 1) & (ox + s.copies >= s.w_out))
                        with m.If(ox + s.copies >= s.w_out):
                            m.d.sync += [ox.eq(0), oy.eq(oy + 1)]
                        with m.Else():
                            m.d.sync += ox.eq(ox + s.copies)
                    else:
                        m.d.comb += done.eq(1)
                    if s.last:
                        m.d.sync += [result.cls.eq(cls), result.hit.eq(last.fires.any())]
                        if self.debug:
                            for i, mp in enumerate(self.act_sources):
                                m.d.sync += getattr(result, f"act{i}").eq(last.fires if mp is None else mp.flat())
                            m.d.sync += result.sums.eq(last.sums)
                    with m.If(done):
                        m.d.sync += [oy.eq(0), ox.eq(0)]
                        m.next = nxt
                    with m.Else():
                        m.next = self._first_state(s.k)
            with m.State("OUT"):
                m.d.comb += self.o.valid.eq(1)
                with m.If(self.o.ready):
                    m.d.sync += [e.eq(0) for e in pooled]  # the pooling unit's max starts from 0
                    m.next = "LOAD"
        m.d.comb += self.o.payload.eq(result)
        return m

    def _driven(self, lines, active):
        """A layer's word lines: with analog reads only while the layer reads (else 0, so that the
        analog crossbar models, which sum every cell's current, are not re-evaluated for layers
        at rest: the simulation's cost per cycle is the active layer's); the digital chip drives
        them always (its Verilog unchanged)."""
        return Mux(active, lines, 0) if self.analog is not None else lines

    def _first_state(self, k: int) -> str:
        return f"ACC{k}" if self.m > 1 else f"SENSE{k}"

    def _windows(self, m, s: Step, oy, ox) -> list:
        """Each copy's word-line codes: its k*k*C window (a convolution), or the whole map."""
        src = s.src
        if not s.conv:
            return [src.flat()]
        k, stride = s.layer.k, s.layer.stride
        rows = Array(src.padded_row(y) for y in range(src.hp))
        sel = []
        for dy in range(k):
            y = Signal(range(src.hp + 1), name=f"win{s.k}_row{dy}")
            r = Signal(src.wp * src.ew, name=f"win{s.k}_rowbits{dy}")
            m.d.comb += [y.eq(oy * stride + dy), r.eq(rows[y])]
            sel.append(r)
        out = []
        seg = k * src.ew
        for j in range(s.copies):
            off = Signal(range((s.w_out + s.copies) * stride * src.ew + 1), name=f"win{s.k}_col{j}")
            m.d.comb += off.eq((ox + j) * (stride * src.ew))
            win = Signal(k * seg, name=f"window{s.k}_{j}")
            m.d.comb += win.eq(Cat(*(r.bit_select(off, seg) for r in sel)))
            out.append(win)
        return out

    def _codes(self, m, s: Step, j: int, layer: Layer):
        """A hidden layer's flash sense stage: per column the number of thresholds its sum reaches."""
        theta = self.theta[s.k]
        codes = []
        for col in range(layer.n_out):
            total = layer.sums[col * layer.sw:(col + 1) * layer.sw].as_signed()
            hits = [total >= int(v) for v in theta[col]]
            code = Signal(self.m, name=f"code{s.k}_{j}_{col}")
            m.d.comb += code.eq(sum(hits[1:], hits[0]) if len(hits) > 1 else hits[0])
            codes.append(code)
        return Cat(*codes)

    def _write(self, m, s: Step, codes, oy, ox, we):
        """Write this step's codes into the next map (and the debug map): at (oy, ox + j), or with
        pooling q into entry (oy // q, (ox + j) // q) as the channel-wise max."""
        if not s.conv:
            with m.If(we):
                m.d.sync += s.dst.entries[0][0].eq(codes[0])
            return
        P = s.copies
        valid = [Signal(name=f"valid{s.k}_{j}") for j in range(P)]
        for j in range(P):
            m.d.comb += valid[j].eq(ox + j < s.w_out)
        plain = s.debug_map if s.pool > 1 else s.dst
        if plain is not None:
            for y in range(s.h_out):
                hit_row = Signal(name=f"{plain.name}_wrow{y}")
                m.d.comb += hit_row.eq(we & (oy == y))
                for x in range(s.w_out):
                    j = x % P
                    with m.If(hit_row & (ox == x - j)):
                        m.d.sync += plain.entries[y][x].eq(codes[j])
        if s.pool == 1:
            return
        q, dst = s.pool, s.dst
        # the copies sharing a pooled entry in one step: groups of q copies (P a multiple of q),
        # or all P copies (P a divisor of q)
        if P % q == 0:
            groups = [list(range(g * q, (g + 1) * q)) for g in range(P // q)]
        else:
            groups = [list(range(P))]
        for py in range(dst.h):
            hit_row = Signal(name=f"{dst.name}_wrow{py}")
            m.d.comb += hit_row.eq(we & (oy >= py * q) & (oy < (py + 1) * q))
            for px in range(dst.w):
                if P % q == 0:
                    g = px % (P // q)
                    members, here = groups[g], ox == (px - g) * q
                else:
                    members, here = groups[0], (ox >= px * q) & (ox < (px + 1) * q)
                entry = dst.entries[py][px]
                new = []
                for c in range(dst.c):
                    best = entry[c * self.m:(c + 1) * self.m]
                    for j in members:
                        v = codes[j][c * self.m:(c + 1) * self.m]
                        best = Mux(valid[j] & (v > best), v, best)
                    new.append(best)
                with m.If(hit_row & here):
                    m.d.sync += entry.eq(Cat(*new))


# -- the port encodings (the testbenches' drivers and scoreboards) -------------------------

def _pack(values: np.ndarray, width: int) -> list[int]:
    """(N, e) unsigned values of ``width`` bits -> N ints, element i in bits [i*width +: width]."""
    n = len(values)
    bits = ((values.astype(np.int64)[:, :, None] >> np.arange(width)) & 1).astype(np.uint8).reshape(n, -1)
    packed = np.packbits(bits, axis=1, bitorder="little")
    return [int.from_bytes(r.tobytes(), "little") for r in packed]


def input_rows(chip: CnnChip, x: np.ndarray) -> list[list[int]]:
    """Input codes (N, H, W, C) -> per image its H row transfers."""
    n, h, w, c = x.shape
    rows = _pack(x.reshape(n * h, w * c), chip.m)
    return [rows[i * h:(i + 1) * h] for i in range(n)]


def _checked_theta(theta, nominal) -> list[np.ndarray]:
    """Per-layer thresholds shaped as the network's, each row non-decreasing (a flash
    converter's levels)."""
    out = []
    if len(theta) != len(nominal):
        raise ValueError(f"CNN chip thresholds must be {len(nominal)} layers, not {len(theta)}")
    for k, (t, n) in enumerate(zip(theta, nominal)):
        t = np.asarray(t, np.int64)
        if t.shape != n.shape:
            raise ValueError(f"CNN chip thresholds of layer {k} must have shape {n.shape}, not {t.shape}")
        if t.ndim == 2 and (np.diff(t, axis=1) < 0).any():
            raise ValueError(f"CNN chip thresholds of layer {k} must not decrease from level to level")
        out.append(t)
    return out


def result_payloads(chip: CnnChip, x: np.ndarray, image_ids=None) -> list[int]:
    """The golden result payloads of input codes ``x`` (N, H, W, C), in the chip's layout; a chip
    with analog reads reads ``x[i]`` as its image ``image_ids[i]`` (default i)."""
    if chip.analog is not None:
        from rrambnn.gen import analog_coded
        tr = analog_coded.forward(chip.net, x, chip.analog, theta=chip.theta, image_ids=image_ids, trace=True)
    else:
        tr = chip.net.forward(x)
    n = len(x)
    cls = tr.argmax if chip.output == "argmax" else tr.priority
    values = {"cls": cls[:, None], "hit": tr.hit[:, None].astype(np.int64)}
    if chip.debug:
        for i, a in enumerate(tr.acts):
            values[f"act{i}"] = a.reshape(n, -1)
        values["sums"] = tr.sums[-1].reshape(n, -1)
    out = [0] * n
    for name, f in chip.out_layout:
        v = values[name]
        width = f.width // v.shape[1]
        mask = (1 << width) - 1
        for i, p in enumerate(_pack(v & mask, width)):
            out[i] |= p << f.offset
    return out


# -- Verilog ----------------------------------------------------------------------------------

def header(chip: CnnChip) -> str:
    net, spec = chip.net, chip.net.spec
    h, w, c = spec.input
    lines = [
        "// rrambnn CNN chip, generated by rrambnn; do not edit (regenerate instead).",
        f"// network {spec.text}: {net.wbits}-bit weights in {net.wbits} computing plane(s) of bit slices, "
        f"{net.abits}-bit activations{' bit-serial (MSB plane first)' if net.abits > 1 else ''}, flash sense "
        f"stages ({(1 << net.abits) - 1} comparator(s) per column), output stage {chip.output}",
        f"// {chip.n_tiles} crossbar tile(s) of {chip.tile[0]}x{chip.tile[1]}; {chip.positions} position(s) per step "
        f"(copies of each convolution's kernel tiles: " + ", ".join(str(s.copies) for s in chip.steps if s.conv)
        + f"); feature-map registers {chip.map_bits:,} bits",
        "// top module rrambnn_chip; crossbar model rrambnn_crossbar (behavioural, simulation only)",
        f"// input (i): the image in raster order, one row of {w} pixel(s) x {c} channel(s) per transfer, pixel x "
        f"channel ch as the {net.abits}-bit code in bits [(x*{c} + ch)*{net.abits} +: {net.abits}]"
        + (f"; MNIST: the centre {h}x{w} of the 28x28 image, pixel p as (p * {(1 << net.abits) - 1} + 127) // 255"
           if c == 1 and h <= 28 and w <= 28 else ""),
        ("// output (priority): cls = the lowest-index output neuron that fires, hit = some output neuron fires; "
         "hit = 0 is a reject (no answer)" if chip.output == "priority" else
         "// output (argmax): cls = the output neuron with the largest S - theta (lowest index on ties)"),
        f"// timing: one image at a time, {chip.interval} cycles per image with no idles or backpressure "
        f"(H_in + sum of steps x {chip.cycles_per_step} + 1; steps per layer: "
        + ", ".join(str(s.steps) for s in chip.steps) + "); o__payload is registered and held until taken",
    ]
    if chip.analog is not None:
        a = chip.analog
        lines.append(f"// analog reads: device profile {a.profile.name}, chip seed {a.seed}: every slice array reads "
                     f"through its cells' currents (rrambnn_crossbar_analog), each crossbar layer's sense model adds its "
                     f"offsets and read noise (rrambnn_analog_sense); sums and thresholds in 2^-8 cell units; the noise "
                     f"is keyed by the image's index (results taken since reset) and a convolution's output position; "
                     f"rrambnn.gen.analog_coded")
    if chip.debug:
        names = [lyr.text for lyr in spec.layers]
        lines.append("// debug: o__payload holds every layer's activation map, act<i> = layer i ("
                     + ", ".join(f"{i}: {n}" for i, n in enumerate(names))
                     + "), codes in (row, column, channel) order; sums = the last layer's column sums")
    return "\n".join(lines) + "\n"


def generate_cnn(chip: CnnChip) -> str:
    """The CNN chip's Verilog: the Amaranth design (Yosys-style waivers as the other chips) and the
    behavioural crossbar model."""
    from rrambnn.hw.crossbar import CROSSBAR_MODULE
    from rrambnn.hw.verilog import TOP_NAME, YOSYS_STYLE_WAIVERS, to_verilog
    body = to_verilog(chip, TOP_NAME)
    off = "".join(f"/* verilator lint_off {w} */\n" for w in YOSYS_STYLE_WAIVERS)
    on = "".join(f"/* verilator lint_on {w} */\n" for w in YOSYS_STYLE_WAIVERS)
    models = ""
    if chip.analog is not None:
        from rrambnn.hw.analog import ANALOG_CROSSBAR_MODULE, SENSE_MODEL_MODULE
        models = ANALOG_CROSSBAR_MODULE + SENSE_MODEL_MODULE
    return header(chip) + off + body + on + CROSSBAR_MODULE + models


def make_chip(net: CnnNetwork, *, tile="128x128", positions: int = 1, output: str | None = None,
              debug: bool = False, analog=None, theta=None) -> CnnChip:
    """The CNN chip of ``net`` with user parameters: every refusal one :class:`RrambnnError` line
    (a bad tile or positions, a map over the register limit, more arrays than the generator builds)."""
    from rrambnn.hw.config import MAX_TILES
    try:
        tile = check_tile(tile)
        spec = net.spec
        copies = max([min(positions, s[1]) for lyr, s in zip(spec.layers, spec.shapes()[1:])
                      if isinstance(lyr, Conv)] + [1]) if isinstance(positions, int) else 1
        n = net.wbits * copies * spec.arrays(tile)  # an upper bound, before anything is built
        if n > MAX_TILES:
            raise RrambnnError(f"the CNN chip {spec.text} needs up to {n:,} crossbar tiles of {tile[0]}x{tile[1]} "
                               f"({net.wbits} slice(s), {copies} position(s) per step); the generator builds at most "
                               f"{MAX_TILES:,} (choose larger tiles or fewer positions)")
        return CnnChip(net, tile=tile, positions=positions, output=output, debug=debug, analog=analog, theta=theta)
    except (TypeError, ValueError) as e:
        raise RrambnnError(str(e)) from None
