"""Online training (golden model): the learning rule, the device during training, the CLI."""

import json

import numpy as np
import pytest

from rrambnn.errors import RrambnnError
from rrambnn.gen import device as dev
from rrambnn.gen import online_sign
from rrambnn.gen.network import random_network
from conftest import one_error_line, rr



def test_rank1_command_updates_active_rows_and_error_columns():
    net = random_network("6-4", np.random.default_rng(0))
    chip = online_sign.SignChip(net, online_sign.SignConfig(wbits=4, init_magnitude=3))
    before = chip.codes()[0].copy()
    x = np.array([1, 0, 1, 0, 0, 1], np.uint8)
    e = np.array([1, 0, -1, 0])
    chip.apply(online_sign.Command(0, True, x=x, e=e))
    after = chip.codes()[0]
    want = before.copy()
    for r in np.flatnonzero(x):
        for j in np.flatnonzero(e):
            want[r, j] = np.clip(before[r, j] + e[j], -7, 7)
    assert (after == want).all()
    assert chip.stats.weight_updates == 6
    # element commands saturate; zero deltas are not updates
    chip.apply(online_sign.Command(0, False, row=1, col=1, delta=7))
    chip.apply(online_sign.Command(0, False, row=1, col=1, delta=7))
    chip.apply(online_sign.Command(0, False, row=2, col=2, delta=0))
    assert chip.codes()[0][1, 1] == 7 and chip.stats.weight_updates == 8


def test_errors_follow_the_hinge_and_the_window():
    net = random_network("8-5-3", np.random.default_rng(2))
    cfg = online_sign.SignConfig(wbits=4, margin=1, window=1000)
    x = np.random.default_rng(3).integers(0, 2, (4, 8)).astype(np.uint8)
    tr = net.forward(x)
    y = np.array([0, 1, 2, 0])
    errs = online_sign.errors(net, tr.sums, y, cfg)
    m = tr.sums[-1] - net.thresholds[-1]
    for b in range(4):
        for j in range(3):
            want = (1 if m[b, j] < 1 else 0) if j == y[b] else (-1 if m[b, j] > -1 else 0)
            assert errs[1][b, j] == want
    back = errs[1] @ net.weights[1].astype(np.int64).T
    assert (errs[0] == np.clip(back, -1, 1)).all()  # window wide open, ternary errors
    narrow = online_sign.errors(net, tr.sums, y, online_sign.SignConfig(wbits=4, window=0))
    assert (narrow[0][np.abs(tr.sums[0] - net.thresholds[0]) > 0] == 0).all()


def test_training_learns_and_counts_wear(mnist_train, mnist_test):
    from rrambnn.weights import shipped
    from rrambnn.gen.network import BinaryNetwork
    net = BinaryNetwork.load(shipped("bnn-400-200-10.npz"))
    data = (net.preprocess(mnist_train.images[:3000]), mnist_train.labels[:3000].astype(np.int64),
            net.preprocess(mnist_test.images[:2000]), mnist_test.labels[:2000].astype(np.int64))
    cfg = online_sign.SignConfig(wbits=6, device=dev.DeviceParams(endurance=20, seed=1))
    r = online_sign.run(net, cfg, data, blank=True, epochs=1, samples=3000, record_updates=10 ** 9)
    res = r["result"]
    assert res["per_epoch"][0]["argmax"] < 0.2 < 0.6 < res["final"]["argmax"]  # learns from random signs
    sw = res["switches"]
    assert sw["switches"][1] == max(sw["switches"])  # the least significant bit switches most
    assert max(sw["max_per_cell"]) <= 20 and sw["worn_out_cells"][1] > 0  # endurance caps and wears out
    trace = r["trace"]  # every command of the run
    assert trace and all(c.rank1 for c in trace)
    # replaying the recorded commands from the initial state gives the same cells, counters, pulses
    again = online_sign.SignChip(r["start_net"], cfg, cells=r["chip"].initial)
    for c in trace:
        again.apply(c)
    for a, b in zip(again.arrays, r["chip"].arrays):
        assert (a.cells == b.cells).all() and (a.counts == b.counts).all() and a.rng == b.rng
    assert again.stats.as_dict() == r["chip"].stats.as_dict()


def test_trace_round_trip(tmp_path):
    net = random_network("7-5-3", np.random.default_rng(4))
    cmds = [online_sign.Command(0, True, x=np.array([1, 0, 1, 1, 0, 0, 1], np.uint8), e=np.array([0, 1, -1, 0, 1])),
            online_sign.Command(1, False, row=4, col=2, delta=-3)]
    online_sign.save_trace(tmp_path / "t.npz", cmds, net.arch)
    arch, back = online_sign.load_trace(tmp_path / "t.npz")
    assert arch == net.arch and len(back) == 2
    assert (back[0].x == cmds[0].x).all() and (back[0].e == cmds[0].e).all() and back[1].delta == -3
    (tmp_path / "bad.npz").write_bytes(b"junk")
    with pytest.raises(RrambnnError, match="not a readable update trace"):
        online_sign.load_trace(tmp_path / "bad.npz")


def test_config_errors():
    with pytest.raises(RrambnnError, match="Weight bits must be an integer from 2 to 12, not 13"):
        online_sign.SignConfig(wbits=13)
    with pytest.raises(RrambnnError, match="Initial magnitude must be from 0 to 7 for 4-bit weights, not 9"):
        online_sign.SignConfig(wbits=4, init_magnitude=9)
    with pytest.raises(RrambnnError, match="Batch size must be an integer >= 1, not 0"):
        online_sign.SignConfig(batch=0)


def test_cli_online_writes_plots_and_json(tmp_path):
    r = rr("online", "--forward", "sign", "--samples", "200", "--epochs", "1", "--bits", "4", "--endurance", "50",
           "--out", str(tmp_path),
           "--trace", str(tmp_path / "trace.npz"), "--trace-updates", "100", "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["bits"] == 4 and len(res["per_epoch"]) == 2 and res["switches"]["planes"][0] == "sign"
    for f in ("online.json", "accuracy.png", "switches.png", "trace.npz"):
        assert (tmp_path / f).stat().st_size > 0
    arch, cmds = online_sign.load_trace(tmp_path / "trace.npz")
    assert arch == (400, 200, 10) and cmds


def test_cli_sweeps(tmp_path):
    r = rr("sweep", "bits", "--forward", "sign", "--values", "2,6", "--samples", "150", "--epochs", "1", "--jobs", "2",
           "--out", str(tmp_path), "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert [p["bits"] for p in res["points"]] == [2, 6]
    assert (tmp_path / "bits.png").stat().st_size > 0 and "| 6 |" in (tmp_path / "bits.md").read_text()
    assert (tmp_path / "bits_epochs.png").stat().st_size > 0
    assert len(list((tmp_path / ".bits-points").glob("*.json"))) == 2  # finished points are kept
    again = rr("sweep", "bits", "--forward", "sign", "--values", "6,2", "--samples", "150", "--epochs", "1",
               "--out", str(tmp_path), "--json")  # resumes: both points from the kept results
    assert again.returncode == 0 and [p["bits"] for p in json.loads(again.stdout)["points"]] == [6, 2]
    assert json.loads(again.stdout)["points"][1] == res["points"][0]
    r = rr("sweep", "endurance", "--start", "blank", "--values", "0,5", "--wbits", "4", "--samples", "150",
           "--epochs", "1", "--jobs", "1", "--out", str(tmp_path), "--json")
    assert r.returncode == 0, r.stderr
    pts = json.loads(r.stdout)["points"]
    assert pts[1]["endurance"] == 5 and max(pts[1]["switches"]["max_per_cell"]) <= 5
    assert max(pts[0]["switches"]["max_per_cell"]) > 5  # unlimited endurance: the cells switch more


def test_cli_online_errors():
    one_error_line(rr("online", "--wbits", "1"), "Weight bits must be an integer from 2 to 12, not 1")
    one_error_line(rr("online", "--arch", "400-10"), "--arch must be one of 400-200-10, 400-128-128-10")
    one_error_line(rr("online", "--start", "warm"), "--start must be pretrained or blank, not 'warm'")
    one_error_line(rr("online", "--yield", "1.5"), "argument --yield: must be a number from 0 to 1")
    one_error_line(rr("sweep", "bits", "--values", "1,4"), "--values must lie between 2 and 12")
    one_error_line(rr("sweep", "noise"), "rrambnn sweep knows yield, bits, endurance, cnn-bits and variation, not 'noise'")
    one_error_line(rr("verilog", "--weight-bits", "13", "--out", "/tmp/never.v"),
                   "Weight planes must be an integer from 1 to 12, not 13")
    one_error_line(rr("verilog", "--update-bits", "4", "--step-bits", "9", "--out", "/tmp/never.v"),
                   "Step bits (the rank-1 step width) must be an integer from 2 to 8, not 9")


def test_batched_element_commands_equal_one_by_one():
    rng = np.random.default_rng(9)
    net = random_network("30-20-6", rng)
    cfg = online_sign.SignConfig(wbits=5, tile=(8, 8), device=dev.DeviceParams(yield_=0.9, p_fail=0.2, endurance=3, seed=2))
    a, b = online_sign.SignChip(net, cfg, blank=True), online_sign.SignChip(net, cfg, blank=True)
    cmds = []
    for step in range(5):
        for k, (n_in, n_out) in enumerate(zip(net.arch[:-1], net.arch[1:])):
            d = rng.integers(-15, 16, (n_in, n_out)) * (rng.random((n_in, n_out)) < 0.3)
            cmds += [online_sign.Command(k, False, row=int(r), col=int(c), delta=int(d[r, c])) for r, c in zip(*np.nonzero(d))]
        cmds.append(online_sign.Command(0, True, x=(rng.random(30) < 0.5).astype(np.uint8), e=rng.integers(-1, 2, 20)))
    for c in cmds:
        a.apply(c)
    b.apply_all(cmds)
    for x, y in zip(a.arrays, b.arrays):
        assert (x.cells == y.cells).all() and (x.counts == y.counts).all() and x.rng == y.rng
    assert a.stats.as_dict() == b.stats.as_dict() and a.stats.failed == b.stats.failed and a.stats.failed
