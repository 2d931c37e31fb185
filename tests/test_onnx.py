"""QONNX/ONNX import and export (the optional [onnx] extra): round trips, qonnx's executor
against the golden model, FINN-shaped models built with onnx.helper, every refusal."""

import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the [onnx] extra is not installed (pip install -e '.[onnx]')")
pytest.importorskip("qonnx", reason="the [onnx] extra is not installed (pip install -e '.[onnx]')")

from conftest import one_error_line, rr  # noqa: E402
from onnx_models import DOMAIN, FINN_SHAPES, Builder, bipolar_input, bn, finn_mlp, run_qonnx  # noqa: E402
from rrambnn.gen import onnx_io  # noqa: E402
from rrambnn.gen.network import BinaryNetwork  # noqa: E402
from rrambnn.gen.netfile import load_network, network_inputs  # noqa: E402
from rrambnn.gen.sliced import SlicedNetwork, random_sliced  # noqa: E402
from rrambnn.weights import shipped  # noqa: E402


def same_network(a, b):
    assert type(a) is type(b)
    assert all((x == y).all() and x.dtype == y.dtype for x, y in zip(a.weights, b.weights))
    assert all((x == y).all() and x.dtype == y.dtype for x, y in zip(a.thresholds, b.thresholds))
    assert a.output_mode == b.output_mode and a.meta == b.meta
    assert getattr(a, "preprocess", None) == getattr(b, "preprocess", None)
    assert (getattr(a, "wbits", 1), getattr(a, "abits", 1), getattr(a, "crop", 0)) == \
        (getattr(b, "wbits", 1), getattr(b, "abits", 1), getattr(b, "crop", 0))


def agrees_with_qonnx(net, path, images, batch):
    """qonnx's executor on the exported model: argmax of the scores is the argmax stage, the first
    score >= 0 the priority stage (none: a reject), for every image."""
    scores = run_qonnx(onnx.load(path), images, batch)
    t = net.forward(network_inputs(net, images))
    assert (scores.argmax(axis=1) == t.argmax).all()
    fires = scores >= 0
    assert (fires.any(axis=1) == t.hit).all()
    assert (np.where(t.hit, fires.argmax(axis=1), 0) == t.priority).all()


# -- export, round trips -----------------------------------------------------------------

@pytest.mark.parametrize("name", ["bnn-400-128-128-10.npz", "bnn-400-200-10.npz"])
def test_shipped_networks_round_trip_byte_for_byte(tmp_path, name):
    r = rr("export", "--weights", str(shipped(name)), "--out", str(tmp_path / "m.onnx"), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["nodes"] > 0
    r = rr("import", str(tmp_path / "m.onnx"), "--out", str(tmp_path / "back.npz"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "back.npz").read_bytes() == shipped(name).read_bytes()


@pytest.mark.parametrize("wbits, abits", [(1, 2), (2, 1), (3, 2), (8, 8)])
def test_multi_bit_networks_round_trip(tmp_path, rng, wbits, abits, mnist_test):
    net = random_sliced((400, 23, 17, 10), wbits, abits, rng, crop=20, output_mode="argmax")
    net.meta = {"note": "random"}
    res = onnx_io.export(net, tmp_path / "m.onnx", batch=100)
    assert res["dtype"] == ("float64" if (wbits, abits) == (8, 8) else "float32")  # sums beyond 2^24: exact in float64
    back = onnx_io.import_model(tmp_path / "m.onnx")
    same_network(net, back)
    agrees_with_qonnx(net, tmp_path / "m.onnx", mnist_test.images[:200], 100)


def test_the_reference_chip_agrees_with_qonnx(tmp_path, mnist_test):
    net = load_network()
    onnx_io.export(net, tmp_path / "m.onnx", batch=500)
    agrees_with_qonnx(net, tmp_path / "m.onnx", mnist_test.images[:1000], 500)


@pytest.mark.slow
def test_the_reference_chip_agrees_with_qonnx_on_every_test_image(tmp_path, mnist_test):
    net = load_network()
    onnx_io.export(net, tmp_path / "m.onnx", batch=1000)
    agrees_with_qonnx(net, tmp_path / "m.onnx", mnist_test.images, 1000)


# -- import of models built elsewhere ----------------------------------------------------

def imported_equals_qonnx(model, tmp_path, images, batch=100, priority=False, **kw):
    """qonnx's argmax on ``images``; with ``priority`` (a model whose last node gives the scores, not
    a softmax) also the priority stage: the first score >= 0, none a reject."""
    onnx.save(model, tmp_path / "f.onnx")
    net = onnx_io.import_model(tmp_path / "f.onnx", **kw)
    scores = run_qonnx(model, images, batch)
    t = net.forward(network_inputs(net, images))
    assert (scores.argmax(axis=1) == t.argmax).all()
    if priority:
        assert "import_note" not in net.meta  # thresholds not moved: the priority stage is score >= 0
        fires = scores >= 0
        assert (fires.any(axis=1) == t.hit).all()
        assert (np.where(t.hit, fires.argmax(axis=1), 0) == t.priority).all()
    return net


@pytest.mark.parametrize("shape", ["TFC", "SFC"])
def test_finn_w1a1_shapes_import_exactly(tmp_path, mnist_test, shape):
    net = imported_equals_qonnx(finn_mlp(FINN_SHAPES[shape], rng=np.random.default_rng(1), batch=100, negative=0.2),
                                tmp_path, mnist_test.images[:300], priority=True)
    assert isinstance(net, BinaryNetwork) and net.arch == (784,) + FINN_SHAPES[shape] + (10,)
    assert net.preprocess.crop == 28 and net.preprocess.threshold == 128 and net.output_mode == "argmax"


def test_finn_w1a2_imports_as_a_multi_bit_network(tmp_path, mnist_test):
    net = imported_equals_qonnx(finn_mlp(FINN_SHAPES["TFC"], abits=2, gemm=True, negative=0.3, out_bias=True,
                                         rng=np.random.default_rng(2), batch=100),
                                tmp_path, mnist_test.images[:300], output_mode="priority")
    assert isinstance(net, SlicedNetwork) and (net.wbits, net.abits) == (1, 2) and net.output_mode == "priority"


@pytest.mark.slow
def test_lfc_imports_exactly(tmp_path, mnist_test):
    net = imported_equals_qonnx(finn_mlp(FINN_SHAPES["LFC"], rng=np.random.default_rng(1), batch=100),
                                tmp_path, mnist_test.images[:1000])
    assert net.arch == (784, 1024, 1024, 1024, 10)


def streamlined(rng, batch=50):
    """FINN's streamlined form and the other supported nodes: Reshape/Squeeze/Unsqueeze, a
    centre Slice (crop 20), Div/Add/Sub on the input, MultiThreshold with out_scale/out_bias,
    Relu + Clip + unsigned Quant, Neg, Identity; Softmax and ArgMax at the end."""
    b = Builder()
    x = b.node("Slice", ["image", b.const([4, 4], np.int64), b.const([24, 24], np.int64), b.const([2, 3], np.int64)])
    x = b.node("Reshape", [x, b.const([batch, 400], np.int64)])
    x = b.node("Unsqueeze", [x, b.const([2], np.int64)])
    x = b.node("Squeeze", [x, b.const([2], np.int64)])
    x = b.node("Div", [x, b.const(0.5)])
    x = b.node("Add", [x, b.const(-1.0)])
    x = b.node("MultiThreshold", [x, b.const([[0.0]])], domain=DOMAIN, out_dtype="BIPOLAR", out_scale=2.0,
               out_bias=-1.0)  # pixel / 255 * 2 - 1 >= 0: p >= 128, as -1/+1
    w = np.where(rng.random((400, 30)) < 0.5, -1.0, 1.0)
    x = b.node("MatMul", [x, b.const(w * 0.5)])
    x = bn(b, x, 30, rng, 0.3)
    x = b.node("Relu", [x])
    x = b.node("Clip", [x, b.const(0.0), b.const(1.0)])
    x = b.node("Quant", [x, b.const(1.0), b.const(0.0), b.const(1.0)], domain=DOMAIN, signed=0, narrow=0,
               rounding_mode="ROUND")  # 1-bit unsigned: round(clip(BN, 0, 1)) in {0, 1}
    x = b.node("Identity", [x])
    w = np.where(rng.random((30, 20)) < 0.5, -1.0, 1.0)
    x = b.node("MatMul", [x, b.node("Neg", [b.const(w)])])
    x = b.node("MultiThreshold", [x, b.const(rng.integers(-6, 7, (20, 1)).astype(float) + 0.5)], domain=DOMAIN,
               out_dtype="BINARY")
    x = b.node("MatMul", [x, b.const(np.where(rng.random((20, 10)) < 0.5, -0.125, 0.125))])
    x = b.node("Add", [x, b.const(0.125 * rng.integers(-3, 4, 10))])  # per-class biases of whole sum steps
    x = b.node("Softmax", [x], axis=1)
    return b.model("image", x, [batch, 1, 28, 28], 10)


def test_every_supported_node_imports_exactly(tmp_path, mnist_test, rng):
    net = imported_equals_qonnx(streamlined(rng), tmp_path, mnist_test.images[:300], batch=50)
    assert isinstance(net, BinaryNetwork) and net.arch == (400, 30, 20, 10) and net.preprocess.crop == 20


def test_import_of_the_lfc_shape_is_fast(tmp_path):
    """Not a timed test: the figure is in the benchmark (rrambnn bench --onnx); this checks it runs."""
    onnx.save(finn_mlp((1024, 1024, 1024), rng=np.random.default_rng(3)), tmp_path / "lfc.onnx")
    assert onnx_io.import_model(tmp_path / "lfc.onnx").arch == (784, 1024, 1024, 1024, 10)


# -- convolutional networks ---------------------------------------------------------------

@pytest.mark.parametrize("name", ["lenet5-4-4-4-4.npz", "lenet5-2-2-1-4.npz"])
def test_shipped_lenet5s_round_trip_and_agree_with_qonnx(tmp_path, mnist_test, name):
    r = rr("export", "--weights", str(shipped(name)), "--out", str(tmp_path / "m.onnx"))
    assert r.returncode == 0, r.stderr
    r = rr("import", str(tmp_path / "m.onnx"), "--out", str(tmp_path / "back.npz"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "back.npz").read_bytes() == shipped(name).read_bytes()
    net = load_network(shipped(name), cnn=True)
    onnx_io.export(net, tmp_path / "b.onnx", batch=100)
    scores = run_qonnx(onnx.load(tmp_path / "b.onnx"), mnist_test.images[:200], 100)
    t = net.forward(net.inputs(mnist_test.images[:200]))
    fires = scores >= 0
    assert (scores.argmax(axis=1) == t.argmax).all() and (fires.any(axis=1) == t.hit).all()
    assert (np.where(t.hit, fires.argmax(axis=1), 0) == t.priority).all()


def test_a_brevitas_like_cnn_imports_exactly(tmp_path, mnist_test):
    from onnx_models import brevitas_cnn
    model = brevitas_cnn(np.random.default_rng(4), batch=100)
    onnx.save(model, tmp_path / "c.onnx")
    net = onnx_io.import_model(tmp_path / "c.onnx")
    assert net.spec.text == "i28-c3x4p1-p2-c3x6-p2-d16-d10" and (net.wbits, net.abits) == (1, 2)
    scores = run_qonnx(model, mnist_test.images[:300], 100)
    assert (scores.argmax(axis=1) == net.forward(net.inputs(mnist_test.images[:300])).argmax).all()


@pytest.mark.parametrize("kw, message", [
    ({"pool_first": True}, "comes after a pooling or layout node; rrambnn pools the activation codes"),
    ({"pad2": 1}, "zero padding of inputs whose lowest level is -1, not 0"),
])
def test_cnn_refusals(tmp_path, kw, message):
    from onnx_models import brevitas_cnn
    onnx.save(brevitas_cnn(np.random.default_rng(4), **kw), tmp_path / "c.onnx")
    one_error_line(rr("import", str(tmp_path / "c.onnx"), "--out", str(tmp_path / "w.npz")), message)


# -- refusals ----------------------------------------------------------------------------

def mlp_with(tmp_path, *, weights=None, act=None, tail=None, name="m.onnx"):
    """A one-hidden-layer model with one part replaced."""
    rng = np.random.default_rng(0)
    b = Builder()
    x = bipolar_input(b)
    w = weights if weights is not None else np.where(rng.random((784, 8)) < 0.5, -1.0, 1.0)
    x = b.node("MatMul", [x, b.const(w)])
    x = act(b, x) if act else b.node("BipolarQuant", [bn(b, x, 8, rng), b.const(1.0)], domain=DOMAIN)
    x = b.node("MatMul", [x, b.const(np.where(rng.random((8, 10)) < 0.5, -1.0, 1.0))])
    if tail:
        x = tail(b, x)
    onnx.save(b.model("image", x, [1, 1, 28, 28], 10), tmp_path / name)
    return tmp_path / name


@pytest.mark.parametrize("kind, message", [
    ("float", "column 0 is not a scale times odd integer codes of at most 8 bits"),
    ("wide", "column 0 is not a scale times odd integer codes of at most 8 bits"),
    ("unquantised", "is not quantised to at most 8 bits"),
    ("tanh", "(Tanh) is not supported"),
    ("scales", "classes have different or negative scales"),
    ("fraction", "per-class biases differ by fractions of a sum step"),
    ("branch", "is not on a single chain from the input"),
])
def test_refusals_name_the_problem(tmp_path, kind, message):
    rng = np.random.default_rng(5)
    w = np.where(rng.random((784, 8)) < 0.5, -1.0, 1.0)
    kw = {
        "float": dict(weights=rng.normal(size=w.shape)),
        "wide": dict(weights=w * np.where(rng.random(w.shape) < 0.5, 1, 511)),
        "unquantised": dict(act=lambda b, x: bn(b, x, 8, rng)),
        "tanh": dict(act=lambda b, x: b.node("Tanh", [x])),
        "scales": dict(tail=lambda b, x: b.node("Mul", [x, b.const(np.arange(1, 11, dtype=float))])),
        "fraction": dict(tail=lambda b, x: b.node("Add", [x, b.const(np.linspace(0, 0.9, 10))])),
        "branch": dict(act=lambda b, x: b.node("BipolarQuant", [b.node("Mul", [x, x]), b.const(1.0)],  # x * x
                                               domain=DOMAIN)),
    }[kind]
    path = mlp_with(tmp_path, **kw)
    one_error_line(rr("import", str(path), "--out", str(tmp_path / "w.npz")), message)
    assert not (tmp_path / "w.npz").exists()


def test_one_layer_and_odd_code_networks_round_trip(tmp_path, rng):
    """A single layer; hidden and output columns whose codes are all +-3; a 3-bit network whose
    codes stay within +-3: back as they were."""
    from rrambnn.gen.mnist import Preprocess
    from rrambnn.gen.network import random_network
    one = random_network((400, 10), rng)
    one.preprocess = Preprocess(crop=20, threshold=100)
    net = random_sliced((144, 12, 10), 3, 2, rng, crop=12)
    net.weights[0][:, 0] = 3 * np.sign(net.weights[0][:, 0])
    net.weights[1][:, :] = np.where(net.weights[1] > 0, 3, -3).astype(np.int16)
    for k, w in enumerate(net.weights):
        net.weights[k] = np.clip(w, -3, 3).astype(np.int16)
    for n in (one, net):
        onnx_io.export(n, tmp_path / "m.onnx")
        same_network(n, onnx_io.import_model(tmp_path / "m.onnx"))


def test_a_large_common_output_bias_keeps_the_argmax(tmp_path, mnist_test):
    """A bias of +5000 on every class: the thresholds are moved into the chip's range
    (argmax exact; the note says what the priority stage is)."""
    b = Builder()
    rng = np.random.default_rng(7)
    x = bipolar_input(b)
    x = b.node("MatMul", [x, b.const(np.where(rng.random((784, 10)) < 0.5, -1.0, 1.0))])
    x = b.node("Add", [b.const(5000.0 + 2 * rng.integers(-3, 4, 10)), x])  # the data second: commutative
    model = b.model("image", x, [100, 1, 28, 28], 10)
    net = imported_equals_qonnx(model, tmp_path, mnist_test.images[:300])
    assert "moved by" in net.meta["import_note"]


@pytest.mark.parametrize("kind, message", [
    ("offcentre", "do not take the centre 20x20 of the image in raster order"),
    ("strided", "do not take the centre 14x14 of the image in raster order"),
    ("relu", "(Relu) after the last layer; only scales and biases may follow it"),
    ("softmax-neg", "(Neg) after the classifier's head"),
    ("topk-smallest", "takes the smallest scores"),
    ("argmax-last", "selects the last index on ties"),
    ("bn-length", "cannot run on its inputs"),
    ("classes", "the model has 12 outputs; MNIST needs 10"),
])
def test_more_refusals(tmp_path, kind, message):
    rng = np.random.default_rng(8)
    b = Builder()
    x = "image"
    n_in = 784
    if kind in ("offcentre", "strided"):
        ends, step = ([20, 20], [1, 1]) if kind == "offcentre" else ([28, 28], [2, 2])
        x = b.node("Slice", [x, b.const([0, 0], np.int64), b.const(ends, np.int64), b.const([2, 3], np.int64),
                             b.const(step, np.int64)])
        n_in = 400 if kind == "offcentre" else 196
    x = b.node("Flatten", [x], axis=1)
    x = b.node("BipolarQuant", [b.node("Sub", [x, b.const(0.5)]), b.const(1.0)], domain=DOMAIN)
    x = b.node("MatMul", [x, b.const(np.where(rng.random((n_in, 8)) < 0.5, -1.0, 1.0))])
    x = bn(b, x, 7 if kind == "bn-length" else 8, rng)
    x = b.node("BipolarQuant", [x, b.const(1.0)], domain=DOMAIN)
    n_out = 12 if kind == "classes" else 10
    x = b.node("MatMul", [x, b.const(np.where(rng.random((8, n_out)) < 0.5, -1.0, 1.0))])
    if kind == "relu":
        x = b.node("Relu", [x])
    if kind == "softmax-neg":
        x = b.node("Neg", [b.node("Softmax", [x], axis=1)])
    if kind == "topk-smallest":  # values and indices, as ONNX's TopK has
        b.nodes.append(b.h.make_node("TopK", [x, b.const([1], np.int64)], ["top_v", "top_i"], largest=0))
        x, n_out = "top_v", 1
    if kind == "argmax-last":
        x = b.node("ArgMax", [x], axis=1, select_last_index=1)
    onnx.save(b.model("image", x, [1, 1, 28, 28], n_out), tmp_path / "m.onnx")
    one_error_line(rr("import", str(tmp_path / "m.onnx"), "--out", str(tmp_path / "w.npz")), message)
    assert not (tmp_path / "w.npz").exists()


def test_hostile_models_are_one_line(tmp_path):
    """Malformed layers, metadata and names: one line each (classes found by a hostile battery)."""
    from rrambnn.gen.mnist import Preprocess
    from rrambnn.gen.network import random_network
    rng = np.random.default_rng(3)

    def save(nodes_fn, name):
        b = Builder()
        x = bipolar_input(b)
        onnx.save(b.model("image", nodes_fn(b, x), [1, 1, 28, 28], 10), tmp_path / name)
        return tmp_path / name

    w = np.where(rng.random((10, 784)) < 0.5, -1.0, 1.0)
    bad_bias = save(lambda b, x: b.node("Gemm", [x, b.const(w), b.const(np.zeros(3))], transB=1), "bias.onnx")
    one_error_line(rr("import", str(bad_bias), "--out", str(tmp_path / "w.npz")), "bias.onnx")
    net = random_network((784, 10), rng)
    net.preprocess = Preprocess(crop=28, threshold=128)
    onnx_io.export(net, tmp_path / "e.onnx")
    m = onnx.load(tmp_path / "e.onnx")
    for p in m.metadata_props:
        if p.key == "rrambnn.wbits":
            p.value = "5000"
        if p.key == "rrambnn.meta":
            p.value = "[" * 100000
    onnx.save(m, tmp_path / "meta.onnx")
    r = rr("import", str(tmp_path / "meta.onnx"), "--out", str(tmp_path / "w.npz"))
    assert r.returncode == 0, r.stderr  # nonsense metadata is ignored, the network itself is read
    nl = save(lambda b, x: b.node("Tanh", [x]), "nl.onnx")
    m = onnx.load(nl)
    m.graph.node[-1].name = "x\ny"
    onnx.save(m, nl)
    one_error_line(rr("import", str(nl), "--out", str(tmp_path / "v.npz")), "(Tanh) is not supported")
    one_error_line(rr("import", "x" * 300 + ".onnx", "--out", str(tmp_path / "v.npz")), "is 305 bytes long")
    one_error_line(rr("export", "--out", str(tmp_path / ("y" * 300 + ".onnx"))), "bytes long")


def test_a_model_of_binarised_images_takes_the_threshold_from_flags(tmp_path, mnist_test):
    """A model with no input quantiser whose input is the bipolar image (FINN's streamlined
    form): --binarise T --input-levels -1,1 say how the image becomes its input."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes
    rng = np.random.default_rng(9)
    b = Builder()
    x = b.node("Flatten", ["image"], axis=1)
    x = b.node("MatMul", [x, b.const(np.where(rng.random((784, 16)) < 0.5, -1.0, 1.0))])
    x = b.node("BipolarQuant", [bn(b, x, 16, rng, 0.3), b.const(1.0)], domain=DOMAIN)
    x = b.node("MatMul", [x, b.const(np.where(rng.random((16, 10)) < 0.5, -1.0, 1.0))])
    onnx.save(b.model("image", x, [300, 1, 28, 28], 10), tmp_path / "m.onnx")
    r = rr("import", str(tmp_path / "m.onnx"), "--out", str(tmp_path / "w.npz"), "--binarise", "100",
           "--input-levels=-1,1", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["binarise_threshold"] == 100
    net = load_network(tmp_path / "w.npz")
    images = mnist_test.images[:300]
    m = ModelWrapper(str(tmp_path / "m.onnx")).transform(InferShapes())
    scores = execute_onnx(m, {"image": np.where(images >= 100, 1.0, -1.0).astype(np.float32)[:, None]})[
        m.graph.output[0].name]
    assert (scores.argmax(axis=1) == net.forward(net.preprocess(images)).argmax).all()
    one_error_line(rr("import", str(tmp_path / "m.onnx"), "--out", str(tmp_path / "v.npz"), "--input-levels", "1,-1"),
                   "--input-levels takes two values, LO,HI, and goes with --binarise")
    one_error_line(rr("import", str(tmp_path / "m.onnx"), "--out", str(tmp_path / "v.npz"), "--binarise", "0"),
                   "--binarise must be a pixel value from 1 to 255, not 0")


@pytest.mark.parametrize("shape, gemm", [("TFC", False), ("TFC", True),
                                         pytest.param("SFC", False, marks=pytest.mark.slow),
                                         pytest.param("LFC", True, marks=pytest.mark.slow)])
def test_finn_w2a2_imports_as_a_ternary_network(tmp_path, mnist_test, shape, gemm):
    """FINN's 2-bit weights (Quant signed narrow: -1, 0, +1 times a per-column scale) become
    ternary codes -2/0/2, held as cell pairs; qonnx's class on 300 images."""
    model = finn_mlp(FINN_SHAPES[shape], wbits=2, abits=2, gemm=gemm, negative=0.3, out_bias=gemm,
                     rng=np.random.default_rng(3), batch=100)
    net = imported_equals_qonnx(model, tmp_path, mnist_test.images[:300], priority=True)
    assert isinstance(net, SlicedNetwork) and net.ternary and (net.wbits, net.abits) == (2, 2)
    assert all(set(np.unique(w)) == {-2, 0, 2} for w in net.weights)
    assert net.arch == (784,) + FINN_SHAPES[shape] + (10,)


def test_an_all_zero_output_column_keeps_the_common_scale(tmp_path, mnist_test):
    """A pruned class (every weight 0) has no scale of its own: it takes its layer's, so the
    classes still share one scale (0.25 here) and the argmax is qonnx's."""
    model = finn_mlp(FINN_SHAPES["TFC"], wbits=2, abits=2, zero_class=3, rng=np.random.default_rng(5), batch=100)
    net = imported_equals_qonnx(model, tmp_path, mnist_test.images[:300], priority=True)
    assert net.ternary and (net.weights[-1][:, 3] == 0).all() and (net.weights[-1][:, 2] != 0).any()


@pytest.mark.parametrize("abits", [1, 2])
def test_ternary_networks_round_trip_and_agree_with_qonnx(tmp_path, rng, mnist_test, abits):
    net = random_sliced((400, 23, 17, 10), 2, abits, rng, crop=20, output_mode="priority", ternary=True)
    res = onnx_io.export(net, tmp_path / "m.onnx", batch=100)
    assert res["weight_code"] == "ternary"
    back = onnx_io.import_model(tmp_path / "m.onnx")
    same_network(net, back)
    assert back.ternary
    agrees_with_qonnx(net, tmp_path / "m.onnx", mnist_test.images[:200], 100)
    net.save(tmp_path / "t.npz")  # and through the CLI, file for file
    r = rr("export", "--weights", str(tmp_path / "t.npz"), "--out", str(tmp_path / "c.onnx"))
    assert r.returncode == 0, r.stderr
    r = rr("import", str(tmp_path / "c.onnx"), "--out", str(tmp_path / "back.npz"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "back.npz").read_bytes() == (tmp_path / "t.npz").read_bytes()


def test_zero_weights_that_are_not_ternary_are_refused(tmp_path):
    """A zero weight makes the network ternary: a column with 0, 1 and 3 (a zero-point 3-bit
    quantiser) cannot be held, nor can ternary kernels in a convolution."""
    rng = np.random.default_rng(4)
    w = rng.choice([-1.0, 0.0, 1.0, 3.0], size=(784, 8))
    one_error_line(rr("import", str(mlp_with(tmp_path, weights=w)), "--out", str(tmp_path / "w.npz")),
                   "column 0 is not a scale times -1, 0, +1; the network has zero weights")
    b = Builder()
    x = b.node("Quant", ["image", b.const(1 / 3), b.const(0.0), b.const(2.0)], domain=DOMAIN, signed=0, narrow=0,
               rounding_mode="ROUND")
    x = b.node("Conv", [x, b.const(rng.choice([-1.0, 0.0, 1.0], size=(4, 1, 3, 3)))], kernel_shape=[3, 3])
    x = b.node("Flatten", [x], axis=1)
    x = b.node("MatMul", [x, b.const(np.where(rng.random((4 * 26 * 26, 10)) < 0.5, -1.0, 1.0))])
    onnx.save(b.model("image", x, [1, 1, 28, 28], 10), tmp_path / "c.onnx")
    one_error_line(rr("import", str(tmp_path / "c.onnx"), "--out", str(tmp_path / "c.npz")),
                   "has zero weights; this chip's cells hold odd codes")
    assert not (tmp_path / "w.npz").exists() and not (tmp_path / "c.npz").exists()


def test_bad_files_and_flags(tmp_path):
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x07not a model at all" * 10)
    one_error_line(rr("import", str(tmp_path / "junk.onnx"), "--out", str(tmp_path / "w.npz")), "not an ONNX model")
    one_error_line(rr("import", str(tmp_path / "none.onnx"), "--out", str(tmp_path / "w.npz")), "no such model file")
    one_error_line(rr("import", str(tmp_path / "junk.onnx"), "--out", str(tmp_path / "w.txt")),
                   "--out must name a .npz file")
    one_error_line(rr("export", "--out", str(tmp_path / "m.npz")), "--out must name a .onnx file")
    from rrambnn.gen.network import random_network
    random_network((16, 10), np.random.default_rng(0)).save(tmp_path / "raw.npz")
    one_error_line(rr("export", "--weights", str(tmp_path / "raw.npz"), "--out", str(tmp_path / "r.onnx")),
                   "raw-bit inputs")
    one_error_line(rr("export", "--out", str(tmp_path / "m.onnx"), "--batch", "0"),
                   "--batch must be an integer from 1 to 100,000, not 0")
    path = mlp_with(tmp_path, name="in.onnx")
    one_error_line(rr("import", str(path), "--out", str(tmp_path / "w.npz"), "--input-range", "0"),
                   "--input-range must be a positive number, not 0.0")
    one_error_line(rr("import", str(path), "--out", str(tmp_path / "w.npz"), "--crop", "20"),
                   "784 inputs are not the centre crop of 20x20 of a 28x28 image")
    assert not list(tmp_path.glob("w*.npz")) and not (tmp_path / "m.onnx").exists() and not (tmp_path / "r.onnx").exists()


# -- the imported FINN shapes on Verilator -------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("shape, wbits, abits", [("TFC", 1, 1), ("TFC", 1, 2), ("TFC", 2, 2), ("SFC", 1, 1),
                                                 ("SFC", 1, 2), ("SFC", 2, 2),
                                                 *(pytest.param("LFC", w, a, marks=pytest.mark.large)
                                                   for w, a in ((1, 1), (1, 2), (2, 2)))])
def test_imported_finn_shapes_simulate_with_no_mismatch(tmp_path, shape, wbits, abits):
    """Imported, generated and checked on Verilator on all 10,000 test images, both output stages
    (LFC: 3.1M cells per plane, an 11-minute Verilator build per stage at W1A1; run by hand,
    -m large)."""
    onnx.save(finn_mlp(FINN_SHAPES[shape], wbits=wbits, abits=abits, rng=np.random.default_rng(1)),
              tmp_path / "m.onnx")
    r = rr("import", str(tmp_path / "m.onnx"), "--out", str(tmp_path / "w.npz"))
    assert r.returncode == 0, r.stderr
    with np.load(tmp_path / "w.npz") as f:  # imported as what FINN trained: ternary iff 2-bit weights
        assert ("weight_code" in f.files and str(f["weight_code"]) == "ternary") == (wbits == 2)
    r = rr("sim", "--weights", str(tmp_path / "w.npz"), "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["images"] == 10000
    for mode in ("priority", "argmax"):
        m = res["modes"][mode]
        assert m["passed"] and m["mismatches"] == 0 and m["checked"] >= 10000, m
