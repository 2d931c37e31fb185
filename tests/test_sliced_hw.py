"""Multi-bit chips: weight slices (all planes compute, shift-add) and bit-serial activations with
threshold ramps, generated, linted, synthesized and run on Verilator against the golden
SlicedNetwork. Every run prints its seed; ``pytest --waves`` dumps FST."""

import re

import numpy as np
import pytest

from rrambnn.errors import RrambnnError
from rrambnn.gen import device as dev
from rrambnn.gen.sliced import crop_inputs, random_sliced
from rrambnn.gen.train import TrainConfig, train
from rrambnn.fpga.build import synth_stats
from rrambnn.hw.config import ChipConfig
from rrambnn.hw.verilog import build_chip, generate, port_table
from rrambnn.hw.chip import Chip, ComputingPlanes
from rrambnn.hw.updater import WeightUpdate
from rrambnn.hw.layer import Layer
from rrambnn.hw.sram import RAM_MODULE
from rrambnn.sim.chip_sim import simulate_sliced
from test_verilog import lint


def check(res, images):
    assert res["passed"], (f"{res.get('mismatches')} mismatches (seed {res.get('seed')}), "
                           f"examples {res.get('examples', [])[:3]}; log {res['log']}; waves {res.get('waves')}")
    assert res["mismatches"] == 0 and res["images"] >= images
    assert res["interval_measured"] == res["interval_model"]


@pytest.mark.parametrize("arch, tile, wbits, abits, output, yield_, seed", [
    ("16-12-10", (8, 8), 2, 1, "priority", 1.0, 31),   # slices only: one image per clock
    ("25-17-9-5", (8, 6), 3, 2, "argmax", 0.95, 32),   # slices + 2-bit activations, stuck cells
    pytest.param("16-12-10", (16, 16), 1, 3, "priority", 1.0, 33,  # binary weights, 3-bit activations
                 marks=pytest.mark.slow),  # the default suite's budget
    pytest.param("9-11-7-4", (4, 8), 8, 8, "argmax", 1.0, 34,  # 8-bit weights and activations (255-level ramps)
                 marks=pytest.mark.slow),
])
def test_random_multi_bit_chips(arch, tile, wbits, abits, output, yield_, seed):
    rng = np.random.default_rng(seed)
    shape = tuple(int(a) for a in arch.split("-"))
    net = random_sliced(shape, wbits, abits, rng, output_mode=output)
    x = rng.integers(0, 1 << abits, (200, shape[0])).astype(np.uint8)
    print(f"arch {arch} tile {tile} w{wbits} a{abits} {output} yield {yield_} seed {seed}")
    cfg = ChipConfig(tile, False, output, debug=True, word=4, device=dev.DeviceParams(yield_, 0.0, 0, seed))
    res = simulate_sliced(net, cfg, x, seed=seed, throughput_images=100, program_commands=12)
    check(res, 600)
    assert res["programmed"] == 12
    levels = (1 << abits) - 1
    layers = len(shape) - 1
    assert res["interval_model"] == (1 if abits == 1 else layers * abits + (layers - 1) * levels + 3)


def test_random_ternary_chip():
    """Ternary weights (FINN's 2-bit: -1/0/+1) as differential pairs in two equal planes, with
    stuck cells (a stuck cell of a pair moves the weight by one step) and 2-bit activations."""
    seed = 35
    rng = np.random.default_rng(seed)
    net = random_sliced((25, 17, 9, 5), 2, 2, rng, output_mode="argmax", ternary=True)
    x = rng.integers(0, 4, (200, 25)).astype(np.uint8)
    print(f"ternary 25-17-9-5 tile 8x6 a2 argmax yield 0.95 seed {seed}")
    cfg = ChipConfig((8, 6), False, "argmax", debug=True, word=4, device=dev.DeviceParams(0.95, 0.0, 0, seed))
    chip = build_chip(net, cfg)
    assert chip.layers[0].bound == 25 * 2 * 3 and chip.variant.ternary
    assert "s1 = +1 iff code > 0" in {r[0]: r[3] for r in port_table(chip)}["read_plane"]
    res = simulate_sliced(net, cfg, x, seed=seed, throughput_images=100, program_commands=12)
    check(res, 600)
    assert res["programmed"] == 12


def test_trained_multi_bit_network_runs_bit_exact_on_mnist(mnist_train, mnist_test):
    cfg = TrainConfig(arch="144-24-16-10", crop=12, epochs=1, seed=2, wbits=2, abits=2, hidden_norm="shared")
    net, _, _ = train(cfg, mnist_train.images[:4000], mnist_train.labels[:4000], progress=False)
    x = crop_inputs(mnist_test.images[:300], 12, 2)
    res = simulate_sliced(net, ChipConfig((128, 128), debug=True), x, seed=5, throughput_images=50,
                          rewrite_thresholds=False)
    check(res, 300)


def test_multi_bit_parameters_are_validated():
    w = np.ones((4, 3), np.int8)
    with pytest.raises(ValueError, match="Layer input bits must be an integer from 1 to 8, not 9"):
        Layer(w, np.zeros(3, int), (4, 4), in_bits=9)
    with pytest.raises(ValueError, match=r"Layer thresholds must have shape \(3, 3\), not \(3,\)"):
        Layer(w, np.zeros(3, int), (4, 4), levels=3)
    with pytest.raises(ValueError, match="Layer thresholds must not decrease from level to level"):
        Layer(w, np.array([[0, 1, 0]] * 3), (4, 4), levels=3)
    with pytest.raises(ValueError, match="Weight bits must be an integer from 1 to 8, not 0"):
        Chip([w], [np.zeros(3, int)], tile=(4, 4), variant=ComputingPlanes(wbits=0))
    with pytest.raises(ValueError, match="Multi-bit activations run bit-serially: the pipeline option needs"):
        Chip([w], [np.zeros(3, int)], tile=(4, 4), variant=ComputingPlanes(abits=2), pipeline=True)
    net = random_sliced((4, 3), 2, 1, np.random.default_rng(0))
    with pytest.raises(RrambnnError, match=r"weight bits \(2\) and update bits \(3\) must be equal"):
        build_chip(net, ChipConfig((4, 4), update_bits=3))
    training = ComputingPlanes(wbits=2, update=WeightUpdate())
    assert Chip([w], [np.zeros(3, int)], tile=(4, 4), variant=training).updater.offset  # a training chip


@pytest.mark.slow
def test_multi_bit_chip_lints_and_synthesizes_with_the_ram_as_a_macro(tmp_path):
    net = random_sliced((16, 12, 10), 3, 2, np.random.default_rng(3))
    text, chip = generate(net, ChipConfig((8, 8)))
    p = tmp_path / "chip.v"
    p.write_text(text)
    r = lint(p, "rrambnn_chip")
    assert r.returncode == 0 and "%Warning" not in r.stderr, r.stderr[:3000]
    assert len(re.findall(r"^\s+rrambnn_crossbar #\(", text, re.M)) == chip.n_tiles == 3 * (4 + 4)
    assert len(re.findall(r"^\s+rrambnn_threshold_ram #\(", text, re.M)) == 1  # the hidden layer's
    assert chip.threshold_ram_bits == 3 * 12 * chip.layers[0].tw
    lean, _ = generate(net, ChipConfig((8, 8)), ram_init=False)
    assert len(lean) < len(text)
    assert synth_stats(lean)["cells"] > synth_stats(generate(random_sliced((16, 12, 10), 1, 1, np.random.default_rng(3)),
                                                             ChipConfig((8, 8)))[0])["cells"]
    q = tmp_path / "rrambnn_threshold_ram.v"
    q.write_text(RAM_MODULE)
    r = lint(q, "rrambnn_threshold_ram")
    assert r.returncode == 0 and "%Warning" not in r.stderr, r.stderr[:3000]


def test_multi_bit_weights_file_errors_are_one_line(tmp_path):
    from rrambnn.gen.netfile import load_network
    (tmp_path / "x.npz").write_bytes(b"not a zip")
    with pytest.raises(RrambnnError, match="not a readable .npz weights file"):
        load_network(tmp_path / "x.npz")
