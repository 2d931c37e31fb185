"""Board builds: PLL settings, report parsing, CLI errors, the host tool over a real serial
device (a pseudo-terminal with a board double behind it), and place and route with the
YoWASP toolchain: the iCEBreaker in the slow set CI runs (markers ``fpga`` and ``slow``), the ULX3S 85F
by hand (marker ``ulx3s``: tens of minutes a build)."""

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from rrambnn.errors import RrambnnError
from rrambnn.fpga.build import yosys_cells
from rrambnn.fpga.pll import ecp5_pll, ice40_pll


def run_cli(*args, timeout=3000):
    return subprocess.run([sys.executable, "-m", "rrambnn", *args], capture_output=True, text=True, timeout=timeout)


def test_pll_settings():
    s = ice40_pll(12e6, 27e6)
    p = s.params
    assert s.f_out == 12e6 * (p["DIVF"] + 1) / ((p["DIVR"] + 1) * 2 ** p["DIVQ"]) == 27e6
    assert 533e6 <= 12e6 / (p["DIVR"] + 1) * (p["DIVF"] + 1) <= 1066e6
    assert ice40_pll(12e6, 48e6).params == {"FEEDBACK_PATH": "SIMPLE", "DIVR": 0, "DIVF": 63, "DIVQ": 4,
                                            "FILTER_RANGE": 1}  # icepll -i 12 -o 48
    e = ecp5_pll(25e6, 100e6)
    q = e.params
    assert e.f_out == 25e6 * q["CLKFB_DIV"] / q["CLKI_DIV"] == 100e6
    assert 400e6 <= e.f_out * q["CLKOP_DIV"] <= 800e6
    with pytest.raises(RrambnnError, match="the iCE40 PLL cannot make 500 MHz from 12 MHz"):
        ice40_pll(12e6, 500e6)


def test_yosys_stat_parsing():
    rpt = """... Printing statistics.

=== top ===
       46 cells
        4   SB_IO
       23   SB_RAM40_4K
     5859 submodules
      267   SB_CARRY
      761   SB_DFF
     3146   SB_LUT4

=== design hierarchy ===
       46 top
"""
    assert yosys_cells(rpt) == {"SB_IO": 4, "SB_RAM40_4K": 23, "SB_CARRY": 267, "SB_DFF": 761, "SB_LUT4": 3146}


def test_board_default_folds_and_clocks():
    """The ULX3S builds the event-driven twin by default (32/24/16 row lanes at the PLL's 71.875
    MHz) and the folded one when lanes or chunks are given (50 MHz); the iCEBreaker is folded."""
    from rrambnn.fpga.twin import emulation_design
    from rrambnn.fpga.build import board_spec
    from rrambnn.gen.network import BinaryNetwork
    from rrambnn.weights import shipped
    net = BinaryNetwork.load(shipped())
    ulx3s, ice = board_spec("ulx3s-85f"), board_spec("icebreaker")
    twin, link = emulation_design(net, ulx3s)
    assert twin.event and twin.fold() == [(32, 0), (24, 0), (16, 0)] and link.clock_hz == 71_875_000
    twin, link = emulation_design(net, ulx3s, lanes=[4, 8, 10])
    assert not twin.event and twin.fold() == [(4, 400), (8, 128), (10, 128)] and link.clock_hz == 50_000_000
    twin, link = emulation_design(net, ulx3s, rows=[16, 16, 16], f_want=60e6)
    assert twin.fold() == [(16, 0)] * 3 and link.clock_hz == 60_000_000
    twin, link = emulation_design(net, ice)
    assert not twin.event and twin.fold() == [(1, 200), (1, 64), (1, 16)] and link.clock_hz == 27_000_000
    small = BinaryNetwork.load(shipped("bnn-400-200-10.npz"))  # two layers: the ULX3S's rows do not apply
    twin, _ = emulation_design(small, ulx3s)
    assert not twin.event


@pytest.mark.parametrize("args, message", [
    (["--board", "icebreaker", "--lanes", "1,2"], "--lanes needs one value per layer (3), not 2"),
    (["--board", "icebreaker", "--chunks", "a"], "--chunks must be integers separated by commas, not 'a'"),
    (["--board", "icebreaker", "--lanes", "200"], "Lanes must be an integer from 1 to the layer's 128 outputs"),
    (["--board", "icebreaker", "--freq", "900"], "--freq must be from 1 to 400 MHz, not 900.0"),
    (["--board", "icebreaker", "--weights", "nope.npz"], "nope.npz"),
    (["--board", "ulx3s-85f", "--rows", "32", "--lanes", "4"], "--rows (event-driven layers) excludes --lanes"),
    (["--board", "ulx3s-85f", "--rows", "0,16,16"], "Row lanes must be an integer from 1 to the layer's 400 inputs"),
])
def test_fpga_command_bad_input_is_one_clear_line(args, message, tmp_path):
    r = run_cli("fpga", *args, "--out", str(tmp_path / "b"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


class PtyBoard:
    """A board double behind a pseudo-terminal: the device path works as ``--port``."""

    def __init__(self, double):
        import pty
        self.master, slave = pty.openpty()
        import tty
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        self.slave = slave
        self.double = double
        self.stop = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        import select
        while not self.stop:
            r, _, _ = select.select([self.master], [], [], 0.05)
            if r:
                self.double.write(os.read(self.master, 4096))
                out = self.double.read(1 << 20)
                if out:
                    os.write(self.master, out)

    def close(self):
        self.stop = True
        self.thread.join()
        os.close(self.master)
        os.close(self.slave)


def test_board_commands_over_a_serial_device(mnist_test, tmp_path):
    """`rrambnn board info/program/classify/bench --port` end to end through pyserial."""
    from test_host import BoardDouble

    from rrambnn.gen.network import BinaryNetwork
    from rrambnn.weights import shipped
    net = BinaryNetwork.load(shipped())
    board = PtyBoard(BoardDouble(net, [1, 1, 1], [200, 64, 16]))
    try:
        r = run_cli("board", "info", "--port", board.path, "--json", timeout=60)
        assert r.returncode == 0, r.stderr
        info = json.loads(r.stdout)
        assert info["arch"] == [400, 128, 128, 10] and info["chunks"] == [200, 64, 16]
        r = run_cli("board", "classify", "--port", board.path, "--images", "300", "--json", timeout=120)
        assert r.returncode == 0, r.stderr
        res = json.loads(r.stdout)
        assert res["images"] == 300 and res["differ_from_golden"] == 0 and res["accuracy"] > 0.9
        r = run_cli("board", "bench", "--port", board.path, "--repeat", "1000", "--json", timeout=60)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["matches_golden"]
        other = tmp_path / "other.npz"
        rng = np.random.default_rng(1)
        from rrambnn.gen.network import random_network
        n = random_network("400-64-10", rng)  # MNIST-shaped (crop 20), another shape than the board's
        from rrambnn.gen.mnist import Preprocess
        BinaryNetwork(n.weights, n.thresholds, Preprocess(20), "priority", {}).save(other)
        r = run_cli("board", "classify", "--port", board.path, "--weights", str(other), timeout=60)
        assert r.returncode == 2 and "the board runs a 400-128-128-10 network, the weights are 400-64-10" in r.stderr
    finally:
        board.close()
    r = run_cli("board", "info", "--port", "/dev/nonexistent-rrambnn", timeout=60)
    assert r.returncode == 2 and "cannot open serial port /dev/nonexistent-rrambnn" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def check_report(report: dict, board: str, variant: str):
    assert report["board"] == board and report["variant"] == variant and report["timing_met"]
    assert report["fmax_mhz"] >= report["constraint_mhz"]
    assert Path(report["bitstream"]).stat().st_size > 50_000
    assert 0 < report["luts"] and 0 < report["ffs"] and report["logic_cells"] <= report["logic_cells_available"]
    assert json.loads(Path(report["report"]).read_text())["fmax_mhz"] == report["fmax_mhz"]


@pytest.mark.fpga
@pytest.mark.slow
def test_icebreaker_emulation_builds_and_meets_the_target(tmp_path):
    """The whole classifier on the UP5K: fits, meets its 27 MHz clock, >= 100,000 images/s."""
    r = run_cli("fpga", "--board", "icebreaker", "--variant", "emulation", "--out", str(tmp_path), "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads(r.stdout)
    check_report(report, "icebreaker", "emulation")
    assert report["bram"] <= 30 and report["images_per_s"] >= 100_000
    assert report["interval_cycles"] == 258 and report["lanes"] == [1, 1, 1]


@pytest.mark.fpga
@pytest.mark.slow
def test_icebreaker_macro_builds_and_timing_failure_is_loud(tmp_path):
    r = run_cli("fpga", "--board", "icebreaker", "--variant", "macro", "--out", str(tmp_path / "ok"), "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    check_report(json.loads(r.stdout), "icebreaker", "macro")
    # the same design at a clock it cannot reach: one error line, the report kept
    r = run_cli("fpga", "--board", "icebreaker", "--variant", "macro", "--freq", "120", "--out",
                str(tmp_path / "fast"))
    assert r.returncode == 2 and "timing not met on icebreaker" in r.stderr, r.stderr[-2000:]
    assert len(r.stderr.strip().splitlines()) == 1
    report = json.loads((tmp_path / "fast" / "rrambnn_macro-report.json").read_text())
    assert report["timing_met"] is False and report["fmax_mhz"] < 120


@pytest.mark.fpga
@pytest.mark.slow
@pytest.mark.ulx3s
@pytest.mark.parametrize("variant", ["emulation", "macro"])
def test_ulx3s_builds(variant, tmp_path):
    r = run_cli("fpga", "--board", "ulx3s-85f", "--variant", variant, "--out", str(tmp_path), "--json", timeout=5400)
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads(r.stdout)
    check_report(report, "ulx3s-85f", variant)
    if variant == "emulation":  # the event-driven default and the ECP5 target, paced on the MNIST test set
        assert report["rows"] == [32, 24, 16] and report["interval_images"] == 10000
        assert report["clock_mhz"] == 71.875 and report["images_per_s"] >= 12_300_000
        assert report["worst_interval_cycles"] == 13
