"""Seeded commands run twice give the same results, every field but wall times, whatever the
number of worker processes (issue: reproducible studies). Small runs of the real commands."""

import json

import pytest
from conftest import rr

WALL = {"seconds", "wall_seconds", "train_seconds", "train_seconds_total", "seconds_per_epoch", "files", "outputs",
        "train_seconds_mean", "elapsed_s", "wall_s", "build_s", "sim_wall_s", "generate_s", "build_cached", "log", "images_per_s",
        "samples_per_s", "out"}


def _strip(d):
    """The result without wall times and paths (which say where and how fast, not what)."""
    if isinstance(d, dict):
        return {k: _strip(v) for k, v in d.items() if k not in WALL}
    if isinstance(d, list):
        return [_strip(v) for v in d]
    return d


def _npz(path):
    """A weights file's arrays (as bytes) and metadata, without the wall times it records."""
    import numpy as np
    with np.load(path) as z:
        out = {k: z[k].tobytes() for k in z.files if k != "meta"}
        out["meta"] = _strip(json.loads(str(z["meta"])))
    return out


def _run(args, out=None):
    """One run's JSON without wall times; its output directory ``out`` named OUT, so files
    written inside it compare by name."""
    r = rr(*args, "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    text = r.stdout.strip().splitlines()[-1]
    if out is not None:
        text = text.replace(json.dumps(str(out))[1:-1], "OUT")
    return _strip(json.loads(text))


def _twice(args_a, args_b, outs=(None, None)):
    return _run(args_a, outs[0]), _run(args_b, outs[1])


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


def test_explore_repeats_whatever_the_workers_and_backend(tmp_path):
    pytest.importorskip("distributed")
    args = ["explore", "--axis", "crop=8", "--axis", "hidden=8,12", "--layers", "1", "--epochs", "1", "--seeds", "1",
            "--no-synth"]
    one, two, dask = tmp_path / "one", tmp_path / "two", tmp_path / "dask"
    a, b = _twice(args + ["--jobs", "1", "--out", str(one)], args + ["--jobs", "2", "--out", str(two)], (one, two))
    c = _run(args + ["--jobs", "2", "--backend", "dask", "--out", str(dask)], dask)
    assert a == b == c and len(a["rows"]) == 2
    for name in ("c8-h8x1-w1-a1-signed-s0-e1.npz", "c8-h12x1-w1-a1-signed-s0-e1.npz"):  # the trained networks too
        assert _npz(one / "weights" / name) == _npz(two / "weights" / name) == _npz(dask / "weights" / name)


def test_the_variation_sweep_repeats_whatever_the_worker_count(tmp_path):
    args = ["sweep", "variation", "--effects", "variation,offset", "--variation", "0.2", "--offset", "2",
            "--chips", "2", "--calibration", "200", "--seed", "3"]
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a, b = _twice(args + ["--jobs", "1", "--out", str(a_dir)], args + ["--jobs", "2", "--out", str(b_dir)],
                  (a_dir, b_dir))
    assert a == b and len(a["curves"]) == 2


def test_the_cnn_bits_sweep_repeats_whatever_the_worker_count(tmp_path):
    args = ["sweep", "cnn-bits", "--arch", "i12-c3x4s2-d10", "--values", "2/2/2/4,32/32/32/32", "--disturbances", "0.05",
            "--seeds", "1", "--epochs", "1", "--samples", "300", "--disturbance-draws", "read"]
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a, b = _twice(args + ["--jobs", "1", "--out", str(a_dir)], args + ["--jobs", "2", "--out", str(b_dir)],
                  (a_dir, b_dir))
    assert a == b


def test_analog_evaluation_repeats(tmp_path):
    args = ["eval", "--device", "realistic", "--chips", "2", "--seed", "4", "--calibration", "200"]
    a, b = _twice(args, args)
    assert a == b and len(a["per_chip"]) == 2
