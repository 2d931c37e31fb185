"""The CLI: one clear error line for every bad input, never a traceback; outputs are kept."""

import json

import pytest

from rrambnn.gen.network import random_network
from conftest import one_error_line, rr


@pytest.fixture
def bad_weights(tmp_path):
    p = tmp_path / "bad.npz"
    p.write_bytes(b"PK\x03\x04 broken")
    return p


def test_eval_shipped_json():
    r = rr("eval", "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["arch"] == "400-128-128-10" and res["images"] == 10000
    assert res["accuracy"]["argmax"] > 0.95


def test_eval_errors(tmp_path, bad_weights):
    one_error_line(rr("eval", "--weights", str(bad_weights)), "not a readable .npz weights file")
    one_error_line(rr("eval", "--weights", str(tmp_path / "none.npz")), "weights file not found")
    one_error_line(rr("eval", "--data", str(tmp_path / "nodata")), "MNIST directory not found (looked in --data:")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "t10k-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b\x08\x00junk")
    one_error_line(rr("eval", "--data", str(tmp_path / "d")), "t10k-images-idx3-ubyte.gz: cannot read")


def test_train_errors_keep_existing_output(tmp_path):
    out = tmp_path / "keep.npz"
    out.write_bytes(b"precious")
    one_error_line(rr("train", "--arch", "400-12-x", "--out", str(out)), "Architecture must look like")
    one_error_line(rr("train", "--arch", "300-10", "--out", str(out)), "does not match crop 20x20")
    one_error_line(rr("train", "--epochs", "0", "--out", str(out)), "Epochs must be a positive integer, not 0")
    one_error_line(rr("train", "--out", str(tmp_path / "w.txt")), "--out must name a .npz file")
    one_error_line(rr("train", "--out", str(out), "--data", str(tmp_path)), "MNIST file train-images-idx3-ubyte")
    assert out.read_bytes() == b"precious"


@pytest.fixture(scope="module")
def small_weights(tmp_path_factory):
    """A small network trained through the CLI (also the end-to-end test of `train`)."""
    out = tmp_path_factory.mktemp("w") / "n.npz"
    r = rr("train", "--arch", "144-16-10", "--crop", "12", "--epochs", "2", "--out", str(out),
           "--quiet", "--json")
    assert r.returncode == 0, r.stderr
    return out, json.loads(r.stdout)


def test_train_small_end_to_end(small_weights):
    out, res = small_weights
    assert res["accuracy"]["argmax"] > 0.5
    r = rr("eval", "--weights", str(out), "--json")
    assert json.loads(r.stdout)["accuracy"] == pytest.approx(res["accuracy"])


def test_program_command(small_weights):
    out, _ = small_weights
    r = rr("program", "--weights", str(out), "--yield", "0.95", "--pulse-fail", "0.2", "--endurance", "3",
           "--retries", "2", "--seed", "4", "--images", "300", "--tile", "64x16", "--initial", "random", "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    rep = json.loads(r.stdout)
    assert rep["passed"] and rep["hardware"] == rep["golden"] and rep["failed_cells_match"]
    assert rep["golden"]["cells_failed"] > 0 and rep["read_back"]["cell_mismatches"] == 0
    assert rep["classification"]["mismatches"] == 0 and rep["classification"]["images"] == 300


def test_program_errors(small_weights, tmp_path):
    out, _ = small_weights
    one_error_line(rr("program", "--weights", str(out), "--yield", "1.2"), "Bit yield must be a number from 0 to 1")
    one_error_line(rr("program", "--weights", str(out), "--retries", "-1"), "Retries must be an integer from 0 to 255")
    one_error_line(rr("program", "--weights", str(out), "--faults", str(tmp_path / "nope.npz")), "not a fault-map file")
    one_error_line(rr("program", "--weights", str(out), "--initial", "zeros"), "Initial array state must be hrs, random or weights")


def test_sweep_yield_command(small_weights, tmp_path):
    out, _ = small_weights
    r = rr("sweep", "yield", "--weights", str(out), "--yields", "1.0,0.9,0.7", "--seeds", "2",
           "--spot-checks", "1", "--spot-images", "200", "--out", str(tmp_path / "sw"), "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout)
    acc = {e["yield"]: e["argmax"]["mean"] for e in res["summary"]}
    assert acc[1.0] > acc[0.7] and res["spot_checks"][0]["passed"] and res["spot_checks"][0]["mismatches"] == 0
    assert (tmp_path / "sw" / "yield.png").stat().st_size > 10000 and (tmp_path / "sw" / "yield.md").exists()
    one_error_line(rr("sweep", "yield", "--yields", "1.0,abc"), "--yields must be a comma-separated list")
    one_error_line(rr("sweep", "noise"), "rrambnn sweep knows yield, bits and endurance, not 'noise'")


def test_verilog_command(tmp_path, bad_weights):
    out = tmp_path / "chip.v"
    r = rr("verilog", "--out", str(out), "--tile", "64x64", "--pipeline", "--output", "argmax")
    assert r.returncode == 0, r.stderr
    assert "20 crossbar tile(s) of 64x64" in r.stdout and "latency 4" in r.stdout
    text = out.read_text()
    assert text.startswith("// rrambnn inference chip") and "module rrambnn_crossbar" in text
    one_error_line(rr("verilog", "--out", str(out), "--tile", "0x4"), "Tile rows must be an integer from 1 to 1024, not 0")
    one_error_line(rr("verilog", "--out", str(out), "--tile", "abc"), "Tile size must look like 128x128")
    one_error_line(rr("verilog", "--out", str(out), "--output", "softmax"), "Output stage must be 'priority' or 'argmax'")
    one_error_line(rr("verilog", "--out", str(out), "--weights", str(bad_weights)), "not a readable .npz")
    assert out.read_text() == text  # failed runs left the earlier output alone


def test_sim_rejects_bad_image_count():
    one_error_line(rr("sim", "--images", "0"), "--images must be from 1 to 10000, not 0")


def test_sim_raw_network_is_rejected(tmp_path, rng):
    p = tmp_path / "raw.npz"
    random_network("7-3", rng).save(p)
    one_error_line(rr("sim", "--weights", str(p)), "raw-bit inputs")


def test_bench_golden(tmp_path):
    out = tmp_path / "bench.json"
    r = rr("bench", "--images", "20000", "--out", str(out))
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())["golden"]
    assert res["golden_images_per_s"] > 0 and res["float_matmul_images_per_s"] > 0
    assert res["machine"]["cores"] >= 1
