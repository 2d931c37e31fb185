import json

import numpy as np
import pytest

from rrambnn.errors import RrambnnError
from rrambnn.gen import crossbar
from rrambnn.gen.mnist import Preprocess
from rrambnn.gen.network import (REJECT, BinaryNetwork, answers, parse_arch,
                                 priority_encode, random_network, score)


def test_forward_equals_digital_twin(rng):
    net = random_network("37-20-9-6", rng)
    x = rng.integers(0, 2, (300, 37)).astype(np.uint8)
    t = net.forward(x)
    a = x
    for k, (cells, theta) in enumerate(zip(net.cells, net.thresholds)):
        s = crossbar.twin(a, cells)
        assert (s == t.sums[k]).all()
        a = (s >= theta).astype(np.uint8)
        assert (a == t.acts[k]).all()
    assert (t.acts[-1].any(axis=1) == t.hit).all()


def test_chunking_is_invisible(rng):
    net = random_network("16-8-5", rng)
    x = rng.integers(0, 2, (1000, 16))
    a = net.forward(x, chunk=7)
    b = net.forward(x)
    for u, v in zip(a.sums + a.acts, b.sums + b.acts):
        assert (u == v).all()
    assert (net.forward(x, trace=False)[0] == b.priority).all()


def test_priority_encoder_and_argmax_semantics():
    w = np.eye(4, dtype=np.int8) * 2 - 1  # column j is +1 only at row j: S_j = 2*x_j - popcount(x)
    net = BinaryNetwork([w], [np.array([0, 0, 0, -1], np.int32)], None)
    x = np.array([[0, 1, 1, 0],   # S=[-2,0,0,-2]: 1,2 fire -> priority 1; margins tie 1,2 -> 1
                  [0, 0, 0, 1],   # S=[-1,-1,-1,1]: only 3 fires
                  [1, 1, 1, 1],   # S=-2 everywhere: nothing fires -> hit 0, class 0; argmax 3
                  [1, 0, 0, 0]])  # S=[1,-1,-1,-1]: 0 and 3 fire -> 0; margins [1,-1,-1,0] -> 0
    t = net.forward(x)
    assert t.sums[0].tolist() == [[-2, 0, 0, -2], [-1, -1, -1, 1], [-2, -2, -2, -2], [1, -1, -1, -1]]
    assert t.hit.tolist() == [True, True, False, True]
    assert t.priority.tolist() == [1, 3, 0, 0]
    assert t.argmax.tolist() == [1, 3, 3, 0]
    assert (t.labels("priority") == t.priority).all() and (t.labels("argmax") == t.argmax).all()
    idx, hit = priority_encode(np.array([[0, 0, 0], [0, 1, 1]], bool))
    assert idx.tolist() == [0, 1] and hit.tolist() == [False, True]


def test_a_reject_is_a_wrong_answer():
    """Image 2 above is rejected (hit 0, cls 0): with label 0 it is still wrong for the priority
    stage; the argmax stage always answers (class 3 here)."""
    w = np.eye(4, dtype=np.int8) * 2 - 1
    net = BinaryNetwork([w], [np.array([0, 0, 0, -1], np.int32)], None)
    x = np.array([[0, 1, 1, 0], [0, 0, 0, 1], [1, 1, 1, 1], [1, 0, 0, 0]])
    assert net.forward(x).answers("priority").tolist() == [1, 3, REJECT, 0]
    assert net.classify(x, "priority").tolist() == [1, 3, REJECT, 0]
    assert net.classify(x, "argmax").tolist() == [1, 3, 3, 0]
    acc = net.accuracy(x, np.array([1, 3, 0, 0]))
    assert acc == {"priority": 0.75, "argmax": 0.75, "rejects": 1}
    assert net.accuracy(x, np.array([1, 3, 3, 0]))["argmax"] == 1.0
    assert answers([0, 5], [False, False], "argmax").tolist() == [0, 5]
    with pytest.raises(RrambnnError, match="empty test set"):
        score(np.zeros(0, int), np.zeros(0, int), np.zeros(0, bool), np.zeros(0, int))


def test_save_load_roundtrip(tmp_path, rng):
    net = random_network("400-12-10", rng)
    net = BinaryNetwork(net.weights, net.thresholds, Preprocess(20), "argmax", {"seed": 3, "accuracy": {"argmax": 0.5}})
    p = tmp_path / "n.npz"
    net.save(p)
    m = BinaryNetwork.load(p)
    assert m.arch == (400, 12, 10) and m.output_mode == "argmax" and m.meta["seed"] == 3
    assert all((a == b).all() for a, b in zip(m.weights + m.thresholds, net.weights + net.thresholds))
    with np.load(p, allow_pickle=False) as z:  # plain numpy can read it
        assert z["w0"].dtype == np.int8 and z["theta1"].dtype == np.int32
        assert str(z["output_mode"]) == "argmax" and list(z["arch"]) == [400, 12, 10]


def _write(path, **arrays):
    np.savez(path, **arrays)


def _good(rng):
    net = random_network("4-3-2", rng)
    return {"format": np.array("rrambnn-bnn"), "version": np.array(1, np.int32),
            "arch": np.array([4, 3, 2], np.int32), "crop": np.array(0, np.int32),
            "binarise_threshold": np.array(128, np.int32), "output_mode": np.array("priority"),
            "meta": np.array(json.dumps({})), "w0": net.weights[0], "theta0": net.thresholds[0],
            "w1": net.weights[1], "theta1": net.thresholds[1]}


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("w1"), "missing entry 'w1'"),
    (lambda d: d.update(w0=np.zeros((4, 4), np.int8)), r"w0 has shape \(4, 4\), arch 4-3-2 needs \(4, 3\)"),
    (lambda d: d.update(w0=np.zeros((4, 3), np.int8)), "layer 0 weights must be int8 with values -1/\\+1 only"),
    (lambda d: d.update(w0=np.ones((4, 3), np.float32)), "layer 0 weights must be int8"),
    (lambda d: d.update(theta1=np.zeros(2, np.int64)), "layer 1 thresholds must be int32 of shape \\(2,\\)"),
    (lambda d: d.update(theta0=np.array([0, 0, 99], np.int32)), r"thresholds must lie in \[-4, 5\]"),
    (lambda d: d.update(output_mode=np.array("softmax")), "Output mode must be one of priority, argmax, not 'softmax'"),
    (lambda d: d.update(format=np.array("other")), "format is 'other'"),
    (lambda d: d.update(version=np.array(7)), "format version 7 is not supported"),
    (lambda d: d.update(crop=np.array(5)), "crop 5x5 gives 25 inputs but the first layer has 4"),
    (lambda d: d.update(meta=np.array("{oops")), "'meta' is not valid JSON"),
    (lambda d: d.update(w2=np.ones((2, 2), np.int8)), "entries w2 do not match arch 4-3-2"),
    (lambda d: d.update(arch=np.array([4])), "'arch' must list at least two positive layer sizes"),
])
def test_load_errors(tmp_path, rng, change, message):
    d = _good(rng)
    change(d)
    p = tmp_path / "bad.npz"
    _write(p, **d)
    with pytest.raises(RrambnnError, match=message):
        BinaryNetwork.load(p)


def test_load_not_npz_and_missing(tmp_path):
    p = tmp_path / "x.npz"
    p.write_text("hello")
    with pytest.raises(RrambnnError, match="not a readable .npz weights file"):
        BinaryNetwork.load(p)
    with pytest.raises(RrambnnError, match="weights file not found"):
        BinaryNetwork.load(tmp_path / "none.npz")


def test_save_is_atomic(tmp_path, rng, monkeypatch):
    net = random_network("4-3-2", rng)
    p = tmp_path / "n.npz"
    net.save(p)
    before = p.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez_compressed", boom)
    with pytest.raises(OSError):
        net.save(p)
    assert p.read_bytes() == before
    assert [q.name for q in tmp_path.iterdir()] == ["n.npz"]


@pytest.mark.parametrize("text, message", [
    ("400-x-10", "Architecture must look like 400-128-128-10, not '400-x-10'"),
    ("400", "at least an input and an output size"),
    ("400-0-10", "all positive"),
])
def test_parse_arch_errors(text, message):
    with pytest.raises(RrambnnError, match=message):
        parse_arch(text)


def test_forward_shape_error(rng):
    net = random_network("4-3-2", rng)
    with pytest.raises(RrambnnError, match=r"inputs must have shape \(N, 4\), not \(2, 5\)"):
        net.forward(np.zeros((2, 5)))
