"""The cost model: the reference chip against the published figures, what other chips pay for,
the technology files and the command."""

import json
import math
import re

import numpy as np
import pytest
from conftest import one_error_line, rr

from rrambnn.errors import RrambnnError
from rrambnn.studies import cost
from rrambnn.studies.online_report import describe_energy, write_energy


@pytest.fixture(scope="module")
def reference():
    return cost.design_cost()  # the shipped 400-128-128-10 network, priority output, 32 nm


@pytest.mark.slow  # the reference chip's synthesis: about 70 s per worker
def test_reference_chip_meets_the_published_figures(reference):
    r = reference
    assert r["arch"] == [400, 128, 128, 10] and r["cycles_per_image"] == 1 and r["clock_mhz"] == 100
    assert r["ops_per_image"] == 2 * (400 * 128 + 128 * 128 + 128 * 10)
    assert r["tops"] == pytest.approx(13.7728)
    assert r["tops_per_mm2"] == pytest.approx(cost.PUBLISHED["tops_per_mm2"], rel=0.10)
    assert r["tops_per_w"] == pytest.approx(cost.PUBLISHED["tops_per_w"], rel=0.10)
    parts = {b["component"]: b for b in r["breakdown"]}
    assert set(parts) == {"crossbar arrays", "row drivers", "sense stages", "threshold registers",
                          "calibrated remainder", "digital periphery", "decoders and column multiplexers",
                          "write drivers", "charge pump", "leakage"}  # no ADC
    assert parts["crossbar arrays"]["count"] == 6 and parts["sense stages"]["count"] == 128 + 128 + 10
    assert parts["calibrated remainder"]["count"] == 266 and parts["sense stages"]["area_um2"] == pytest.approx(266 * 19.18)
    # sense stages: the bias for g_m 1 mS at 0.1 V overdrive (45 uW) and the mirrored worst-case column
    # current, 0.083709 W ohm / (R_LRS / rows x 0.5 V / 0.2 V): 400 rows 133.9 uW, 128 rows 42.9 uW, for
    # each read: 128 x 1.2941 ns x 178.9 uW + 138 x 1.0781 ns x 87.9 uW = 42.70 pJ
    assert parts["sense stages"]["energy_per_image_j"] == pytest.approx(42.70e-12, rel=1e-3)
    assert parts["row drivers"]["count"] == 400 + 128 + 128  # one column of tiles per layer
    assert parts["crossbar arrays"]["area_um2"] == pytest.approx(68864 * 48 * 0.032 ** 2)  # 1T1R, 48 F^2
    assert parts["threshold registers"]["count"] == 128 * 10 + 128 * 9 + 10 * 9
    assert sum(b["area_um2"] for b in r["breakdown"]) == pytest.approx(r["area_mm2"] * 1e6)
    assert sum(b["power_mw"] for b in r["breakdown"]) == pytest.approx(r["power_mw"])
    # the two calibrated figures of the 32 nm file are the calibration of today's reference chip
    tech = cost.load_tech("32nm")
    cal = cost.calibrate(r["inventory"], r["cells_by_type"], tech)
    assert cal["area_um2_per_column"] == pytest.approx(tech["calibration"]["area_um2_per_column"], rel=0.01)
    assert cal["power_uw_per_column"] == pytest.approx(tech["calibration"]["power_uw_per_column"], rel=0.01)
    # they hold only because the reads are at the ideal profile's assumed 0.2 V: at NeuroSim's
    # 0.51 V the sourced parts alone exceed the published TOPS/W
    from rrambnn.gen.analog import load_profile
    with pytest.raises(RrambnnError, match="the sourced parts alone exceed the target: nothing is left to calibrate"):
        cost.calibrate(r["inventory"], r["cells_by_type"], tech, device=load_profile("ideal").scaled(read_voltage_v=0.51))
    text = "\n".join(cost.describe(r))
    assert "361.0 TOPS/mm^2" in text and "589.6 TOPS/W" in text and "published" in text


@pytest.mark.slow  # the reference chip's synthesis: about 70 s per worker
def test_the_digital_periphery_excludes_the_analog_stand_ins(reference):
    """In the analog-sense view the column-sum adders and comparators are black boxes: the
    digital periphery is the input and threshold registers, the controllers and the encoder."""
    cells = reference["cells_by_type"]
    assert cells.get("rrambnn_sense") == 3 and cells.get("rrambnn_crossbar") == 6
    lg = cost.logic_cost(cells, cost.load_tech("32nm"))
    assert 4000 < lg["flip_flops"] < 5000  # 400 input bits + 2,522 threshold bits + controllers
    assert lg["gates"] < 5000  # the behavioural sense stage alone is over 25,000 gates


@pytest.mark.slow  # the reference chip's synthesis: about 70 s per worker
def test_the_130nm_file_prices_the_same_chip_larger(reference):
    r130 = cost.price(reference["inventory"], reference["cells_by_type"], cost.load_tech("130nm"))
    assert r130["area_mm2"] > 10 * reference["area_mm2"] and r130["tops"] == reference["tops"]
    assert r130["write_energy_pj_per_pulse"] == 13.08


@pytest.mark.slow  # four (two) synthesized chips: 30-50 s
def test_multi_bit_chips_pay_for_converters_rams_and_cycles():
    one = cost.design_cost(arch="64-16-10")
    w2 = cost.design_cost(arch="64-16-10", wbits=2)
    a2 = cost.design_cost(arch="64-16-10", abits=2)
    arg = cost.design_cost(arch="64-16-10", output="argmax")
    parts = {k: {b["component"]: b for b in r["breakdown"]} for k, r in
             (("one", one), ("w2", w2), ("a2", a2), ("arg", arg))}
    assert "converters (ADC)" not in parts["one"] and "threshold RAMs" not in parts["one"]
    # two slices: twice the cells and a mirror per slice column; binary activations: no converter
    assert parts["w2"]["crossbar arrays"]["area_um2"] == pytest.approx(2 * parts["one"]["crossbar arrays"]["area_um2"])
    assert parts["w2"]["sense stages"]["count"] == 2 * parts["one"]["sense stages"]["count"]
    assert "converters (ADC)" not in parts["w2"] and w2["cycles_per_image"] == 1
    # 2-bit activations: bit-serial sums are digitised (sampled and converted, no comparator
    # stage), thresholds in RAM, 2*2 + 3 + 3 cycles an image
    assert "converters (ADC)" in parts["a2"] and parts["a2"]["threshold RAMs"]["count"] == 16 * 3 * 9
    assert "sense stages" not in parts["a2"] and "26 sample-and-holds" in parts["a2"]["converters (ADC)"]["what"]
    # a driver per word line, powered for each of its line's reads: (64 + 16) rows x 2 bit planes
    assert parts["a2"]["row drivers"]["energy_per_image_j"] == pytest.approx((64 + 16) * 2 * 3.9063e-6 / 100e6)
    assert a2["cycles_per_image"] == 2 * 2 + 3 + 3 and a2["energy_per_image_pj"] > 5 * one["energy_per_image_pj"]
    # argmax reads the output sums: converters for the last layer, comparators for the hidden one
    assert parts["arg"]["converters (ADC)"]["count"] == 1  # 10 sums a cycle: one 1.28 GS/s converter
    assert parts["arg"]["sense stages"]["count"] == 16 and "10 sample-and-holds" in parts["arg"]["converters (ADC)"]["what"]


@pytest.mark.slow  # synthesis: the default suite's budget
def test_slices_are_converted_one_by_one_and_added_in_logic():
    """A digitised layer of n-bit weights converts every slice's column sum on its own (the
    sense box hands out one sum per slice), so the shift-add is synthesized with the periphery."""
    a2 = cost.design_cost(arch="64-16-10", abits=2)
    w2a2 = cost.design_cost(arch="64-16-10", wbits=2, abits=2)
    conv = {k: next(b for b in r["breakdown"] if b["component"] == "converters (ADC)") for k, r in
            (("a2", a2), ("w2a2", w2a2))}
    assert "52 sample-and-holds" in conv["w2a2"]["what"]  # (16 + 10) columns x 2 slices
    assert conv["w2a2"]["energy_per_image_j"] > 1.9 * conv["a2"]["energy_per_image_j"]
    gates = {k: cost.logic_cost(r["cells_by_type"], cost.load_tech("32nm"))["gates"] for k, r in
             (("a2", a2), ("w2a2", w2a2))}
    assert gates["w2a2"] > gates["a2"] + 26 * 4  # an adder per column, several gates a bit


def test_library_prices_and_tech_file_errors(tmp_path):
    assert cost.library_cells("$_SDFFE_PP0P_") == (("dff", "and2", "mux2"), True)
    assert cost.library_cells("$_DFF_PN0_") == (("dffr",), True)
    assert cost.library_cells("$_DFFE_PP_") == (("dff", "mux2"), True)
    assert cost.library_cells("$_ANDNOT_") == (("inv", "nor2"), False)
    with pytest.raises(RrambnnError, match=r"no library price for the Yosys cell \$_FANCY_"):
        cost.library_cells("$_FANCY_")
    with pytest.raises(RrambnnError, match="technology '7nm': not one of 32nm, 130nm and no file 7nm"):
        cost.load_tech("7nm")
    good = (cost.TECH_DIR / "32nm.toml").read_text()
    bad = tmp_path / "bad.toml"
    for edit, message in [
        (lambda t: t.replace("area_f2 = 48", "area_f2 = -1"),
         "cell.area_f2 must be a positive number of at most 1e+12, not -1"),
        (lambda t: t.replace("area_f2 = 48", "area_f2 = 5"), "cell.area_f2 5 is below the smallest 1T1R cell, 6 F^2"),
        (lambda t: t.replace('type = "1T1R"', 'type = "1S1R"').replace("area_f2 = 48", "area_f2 = 1.49"),
         "cell.area_f2 1.49 is below the smallest 1S1R cell, 4 F^2"),
        (lambda t: t.replace('type = "1T1R"', 'type = "2T2R"'), "cell.type must be one of 1S1R, 1T1R, not '2T2R'"),
        (lambda t: t.replace("post_layout_energy = 1.22", "post_layout_energy = 0.5"),
         "chip.post_layout_energy is a factor of at least 1, not 0.5"),
        (lambda t: t.replace("power_uw = 0.0097656", "power_uw = inf"),
         "sample_hold.power_uw must be a positive number of at most 1e+12, not inf"),
        (lambda t: t.replace("[sram]", "[ram]"), "has no [sram] table"),
        (lambda t: t.replace("vdd = 0.9", "vdd = 0"), "vdd must be a positive number of at most 1e+12, not 0"),
        (lambda t: t.replace("pump_vt = 0.35", "pump_vt = 0.9"), "write.pump_vt 0.9 must be below vdd 0.9"),
        (lambda t: t.replace("area_um2_per_column = 31.022", "area_um2_per_column = -1"),
         "calibration.area_um2_per_column must be a non-negative number of at most 1e+12, not -1"),
        (lambda t: t.replace("sense_decision_ns = 1.0", "sense_decision_ns = -1.0"),
         "crossbar.sense_decision_ns must be a positive number of at most 1e+12, not -1.0"),
        (lambda t: t.replace("column_cap_ff_per_cell = 0.11\n", ""),
         "crossbar.column_cap_ff_per_cell is missing"),
    ]:
        bad.write_text(edit(good))
        with pytest.raises(RrambnnError, match=re.escape(message)):
            cost.load_tech(bad)
    bad.write_text("name = ")
    with pytest.raises(RrambnnError, match="not a valid TOML technology file"):
        cost.load_tech(bad)


def test_write_energy_of_a_run():
    res = {"forward": "nbit", "bits": 8, "epochs": 2, "samples_per_epoch": 100,
           "per_epoch": [{"pulses_set": 10, "pulses_reset": 5}, {"pulses_set": 700, "pulses_reset": 300}],
           "switches": {"switches": [600, 300, 50]}}
    e = write_energy(res)
    assert e["pulses"] == 1000 and e["switches"] == 950 and e["joules"] == pytest.approx(1000 * 13.08e-12)
    assert e["macro_joules"] == 5.22e-3 and e["macro_switches"] == 3.99e8
    assert "the macro: 5.22 mJ for 3.99e+08 switches" in describe_energy(e, res)
    assert "macro_joules" not in write_energy({**res, "bits": 6})


def test_cost_command_writes_table_json_and_plot(tmp_path):
    r = rr("cost", "--arch", "64-16-10", "--abits", "2", "--out", str(tmp_path), "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["cycles_per_image"] == 10 and res["tech"] == "32nm"
    assert open(res["outputs"]["png"], "rb").read(4) == b"\x89PNG"
    assert "| converters (ADC) |" in open(res["outputs"]["md"]).read()
    assert np.isclose(sum(b["energy_per_image_j"] for b in res["breakdown"]) * 1e12, res["energy_per_image_pj"])


@pytest.mark.parametrize("args, text", [
    (["--tech", "5nm"], "technology '5nm': not one of 32nm, 130nm"),
    (["--arch", "64-16-10", "--weights", "weights/bnn-400-128-128-10.npz"], "give --weights or --arch, not both"),
    (["--arch", "64-x-10"], "Architecture must look like 400-128-128-10"),
    (["--arch", "60-16-10", "--wbits", "2"], "a multi-bit network's input is a square crop: 60 is not a square"),
    (["--arch", "64-16-10", "--abits", "9"], "--abits must be from 1 to 8, not 9"),
    (["--clock", "0"], "--clock must be a frequency in MHz from 0 to 10,000, not 0.0"),
    (["--weights", "nothere.npz"], "nothere.npz"),
    (["--wbits", "2"], "--wbits and --abits go with --arch: a weights file carries its own precision"),
    (["--arch", "64-16-10", "--self-training"], "--self-training costs the chip of an n-bit online weights file"),
    (["--self-training"], "--self-training builds the chip of an n-bit online network"),
    (["--arch", "64-16-10", "--weight-bits", "13"], "Weight planes must be an integer from 1 to 12, not 13"),
])
def test_cost_command_bad_input_is_one_line(args, text, tmp_path):
    one_error_line(rr("cost", *args, "--out", str(tmp_path / "c")), text)


@pytest.mark.slow
def test_training_and_self_training_chips_are_costed_from_their_planes():
    """The 8-bit training chip: every plane computes (slices), both layers take 8-bit inputs
    bit-serially, so every slice column is sampled and converted (no comparator stage), and the
    neurons are 8-bit threshold ramps. Only the self-training chip reads its output layer
    transposed (the backward pass): its row sums add sample-and-holds and converters."""
    chips = {k: cost.design_cost("weights/online-400-200-10.npz", self_training=k == "self")
             for k in ("training", "self")}
    parts = {k: {b["component"]: b for b in r["breakdown"]} for k, r in chips.items()}
    for k in chips:
        assert parts[k]["crossbar arrays"]["what"].startswith("656,000")  # (400*200 + 200*10) * 8
        assert "sense stages" not in parts[k] and parts[k]["threshold RAMs"]["count"] > 0
        assert chips[k]["cycles_per_image"] > 100
    held = {k: sum(lay["converted_columns"] + lay["transposed_rows"] for lay in r["inventory"]["layers"])
            for k, r in chips.items()}
    assert held["training"] == (200 + 10) * 8 and held["self"] == held["training"] + 200 * 8
    assert all(lay["transposed_rows"] == 0 for lay in chips["training"]["inventory"]["layers"])
    assert parts["self"]["converters (ADC)"]["count"] > parts["training"]["converters (ADC)"]["count"]
    assert chips["self"]["area_mm2"] > chips["training"]["area_mm2"]
    assert "self-training chip" in cost.describe(chips["self"])[0]


@pytest.mark.slow  # synthesis: the default suite's budget
def test_analog_sense_view_of_the_verilog():
    """The cost view's Verilog declares the sense stage as a black box and instantiates it per
    layer; Yosys then counts far fewer cells than with the behavioural sense stage."""
    from rrambnn.fpga.build import synth_stats
    from rrambnn.hw.config import ChipConfig
    from rrambnn.hw.verilog import generate
    net = cost.arch_network("64-16-10")
    full, _ = generate(net, ChipConfig((32, 32)))
    view, _ = generate(net, ChipConfig((32, 32)), analog_sense=True)
    assert "rrambnn_sense" not in full
    assert "module rrambnn_sense" in view and view.count("\n  rrambnn_sense #(") == 2
    a, b = synth_stats(full), synth_stats(view)
    assert b["cells_by_type"]["rrambnn_sense"] == 2 and b["cells"] < 0.75 * a["cells"]


@pytest.mark.slow  # four (two) synthesized chips: 30-50 s
def test_cnn_chip_is_costed_by_output_positions_beside_the_reference(tmp_path):
    """A CNN weights file: every copy of every layer's tiles read once per step, MACs by output
    positions, the feature maps' register bits priced on their own, the reference MLP chip at
    the same technology and clock beside it; MLP-only options refused in one line."""
    from rrambnn.gen.cnn import random_cnn
    from rrambnn.hw.cnn import make_chip
    spec = "i9x7x1-c3x5s2p1-p2-d6-d4"
    path = tmp_path / "cnn.npz"
    random_cnn(spec, 2, 2, np.random.default_rng(1)).save(path)
    r = cost.design_cost(path, positions=2)
    chip = make_chip(random_cnn(spec, 2, 2, np.random.default_rng(1)), positions=2)
    inv = r["inventory"]
    # conv 3x3x1 -> 5 channels on a 5x4 output (stride 2, padding 1), then 6 and 4 dense neurons
    assert inv["macs"] == 9 * 5 * (5 * 4) + (2 * 2 * 5) * 6 + 6 * 4 and r["ops_per_image"] == 2 * inv["macs"]
    assert len(inv["layers"]) == 2 + 1 + 1 and inv["map_bits"] == chip.map_bits == 178
    conv = [lay for lay in inv["layers"] if lay["conv"]]
    assert all(lay["read_cycles"] == 2 * 5 * 2 for lay in conv)  # 2 input bit planes x 5 rows x 2 steps per row
    assert r["cycles_per_image"] == chip.interval and r["design"]["positions"] == 2
    parts = {b["component"]: b for b in r["breakdown"]}
    assert parts["feature maps"]["count"] == 178 and parts["crossbar arrays"]["count"] == chip.n_tiles
    assert "sense stages" not in parts and parts["converters (ADC)"]["count"] >= 1  # 2-bit codes: digitised sums
    ref = r["reference_mlp"]
    assert ref["arch"] == [400, 128, 128, 10] and ref["tops_per_mm2"] == pytest.approx(cost.PUBLISHED["tops_per_mm2"],
                                                                                           rel=0.10)
    text = "\n".join(cost.describe(r))
    assert spec in text and "reference MLP 400-128-128-10" in text and "MACs counted by output positions" in text
    one_error_line(rr("cost", "--weights", str(path), "--self-training", "--out", str(tmp_path / "c")),
                   "a CNN file's chip has neither")
    one_error_line(rr("cost", "--positions", "2", "--out", str(tmp_path / "c")), "--positions goes with a CNN")


def test_non_finite_results_are_refused_before_anything_is_written(tmp_path):
    """A technology file with absurd magnitudes can make a figure infinite: JSON has no
    Infinity, so the writer refuses it in one line naming the field, and writes nothing."""
    from rrambnn.fileio import json_text
    assert json_text({"a": [1, 2.5]}) == '{"a": [1, 2.5]}'
    with pytest.raises(RrambnnError, match=r"not finite at breakdown\.1\.power_mw \(NaN or infinity\), which JSON"):
        json_text({"tops": 1.0, "breakdown": [{"power_mw": 1.0}, {"power_mw": float("inf")}]})
    res = {"tops": float("nan"), "breakdown": []}
    with pytest.raises(RrambnnError, match="not finite at tops"):
        cost.write_outputs(res, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


# -- held out: figures the model was not fitted to ------------------------------------------

def test_isaac_ima_priced_by_the_model_is_within_30_percent_of_its_published_figures():
    """ISAAC's in-situ multiply-accumulate unit in its published configuration, priced with this
    model's own rules (converters sized to the conversion rate, crosspoint cells at their
    smallest, the shift-and-add as library cells): area, TOPS/mm^2 and TOPS/W within 30% of
    the published IMA (the model's calibration used only the thesis chip)."""
    r = cost.isaac_ima()
    assert r["ops_per_image"] == 2 * 8 * 128 * 16 and r["cycles_per_image"] == 16 and r["clock_mhz"] == 10
    assert r["tops"] == pytest.approx(0.02048)  # 16,384 16-bit MACs per 1.6 us
    parts = {b["component"]: b for b in r["breakdown"]}
    assert parts["converters (ADC)"]["count"] == 8  # 1,024 columns x 10 MHz / 1.28 GS/s
    assert parts["row drivers"]["count"] == 1024 and "1,024 sample-and-holds" in parts["converters (ADC)"]["what"]
    assert parts["crossbar arrays"]["area_um2"] == pytest.approx(131072 * 4 * 0.032 ** 2)
    assert cost.ISAAC_PUBLISHED["tops_per_w"] == pytest.approx(0.8504, rel=1e-3)
    for k in ("area_mm2", "tops_per_mm2", "tops_per_w", "power_mw"):
        assert 0.7 <= r["ratios"][k] <= 1.3, (k, r["ratios"][k])


@pytest.mark.slow  # the reference chip's synthesis: about 70 s per worker
def test_the_chip_level_is_reported_apart_from_the_core(reference):
    c, t = reference["chip"], cost.load_tech("32nm")["chip"]
    assert c["area_mm2"] > reference["area_mm2"] and c["power_mw"] > reference["power_mw"]
    leak = {b["component"]: b for b in reference["breakdown"]}["leakage"]["power_mw"]
    assert c["power_mw"] == pytest.approx(((reference["power_mw"] - leak) * 1.22 + leak) * 1.188)  # leakage is not post-layout
    std = sum(b["area_um2"] for b in reference["breakdown"]
              if b["component"] in ("threshold registers", "digital periphery", "decoders and column multiplexers")) * 1e-6
    assert c["wiring_mm2"] == pytest.approx(std * (t["wiring_area"] - 1))
    assert c["io_mm2"] == pytest.approx((reference["area_mm2"] + c["wiring_mm2"]) * 0.366)
    assert c["tops_per_mm2"] < reference["tops_per_mm2"] and "chip level" in "\n".join(cost.describe(reference))


@pytest.mark.slow  # synthesis: the default suite's budget
def test_the_published_table_command(tmp_path):
    r = rr("cost", "--published", "--out", str(tmp_path), "--json")
    assert r.returncode == 0, r.stderr
    tab = json.loads(r.stdout.strip().splitlines()[-1])
    rows = {(x["design"].split(" (")[0], x["figure"]): x for x in tab["rows"]}
    assert rows[("thesis reference chip", "TOPS/mm^2")]["ratio"] == pytest.approx(1, rel=0.10)
    assert rows[("ISAAC IMA", "TOPS/W")]["kind"] == cost.COMPOSED
    assert "| ISAAC IMA (the thesis's figure) | TOPS/mm^2 | 1.55 |" in (tmp_path / "published.md").read_text()
    one_error_line(rr("cost", "--published", "--arch", "64-10", "--out", str(tmp_path / "x")),
                   "--published prices its own designs (the thesis chip, ISAAC's IMA): --arch does not go with it")
    one_error_line(rr("cost", "--published", "--tile", "64x64", "--out", str(tmp_path / "x")), "--tile does not go with it")
    good = (cost.TECH_DIR / "32nm.toml").read_text()
    (tmp_path / "small.toml").write_text(good.replace("area_f2 = 48", "area_f2 = 2"))
    (tmp_path / "list.toml").write_text(good.replace('type = "1T1R"', 'type = ["1T1R"]'))
    one_error_line(rr("cost", "--tech", str(tmp_path / "small.toml"), "--out", str(tmp_path / "x")),
                   "cell.area_f2 2 is below the smallest 1T1R cell, 6 F^2")
    one_error_line(rr("cost", "--tech", str(tmp_path / "list.toml"), "--out", str(tmp_path / "x")),
                   "cell.type must be one of 1S1R, 1T1R, not ['1T1R']")
    one_error_line(rr("cost", "--published", "--tech", "130nm", "--out", str(tmp_path / "x")),
                   "the published figures are at 32 nm: technology 130nm is at 130 nm")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("tech", ["32nm", "130nm"])
def test_no_physically_implausible_value(tech):
    """Each priced part against a published range (sources beside ``cost.plausibility``), with
    every shipped device profile: cells at least their type's minimum, the LRS resistance and
    read voltage, the read, a converter's Walden figure of merit, the sense stage below an 8-bit
    converter, capacitors, leakage, the write path."""
    from rrambnn.gen.analog import PROFILES, load_profile
    t = cost.load_tech(tech)
    for dev in PROFILES:
        for name, (lo, hi, value) in cost.plausibility(t, load_profile(dev)).items():
            assert lo <= value <= hi, (dev, name, value, lo, hi)


@pytest.mark.slow  # the reference chip's synthesis: about 70 s per worker
def test_crossbar_reads_are_priced_from_the_device_profile(reference):
    """A read spends V^2 (G_LRS + (G_LRS + G_HRS) / 2) a cell (worst case: every row driven,
    every cell LRS, and the reference current each column's sum is taken against) for its
    layer's read pulse: the column settles through the sense mirror's 1/g_m to half a cell of
    its range, ln(2 rows) C_col / g_m, then the sense stage decides. Values worked by hand."""
    from rrambnn.gen.analog import load_profile
    t = cost.load_tech("32nm")
    # 128 rows: ln 256 x 128 x 0.11 fF / 1 mS = 0.0781 ns; 400 rows: ln 800 x 44 fF / 1 mS = 0.2941 ns
    assert cost.read_pulse({"n_in": 128}, t)["pulse_ns"] == pytest.approx(1.0781, abs=1e-4)
    assert cost.read_pulse({"n_in": 400}, t)["pulse_ns"] == pytest.approx(1.2941, abs=1e-4)
    # the column wire of a tile: 0.38 x (128 x 2.5 ohm) x (128 x 0.11 fF) = 1.71 ps more a time constant
    real = cost.read_pulse({"n_in": 400}, t, load_profile("realistic"))["settle_ns"]
    assert real - cost.read_pulse({"n_in": 400}, t)["settle_ns"] == pytest.approx(math.log(800) * 1.712e-3, rel=1e-3)
    pulses = [cost.read_pulse({"n_in": n}, t)["pulse_ns"] for n in (1, 16, 128, 1024, 8192)]
    assert pulses == sorted(pulses) and pulses[-1] > 2 * pulses[0]  # longer columns settle longer
    xb = {b["component"]: b for b in reference["breakdown"]}["crossbar arrays"]
    # (51,200 cells x 1.2941 ns + 17,664 x 1.0781 ns) x 0.04 V^2 x (10 + 5.294) uS = 52.18 pJ
    assert xb["energy_per_image_j"] == pytest.approx(52.18e-12, rel=1e-3) and "device ideal" in xb["what"]
    energy = {}
    for name, v in (("ideal", 0.2), ("ideal", 0.4), ("realistic", 0.2)):
        d = load_profile(name).scaled(read_voltage_v=v)
        r = cost.price(reference["inventory"], reference["cells_by_type"], t, device=d)
        energy[name, v] = {b["component"]: b for b in r["breakdown"]}["crossbar arrays"]["energy_per_image_j"]
    assert energy["ideal", 0.4] == pytest.approx(4 * energy["ideal", 0.2])  # V^2
    real = load_profile("realistic")  # 100 + (100 + 20) / 2 uS a cell, for its (wire-lengthened) pulses
    assert energy["realistic", 0.2] == pytest.approx(0.04 * 160e-6 * 1e-9 * sum(
        cells * cost.read_pulse({"n_in": n}, t, real)["pulse_ns"] for cells, n in ((51200, 400), (17664, 128))))
    slow = cost.price(reference["inventory"], reference["cells_by_type"], t, clock_mhz=10)
    assert {b["component"]: b for b in slow["breakdown"]}["crossbar arrays"]["energy_per_image_j"] == \
        pytest.approx(energy["ideal", 0.2])  # a slower clock does not lengthen the read
    assert reference["device"] == "ideal"
    with pytest.raises(RrambnnError, match="device ideal: a read at 3 V would program the cells "
                                           r"\(the technology's SET 2.7 V, RESET 2.6 V\)"):
        cost.price(reference["inventory"], reference["cells_by_type"], t,
                   device=load_profile("ideal").scaled(read_voltage_v=3.0))


@pytest.mark.slow  # the reference chip's synthesis: about 70 s per worker
def test_clocks_beyond_the_design_are_refused(reference, tmp_path):
    """The highest clock: one array read a cycle (its pulse), and a converted sum converted
    within its cycle; a clock beyond it is one error line, before the synthesis and before
    anything is written."""
    from rrambnn.gen.analog import load_profile
    t, d = cost.load_tech("32nm"), load_profile("ideal")
    fz = cost.feasibility(reference["inventory"], t, d)
    assert fz["max_clock_mhz"] == pytest.approx(1e3 / cost.read_pulse({"n_in": 400}, t, d)["pulse_ns"])
    assert "400-row column" in fz["limited_by"] and fz["max_clock_mhz"] == pytest.approx(1e3 / 1.2941, rel=1e-4)
    cost.price(reference["inventory"], reference["cells_by_type"], t, clock_mhz=770)
    with pytest.raises(RrambnnError, match="--clock 780 MHz is beyond the highest clock this design can run at, 773 MHz"):
        cost.price(reference["inventory"], reference["cells_by_type"], t, clock_mhz=780)
    fast = {**t, "crossbar": {**t["crossbar"], "sense_decision_ns": 0.1}}
    multi = cost.design_cost(arch="64-16-10", abits=2)
    assert cost.feasibility(multi["inventory"], fast, d)["max_clock_mhz"] == pytest.approx(1280)  # the converters
    assert cost.feasibility(reference["inventory"], fast, d)["max_clock_mhz"] > 2000  # no converter
    one_error_line(rr("cost", "--clock", "2000", "--out", str(tmp_path / "c")),
                   "--clock 2000 MHz is beyond the highest clock this design can run at, 773 MHz (a 400-row column's read")
    hot = tmp_path / "hot.toml"
    hot.write_text((cost.TECH_DIR / "32nm.toml").read_text().replace("clock_mhz = 100 ", "clock_mhz = 5000 "))
    one_error_line(rr("cost", "--tech", str(hot), "--out", str(tmp_path / "c")),
                   "the technology file's clock 5000 MHz is beyond the highest clock this design can run at")
    bad = tmp_path / "dev.toml"
    from rrambnn.gen.analog import PROFILE_DIR
    bad.write_text((PROFILE_DIR / "realistic.toml").read_text().replace("read_voltage_v = 0.2", "read_voltage_v = 0.0"))
    one_error_line(rr("cost", "--device", str(bad), "--out", str(tmp_path / "c")), "read_voltage_v must be a number > 0")
    assert not (tmp_path / "c").exists()


def test_the_ir_drop_limit_is_the_analog_models():
    """The rows one sense stage can sum before the device's wire resistance alone moves the far
    column's sum by half a cell's signal (one unit of the analog model): the limit read off
    :mod:`rrambnn.gen.analog`'s own chip map, across row tiles too; none without wires."""
    from rrambnn.gen import analog as A
    p = A.load_profile("realistic").scaled(sigma_lrs=0.0, sigma_hrs=0.0, read_noise=0.0, offset=0.0)

    def error(rows, q):  # in units of 2^-FRAC of one cell
        chip = A.chip_map([np.ones((rows, 128), np.uint8)], q, seed=0)
        return rows * (1 << A.FRAC) - int(chip.layers[0].q[:, -1].sum())

    n = cost.ir_drop_rows(p)
    assert error(n, p) < 1 << A.FRAC <= error(n + 1, p)
    q = p.scaled(wire_ohm=0.1)  # a loss of ~1/256 of a unit a cell: the map's rounding, up to 1/2 of it a cell
    n = cost.ir_drop_rows(q)
    assert error(n, q) - n / 2 < 1 << A.FRAC <= error(n + 1, q) + (n + 1) / 2
    assert cost.ir_drop_rows(p) == 12 and cost.ir_drop_rows(p.scaled(wire_ohm=0.1)) > 128  # over a tile
    assert cost.ir_drop_rows(A.load_profile("ideal")) is None
    r = cost.design_cost(arch="64-16-10", device=p)
    assert r["feasibility"]["ir_drop"] == {"wire_ohm_per_cell": 2.5, "limit_rows": 12, "rows_summed": 64,
                                           "exceeded": True}
    assert "from 13 rows on" in "\n".join(cost.describe(r))


@pytest.mark.slow  # the reference chip's synthesis: about 70 s per worker
def test_the_programming_path_sampling_capacitors_and_leakage_are_priced(reference):
    """Every line of every tile has an address decoder's AND (bit lines also a column multiplexer)
    and a high-voltage switch, each tile two write drivers, one charge pump reaches the SET
    voltage for one cell's write current, a sample-and-hold's capacitor holds kT/C noise below the
    converter's quantisation noise, and standard cells and SRAM bits leak while the chip runs (the
    programming path is power-gated). Values worked by hand."""
    t = cost.load_tech("32nm")
    parts = {b["component"]: b for b in reference["breakdown"]}
    wl, bl = 400 + 128 + 128, 128 * 4 + 128 + 10  # the 400-row layer's four row tiles each have 128 bit lines
    assert parts["decoders and column multiplexers"]["count"] == wl + bl and parts["write drivers"]["count"] == wl + bl + 12
    assert parts["write drivers"]["area_um2"] == pytest.approx((wl + bl) * 0.40 + 12 * 5.1)
    assert parts["decoders and column multiplexers"]["area_um2"] == pytest.approx(
        ((wl + bl) * (0.798 + 0.532) + bl * 1.862) * 0.50568)
    assert all(parts[k]["energy_per_image_j"] == 0 for k in ("write drivers", "charge pump"))  # programming only
    pump = cost.charge_pump(t)
    # 13.08 pJ / (2.7 V x 50 ns) = 96.9 uA; 7 stages of 0.9 - 0.35 V leave 2.05 V over 2.7 V, 0.293 V a
    # stage: 3.31 pF a stage, 23.2 pF in all (6 stages: 23.25 pF, 8: 23.85 pF)
    assert pump["stages"] == 7 and pump["current_a"] == pytest.approx(96.89e-6, rel=1e-3)
    assert pump["cap_f"] == pytest.approx(23.16e-12, rel=1e-3) and parts["charge pump"]["area_um2"] == pytest.approx(1715.5, rel=1e-3)
    high = {**t, "vdd": 3.0, "write": {**t["write"], "pump_vt": 0.5}}
    assert cost.charge_pump(high)["stages"] == 0
    assert "charge pump" not in {b["component"] for b in cost.price(reference["inventory"], reference["cells_by_type"], high)["breakdown"]}
    assert cost.ktc_cap_f(8, 0.9) == pytest.approx(4.02e-15, rel=1e-3)  # 12 kT 4^8 / 0.81 V^2
    assert cost.ktc_cap_f(9, 0.9) == pytest.approx(4 * cost.ktc_cap_f(8, 0.9))
    cells = reference["cells_by_type"]
    lib = t["logic"]["cells_um2"]
    leak = sum(n * sum(lib[p] for p in cost.library_cells(k)[0]) for k, n in cells.items()
               if k.startswith("$") and not k.startswith("$scopeinfo")) * 20e-9
    assert parts["leakage"]["power_mw"] == pytest.approx(leak * 1e3)
    multi = cost.design_cost(arch="64-16-10", abits=2)
    adc = next(b for b in multi["breakdown"] if b["component"] == "converters (ADC)")
    assert "kT/C" in adc["what"]
    lay = multi["inventory"]["layers"]
    caps = sum(x["converted_columns"] * cost.ktc_cap_f(x["adc_bits"], 0.9) for x in lay)
    adcs = sum(max(1, -(-x["converted_columns"] * 100 // 1280)) * 1200 * 2.0 ** (x["adc_bits"] - 8)
               for x in lay if x["converted_columns"])
    held = sum(x["converted_columns"] for x in lay) * 0.039063
    assert adc["area_um2"] == pytest.approx(adcs + held + caps * 1e15 / 13.5)
