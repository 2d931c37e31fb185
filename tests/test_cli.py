"""The CLI: one clear error line for every bad input, never a traceback; outputs are kept."""

import json
import subprocess
import sys

import numpy as np
import pytest

from rrambnn.gen.network import random_network


def rr(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "rrambnn", *args], capture_output=True, text=True,
                          env=env, cwd=cwd)


def one_error_line(r, text):
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert text in lines[0], lines[0]


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


def test_train_small_end_to_end(tmp_path):
    out = tmp_path / "n.npz"
    r = rr("train", "--arch", "144-16-10", "--crop", "12", "--epochs", "1", "--out", str(out),
           "--quiet", "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["accuracy"]["argmax"] > 0.5
    r = rr("eval", "--weights", str(out), "--json")
    assert json.loads(r.stdout)["accuracy"] == pytest.approx(res["accuracy"])


def test_verilog_command(tmp_path, bad_weights):
    out = tmp_path / "chip.v"
    r = rr("verilog", "--out", str(out), "--tile", "64x64", "--pipeline", "--output", "argmax")
    assert r.returncode == 0, r.stderr
    assert "20 crossbar tile(s) of 64x64" in r.stdout and "latency 4" in r.stdout
    text = out.read_text()
    assert text.startswith("// rrambnn inference chip") and "module rrambnn_crossbar" in text
    one_error_line(rr("verilog", "--out", str(out), "--tile", "0x4"), "Tile rows must be an integer from 1 to 1024, not 0")
    one_error_line(rr("verilog", "--out", str(out), "--tile", "abc"), "Tile size must look like 128x128")
    one_error_line(rr("verilog", "--out", str(out), "--output", "softmax"), "Output stage must be one of priority, argmax")
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
