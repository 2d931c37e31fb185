"""Convolutional networks: the layer specs, the one crossbar read, the integer CNN, the quantisers,
training through the crossbar model (gradients checked numerically), the CLI and the sweep."""

import json

import numpy as np
import pytest

from conftest import one_error_line, rr
from rrambnn.errors import RrambnnError
from rrambnn.gen import cnn_train, crossbar
from rrambnn.gen.cnn import CnnNetwork, centre, conv_direct, im2col, max_pool, ramp, random_cnn
from rrambnn.gen.spec import Conv, Dense, Pool, parse_spec


# -- specs -------------------------------------------------------------------------------

def test_lenet5_spec_shapes_and_matrices():
    s = parse_spec("lenet5")
    assert s.text == "i28-c5x6p2-p2-c5x16-p2-d120-d84-d10"
    assert s.shapes() == [(28, 28, 1), (28, 28, 6), (14, 14, 6), (10, 10, 16), (5, 5, 16), (1, 1, 120), (1, 1, 84),
                          (1, 1, 10)]
    assert [(m.rows, m.cols, m.positions) for m in s.matrices()] == [(25, 6, 784), (150, 16, 100), (400, 120, 1),
                                                                      (120, 84, 1), (84, 10, 1)]
    assert s.macs() == 25 * 6 * 784 + 150 * 16 * 100 + 400 * 120 + 120 * 84 + 84 * 10
    assert [m.tiles() for m in s.matrices()] == [(1, 1), (2, 1), (4, 1), (1, 1), (1, 1)] and s.arrays() == 9
    assert parse_spec("400-128-128-10").arrays() == 6 and parse_spec("400-128-128-10").arrays((64, 64)) == 7 * 2 + 4 + 2
    assert parse_spec(s.text) == s and parse_spec("LeNet5") == s


def test_spec_grammar_and_dense_chains():
    s = parse_spec("i13x11x2-c3x5s2p1-p2-d7-9")
    assert s.layers == (Conv(3, 5, 2, 1), Pool(2), Dense(7), Dense(9))
    assert s.shapes()[1] == (7, 6, 5) and s.text == "i13x11x2-c3x5s2p1-p2-d7-d9"
    m = parse_spec("400-128-128-10")
    assert m.is_dense and m.widths == (400, 128, 128, 10) and m.text == "400-128-128-10"
    assert parse_spec((400, 10)) == parse_spec("400-10")


@pytest.mark.parametrize("text, message", [
    ("c5x6-q2-d10", "cannot read 'q2'"),
    ("i8-c9x6-d10", "a 9x9 kernel is larger than its 8x8 input"),
    ("i8-c5x6p2-c9x3-d10", "a 9x9 kernel is larger than its 8x8 input (padding included)"),
    ("c5x6-d10-p2", "pooling cannot follow a dense layer"),
    ("c5x6-d10-c3x2-d10", "a convolution cannot follow a dense layer"),
    ("c5x6-p2", "the last layer must be dense"),
    ("i4-c3x2-p3-d10", "pooling window does not fit its 2x2 input"),
    ("c3x2s4-d10", "the stride must be from 1 to the kernel size"),
    ("", "Architecture must be layer specs like"),
    ("400--10", "Architecture must be layer specs like"),
])
def test_spec_errors(text, message):
    with pytest.raises(RrambnnError) as e:
        parse_spec(text)
    assert message in str(e.value)


# -- the crossbar read -------------------------------------------------------------------

def test_read_equals_twin_and_stays_exact(rng):
    x = rng.integers(0, 2, (40, 130)).astype(np.uint8)
    cells = rng.integers(0, 2, (130, 17)).astype(np.uint8)
    w = (2 * cells.astype(np.int8) - 1)
    assert (crossbar.read(x, w) == crossbar.twin(x, cells)).all()
    assert crossbar.exact_dtype(2 ** 24 - 1) is np.float32 and crossbar.exact_dtype(2 ** 24) is np.float64
    assert crossbar.exact_dtype(2 ** 53) is np.int64
    big = np.full((1, 3), 2 ** 20, np.int64)  # partial sums beyond 2^24: float64, still exact
    wb = np.array([[2 ** 12 + 1], [-(2 ** 12) - 3], [7]], np.int64)
    assert crossbar.read(big, wb)[0, 0] == (big.astype(object) @ wb.astype(object))[0, 0]
    xc = rng.integers(0, 2, 17)
    assert (crossbar.transposed_read(xc, w) == w @ xc).all()
    act = np.flatnonzero(x[0])
    assert (crossbar.read_active(act, w) == crossbar.read(x[0], w)).all()


# -- the integer CNN ---------------------------------------------------------------------

@pytest.mark.parametrize("k, stride, pad", [(3, 1, 0), (3, 2, 1), (5, 1, 2), (2, 2, 0), (4, 3, 3)])
def test_im2col_equals_loop_convolution(rng, k, stride, pad):
    x = rng.integers(0, 4, (3, 9, 11, 2))
    w = rng.integers(-7, 8, (k * k * 2, 5))
    cols = im2col(x, k, stride, pad)
    via_read = crossbar.read(cols.reshape(-1, cols.shape[-1]), w).reshape(cols.shape[:3] + (5,))
    assert (via_read == conv_direct(x, w, k, stride, pad)).all()


def test_binary_max_pooling_is_an_or(rng):
    x = rng.integers(0, 2, (4, 7, 9, 3)).astype(np.uint8)
    p = max_pool(x, 2)
    want = x[:, 0:6:2, 0:8:2] | x[:, 1:7:2, 0:8:2] | x[:, 0:6:2, 1:9:2] | x[:, 1:7:2, 1:9:2]
    assert p.shape == (4, 3, 4, 3) and (p == want).all()


@pytest.mark.parametrize("k", [2, 3])
def test_pooling_and_its_gradient_against_loops(rng, k):
    """max_pool and its gradient to the first maximum of each window (ties everywhere: few
    levels), odd sizes whose last rows/columns belong to no window; col2im the adjoint of im2col."""
    x = rng.integers(0, 3, (3, 2 * k + 1, 3 * k + 2, 2)).astype(np.float32)
    ho, wo = x.shape[1] // k, x.shape[2] // k
    dy = rng.normal(0, 1, (3, ho, wo, 2)).astype(np.float32)
    want_p, want_g = np.zeros_like(dy), np.zeros_like(x)
    for n, i, j, c in np.ndindex(dy.shape):
        win = x[n, i * k:(i + 1) * k, j * k:(j + 1) * k, c]
        want_p[n, i, j, c] = win.max()
        a, b = divmod(int(win.argmax()), k)  # the first maximum, row by row
        want_g[n, i * k + a, j * k + b, c] = dy[n, i, j, c]
    pooled = max_pool(x, k)
    assert (pooled == want_p).all()
    assert (cnn_train.pool_backward(x, pooled, dy, k) == want_g).all()
    d = rng.normal(0, 1, im2col(x, k, 2, 1).shape)
    assert np.isclose((im2col(x, k, 2, 1) * d).sum(), (x * cnn_train.col2im(d, x.shape, k, 2, 1)).sum())


def test_ramp_counts_thresholds_passed():
    s = np.array([[-5, 0, 3], [10, -10, 2]])
    theta = np.array([[-6, 0, 9], [0, 0, 0], [2, 3, 4]], np.int32)
    assert ramp(s, theta).tolist() == [[1, 3, 2], [3, 0, 1]]


def test_random_cnn_forward_matches_a_direct_model(rng, tmp_path):
    net = random_cnn("i11-c3x5s2p1-p2-c2x7-d9-d10", 2, 2, rng)
    x = rng.integers(0, 4, (60, 11, 11, 1)).astype(np.uint8)
    t = net.forward(x)
    # the same network, layer by layer, with loop convolutions and plain integer sums
    a = x.astype(np.int64)
    s0 = conv_direct(a, net.weights[0], 3, 2, 1)
    assert (t.sums[0] == s0).all()
    a = max_pool(ramp(s0, net.thresholds[0]), 2)
    s1 = conv_direct(a, net.weights[1], 2)
    assert (t.sums[1] == s1).all()
    a = ramp(s1, net.thresholds[1]).reshape(60, -1)
    s2 = a.astype(np.int64) @ net.weights[2]
    s3 = ramp(s2, net.thresholds[2]).astype(np.int64) @ net.weights[3]
    assert (t.sums[3] == s3).all()
    assert (t.argmax == (s3 - net.thresholds[3]).argmax(axis=1)).all()
    fires = s3 >= net.thresholds[3]
    assert (t.hit == fires.any(axis=1)).all()
    assert [a.shape for a in t.acts] == [(60, 6, 6, 5), (60, 3, 3, 5), (60, 2, 2, 7), (60, 9), (60, 10)]
    net.save(tmp_path / "c.npz")
    back = CnnNetwork.load(tmp_path / "c.npz")
    assert back.spec == net.spec and all((a == b).all() for a, b in zip(back.weights, net.weights))
    assert (back.forward(x, trace=False)[1] == t.argmax).all()


def test_weights_file_with_wrong_channels_is_refused(rng, tmp_path):
    net = random_cnn("i9-c3x4-p2-c3x2p1-d10", 1, 1, rng)
    p = tmp_path / "c.npz"
    net.save(p)
    with np.load(p) as f:
        arrays = dict(f)
    arrays["w1"] = arrays["w1"][:27]  # 3x3x3 rows: an input of 3 channels, the layer before has 4
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(RrambnnError, match=r"crossbar layer 1 \(c3x2p1\) weights must have shape \(36, 2\)"):
        CnnNetwork.load(tmp_path / "bad.npz")


def test_disturbed_reads_are_seeded(rng):
    net = random_cnn("i8-c3x4-p2-d10", 2, 2, rng)
    x = rng.integers(0, 4, (200, 8, 8, 1)).astype(np.uint8)
    a = net.forward(x, trace=False, disturbance=0.05, seed=3)
    b = net.forward(x, trace=False, disturbance=0.05, seed=3)
    c = net.forward(x, trace=False, disturbance=0.05, seed=4)
    clean = net.forward(x, trace=False)
    assert all((u == v).all() for u, v in zip(a, b))
    assert any((u != v).any() for u, v in zip(a, c)) and any((u != v).any() for u, v in zip(a, clean))


def serial_draws(x, shape, block, bits):
    """The documented draws, made one after the other from ``bits`` (no lanes): every read of x
    that drives a row takes a code per cell, chunks of ``block // cells`` reads laid out
    (reads, cols, rows), each chunk whole 64-bit draws; u = d (k + 1/2) / 2^15 later."""
    rows, cols = shape
    live = np.flatnonzero(x.any(axis=1))
    step = max(1, min(len(live), block // (rows * cols)))
    k = np.zeros((len(x), rows, cols))
    for s in range(0, len(live), step):
        m = min(step, len(live) - s)
        cells = rows * cols * m
        codes = bits.random_raw(-(-cells // 4)).view(np.int16)[:cells].reshape(m, cols, rows)
        k[live[s:s + m]] = codes.transpose(0, 2, 1)
    return np.where(x[:, :, None] != 0, k + 0.5, 0.0)


@pytest.mark.parametrize("block", [1 << 17, 70])
@pytest.mark.parametrize("bits", ["PCG64", "SFC64", "Philox"])
@pytest.mark.parametrize("zero_read", [True, False])
def test_the_disturbed_read_draws_every_read_afresh(rng, monkeypatch, block, bits, zero_read):
    """crossbar.Disturbed against the definition, with the draws made one after the other from
    the generator (lanes or not): every read (row of x) of every driven cell with its own u in
    (-d, d), zero rows not read; sums and both gradients (also in chunks of two reads); the
    caller's generator ends where the serial draws leave it (a buffered 32-bit half-draw kept)."""
    from rrambnn.gen.crossbar import Disturbed
    monkeypatch.setattr(Disturbed, "CHUNK_CELLS", block)
    monkeypatch.setattr(Disturbed, "THREADS", 2)
    x = (rng.random((9, 7)) < 0.5) * rng.integers(1, 4, (9, 7)).astype(np.float64)
    x[3] = x[2]  # the same inputs read twice: two draws
    x[5] = 0 if zero_read else 1  # a read of all zeros: nothing drawn (else every read drives a row)
    w = rng.normal(size=(7, 5))
    d = 0.05

    def generator():
        g = np.random.Generator(getattr(np.random, bits)(2))
        g.random(dtype=np.float32)  # leaves half a 64-bit draw buffered
        return g

    caller, serial = generator(), generator()
    read = Disturbed(x, w, d, caller, dtype=np.float64)
    u = d * serial_draws(x, w.shape, block, serial.bit_generator) / 2 ** 15
    assert caller.random(dtype=np.float32) == serial.random(dtype=np.float32)  # the buffered half first
    assert (caller.bit_generator.random_raw(3) == serial.bit_generator.random_raw(3)).all()
    assert (read.draws() == u).all()
    assert np.abs(u).max() < d and (u[x == 0] == 0).all()
    assert np.allclose(read.sums, np.einsum("pr,rc,prc->pc", x, w, 1 + u), rtol=0, atol=1e-12)
    assert not np.allclose(read.sums[2], read.sums[3])
    dy = rng.normal(size=(9, 5))
    gw, gx = read.grads(dy)
    assert np.allclose(gw, np.einsum("pr,pc,prc->rc", x, dy, 1 + u), rtol=0, atol=1e-12)
    assert np.allclose(gx, np.einsum("pc,rc,prc->pr", dy, w, 1 + u), rtol=0, atol=1e-12)
    assert (read.grads(dy, inputs=False)[0] == gw).all() and read.grads(dy, inputs=False)[1] is None
    again = Disturbed(x, w, d, generator(), dtype=np.float64)
    assert (again.sums == read.sums).all()
    monkeypatch.setattr(Disturbed, "THREADS", 1)  # the lanes on one thread: the same numbers
    alone = Disturbed(x, w, d, generator(), dtype=np.float64)
    assert (alone.sums == read.sums).all()
    assert all((a == b).all() for a, b in zip(alone.grads(dy), read.grads(dy)))


def test_lane_threads_from_the_environment(monkeypatch):
    from rrambnn.gen import crossbar
    monkeypatch.setattr(crossbar.Disturbed, "THREADS", None)
    monkeypatch.setenv("RRAMBNN_THREADS", "1")
    assert crossbar.lane_threads() == 1
    monkeypatch.setenv("RRAMBNN_THREADS", "8")
    assert crossbar.lane_threads() == crossbar.Disturbed.LANES
    for bad in ("auto", "0", "-2"):
        monkeypatch.setenv("RRAMBNN_THREADS", bad)
        with pytest.raises(RrambnnError, match=f"RRAMBNN_THREADS must be a positive integer, not '{bad}'"):
            crossbar.lane_threads()


def test_disturbed_evaluation_draws_per_image(rng):
    """The same image twice in one block reads differently; per-batch training draws still train."""
    net = random_cnn("i8-c3x4-p2-d10", 2, 2, rng)
    x = np.repeat(rng.integers(0, 4, (1, 8, 8, 1)).astype(np.uint8), 2, axis=0)
    t = net.forward(x, disturbance=0.2, seed=1)
    assert not np.allclose(t.sums[0][0], t.sums[0][1])
    with pytest.raises(RrambnnError, match="The disturbance draws must be one of read, batch, not 'image'"):
        cnn_train.CnnTrainConfig(draws="image").validate()


# -- quantisers --------------------------------------------------------------------------

def test_quantiser_edges():
    q = cnn_train.quantise
    assert q(np.array([0.0, 1.0]), 3).tolist() == [0.0, 1.0]
    top = 7
    # half-way points round up; just below rounds down
    assert q(np.array([0.5 / top]), 3)[0] == pytest.approx(1 / top)
    assert q(np.array([0.5 / top - 1e-9]), 3)[0] == 0.0
    assert q(np.array([0.3]), 32)[0] == 0.3
    assert q(np.array([0.49, 0.5]), 1).tolist() == [0.0, 1.0]


def test_weight_codes_are_odd_and_in_range(rng):
    W = rng.normal(0, 1, (50, 20)).astype(np.float32)
    for k in (1, 2, 3, 4, 8):
        c = cnn_train.weight_codes(W, k)
        top = (1 << k) - 1
        assert c.dtype == np.int16 and (c % 2 != 0).all() and np.abs(c).max() == top
        wq, _ = cnn_train.weights_forward(W, k)
        assert np.allclose(wq * top, c)
    assert cnn_train.weight_codes(np.zeros((1, 1)), 1)[0, 0] == 1  # 0 -> +1
    assert cnn_train.weight_codes(np.zeros((2, 1)), 3).tolist() == [[1], [1]]  # tanh 0 -> the middle, half up


def test_gradient_quantiser(rng):
    e = rng.normal(0, 1, (400, 5, 10)).astype(np.float32) * rng.uniform(0.01, 10, (400, 1, 1)).astype(np.float32)
    m = np.abs(e).reshape(400, -1).max(axis=1)[:, None, None]  # the scale: per sample
    for k in (1, 2, 4):
        top = (1 << k) - 1
        q = cnn_train.quantise_errors(e, k, rng)
        grid = (q / (2 * m) + 0.5) * top  # on the k-bit grid 0..2^k - 1
        assert np.allclose(grid, np.round(grid), atol=1e-3) and grid.min() >= -1e-3 and grid.max() <= top + 1e-3
        assert (np.abs(q) <= m * (1 + 1e-6)).all()
        # stochastic rounding: unbiased on average (per sample's scale)
        assert abs(float(((q - e) / m).mean())) < 0.01
    assert (cnn_train.quantise_errors(np.zeros(5, np.float32), 2, rng) == 0).all()
    assert cnn_train.quantise_errors(e, 32, rng) is e


# -- training ----------------------------------------------------------------------------

def _float64(model):
    for lst in (model.W, model.gamma, model.beta, model.run_mean, model.run_var):
        lst[:] = [p.astype(np.float64) for p in lst]
    model.log_s = model.log_s.astype(np.float64)
    model.b_out = model.b_out.astype(np.float64)


def test_gradients_match_finite_differences(rng):
    """Float quantisers (32) everywhere: the backward pass is the exact gradient (away from kinks)."""
    cfg = cnn_train.CnnTrainConfig(spec="i7-c3x3p1-p2-c2x4-d5-d10", abits=32, cobits=32, wbits=32, gbits=32,
                                   shift=0)
    cfg.validate()
    model = cnn_train.CnnModel(cfg, np.random.default_rng(1))
    _float64(model)
    model.gamma = [np.full_like(g, 0.3) for g in model.gamma]  # BN(y) mostly inside (0, 1): few kinks
    x = rng.random((6, 7, 7, 1))
    R = rng.normal(0, 1, (6, 10))

    def loss():
        z, _ = model.forward(x, train=True)
        return float((z * R).sum())

    z, cache = model.forward(x, train=True)
    grads = model.backward(R, cache, rng)
    params = model.params()
    checked = 0
    for p, g in zip(params, grads):
        flat = p.reshape(-1)
        for i in rng.choice(flat.size, size=min(4, flat.size), replace=False):
            old = flat[i]
            flat[i] = old + 1e-6
            up = loss()
            flat[i] = old - 1e-6
            down = loss()
            flat[i] = old
            num = (up - down) / 2e-6
            assert g.reshape(-1)[i] == pytest.approx(num, rel=1e-4, abs=1e-6)
            checked += 1
    assert checked >= 30


def test_export_is_the_float_staircase(rng, mnist_train):
    """A short low-bit training run: the integer chip's hidden codes equal the float model's
    quantised activations (running statistics, no disturbance) on training images."""
    cfg = cnn_train.CnnTrainConfig(spec="i12-c3x4-p2-c3x6-d16-d10", abits=2, cobits=3, wbits=2, gbits=4,
                                   epochs=1, samples=300, shift=0)
    net, model, hist = cnn_train.train(cfg, mnist_train.images[:300], mnist_train.labels[:300], progress=False)
    assert net.wbits == 2 and net.cobits == 3 and len(hist) == 1
    x_img = mnist_train.images[300:700]
    xi = net.inputs(x_img)
    xf = cnn_train.pixels(centre(model.spec, x_img), 2)[..., None]
    assert np.allclose(xi / 3, xf)
    _, cache = model.forward(xf, train=False)
    t = net.forward(xi)
    mats = [c for c in cache if c[0] == "mat"]
    for k in range(3):
        _, layer, _, cols2, wq, _, xhat, inv, ste, shape4, _ = mats[k]
        z = model.gamma[k] * xhat + model.beta[k]
        a, _ = model._activate(z)
        codes_f = np.floor(a * 3 + 0.5).reshape(t.acts[[0, 2, 3][k]].shape)
        # a negated column computes -S: its codes are equal, not its sums
        agree = (codes_f == t.acts[[0, 2, 3][k]]).mean()
        assert agree >= 0.999, (k, agree)


def test_training_is_deterministic(mnist_train):
    cfg = dict(spec="i12-c3x4-p2-d10", abits=2, cobits=2, wbits=1, gbits=2, epochs=1, samples=200,
               disturbance=0.05)
    a, _, ha = cnn_train.train(cnn_train.CnnTrainConfig(**cfg), mnist_train.images[:200], mnist_train.labels[:200],
                               progress=False)
    b, _, hb = cnn_train.train(cnn_train.CnnTrainConfig(**cfg), mnist_train.images[:200], mnist_train.labels[:200],
                               progress=False)
    assert all((u == v).all() for u, v in zip(a.weights, b.weights))
    assert all((u == v).all() for u, v in zip(a.thresholds, b.thresholds))
    assert ha[0]["loss"] == hb[0]["loss"]


# -- command line ------------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["--arch", "c5x6-q2-d10"], "cannot read 'q2'"),
    (["--arch", "i8-c9x6-d10"], "kernel is larger than its 8x8 input"),
    (["--arch", "lenet5", "--wbits", "17"], "Weight bits (W) must be an integer from 1 to 16 or 32 (float), not 17"),
    (["--arch", "lenet5", "--gbits", "0"], "Gradient bits (G) must be an integer from 1 to 16 or 32"),
    (["--arch", "lenet5", "--disturbance", "-0.1"], "Disturbance must be a number from 0 to below 1, not -0.1"),
    (["--arch", "lenet5", "--abits", "32", "--out", "{tmp}/f.npz"], "have no chip to write"),
    (["--arch", "400-10", "--gbits", "4", "--out", "{tmp}/f.npz"], "--gbits trains through the crossbar model"),
    (["--arch", "400-10", "--disturbance-draws", "batch", "--out", "{tmp}/f.npz"],
     "--disturbance-draws trains through the crossbar model"),
    (["--arch", "i28-c5x6-d11"], "MNIST needs 10 outputs"),
    (["--arch", "lenet5", "--crop", "20"], "--crop is an option of fully connected networks"),
    (["--arch", "4²-10", "--out", "{tmp}/f.npz"], "Architecture must look like 400-128-128-10, not '4²-10'"),
    (["--arch", "400-10", "--epochs", "0", "--out", "{tmp}/f.npz"], "argument --epochs: must be a whole number from 1 to 10,000, not 0"),
    (["--arch", "400-10", "--wbits", "0", "--out", "{tmp}/f.npz"], "Weight bits must be an integer from 1 to 8"),
])
def test_train_cnn_bad_input(tmp_path, args, message):
    one_error_line(rr("train", *[a.format(tmp=tmp_path) for a in args]), message)


def test_train_and_eval_a_small_cnn(tmp_path):
    out = tmp_path / "cnn.npz"
    r = rr("train", "--arch", "i20-c5x8s2p2-d10", "--abits", "2", "--cobits", "2", "--wbits", "2", "--gbits", "4",
           "--epochs", "2", "--samples", "2000", "--optimizer", "adam", "--disturbance", "0.05", "--out", str(out),
           "--quiet", "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["spec"] == "i20-c5x8s2p2-d10" and res["bits"] == "2/2/2/4"
    assert 0.6 < res["accuracy"]["argmax"] <= 1 and "accuracy_disturbed" in res
    r = rr("eval", "--weights", str(out), "--json", "--disturbance", "0.05")
    assert r.returncode == 0, r.stderr
    ev = json.loads(r.stdout)
    assert ev["accuracy"] == res["accuracy"] and ev["arch"] == res["spec"] and ev["converter_bits"] == 2
    one_error_line(rr("program", "--weights", str(out)), "this command does not take it yet (eval, verilog, sim, run and cost do)")
    one_error_line(rr("eval", "--weights", str(out), "--disturbance", "-0.1"), "Disturbance must be a number from 0")
    one_error_line(rr("eval", "--weights", str(out), "--disturbance", "nan"), "argument --disturbance: must be a finite number, not 'nan'")
    one_error_line(rr("eval", "--disturbance", "0.05", "--seed", "-1"), "argument --seed: must be a whole number from 0 to 4,294,967,295")


def test_old_mlp_files_load_and_evaluate_as_before(mnist_test):
    from rrambnn.gen.network import BinaryNetwork
    from rrambnn.gen.netfile import evaluate, load_network
    from rrambnn.weights import shipped
    net = load_network(None, multi_bit=True, cnn=True)
    assert isinstance(net, BinaryNetwork)
    assert evaluate(net)["accuracy"] == {k: v for k, v in net.meta["accuracy"].items()}
    assert shipped().name == "bnn-400-128-128-10.npz"


@pytest.mark.slow  # 37 s on a fresh machine; the default suite keeps test_determinism's sweep repeat (15 s)
def test_sweep_cnn_bits_resumes_and_reproduces(tmp_path):
    args = ["sweep", "cnn-bits", "--arch", "i12-c3x4-p2-d10", "--values", "2/2/1/4,32/32/32/32", "--seeds", "1",
            "--epochs", "1", "--samples", "300", "--disturbances", "0,0.05", "--jobs", "1", "--out", str(tmp_path)]
    r = rr(*args, "--json")
    assert r.returncode == 0, r.stderr
    first = json.loads(r.stdout.strip().splitlines()[-1])
    assert len(first["points"]) == 4 and [e["bits"] for e in first["summary"]] == ["2/2/1/4"] * 2 + ["32/32/32/32"] * 2
    assert first["summary"][0]["chip"] and not first["summary"][2]["chip"]
    assert (tmp_path / "cnn-bits.png").stat().st_size > 0 and "| 2/2/1/4 | 0.05 |" in (tmp_path / "cnn-bits.md").read_text()
    cached = sorted(p.name for p in (tmp_path / ".cnn-bits-points").iterdir())
    assert len(cached) == 4
    r = rr(*args, "--json")  # resumes: every point from the kept runs, the same table
    again = json.loads(r.stdout.strip().splitlines()[-1])
    assert again["points"] == first["points"] and again["summary"] == first["summary"]
    # a damaged kept point is run again; a fresh run of the same points gives the same numbers
    # (every field but wall times)
    for p in (tmp_path / ".cnn-bits-points").iterdir():
        p.write_bytes(b"\xff{not json")
    r = rr(*args, "--json")
    fresh = json.loads(r.stdout.strip().splitlines()[-1])
    strip = lambda rows: [{k: v for k, v in row.items() if k != "train_seconds"} for row in rows]  # noqa: E731
    assert strip(fresh["points"]) == strip(first["points"])
    one_error_line(rr("sweep", "cnn-bits", "--values", "4/4/4", "--out", str(tmp_path)), "--values takes A/CO/W/G")
    one_error_line(rr("sweep", "cnn-bits", "--values", "", "--out", str(tmp_path)), "--values is empty")
    one_error_line(rr("sweep", "cnn-bits", "--disturbances", "0,0", "--out", str(tmp_path)), "lists a value twice")
    one_error_line(rr("sweep", "cnn-bits", "--epochs", "0", "--out", str(tmp_path)), "argument --epochs: must be a whole number from 1 to 10,000, not 0")
