"""Analog reads of multi-bit and convolutional networks (gen/analog_coded.py): the ideal profile
is the digital twin, the merged read is the planes' and slices' reads shifted and added, the
noise has the summed cells' sigma and does not depend on batching, calibration refits every
level; and eval / sweep variation take such networks."""

import json
import math
import re

import numpy as np
import pytest
from conftest import one_error_line, rr

from rrambnn.gen import analog as A
from rrambnn.gen import analog_coded as C
from rrambnn.gen.cnn import random_cnn
from rrambnn.gen.sliced import bit_planes, random_sliced, slice_gains, weight_slices


def _cnn(seed=1, wbits=3, abits=2):
    rng = np.random.default_rng(seed)
    net = random_cnn("i11-c3x5s2p1-p2-c2x7-d9-d10", wbits, abits, rng)
    return net, rng.integers(0, (1 << abits), size=(300, 11, 11, 1)).astype(np.uint8)


def _sliced(ternary, seed=2):
    rng = np.random.default_rng(seed)
    net = random_sliced((25, 9, 10), 2 if ternary else 3, 2, rng, ternary=ternary)
    return net, rng.integers(0, 4, size=(200, 25)).astype(np.uint8)


@pytest.mark.parametrize("which", ["cnn", "sliced", "ternary"])
def test_ideal_profile_is_the_digital_network(which):
    net, x = _cnn() if which == "cnn" else _sliced(which == "ternary")
    chip = C.chip(net, A.load_profile("ideal"), 5)
    for got, want in zip(C.forward(net, x, chip), net.forward(x, trace=False)):
        assert np.array_equal(got, want)
    theta = C.calibrate(net, chip, x[:100])
    assert all(np.array_equal(t, u) for t, u in zip(theta, A.thresholds(net)))


def test_merged_read_is_the_planes_and_slices_shifted_and_added():
    """x @ (sum_b g_b q_b) + offsets equals sum_a 2^a sum_b g_b (plane_a @ q_b + off_b), with
    q_b and off_b the slice arrays of the binary chip map (each slice its own devices)."""
    net, x = _sliced(False)
    p = A.load_profile("harsh").scaled(read_noise=0.0, yield_=1.0)
    chip = C.chip(net, p, 7)
    n = net.wbits
    m = A.chip_map([(s > 0).astype(np.uint8) for w in net.weights for s in weight_slices(w, n)], p, 7)
    got = C.read(x, chip, 0, np.arange(len(x)), net.abits)
    want = sum((1 << a) * g * (plane.astype(np.int64) @ m.layers[b].q)
               for a, plane in enumerate(bit_planes(x, net.abits)) for b, g in enumerate(slice_gains(n)))
    offsets = ((1 << net.abits) - 1) * sum(g * m.layers[b].offset for b, g in enumerate(slice_gains(n)))
    assert np.array_equal(got, want + offsets)  # every slice column's offset in each plane's conversion


def test_read_noise_has_the_sigma_of_every_plane_and_slice_read():
    """One draw per column and read: over many reads of one input, the spread is sigma_r *
    sqrt(sum_a 4^a sum_b g_b^2 plane_a @ g2_b), within 5%."""
    net, x = _sliced(False)
    p = A.load_profile("mild").scaled(offset=0.0)
    chip = C.chip(net, p, 3)
    reads = 4000
    s = C.read(np.repeat(x[:1], reads, axis=0), chip, 0, np.arange(reads), net.abits)
    m = A.chip_map([(s_ > 0).astype(np.uint8) for w in net.weights for s_ in weight_slices(w, net.wbits)], p, 3)
    var = sum((4 ** a) * g * g * (plane[0].astype(float) @ (m.layers[b].g2 / float(1 << (2 * A.FRAC))))
              for a, plane in enumerate(bit_planes(x[:1], net.abits)) for b, g in enumerate(slice_gains(net.wbits)))
    want = p.read_noise * np.sqrt(var) * (1 << A.FRAC)
    assert np.allclose(s.std(axis=0), want, rtol=0.05)
    quiet = C.read(x[:1], C.CodedChip(p.scaled(read_noise=0.0), 3, chip.q, chip.g2, chip.offset), 0,
                   np.arange(1), net.abits)[0]
    assert (np.abs(s.mean(axis=0) - quiet) < 3 * want / math.sqrt(reads) + 1).all()


def test_a_cnn_chip_is_its_seed_and_batching_changes_nothing():
    net, x = _cnn()
    p = A.load_profile("realistic")
    a = C.forward(net, x, C.chip(net, p, 4))
    b = C.forward(net, x, C.chip(net, p, 4), chunk=37)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    other = C.forward(net, x, C.chip(net, p, 5))
    assert not all(np.array_equal(u, v) for u, v in zip(a, other))
    keys = C.read_keys(np.arange(3), 4)  # every (image, position) its own key
    assert len(set(keys.tolist())) == 12 and np.array_equal(C.read_keys(np.arange(3), 1), np.arange(3))


def test_calibration_refits_every_level_and_wins_back_agreement():
    """On a harsh chip calibration moves thresholds in every layer (hidden levels kept
    non-decreasing), and on inputs it was not fitted on the chip's priority answers agree with
    the digital network's far more often, more than with only the output layer refitted (the
    fit is of each neuron's firing, what the priority stage reads)."""
    net, x = _cnn(seed=3, wbits=2, abits=2)
    fit, held = x[:150], x[150:]
    chip = C.chip(net, A.load_profile("harsh"), 1)
    ideal = net.forward(held, trace=False)
    theta = C.calibrate(net, chip, fit)
    programmed = A.thresholds(net)
    assert all((np.diff(t, axis=1) >= 0).all() for t in theta[:-1])
    assert all(not np.array_equal(t, u) for t, u in zip(theta, programmed))
    agree = lambda th: (C.forward(net, held, chip, theta=th)[0] == ideal[0]).mean()  # noqa: E731
    before, after = agree(programmed), agree(theta)
    assert before < 0.5 < 0.9 < after and agree(programmed[:-1] + theta[-1:]) < after


def test_a_one_bit_network_reads_as_the_binary_chip():
    """W1/A1: the coded chip's currents are the binary chip map's, noise and offsets included."""
    rng = np.random.default_rng(4)
    net = random_sliced((25, 9, 10), 1, 1, rng)
    p = A.load_profile("realistic")
    coded = C.chip(net, p, 6)
    binary = A.chip_map([(w > 0).astype(np.uint8) for w in net.weights], p, 6)
    x = (rng.random((50, 25)) < 0.4).astype(np.uint8)
    for k in range(2):
        keys = np.arange(100, 150)
        assert np.array_equal(C.read(x, coded, k, keys, 1), A.read(x, binary, k, keys))
        x = (C.read(x, coded, k, keys, 1) >= 0).astype(np.uint8)


def test_eval_and_sweep_take_a_cnn(tmp_path):
    net = random_cnn("i28-c5x4s2-p2-d10", 2, 2, np.random.default_rng(0))
    path = tmp_path / "cnn.npz"
    net.save(path)
    r = rr("eval", "--weights", str(path), "--device", "mild", "--chips", "2", "--calibration", "200", "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["network"].startswith("CNN i28-c5x4s2-p2-d10 (W2/A2)") and [c["seed"] for c in res["per_chip"]] == [0, 1]
    assert "after" in res["summary"] and res["calibration_images"] == 200
    args = ["sweep", "variation", "--weights", str(path), "--effects", "offset", "--offset", "0,4", "--chips", "1",
            "--calibration", "0", "--jobs", "1", "--out", str(tmp_path / "sw"), "--json"]
    r = rr(*args)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["curves"][0]["before"]["argmax"]["mean"] == res["digital"]["argmax"]  # no effect: the digital twin
    assert json.loads(rr(*args).stdout)["points_kept"] == 2


def test_stuck_cells_of_the_profile_yield_hold_their_state_in_every_slice():
    """Yield y: about (1 - y) of each slice array's cells are stuck, half of them in the state
    they were written to, so about (1 - y) / 2 read the other state; a seed is its fault map."""
    net, _ = _sliced(False)
    p = A.load_profile("ideal").scaled(yield_=0.8)
    healthy = [(s_ > 0).astype(np.uint8) for w in net.weights for s_ in weight_slices(w, net.wbits)]
    flipped = []
    for seed in (1, 2):
        chip = C.chip(net, p, seed)
        m = A.chip_map(healthy, A.load_profile("ideal"), seed)
        gains = slice_gains(net.wbits)
        merged = sum(g * m.layers[b].q for b, g in enumerate(gains))
        flipped.append(chip.q[0] != merged)
    for f in flipped:
        assert 0.05 < f.mean() < 0.5  # a weight with 3 slices: 1 - 0.9^3 = 27% expected
    assert not np.array_equal(flipped[0], flipped[1])
    assert np.array_equal(C.chip(net, p, 1).q[0], C.chip(net, p, 1).q[0])


@pytest.mark.parametrize("wbits, abits, ternary, profile", [
    (3, 2, False, "realistic"),
    pytest.param(2, 1, True, "harsh", marks=pytest.mark.slow),
    pytest.param(2, 3, False, "aihwkit-pcm", marks=pytest.mark.slow)])
def test_multi_bit_analog_chip_matches_the_golden_model_bit_for_bit(tmp_path, wbits, abits, ternary, profile):
    """A multi-bit chip (tiles split in rows and columns, every slice its own arrays, bit-serial
    inputs) reading through a profile with stuck cells on Verilator: every image's class, hit,
    hidden codes and last currents equal the golden model's (:mod:`rrambnn.gen.analog_coded`),
    the read noise keyed by the chip's image counter, under random idles and backpressure; the
    reads change answers (the check is not the digital one in disguise) and the Verilog lints
    clean."""
    from test_sliced_hw import check
    from test_verilog import lint

    from rrambnn.hw.config import ChipConfig
    from rrambnn.hw.verilog import generate
    from rrambnn.sim.chip_sim import simulate_sliced
    rng = np.random.default_rng(wbits * 10 + abits)
    net = random_sliced((36, 20, 10), wbits, abits, rng, ternary=ternary)
    x = rng.integers(0, 1 << abits, size=(300, 36)).astype(np.uint8)
    p = A.load_profile(profile).scaled(offset=1.0, read_noise=0.1, yield_=0.9)
    cfg = ChipConfig.checked("16x16", False, "argmax", True).for_network(net).with_profile(p, 7)
    res = simulate_sliced(net, cfg, x, seed=3, rewrite_thresholds=False)
    check(res, 300 + 200)
    digital = net.forward(x, trace=False)[1]
    chip = C.chip(net, p, 7)
    analog = C.forward(net, x, chip)[1]
    assert np.array_equal(res["hw_labels"], analog) and (analog != digital).any()
    if not ternary:  # calibrated by the host: every level of every neuron written first (same build)
        theta = C.calibrate(net, chip, rng.integers(0, 1 << abits, size=(600, 36)).astype(np.uint8))
        assert sum(int((t != n).sum()) for t, n in zip(theta, A.thresholds(net))) > 10
        cal = simulate_sliced(net, cfg, x, seed=4, throughput_images=50, rewrite_thresholds=False, thresholds=theta)
        check(cal, 300 + 50)
        assert cal["thresholds_written"] == sum(t.size for t in theta)
        calibrated = C.forward(net, x, chip, theta=theta)[1]
        assert np.array_equal(cal["hw_labels"], calibrated) and (calibrated != analog).any()
    if abits == 2:
        text, _ = generate(net, cfg)
        assert len(re.findall(r"^\s+rrambnn_crossbar_analog #\(", text, re.M)) == wbits * (3 * 2 + 2 * 1)  # slices x tiles
        path = tmp_path / "rrambnn_chip.v"
        path.write_text(text)
        r = lint(path, "rrambnn_chip", "--max-num-width", "4194304")
        assert r.returncode == 0 and "%Warning" not in r.stderr, r.stderr[:3000]


def test_analog_reads_are_refused_where_they_are_not_modelled():
    """Analog layers go with inference chips: the storage planes of online training and the
    training chip's controller are refused with one message; so are threshold rewrites of a
    multi-bit analog chip's testbench."""
    from rrambnn.errors import RrambnnError
    from rrambnn.hw.analog import coded_layers
    from rrambnn.hw.chip import Chip, ComputingPlanes, StoragePlanes
    from rrambnn.hw.config import ChipConfig
    from rrambnn.hw.updater import WeightUpdate
    from rrambnn.sim.chip_sim import simulate_sliced
    net, x = _sliced(False)
    analog = coded_layers(net, C.chip(net, A.load_profile("realistic"), 1))
    signs = [np.where(w > 0, 1, -1) for w in net.weights]
    for variant in (StoragePlanes(3, WeightUpdate()), ComputingPlanes(3, 2, WeightUpdate())):
        with pytest.raises(ValueError, match="Analog reads need one analog layer per layer of an inference chip"):
            Chip(signs, A.thresholds(net), tile=(8, 8), variant=variant, analog=analog)
    cfg = ChipConfig.checked("8x8", False, "argmax", True).for_network(net).with_profile(A.load_profile("mild"), 1)
    with pytest.raises(RrambnnError, match="threshold rewrites and programming are not"):
        simulate_sliced(net, cfg, x)


@pytest.mark.slow
def test_multi_bit_chip_reads_through_a_profile_on_all_test_images():
    """The shipped-with-the-results W2/A2 MLP's chip with every effect of `realistic` on all
    10,000 test images in both output stages: 0 mismatches against the golden analog model,
    and the hardware's accuracy is the analog golden one, below the digital network's."""
    from pathlib import Path
    weights = Path(__file__).parents[1] / "results/analog/verilator/multi-bit/mlp-400-128-10-w2a2.npz"
    r = rr("sim", "--weights", str(weights), "--device", "realistic", "--seed", "2", "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout)
    assert res["device"]["name"] == "realistic" and res["images"] == 10000
    digital = {"priority": 0.9725, "argmax": 0.9824}
    for mode, m in res["modes"].items():
        assert m["passed"] and m["mismatches"] == 0 and m["checked"] >= 10000 and m["agreement"] == 1.0, (mode, m)
        assert m["hw_accuracy"] == m["golden_accuracy"] < digital[mode]


@pytest.mark.parametrize("spec, wbits, abits, tile, output, profile", [
    # stride 2 with padding, pooling, kernel columns over several row tiles, two conv layers
    ("i9x7x1-c3x5s2p1-p2-c2x3-d4", 2, 2, (4, 3), "argmax", "realistic"),
    pytest.param("i8x8x2-c3x4p1-p2-d5", 3, 1, (8, 2), "priority", "harsh", marks=pytest.mark.slow)])
def test_cnn_analog_chip_matches_the_golden_model_bit_for_bit(tmp_path, spec, wbits, abits, tile, output, profile):
    """The CNN chip reading through a profile with stuck cells on Verilator: every image's class,
    hit, every activation map and the last currents equal the golden model's, each read's noise
    keyed by the image (results taken) and the output position; the reads change answers, and
    ``verilog --device`` refuses duplicated kernels (positions > 1) with one error line."""
    from test_sliced_hw import check

    from rrambnn.gen.cnn import random_cnn
    from rrambnn.sim.chip_sim import simulate_cnn
    rng = np.random.default_rng(wbits * 10 + abits)
    net = random_cnn(spec, wbits, abits, rng, output_mode=output)
    x = rng.integers(0, 1 << abits, (150,) + net.spec.input).astype(np.uint8)
    p = A.load_profile(profile).scaled(offset=1.0, read_noise=0.1, yield_=0.9)
    chip = C.chip(net, p, 7)
    theta = None
    if output == "argmax":  # generated with thresholds calibrated for this chip (it has no threshold port)
        theta = C.calibrate(net, chip, rng.integers(0, 1 << abits, (400,) + net.spec.input).astype(np.uint8))
        assert sum(int((t != n).sum()) for t, n in zip(theta, A.thresholds(net))) > 5
    res = simulate_cnn(net, x, tile=tile, output=output, seed=5, throughput_images=40, device=p, chip_seed=7,
                       theta=theta)
    check(res, 190)
    tr = C.forward(net, x, chip, theta=theta, trace=True)
    want = tr.argmax if output == "argmax" else np.where(tr.hit, tr.priority, -1)
    assert np.array_equal(res["hw_labels"], want)
    digital = net.forward(x)  # the reads change activations: not the digital chip in disguise
    assert any((a != b).any() for a, b in zip(tr.acts, digital.acts))
    path = tmp_path / "cnn.npz"
    net.save(path)
    one_error_line(rr("verilog", "--weights", str(path), "--device", "mild", "--positions", "2", "--out",
                      str(tmp_path / "c.v")), "positions per step must be 1 with a device profile")


@pytest.mark.slow
def test_lenet5_chip_reads_through_a_profile_on_verilator():
    """The shipped LeNet-5 4/4/4/4's CNN chip with every effect of `realistic` on 100 test
    images (about 6 a second on Verilator): 0 mismatches in class, hit, every activation map
    and the last currents against the golden analog model."""
    from pathlib import Path
    weights = Path(__file__).parents[1] / "weights/lenet5-4-4-4-4.npz"
    r = rr("sim", "--weights", str(weights), "--device", "realistic", "--seed", "3", "--images", "100", "--output",
           "argmax", "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads(r.stdout)["modes"]["argmax"]
    assert m["passed"] and m["mismatches"] == 0 and m["checked"] >= 100 and m["agreement"] == 1.0, m
    assert m["compared"].startswith("class, hit, every layer's activation")
