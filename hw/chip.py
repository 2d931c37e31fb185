"""The inference chip: input flip-flops, crossbar layers, sense stages, output stage.

Ports (flattened Verilog names in parentheses; see ``rrambnn.hw.verilog.port_table``):

* ``i`` (``i__payload``, ``i__valid``, ``i__ready``): image bits, valid/ready.
* ``o`` (``o__payload``, ``o__valid``, ``o__ready``): result, valid/ready; payload
  layout :attr:`Chip.out_layout` (``cls``, ``hit``; with ``debug`` also every
  layer's activations ``act<k>`` and the last layer's column sums ``sums``).
* ``thr``: rewrite one threshold; ``layer``, ``index``, ``value``. Ready is always 1, except in
  the unpipelined binary chip, whose result is combinational from the input flip-flops: there
  ``thr.ready`` is low while a result waits to be taken (``o.valid`` and not ``o.ready``), so a
  held result never changes and a write takes effect from the next image.
* ``prog``: programming commands for the write-verify controller
  (:class:`rrambnn.hw.programmer.Programmer`): ``layer``, ``row``, ``word``, ``bits``, ``mask``.
* ``failed``: addresses (``layer``, ``row``, ``col``) of cells the controller could not write.
* ``prog_busy``, ``prog_done``, ``prog_overflow``, ``n_set``, ``n_reset``, ``n_failed``: status.
* ``read_layer``/``read_row``/``read_col`` -> ``read_bit``, ``read_count``: sense one cell and
  its switch counter (the counter is the device model's, for testbenches).

The chip's *variant* says what its arrays hold and compute with:

* :class:`Binary` (the reference chip): 1-bit weights in one plane of arrays, 1-bit activations.
* :class:`StoragePlanes` n (online training, :mod:`rrambnn.gen.planes`): every layer has n
  planes of arrays (plane 0 = sign, the computing arrays; planes 1.. = magnitude bits) and the
  weight-update controller works in that sign-magnitude code.
* :class:`ComputingPlanes` n, m (multi-bit inference, :mod:`rrambnn.gen.sliced`): every layer
  has n computing planes whose column sums are shifted and added (plane b = bit b of the
  weight's offset code); m-bit activations. With a weight update (the *training chip*,
  :mod:`rrambnn.gen.online_nbit`) the controller updates the offset codes of these planes (least
  significant plane first): the arrays that store the n-bit weights compute with them.

With more than one plane, programming commands and failed-cell addresses carry a ``plane`` and
reads take ``read_plane``; with a weight-update controller
(:class:`rrambnn.hw.updater.WeightUpdater`) the chip also has:

* ``upd``: update commands for the weight-update controller; ``upd_busy``; ``n_updates``
  (weights updated).

With m > 1 activation bits the input payload holds an m-bit code per pixel, each layer is fed
bit-serially (MSB plane first) and hidden layers quantise with a threshold ramp (``thr`` gains
a ``level``): one image at a time, :attr:`interval` cycles each.

While the controller works (or a command waits) ``i.ready`` is low; a command starts only
once the images in flight have left, so programming never changes a result in flight.

Without ``pipeline`` the only registers on the data path are the input flip-flops
(latency 1); with ``pipeline`` every layer's activations are registered and so is
the result (latency = number of layers + 1). Both accept one image per clock when
the consumer is ready; the pipeline shortens the combinational path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth import Cat, Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from rrambnn.gen.device import DeviceParams, fail_threshold
from rrambnn.hw.crossbar import _bits
from rrambnn.hw.layer import Layer, check_tile, or_all, signed_range
from rrambnn.hw.output import attach_output_stage, check_output_stage
from rrambnn.hw.programmer import Programmer, Programming
from rrambnn.hw.updater import WeightUpdate, WeightUpdater, check_bits


def _bounded_int(name, v, lo, hi):
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise ValueError(f"{name} must be an integer from {lo} to {hi}, not {v!r}")


class ChipVariant:
    """What a chip's arrays hold and compute with; one of :class:`Binary`,
    :class:`StoragePlanes` and :class:`ComputingPlanes` (frozen, checked when made).

    * ``planes``: arrays per layer, each a plane of the layer's tiling;
    * ``sliced``: every plane computes (plane b = bit b of the weights' offset codes), not
      only plane 0;
    * ``wbits``: weight bits, one computing plane each;
    * ``abits``: bits per activation (> 1: bit-serial layers, threshold ramps);
    * ``update``: the weight-update controller (:class:`rrambnn.hw.updater.WeightUpdate`), or
      None.
    """

    planes = 1
    sliced = False
    ternary = False
    wbits = 1
    abits = 1
    update = None
    backward = False


@dataclass(frozen=True)
class Binary(ChipVariant):
    """1-bit weights in one plane of arrays, 1-bit activations: the reference inference chip."""


@dataclass(frozen=True)
class StoragePlanes(ChipVariant):
    """Sign-forward online training (:mod:`rrambnn.gen.planes`): ``bits``-bit sign-magnitude
    weights in ``bits`` planes of arrays. Plane 0 (the sign) computes, planes 1.. store the
    magnitude bits; the weight-update controller ``update`` works in that code (sign last)."""

    wbits: int
    update: WeightUpdate = WeightUpdate()

    def __post_init__(self):
        check_bits(self.wbits)
        if not isinstance(self.update, WeightUpdate):
            raise TypeError(f"Storage planes need a WeightUpdate, not {self.update!r}")

    @property
    def planes(self) -> int:
        return self.wbits


@dataclass(frozen=True)
class ComputingPlanes(ChipVariant):
    """Multi-bit inference (:mod:`rrambnn.gen.sliced`): ``wbits``-bit weights as bit slices in
    ``wbits`` computing planes (column sums shifted and added), ``abits``-bit activations.
    With ``update`` (a :class:`rrambnn.hw.updater.WeightUpdate`) the training chip
    (:mod:`rrambnn.gen.online_nbit`): the weight-update controller updates the planes' offset codes.
    ``backward``: the last layer also has the transposed read (ports ``tr_x`` -> ``tr_sums``),
    for the self-training chip's backward pass (:mod:`rrambnn.hw.trainer`).
    ``ternary``: 2-bit weights -1/0/+1 as two planes of equal weight (codes -2, 0, 2), inference only."""

    wbits: int = 1
    abits: int = 1
    update: WeightUpdate | None = None
    backward: bool = False
    ternary: bool = False

    def __post_init__(self):
        _bounded_int("Weight bits", self.wbits, 1, 8)
        _bounded_int("Activation bits", self.abits, 1, 8)
        if self.update is not None:
            if not isinstance(self.update, WeightUpdate):
                raise TypeError(f"Computing planes' update must be a WeightUpdate or None, not {self.update!r}")
            if self.wbits < 2:
                raise ValueError(f"A weight-update controller needs weights of 2 or more bits, not {self.wbits}")
        if not isinstance(self.backward, bool):
            raise TypeError(f"Computing planes' backward must be a bool, not {self.backward!r}")
        if self.backward and self.update is None:
            raise ValueError("A backward pass (transposed read) needs the weight-update controller")
        if not isinstance(self.ternary, bool):
            raise TypeError(f"Computing planes' ternary must be a bool, not {self.ternary!r}")
        if self.ternary and self.wbits != 2:
            raise ValueError(f"Ternary weights take 2 computing planes, not {self.wbits}")
        if self.ternary and self.update is not None:
            raise ValueError("Ternary weights are for inference: the weight-update controller works in offset codes")

    @property
    def planes(self) -> int:
        return self.wbits

    @property
    def sliced(self) -> bool:
        return self.wbits > 1


def _plane_arrays(name: str, arrays, n: int, planes: int) -> list:
    """Per layer (plane 0, planes 1..) of ``arrays`` (None: the defaults; per layer None or an
    array (planes, n_in, n_out), or (n_in, n_out) with one plane)."""
    if arrays is None:
        return [(None, None)] * n
    if len(arrays) != n:
        raise ValueError(f"Chip needs one {name} per layer ({n}), not {len(arrays)}")
    out = []
    for k, a in enumerate(arrays):
        if a is None:
            out.append((None, None))
            continue
        a = np.asarray(a)
        if a.ndim == 2 and planes == 1:
            a = a[None]
        if a.ndim != 3 or a.shape[0] != planes:
            raise ValueError(f"Layer {k}'s {name} must hold {planes} plane(s), an array (planes, n_in, n_out), "
                             f"not one of shape {a.shape}")
        out.append((a[0], a[1:]))
    return out


class Chip(wiring.Component):
    """The chip for a network of ``weights`` (per layer (n_in, n_out), -1/+1) and
    ``thresholds`` (per layer one per neuron; (n_out, 2^m - 1) for the threshold ramps of a
    hidden layer with m-bit activations): see the module docstring.

    * ``tile``: crossbar array size (rows, cols) or 'RxC'; ``pipeline``, ``output``
      (:data:`rrambnn.hw.output.OUTPUT_STAGES`), ``debug`` (activations and sums in the result);
    * ``variant``: :class:`Binary` (default), :class:`StoragePlanes` or :class:`ComputingPlanes`;
    * ``programming``: the write-verify controller's :class:`rrambnn.hw.programmer.Programming`;
    * ``device``: the device model (:class:`rrambnn.gen.device.DeviceParams`; default ideal);
    * ``cells``, ``faults``: per layer the arrays' initial cells and fault maps, (planes, n_in,
      n_out) or, with one plane, (n_in, n_out); default (or None for a layer): the weights' signs
      in plane 0 and 0 in the other planes, no faults.
    """

    def __init__(self, weights, thresholds, *, tile=(128, 128), pipeline: bool = False, output: str = "priority",
                 debug: bool = False, variant: ChipVariant = Binary(), programming: Programming = Programming(),
                 device: DeviceParams | None = None, cells=None, faults=None, analog=None):
        if not isinstance(weights, (list, tuple)) or not weights or len(weights) != len(thresholds):
            raise ValueError("Chip needs a non-empty list of weight matrices and one threshold vector each")
        for k in range(1, len(weights)):
            if weights[k].shape[0] != weights[k - 1].shape[1]:
                raise ValueError(
                    f"Layer {k} has {weights[k].shape[0]} inputs but layer {k - 1} has "
                    f"{weights[k - 1].shape[1]} outputs"
                )
        check_output_stage(output)
        if not isinstance(pipeline, bool):
            raise TypeError(f"Pipeline must be a bool, not {pipeline!r}")
        self.tile = check_tile(tile)
        if not isinstance(variant, ChipVariant):
            raise TypeError(f"Chip variant must be a Binary, StoragePlanes or ComputingPlanes, not {variant!r}")
        if not isinstance(programming, Programming):
            raise TypeError(f"Chip programming parameters must be a Programming, not {programming!r}")
        if variant.abits > 1 and pipeline:
            raise ValueError("Multi-bit activations run bit-serially: the pipeline option needs 1-bit activations")
        n = len(weights)
        cells = _plane_arrays("cell image", cells, n, variant.planes)
        faults = _plane_arrays("fault map", faults, n, variant.planes)
        self.pipeline, self.output, self.debug = pipeline, output, debug
        self.variant, self.programming = variant, programming
        self.device = device or DeviceParams()
        self.planes, self.wbits, self.abits = variant.planes, variant.wbits, variant.abits
        levels = (1 << self.abits) - 1
        # analog reads (rrambnn.hw.analog): per layer an AnalogLayer, thresholds in current units
        if analog is not None and (len(analog) != n or isinstance(variant, StoragePlanes) or variant.update is not None
                                   or variant.backward):
            raise ValueError("Analog reads need one analog layer per layer of an inference chip (binary or multi-bit)")
        self.analog = analog
        self.layers = [Layer(w, t, self.tile, initial_cells=c, faults=f, index=k, seed=self.device.seed,
                             fail_threshold=fail_threshold(self.device.p_fail), endurance=self.device.endurance,
                             planes=self.planes, plane_cells=pc, plane_faults=pf, sliced=variant.sliced,
                             in_bits=self.abits, levels=levels if k < n - 1 else 1,
                             transposed=variant.backward and k == n - 1, analog=analog[k] if analog else None,
                             ternary=variant.ternary)
                       for k, (w, t, (c, pc), (f, pf)) in enumerate(zip(weights, thresholds, cells, faults))]
        self.arch = (self.layers[0].n_in,) + tuple(layer.n_out for layer in self.layers)
        self.programmer = Programmer(self.arch, word=programming.word, retries=programming.retries,
                                     pulse_cycles=programming.pulse_cycles, fifo_depth=programming.fifo_depth,
                                     planes=self.planes)
        self.updater = None
        if variant.update is not None:  # computing planes hold offset codes, storage planes sign-magnitude
            self.updater = WeightUpdater(self.arch, wbits=self.planes, step_bits=variant.update.step_bits,
                                         word=programming.word, cmd_layout=self.programmer.cmd_layout,
                                         offset=variant.sliced, restore=variant.update.restore)
        n_out = self.arch[-1]
        fields = {"cls": _bits(n_out), "hit": 1}
        if debug:
            for k, layer in enumerate(self.layers):
                fields[f"act{k}"] = layer.n_out * (layer.code_bits if layer.levels > 1 else 1)
            fields["sums"] = n_out * self.layers[-1].sw
        self.out_layout = data.StructLayout(fields)
        self.latency = (len(self.layers) + 1) if pipeline else 1
        # the valid flags of the datapath's register stages (input flip-flops, with the pipeline
        # also every hidden layer's and the result's): the formal harness counts them
        self.stage_valids = [Signal(name="x_ff_valid")] + ([Signal(name=f"act{k}_ff_valid")
                                                           for k in range(len(self.layers) - 1)]
                                                          + [Signal(name="result_ff_valid")] if pipeline else [])
        self.interval = 1  # cycles per image at full rate
        if self.abits > 1:  # accept; per layer its input planes (+ the ramp); result; hand-over
            self.interval = len(self.layers) * self.abits + (len(self.layers) - 1) * levels + 3
            self.latency = self.interval - 1
        max_in = max(layer.n_in for layer in self.layers)
        max_out = max(layer.n_out for layer in self.layers)
        lw = _bits(len(self.layers))
        planes = {}
        if self.updater is not None:
            planes = {"upd": In(stream.Signature(self.updater.cmd_layout)), "upd_busy": Out(1),
                      "n_updates": Out(32)}
        if self.planes > 1:
            planes["read_plane"] = In(_bits(self.planes))
        if self.layers[-1].transposed:
            last = self.layers[-1]
            planes.update({"tr_x": In(last.n_out), "tr_sums": Out(last.n_in * last.tsw)})
        thr_fields = {"layer": lw, "index": _bits(max_out)}
        if self.abits > 1:
            thr_fields["level"] = _bits(levels)
        super().__init__({
            "i": In(stream.Signature(self.arch[0] * self.abits)),
            "o": Out(stream.Signature(self.out_layout)),
            "thr": In(stream.Signature(data.StructLayout({
                **thr_fields, "value": signed(max(layer.tw for layer in self.layers))}))),
            "prog": In(stream.Signature(self.programmer.cmd_layout)),
            "failed": Out(stream.Signature(self.programmer.addr_layout)),
            "prog_busy": Out(1), "prog_done": Out(1), "prog_overflow": Out(1),
            "n_set": Out(32), "n_reset": Out(32), "n_failed": Out(32), "n_thr_rejected": Out(32),
            "read_layer": In(lw),
            "read_row": In(_bits(max_in)),
            "read_col": In(_bits(max_out)),
            "read_bit": Out(1),
            "read_count": Out(32),
            **planes,
        })

    @property
    def n_tiles(self) -> int:
        """Crossbar arrays, all planes."""
        return sum(layer.n_tiles for layer in self.layers) * self.planes

    @property
    def threshold_ram_bits(self) -> int:
        """Bits of the multi-level threshold RAMs (0 with 1-bit activations)."""
        return sum(layer.levels * layer.n_out * layer.tw for layer in self.layers if layer.levels > 1)

    def elaborate(self, platform):
        m = Module()
        L = len(self.layers)
        m.submodules.programmer = prog = self.programmer
        upd = self.updater
        wiring.connect(m, prog.failed, wiring.flipped(self.failed))
        hold = Signal(name="hold_images")  # a controller works or a command waits: no new images
        if upd is None:
            wiring.connect(m, wiring.flipped(self.prog), prog.cmd)
            m.d.comb += hold.eq(prog.hold)
        else:
            m.submodules.updater = upd
            wiring.connect(m, wiring.flipped(self.upd), upd.upd)
            m.d.comb += [upd.prog_busy.eq(prog.busy), self.upd_busy.eq(upd.busy), self.n_updates.eq(upd.n_updates),
                         hold.eq(prog.hold | upd.busy | self.upd.valid)]
            with m.If(upd.busy):  # the update controller owns the programming controller
                m.d.comb += [prog.cmd.valid.eq(upd.prog.valid), prog.cmd.payload.eq(upd.prog.payload),
                             upd.prog.ready.eq(prog.cmd.ready)]
            with m.Else():
                m.d.comb += [prog.cmd.valid.eq(self.prog.valid), prog.cmd.payload.eq(self.prog.payload),
                             self.prog.ready.eq(prog.cmd.ready)]
        m.d.comb += [
            self.prog_busy.eq(prog.busy), self.prog_done.eq(prog.done), self.prog_overflow.eq(prog.overflow),
            self.n_set.eq(prog.n_set), self.n_reset.eq(prog.n_reset), self.n_failed.eq(prog.n_failed),
        ]
        # cell reads: the controller's address while it works, the host's otherwise
        rd_layer = Signal.like(self.read_layer)
        rd_row = Signal.like(self.read_row)
        rd_col = Signal.like(self.read_col)
        rd_plane = Signal(range(max(2, self.planes)))
        with m.If(prog.busy):
            m.d.comb += [rd_layer.eq(prog.addr.layer), rd_row.eq(prog.addr.row), rd_col.eq(prog.addr.col)]
            if self.planes > 1:
                m.d.comb += rd_plane.eq(prog.addr.plane)
        if upd is not None:
            with m.Elif(upd.busy):
                m.d.comb += [rd_layer.eq(upd.addr.layer), rd_row.eq(upd.addr.row), rd_col.eq(upd.addr.col)]
        with m.Else():
            m.d.comb += [rd_layer.eq(self.read_layer), rd_row.eq(self.read_row), rd_col.eq(self.read_col)]
            if self.planes > 1:
                m.d.comb += rd_plane.eq(self.read_plane)
        # a threshold write is taken when thr.ready: always, except in the unpipelined binary chip
        # while a result waits to be taken (its result is combinational from the input flip-flops,
        # and a held result must not change)
        thr_take = self.thr.valid
        if self.abits == 1 and not self.pipeline:
            thr_take = Signal(name="thr_take")
            m.d.comb += thr_take.eq(self.thr.valid & self.thr.ready)
        # a write to a neuron the layer does not have, or of a value its threshold register cannot
        # hold, is refused and counted (the value field is as wide as the widest layer's)
        thr_ok = Signal(name="thr_ok")
        value, index = self.thr.payload.value, self.thr.payload.index
        with m.Switch(self.thr.payload.layer):
            for k, layer in enumerate(self.layers):
                lo, hi = signed_range(layer.tw)
                with m.Case(k):
                    m.d.comb += thr_ok.eq((index < layer.n_out) & (value >= lo) & (value <= hi))
        with m.If(thr_take & ~thr_ok):
            m.d.sync += self.n_thr_rejected.eq(self.n_thr_rejected + 1)
        for k, layer in enumerate(self.layers):
            m.submodules[f"layer{k}"] = layer
            if layer.transposed:
                m.d.comb += [layer.tx.eq(self.tr_x), self.tr_sums.eq(layer.tsums)]
            m.d.comb += [
                layer.thr_we.eq(thr_take & thr_ok & (self.thr.payload.layer == k)),
                layer.thr_addr.eq(self.thr.payload.index),
                layer.thr_data.eq(self.thr.payload.value),
                layer.pulse_valid.eq(prog.pulse_valid & (prog.addr.layer == k)),
                layer.pulse_row.eq(prog.addr.row),
                layer.pulse_col.eq(prog.addr.col),
                layer.pulse_set.eq(prog.pulse_set),
                layer.read_row.eq(rd_row),
                layer.read_col.eq(rd_col),
                layer.read_plane.eq(rd_plane),
                layer.pulse_plane.eq(prog.addr.plane if self.planes > 1 else 0),
            ]
            if layer.levels > 1:
                m.d.comb += layer.thr_level.eq(self.thr.payload.level)
            with m.If(rd_layer == k):
                m.d.comb += [self.read_bit.eq(layer.read_bit), self.read_count.eq(layer.read_count),
                             prog.read_bit.eq(layer.read_bit)]
                if upd is not None:
                    m.d.comb += upd.code.eq(layer.read_bits)

        if self.abits > 1:
            self._serial_datapath(m, hold)
            return m
        # Stage 0: the input flip-flops (closed while the programming controller holds).
        upstream_valid = Signal(name="i_take")  # an image offered while the controller does not hold
        m.d.comb += upstream_valid.eq(self.i.valid & ~hold)
        x = Signal(self.arch[0], name="x_ff")
        v0 = self.stage_valids[0]
        stages = [(v0, [(x, self.i.payload)])]
        image = None
        if self.analog:  # every accepted image's index (from 0 at reset) keys its read noise
            count = Signal(32, name="images_taken")
            with m.If(self.i.valid & self.i.ready):
                m.d.sync += count.eq(count + 1)
            image = Signal(32, name="image_ff")
            stages[0][1].append((image, count))
        carried = {}  # debug fields travelling with the image
        a = x
        for k, layer in enumerate(self.layers):
            m.d.comb += layer.x.eq(a)
            if image is not None:
                m.d.comb += layer.image.eq(image)
            if self.debug:
                carried[f"act{k}"] = layer.fires
            if self.pipeline and k < L - 1:
                act = Signal(layer.n_out, name=f"act{k}_ff")
                vk = self.stage_valids[k + 1]
                moves = [(act, layer.fires)]
                for name, value in list(carried.items()):
                    reg = Signal(len(value), name=f"{name}_ff{k}")
                    moves.append((reg, value))
                    carried[name] = reg
                if image is not None:
                    reg = Signal(32, name=f"image_ff{k}")
                    moves.append((reg, image))
                    image = reg
                stages.append((vk, moves))
                a = act
            else:
                a = layer.fires

        last = self.layers[-1]
        result = Signal(self.out_layout, name="result")
        m.d.comb += result.cls.eq(attach_output_stage(m, self.output, last))
        m.d.comb += result.hit.eq(last.fires.any())
        if self.debug:
            for name, value in carried.items():
                m.d.comb += getattr(result, name).eq(value)
            m.d.comb += result.sums.eq(last.sums)
        if self.pipeline:
            out = Signal(self.out_layout, name="result_ff")
            vo = self.stage_valids[-1]
            stages.append((vo, [(out, result)]))
            result = out

        # valid/ready register chain: a stage takes new data when it is empty or its
        # consumer takes its current content in the same cycle.
        readies = [Signal(name=f"stage{k}_ready") for k in range(len(stages))]
        for k, (valid, moves) in enumerate(stages):
            down_ready = readies[k + 1] if k + 1 < len(stages) else self.o.ready
            m.d.comb += readies[k].eq(~valid | down_ready)
            with m.If(readies[k]):
                m.d.sync += valid.eq(upstream_valid)
                with m.If(upstream_valid):
                    m.d.sync += [dst.eq(src) for dst, src in moves]
            upstream_valid = valid
        m.d.comb += [
            self.thr.ready.eq(1 if self.pipeline else ~upstream_valid | self.o.ready),
            self.i.ready.eq(readies[0] & ~hold),
            self.o.valid.eq(upstream_valid),
            self.o.payload.eq(result),
            prog.drained.eq(~or_all([valid for valid, _ in stages])),
        ]
        return m

    def _serial_datapath(self, m, hold):
        """Multi-bit activations: one image at a time, each layer fed bit-serially (MSB plane
        first), hidden layers quantised by their threshold ramp; ``interval`` cycles an image."""
        L, bits = len(self.layers), self.abits
        levels = (1 << bits) - 1
        x = Signal(self.arch[0] * bits, name="x_ff")  # pixel i's code in bits [i*m, (i+1)*m)
        accept = [x.eq(self.i.payload)]
        if self.analog:  # every accepted image's index (from 0 at reset) keys its read noise
            count = Signal(32, name="images_taken")
            image = Signal(32, name="image_ff")
            accept += [image.eq(count), count.eq(count + 1)]
            for layer in self.layers:
                m.d.comb += layer.image.eq(image)
        k = Signal(range(max(2, L)), name="seq_layer")
        t = Signal(range(max(2, bits)), name="seq_plane")
        lv = Signal(range(max(2, levels)), name="seq_level")
        result = Signal(self.out_layout, name="result")
        last = self.layers[-1]
        ins = [x] + [layer.codes for layer in self.layers[:-1]]
        for i, layer in enumerate(self.layers):
            src = ins[i]
            plane = Signal(layer.n_in, name=f"plane{i}")  # bit t of every input code
            m.d.comb += [plane.eq(Cat(*(src[r * bits:(r + 1) * bits].bit_select(t, 1) for r in range(layer.n_in)))),
                         layer.x.eq(plane), layer.acc_first.eq(t == bits - 1)]
            if layer.levels > 1:
                m.d.comb += [layer.ramp_level.eq(lv), layer.ramp_first.eq(lv == 0)]
        cls = attach_output_stage(m, self.output, last)
        with m.FSM(name="seq") as fsm:
            with m.State("IDLE"):
                m.d.comb += self.i.ready.eq(~hold)
                with m.If(self.i.valid & ~hold):
                    m.d.sync += [*accept, k.eq(0), t.eq(bits - 1)]
                    m.next = "ACC"
            with m.State("ACC"):
                for i, layer in enumerate(self.layers):
                    m.d.comb += layer.acc_step.eq(k == i)
                with m.If(t != 0):
                    m.d.sync += t.eq(t - 1)
                with m.Elif(k == L - 1):
                    m.next = "DONE"
                with m.Else():
                    m.d.sync += lv.eq(0)
                    m.next = "RAMP"
            with m.State("RAMP"):
                for i, layer in enumerate(self.layers[:-1]):
                    m.d.comb += layer.ramp_step.eq(k == i)
                m.d.sync += lv.eq(lv + 1)
                with m.If(lv == levels - 1):
                    m.d.sync += [k.eq(k + 1), t.eq(bits - 1)]
                    m.next = "ACC"
            with m.State("DONE"):
                m.d.sync += [result.cls.eq(cls), result.hit.eq(last.fires.any())]
                if self.debug:
                    for i, layer in enumerate(self.layers):
                        m.d.sync += getattr(result, f"act{i}").eq(layer.codes if layer.levels > 1 else layer.fires)
                    m.d.sync += result.sums.eq(last.sums)
                m.next = "OUT"
            with m.State("OUT"):
                m.d.comb += self.o.valid.eq(1)
                with m.If(self.o.ready):
                    m.next = "IDLE"
        m.d.comb += [self.thr.ready.eq(1), self.o.payload.eq(result),
                     self.programmer.drained.eq(fsm.ongoing("IDLE"))]
