"""Verilog emission: the Amaranth periphery plus the behavioural crossbar module."""

from __future__ import annotations

import numpy as np

from amaranth.lib import data, wiring

from rrambnn.errors import RrambnnError
from rrambnn.fileio import atomic_write
from rrambnn.gen.network import BinaryNetwork
from rrambnn.gen.sliced import SlicedNetwork
from rrambnn.hw.chip import Binary, Chip, ComputingPlanes, StoragePlanes
from rrambnn.hw.config import ChipConfig, check_size
from rrambnn.hw.crossbar import CROSSBAR_MODULE, MODULE_NAME
from rrambnn.hw.layer import SENSE_MODULE, SynthesisView, signed_range
from rrambnn.hw.programmer import Programming
from rrambnn.hw.sram import RAM_MODULE
from rrambnn.hw.updater import WeightUpdate

TOP_NAME = "rrambnn_chip"


def build_chip(net: BinaryNetwork, cfg: ChipConfig, initial_cells=None, faults=None) -> Chip:
    """The chip for ``net``: cells start as ``initial_cells`` (default: the network's weights),
    ``faults`` per layer (default: from ``cfg.device``'s yield and seed). With
    ``cfg.update_bits`` n > 1 (a :class:`StoragePlanes` chip) both are per layer (n, n_in, n_out):
    every plane's cells and faults (default: the network's weights as signs, magnitudes 0, faults
    of :func:`planes.plane_faults`). A :class:`SlicedNetwork` gets a :class:`ComputingPlanes` chip
    (see :func:`_build_sliced_chip`)."""
    from rrambnn.gen.device import device_faults
    check_size(net.arch, cfg)
    if isinstance(net, SlicedNetwork):
        return _build_sliced_chip(net, cfg.for_network(net), initial_cells, faults)
    n = cfg.update_bits
    if n > 1:
        from rrambnn.gen.planes import plane_faults
        if initial_cells is None:
            initial_cells = [np.concatenate([c[None], np.zeros((n - 1,) + c.shape, np.uint8)]) for c in net.cells]
        faults = plane_faults(net.arch, cfg.device, n) if faults is None else faults
    faults = device_faults(net.arch, cfg.device, faults)
    thresholds, analog = net.thresholds, None
    if cfg.analog:
        if n > 1:
            raise RrambnnError("analog reads are modelled for the binary chip, not with --update-bits")
        from rrambnn.gen import analog as ga
        from rrambnn.hw.analog import analog_layers
        maps = ga.chip_map(ga.held_cells(initial_cells or net.cells, faults), cfg.profile, cfg.analog_seed)
        analog, thresholds = analog_layers(maps), ga.thresholds(net)
    try:
        if n < 1:
            raise ValueError(f"Weight bits must be an integer from 1 to 12, not {n!r}")
        # the sign-forward chip's weight-update controller does not restore (cfg.restore is the training chip's)
        variant = StoragePlanes(n, WeightUpdate(cfg.step_bits)) if n > 1 else Binary()
        return Chip(net.weights, thresholds, tile=cfg.tile, pipeline=cfg.pipeline, output=cfg.output,
                    debug=cfg.debug, variant=variant, programming=_programming(cfg), device=cfg.device,
                    cells=initial_cells, faults=faults, analog=analog)
    except (TypeError, ValueError) as e:
        raise RrambnnError(str(e)) from None


def _build_sliced_chip(net: SlicedNetwork, cfg: ChipConfig, initial_cells=None, faults=None) -> Chip:
    """A multi-bit network's chip: slice b of every weight in plane b of the arrays (all planes
    compute), bit-serial layers and threshold ramps for multi-bit activations; with
    ``cfg.update_bits`` > 1 the training chip (a weight-update controller in the offset code).
    ``initial_cells`` and ``faults`` per layer are (n, n_in, n_out) like the planes of the
    online chip."""
    from rrambnn.gen.planes import plane_faults
    n = net.wbits
    thresholds, analog = net.thresholds, None
    if cfg.analog:  # analog reads: the slice arrays of chip cfg.analog_seed (rrambnn.gen.analog_coded)
        if cfg.update_bits > 1:
            raise RrambnnError("analog reads are modelled for the inference chip, not with --update-bits")
        if initial_cells is not None or faults is not None:
            raise RrambnnError("a multi-bit chip with analog reads holds the profile's chip (its own cells and faults)")
        from rrambnn.gen import analog as ga
        from rrambnn.gen import analog_coded as gc
        from rrambnn.hw.analog import coded_layers
        faults = gc.slice_faults(net, cfg.profile, cfg.analog_seed)
        initial_cells = gc.slice_cells(net, faults)
        analog = coded_layers(net, gc.chip(net, cfg.profile, cfg.analog_seed))
        thresholds = ga.thresholds(net)
    cells = initial_cells if initial_cells is not None else [net.cells(k) for k in range(len(net.weights))]
    faults = plane_faults(net.arch, cfg.device, n) if faults is None else faults
    thresholds = [t[:, 0] if t.ndim == 2 and t.shape[1] == 1 else t for t in thresholds]
    try:
        update = None
        if cfg.update_bits > 1:
            if cfg.update_bits != n:
                raise ValueError(f"A training chip computes with the weights it stores: weight bits ({n}) and "
                                 f"update bits ({cfg.update_bits}) must be equal")
            update = WeightUpdate(cfg.step_bits, cfg.restore)
        chip = Chip([np.where(c[0] > 0, 1, -1).astype(np.int8) for c in cells], thresholds, tile=cfg.tile,
                    pipeline=cfg.pipeline, output=cfg.output, debug=cfg.debug,
                    variant=ComputingPlanes(n, net.abits, update, backward=cfg.self_training,
                                            ternary=net.ternary),
                    programming=_programming(cfg), device=cfg.device, cells=cells, faults=faults, analog=analog)
        if cfg.self_training:
            from rrambnn.gen.online_nbit import rule_of
            from rrambnn.hw.trainer import SelfTrainingChip
            return SelfTrainingChip(chip, rule_of(net))
        return chip
    except (TypeError, ValueError) as e:
        raise RrambnnError(str(e)) from None


def _programming(cfg: ChipConfig) -> Programming:
    return Programming(word=cfg.word, retries=cfg.retries, pulse_cycles=cfg.pulse_cycles)


def port_table(chip: Chip) -> list[tuple[str, str, int, str]]:
    """(verilog name, direction, width, description) for every top-level port, from the signature."""
    rows = [("clk", "input", 1, "clock (rising edge)"), ("rst", "input", 1, "synchronous reset, active high")]
    for path, member, value in chip.signature.flatten(chip):
        name = "__".join(str(p) for p in path)
        width = len(value.as_value()) if isinstance(value, data.View) else len(value)
        direction = "input" if member.flow == wiring.In else "output"
        desc = _describe(path, value)
        if path == ("i", "payload") and chip.abits > 1:
            desc = f"pixel i = row*crop + col as a {chip.abits}-bit code in bits [i*{chip.abits} +: {chip.abits}]"
        if path == ("read_plane",) and chip.wbits > 1:
            desc = ("cell read: plane (plane 0 holds s0 = +1 iff code >= 0, plane 1 holds s1 = +1 iff code > 0)"
                    if chip.variant.ternary else
                    "cell read: plane (plane b holds bit b of the offset weight code)")
        if path == ("thr", "ready") and chip.abits == 1 and not chip.pipeline:
            desc = "low while a result waits to be taken (a held result never changes)"
        rows.append((name, direction, width, desc))
    return rows


def _describe(path, value) -> str:
    if isinstance(value, data.View):
        layout = value.shape()
        fields = ", ".join(f"{n}[{f.offset + f.width - 1}:{f.offset}]" for n, f in layout)
        return f"struct: {fields}"
    return {
        ("i", "payload"): "image bits, bit i = row*crop + col",
        ("i", "valid"): "image valid", ("i", "ready"): "chip accepts the image",
        ("o", "valid"): "result valid", ("o", "ready"): "consumer accepts the result",
        ("thr", "valid"): "write one threshold this cycle", ("thr", "ready"): "always 1",
        ("prog", "valid"): "programming command valid", ("prog", "ready"): "controller takes the command",
        ("failed", "valid"): "a cell the controller could not write", ("failed", "ready"): "host takes it",
        ("prog_busy",): "write-verify in progress (images held off)",
        ("prog_done",): "the last command finished", ("prog_overflow",): "failed-cell FIFO overflowed",
        ("n_set",): "SET pulses issued", ("n_reset",): "RESET pulses issued",
        ("n_failed",): "cells that could not be written",
        ("n_thr_rejected",): "threshold writes refused: no such neuron, or a value outside the layer's register",
        ("read_layer",): "cell read: layer", ("read_row",): "cell read: row",
        ("read_col",): "cell read: column", ("read_bit",): "cell read: state (1 = LRS = +1)",
        ("read_count",): "cell read: switch counter (device model)",
        ("read_plane",): "cell read: plane (0 = sign, b = magnitude bit b-1)",
        ("upd", "valid"): "weight-update command valid", ("upd", "ready"): "update controller takes it",
        ("upd_busy",): "weight update in progress (images held off)",
        ("n_updates",): "weights updated (read, recomputed, rewritten)",
        ("train", "valid"): "training sample valid", ("train", "ready"): "the chip starts the sample's step",
        ("lr_decay",): "learning-rate halvings on top of the rule's (the host's schedule: +1 every decay epochs)",
        ("train_busy",): "a training step is under way (images held off)",
        ("n_samples",): "training samples done since reset (the draws' sample counter)",
    }.get(tuple(path), "")


def header(chip: Chip, net: BinaryNetwork, cfg: ChipConfig) -> str:
    d = cfg.device
    lines = [
        f"// rrambnn {'self-training' if cfg.self_training else 'inference'} chip, generated by rrambnn; do not edit "
        f"(regenerate instead).",
        f"// network {'-'.join(map(str, chip.arch))}, output stage {cfg.output}, "
        f"{'pipelined' if cfg.pipeline else 'not pipelined'}, latency {chip.latency} cycle(s), "
        f"tile {cfg.tile[0]}x{cfg.tile[1]}, {chip.n_tiles} crossbar tile(s)",
        f"// top module {TOP_NAME}; crossbar model {MODULE_NAME} (behavioural, simulation only)",
        *([f"// online training: {cfg.update_bits}-bit sign-magnitude weights in {cfg.update_bits} planes of arrays "
           f"(plane 0 = sign), weight-update controller with {cfg.step_bits}-bit rank-1 errors"]
          if cfg.update_bits > 1 and chip.wbits == 1 else []),
        *([f"// training chip: {cfg.update_bits}-bit offset-code weights (w = 2u - {(1 << cfg.update_bits) - 1}) in "
           f"{cfg.update_bits} computing planes; weight-update controller in the offset code (u' = clip(u + d), "
           f"plane 0 written first{', a weight whose write fails restored to its old code' if cfg.restore else ''}), "
           f"{cfg.step_bits}-bit rank-1 steps, {cfg.update_bits + 1}-bit element deltas; "
           f"inputs: the binarised pixels, code 0 or 1 in each pixel's field; see rrambnn.gen.online_nbit"]
          if cfg.update_bits > 1 and chip.wbits > 1 else []),
        *([f"// self-training chip: samples (image bits, label) on train; the trainer runs the forward pass, the "
           f"output error, the backward pass by transposed reads of layer {len(chip.arch) - 2}'s arrays, the hidden "
           f"steps and the updates itself (rrambnn.hw.trainer; the rule of rrambnn.gen.online_nbit, seed "
           f"{net.meta['config']['seed']}); inference images wait while a step is under way"]
          if cfg.self_training else []),
        *([("// multi-bit inference: ternary weights -1/0/+1 (codes -2/0/2) as differential pairs in 2 computing "
            "planes (column sums added), " if chip.variant.ternary else
            f"// multi-bit inference: {chip.wbits}-bit weights as bit slices in {chip.wbits} computing planes "
            f"(column sums shifted and added), ") + f"{chip.abits}-bit activations "
           + (f"bit-serial (MSB plane first), hidden layers quantised by a {(1 << chip.abits) - 1}-level "
              f"threshold ramp over rrambnn_threshold_ram; {chip.interval} cycles per image"
              if chip.abits > 1 else "") + "; see rrambnn.gen.sliced"]
          if chip.wbits > 1 or chip.abits > 1 else []),
        f"// programming: {cfg.word}-cell command words, {cfg.retries} retries, {cfg.pulse_cycles}-cycle pulses; "
        f"device: yield {d.yield_}, pulse failure {d.p_fail}, endurance {d.endurance or 'unlimited'}, seed {d.seed}",
        *([f"// analog reads: device profile {cfg.profile.name}, chip seed {cfg.analog_seed}: column currents, "
           f"sense offsets and read noise in 2^-8 cell units (rrambnn_crossbar_analog, rrambnn_analog_sense; "
           f"rrambnn.gen.analog"
           + ("; every weight slice its own arrays, the slices' currents and squared conductances shifted and added "
              "per input plane and accumulated, the sense model's offset the merged (2^A - 1) sum_b g_b off_b and one "
              "noise draw on the accumulated squares: rrambnn.gen.analog_coded" if chip.wbits > 1 or chip.abits > 1
              else "")
           + "); thresholds and sums in the same units; the read noise is keyed by the index of "
           "each accepted image, counted from 0 at reset"] if cfg.analog else []),
        _input_line(net, chip),
        _output_line(cfg),
        _timing_line(chip, cfg),
        "// reset (rst, synchronous): empties the pipeline and the controllers and clears the n_* counters; the "
        "crossbar model's cells and switch counters are not reset; "
        + ("thresholds written at run time return to the generated values (cells keep their states)"
           if chip.abits == 1 else
           "the threshold RAMs and the cells keep their contents (run-time threshold writes survive)"),
        *(["// thr.level: which threshold of a hidden neuron's ramp, 0 = the lowest (the sum must reach level l's "
           "threshold for code l+1; levels ascend); the output layer has one threshold, level 0"]
          if chip.abits > 1 else []),
        "// threshold writes (thr): value in two's complement; per layer the register range "
        + ", ".join(f"{k}: [{signed_range(layer.tw)[0]}, {signed_range(layer.tw)[1]}]"
                    for k, layer in enumerate(chip.layers))
        + "; a write outside its layer's range or neurons is refused and counted in n_thr_rejected",
        "// ports:",
    ]
    for name, direction, width, desc in port_table(chip):
        lines.append(f"//   {direction:6} {name:16} [{width:4}]  {desc}")
    return "\n".join(lines) + "\n"


def _output_line(cfg: ChipConfig) -> str:
    """What o__payload's cls and hit mean, in particular when no output neuron fires."""
    if cfg.output == "priority":
        return ("// output (priority): cls = the lowest-index output neuron that fires, hit = some output neuron "
                "fires; hit = 0 is a reject: cls is then 0, which is no answer (count it as a wrong answer)")
    return ("// output (argmax): cls = the output neuron with the largest S - theta (lowest index on ties), always "
            "an answer; hit = some output neuron reaches its threshold (cls does not depend on hit)")


def _input_line(net, chip) -> str:
    """What i__payload holds: the crop and its offset, the binarisation, the bit order."""
    crop = getattr(net, "crop", None)
    pre = getattr(net, "preprocess", None)
    if pre is not None:
        crop, how = pre.crop, f"pixel >= {pre.threshold} is 1"
    elif crop:
        training = "rule" in (getattr(net, "meta", None) or {})  # the training chips take binarised pixels
        how = (f"pixel p as the {chip.abits}-bit code (p * {(1 << chip.abits) - 1} + 127) // 255"
               if chip.abits > 1 and not training else
               f"pixel >= 128 is 1 (the code 0 or 1 in the pixel's {chip.abits}-bit field)" if training else
               "pixel >= 128 is 1")
    else:
        return f"// input: {chip.arch[0]} raw bits (this network has no MNIST crop)"
    o = (28 - crop) // 2
    field = f"bits [i*{chip.abits} +: {chip.abits}]" if chip.abits > 1 else "bit i"
    return (f"// input: the centre {crop}x{crop} crop of a 28x28 image (rows and columns {o}..{o + crop - 1}), "
            f"{how}; pixel (row r, column c) of the crop is i = r*{crop} + c, in {field} of i__payload")


def _timing_line(chip, cfg) -> str:
    if chip.abits > 1:
        return (f"// timing: one image at a time, {chip.interval} cycles each; o__payload is registered and held "
                f"until taken; i__ready, o__valid are registered state, thr__ready is 1")
    if cfg.pipeline:
        return (f"// timing: one image per clock, result {chip.latency} cycles after the image is taken; o__payload "
                f"and o__valid are registers; i__ready is combinational from o__ready")
    return ("// timing: one image per clock, result 1 cycle after the image is taken; o__valid is a register, "
            "o__payload is combinational from the input flip-flops and the threshold registers; i__ready and "
            "thr__ready are combinational from o__ready")


# Yosys's Verilog writer (behind Amaranth) compares against narrower constants, keeps
# named-but-unused wires (debug names), initialises regs at declaration and writes
# case statements after a default assignment instead of a default arm, and writes each
# one-hot multiplexer ($pmux) as a function whose casez arms overlap only for selects that
# are never more than one-hot (it marks them parallel_case): legal Verilog that
# `verilator -Wall` reports as style warnings. These waivers cover only
# the Amaranth-emitted modules; the crossbar model after them is linted without any.
YOSYS_STYLE_WAIVERS = ("DECLFILENAME", "PROCASSINIT", "UNUSEDSIGNAL", "WIDTHEXPAND", "WIDTHTRUNC", "UNSIGNED",
                       "CASEINCOMPLETE", "CASEOVERLAP")


def to_verilog(component, name: str, platform=None) -> str:
    """Amaranth -> Verilog through Yosys, as ``amaranth.back.verilog.convert`` does it but with
    the decision logic as multiplexers (``proc`` without ``-nomux``): combinational logic becomes
    continuous assignments. Every simulator evaluates those at time 0 and only on real changes;
    Amaranth's ``always @*`` processes (a default, then overrides) need a trigger variable that
    an IEEE 1800 simulator such as Icarus Verilog never fires (outputs stay X), and their
    intermediate assignments raise events that can chase each other forever around paths that
    are not loops (Icarus hung at the first programming command)."""
    from amaranth._toolchain.yosys import find_yosys  # the Yosys amaranth.back.verilog runs
    from amaranth.back import rtlil
    text = rtlil.convert(component, name=name, emit_src=False, platform=platform)
    yosys = find_yosys(lambda ver: ver >= (0, 40))
    script = [f"read_rtlil <<rtlil\n{text}\nrtlil", "proc -norom", "memory_collect", "write_verilog"]
    return yosys.run(["-q", "-"], "\n".join(script), ignore_warnings=True)


def generate(net: BinaryNetwork, cfg: ChipConfig, initial_cells=None, faults=None, *,
             ram_init: bool = True, analog_sense: bool = False) -> tuple[str, Chip]:
    """The chip's Verilog. ``ram_init=False``: threshold RAMs (multi-bit activations) without
    initial contents, for :func:`rrambnn.fpga.build.synth_stats` (the RAM is a black box there).
    ``analog_sense``: the cost view, every layer's sense stage a black box
    (:data:`rrambnn.hw.layer.SENSE_MODULE`): Verilog for synthesis only, not for simulation."""
    chip = build_chip(net, cfg, initial_cells, faults)
    try:
        body = to_verilog(chip, TOP_NAME, SynthesisView(analog_sense=analog_sense, ram_init=ram_init))
    except RecursionError:
        raise RrambnnError(f"the design is too large for the generator: {chip.n_tiles} crossbar tiles of "
                           f"{cfg.tile[0]}x{cfg.tile[1]} (choose larger tiles or a smaller network)") from None
    off = "".join(f"/* verilator lint_off {w} */\n" for w in YOSYS_STYLE_WAIVERS)
    on = "".join(f"/* verilator lint_on {w} */\n" for w in YOSYS_STYLE_WAIVERS)
    ram = RAM_MODULE if chip.threshold_ram_bits else ""
    sense = SENSE_MODULE if analog_sense else ""
    if cfg.analog:
        from rrambnn.hw.analog import ANALOG_CROSSBAR_MODULE, SENSE_MODEL_MODULE
        sense += ANALOG_CROSSBAR_MODULE + SENSE_MODEL_MODULE
    return header(chip, net, cfg) + off + body + on + CROSSBAR_MODULE + ram + sense, chip


def write_verilog(net: BinaryNetwork, cfg: ChipConfig, out, initial_cells=None, faults=None) -> Chip:
    """Generate and write atomically (an existing file is replaced only when generation succeeded)."""
    text, chip = generate(net, cfg, initial_cells, faults)
    atomic_write(out, lambda f: f.write(text.encode()))
    return chip
