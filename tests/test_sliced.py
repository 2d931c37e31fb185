"""Multi-bit weights (bit slices) and activations: golden model, files, training and merge."""

import numpy as np
import pytest

from rrambnn.errors import RrambnnError
from rrambnn.gen.network import BinaryNetwork, random_network
from rrambnn.gen.sliced import (SlicedNetwork, bit_planes, crop_inputs, quantise_pixels, random_sliced,
                                slice_codes, sum_bound, weight_slices)
from rrambnn.gen.train import TrainConfig, activate, signed_merge, train, weight_codes


@pytest.mark.parametrize("wbits", [1, 2, 3, 8])
def test_slices_rebuild_every_code(wbits):
    top = (1 << wbits) - 1
    codes = np.arange(-top, top + 1, 2, dtype=np.int16)[:, None]
    s = weight_slices(codes, wbits)
    assert set(np.unique(s)) <= {-1, 1}
    rebuilt = sum(s[b].astype(np.int32) << b for b in range(wbits))
    assert (rebuilt == codes).all()


@pytest.mark.parametrize("wbits,ternary", [(1, False), (3, False), (2, True)])
def test_cells_give_back_their_codes(wbits, ternary):
    codes = (np.array([[-2, 0, 2]]) if ternary else np.arange(-(1 << wbits) + 1, 1 << wbits, 2)[None]).astype(np.int16)
    s = weight_slices(codes, wbits, ternary)
    assert (slice_codes((s > 0).astype(np.uint8), wbits, ternary) == codes).all()
    if ternary:  # a differential pair: 0 is one LRS and one HRS cell, the pair (HRS, LRS) also reads 0
        assert s[:, 0, 1].tolist() == [1, -1]
        assert slice_codes(np.array([[[0]], [[1]]], np.uint8), 2, True).item() == 0


def test_ternary_network_sums_are_the_two_equal_slices(tmp_path):
    rng = np.random.default_rng(7)
    net = random_sliced((49, 23, 10), 2, 2, rng, ternary=True)
    assert set(np.unique(net.weights[0])) == {-2, 0, 2} and net.bound(0) == 49 * 2 * 3 == sum_bound(49, 2, 2, True)
    x = rng.integers(0, 4, size=(300, 49))
    t = net.forward(x)
    assert (t.sums[0] == x @ net.weights[0].astype(np.int64)).all()
    assert (net.twin_sums(0, x) == t.sums[0]).all() and (net.twin_sums(1, t.acts[0]) == t.sums[1]).all()
    net.save(tmp_path / "t.npz")
    back = SlicedNetwork.load(tmp_path / "t.npz")
    assert back.ternary and all((a == b).all() for a, b in zip(net.weights, back.weights))
    assert np.load(tmp_path / "t.npz")["weight_code"] == "ternary"
    binary = random_sliced((16, 10), 2, 1, rng)
    binary.save(tmp_path / "b.npz")
    assert "weight_code" not in np.load(tmp_path / "b.npz").files  # binary-weighted files are unchanged
    with pytest.raises(RrambnnError, match="layer 0 weights must be int16 ternary codes -2, 0 or 2"):
        SlicedNetwork([np.ones((4, 3), np.int16)], [np.zeros(3, np.int32)], 2, 1, 2, ternary=True)
    with pytest.raises(RrambnnError, match="ternary weights are 2-bit \\(two cells per weight\\), not 3-bit"):
        SlicedNetwork([np.zeros((4, 3), np.int16)], [np.zeros(3, np.int32)], 3, 1, 2, ternary=True)
    bad = dict(np.load(tmp_path / "t.npz"))
    bad["weight_code"] = np.array("quinary")
    np.savez(tmp_path / "q.npz", **bad)
    with pytest.raises(RrambnnError, match="'weight_code' must be 'binary' or 'ternary', not 'quinary'"):
        SlicedNetwork.load(tmp_path / "q.npz")


def test_pixels_quantise_like_the_binary_chip_at_one_bit(mnist_test):
    img = mnist_test.images[:200]
    assert (quantise_pixels(img, 1) == (img >= 128)).all()
    q = quantise_pixels(np.arange(256, dtype=np.uint8), 3)
    assert q[0] == 0 and q[255] == 7 and (np.diff(q.astype(int)) >= 0).all()
    x = crop_inputs(img, 12, 4)
    assert (bit_planes(x, 4) * (1 << np.arange(4))[:, None, None]).sum(axis=0).tolist() == x.tolist()


@pytest.mark.parametrize("wbits,abits", [(1, 1), (2, 1), (1, 3), (3, 2), (8, 8)])
def test_forward_equals_the_slice_and_plane_twin(wbits, abits):
    rng = np.random.default_rng(wbits * 10 + abits)
    net = random_sliced((49, 23, 10), wbits, abits, rng)
    x = rng.integers(0, 1 << abits, size=(300, 49))
    t = net.forward(x)
    assert (net.twin_sums(0, x) == t.sums[0]).all()
    assert (net.twin_sums(1, t.acts[0]) == t.sums[1]).all()
    assert t.acts[0].max() <= (1 << abits) - 1
    # the quantiser counts the thresholds passed
    assert (t.acts[0] == (t.sums[0][:, :, None] >= net.thresholds[0][None]).sum(axis=2)).all()


def test_one_bit_sliced_network_is_the_binary_network():
    rng = np.random.default_rng(5)
    b = random_network((16, 9, 10), rng)
    s = SlicedNetwork([w.astype(np.int16) for w in b.weights], [b.thresholds[0][:, None], b.thresholds[1]],
                      1, 1, 4)
    x = rng.integers(0, 2, size=(500, 16))
    tb, ts = b.forward(x), s.forward(x)
    assert all((p == q).all() for p, q in zip(tb.sums, ts.sums))
    assert (tb.priority == ts.priority).all() and (tb.argmax == ts.argmax).all()


def test_file_round_trip_and_one_line_errors(tmp_path):
    rng = np.random.default_rng(2)
    net = random_sliced((16, 8, 10), 3, 2, rng, output_mode="argmax")
    path = tmp_path / "n.npz"
    net.save(path)
    back = SlicedNetwork.load(path)
    assert back.wbits == 3 and back.abits == 2 and back.output_mode == "argmax"
    assert all((a == b).all() for a, b in zip(net.weights, back.weights))
    bad = dict(np.load(path))
    bad["w0"] = bad["w0"] + 1  # even codes
    np.savez(tmp_path / "even.npz", **bad)
    with pytest.raises(RrambnnError, match=r"layer 0 weights must be int16 odd codes from -7 to 7"):
        SlicedNetwork.load(tmp_path / "even.npz")
    bad = dict(np.load(path))
    bad["theta0"] = bad["theta0"][:, ::-1].copy()
    np.savez(tmp_path / "dec.npz", **bad)
    with pytest.raises(RrambnnError, match="thresholds must not decrease from level to level"):
        SlicedNetwork.load(tmp_path / "dec.npz")
    with pytest.raises(RrambnnError, match="Weight bits must be an integer from 1 to 8, not 9"):
        SlicedNetwork(net.weights, net.thresholds, 9, 2, 4)
    (tmp_path / "cut.npz").write_bytes(path.read_bytes()[:100])
    with pytest.raises(RrambnnError, match="not a readable .npz weights file"):
        SlicedNetwork.load(tmp_path / "cut.npz")
    with pytest.raises(RrambnnError, match="Activation bits must be an integer from 1 to 8, not 0"):
        TrainConfig(arch="144-24-10", crop=12, abits=0).validate()


def test_weight_codes_and_activation_levels():
    w = np.linspace(-1, 1, 1001)
    assert (weight_codes(w, 1) == np.where(w >= 0, 1, -1)).all()
    c = weight_codes(w, 3)
    assert set(np.unique(c)) == {-7, -5, -3, -1, 1, 3, 5, 7} and (np.diff(c) >= 0).all()
    z = np.linspace(-2, 2, 401, dtype=np.float32)
    assert (activate(z, 1) == (z >= 0)).all()
    a = activate(z, 2) * 3
    assert set(np.unique(a)) == {0, 1, 2, 3} and (np.diff(a) >= 0).all()


@pytest.mark.parametrize("wbits,abits,norm", [(2, 1, "bn"), (1, 2, "shared"), (3, 3, "bn"), (8, 8, "shared")])
def test_training_merges_multi_bit_points_exactly(wbits, abits, norm, mnist_train, mnist_test):
    """Every hidden activation code of the merged integer network equals the float model's."""
    cfg = TrainConfig(arch="144-24-16-10", crop=12, epochs=1, seed=3, wbits=wbits, abits=abits, hidden_norm=norm)
    net, model, _ = train(cfg, mnist_train.images[:4000], mnist_train.labels[:4000], progress=False)
    assert isinstance(net, SlicedNetwork) and (net.wbits, net.abits) == (wbits, abits)
    x = crop_inputs(mnist_test.images[:2000], 12, abits)
    t = net.forward(x)
    levels = (1 << abits) - 1
    a = x / levels
    for k in range(2):
        y = a @ model.qw(k).astype(np.float64)
        if norm == "shared":
            z = np.exp(np.float64(model.gamma[k][0])) * y + model.beta[k]
        else:
            z = model.gamma[k] * (y - model.run_mean[k]) / np.sqrt(model.run_var[k].astype(np.float64) + 1e-4) \
                + model.beta[k]
        a = activate(z, abits).astype(np.float64)
        assert (np.rint(a * levels) == t.acts[k]).all()
    w, th = signed_merge(model)
    assert w[0].dtype == np.int16 and th[0].shape == (24, levels)
    assert net.accuracy(x, mnist_test.labels[:2000])["argmax"] > 0.2  # chance is 0.1


def test_binary_config_still_gives_a_binary_network(mnist_train):
    cfg = TrainConfig(arch="144-16-10", crop=12, epochs=1, seed=1)
    net, _, _ = train(cfg, mnist_train.images[:1000], mnist_train.labels[:1000], progress=False)
    assert isinstance(net, BinaryNetwork) and net.weights[0].dtype == np.int8
