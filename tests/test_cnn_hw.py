"""The CNN chip (rrambnn.hw.cnn): small random CNNs (odd sizes, padding, stride 2, pooling, tiles
split in rows and in columns, several positions per step) generated, linted, synthesized and run
on Verilator against the golden CnnNetwork: class, hit, every activation map and the last column
sums of every image under random idles and backpressure, and cycles per image against the
formula. The shipped LeNet-5 on all 10,000 test images is in the slow set. Seeds are printed."""

import subprocess
import sys

import numpy as np
import pytest

from rrambnn.errors import RrambnnError
from rrambnn.gen.cnn import CnnNetwork, random_cnn
from rrambnn.hw.cnn import CnnChip, generate_cnn, make_chip
from rrambnn.sim.chip_sim import simulate_cnn
from test_sliced_hw import check
from test_verilog import lint


@pytest.mark.parametrize("spec, wbits, abits, tile, positions, output, seed", [
    # stride 2 with padding, pooling, a 9-row kernel column split over 3 row tiles and 5 channels
    # over 2 column tiles; two positions per step (a multiple of the pooling window)
    ("i9x7x1-c3x5s2p1-p2-d6-d4", 2, 2, (4, 3), 2, "priority", 41),
    # two channels in, a second convolution of stride 2 reading a padded pooled map; 3-bit codes;
    # 4 positions per step on a 4-wide map (all columns at once); binary weights
    pytest.param("i8x8x2-c3x4p1-p2-c2x3s2-d5", 1, 3, (8, 2), 4, "argmax", 42,
                 marks=pytest.mark.slow),  # the default suite's budget
    # binary activations (one comparator), odd map, pooling 3 dropping a row and a column,
    # time-multiplexed (one position), 3-bit weights
    ("i11x10x1-c3x3-p3-d7-d3", 3, 1, (5, 2), 1, "priority", 43),
])
def test_random_cnn_chips(spec, wbits, abits, tile, positions, output, seed):
    rng = np.random.default_rng(seed)
    net = random_cnn(spec, wbits, abits, rng, output_mode=output)
    x = rng.integers(0, 1 << abits, (150,) + net.spec.input).astype(np.uint8)
    print(f"spec {spec} w{wbits} a{abits} tile {tile} positions {positions} {output} seed {seed}")
    res = simulate_cnn(net, x, tile=tile, positions=positions, seed=seed, throughput_images=40)
    check(res, 190)
    chip = CnnChip(net, tile=tile, positions=positions, output=output)
    steps = [s.steps for s in chip.steps]
    assert res["interval_model"] == net.spec.input[0] + sum(steps) * (abits + 1 if abits > 1 else 1) + 1
    assert res["compared"].startswith("class, hit, every layer's activation map")
    labels = np.array(res["hw_labels"])
    assert (labels == net.classify(x[:150], output)).all()


def test_testbench_catches_a_wrong_chip(tmp_path):
    """The scoreboard can fail: a chip built from a network with one weight code changed, checked
    against the original network, shows mismatches."""
    rng = np.random.default_rng(44)
    net = random_cnn("i7x7x1-c3x4p1-p2-d5", 2, 2, rng, output_mode="argmax")
    wrong = CnnNetwork(net.spec, [w.copy() for w in net.weights], [t.copy() for t in net.thresholds],
                       net.wbits, net.abits, net.cobits, net.output_mode)
    wrong.weights[0][4, 1] = -wrong.weights[0][4, 1]  # the centre tap of channel 1
    x = rng.integers(0, 4, (60,) + net.spec.input).astype(np.uint8)
    res = simulate_cnn(wrong, x, tile=(16, 4), positions=1, seed=44, throughput_images=10, golden=net)
    assert not res["passed"] and res["mismatches"] > 0
    assert any("act0" in e["fields"] for e in res["examples"])


def test_cnn_verilog_lints_clean_and_synthesizes(tmp_path):
    from rrambnn.fpga.build import synth_stats
    rng = np.random.default_rng(45)
    net = random_cnn("i9x7x1-c3x5s2p1-p2-d6-d4", 2, 2, rng)
    text = generate_cnn(CnnChip(net, tile=(4, 3), positions=2))
    p = tmp_path / "rrambnn_chip.v"
    p.write_text(text)
    r = lint(p, "rrambnn_chip")
    assert r.returncode == 0 and "%Warning" not in r.stderr, r.stderr[:3000]
    stats = synth_stats(text)
    assert stats["cells"] > 0 and any("rrambnn_crossbar" in k for k in stats["cells_by_type"])


def test_cycles_per_image_formula():
    """LeNet-5 at 4 bits: 28 rows in, conv1 28 x ceil(28/P) steps, conv2 10 x ceil(10/P), three dense
    steps, 5 cycles each, one hand-over cycle."""
    net = CnnNetwork.load("weights/lenet5-4-4-4-4.npz")
    for p, want in ((1, 28 + (784 + 100 + 3) * 5 + 1), (4, 28 + (28 * 7 + 10 * 3 + 3) * 5 + 1),
                    (28, 28 + (28 + 10 + 3) * 5 + 1)):
        assert CnnChip(net, positions=p).interval == want


@pytest.mark.parametrize("kwargs, message", [
    ({"positions": 0}, "Positions per step must be an integer from 1 to 64, not 0"),
    ({"positions": 3}, "3 positions per step and p2 pooling after c5x6p2: the positions must be a multiple or a "
                       "divisor of the pooling window"),
    ({"tile": (2, 1), "positions": 2}, "needs up to 245,904 crossbar tiles of 2x1 .* at most 4,096"),
    ({"tile": "3y3"}, "Tile size must look like 128x128, not '3y3'"),
    ({"output": "max"}, "Output stage must be 'priority' or 'argmax', not 'max'"),
])
def test_cnn_chip_parameters_refused(kwargs, message):
    net = CnnNetwork.load("weights/lenet5-4-4-4-4.npz")
    with pytest.raises(RrambnnError, match=message):
        make_chip(net, **kwargs)


@pytest.mark.parametrize("spec, message", [
    ("i8-p2-c3x2-d3", "the CNN chip pools the output of a convolution; i8-p2-c3x2-d3 pools its input image"),
    ("i12-c3x2-p2-p2-d3", "the CNN chip pools once after a convolution; .* has p2-p2 .*write one p4"),
])
def test_cnn_chip_refuses_pooling_it_does_not_have(spec, message):
    net = random_cnn(spec, 1, 1, np.random.default_rng(1))
    with pytest.raises(RrambnnError, match=message):
        make_chip(net)


def test_cli_verilog_of_a_cnn_and_refused_options(tmp_path):
    net = random_cnn("i9x7x1-c3x5s2p1-p2-d6-d4", 2, 2, np.random.default_rng(46))
    w = tmp_path / "cnn.npz"
    net.save(w)
    out = tmp_path / "cnn.v"

    def cli(*a):
        return subprocess.run([sys.executable, "-m", "rrambnn", *a], capture_output=True, text=True)
    r = cli("verilog", "--weights", str(w), "--out", str(out), "--positions", "2")
    assert r.returncode == 0, r.stderr
    assert "the CNN chip i9x7x1-c3x5s2p1-p2-d6-d4" in r.stdout and "46 cycles per image" in r.stdout
    assert "module rrambnn_chip" in out.read_text()
    before = out.read_bytes()
    for args, message in ((("--pipeline",), "--pipeline does not apply to the CNN chip"),
                          (("--positions", "3"), "3 positions per step and p2 pooling")):
        r = cli("verilog", "--weights", str(w), "--out", str(out), *args)
        assert r.returncode == 2 and message in r.stderr and r.stderr.count("\n") == 1, r.stderr
        assert out.read_bytes() == before  # nothing written is lost
    r = cli("verilog", "--out", str(out), "--positions", "2")
    assert r.returncode == 2 and "--positions applies to CNN chips" in r.stderr


@pytest.mark.slow
@pytest.mark.parametrize("weights", ["weights/lenet5-4-4-4-4.npz", "weights/lenet5-2-2-1-4.npz"])
def test_shipped_lenet5_chip_on_all_test_images(weights, mnist_test):
    """`rrambnn sim` on the shipped LeNet-5s: all 10,000 test images in both output stages, every
    activation map compared, hardware accuracy equal to the golden model's."""
    from rrambnn.sim.checks import check_modes
    net = CnnNetwork.load(weights)
    x, labels = net.inputs(mnist_test.images), mnist_test.labels
    rep = check_modes(net, x, labels, ["priority", "argmax"], positions=4, seed=7)
    for mode, r in rep["modes"].items():
        assert r["passed"] and r["mismatches"] == 0 and r["agreement"] == 1.0, (mode, r)
        assert r["hw_accuracy"] == r["golden_accuracy"]


def _cli(*a):
    return subprocess.run([sys.executable, "-m", "rrambnn", *a], capture_output=True, text=True)


def test_fpga_of_a_cnn_refuses_the_binary_chips_options(tmp_path):
    net = random_cnn("i9x7x1-c3x5s2p1-p2-d6-d4", 2, 2, np.random.default_rng(46))
    w = tmp_path / "cnn.npz"
    net.save(w)
    for args, message in ((("--lanes", "2"), "--lanes belongs to the binary chips' bitstreams"),
                          (("--baud", "9600"), "--baud belongs to the binary chips' bitstreams"),
                          (("--variant", "macro"), "--variant macro does not apply to a CNN weights file"),
                          (("--self-training",), "--self-training does not apply to a CNN weights file"),
                          (("--positions", "3"), "3 positions per step and p2 pooling")):
        r = _cli("fpga", "--board", "ulx3s-85f", "--weights", str(w), "--out", str(tmp_path / "b"), *args)
        assert r.returncode == 2 and message in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert not (tmp_path / "b").exists()
    for args, flag in ((("--positions", "2"), "--positions"), (("--tile", "64x64"), "--tile"),
                       (("--weights", "weights/bnn-400-128-128-10.npz", "--tile", "64x64"), "--tile")):
        r = _cli("fpga", "--board", "ulx3s-85f", *args, "--out", str(tmp_path / "b"))
        assert r.returncode == 2 and f"{flag} applies to CNN chips" in r.stderr and r.stderr.count("\n") == 1
    assert not (tmp_path / "b").exists()


@pytest.mark.slow
@pytest.mark.fpga
def test_fpga_of_a_cnn_reports_its_periphery_and_why_no_bitstream(tmp_path):
    """A small CNN chip's periphery synthesized for the ECP5; no bitstream, and the one error line
    and the report say why and what would make one."""
    import json
    net = random_cnn("i9x7x1-c3x5s2p1-p2-d6-d4", 2, 2, np.random.default_rng(46))
    w = tmp_path / "cnn.npz"
    net.save(w)
    r = _cli("fpga", "--board", "ulx3s-85f", "--weights", str(w), "--positions", "2", "--out", str(tmp_path / "b"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "no bitstream for the CNN chip on ulx3s-85f" in r.stderr
    assert "the crossbar arrays have no FPGA emulation" in r.stderr
    report = json.loads((tmp_path / "b" / "cnn-report.json").read_text())
    chip = make_chip(net, positions=2)
    assert report["bitstream"] is None and report["periphery_fits"] and report["periphery"]["luts"] > 50
    assert report["cycles_per_image"] == chip.interval == 46 and report["map_bits"] == chip.map_bits
    assert report["network_weight_bits"] == 2 * (9 * 5 + 20 * 6 + 6 * 4)  # 2x2x5 pooled: 20 inputs
    assert report["array_cells"] == 2 * (2 * 9 * 5 + 20 * 6 + 6 * 4)  # two copies of the kernels
    p = report["periphery"]
    assert p["lut_sites"] == p["luts"] + 2 * p["carries"]  # an ECP5 carry cell takes two LUT4 sites
    widths = [copies[0].tw for copies in chip.layers]
    assert report["threshold_bits"] == sum(t.size * w for t, w in zip(net.thresholds, widths))
    assert "LUT4" in r.stdout and "a folded CNN twin, not built" in r.stdout
