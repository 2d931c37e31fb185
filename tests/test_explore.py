"""Design-space exploration: axes, merges, small sweeps per axis, caching and resume, cost from
the generator, the Verilog command from the table."""

import subprocess
import sys

import pytest
from conftest import one_error_line, rr

from rrambnn.errors import RrambnnError
from rrambnn.studies import explore as ex
from rrambnn.gen.mnist import Preprocess
from rrambnn.gen.network import BinaryNetwork
from rrambnn.gen.netfile import load_network
from rrambnn.gen.train import TrainConfig, signed_merge, train

SMALL = dict(seeds=1, epochs=1, jobs=1, progress=False, train_limit=3000)


def test_axes_parse_cross_and_reject():
    pts = ex.parse_axes(["crop=12,8", "hidden=16,24", "bn=signed,software"], layers=1)
    assert len(pts) == 8 and {p.arch for p in pts} == {(144, 16, 10), (144, 24, 10), (64, 16, 10), (64, 24, 10)}
    assert [p.bn for p in ex.parse_axes(["bn"])] == list(ex.BN_MODES)
    assert ex.parse_axes([])[0].arch == (400, 128, 128, 10)  # the reference chip
    for spec, message in (("size=3", "unknown axis 'size'"), ("bn=exact", "bn must be one of"),
                          ("crop=30", "crop must be from 1 to 28, not 30"), ("hidden=x", "hidden values must be integers")):
        with pytest.raises(RrambnnError, match=message):
            ex.parse_axes([spec])


def test_costs():
    p = ex.Point()
    assert ex.synaptic_bits(p) == 400 * 128 + 128 * 128 + 128 * 10
    assert ex.tiles(p) == 6  # the reference chip's arrays
    assert ex.tiles(ex.Point(crop=28, hidden=192)) == 7 * 2 + 2 * 2 + 2 * 1


@pytest.fixture(scope="module")
def bn_model(mnist_train):
    cfg = TrainConfig(arch="144-24-16-10", crop=12, epochs=1, seed=3, ema=0.0)
    _, model, _ = train(cfg, mnist_train.images[:3000], mnist_train.labels[:3000], progress=False)
    return model


def test_arithmetic_merge_loses_the_scale(bn_model, mnist_test):
    w_s, t_s = signed_merge(bn_model)
    w_a, t_a = ex.arithmetic_merge(bn_model)
    assert all((a == b).all() for a, b in zip(w_s, w_a))  # the same signs...
    assert any((a != b).any() for a, b in zip(t_s[:-1], t_a[:-1]))  # ...but the thresholds are off
    assert (t_s[-1] == t_a[-1]).all()  # the output stage is merged exactly in both
    x = Preprocess(12)(mnist_test.images[:2000])
    exact = BinaryNetwork(w_s, t_s, Preprocess(12)).forward(x)
    assert ((bn_model.float_eval(x) >= 0) == (exact.acts[-1] == 1)).all()
    arith = BinaryNetwork(w_a, t_a, Preprocess(12)).forward(x)
    assert (arith.acts[0] != exact.acts[0]).any()


def test_shared_scale_training_merges_exactly(mnist_train, mnist_test):
    cfg = TrainConfig(arch="144-24-16-10", crop=12, epochs=2, seed=4, ema=0.0, hidden_norm="shared")
    net, model, hist = train(cfg, mnist_train.images[:6000], mnist_train.labels[:6000], progress=False)
    assert all(g.shape == (1,) for g in model.gamma)  # one scale a layer
    assert hist[1]["loss"] < hist[0]["loss"]
    w, t = signed_merge(model)
    x = Preprocess(12)(mnist_test.images[:2000])
    merged = BinaryNetwork(w, t, Preprocess(12)).forward(x)
    assert ((model.float_eval(x) >= 0) == (merged.acts[-1] == 1)).all()
    assert net.accuracy(x, mnist_test.labels[:2000])["argmax"] > 0.15  # chance is 0.1
    with pytest.raises(RrambnnError, match="Hidden normalisation must be 'bn' or 'shared', not 'group'"):
        TrainConfig(arch="144-24-10", crop=12, hidden_norm="group").validate()


@pytest.mark.parametrize("axis", ["crop=12,8", "hidden=12,24", "bn"])
def test_each_axis_on_a_small_sweep(axis, tmp_path):
    base = ["crop=12", "hidden=16"]
    specs = [s for s in base if s.split("=")[0] != axis.split("=")[0]] + [axis]
    points = ex.parse_axes(specs, layers=1)
    res = ex.explore(points, out_dir=tmp_path, synth=False, **SMALL)
    rows = res["rows"]
    assert len(rows) == len(points)
    for p in points:
        r = rows[p.key]
        assert 0.1 < r["acc_priority"] <= 1 and 0.1 < r["acc_argmax"] <= 1  # chance is 0.1
        assert (r["tiles"] is None) == (p.bn == "software")
    assert any(r.get("pareto") for r in rows.values())
    paths = ex.write_outputs(res, tmp_path)
    assert "| point |" in open(paths["md"]).read() and open(paths["png"], "rb").read(4) == b"\x89PNG"
    if axis == "bn":
        by = {p.bn: rows[p.key] for p in points}
        assert by["software"]["synaptic_bits"] == by["signed"]["synaptic_bits"]
        assert by["arithmetic"]["acc_priority"] != by["signed"]["acc_priority"]


@pytest.mark.slow
@pytest.mark.parametrize("axis", ["wbits=1,2,4", "abits=1,2,3"])
def test_precision_axes_on_a_small_sweep_with_generator_costs(axis, tmp_path):
    """Multi-bit points get an accuracy from their golden network and every cost from their generated chip."""
    points = ex.parse_axes(["crop=8", "hidden=8", axis, "bn=signed,arithmetic"], layers=1)
    res = ex.explore(points, out_dir=tmp_path, synth=True, **SMALL)
    rows = res["rows"]
    by = {(p.wbits, p.abits, p.bn): rows[p.key] for p in points}
    for p in points:
        r = rows[p.key]
        assert 0.1 < r["acc_priority"] <= 1 and r["periphery_cells"] > 100
        assert r["tiles"] == 2 * p.wbits and r["synaptic_bits"] == (64 * 8 + 8 * 10) * p.wbits
        net = load_network(r["weights"], multi_bit=True)
        assert getattr(net, "wbits", 1) == p.wbits and getattr(net, "abits", 1) == p.abits
        levels = (1 << p.abits) - 1
        assert r["cycles_per_image"] == (1 if p.abits == 1 else 2 * p.abits + levels + 3)
        assert (r["threshold_ram_bits"] > 0) == (p.abits > 1)
    key = "wbits" if axis.startswith("w") else "abits"
    lo, hi = (by[(1, 1, "signed")], by[(4, 1, "signed")]) if key == "wbits" else (by[(1, 1, "signed")],
                                                                                   by[(1, 3, "signed")])
    assert hi["periphery_cells"] > lo["periphery_cells"]  # the slices' shift-add / the ramps cost logic
    md = ex.markdown_table(res)
    assert "not supported" not in md and "threshold RAM bits" in md
    # the Verilog command of a multi-bit point
    row = rows[[p for p in points if not p.binary][0].key]
    cmd = ex.verilog_command(row).split()
    out = tmp_path / "point.v"
    r = subprocess.run([sys.executable, "-m", "rrambnn", *cmd[1:-2], "--out", str(out)], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    assert "module rrambnn_chip" in out.read_text() and "bit" in r.stdout


def test_arithmetic_merge_of_multi_bit_weights_keeps_the_scale(mnist_train, mnist_test):
    """n-bit weights carry gamma/sigma in their magnitudes: the arithmetic merge gets close to the
    exact one, unlike the binary case."""
    from rrambnn.gen.sliced import SlicedNetwork, crop_inputs
    cfg = TrainConfig(arch="144-24-16-10", crop=12, epochs=1, seed=3, ema=0.0, wbits=6)
    net, model, _ = train(cfg, mnist_train.images[:3000], mnist_train.labels[:3000], progress=False)
    w_a, t_a = ex.arithmetic_merge(model)
    arith = SlicedNetwork(w_a, t_a, 6, 1, 12)
    x = crop_inputs(mnist_test.images[:2000], 12, 1)
    exact, approx = net.forward(x), arith.forward(x)
    agree = (exact.acts[0] == approx.acts[0]).mean()
    assert 0.9 < agree < 1.0, agree  # close, but not exact


@pytest.mark.slow  # 72 s: a real sweep twice (the default suite's budget)
def test_sweep_resumes_from_its_cache_and_costs_come_from_the_generator(tmp_path, monkeypatch):
    points = ex.parse_axes(["crop=8", "hidden=8", "bn=signed,shared"], layers=1)
    res = ex.explore(points, out_dir=tmp_path, synth=True, **SMALL)
    cells = {r["periphery_cells"] for r in res["rows"].values()}
    assert len(cells) == 1 and cells.pop() > 100  # same architecture: one synthesis, a real cell count
    for r in res["rows"].values():  # priced by the cost model: area and energy, with their fronts
        assert 0 < r["area_mm2"] < 1 and r["energy_per_image_pj"] > 0 and r["cycles_per_image"] == 1
    assert any(r.get("pareto_area_mm2") for r in res["rows"].values())
    assert any(r.get("pareto_energy_per_image_pj") for r in res["rows"].values())
    files = ex.write_outputs(res, tmp_path)
    assert {"png_area", "png_energy"} <= set(files) and "Pareto front vs chip area" in open(files["md"]).read()

    def boom(*a, **k):
        raise AssertionError("a cached point was recomputed")
    monkeypatch.setattr(ex, "evaluate", boom)
    monkeypatch.setattr(ex, "periphery_cost", boom)
    again = ex.explore(points, out_dir=tmp_path, synth=True, **SMALL)
    assert again["rows"] == res["rows"]
    # one command from the table turns a point into Verilog
    row = res["rows"][points[0].key]
    cmd = ex.verilog_command(row).split()
    out = tmp_path / "point.v"
    r = subprocess.run([sys.executable, "-m", "rrambnn", *cmd[1:-2], "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "module rrambnn_chip" in out.read_text()


def test_explore_command_bad_input_is_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "rrambnn", "explore", "--axis", "depth=3", "--out", str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "unknown axis 'depth'" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    (tmp_path / "cache.json").write_text("{not json")
    r = subprocess.run([sys.executable, "-m", "rrambnn", "explore", "--axis", "crop=8", "--out", str(tmp_path),
                        "--epochs", "1", "--seeds", "1"], capture_output=True, text=True)
    assert r.returncode == 2 and "the exploration cache is not valid JSON" in r.stderr
    r = subprocess.run([sys.executable, "-m", "rrambnn", "explore", "--axis", "crop=8", "--tile", "0x64",
                        "--out", str(tmp_path / "t")], capture_output=True, text=True)
    assert r.returncode == 2 and "Tile rows must be an integer from 1 to 1024, not 0" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.slow  # a cluster start each (about 12 s): in the slow set CI runs after the default suite
@pytest.mark.parametrize("backend", ["dask", "ray"])
def test_distributed_backends_give_the_local_table(backend, tmp_path):
    """A small sweep on a local dask.distributed cluster and on Ray: the same table as local processes."""
    pytest.importorskip({"dask": "distributed", "ray": "ray"}[backend],
                        reason=f"{backend} is in the test extras (pip install -e '.[test]')")
    points = ex.parse_axes(["crop=12", "hidden=12,16"], layers=1)
    local = ex.explore(points, out_dir=tmp_path / "local", synth=False, **SMALL)
    other = ex.explore(points, out_dir=tmp_path / backend, synth=False, **{**SMALL, "backend": backend})
    # the same table, but for where the weights were written
    assert ex.markdown_table(other).replace(str(tmp_path / backend), "OUT") == \
        ex.markdown_table(local).replace(str(tmp_path / "local"), "OUT")
    assert other["rows"].keys() == local["rows"].keys()


def test_a_damaged_cache_is_one_line_or_work_done_again(tmp_path):
    """Invalid UTF-8, a JSON value that is not an object, a directory in its place: one line each.
    An entry without the fields its kind needs is not used (the point is computed again)."""
    from rrambnn.errors import RrambnnError
    from rrambnn.studies.explore import Cache
    path = tmp_path / "cache.json"
    for content, text in ((b"\xff\xfe{", "not valid JSON (UnicodeDecodeError)"), (b"[1, 2]", "not a JSON object"),
                          (b"[" * 100000, "not valid JSON")):
        path.write_bytes(content)
        with pytest.raises(RrambnnError, match=text.replace("(", r"\(").replace(")", r"\)")):
            Cache(path)
    path.unlink()
    path.mkdir()
    with pytest.raises(RrambnnError, match="a directory is where the exploration cache goes"):
        Cache(path)
    path.rmdir()
    path.write_text('{"eval:p:s0:e1": {"priority": 0.9}, "eval:q:s0:e1": {"priority": 0.9, "argmax": 0.91},'
                    ' "cost4:400-10:t128x128": {"cells": 5}, "eval:r:s0:e1": [0.9]}')
    c = Cache(path)
    assert c.get("eval:p:s0:e1") is None and c.get("eval:r:s0:e1") is None  # missing a field, wrong type
    assert c.get("eval:q:s0:e1") == {"priority": 0.9, "argmax": 0.91}
    assert c.get("cost4:400-10:t128x128") is None and c.get("eval:absent") is None


# -- convolutional networks (explore --arch) --------------------------------------------

def test_cnn_axes_vary_the_base_spec():
    from rrambnn.studies import explore_cnn as exc
    pts = exc.parse_axes(["channels=3x8,6x16", "kernel=3,5", "wbits=1,4"], "lenet5")
    assert len(pts) == 8 and len({p.key for p in pts}) == 8
    by = {p.key: p for p in pts}
    # a convolution that kept its size (5x5, padding 2) keeps it with 3x3 kernels (padding 1); the unpadded one stays so
    assert by["ch3x8-k3-w1-a4"].spec == "i28-c3x3p1-p2-c3x8-p2-d120-d84-d10"
    assert by["ch6x16-k5-w4-a4"].spec == "i28-c5x6p2-p2-c5x16-p2-d120-d84-d10"  # LeNet-5 itself
    assert exc.synaptic_bits(by["ch6x16-k5-w1-a4"]) == 25 * 6 + 150 * 16 + 400 * 120 + 120 * 84 + 84 * 10
    assert exc.tiles(by["ch6x16-k5-w4-a4"]) == 4 * (1 + 2 + 4 * 1 + 1 + 1)
    assert [p.channels for p in exc.parse_axes(["channels"], "lenet5")] == [(3, 8), (6, 16), (12, 32)]
    assert [p.wbits for p in exc.parse_axes(["wbits"], "lenet5")] == list(exc.AXES["wbits"])
    for axes, arch, message in (
            (["channels=6"], "lenet5", r"channels '6' must give one count per convolution \(2 in i28-c5x6p2"),
            (["channels=6x0"], "lenet5", "channels must be from 1 to 1024, not 0"),
            (["kernel=13"], "i12-c3x4-p2-d10", r"a 13x13 kernel is larger than its 12x12 input"),
            (["hidden=3"], "lenet5", "unknown axis 'hidden' for a CNN; axes are channels, kernel, wbits, abits"),
            (["wbits=9"], "lenet5", "wbits must be from 1 to 8, not 9"),
            (["kernel=4"], "lenet5", r"kernel 4: c5x6p2 keeps its input's size, which an even kernel cannot"),
            (["kernel=1"], "i28-c5x6s2p2-p2-d10", "kernel 1 is smaller than c5x6s2p2's stride 2"),
            ([], "400-128-10", "has no convolution; explore MLPs without --arch")):
        with pytest.raises(RrambnnError, match=message):
            exc.parse_axes(axes, arch)


def test_cnn_explore_command_bad_input_is_one_line(tmp_path, capsys):
    from rrambnn.cli import main
    for args, message in ((["--arch", "lenet5", "--layers", "3"], "--layers goes with MLP points"),
                          (["--positions", "2"], "--positions goes with CNN points (--arch SPEC)"),
                          (["--disturbance", "0.05"], "--disturbance goes with CNN points"),
                          (["--arch", "lenet5", "--disturbance", "-1"], "Disturbance must be a number from 0 to below 1, not -1.0"),
                          (["--arch", "lenet5", "--positions", "5"], "multiple or a divisor of the pooling window"),
                          (["--arch", "i28-c5x6-p2-d5"], "point ch3-w1-a4 (i28-c5x3-p2-d5): MNIST needs 10 outputs"),
                          (["--layers", "0"], "--layers: must be a whole number from 1 to 4, not 0"), (["--samples", "0"], "--samples"),
                          (["--arch", "lenet5", "--positions", "0"], "--positions")):
        with pytest.raises(SystemExit) as e:  # in this process: the same entry point as the command's
            main(["explore", *args, "--out", str(tmp_path / "o")])
        err = capsys.readouterr().err
        assert e.value.code == 2 and message in err and len(err.strip().splitlines()) == 1, (args, err)
        assert "Traceback" not in err
        assert not (tmp_path / "o").exists()


def test_an_interrupted_cnn_sweep_keeps_what_it_finished(tmp_path, monkeypatch):
    """Each training is in the cache as soon as it is done: a run stopped at its third training
    resumes with the first two (not trained again)."""
    from rrambnn.studies import explore_cnn as exc
    calls = []

    def fake(args):
        p, seed = args[0], args[1]
        calls.append((p.key, seed))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return {"priority": 0.5, "argmax": 0.6, "rejects": 0, "float": 0.6, "weights": f"{p.key}-{seed}.npz"}
    monkeypatch.setattr(exc, "_train_task", fake)
    points = exc.parse_axes(["channels=2,4"], "i12-c3x4-p2-d10")
    kw = dict(seeds=2, epochs=1, out_dir=tmp_path, jobs=1, progress=False, synth=False, train_limit=100)
    with pytest.raises(KeyboardInterrupt):
        exc.explore(points, **kw)
    calls.clear()
    res = exc.explore(points, **kw)
    assert len(calls) == 2 and ("ch2-w4-a4", 0) not in calls and ("ch2-w4-a4", 1) not in calls
    assert res["rows"]["ch4-w4-a4"]["acc_argmax"] == 0.6


@pytest.mark.slow  # about 60 s: two CNN chips trained, synthesized and priced, then the cached run
def test_cnn_sweep_trains_costs_resumes_and_draws(tmp_path, monkeypatch):
    from rrambnn.studies import explore_cnn as exc
    from rrambnn.gen.analog import load_profile
    on = dict(device=load_profile("mild"), chips=1, calibration=100)
    res = exc.study(["channels=2,4"], arch="i12-c3x4-p2-d10", seeds=1, epochs=1, out_dir=tmp_path, jobs=1,
                    progress=False, train_limit=500, **on)
    rows = res["rows"]
    assert all(0 <= r["device_priority_worst"] == r["device_priority"] <= 1 for r in rows.values())  # one chip
    assert set(rows) == {"ch2-w4-a4", "ch4-w4-a4"}
    for r in rows.values():
        assert 0 <= r["acc_priority"] <= 1 and r["tiles"] == 8 and r["periphery_cells"] > 100
        assert 0 < r["area_mm2"] < 1 and r["energy_per_image_pj"] > 0 and r["cycles_per_image"] > 1
    assert rows["ch4-w4-a4"]["periphery_cells"] > rows["ch2-w4-a4"]["periphery_cells"]  # two more channels
    assert rows["ch2-w4-a4"]["pareto_area_mm2"]  # the smaller chip: nothing is smaller
    md = open(res["files"]["md"]).read()
    assert "CNN points: i12-c3x4-p2-d10 with other channels" in md and "Pareto front vs chip area" in md
    assert {"png", "png_area", "png_energy"} <= set(res["files"])
    # the chip of a row is the one its weights file generates
    from rrambnn.gen.cnn import CnnNetwork
    assert CnnNetwork.load(rows["ch2-w4-a4"]["weights"]).spec.text == "i12-c3x2-p2-d10"

    def boom(*a, **k):
        raise AssertionError("a cached point was recomputed")
    monkeypatch.setattr(exc, "train_point", boom)
    monkeypatch.setattr(exc, "chip_cost", boom)
    again = exc.study(["channels=2,4"], arch="i12-c3x4-p2-d10", seeds=1, epochs=1, out_dir=tmp_path, jobs=1,
                      progress=False, train_limit=500, **on)
    assert again["rows"] == rows


def test_device_reads_each_chip_point_through_a_profile(tmp_path, monkeypatch):
    """explore --device: each chip point's network on chips of the profile (calibrated), a row
    field, its own Pareto front, a table column; kept in the cache (a second run reads none)."""
    from rrambnn.gen.analog import load_profile
    from rrambnn.studies import variation
    points = ex.parse_axes(["crop=12", "hidden=12,24", "bn=signed,software"], layers=1)
    kw = dict(out_dir=tmp_path, synth=False, device=load_profile("harsh"), chips=2, calibration=300, **SMALL)
    res = ex.explore(points, **kw)
    chips = {k: r for k, r in res["rows"].items() if r["tiles"] is not None}
    assert len(chips) == 2 and res["device"]["name"] == "harsh" and res["device"]["chips"] == 2
    for r in chips.values():
        assert 0.1 < r["device_priority_worst"] <= r["device_priority"] <= 1
        assert r["device_loss_points"] == round((r["acc_priority"] - r["device_priority"]) * 100, 3)
    assert all("device_priority" not in r for r in res["rows"].values() if r["tiles"] is None)
    for k, r in chips.items():  # the device front: no other chip point at least as good in both, better in one
        beaten = any(o["device_priority"] >= r["device_priority"] and o["synaptic_bits"] <= r["synaptic_bits"]
                     and (o["device_priority"], -o["synaptic_bits"]) != (r["device_priority"], -r["synaptic_bits"])
                     for j, o in chips.items() if j != k)
        assert r["device_pareto"] == (not beaten)
    paths = ex.write_outputs(res, tmp_path)
    md = open(paths["md"]).read()
    assert "on device: priority mean (worst chip)" in md and "device profile harsh" in md
    monkeypatch.setattr(variation, "_device_task", lambda a: (_ for _ in ()).throw(AssertionError("recomputed")))
    assert ex.explore(points, **kw)["rows"] == res["rows"]
    one_error_line(rr("explore", "--chips", "3", "--out", str(tmp_path / "o")), "--chips goes with --device")
    one_error_line(rr("explore", "--device", "nope", "--out", str(tmp_path / "o")), "not one of ideal, mild")
