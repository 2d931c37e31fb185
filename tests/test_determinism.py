"""Seeded commands run twice give the same results, every field but wall times, whatever the
number of worker processes (issue: reproducible studies). Small runs of the real commands."""

import json

import pytest
from conftest import rr

WALL = {"seconds", "wall_seconds", "train_seconds", "train_seconds_total", "seconds_per_epoch", "files", "outputs",
        "elapsed_s", "wall_s", "build_s", "sim_wall_s", "log", "images_per_s", "samples_per_s", "out"}


def _strip(d):
    """The result without wall times and paths (which say where and how fast, not what)."""
    if isinstance(d, dict):
        return {k: _strip(v) for k, v in d.items() if k not in WALL}
    if isinstance(d, list):
        return [_strip(v) for v in d]
    return d


def _twice(args_a, args_b):
    a, b = rr(*args_a, "--json"), rr(*args_b, "--json")
    assert a.returncode == 0, a.stderr[-2000:]
    assert b.returncode == 0, b.stderr[-2000:]
    return _strip(json.loads(a.stdout.strip().splitlines()[-1])), _strip(json.loads(b.stdout.strip().splitlines()[-1]))


def test_online_training_on_a_realistic_device_repeats(tmp_path):
    args = ["online", "--start", "blank", "--samples", "60", "--epochs", "1", "--pulse-fail", "0.02", "--yield", "0.97",
            "--endurance", "20", "--seed", "5"]
    a, b = _twice(args + ["--out", str(tmp_path / "a")], args + ["--out", str(tmp_path / "b")])
    assert a == b and a["per_epoch"][-1]["cells_failed"] > 0


def test_training_a_small_cnn_repeats(tmp_path):
    args = ["train", "--arch", "i12-c3x4s2-d10", "--abits", "2", "--cobits", "2", "--wbits", "2", "--gbits", "4",
            "--epochs", "1", "--samples", "400", "--disturbance", "0.05", "--seed", "4", "--quiet"]
    a, b = _twice(args + ["--out", str(tmp_path / "a.npz")], args + ["--out", str(tmp_path / "b.npz")])
    assert a == b
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()


def test_the_yield_sweep_repeats(tmp_path):
    args = ["sweep", "yield", "--yields", "0.97,0.9", "--seeds", "2", "--pulse-fail", "0.01", "--spot-checks", "0"]
    a, b = _twice(args + ["--out", str(tmp_path / "a")], args + ["--out", str(tmp_path / "b")])
    assert a == b


@pytest.mark.parametrize("what, values", [("bits", "2,3"), ("endurance", "5,0")])
def test_online_sweeps_repeat_whatever_the_worker_count(tmp_path, what, values):
    args = ["sweep", what, "--values", values, "--start", "blank", "--samples", "40", "--epochs", "1",
            "--pulse-fail", "0.01", "--seed", "2"]
    a, b = _twice(args + ["--jobs", "1", "--out", str(tmp_path / "a")], args + ["--jobs", "2", "--out", str(tmp_path / "b")])
    assert a == b
