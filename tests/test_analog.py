"""The analog read model (gen/analog.py): profiles, integer currents, noise keyed by image,
calibration, and the device commands of the CLI."""

import json
import math
import re

import numpy as np
import pytest
from conftest import one_error_line, rr

from rrambnn.errors import RrambnnError
from rrambnn.gen import analog as A
from rrambnn.gen.network import random_network


def _net_and_inputs(seed=3, arch=(150, 140, 10), n=600):
    """A random network with a tile split in rows and columns (150 > 128, 140 > 128), and
    inputs of about 30% ones."""
    rng = np.random.default_rng(seed)
    net = random_network(arch, rng)
    return net, (rng.random((n, arch[0])) < 0.3).astype(np.uint8)


def test_every_shipped_profile_loads_with_sources():
    for name in A.PROFILES:
        p = A.load_profile(name)
        assert p.name == name and p.path == f"gen/devices/{name}.toml"
        assert set(p.sources) == {s for s, *_ in A._NUMBERS}
        assert p.ideal == (name == "ideal")
    r, h = A.load_profile("realistic"), A.load_profile("harsh")
    assert (r.sigma_lrs, r.sigma_hrs, r.read_noise, r.offset, round(r.ratio)) == (0.15, 0.40, 0.05, 1.0, 5)
    assert r.wire_ohm > 0 and (h.sigma_lrs, h.sigma_hrs, h.offset) == (0.20, 0.50, 1.0)


def test_ideal_profile_reads_the_digital_twin_exactly():
    """Whatever the on/off ratio, the ideal device gives every cell +-1 unit: currents are the
    digital sums times 2^FRAC, answers and activations identical, calibration keeps the
    thresholds."""
    net, x = _net_and_inputs()
    digital = net.forward(x, trace=True)
    for g_lrs, g_hrs in ((100.0, 10.0), (100.0, 33.0), (10.0, 0.58824)):
        p = A.Profile(g_lrs_us=g_lrs, g_hrs_us=g_hrs)
        assert p.ideal
        chip = A.chip_map(net.cells, p, seed=7)
        prio, amax, hit, sums, acts = A.forward(net, x, chip, trace=True, chunk=97)
        assert (prio == digital.priority).all() and (amax == digital.argmax).all() and (hit == digital.hit).all()
        for k in range(len(net.weights)):
            assert (sums[k] == digital.sums[k].astype(np.int64) << A.FRAC).all() and (acts[k] == digital.acts[k]).all()
        theta = A.calibrate(net, chip, x[:300])
        assert all((t == u).all() for t, u in zip(theta, A.thresholds(net)))


def test_a_chip_is_its_seed_and_reads_do_not_depend_on_batching():
    """The map is frozen by the chip seed; the read noise is keyed by the image index, so the
    chunk size and reading a slice on its own (with its first index) change nothing; another
    seed is another chip."""
    net, x = _net_and_inputs()
    p = A.load_profile("realistic")
    a, b, c = (A.chip_map(net.cells, p, s) for s in (4, 4, 5))
    assert all((la.q1 == lb.q1).all() and (la.q0 == lb.q0).all() and (la.offset == lb.offset).all()
               for la, lb in zip(a.layers, b.layers))
    assert any((la.q != lc.q).any() for la, lc in zip(a.layers, c.layers))
    whole = A.forward(net, x, a, trace=True, chunk=4096)
    small = A.forward(net, x, b, trace=True, chunk=7)
    part = A.forward(net, x[200:260], b, trace=True, first_image=200)
    for k in range(len(net.weights)):
        assert (whole[3][k] == small[3][k]).all() and (whole[3][k][200:260] == part[3][k]).all()
    moved = A.forward(net, x, a, trace=True, first_image=1)  # other image indices: other noise
    assert (moved[3][0] != whole[3][0]).any()


def test_read_noise_has_the_sigma_of_the_cells_summed():
    """One draw per column and read, scaled by sqrt(sum x g^2): over many reads of one input
    the spread of a column's current is sigma_r * sqrt(sum_i x_i g_i^2) (within 5%), its mean
    the noiseless current (within 3 standard errors), and the table is a standard normal."""
    assert abs(A.NORMAL.mean()) < 1e-9 * (1 << A.ZFRAC) + 1 and abs(A.NORMAL.std() / (1 << A.ZFRAC) - 1) < 0.01
    net, x = _net_and_inputs(n=1)
    p = A.load_profile("mild").scaled(offset=0.0)
    chip = A.chip_map(net.cells, p, 2)
    reads = 4000
    xs = np.repeat(x, reads, axis=0)
    s = A.read(xs, chip, 0, np.arange(reads))
    quiet = A.read(x, A.ChipMap(p.scaled(read_noise=0.0), 2, chip.layers), 0, np.arange(1))[0]
    m = chip.layers[0]
    want = p.read_noise * np.sqrt(x[0].astype(float) @ (m.g2 / float(1 << (2 * A.FRAC)))) * (1 << A.FRAC)
    assert np.allclose(s.std(axis=0), want, rtol=0.05)
    assert (np.abs(s.mean(axis=0) - quiet) < 3 * want / math.sqrt(reads) + 1).all()


def test_isqrt_is_exact():
    v = np.array([0, 1, 2, 3, 4, 15, 16, 17, (1 << 40) - 1, 1 << 40, (1 << 52) + 12345, 999_999_999_999], np.int64)
    r = A.isqrt(v)
    assert r.tolist() == [math.isqrt(int(u)) for u in v]


def test_calibration_wins_back_accuracy_on_a_harsh_device(mnist_test, mnist_train):
    """On the shipped reference network: harsh chips lose accuracy; thresholds refitted per chip
    from training images win most of it back (test images, mean of 2 chips)."""
    from rrambnn.gen.netfile import load_network, network_inputs
    net = load_network(None)
    x, y = network_inputs(net, mnist_test.images[:3000]), mnist_test.labels[:3000]
    xc = network_inputs(net, mnist_train.images[:1000])
    digital = net.accuracy(x, y)["argmax"]
    p = A.load_profile("harsh")
    before, after = [], []
    for seed in (0, 1):
        chip = A.chip_map(A.faulty_cells(net, p, seed), p, seed)
        before.append(A.accuracy(net, x, y, chip)["argmax"])
        after.append(A.accuracy(net, x, y, chip, theta=A.calibrate(net, chip, xc))["argmax"])
    print(f"digital {digital} harsh {before} calibrated {after}")
    assert np.mean(before) < digital - 0.05 and np.mean(after) > digital - 0.03


def test_stuck_cells_of_the_profile_yield():
    net, _ = _net_and_inputs()
    p = A.Profile(yield_=0.9)
    cells = A.faulty_cells(net, p, 3)
    changed = sum(int((c != d).sum()) for c, d in zip(cells, net.cells))
    total = sum(c.size for c in cells)
    assert 0.02 * total < changed < 0.08 * total  # 10% faulty, half of them stuck at the other state


BAD = [
    (lambda t: t.replace("g_hrs_us = 20.0", "g_hrs_us = 0.0"), "g_hrs_us must be a number > 0 and at most 1e+12, not 0.0"),
    (lambda t: t.replace("sigma_lrs = 0.15", "sigma_lrs = -0.1"), "sigma_lrs must be a number >= 0 and at most 1e+12"),
    (lambda t: t.replace("sigma_lrs = 0.15\n", ""), "variation.sigma_lrs is missing"),
    (lambda t: t.replace("wire_ohm_per_cell = 2.5", "wire_ohm = 2.5"), "unknown key ir_drop.wire_ohm (units"),
    (lambda t: t.replace('distribution = "lognormal"', 'distribution = "cauchy"'), "distribution must be"),
    (lambda t: t.replace("g_lrs_us = 100.0", "g_lrs_us = 10.0"), "g_lrs_us (10.0) must exceed g_hrs_us"),
    (lambda t: t.replace("nu_mean = 0.0", "nu_mean = 2.0"), "drift.nu_mean is 2.0; drift exponents above 1"),
    (lambda t: t.replace("yield = 1.0", "yield = 1.5"), "faults.yield must be a number from 0 to 1, not 1.5"),
    (lambda t: t + "\n[extra]\nx = 1\n", "unknown table [extra]"),
    (lambda t: t.replace("[sense_offset]\nsigma = 1.0", "[sense_offset]\nsigma = nan"), "sense_offset.sigma must be a finite"),
    (lambda t: t.replace("source = \"[target]\"\n", "", 1), "needs a source"),
    (lambda t: t[: len(t) // 3] + "[[[", "not a valid TOML device profile"),
]


@pytest.mark.parametrize("damage, message", BAD)
def test_bad_profiles_are_one_error_naming_the_key(tmp_path, damage, message):
    text = (A.PROFILE_DIR / "realistic.toml").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(damage(text))
    with pytest.raises(RrambnnError, match=re.escape(message)):
        A.load_profile(bad)


def test_eval_device_cli(tmp_path):
    """One error line for a bad profile and a read time without a profile (CNNs:
    test_analog_coded.py); the JSON report of two chips otherwise."""
    bad = tmp_path / "bad.toml"
    bad.write_text((A.PROFILE_DIR / "realistic.toml").read_text().replace("sigma_hrs = 0.40", "sigma_hrs = -1"))
    one_error_line(rr("eval", "--device", str(bad)), "sigma_hrs must be a number >= 0 and at most 1e+12, not -1.0")
    one_error_line(rr("eval", "--device", "nope"), "not one of ideal, mild, realistic, harsh, aihwkit-pcm")
    one_error_line(rr("eval", "--read-time", "10"), "--read-time goes with --device")
    one_error_line(rr("eval", "--chips", "3"), "--chips goes with --device")
    one_error_line(rr("eval", "--device", "mild", "--chips", "0"), "argument --chips: must be a whole number from 1 to 10,000, not 0")
    r = rr("eval", "--device", "mild", "--chips", "2", "--seed", "9", "--calibration", "500", "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["profile"]["name"] == "mild" and [c["seed"] for c in res["per_chip"]] == [9, 10]
    s = res["summary"]
    assert s["before"]["argmax"]["worst"] <= s["before"]["argmax"]["mean"] < res["digital"]["argmax"]
    assert res["calibration_images"] == 500 and "after" in s


def test_sweep_variation_writes_and_resumes(tmp_path):
    args = ["sweep", "variation", "--effects", "offset,read-noise", "--offset", "0,3", "--read-noise", "0.2",
            "--chips", "2", "--calibration", "300", "--jobs", "1", "--out", str(tmp_path), "--json"]
    r = rr(*args)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["points_run"] == 3 and [(c["effect"], c["value"]) for c in res["curves"]] == \
        [("offset", 0.0), ("offset", 3.0), ("read-noise", 0.2)]
    off0, off3 = res["curves"][0], res["curves"][1]
    assert off0["before"]["argmax"]["mean"] == res["digital"]["argmax"]  # no effect: the digital twin
    assert off3["before"]["argmax"]["mean"] < off0["before"]["argmax"]["mean"]
    assert all((tmp_path / f"variation.{e}").is_file() for e in ("md", "json", "png"))
    again = json.loads(rr(*args).stdout)
    assert again["points_kept"] == 3 and again["points_run"] == 0 and again["curves"] == res["curves"]
    one_error_line(rr("sweep", "variation", "--effects", "warp"), "--effects knows variation, read-noise")
    one_error_line(rr("sweep", "variation", "--effects", "drift", "--device", "realistic"),
                   "profile realistic has no drift")


def test_variation_aware_training_draws_the_profile_in_every_read(mnist_train):
    """--device-noise: the reads of a training step carry the profile's spreads (an ideal
    profile adds nothing: the run is the plain one); deterministic for a seed; binary only."""
    from rrambnn.gen import train as T
    x, y = mnist_train.images[:600], mnist_train.labels[:600]
    nz = T.read_noise("realistic")
    assert nz["g1"] == 2.5 and nz["g0"] == 0.5 and nz["offset"] == 1.0 and nz["read"] == 0.05
    assert nz["sd1"] == pytest.approx(2.5 * math.sqrt(math.expm1(0.15 ** 2)) * math.exp(0.15 ** 2 / 2))
    assert T.read_noise("ideal")["sd1"] == 0 and T.read_noise("aihwkit-pcm")["sd1"] == pytest.approx(25 / 12 * 0.042)
    cfg = dict(arch=(400, 32, 10), epochs=1, batch=100)
    runs = [T.train(T.TrainConfig(**cfg, device_noise=d), x, y, progress=False)[0] for d in ("", "ideal", "harsh",
                                                                                             "harsh")]
    plain, ideal, harsh, again = [[w.copy() for w in n.weights] for n in runs]
    assert all((a == b).all() for a, b in zip(plain, ideal))
    assert any((a != b).any() for a, b in zip(plain, harsh)) and all((a == b).all() for a, b in zip(harsh, again))
    assert runs[2].meta["train_config"]["device_noise"] == "harsh"
    with pytest.raises(RrambnnError, match="--device-noise trains binary networks"):
        T.train(T.TrainConfig(**cfg, wbits=3, device_noise="mild"), x, y, progress=False)


def test_train_device_noise_cli_checks_the_profile_first(tmp_path):
    one_error_line(rr("train", "--device-noise", "nope", "--out", str(tmp_path / "w.npz")),
                   "device profile 'nope': not one of ideal")
    one_error_line(rr("train", "--arch", "lenet5", "--device-noise", "mild"), "--device-noise is an option of fully")


# -- the analog reads in the generated Verilog --------------------------------------------

def test_analog_models_lint_without_waivers(tmp_path):
    from test_verilog import lint

    from rrambnn.hw.analog import ANALOG_CROSSBAR_MODULE, ANALOG_CROSSBAR_NAME, SENSE_MODEL_MODULE, SENSE_MODEL_NAME
    for name, text in ((ANALOG_CROSSBAR_NAME, ANALOG_CROSSBAR_MODULE), (SENSE_MODEL_NAME, SENSE_MODEL_MODULE)):
        p = tmp_path / f"{name}.v"
        p.write_text(text)
        r = lint(p, name)
        assert r.returncode == 0 and "%Warning" not in r.stderr, r.stderr[:3000]


def test_analog_chip_verilog_lints_and_ideal_is_the_digital_chip(tmp_path):
    """An ideal profile emits the digital chip byte for byte; a realistic one adds the two
    analog models (6 analog arrays and 3 sense models for the reference chip) and lints clean
    with the project's waivers."""
    from test_verilog import lint

    from rrambnn.hw.config import ChipConfig
    from rrambnn.hw.verilog import generate
    from rrambnn.weights import shipped
    from rrambnn.gen.network import BinaryNetwork
    net = BinaryNetwork.load(shipped())
    cfg = ChipConfig((128, 128), True, "argmax", True)
    digital, _ = generate(net, cfg)
    assert cfg.with_profile(A.load_profile("ideal"), 5) == cfg
    text, chip = generate(net, cfg.with_profile(A.load_profile("realistic"), 5))
    assert text != digital and "rrambnn_crossbar_analog" not in digital
    assert len(re.findall(r"^\s+rrambnn_crossbar_analog #\(", text, re.M)) == 6
    assert len(re.findall(r"^\s+rrambnn_analog_sense #\(", text, re.M)) == 3
    p = tmp_path / "rrambnn_chip.v"
    p.write_text(text)
    r = lint(p, "rrambnn_chip", "--max-num-width", "4194304")  # the per-cell currents: wide parameters
    assert r.returncode == 0 and "%Warning" not in r.stderr, r.stderr[:3000]


@pytest.mark.parametrize("profile, pipeline, output", [
    ("realistic", False, "argmax"),
    pytest.param("harsh", True, "priority", marks=pytest.mark.slow)])  # 26 s: the default suite's budget
def test_analog_chip_matches_the_golden_model_bit_for_bit(profile, pipeline, output):
    """A small chip (tiles split in rows and columns) reading through a profile on Verilator:
    every image's class, hit, every layer's activations and the last layer's currents equal
    the golden analog model's, under random idles and backpressure (the read noise keyed by
    the chip's image counter); a profile that costs accuracy, so the check is not the digital
    one in disguise."""
    from conftest import check

    from rrambnn.hw.config import ChipConfig
    from rrambnn.sim.chip_sim import simulate
    net, x = _net_and_inputs(seed=8, arch=(40, 30, 10), n=400)
    p = A.load_profile(profile).scaled(offset=2.0, read_noise=0.1)
    cfg = ChipConfig((16, 16), pipeline, output, True).with_profile(p, 11)
    res = simulate(net, cfg, x, seed=4, throughput_images=200)
    check(res)
    chip = A.chip_map(A.faulty_cells(net, p, 11), p, 11)
    prio, amax, hit = A.forward(net, x, chip)
    d = net.forward(x, trace=False)
    analog_answers = prio if output == "priority" else amax
    assert (np.array(res["hw_labels"]) != (d[0] if output == "priority" else d[1])).any()  # reads do change answers
    assert (analog_answers >= 0).all() and res["throughput"]["images_per_cycle"] == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["realistic", "aihwkit-pcm"])
def test_reference_chip_reads_through_a_profile_on_all_test_images(profile):
    """The reference chip with every effect of the profile (drift too for aihwkit-pcm) on all
    10,000 test images in both output stages: 0 mismatches against the golden analog model, and
    the hardware's accuracy is the analog golden one, not the digital twin's."""
    r = rr("sim", "--device", profile, "--seed", "2", "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout)
    assert res["device"]["name"] == profile and res["images"] == 10000
    for mode, m in res["modes"].items():
        assert m["passed"] and m["mismatches"] == 0 and m["checked"] >= 10000 and m["agreement"] == 1.0, (mode, m)
        assert m["hw_accuracy"] == m["golden_accuracy"] < 0.9687


def test_programmed_analog_chip_reads_its_new_cells():
    """program --device: the arrays are written with write-verify (pulse failures, stuck cells)
    from a random state, then classify; each reprogrammed cell reads with its own device's
    current in its new state, in the hardware and in the golden model (0 mismatches in pulses,
    failed cells, read-back and every result)."""
    from rrambnn.gen import device as dev
    from rrambnn.hw.config import ChipConfig
    from rrambnn.sim.checks import program_and_check
    net, x = _net_and_inputs(seed=9, arch=(40, 30, 10), n=300)
    labels = np.random.default_rng(0).integers(0, 10, len(x))
    cfg = ChipConfig.checked("16x16", False, "argmax", True, device=dev.DeviceParams(0.95, 0.05, 0, 4))
    cfg = cfg.with_profile(A.load_profile("realistic").scaled(offset=2.0, read_noise=0.1), 4)
    rep = program_and_check(net, x, labels, cfg, initial="random", read_back=True, seed=4)
    assert rep["passed"], rep["log"]
    assert rep["hardware"] == rep["golden"] and rep["failed_cells_match"] and rep["classification"]["mismatches"] == 0
    assert rep["read_back"]["cell_mismatches"] == 0 and rep["device"]["profile"]["name"] == "realistic"
