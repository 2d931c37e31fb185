"""The n-bit online-training rule (golden model), its device path, the training chip on Verilator."""

import json

import numpy as np
import pytest

from rrambnn.errors import RrambnnError
from rrambnn.gen import device as dev
from rrambnn.gen import online_nbit as L
from rrambnn.gen import planes
from conftest import one_error_line, rr


def _mix32_reference(x: int) -> int:
    """The hash as the hardware spec states it, in plain Python integers."""
    m = 0xFFFFFFFF
    x ^= x >> 16
    x = (x * 0x7FEB352D) & m
    x ^= x >> 15
    x = (x * 0x846CA68B) & m
    return x ^ (x >> 16)


def test_draws_follow_the_stated_hash():
    seed, t, layer = 12345, 987654, 1
    idx = np.array([0, 1, 2, 79999])
    key = _mix32_reference(seed ^ _mix32_reference(t))
    want = [_mix32_reference(key ^ (layer << 24) ^ int(i)) for i in idx]
    assert L.draws(seed, t, layer, idx).tolist() == want
    assert L.draws(seed, t + 1, layer, idx).tolist() != want


def test_stochastic_round_is_unbiased_and_exact_on_multiples():
    r = L.draws(7, 0, 0, np.arange(200_000))
    for v in (-37, -1, 1, 5, 63):
        got = L.stochastic_round(np.full(len(r), v), 4, r)
        assert abs(got.mean() - v / 16) < 0.01 and set(np.unique(got)) <= {v // 16, v // 16 + 1}
    assert (L.stochastic_round(np.array([-32, 48]), 4, r[:2]) == [-2, 3]).all()
    assert (L.stochastic_round(np.array([3, -3]), -2, r[:2]) == [12, -12]).all()
    assert L.round_shift(np.array([5, -5, 6, -6]), 2).tolist() == [1, -1, 2, -1]


def test_config_errors_and_derived_precision():
    with pytest.raises(RrambnnError, match="Weight bits must be an integer from 2 to 12, not 13"):
        L.NbitConfig(wbits=13)
    with pytest.raises(RrambnnError, match="Neuron bits must be an integer from 1 to 8, not 9"):
        L.NbitConfig(abits=9)
    with pytest.raises(RrambnnError, match="Learning-rate shift must be an integer from 0 to 16, not -1"):
        L.NbitConfig(lr_shift=-1)
    c = L.NbitConfig()
    assert (c.m, c.e, c.U, c.H, c.E, c.sd, c.shifts(1), c.shifts(6)) == (8, 8, 255, 255, 127, 19, (6, 13), (7, 14))
    assert c.r1 == 1.0 and L.NbitConfig(wbits=6).r1 == 0.5 and L.NbitConfig(wbits=12).m == 8
    T1, T2 = c.ramps()
    assert len(T1) == 255 and (np.diff(T1) >= 0).all() and T1[127] == 0 and T1[0] == -T1[-1]
    with pytest.raises(RrambnnError, match="one hidden layer"):
        L.NbitChip((16, 8, 8, 4), c, [np.zeros((16, 8), int)] * 3)


def test_offset_codes_round_trip():
    u = np.arange(256).reshape(16, 16)
    cells = L.encode(u, 8)
    assert cells.shape == (8, 16, 16) and (L.decode(cells) == u).all() and (cells[0] == u % 2).all()


def test_vectorised_writes_equal_the_plane_by_plane_writes():
    """write_batch without pulse failures (one numpy step for every plane) against write(),
    faults and endurance included: cells, counters, generator states, pulses, failed cells."""
    rng = np.random.default_rng(4)
    params = dev.DeviceParams(yield_=0.8, endurance=3, seed=5)
    shape = (5, 20, 12)
    cells = rng.integers(0, 2, shape).astype(np.uint8)
    faults = planes.plane_faults((20, 12), params, 5)[0]
    a = planes.PlaneArrays(cells, faults, layer=0, tile=(8, 8), params=params, retries=2)
    b = planes.PlaneArrays(cells, faults, layer=0, tile=(8, 8), params=params, retries=2)
    for step in range(30):
        k = 40
        flat = rng.choice(np.prod(shape), k, replace=False)
        p, r, c = np.unravel_index(flat, shape)
        want = rng.integers(0, 2, k).astype(np.uint8)
        keep = want != a.cells[p, r, c]
        p, r, c, want = p[keep], r[keep], c[keep], want[keep]
        order = rng.permutation(len(p)).astype(np.int64)
        sa = a.write_batch(p, r, c, want, order)
        sb = [0, 0, []]
        for q in np.unique(p):
            sel = np.flatnonzero(p == q)
            s, t, f = b.write(int(q), r[sel], c[sel], want[sel], order[sel])
            sb = [sb[0] + s, sb[1] + t, sb[2] + f]
        assert sa[:2] == tuple(sb[:2]) and sorted(sa[2]) == sorted(sb[2])
    assert (a.cells == b.cells).all() and (a.counts == b.counts).all() and a.rng == b.rng
    assert a.counts.max() == 3 and (a.faults != 0).any()


def test_restore_keeps_the_old_code_of_a_weight_with_a_stuck_cell():
    cfg = L.NbitConfig(wbits=4, tile=(4, 4))
    codes = [np.full((4, 3), 8, np.int64), np.full((3, 2), 8, np.int64)]
    faults = [np.zeros((4, 4, 3), np.int8), np.zeros((4, 3, 2), np.int8)]
    faults[0][0, 1, 2] = dev.STUCK_LRS  # bit 0 of weight (1, 2) stuck at 1: u = 9
    chip = L.NbitChip((4, 3, 2), cfg, codes, faults=faults)
    chip.failed = []
    assert chip.u[0][1, 2] == 9
    chip._update(0, np.array([1, 1]), np.array([1, 2]), np.array([-2, -2]))  # 8 -> 6, and 9 -> 7 keeps bit 0
    assert chip.u[0][1, 1] == 6 and chip.u[0][1, 2] == 7 and chip.failed == []
    chip._update(0, np.array([1]), np.array([2]), np.array([1]))  # 7 -> 8 needs bit 0 = 0: fails, restored
    assert chip.u[0][1, 2] == 7 and chip.failed == [(0, 0, 1, 2)]
    assert (L.decode(chip.arrays[0].cells) == chip.u[0]).all() and chip.stats["cells_failed"] == 1
    off = L.NbitChip((4, 3, 2), L.NbitConfig(wbits=4, tile=(4, 4), restore=False), codes, faults=faults)
    off._update(0, np.array([1]), np.array([2]), np.array([-2]))
    off._update(0, np.array([1]), np.array([2]), np.array([1]))
    assert off.u[0][1, 2] == 9  # without restore the weight keeps the bits that did switch: 0111 -> 1001


@pytest.mark.parametrize("restore, bits", [(True, 5), (False, 5), (True, 11)])
def test_free_pass_equals_the_two_writes(restore, bits):
    """Without pulse failures an update goes through _pass_free (both passes from one list of
    changed cells); the reference is _pass (write, then the restore pass as its own write):
    cells, counters, generators, codes, failed cells in order and statistics agree, with stuck
    and worn-out cells failing in both passes."""
    arch, seed = (9, 7, 3), 12
    print(f"restore {restore} bits {bits} seed {seed}")
    rng = np.random.default_rng(seed)
    cfg = L.NbitConfig(wbits=bits, tile=(4, 3), restore=restore, device=dev.DeviceParams(0.85, 0.0, 4, seed))
    codes = [rng.integers(0, 2 ** bits, (a, b)) for a, b in zip(arch[:-1], arch[1:])]
    free, ref = L.NbitChip(arch, cfg, codes), L.NbitChip(arch, cfg, codes)
    free.failed, ref.failed = [], []
    ref._pass_free = ref._pass
    for _ in range(40):
        layer = int(rng.integers(0, 2))
        n_in, n_out = arch[layer], arch[layer + 1]
        flat = rng.choice(n_in * n_out, int(rng.integers(1, n_in * n_out + 1)), replace=False)
        du = rng.integers(-40, 41, len(flat))
        for chip in (free, ref):
            chip._update(layer, flat // n_out, flat % n_out, du)
    for a, b in zip(free.arrays, ref.arrays):
        assert (a.cells == b.cells).all() and (a.counts == b.counts).all() and a.rng == b.rng
    assert all((x == y).all() for x, y in zip(free.u, ref.u)) and free.failed == ref.failed
    assert free.stats == ref.stats and free.stats["cells_failed"] > 0
    assert (free.stats["restored"] > 0) == restore and max(a.counts.max() for a in free.arrays) == 4


@pytest.fixture(scope="module")
def online_mnist():
    """The online chip's inputs (20x20 crop, binarised) and the shipped pretrained network."""
    from rrambnn.weights import ONLINE_NBIT, shipped
    try:
        data = L.binary_data()
    except RrambnnError as e:
        pytest.fail(f"MNIST is needed for this test: {e}")
    return data, L.load_codes(shipped(ONLINE_NBIT))["codes"]


@pytest.mark.parametrize("p_fail", [0.0, 0.05])
def test_reading_ahead_equals_sample_by_sample(p_fail, online_mnist):
    """train() reads the samples ahead of the next one with an output error in one forward
    pass: every read-ahead limit gives the run of one sample at a time (codes, counters,
    generators, statistics, accuracies); the shipped network fine-tuned on MNIST, where most
    samples have no error and some do."""
    data, codes = online_mnist
    data = (data[0], data[1], data[2][:200], data[3][:200])
    cfg = L.NbitConfig(wbits=8, lr_shift=L.PRETRAINED_LR_SHIFT, device=dev.DeviceParams(0.97, p_fail, 40, 2), seed=4)
    runs = []
    for batch in (1, 5, 512):
        chip = L.NbitChip((400, 200, 10), cfg, codes)
        per_epoch, _ = L.train(chip, data, epochs=2, samples=400, batch=batch)
        runs.append((chip, [{k: v for k, v in e.items() if k != "seconds"} for e in per_epoch]))
    (one, e1), *others = runs
    assert 0 < one.stats["updating_samples"] < one.stats["samples"] / 2 and one.stats["samples"] == 800
    for chip, e in others:
        assert e == e1 and chip.stats == one.stats
        assert all((a.cells == b.cells).all() and (a.counts == b.counts).all() and a.rng == b.rng
                   for a, b in zip(chip.arrays, one.arrays))


@pytest.mark.parametrize("p_fail, endurance, yield_, retries, taken", [
    (0.3, 0, 1.0, 1, {"one step", "runs"}), (0.1, 2, 0.9, 3, {"one step"}), (0.5, 3, 0.8, 0, {"runs"})])
def test_updates_in_runs_equal_one_weight_at_a_time(p_fail, endurance, yield_, retries, taken):
    """With pulse failures and restore, a batch of weight updates is written in one step when
    its failed weights are the foreseen ones (stuck or worn cells), else in runs up to each
    failed weight (planes.OrderedWrite); the reference writes one weight at a time, pass then
    restore. Cells, switch counters, generators, codes, failed cells and statistics must agree;
    ``taken``: the ways the batches went."""
    arch, bits = (9, 7, 3), 5
    seed = 11
    print(f"p_fail {p_fail} endurance {endurance} yield {yield_} retries {retries} seed {seed}")
    rng = np.random.default_rng(seed)
    cfg = L.NbitConfig(wbits=bits, tile=(4, 3), retries=retries, device=dev.DeviceParams(yield_, p_fail, endurance, seed))
    codes = [rng.integers(0, 2 ** bits, (a, b)) for a, b in zip(arch[:-1], arch[1:])]
    runs, ref = L.NbitChip(arch, cfg, codes), L.NbitChip(arch, cfg, codes)
    runs.failed, ref.failed = [], []
    ways = []
    foreseen = runs._runs_foreseen
    runs._runs_foreseen = lambda *a: ways.append(foreseen(*a)) or ways[-1]
    for _ in range(12):
        layer = int(rng.integers(0, 2))
        n_in, n_out = arch[layer], arch[layer + 1]
        flat = rng.choice(n_in * n_out, int(rng.integers(1, n_in * n_out + 1)), replace=False)
        rr, cc = flat // n_out, flat % n_out
        du = rng.integers(-9, 10, len(flat))
        runs._update(layer, rr, cc, du)
        ref.stats["weight_updates"] += len(rr)  # the reference: weight by weight
        old = ref.u[layer][rr, cc]
        new = np.clip(old + du, 0, cfg.U)
        for i in np.flatnonzero(old != new):
            got = ref._pass(layer, rr[i:i + 1], cc[i:i + 1], old[i:i + 1], new[i:i + 1])
            ref.u[layer][rr[i], cc[i]] = got[0]
            ref.w[layer][rr[i], cc[i]] = 2 * got[0] - cfg.U
    for a, b in zip(runs.arrays, ref.arrays):
        assert (a.cells == b.cells).all() and (a.counts == b.counts).all() and a.rng == b.rng
    assert all((x == y).all() for x, y in zip(runs.u, ref.u)) and runs.failed == ref.failed
    assert runs.stats == ref.stats and runs.stats["restored"] > 0 and runs.stats["cells_failed"] > 0
    assert {"runs" if w is None else "one step" for w in ways} == taken


def test_fault_aware_codes_are_the_nearest_reachable():
    rng = np.random.default_rng(2)
    n = 5
    codes = [rng.integers(0, 32, (30, 7))]
    faults = [np.where(rng.random((n, 30, 7)) < 0.15, rng.integers(1, 3, (n, 30, 7)), 0).astype(np.int8)]
    got, passes = L.fault_aware_codes(codes, faults, n)
    stuck, lrs = faults[0] != 0, faults[0] == dev.STUCK_LRS
    held = L.decode(np.where(stuck, lrs, L.encode(got[0], n)).astype(np.uint8))
    assert passes >= 1
    for i, j in zip(*np.nonzero(held != codes[0])):
        reachable = [u for u in range(32) if all(not stuck[b, i, j] or ((u >> b) & 1) == lrs[b, i, j] for b in range(n))]
        best = min(abs(u - codes[0][i, j]) for u in reachable)
        assert abs(held[i, j] - codes[0][i, j]) == best


def _data(rng, n_tr=300, n_te=40, n_in=16, n_out=6):
    protos = (rng.random((n_out, n_in)) < 0.4).astype(np.uint8)
    def make(k):
        y = rng.integers(0, n_out, k)
        x = protos[y] ^ (rng.random((k, n_in)) < 0.05)
        return x.astype(np.uint8), y
    return (*make(n_tr), *make(n_te))


def test_training_is_deterministic_and_learns():
    data = _data(np.random.default_rng(0))
    cfg = L.NbitConfig(wbits=6, lr_shift=1, decay=0, tile=(8, 8), seed=3)
    a = L.run((16, 12, 6), cfg, data, epochs=3, samples=None)
    b = L.run((16, 12, 6), cfg, data, epochs=3, samples=None)
    assert a["result"]["per_epoch"] == [dict(e, seconds=ea["seconds"]) for e, ea in
                                        zip(b["result"]["per_epoch"], a["result"]["per_epoch"])]
    assert all((x.cells == y.cells).all() for x, y in zip(a["chip"].arrays, b["chip"].arrays))
    assert a["result"]["best"]["argmax"] > 0.9 > a["result"]["per_epoch"][0]["argmax"]
    c = L.run((16, 12, 6), L.NbitConfig(wbits=6, lr_shift=1, decay=0, tile=(8, 8), seed=4), data, epochs=1, samples=None)
    assert not all((x.cells == y.cells).all() for x, y in zip(a["chip"].arrays, c["chip"].arrays))
    sw = a["result"]["switches"]
    assert sw["total"] == a["result"]["per_epoch"][-1]["switches"] > 0 and sw["switches"][0] > sw["switches"][-1]


def test_trace_and_network_files_round_trip(tmp_path):
    data = _data(np.random.default_rng(1))
    cfg = L.NbitConfig(wbits=5, lr_shift=0, tile=(8, 8), device=dev.DeviceParams(0.9, 0.0, 4, 1), seed=2)
    r = L.run((16, 12, 6), cfg, data, epochs=1, samples=50, record=20)
    L.save_trace(tmp_path / "t.npz", r["chip"], r["trace"], r["initial_codes"])
    t = L.load_trace(tmp_path / "t.npz")
    assert t["arch"] == (16, 12, 6) and t["config"] == cfg and len(t["samples"]) == 20
    for (x, lab, ep, st), x0, st0 in zip(t["samples"], r["trace"].x, r["trace"].steps):
        assert (x == x0).all() and all(np.array_equal(getattr(st, f), getattr(st0, f)) for f in
                                       ("h", "o", "cols", "step", "rows2", "cols2", "delta2"))
    golden = L.chip_from_cells(t["arch"], t["config"], t["cells"], t["faults"])
    for x, lab, ep, st in t["samples"]:  # the trace replays on the golden chip to the same state
        again = golden.compute(x, lab, ep)
        assert all(np.array_equal(getattr(again, f), getattr(st, f)) for f in
                   ("h", "o", "cols", "step", "rows2", "cols2", "delta2"))
        golden.apply(x, again)
    whole = L.run((16, 12, 6), cfg, data, epochs=1, samples=20)  # the same 20 samples, not recorded
    assert all((a.cells == b.cells).all() and (a.counts == b.counts).all()
               for a, b in zip(golden.arrays, whole["chip"].arrays))
    L.save_codes(tmp_path / "n.npz", (16, 12, 6), cfg, r["chip"].codes(), {"x": 1})
    back = L.load_codes(tmp_path / "n.npz")
    assert back["bits"] == 5 and all((u == v).all() for u, v in zip(back["codes"], r["chip"].codes()))
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(RrambnnError, match="not a readable .npz file"):
        L.load_codes(tmp_path / "bad.npz")
    with pytest.raises(RrambnnError, match="not a readable training trace"):
        L.load_trace(tmp_path / "n.npz")


@pytest.mark.parametrize("p_fail, restore", [(0.1, True), pytest.param(0.0, True, marks=pytest.mark.slow),
                                             pytest.param(0.0, False, marks=pytest.mark.slow)])  # 24 s each
def test_training_chip_replays_on_verilator(tmp_path, p_fail, restore):
    """A small training chip (4-bit weights and neurons, several tiles per plane) with faults,
    an endurance limit and pulse failures (the golden chip then writes weight by weight) or
    none (all of a command's writes in one step), with and without restore: every forward
    pass, command, cell and counter."""
    from rrambnn.sim.chip_sim import replay_nbit
    rng = np.random.default_rng(5)
    data = _data(rng)
    cfg = L.NbitConfig(wbits=4, lr_shift=0, tile=(8, 8), device=dev.DeviceParams(0.9, p_fail, 5, 3), restore=restore,
                       seed=2)
    r = L.run((16, 12, 6), cfg, data, epochs=1, samples=40, record=40)
    L.save_trace(tmp_path / "t.npz", r["chip"], r["trace"], r["initial_codes"])
    print(f"device {cfg.device}, seed {cfg.seed}")
    res = replay_nbit(tmp_path / "t.npz", data[2], seed=7)
    assert res["passed"], f"{res.get('failures')}; log {res['log']}"
    assert res["forward_mismatches"] == res["step_mismatches"] == 0 and res["hardware"] == res["golden"]
    assert res["failed_match"] and res["codes_match"] and res["cell_mismatches"] == res["count_mismatches"] == 0
    assert res["class_mismatches"] == 0 and res["failed_cells"] > 0 and res["worn_out_cells"] > 0


def test_cli_online_nbit(tmp_path):
    r = rr("online", "--start", "blank", "--samples", "300", "--epochs", "2", "--yield", "0.95", "--endurance", "100",
           "--out", str(tmp_path), "--save", str(tmp_path / "net.npz"), "--trace", str(tmp_path / "t.npz"),
           "--trace-samples", "5", "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["forward"] == "nbit" and res["rule"]["weight_bits"] == 8 and len(res["per_epoch"]) == 3
    assert res["per_epoch"][-1]["argmax"] > 0.5 and res["switches"]["planes"][0] == "b0"
    assert len(L.load_trace(tmp_path / "t.npz")["samples"]) == 5 and L.load_codes(tmp_path / "net.npz")["bits"] == 8
    r = rr("online", "--samples", "200", "--epochs", "1", "--yield", "0.9", "--out", str(tmp_path), "--json")
    res = json.loads(r.stdout)
    assert res["start"] == "pretrained" and res["rule"]["lr_shift"] == 5
    assert res["per_epoch"][0]["argmax"] > res["programming"]["naive"]["argmax"]  # fault-aware programming helps


def test_cli_online_nbit_errors(tmp_path):
    one_error_line(rr("online", "--margin", "3"), "--margin belongs to --forward sign")
    one_error_line(rr("online", "--forward", "sign", "--abits", "4"), "belong to --forward nbit")
    one_error_line(rr("online", "--forward", "float"), "--forward must be nbit or sign, not 'float'")
    one_error_line(rr("online", "--arch", "400-128-128-10"), "one hidden layer (400-200-10)")
    one_error_line(rr("online", "--wbits", "6"), "the starting network has 8-bit weights; --wbits is 6")
    one_error_line(rr("online", "--save", str(tmp_path)), "--save must name a file")
    one_error_line(rr("sweep", "bits", "--values", "6,8"), "needs --start blank")


@pytest.mark.slow
def test_full_training_chip_replays_1000_samples(tmp_path):
    """The issue's acceptance test: 1,000 training samples of 400-200-10 with 8-bit weights and
    neurons (the shipped network fine-tuned on a chip with yield 0.95, pulse failures and an
    endurance limit), replayed on the full training chip (80 computing arrays) on Verilator."""
    r = rr("online", "--samples", "1000", "--epochs", "1", "--yield", "0.95", "--pulse-fail", "0.01",
           "--endurance", "10", "--seed", "3", "--replay", "--trace-samples", "1000", "--out", str(tmp_path), "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    rp = json.loads(r.stdout)["replay"]
    assert rp["passed"] and rp["samples"] == 1000 and rp["forward_mismatches"] == rp["step_mismatches"] == 0
    assert rp["hardware"] == rp["golden"] and rp["failed_match"] and rp["codes_match"]
    assert rp["cells_read"] == 8 * (400 * 200 + 200 * 10)
    assert rp["cell_mismatches"] == rp["count_mismatches"] == rp["class_mismatches"] == 0
    assert rp["failed_cells"] > 0 and rp["worn_out_cells"] > 0  # faults, failures and wear were all in play


def test_bench_online_reports_both_paths():
    from rrambnn.studies import bench
    rng = np.random.default_rng(3)
    x = (rng.random((300, 400)) < 0.25).astype(np.uint8)
    y = rng.integers(0, 10, 300)
    res = bench.online_training((x, y, x[:50], y[:50]), epochs=1, samples=200, pretrained_samples=30)
    assert res["samples"] == 200 and res["samples_per_s"] > 0 and res["switches"] > 0
    b, p = res["blank"], res["pretrained"]
    assert b["ideal"]["p_fail"] == 0 and b["pulse_failures"]["p_fail"] == 0.01 and b["pulse_failures"]["samples"] == 200
    assert p["ideal"]["samples"] == p["pulse_failures"]["samples"] == 30 and b["slowdown"] > 0
    assert res["machine"]["cores"] >= 1


def test_shipped_online_network(mnist_test):
    """The shipped 8-bit codes (50 epochs of on-chip training from a blank start) classify as
    their metadata says, on an ideal chip."""
    from rrambnn.gen.mnist import Preprocess
    from rrambnn.weights import ONLINE_NBIT, shipped
    d = L.load_codes(shipped(ONLINE_NBIT))
    cfg = L.NbitConfig(wbits=d["bits"], abits=d["act_bits"], range_shift=d["range_shift"])
    chip = L.NbitChip(d["arch"], cfg, d["codes"])
    acc = chip.accuracy(Preprocess()(mnist_test.images), mnist_test.labels.astype(np.int64))
    assert acc["argmax"] >= 0.97 and acc["priority"] >= 0.95
    assert {k: acc[k] for k in ("argmax", "priority")} == pytest.approx(d["meta"]["result"]["final"])
