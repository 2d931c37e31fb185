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
    for more in ([], ["--device", "ideal"]):  # a calibration fits a profile's chip
        one_error_line(rr("sim", "--calibration", "100", "--images", "10", *more), "--calibration goes with --device")
        one_error_line(rr("program", "--calibration", "100", "--images", "10", *more), "--calibration goes with --device")
    one_error_line(rr("run", "--calibration", "0", "--device", "mild"), "argument --calibration: must be a whole number")
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
    # the same chip calibrated by its host: every threshold written through the threshold port
    # (current units) before the images; the results follow the calibrated golden model
    _, x_cal = _net_and_inputs(seed=12, arch=(40, 30, 10), n=1000)
    theta = A.calibrate(net, chip, x_cal)
    assert sum(int((t != n).sum()) for t, n in zip(theta, A.thresholds(net))) > 10
    cal = simulate(net, cfg, x, seed=5, throughput_images=100, thresholds=theta)
    check(cal)
    assert cal["thresholds_written"]["writes"] == 40
    prio_c, amax_c, _ = A.forward(net, x, chip, theta=theta)
    want = d[0] if output == "priority" else d[1]
    got_c = np.array(cal["hw_labels"])
    assert (got_c == (prio_c if output == "priority" else amax_c)).all()
    assert (got_c == want).mean() > (np.array(res["hw_labels"]) == want).mean()  # calibration wins agreement back


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
    """program --device --calibration: the arrays are written with write-verify (pulse failures,
    stuck cells) from a random state, the thresholds fitted on the programmed chip are written
    through the threshold port, then classify; each reprogrammed cell reads with its own
    device's current in its new state, in the hardware and in the golden model (0 mismatches in
    pulses, failed cells, read-back and every result)."""
    from rrambnn.gen import device as dev
    from rrambnn.hw.config import ChipConfig
    from rrambnn.sim.checks import program_and_check
    net, x = _net_and_inputs(seed=9, arch=(40, 30, 10), n=300)
    labels = np.random.default_rng(0).integers(0, 10, len(x))
    cfg = ChipConfig.checked("16x16", False, "argmax", True, device=dev.DeviceParams(0.95, 0.05, 0, 4))
    cfg = cfg.with_profile(A.load_profile("realistic").scaled(offset=2.0, read_noise=0.1), 4)
    _, x_cal = _net_and_inputs(seed=10, arch=(40, 30, 10), n=800)
    rep = program_and_check(net, x, labels, cfg, initial="random", read_back=True, seed=4, x_cal=x_cal)
    assert rep["passed"], rep["log"]
    assert rep["calibration"]["moved"] > 10  # the programmed chip calibrated through the threshold port
    assert rep["hardware"] == rep["golden"] and rep["failed_cells_match"] and rep["classification"]["mismatches"] == 0
    assert rep["read_back"]["cell_mismatches"] == 0 and rep["device"]["profile"]["name"] == "realistic"


# -- online training through a profile (rrambnn online --forward sign --device) ------------

def _online_start():
    from rrambnn.gen.online_sign import SignChip, SignConfig
    from rrambnn.weights import shipped
    from rrambnn.gen.netfile import load_network
    net = load_network(shipped("bnn-400-128-128-10.npz"))
    return net, SignConfig(), SignChip


def test_online_analog_reads_without_effects_are_the_digital_rule(mnist_train):
    """With every effect at zero the analog forward pass and the transposed reads give exactly
    the digital rule's commands; the transposed read is the digital one (x 2^FRAC) plus the row
    offsets and its noise, keyed by the sample: a batch reads as its samples one by one."""
    from rrambnn.gen import online_sign as S
    net, cfg, SignChip = _online_start()
    x = net.preprocess(mnist_train.images[:64])
    y = mnist_train.labels[:64].astype(np.int64)
    flat = A.load_profile("realistic").scaled(sigma_lrs=0.0, sigma_hrs=0.0, read_noise=0.0, offset=0.0, wire_ohm=0.0)
    cells = [(w > 0).astype(np.uint8) for w in net.weights]
    cfg = S.SignConfig(margin=8, window=8)  # more errors, hidden ones too
    flat_reads, n_cmds, layers = S.AnalogSign(flat, 3, cells), 0, set()
    for i in range(64):
        want = S.commands_for_batch(net, x[i:i + 1], y[i:i + 1], cfg)
        got = S.commands_for_batch(net, x[i:i + 1], y[i:i + 1], cfg, flat_reads)
        assert len(want) == len(got)
        n_cmds += len(want)
        layers |= {c.layer for c in want}
        for a, b in zip(want, got):
            assert a.layer == b.layer and np.array_equal(a.x, b.x) and np.array_equal(a.e, b.e)
    assert n_cmds > 20 and layers == {0, 1, 2}
    p = A.load_profile("realistic")
    an = S.AnalogSign(p, 3, cells, trim=False)
    e = np.random.default_rng(1).integers(-1, 2, (6, 10))
    ids = np.arange(100, 106)
    one_by_one = np.vstack([A.read_transposed(e[i:i + 1], an.map, 2, ids[i:i + 1], an.row_offsets[2]) for i in range(6)])
    batch = A.read_transposed(e, an.map, 2, ids, an.row_offsets[2])
    assert np.array_equal(batch, one_by_one)
    quiet = A.read_transposed(e, an.map, 2, ids, np.zeros(128, np.int64))
    assert np.array_equal(A.read_transposed(np.zeros_like(e), an.map, 2, ids, an.row_offsets[2]),
                          np.broadcast_to(an.row_offsets[2], (6, 128)))  # nothing driven: the offset alone
    exact = e @ an.map._held[2][0].T
    assert 0 < np.abs(quiet - exact).max() < 4 << A.FRAC  # read noise, a few cells at most
    trimmed = S.AnalogSign(p, 3, cells).row_offsets[2]
    assert np.abs(trimmed).max() <= 1 << (A.FRAC - S.TRIM_BITS - 1) < np.abs(an.row_offsets[2]).max()


def test_online_training_through_a_profile_needs_its_row_offsets_trimmed(mnist_train, mnist_test):
    """On chip 0 of `realistic` a row sense stage's fixed offset is an error of fixed sign in the
    backward pass: untrimmed, 2,000 samples of training lose more than ten points; trimmed to
    1/16 cell, training loses nothing (it gains a point here)."""
    from rrambnn.gen import online_sign as S
    net, cfg, SignChip = _online_start()
    x, y = net.preprocess(mnist_train.images[:2000]), mnist_train.labels[:2000].astype(np.int64)
    xt, yt = net.preprocess(mnist_test.images[:2000]), mnist_test.labels[:2000]
    p = A.load_profile("realistic")
    out = {}
    for trim in (False, True):
        chip = SignChip(net, cfg, profile=p)
        chip.analog = S.AnalogSign(p, 0, [a.cells[0] for a in chip.arrays], trim=trim)
        res, _ = S.train(chip, x, y, xt, yt, epochs=1)
        out[trim] = (res[0].accuracy["argmax"], res[-1].accuracy["argmax"])
    assert out[False][0] == out[True][0] and out[False][1] < out[False][0] - 0.10
    assert out[True][1] >= out[True][0] - 0.005, out


def test_online_device_cli(tmp_path):
    """`online --forward sign --device P --calibration N`: the report names the profile and the
    calibrated start; the options it does not take are one error line each."""
    r = rr("online", "--forward", "sign", "--arch", "400-128-128-10", "--device", "harsh", "--calibration", "500",
           "--samples", "300", "--epochs", "1", "--seed", "2", "--out", str(tmp_path), "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout)
    p = res["device_profile"]
    assert p["name"] == "harsh" and p["chip_seed"] == 2 and p["offset_trim_bits"] == 4
    assert p["calibration"]["as_programmed"]["argmax"] < res["per_epoch"][0]["argmax"]  # calibration wins on harsh
    one_error_line(rr("online", "--device", "realistic"), "--device trains with --forward sign")
    one_error_line(rr("online", "--forward", "sign", "--calibration", "10"), "--calibration goes with --device")
    one_error_line(rr("online", "--forward", "sign", "--device", "ideal", "--calibration", "10"),
                   "the ideal profile reads digitally")
    one_error_line(rr("sweep", "bits", "--forward", "sign", "--device", "nope", "--out", str(tmp_path / "sw")),
                   "not one of ideal, mild, realistic, harsh, aihwkit-pcm")
    assert not (tmp_path / "sw").exists()  # refused before anything is written
    one_error_line(rr("online", "--forward", "sign", "--device", "mild", "--replay"), "--trace and --replay check")
