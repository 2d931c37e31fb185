"""The self-training chip: the transposed read (golden and Verilog), the trainer on
Verilator against the golden trainer, the cycle model, and the checks of its parameters."""

import numpy as np
import pytest
from conftest import one_error_line, rr

from rrambnn.errors import RrambnnError
from rrambnn.gen import device as dev
from rrambnn.gen import online_nbit
from rrambnn.hw.crossbar import CrossbarTile
from rrambnn.hw.layer import Layer
from rrambnn.hw.trainer import SelfTrainingChip, Trainer, chip_interval, sample_cycles
from rrambnn.hw.config import training_design
from rrambnn.hw.verilog import build_chip
from rrambnn.sim.chip_sim import simulate_self_training


def _chip(arch=(16, 12, 4), **kw):
    ncfg = online_nbit.NbitConfig(**{"wbits": 4, **kw})
    return ncfg, online_nbit.NbitChip(arch, ncfg, online_nbit.blank_codes(arch, ncfg))


@pytest.mark.parametrize("bits, yield_", [(4, 1.0), (8, 0.9), (3, 0.8)])
def test_backward_read_is_w_transpose_e(bits, yield_):
    """Bit-serial transposed reads of the output layer's planes give g = w2 @ eq, stuck cells included."""
    ncfg, chip = _chip((16, 20, 10), wbits=bits, tile=(8, 4), device=dev.DeviceParams(yield_=yield_, seed=3))
    rng = np.random.default_rng(bits)
    for _ in range(30):
        eq = rng.integers(-ncfg.E, ncfg.E + 1, 10) * (rng.random(10) < 0.7)
        assert (chip.backward_read(eq) == chip.w[1] @ eq).all()


def test_transposed_read_checks_its_input():
    _, chip = _chip()
    with pytest.raises(RrambnnError, match="a transposed read of layer 1 takes 4 column bits"):
        chip.arrays[1].transposed_read(np.array([1, 0, 2, 0]))


def test_step_reports_its_error_and_skips_blank_images():
    ncfg, chip = _chip()
    st = chip.compute(np.zeros(16, np.uint8), 2)
    assert st.eq is not None and len(st.eq) == 4
    assert len(st.cols) == 0  # no pixel set: no hidden update, whatever the error


def test_parameter_messages():
    with pytest.raises(ValueError, match="A storage-only crossbar has no transposed read"):
        CrossbarTile(np.zeros((4, 4)), compute=False, transposed=True)
    with pytest.raises(TypeError, match="Crossbar transposed must be a bool, not 1"):
        CrossbarTile(np.zeros((4, 4)), transposed=1)
    with pytest.raises(TypeError, match="Layer transposed must be a bool, not 'yes'"):
        Layer(np.ones((4, 4)), np.zeros(4), transposed="yes")
    ncfg = online_nbit.NbitConfig(wbits=4)
    with pytest.raises(ValueError, match="one hidden layer"):
        Trainer((16, 12, 8, 4), ncfg, out_layout=None, sum_width=8, tsum_width=8, cmd_layout=None)
    with pytest.raises(ValueError, match="learning-rate shifts >= 0"):
        Trainer((16, 12, 4), online_nbit.NbitConfig(wbits=2, lr_shift=0), out_layout=None, sum_width=8, tsum_width=8,
                cmd_layout=None)
    net, cfg = training_design((16, 12, 4), ncfg, online_nbit.blank_codes((16, 12, 4), ncfg))
    with pytest.raises(ValueError, match="needs a training chip with the backward read"):
        SelfTrainingChip(build_chip(net, cfg), ncfg)


def test_self_training_chip_ports():
    """The training chip's ports without the update stream and the transposed read, plus train."""
    ncfg = online_nbit.NbitConfig(wbits=4)
    codes = online_nbit.blank_codes((16, 12, 4), ncfg)
    net, cfg = training_design((16, 12, 4), ncfg, codes, self_training=True)
    chip = build_chip(net, cfg)
    assert isinstance(chip, SelfTrainingChip) and cfg.debug
    names = set(chip.signature.members)
    assert {"train", "lr_decay", "train_busy", "n_samples", "i", "o", "prog", "failed", "n_updates"} <= names
    assert not names & {"upd", "tr_x", "tr_sums"}
    assert chip.trainer.train_layout["image"].width == 16
    assert chip.interval == chip_interval(ncfg) == 26


def test_cycle_model_without_error_is_fixed():
    ncfg = online_nbit.NbitConfig(wbits=4)
    idle = sample_cycles((16, 12, 4), ncfg, interval=26, updated=False)
    assert idle == 1 + 25 + 1 + 4 * 4 + 1 + 1
    busy = sample_cycles((16, 12, 4), ncfg, interval=26, updated=True)
    assert busy == idle + 2 * 3 + 12 + 1 + 1  # backward reads, hidden rows, rank-1 decision, last row step


def _random_run(arch, bits, restore, tile, yield_, p_fail, endurance, seed, samples=50, lr_decay=0, golden_cfg=None):
    ncfg = online_nbit.NbitConfig(wbits=bits, restore=restore, tile=tile, seed=seed,
                               device=dev.DeviceParams(yield_=yield_, p_fail=p_fail, endurance=endurance, seed=seed))
    rng = np.random.default_rng(seed)
    codes = online_nbit.blank_codes(arch, ncfg)
    x = (rng.random((samples, arch[0])) < 0.4).astype(np.uint8)
    x[3] = 0  # a blank image: no hidden update
    y = rng.integers(0, arch[2], samples)
    xt = (rng.random((20, arch[0])) < 0.4).astype(np.uint8)
    print(f"arch {arch} bits {bits} restore {restore} tile {tile} device {ncfg.device} seed {seed}")
    return simulate_self_training(arch, ncfg, codes, x, y, xt, seed=seed, lr_decay=lr_decay, p_image=0.2, golden_cfg=golden_cfg)


@pytest.mark.parametrize("arch, bits, restore, tile, yield_, p_fail, endurance, seed, lr_decay", [
    ((16, 12, 4), 4, True, (8, 3), 0.95, 0.05, 30, 41, 0),
    pytest.param((9, 10, 3), 6, False, (128, 128), 1.0, 0.0, 0, 42, 1, marks=pytest.mark.slow),
])
def test_random_self_training_chips_match_golden(arch, bits, restore, tile, yield_, p_fail, endurance, seed,
                                                 lr_decay):
    res = _random_run(arch, bits, restore, tile, yield_, p_fail, endurance, seed, lr_decay=lr_decay)
    assert res["passed"], f"{res.get('failures')}; log {res['log']}"
    assert res["cycle_mismatches"] == 0 and res["busy_cycles"] == res["model_cycles"]
    assert res["hardware"] == res["golden"] and res["failed_match"] and res["codes_match"]
    assert res["n_samples"] == 50 and res["updating_samples"] > 10 and res["class_mismatches"] == 0
    assert res["images_during_training"] > 0 and res["image_mismatches"] == 0
    if yield_ < 1 or p_fail:
        assert res["failed_cells"] > 0


def test_self_training_testbench_catches_a_different_rule():
    """The scoreboard is not blind: a golden trainer with other random draws disagrees."""
    import dataclasses
    arch, bits, seed = (16, 12, 4), 4, 41
    ncfg = online_nbit.NbitConfig(wbits=bits, tile=(8, 3), seed=seed + 1,
                               device=dev.DeviceParams(yield_=0.95, p_fail=0.05, endurance=30, seed=seed))
    res = _random_run(arch, bits, True, (8, 3), 0.95, 0.05, 30, seed, golden_cfg=dataclasses.replace(ncfg))
    assert not res["passed"], "a golden trainer with other draws agreed with the chip"
    assert res["cell_mismatches"] > 0 and res["cycle_mismatches"] > 0, res.get("failures")


@pytest.mark.slow
def test_full_self_training_chip_trains_2000_samples(tmp_path):
    """The issue's acceptance test: 2,000 samples of the run's order streamed into the full
    self-training chip (400-200-10, 8-bit weights and neurons, 80 computing arrays; the shipped
    network fine-tuned on a chip with yield 0.95, pulse failures and an endurance limit) on
    Verilator; every cell, counter and failed cell, 200 test images and every step's cycles equal
    the golden trainer's."""
    import json

    r = rr("online", "--on-chip", "--on-chip-samples", "2000", "--yield", "0.95", "--pulse-fail", "0.01",
           "--endurance", "10", "--seed", "3", "--out", str(tmp_path), "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout)
    assert res["passed"] and res["samples"] == 2000 and res["n_samples"] == 2000
    assert res["cycle_model_mismatches"] == 0 and res["busy_cycles"] == res["model_cycles"]
    assert res["hardware"] == res["golden"] and res["failed_match"] and res["codes_match"]
    assert res["cells_read"] == 8 * (400 * 200 + 200 * 10)
    assert res["cell_mismatches"] == res["count_mismatches"] == res["class_mismatches"] == 0
    assert res["failed_cells"] > 0 and res["worn_out_cells"] > 0  # faults, failures and wear were all in play
    assert res["image_mismatches"] == 0
    assert (tmp_path / "onchip.json").is_file()


def test_on_chip_cli_errors(tmp_path):
    for args, msg in ((("--forward", "sign"), "--on-chip trains with the n-bit rule"),
                      (("--on-chip-samples", "0"), "--on-chip-samples must be a positive integer, not 0"),
                      (("--save", str(tmp_path / "n.npz")), "--save belongs to the golden run")):
        one_error_line(rr("online", "--on-chip", *args, "--out", str(tmp_path)), msg)
    one_error_line(rr("verilog", "--self-training", "--out", str(tmp_path / "x.v")),
                   "--self-training builds the chip of an n-bit online network")


def _small_online_file(path, arch=(16, 12, 4)):
    ncfg = online_nbit.NbitConfig(wbits=8)
    online_nbit.save_codes(path, arch, ncfg, online_nbit.blank_codes(arch, ncfg), {"trained_by": "test"})
    return path


def test_fpga_self_training_refuses_twin_options(tmp_path):
    one_error_line(rr("fpga", "--board", "ulx3s-85f", "--self-training", "--lanes", "4", "--out", str(tmp_path)),
                   "--lanes belongs to the emulation twin")


@pytest.mark.slow
@pytest.mark.fpga
def test_fpga_self_training_reports_what_keeps_it_from_a_bitstream(tmp_path):
    """The periphery of a small self-training chip synthesized for the iCE40; no bitstream, and the
    one error line and the report say why."""
    import json
    w = _small_online_file(tmp_path / "small.npz")
    r = rr("fpga", "--board", "icebreaker", "--self-training", "--weights", str(w), "--out", str(tmp_path / "b"))
    one_error_line(r, "no bitstream for the self-training chip on icebreaker")
    assert "the arrays have no FPGA emulation" in r.stderr
    report = json.loads((tmp_path / "b" / "self-training-report.json").read_text())
    assert report["bitstream"] is None and report["periphery"]["luts"] > 1000
    assert report["cells_bits"] == 8 * (16 * 12 + 12 * 4)
    assert "LUT4" in r.stdout
