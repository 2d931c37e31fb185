import re
import subprocess

import pytest

from rrambnn.errors import RrambnnError
from rrambnn.gen.network import BinaryNetwork, random_network
from rrambnn.fpga.build import synth_stats
from rrambnn.hw.config import ChipConfig
from rrambnn.hw.verilog import generate, port_table
from rrambnn.hw.crossbar import CROSSBAR_MODULE
from rrambnn.sim.runner import verilator_env
from rrambnn.weights import shipped


def lint(path, top, *extra):
    root = verilator_env()
    return subprocess.run([str(root / "bin" / "verilator"), "--lint-only", "-Wall", str(path),
                           "--top-module", top, *extra], capture_output=True, text=True)


@pytest.mark.parametrize("pipeline, output", [(False, "priority"), (True, "argmax")])
def test_shipped_verilog_lints_clean(tmp_path, pipeline, output):
    text, chip = generate(BinaryNetwork.load(shipped()), ChipConfig((128, 128), pipeline, output))
    p = tmp_path / "rrambnn_chip.v"
    p.write_text(text)
    r = lint(p, "rrambnn_chip")
    assert r.returncode == 0 and "%Warning" not in r.stderr, r.stderr[:3000]
    assert "module rrambnn_chip" in text and "module rrambnn_crossbar" in text
    assert len(re.findall(r"^\s+rrambnn_crossbar #\(", text, re.M)) == 6  # the 6 arrays of the reference chip
    for name, direction, width, _ in port_table(chip):
        assert f"{direction} " in text and name in text.split("*/", 1)[1]


def test_crossbar_model_lints_without_waivers(tmp_path):
    p = tmp_path / "rrambnn_crossbar.v"
    p.write_text(CROSSBAR_MODULE)
    r = lint(p, "rrambnn_crossbar")
    assert r.returncode == 0 and "%Warning" not in r.stderr, r.stderr[:3000]


def test_port_table_lists_every_port(rng):
    net = random_network("16-8-3", rng)
    text, chip = generate(net, ChipConfig((8, 8), False, "priority", True))
    names = [row[0] for row in port_table(chip)]
    assert names[:2] == ["clk", "rst"]
    assert {"i__payload", "i__valid", "i__ready", "o__payload", "o__valid", "o__ready",
            "thr__payload", "prog__payload", "failed__payload", "n_set", "read_bit", "read_count"} <= set(names)
    widths = dict((r[0], r[2]) for r in port_table(chip))
    assert widths["i__payload"] == 16 and widths["o__payload"] == chip.out_layout.size


def test_small_design_synthesizes(rng):
    net = random_network("40-20-10", rng)
    text, _ = generate(net, ChipConfig((16, 16), True, "argmax"))
    stats = synth_stats(text)
    assert stats["cells"] > 100
    assert any("DFF" in t for t in stats["cells_by_type"])


def test_synthesis_failure_is_one_clear_error():
    with pytest.raises(RrambnnError, match="Yosys synthesis failed"):
        synth_stats("module rrambnn_chip(input a); this is not verilog endmodule\n")


@pytest.mark.slow
def test_reference_periphery_synthesizes():
    text, _ = generate(BinaryNetwork.load(shipped()), ChipConfig((128, 128), True, "priority"))
    stats = synth_stats(text)
    assert stats["cells"] > 10000


def test_online_chip_lints_and_synthesizes(tmp_path, rng):
    """Multi-bit weights: storage-only arrays per magnitude plane, the update port, lint-clean."""
    net = random_network("20-12-5", rng)
    text, chip = generate(net, ChipConfig((8, 8), False, "priority", update_bits=3, step_bits=3))
    p = tmp_path / "rrambnn_chip.v"
    p.write_text(text)
    r = lint(p, "rrambnn_chip")
    assert r.returncode == 0 and "%Warning" not in r.stderr, r.stderr[:3000]
    assert chip.n_tiles == 3 * (3 * 2 + 2 * 1)
    assert len(re.findall(r"^\s+rrambnn_crossbar #\(", text, re.M)) == chip.n_tiles
    assert text.count(".COMPUTE(32'd0)") == 2 * (3 * 2 + 2 * 1)  # magnitude planes do not compute
    names = {row[0]: row[2] for row in port_table(chip)}
    assert {"upd__payload", "upd__valid", "upd__ready", "upd_busy", "n_updates", "read_plane"} <= set(names)
    assert "plane" in dict((r[0], r[3]) for r in port_table(chip))["prog__payload"]
    stats = synth_stats(text)
    assert stats["cells"] > 100
