"""QONNX / ONNX import and export of fully connected and convolutional networks (the ``[onnx]`` extra).

**Export** (:func:`export`) writes a binary or multi-bit network as a QONNX graph that qonnx's
own executor runs: the 28x28 image (pixels / 255, NCHW) -> ``Slice`` (the centre crop) ->
``Flatten`` -> ``MultiThreshold`` (the chip's pixel quantiser: the binarisation threshold, or
the m-bit rule ``(p (2^m - 1) + 127) // 255``, as thresholds on p / 255 half a pixel step below
each code's first pixel) -> per layer ``MatMul`` with the weights behind their quantiser
(``BipolarQuant`` for +-1, ``Quant`` signed narrow of W + 1 bits for W-bit odd codes, ``Quant``
signed narrow of 2 bits with scale 2 for ternary codes -2/0/2) ->
``MultiThreshold`` with the layer's integer thresholds (hidden layers: the activation codes
0 .. 2^m - 1) -> the last layer's ``Add`` of minus its thresholds: the output ``scores`` are the
chip's margins ``S - theta``. The argmax stage is ``argmax(scores)`` (lowest index on ties, as
ONNX's ArgMax); the priority stage is the first class whose score is >= 0 (none: a reject).
Sums are exact in float32 below 2^24 (float64 is used beyond). The network's metadata and
output stage travel in the model's ``metadata_props``.

**Import** (:func:`import_model`) reads a chain of MatMul/Gemm layers and the elementwise
operations between them (Quant, BipolarQuant, MultiThreshold, BatchNormalization, Mul, Add,
Sub, Div, Sign, Relu, Clip, Cast, Identity, Dropout; Flatten, Reshape and a centre Slice before
the first layer; ArgMax, TopK, Softmax, LogSoftmax at the end), constant-folding weight
quantisers. Every conversion is checked (floats read with tight tolerances, see docs/site/onnx.md):

* the input: the operations before the first layer are evaluated on all 256 pixel values; they
  must give a non-decreasing function of the pixel onto equally spaced levels, equal to the
  chip's binarisation (any threshold) or its m-bit pixel quantiser;
* weights: each column must be a positive scale times odd integer codes of at most 8 bits; the
  scale folds into the thresholds. A network with zero weights is read as ternary (FINN's 2-bit
  weights, -1/0/+1): every column a positive scale times -1, 0, +1, held as codes -2/0/2 in a
  differential pair of cells (:mod:`rrambnn.gen.sliced`); other codes with zeros are refused;
* hidden activations: the operations after a layer, evaluated on every possible integer column
  sum (or, beyond 65,536 sums, found by bisection and checked around each threshold), must be a
  monotone staircase onto equally spaced levels: its steps are the integer thresholds (a
  decreasing column has its weights negated, as the training export does);
* the output layer: its scores must be ``a (S - theta_j)`` plus a constant with one positive
  ``a`` for every class and integer differences between the ``theta_j`` (so argmax of the chip's
  integer margins equals the model's).

A binary network (1-bit weights, binary pixels and activations) becomes a ``rrambnn-bnn`` file,
anything else a ``rrambnn-sliced`` one.

**Convolutional networks** (``rrambnn-cnn``) go out as Slice -> MultiThreshold -> per layer a
``Conv`` (NCHW; its im2col matrix as a C_out x C_in x k x k kernel behind its quantiser) or, after
a ``Transpose`` to NHWC and ``Flatten`` (rrambnn's row order), a ``MatMul`` -> ``MultiThreshold``
(per channel) -> ``MaxPool`` -> ... -> ``Add`` of minus the thresholds. They come in from a chain
of ``Conv`` (square kernel, one stride, equal padding, no groups or dilation; bias allowed),
``MaxPool`` (square, stride = window, no padding, floor) after the activation's quantiser,
``Flatten`` of NCHW (the dense rows are reordered) or of NHWC, and the dense layers, each
column's staircase checked as above per channel; a padded convolution needs inputs whose lowest
level is 0 (the chip pads with code 0).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from rrambnn.errors import RrambnnError

DOMAIN = "qonnx.custom_op.general"
ENUMERATE = 1 << 16  # column sums evaluated one by one up to this many values
MAX_CODE_BITS = 8


def _onnx():
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError:
        raise RrambnnError("ONNX import and export need the onnx package: pip install -e '.[onnx]'") from None
    return onnx, helper, numpy_helper


# -- export -------------------------------------------------------------------------------

def _pixel_thresholds(net) -> np.ndarray:
    """Thresholds on p / 255 that give the chip's input codes (one per code 1 .. 2^m - 1)."""
    p = np.arange(256)
    if hasattr(net, "preprocess"):
        codes = (p >= net.preprocess.threshold).astype(int)
    else:
        from rrambnn.gen.sliced import quantise_pixels
        codes = quantise_pixels(p.astype(np.uint8), net.abits).astype(int)
    levels = int(codes.max())
    first = [int(np.argmax(codes >= c)) for c in range(1, levels + 1)]
    return np.array([(f - 0.5) / 255 for f in first])


def export(net, path, *, batch: int = 1) -> dict:
    """Write ``net`` (binary, multi-bit or of layer specs) as a QONNX model at ``path``, for
    ``batch`` images at a time (FINN's models take 1; qonnx's executor wants a fixed size)."""
    if not isinstance(batch, int) or isinstance(batch, bool) or not 1 <= batch <= 100000:
        raise RrambnnError(f"--batch must be an integer from 1 to 100,000, not {batch!r}")
    onnx, helper, nh = _onnx()
    if hasattr(net, "spec"):
        return _export_cnn(net, path, batch)
    if getattr(net, "preprocess", True) is None:
        raise RrambnnError("this network has raw-bit inputs (crop 0): an ONNX model of it would have no image to "
                           "take; export networks of MNIST images")
    wbits, abits = getattr(net, "wbits", 1), getattr(net, "abits", 1)
    crop = net.preprocess.crop if hasattr(net, "preprocess") else net.crop
    from rrambnn.gen.sliced import sum_bound
    ternary = getattr(net, "ternary", False)
    bound = max(sum_bound(w.shape[0], wbits, abits, ternary) for w in net.weights)
    exact32 = bound < (1 << 24)
    dt, tp = (np.float32, onnx.TensorProto.FLOAT) if exact32 else (np.float64, onnx.TensorProto.DOUBLE)
    inits, nodes = [], []

    def const(name, value):
        inits.append(nh.from_array(np.asarray(value, dt if np.asarray(value).dtype.kind == "f" else None), name))
        return name

    o = (28 - crop) // 2
    inits.append(nh.from_array(np.array([o, o], np.int64), "crop_starts"))
    inits.append(nh.from_array(np.array([o + crop, o + crop], np.int64), "crop_ends"))
    inits.append(nh.from_array(np.array([2, 3], np.int64), "crop_axes"))
    nodes.append(helper.make_node("Slice", ["image", "crop_starts", "crop_ends", "crop_axes"], ["cropped"]))
    nodes.append(helper.make_node("Flatten", ["cropped"], ["pixels"], axis=1))
    x = "pixels"
    if not exact32:
        nodes.append(helper.make_node("Cast", [x], ["pixels64"], to=tp))
        x = "pixels64"
    out_dtype = "BINARY" if abits == 1 else f"UINT{abits}"
    const("t_in", _pixel_thresholds(net)[None, :])
    nodes.append(helper.make_node("MultiThreshold", [x, "t_in"], ["a0"], domain=DOMAIN, out_dtype=out_dtype))
    x = "a0"
    n = len(net.weights)
    for k, (w, t) in enumerate(zip(net.weights, net.thresholds)):
        _weight_quantiser(helper, nodes, const, k, w.astype(dt), wbits, exact32, tp, ternary)
        nodes.append(helper.make_node("MatMul", [x, f"w{k}"], [f"s{k}"]))
        if k < n - 1:
            const(f"t{k}", np.asarray(t, dt).reshape(w.shape[1], -1))
            nodes.append(helper.make_node("MultiThreshold", [f"s{k}", f"t{k}"], [f"a{k + 1}"], domain=DOMAIN,
                                          out_dtype=out_dtype))
            x = f"a{k + 1}"
        else:
            const("minus_theta", -np.asarray(t, dt))
            nodes.append(helper.make_node("Add", [f"s{k}", "minus_theta"], ["scores"]))
    shapes = {"cropped": (onnx.TensorProto.FLOAT, [batch, 1, crop, crop]),
              "pixels": (onnx.TensorProto.FLOAT, [batch, crop * crop]), "pixels64": (tp, [batch, crop * crop]),
              "a0": (tp, [batch, crop * crop])}
    for k, w in enumerate(net.weights):  # every tensor's shape, so qonnx's executor needs no inference
        shapes[f"w{k}"] = (tp, list(w.shape))
        shapes[f"w{k}_q"] = (onnx.TensorProto.FLOAT, list(w.shape))
        shapes[f"s{k}"] = shapes[f"a{k + 1}"] = (tp, [batch, int(w.shape[1])])
    data = _write_model(path, nodes, inits, shapes, batch, tp, net, {"rrambnn.wcode": "ternary"} if ternary else {})
    return {"out": str(path), "arch": "-".join(map(str, net.arch)), "weight_bits": wbits, "activation_bits": abits,
            **({"weight_code": "ternary"} if ternary else {}),
            "crop": crop, "nodes": len(nodes), "dtype": np.dtype(dt).name, "bytes": len(data)}


def _write_model(path, nodes, inits, shapes, batch, tp, net, props) -> bytes:
    """The graph (every tensor's shape given, so qonnx's executor needs no inference), the
    network's metadata and output stages in ``metadata_props``, written atomically."""
    from rrambnn.fileio import atomic_write
    onnx, helper, _ = _onnx()
    made = {o for nd in nodes for o in nd.output} - {"scores"}
    info = [helper.make_tensor_value_info(nm, *shapes[nm]) for nm in sorted(made)]
    graph = helper.make_graph(
        nodes, "rrambnn", [helper.make_tensor_value_info("image", onnx.TensorProto.FLOAT, [batch, 1, 28, 28])],
        [helper.make_tensor_value_info("scores", tp, [batch, int(net.weights[-1].shape[1])])], inits,
        value_info=info)
    model = helper.make_model(graph, producer_name="rrambnn", opset_imports=[helper.make_opsetid("", 13),
                                                                             helper.make_opsetid(DOMAIN, 1)])
    helper.set_model_props(model, {
        "rrambnn.output_mode": net.output_mode, "rrambnn.meta": json.dumps(net.meta, sort_keys=True),
        "rrambnn.stages": "argmax: argmax(scores); priority: first class with scores >= 0, none: reject",
        "rrambnn.wbits": str(getattr(net, "wbits", 1)), "rrambnn.abits": str(getattr(net, "abits", 1)), **props})
    data = model.SerializeToString()
    atomic_write(path, lambda f: f.write(data))
    return data


def _weight_quantiser(helper, nodes, const, k, codes, wbits, exact32, tp, ternary: bool = False):
    """Initializer ``w{k}_codes`` behind its quantiser node, as tensor ``w{k}`` (ternary codes
    -2/0/2: FINN's 2-bit weight quantiser, signed narrow, scale 2)."""
    const(f"w{k}_codes", codes)
    if ternary:
        for nm, v in (("scale", 2.0), ("zeropt", 0.0), ("bitwidth", 2.0)):
            const(f"w{k}_{nm}", np.array(v))
        q = f"w{k}" if exact32 else f"w{k}_q"
        nodes.append(helper.make_node("Quant", [f"w{k}_codes", f"w{k}_scale", f"w{k}_zeropt", f"w{k}_bitwidth"],
                                      [q], domain=DOMAIN, signed=1, narrow=1, rounding_mode="ROUND"))
    elif wbits == 1:
        const(f"w{k}_scale", np.array(1.0))
        q = f"w{k}" if exact32 else f"w{k}_q"
        nodes.append(helper.make_node("BipolarQuant", [f"w{k}_codes", f"w{k}_scale"], [q], domain=DOMAIN))
    else:
        for nm, v in (("scale", 1.0), ("zeropt", 0.0), ("bitwidth", wbits + 1.0)):
            const(f"w{k}_{nm}", np.array(v))
        q = f"w{k}" if exact32 else f"w{k}_q"  # qonnx's quantisers give float32: cast for float64 sums
        nodes.append(helper.make_node("Quant", [f"w{k}_codes", f"w{k}_scale", f"w{k}_zeropt", f"w{k}_bitwidth"],
                                      [q], domain=DOMAIN, signed=1, narrow=1, rounding_mode="ROUND"))
    if not exact32:
        nodes.append(helper.make_node("Cast", [q], [f"w{k}"], to=tp))


def _export_cnn(net, path, batch: int) -> dict:
    """A network of layer specs: Slice (centre) -> MultiThreshold (pixels) -> per layer Conv
    (NCHW, its im2col matrix as a C_out x C_in x k x k kernel) or MatMul (after a Transpose to
    NHWC and Flatten: rrambnn's row order) -> MultiThreshold (channels) -> MaxPool -> ... -> Add(-theta)."""
    from rrambnn.gen.spec import Conv, Pool
    onnx, helper, nh = _onnx()
    spec = net.spec
    bound = max(net.bound(k) for k in range(len(net.weights)))
    exact32 = bound < (1 << 24)
    dt, tp = (np.float32, onnx.TensorProto.FLOAT) if exact32 else (np.float64, onnx.TensorProto.DOUBLE)
    inits, nodes, shapes = [], [], {}

    def const(name, value):
        inits.append(nh.from_array(np.asarray(value, dt if np.asarray(value).dtype.kind == "f" else None), name))
        return name

    h, w, _ = spec.input
    oy, ox = (28 - h) // 2, (28 - w) // 2
    inits += [nh.from_array(np.array([oy, ox], np.int64), "crop_starts"),
              nh.from_array(np.array([oy + h, ox + w], np.int64), "crop_ends"),
              nh.from_array(np.array([2, 3], np.int64), "crop_axes")]
    nodes.append(helper.make_node("Slice", ["image", "crop_starts", "crop_ends", "crop_axes"], ["cropped"]))
    shapes["cropped"] = (onnx.TensorProto.FLOAT, [batch, 1, h, w])
    x = "cropped"
    if not exact32:
        nodes.append(helper.make_node("Cast", [x], ["cropped64"], to=tp))
        x = "cropped64"
        shapes[x] = (tp, [batch, 1, h, w])
    out_dtype = "BINARY" if net.abits == 1 else f"UINT{net.abits}"
    const("t_in", _pixel_thresholds(net)[None, :])
    nodes.append(helper.make_node("MultiThreshold", [x, "t_in"], ["a0"], domain=DOMAIN, out_dtype=out_dtype,
                                  data_layout="NCHW"))
    x = "a0"
    shapes[x] = (tp, [batch, 1, h, w])
    sh = spec.shapes()
    k = 0
    n_mats = len(net.weights)
    for i, layer in enumerate(spec.layers):
        ho, wo, co = sh[i + 1]
        hi, wi, ci = sh[i]
        if isinstance(layer, Pool):
            nodes.append(helper.make_node("MaxPool", [x], [f"p{i}"], kernel_shape=[layer.k, layer.k],
                                          strides=[layer.k, layer.k]))
            x = f"p{i}"
            shapes[x] = (tp, [batch, co, ho, wo])
            continue
        wk = net.weights[k].astype(dt)
        last = k == n_mats - 1
        if isinstance(layer, Conv):
            kern = wk.reshape(layer.k, layer.k, ci, co).transpose(3, 2, 0, 1)  # rows (ky, kx, c) -> (co, c, ky, kx)
            _weight_quantiser(helper, nodes, const, k, kern, net.wbits, exact32, tp)
            shapes[f"w{k}"] = (tp, list(kern.shape))
            shapes[f"w{k}_q"] = (onnx.TensorProto.FLOAT, list(kern.shape))
            p = layer.pad
            nodes.append(helper.make_node("Conv", [x, f"w{k}"], [f"s{k}"], kernel_shape=[layer.k, layer.k],
                                          strides=[layer.stride, layer.stride], pads=[p, p, p, p]))
            shapes[f"s{k}"] = (tp, [batch, co, ho, wo])
        else:
            if len(shapes[x][1]) == 4:  # NCHW -> NHWC -> the dense rows in rrambnn's order
                nodes.append(helper.make_node("Transpose", [x], [f"nhwc{i}"], perm=[0, 2, 3, 1]))
                shapes[f"nhwc{i}"] = (tp, [batch, hi, wi, ci])
                nodes.append(helper.make_node("Flatten", [f"nhwc{i}"], [f"flat{i}"], axis=1))
                x = f"flat{i}"
                shapes[x] = (tp, [batch, hi * wi * ci])
            _weight_quantiser(helper, nodes, const, k, wk, net.wbits, exact32, tp)
            shapes[f"w{k}"] = (tp, list(wk.shape))
            shapes[f"w{k}_q"] = (onnx.TensorProto.FLOAT, list(wk.shape))
            nodes.append(helper.make_node("MatMul", [x, f"w{k}"], [f"s{k}"]))
            shapes[f"s{k}"] = (tp, [batch, co])
        if last:
            const("minus_theta", -np.asarray(net.thresholds[k], dt))
            nodes.append(helper.make_node("Add", [f"s{k}", "minus_theta"], ["scores"]))
        else:
            const(f"t{k}", np.asarray(net.thresholds[k], dt))
            nodes.append(helper.make_node("MultiThreshold", [f"s{k}", f"t{k}"], [f"a{k + 1}"], domain=DOMAIN,
                                          out_dtype=out_dtype, data_layout="NCHW"))
            x = f"a{k + 1}"
            shapes[x] = shapes[f"s{k}"]
        k += 1
    data = _write_model(path, nodes, inits, shapes, batch, tp, net,
                        {"rrambnn.cobits": str(net.cobits), "rrambnn.spec": spec.text})
    return {"out": str(path), "arch": spec.text, "weight_bits": net.wbits, "activation_bits": net.abits,
            "nodes": len(nodes), "dtype": np.dtype(dt).name, "bytes": len(data)}


# -- a small evaluator of the operations rrambnn reads -------------------------------------

def _attrs(node) -> dict:
    from onnx import helper
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _s(v):
    return v.decode() if isinstance(v, bytes) else v


ROUNDING = {"ROUND": np.round, "HALF_EVEN": np.round, "CEIL": np.ceil, "FLOOR": np.floor,
            "UP": lambda x: np.sign(x) * np.ceil(np.abs(x)), "DOWN": np.fix,
            "HALF_UP": lambda x: np.sign(x) * np.floor(np.abs(x) + 0.5),
            "HALF_DOWN": lambda x: np.sign(x) * np.ceil(np.abs(x) - 0.5)}  # qonnx's rounding modes


def _quant(x, scale, zeropt, bitwidth, signed, narrow, rounding):
    """qonnx's IntQuant: clip(x / scale + zeropt), round, minus zeropt, times scale."""
    bw = np.asarray(bitwidth, np.float64).reshape(-1)
    if bw.size != 1 or not np.isfinite(bw[0]) or bw[0] != int(bw[0]) or not 1 <= bw[0] <= 32:
        raise RrambnnError(f"Quant: the bit width must be one integer from 1 to 32, not {bw.tolist()}")
    bw = int(bw[0])
    y = x / scale + zeropt
    if bw == 1 and signed:
        y = np.where(y >= 0, 1.0, -1.0)
    else:
        if signed:
            lo, hi = -(2 ** (bw - 1)) + (1 if narrow else 0), 2 ** (bw - 1) - 1
        else:
            lo, hi = 0, 2 ** bw - 1 - (1 if narrow else 0)
        mode = _s(rounding).upper()
        if mode not in ROUNDING:
            raise RrambnnError(f"Quant: rounding mode {mode!r} is not one of qonnx's ({', '.join(ROUNDING)})")
        y = ROUNDING[mode](np.clip(y, lo, hi))
    return (y - zeropt) * scale


def _multithreshold(x, t, out_scale, out_bias, layout):
    """qonnx's MultiThreshold: the count of thresholds each value reaches, times out_scale plus
    out_bias; the channel axis from data_layout, or guessed from the rank as qonnx does."""
    layout = _s(layout) or {2: "NC", 3: "NWC", 4: "NCHW"}.get(x.ndim)
    cdim = layout.index("C") if layout and "C" in layout else 1
    v = np.moveaxis(x, cdim, -1)
    t = np.asarray(t, np.float64)
    if t.ndim != 2 or t.shape[0] not in (1, v.shape[-1]):
        raise RrambnnError(f"MultiThreshold: thresholds must be (channels or 1) x steps, not {t.shape}")
    count = (v[..., None] >= t).sum(axis=-1).astype(x.dtype)
    return np.moveaxis(out_scale * count + out_bias, -1, cdim)


ELEMENTWISE = {"Add", "Sub", "Mul", "Div", "Sign", "Relu", "Clip", "Identity", "Dropout", "BatchNormalization",
               "Quant", "BipolarQuant", "MultiThreshold", "Neg", "Cast"}
SHAPE = {"Flatten", "Reshape", "Slice", "Squeeze", "Unsqueeze", "Transpose"}
LAYER = {"MatMul", "Gemm", "Conv"}
POOL = {"MaxPool"}
HEAD = {"ArgMax", "TopK", "Softmax", "LogSoftmax"}
CONSTANT_ONLY = {"Transpose", "Constant", "Shape", "Gather", "Concat"}


def _run(node, vals: list, data: bool = True):
    """One node on numpy values (the operations :data:`ELEMENTWISE`, :data:`SHAPE`, layers and
    constant folding)."""
    op, a = node.op_type, _attrs(node)
    x = vals[0] if vals else None
    if op == "Add":
        return x + vals[1]
    if op == "Sub":
        return x - vals[1]
    if op == "Mul":
        return x * vals[1]
    if op == "Div":
        return x / vals[1]
    if op == "Neg":
        return -x
    if op == "Sign":
        return np.sign(x)
    if op == "Relu":
        return np.maximum(x, 0)
    if op == "Clip":
        lo = vals[1] if len(vals) > 1 and vals[1] is not None else a.get("min", -np.inf)
        hi = vals[2] if len(vals) > 2 and vals[2] is not None else a.get("max", np.inf)
        return np.clip(x, lo, hi)
    if op in ("Identity", "Dropout"):
        return x
    if op == "BatchNormalization":
        scale, b, mean, var = vals[1:5]
        shape = (1, -1) + (1,) * (x.ndim - 2)
        eps = a.get("epsilon", 1e-5)
        return (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps) * scale.reshape(shape) + b.reshape(shape)
    if op == "Quant":
        return _quant(x, vals[1], vals[2], vals[3], a.get("signed", 1), a.get("narrow", 0),
                      a.get("rounding_mode", "ROUND"))
    if op == "BipolarQuant":  # qonnx: the sign of x (0 -> +1), times the scale
        return np.where(x >= 0, 1.0, -1.0) * vals[1]
    if op == "MultiThreshold":
        return _multithreshold(x, vals[1], a.get("out_scale", 1.0), a.get("out_bias", 0.0), a.get("data_layout", ""))
    if op == "Flatten":
        ax = a.get("axis", 1)
        return x.reshape(int(np.prod(x.shape[:ax])), -1)
    if op == "Reshape":
        shape = [int(s) for s in vals[1]]
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
        if data and len(shape) > 1 and shape[0] != -1:
            shape[0] = x.shape[0]  # the batch: the model's fixed one, or the 256 pixel values the import runs
        return x.reshape(shape)
    if op == "Slice":
        starts, ends = vals[1], vals[2]
        axes = vals[3] if len(vals) > 3 and vals[3] is not None else range(len(starts))
        steps = vals[4] if len(vals) > 4 and vals[4] is not None else [1] * len(starts)
        sl = [slice(None)] * x.ndim
        for s, e, ax, st in zip(starts, ends, axes, steps):
            sl[int(ax)] = slice(int(s), int(min(e, 2 ** 62)), int(st))
        return x[tuple(sl)]
    if op == "Squeeze":
        axes = vals[1] if len(vals) > 1 else a.get("axes")
        return np.squeeze(x, axis=tuple(int(v) for v in axes) if axes is not None else None)
    if op == "Unsqueeze":
        axes = vals[1] if len(vals) > 1 else a.get("axes")
        return np.expand_dims(x, tuple(int(v) for v in axes))
    if op == "MatMul":
        return x @ vals[1]
    if op in ("Conv", "MaxPool") and _s(a.get("auto_pad", "NOTSET")) != "NOTSET":
        raise RrambnnError(f"node {node.name or op} ({op}): auto_pad is not supported; give pads")
    if op == "Conv":
        from rrambnn.gen.cnn import im2col
        co, ci, kh, kw = vals[1].shape
        st, pads = a.get("strides", [1, 1]), a.get("pads", [0, 0, 0, 0])
        if kh != kw or st[0] != st[1] or len(set(pads)) > 1 or a.get("group", 1) != 1 or \
                any(d != 1 for d in a.get("dilations", [1, 1])):
            raise RrambnnError(f"node {node.name or op} (Conv): rrambnn's convolutions are square, with one stride, "
                               f"equal padding on every side, no groups and no dilation")
        cols = im2col(np.moveaxis(x, 1, -1), kh, st[0], pads[0])
        y = cols @ vals[1].transpose(2, 3, 1, 0).reshape(kh * kw * ci, co)
        if len(vals) > 2 and vals[2] is not None:
            y = y + vals[2]
        return np.moveaxis(y, -1, 1)
    if op == "MaxPool":
        from rrambnn.gen.cnn import max_pool
        ks, st = a.get("kernel_shape"), a.get("strides", [1, 1])
        if ks[0] != ks[1] or list(st) != list(ks) or any(a.get("pads", [0])) or a.get("ceil_mode", 0):
            raise RrambnnError(f"node {node.name or op} (MaxPool): rrambnn pools square windows with the stride "
                               f"of the window, no padding, floor mode")
        return np.moveaxis(max_pool(np.moveaxis(x, 1, -1), ks[0]), -1, 1)
    if op == "Gemm":
        A = x.T if a.get("transA", 0) else x
        B = vals[1].T if a.get("transB", 0) else vals[1]
        y = a.get("alpha", 1.0) * (A @ B)
        return y + a.get("beta", 1.0) * vals[2] if len(vals) > 2 and vals[2] is not None else y
    if op == "Transpose":
        return np.transpose(x, a.get("perm"))
    if op == "Cast":
        from onnx import helper as _h
        to = np.dtype(_h.tensor_dtype_to_np_dtype(a.get("to", 1)))
        return x.astype(to).astype(np.float64) if to.kind in "iub" else x.astype(np.float64)
    if op == "Constant":
        from onnx import numpy_helper
        return numpy_helper.to_array(a["value"])
    if op == "Shape":
        return np.array(x.shape, np.int64)
    if op == "Gather":
        return np.take(x, vals[1].astype(np.int64), axis=a.get("axis", 0))
    if op == "Concat":
        return np.concatenate(vals, axis=a.get("axis", 0))
    raise RrambnnError(f"node {node.name or op} ({op}) is not supported")


# -- import -------------------------------------------------------------------------------

class _Graph:
    """The model as constants (initializers and folded constant subgraphs) and the chain of
    nodes on the data path from the graph input."""

    def __init__(self, model, where):
        from onnx import numpy_helper
        g = model.graph
        self.where = where
        self.consts = {}
        for i in g.initializer:
            try:
                v = numpy_helper.to_array(i)
            except Exception as e:
                raise RrambnnError(f"{where}: initializer {i.name!r} cannot be read ({type(e).__name__})") from None
            self.consts[i.name] = v.astype(np.float64) if v.dtype.kind == "f" else v
        inputs = [i.name for i in g.input if i.name not in self.consts]
        if len(inputs) != 1:
            raise RrambnnError(f"{where}: the model must have one data input, not {len(inputs)} ({', '.join(inputs)})")
        self.input = inputs[0]
        dims = g.input[[i.name for i in g.input].index(self.input)].type.tensor_type.shape.dim
        self.input_shape = [d.dim_value if d.dim_value > 0 else None for d in dims]
        self.chain = []
        for node in g.node:  # ONNX lists nodes in topological order
            if not node.output:
                raise RrambnnError(f"{where}: node {node.name or node.op_type} ({node.op_type}) has no output")
            if all((not i) or i in self.consts for i in node.input):
                if node.op_type not in ELEMENTWISE | SHAPE | LAYER | CONSTANT_ONLY:
                    raise RrambnnError(f"{where}: node {node.name or node.op_type} ({node.op_type}) is not supported")
                vals = [self.consts.get(i) if i else None for i in node.input]
                try:
                    out = _run(node, vals, data=False)
                except RrambnnError:
                    raise
                except Exception as e:  # a malformed constant subgraph
                    raise RrambnnError(f"{where}: node {node.name or node.op_type} ({node.op_type}) cannot be "
                                       f"evaluated: {e}") from None
                self.consts[node.output[0]] = out
            else:
                self.chain.append(node)
        t = self.input
        self.data_index = {}
        for node in self.chain:
            dyn = [i for i in node.input if i and i not in self.consts]
            if node.op_type in ("Add", "Mul") and dyn == [t] and len(node.input) == 2 and node.input[1] == t:
                self.data_index[id(node)] = 1
            elif dyn != [t] or node.input[0] != t:
                raise RrambnnError(f"{where}: node {node.name or node.op_type} ({node.op_type}) is not on a single "
                                   f"chain from the input (rrambnn imports chains of layers; no branches)")
            if node.op_type not in ELEMENTWISE | SHAPE | LAYER | HEAD | POOL:
                raise RrambnnError(f"{where}: node {node.name or node.op_type} ({node.op_type}) is not supported")
            t = node.output[0]

    def run(self, nodes, x):
        for node in nodes:
            vals = [self.consts.get(i) if i else None for i in node.input]
            vals[self.data_index.get(id(node), 0)] = x
            if self.data_index.get(id(node), 0) == 1:  # Add(c, x), Mul(c, x): commutative
                vals[0], vals[1] = vals[1], vals[0]
            try:
                x = _run(node, vals)
            except RrambnnError as e:
                raise RrambnnError(f"{self.where}: node {node.name or node.op_type} ({node.op_type}): {e}") from None
            except Exception as e:
                raise RrambnnError(f"{self.where}: node {node.name or node.op_type} ({node.op_type}) cannot run on "
                                   f"its inputs: {type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"
                                   ) from None
            if not np.isfinite(x).all():
                raise RrambnnError(f"{self.where}: node {node.name or node.op_type} ({node.op_type}) gives values that "
                                   f"are not finite")
        return x


def _levels(values: np.ndarray, what: str) -> tuple[np.ndarray, float, float]:
    """Sorted distinct values -> (levels, alpha, beta): levels equally spaced, level c = alpha + beta c."""
    lv = np.unique(values)
    if len(lv) < 2:
        raise RrambnnError(f"{what} takes a single value: no information passes")
    if len(lv) > 1 << MAX_CODE_BITS:
        raise RrambnnError(f"{what} takes {len(lv)} values: it is not quantised to at most {MAX_CODE_BITS} bits "
                           f"(add a Quant, BipolarQuant or MultiThreshold)")
    beta = (lv[-1] - lv[0]) / (len(lv) - 1)
    if not np.allclose(lv, lv[0] + beta * np.arange(len(lv)), rtol=0, atol=1e-6 * max(1.0, abs(beta))):
        raise RrambnnError(f"{what} takes levels that are not equally spaced ({', '.join(f'{v:g}' for v in lv[:6])}"
                           f"{'...' if len(lv) > 6 else ''}): the next layer's sum would not be an integer sum")
    return lv, float(lv[0]), float(beta)


def _ternary_codes(w: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray, int]:
    """Float weights (rows, cols) of a network with zero weights -> (codes -2/0/2, positive column
    scales, 2): each column a scale times -1, 0, +1. An all-zero column takes the largest scale of the
    layer's other columns (so a last layer whose classes share one scale keeps it; 1 if the whole
    layer is zero)."""
    if not np.isfinite(w).all():
        raise RrambnnError(f"{where}: weights are not finite")
    m = np.abs(w).max(axis=0)
    r = w / np.where(m > 0, m, 1)
    q = np.round(r)
    bad = np.flatnonzero((np.abs(r - q) > 1e-4).any(axis=0))
    if bad.size:
        raise RrambnnError(f"{where}: column {bad[0]} is not a scale times -1, 0, +1; the network has zero weights, "
                           f"which rrambnn holds only as ternary codes (FINN's 2-bit weights, a cell pair per weight) "
                           f"in every layer")
    common = m.max() / 2 if (m > 0).any() else 1.0
    return (2 * q).astype(np.int64), np.where(m > 0, m / 2, common), 2


def _odd_codes(w: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray, int]:
    """Float weights (rows, cols) -> (odd int codes, positive column scales, bits)."""
    if not np.isfinite(w).all():
        raise RrambnnError(f"{where}: weights are not finite")
    if (w == 0).any():
        raise RrambnnError(f"{where}: has zero weights; this chip's cells hold odd codes (+-1, +-3, ...), never 0 "
                           f"(ternary weights are imported for fully connected networks only)")
    top = (1 << MAX_CODE_BITS) - 1
    r = np.round(w)
    if np.allclose(w, r, rtol=0, atol=1e-9) and (r % 2 != 0).all() and np.abs(r).max() <= top:
        codes = np.ascontiguousarray(r, dtype=np.int64)  # odd integer codes already (an rrambnn export, a scale-1 quantiser): as they are
        return codes, np.ones(w.shape[1]), max(1, math.ceil(math.log2(int(np.abs(codes).max()) + 1)))
    codes = np.zeros(w.shape, np.int64)
    scales = np.zeros(w.shape[1])
    for j in range(w.shape[1]):
        col = w[:, j]
        m = np.abs(col).min()
        for k in range(1, top + 1, 2):  # the unit is the smallest weight over an odd k
            c = col / (m / k)
            r = np.round(c)
            if np.allclose(c, r, rtol=0, atol=1e-4) and (r % 2 != 0).all():
                if np.abs(r).max() > top:
                    break
                codes[:, j], scales[j] = r, m / k
                break
        else:
            r = None
        if not scales[j]:
            raise RrambnnError(f"{where}: column {j} is not a scale times odd integer codes of at most "
                               f"{MAX_CODE_BITS} bits (a float layer left unquantised?)")
    bits = max(1, math.ceil(math.log2(int(np.abs(codes).max()) + 1)))
    return codes, scales, bits


def import_model(path, **kw):
    """A QONNX/ONNX model -> a BinaryNetwork, SlicedNetwork or CnnNetwork (exact; see the module
    docstring). Whatever a malformed model makes fail is one error naming the file."""
    try:
        return _import_model(path, **kw)
    except RrambnnError:
        raise
    except (ValueError, IndexError, KeyError, TypeError, ZeroDivisionError, OverflowError, AttributeError,
            RecursionError, MemoryError, FloatingPointError) as e:
        raise RrambnnError(f"{path}: the model cannot be imported ({type(e).__name__}: {str(e)[:160]})") from None


def _import_model(path, *, input_scale: float = 1 / 255, output_mode: str | None = None, crop: int | None = None,
                  binarise: int | None = None, input_levels: tuple[float, float] = (0.0, 1.0)):
    from rrambnn.gen.mnist import Preprocess
    from rrambnn.gen.network import BinaryNetwork, check_output_mode
    from rrambnn.gen.sliced import SlicedNetwork, sum_bound
    onnx, _, _ = _onnx()
    if output_mode is not None:
        check_output_mode(output_mode)
    if not (isinstance(input_scale, (int, float)) and math.isfinite(input_scale) and input_scale > 0):
        raise RrambnnError(f"the input scale (1 / --input-range) must be a positive number, not {input_scale!r}")
    p256 = np.arange(256, dtype=np.float64)
    if binarise is None:  # the model's input: the pixel times input_scale
        pixels = p256 * input_scale
    else:  # the model takes the image already binarised at ``binarise``, as the two values input_levels
        lo, hi = (float(v) for v in input_levels)
        if not (isinstance(binarise, int) and 1 <= binarise <= 255):
            raise RrambnnError(f"--binarise must be a pixel value from 1 to 255, not {binarise!r}")
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise RrambnnError(f"--input-levels must be two finite numbers, the lower first, not {input_levels!r}")
        pixels = np.where(p256 >= binarise, hi, lo)
    where = str(path)
    p = Path(path)
    if not p.exists():
        raise RrambnnError(f"{where}: no such model file")
    if not p.is_file():
        raise RrambnnError(f"{where}: not a regular file")
    try:
        model = onnx.load(str(p))  # external data, if any, beside the model
    except Exception as e:
        raise RrambnnError(f"{where}: not an ONNX model ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})") from None
    try:
        onnx.checker.check_model(model)
    except Exception as e:
        raise RrambnnError(f"{where}: not a valid ONNX model ({str(e).splitlines()[0][:160] if str(e) else type(e).__name__})") from None
    g = _Graph(model, where)
    # split the chain at its layers
    segs, mats, head = [[]], [], []
    for node in g.chain:
        if head or node.op_type in HEAD:
            _check_head(node, where)
            head.append(node)
        elif node.op_type in LAYER:
            mats.append(node)
            segs.append([])
        else:
            if node.op_type in SHAPE and mats and node.op_type not in ("Flatten", "Reshape", "Transpose"):
                raise RrambnnError(f"{where}: node {node.name or node.op_type} ({node.op_type}) after the first layer "
                                   f"is not supported")
            segs[-1].append(node)
    if not mats:
        raise RrambnnError(f"{where}: no MatMul, Gemm or Conv layer")
    props = {pp.key: pp.value for pp in model.metadata_props}
    meta, output_mode = _meta_and_mode(props, p.name, output_mode)
    if any(m.op_type == "Conv" for m in mats) or "rrambnn.spec" in props:
        return _import_cnn(g, segs, mats, props, where=where, pixels=pixels, output_mode=output_mode,
                           meta=meta, crop=crop)
    for node in g.chain:
        if node.op_type in POOL or (node.op_type == "Transpose"):
            raise RrambnnError(f"{where}: node {node.name or node.op_type} ({node.op_type}) belongs to a convolutional "
                               f"network, and this one has no Conv")
    # layers' weights (constants) and biases (Gemm's C: an Add before the next segment)
    weights, biases = [], []
    for k, node in enumerate(mats):
        w, b = _dense_weights(g, node, f"{where}: layer {k} ({node.op_type} {node.name})")
        weights.append(w)
        biases.append(b)
    _check_classes(weights[-1].shape[1], where)
    # the input: every pixel value through the first segment
    v0, lv, alpha, beta, code_of_p = _input_levels(g, segs[0], pixels, where)
    v0 = v0.reshape(256, -1)
    n_in = v0.shape[1]
    if n_in != weights[0].shape[0]:
        raise RrambnnError(f"{where}: {n_in} inputs reach the first layer, whose weights have {weights[0].shape[0]} "
                           f"rows")
    side = math.isqrt(n_in)
    if side * side != n_in or not 1 <= side <= 28 or (crop is not None and crop != side):
        raise RrambnnError(f"{where}: {n_in} inputs are not the centre crop"
                           f"{'' if crop is None else f' of {crop}x{crop}'} of a 28x28 image")
    _check_centre_crop(g, segs[0], pixels, (side, side), where)
    in_bits = max(1, math.ceil(math.log2(len(lv))))
    # weights as odd codes, or ternary codes -2/0/2 when any weight is zero
    codes, scales, wbits = [], [], 1
    ternary = props.get("rrambnn.wcode") == "ternary" or any((w == 0).any() for w in weights)
    for k, w in enumerate(weights):
        label = f"{where}: layer {k} ({mats[k].op_type} {mats[k].name})"
        c, s, b = _ternary_codes(w, label) if ternary else _odd_codes(w, label)
        codes.append(c)
        scales.append(s)
        wbits = max(wbits, b)
    wbits = 2 if ternary else _declared_bits(props, "rrambnn.wbits", wbits)
    # hidden layers: the staircase of each column
    thresholds, abits = [], in_bits
    a_lo, a_step, a_bits = alpha, beta, in_bits
    layer_bits = []
    for k in range(len(weights)):
        post = segs[k + 1] if k + 1 < len(segs) else []
        bias = biases[k]
        colsum = weights[k].sum(axis=0)
        gain = a_step * scales[k]  # y = a_lo colsum + gain S (+ bias)
        offset = a_lo * colsum + (0 if bias is None else bias)
        bound = sum_bound(codes[k].shape[0], wbits, _declared_bits(props, "rrambnn.abits", a_bits), ternary)
        last = k == len(weights) - 1
        g_of = _layer_function(g, post, gain, offset)

        name = f"{where}: layer {k} ({mats[k].op_type} {mats[k].name})"
        if last:
            theta, note = _output_thresholds(g_of, bound, name, post, output_mode)
            thresholds.append(theta)
            break
        th, lv, a_lo, a_step, flip = _staircase(g_of, bound, codes[k].shape[1], name)
        codes[k][:, flip] *= -1
        a_bits = max(1, math.ceil(math.log2(len(lv))))
        layer_bits.append(a_bits)
        thresholds.append(th)
    abits = _declared_bits(props, "rrambnn.abits", max([in_bits, *layer_bits]))
    if note:
        meta = {**meta, "import_note": note}
    if wbits == 1 and abits == 1 and not ternary:
        T = int(np.argmax(code_of_p >= 1))
        if T < 1:
            raise RrambnnError(f"{where}: the input quantiser sets every pixel, even 0: no binarisation threshold")
        net = BinaryNetwork([c.astype(np.int8) for c in codes],
                            [t.reshape(-1).astype(np.int32) for t in thresholds],
                            Preprocess(crop=side, threshold=T), output_mode, meta, where=where)
    else:
        ths = _full_thresholds(codes, thresholds, code_of_p, wbits, abits, where, ternary)
        net = SlicedNetwork([c.astype(np.int16) for c in codes], ths, wbits, abits, side, output_mode, meta,
                            where=where, ternary=ternary)
    return net


def _declared_bits(props: dict, key: str, found: int) -> int:
    """An rrambnn export's own weight or activation width (its codes may not use it all)."""
    try:
        v = int(props.get(key, found))
    except ValueError:
        return found
    return max(found, v) if 1 <= v <= 8 else found  # anything else is not an rrambnn width: ignored


def _dense_weights(g, node, label: str):
    """A MatMul or Gemm layer's constant weights (rows = inputs) and Gemm's bias (or None)."""
    a = _attrs(node)
    w = g.consts.get(node.input[1])
    if w is None:
        raise RrambnnError(f"{label}: its weights must be a constant")
    b = None
    if node.op_type == "Gemm":
        if a.get("transA", 0):
            raise RrambnnError(f"{label}: Gemm with transA is not supported")
        w = a.get("alpha", 1.0) * (w.T if a.get("transB", 0) else w)
        c = g.consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        b = None if c is None else a.get("beta", 1.0) * np.asarray(c, np.float64)
    w = np.asarray(w, np.float64)
    if w.ndim != 2:
        raise RrambnnError(f"{label}: its weights must be 2-D, not {w.shape}")
    return w, b


def _layer_function(g, post, gain, offset, conv: bool = False):
    """The operations after a layer as a function of its integer column sums S (rows of sums, or
    one row): y = offset + gain S per column, through ``post`` (per channel for a convolution)."""
    def g_of(S):
        S = np.asarray(S, np.float64)
        y = offset + gain * np.atleast_2d(S)
        if conv:
            y = y[:, :, None, None]
        out = g.run(post, y).reshape(y.shape[0], -1)
        return out.reshape(-1) if S.ndim < 2 else out
    return g_of


def _check_classes(n: int, where: str):
    if n != 10:
        raise RrambnnError(f"{where}: the model has {n} outputs; MNIST needs 10")


def _check_head(node, where: str):
    """What may end the model: ArgMax (first index), TopK (the largest), Softmax or LogSoftmax, over
    the classes."""
    a = _attrs(node)
    name = f"{where}: node {node.name or node.op_type} ({node.op_type})"
    if node.op_type not in HEAD:
        raise RrambnnError(f"{name} after the classifier's head; only ArgMax, TopK, Softmax or LogSoftmax may end it")
    if a.get("axis", 1 if node.op_type in ("ArgMax", "Softmax", "LogSoftmax") else -1) not in (1, -1):
        raise RrambnnError(f"{name} works along axis {a.get('axis')}, not the classes")
    if node.op_type == "ArgMax" and a.get("select_last_index", 0):
        raise RrambnnError(f"{name} selects the last index on ties; the chip's argmax takes the first")
    if node.op_type == "TopK" and not a.get("largest", 1):
        raise RrambnnError(f"{name} takes the smallest scores")


def _full_thresholds(codes, thresholds, code_of_p, wbits: int, abits: int, where: str,
                     ternary: bool = False) -> list[np.ndarray]:
    """The pixels checked against the chip's ``abits``-bit quantiser; hidden layers with fewer
    levels than 2^abits get thresholds that never fire for the levels they never reach; int32."""
    from rrambnn.gen.sliced import quantise_pixels, sum_bound
    want = quantise_pixels(np.arange(256).astype(np.uint8), abits)
    if not (code_of_p == want).all():
        bad = int(np.argmax(code_of_p != want))
        raise RrambnnError(f"{where}: the input quantiser gives pixel {bad} the code {code_of_p[bad]}, rrambnn's "
                           f"{abits}-bit pixel quantiser (p (2^{abits} - 1) + 127) // 255 gives {want[bad]} (the "
                           f"chips quantise pixels and activations to the same width)")
    levels = (1 << abits) - 1
    out = []
    for k, t in enumerate(thresholds):
        if k < len(thresholds) - 1 and t.shape[1] < levels:
            t = np.concatenate([t, np.full((t.shape[0], levels - t.shape[1]),
                                           sum_bound(codes[k].shape[0], wbits, abits, ternary) + 1)], axis=1)
        out.append(t.astype(np.int32))
    return out


def _meta_and_mode(props: dict, name: str, output_mode):
    """The network's metadata (an rrambnn export's own, else where it came from) and output stage
    (given, else the model's own, else argmax as FINN classifies)."""
    from rrambnn.gen.network import check_output_mode
    meta = {"imported_from": name}
    if "rrambnn.meta" in props:
        try:
            m = json.loads(props["rrambnn.meta"])
        except (ValueError, RecursionError):
            m = None
        if isinstance(m, dict):
            meta = m
    if output_mode is None:
        output_mode = props.get("rrambnn.output_mode", "argmax")
    return meta, check_output_mode(output_mode)


def _staircase(g_of, bound: int, cols: int, name: str):
    """Thresholds of a hidden layer: (cols, levels-1) int, the level set, its alpha/beta, flipped columns."""
    lo_v, hi_v = g_of(np.full(cols, -float(bound))), g_of(np.full(cols, float(bound)))
    flip = hi_v < lo_v
    sgn = np.where(flip, -1.0, 1.0)
    if bound * 2 + 1 <= ENUMERATE:
        S = np.arange(-bound, bound + 1, dtype=np.float64)
    else:
        S = np.unique(np.round(np.linspace(-bound, bound, ENUMERATE)))
    vals = g_of(S[:, None] * sgn[None, :])  # (len(S), cols)
    lv, a0, step = _levels(vals, f"{name}: its activation")

    def level_of(v):  # every value must be one of the levels seen
        i = np.clip(np.searchsorted(lv, v - 1e-9 * max(1.0, abs(step))), 0, len(lv) - 1)
        if not np.allclose(lv[i], v, rtol=0, atol=1e-9 * max(1.0, abs(step))):
            raise RrambnnError(f"{name}: its activation takes values between the levels found on a grid of "
                               f"{len(S):,} sums (levels narrower than the grid's step are not supported)")
        return i

    idx = level_of(vals)
    if (np.diff(idx, axis=0) < 0).any():
        raise RrambnnError(f"{name}: its activation is not a monotone function of the column sum")
    L = len(lv) - 1
    th = np.empty((cols, L), np.int64)
    for lvl in range(1, L + 1):
        reached = idx >= lvl
        first = np.where(reached.any(axis=0), reached.argmax(axis=0), len(S))
        if len(S) == 2 * bound + 1:
            th[:, lvl - 1] = np.where(first < len(S), S[np.minimum(first, len(S) - 1)], bound + 1)
        else:  # bisection between the grid points
            hi = np.where(first < len(S), S[np.minimum(first, len(S) - 1)], bound + 1)
            lo = np.where(first > 0, S[np.maximum(first - 1, 0)], -bound - 1)
            while (hi - lo > 1).any():
                mid = np.floor((lo + hi) / 2)
                ok = level_of(g_of(mid * sgn)) >= lvl
                hi = np.where(ok & (hi - lo > 1), mid, hi)
                lo = np.where(~ok & (hi - lo > 1), mid, lo)
            th[:, lvl - 1] = hi
    if len(S) != 2 * bound + 1:  # no level skipped between grid points: at each step the next level exactly
        for lvl in range(1, L + 1):
            t = th[:, lvl - 1]
            inside = t <= bound
            at = level_of(g_of(np.clip(t, -bound, bound) * sgn))
            before = level_of(g_of(np.clip(t - 1, -bound, bound) * sgn))
            if (inside & (at < lvl)).any() or (inside & (t > -bound) & (before >= lvl)).any():
                raise RrambnnError(f"{name}: its activation is not a monotone staircase of the column sum")
            nxt = th[:, lvl] if lvl < L else np.full(cols, bound + 1)
            jump = inside & (nxt > t)
            if (jump & (at != lvl)).any():
                raise RrambnnError(f"{name}: its activation skips a level between grid points of {len(S):,} sums")
    th = np.clip(th, -bound, bound + 1)
    return th, lv, a0, step, flip


AFFINE = {"Add", "Sub", "Mul", "Div", "Neg", "BatchNormalization", "Identity", "Dropout", "Cast", "Flatten",
          "Reshape"}  # what may follow the last layer


def _output_thresholds(g_of, bound: int, name: str, post, output_mode: str) -> tuple[np.ndarray, str | None]:
    """The output layer: scores a (S - theta_j) + c with one positive a and whole-step differences
    of the theta_j; returns the integer thresholds and, when they had to be moved into the chip's
    range, what that did."""
    bad = [nd for nd in post if nd.op_type not in AFFINE]
    if bad:
        nd = bad[0]
        raise RrambnnError(f"{name}: node {nd.name or nd.op_type} ({nd.op_type}) after the last layer; only scales "
                           f"and biases may follow it (then ArgMax, TopK, Softmax or LogSoftmax)")
    if 2 * bound + 1 <= ENUMERATE:
        S = np.arange(-bound, bound + 1, dtype=np.float64)
    else:
        S = np.unique(np.r_[np.round(np.linspace(-bound, bound, ENUMERATE)), -1.0, 0.0, 1.0])
    z = np.asarray(g_of(S[:, None] * np.ones((1, 1))), np.float64)  # (len(S), classes)
    z0 = z[S == 0][0]
    a = z[S == 1][0] - z0
    if not np.allclose(z, z0 + S[:, None] * a, rtol=1e-9, atol=1e-9 * max(1.0, np.abs(z).max())):
        raise RrambnnError(f"{name}: its scores are not an affine function of the column sums")
    if (a <= 0).any() or not np.allclose(a, a[0], rtol=1e-9, atol=0):
        raise RrambnnError(f"{name}: its classes have different or negative scales; argmax of the chip's integer "
                           f"margins could not equal the model's")
    theta = -z0 / a[0]
    d = theta - theta[0]
    if not np.allclose(d, np.round(d), rtol=0, atol=1e-6):
        raise RrambnnError(f"{name}: its per-class biases differ by fractions of a sum step; the chip's integer "
                           f"thresholds cannot keep the model's argmax")
    th = math.ceil(theta[0] - 1e-9) + np.round(d)
    if th.min() >= -bound and th.max() <= bound + 1:
        return th.astype(np.int64), None
    if output_mode == "priority":  # each class fires exactly where its score is >= 0; the argmax stage may differ
        return np.clip(th, -bound, bound + 1).astype(np.int64), (
            "the output thresholds lie beyond the sums' range and were clipped to it: the priority stage is the "
            "model's (score >= 0), the argmax stage may differ from its argmax")
    if th.max() - th.min() > 2 * bound + 1:
        raise RrambnnError(f"{name}: its per-class biases spread over {int(th.max() - th.min())} sum steps, more than "
                           f"the chip's threshold range ({2 * bound + 1})")
    shift = -int(th.min()) - bound if th.min() < -bound else bound + 1 - int(th.max())
    return (th + shift).astype(np.int64), (
        f"the output thresholds were moved by {shift} sum steps into the chip's range: the argmax stage is the "
        f"model's, the priority stage fires where score >= {-shift} x the sum step")


def _check_centre_crop(g, seg, pixels, out_hw, where):
    """The operations before the first layer take each pixel to one input, in raster order, as the
    centre crop of the 28x28 image rrambnn's chips take (the model's own input counted as the
    centre of the image): checked by lighting one pixel at a time."""
    dims = list(g.input_shape[1:])
    if not dims or any(d is None for d in dims):
        raise RrambnnError(f"{where}: the model's input needs fixed sizes after the batch, not {g.input_shape}")
    n_pix = int(np.prod(dims))
    grid = [d for d in dims if d != 1]
    if len(grid) == 1 and math.isqrt(grid[0]) ** 2 == grid[0]:
        grid = [math.isqrt(grid[0])] * 2
    if len(grid) != 2 or max(grid) > 28 or n_pix > 28 * 28:
        raise RrambnnError(f"{where}: the model's input {dims} is not a grey image of at most 28x28 pixels")
    H0, W0 = grid
    lit = np.full((n_pix + 1, n_pix), pixels[0])
    lit[np.arange(n_pix), np.arange(n_pix)] = pixels[255]
    out = g.run(seg, lit.reshape([n_pix + 1] + dims)).reshape(n_pix + 1, -1)
    changed = out[:-1] != out[-1]
    h, w = out_hw
    oy, ox = (H0 - h) // 2, (W0 - w) // 2
    want = ((np.arange(h)[:, None] + oy) * W0 + np.arange(w)[None, :] + ox).reshape(-1)
    ok = changed.shape[1] == h * w and (changed.sum(axis=0) == 1).all() and (changed.sum(axis=1) <= 1).all() \
        and (changed.argmax(axis=0) == want).all()
    if not ok or (28 - H0) // 2 + oy != (28 - h) // 2 or (28 - W0) // 2 + ox != (28 - w) // 2:
        raise RrambnnError(f"{where}: the operations before the first layer do not take the centre {h}x{w} of the "
                           f"image in raster order (each input one pixel), as rrambnn's chips do")


def _input_levels(g, seg, pixels, where):
    """The operations before the first layer on all 256 pixel values: (outputs (256, ...), levels,
    alpha, beta, code of each pixel value)."""
    shape = [1 if s is None else s for s in g.input_shape] or [1, 784]
    shape[0] = 256
    pix = np.asarray(pixels, np.float64)  # the model's input for each pixel value 0 .. 255
    try:
        v = g.run(seg, np.broadcast_to(pix.reshape((256,) + (1,) * (len(shape) - 1)), shape).copy())
    except RrambnnError:
        raise
    except Exception as e:
        raise RrambnnError(f"{where}: the operations before the first layer cannot run on the image: {e}") from None
    flat = v.reshape(256, -1)
    if not (flat == flat[:, :1]).all():
        raise RrambnnError(f"{where}: the input quantiser differs from pixel to pixel; rrambnn's chips quantise "
                           f"every pixel alike")
    lv, alpha, beta = _levels(flat[:, 0], "the input quantiser")
    code_of_p = np.searchsorted(lv, flat[:, 0])
    if (np.diff(code_of_p) < 0).any():
        raise RrambnnError(f"{where}: the input quantiser does not grow with the pixel value")
    return v, lv, alpha, beta, code_of_p


def _import_cnn(g, segs, mats, props, *, where, pixels, output_mode, meta, crop):
    """A chain of Conv, MaxPool and MatMul/Gemm layers -> a CnnNetwork (exact, as the dense import)."""
    from rrambnn.gen.cnn import FLOAT_BITS, CnnNetwork
    from rrambnn.gen.sliced import sum_bound
    from rrambnn.gen.spec import Conv, Dense, NetSpec, Pool
    v0, lv, a_lo, a_step, code_of_p = _input_levels(g, segs[0], pixels, where)
    if v0.ndim != 4 or v0.shape[1] != 1:
        raise RrambnnError(f"{where}: a convolutional model's input must reach its first layer as N x 1 x H x W, not "
                           f"{v0.shape[1:]}")
    h, w = v0.shape[2], v0.shape[3]
    if h > 28 or w > 28 or (crop is not None and (h, w) != (crop, crop)):
        raise RrambnnError(f"{where}: the first layer sees {h}x{w} pixels, not "
                           f"{'a centre crop of the 28x28 image' if crop is None else f'the {crop}x{crop} crop'}")
    _check_centre_crop(g, segs[0], pixels, (h, w), where)
    in_bits = max(1, math.ceil(math.log2(len(lv))))
    layers, codes, scales, names, biases, kinds = [], [], [], [], [], []
    x_shape = (1, h, w)  # C, H, W of the tensor entering the next layer
    layout = "nchw"
    for k, node in enumerate(mats):
        a = _attrs(node)
        label = f"{where}: layer {k} ({node.op_type} {node.name})"
        if node.op_type == "Conv":
            kern = g.consts.get(node.input[1])
            if kern is None or kern.ndim != 4 or kern.shape[1] != x_shape[0]:
                raise RrambnnError(f"{label}: its kernel must be a constant C_out x {x_shape[0]} x k x k tensor")
            co, ci, kk, _ = kern.shape
            st, pads = a.get("strides", [1, 1]), a.get("pads", [0, 0, 0, 0])
            _run(node, [np.zeros((1,) + x_shape), kern])  # checks the shape rules (one line if broken)
            wmat = np.asarray(kern, np.float64).transpose(2, 3, 1, 0).reshape(kk * kk * ci, co)
            layers.append(Conv(kk, co, st[0], pads[0]))
            hh = (x_shape[1] + 2 * pads[0] - kk) // st[0] + 1
            ww = (x_shape[2] + 2 * pads[0] - kk) // st[0] + 1
            x_shape = (co, hh, ww)
            b = g.consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
            kinds.append("conv")
        else:
            wmat, b = _dense_weights(g, node, label)
            n_in = int(np.prod(x_shape))
            if wmat.shape[0] != n_in:
                raise RrambnnError(f"{label}: its weights must have {n_in} rows, not shape {wmat.shape}")
            if layout == "chw" and x_shape[1] * x_shape[2] > 1:  # NCHW flattened: rows to rrambnn's (h, w, c) order
                c_, h_, w_ = x_shape
                wmat = wmat.reshape(c_, h_, w_, -1).transpose(1, 2, 0, 3).reshape(n_in, -1)
            layers.append(Dense(wmat.shape[1]))
            x_shape = (wmat.shape[1], 1, 1)
            kinds.append("dense")
        c, sc, bits = _odd_codes(wmat, label)
        codes.append(c)
        scales.append(sc)
        biases.append(b)
        names.append(label)
        # the operations after this layer: elementwise first, then pooling and layout
        post = segs[k + 1]
        ew, tail = [], []
        for nd in post:
            if nd.op_type in ELEMENTWISE and not tail:
                ew.append(nd)
            elif nd.op_type in POOL | SHAPE:
                tail.append(nd)
            else:
                raise RrambnnError(f"{where}: node {nd.name or nd.op_type} ({nd.op_type}) comes after a pooling or "
                                   f"layout node; rrambnn pools the activation codes (put MaxPool after the quantiser)")
        segs[k + 1] = ew
        for nd in tail:
            at = _attrs(nd)
            if nd.op_type == "MaxPool":
                if kinds[-1] != "conv" and len(layers) and not isinstance(layers[-1], (Conv, Pool)):
                    raise RrambnnError(f"{where}: MaxPool {nd.name} after a dense layer")
                _run(nd, [np.zeros((1,) + x_shape)])  # the pooling rules
                kp = at["kernel_shape"][0]
                layers.append(Pool(kp))
                x_shape = (x_shape[0], x_shape[1] // kp, x_shape[2] // kp)
            elif nd.op_type == "Transpose":
                if list(at.get("perm", [])) != [0, 2, 3, 1]:
                    raise RrambnnError(f"{where}: Transpose {nd.name} must take NCHW to NHWC (perm 0,2,3,1)")
                layout = "nhwc"
            elif nd.op_type in ("Flatten", "Reshape"):
                layout = "chw" if layout == "nchw" else "hwc"
            else:
                raise RrambnnError(f"{where}: node {nd.name or nd.op_type} ({nd.op_type}) after a layer is not "
                                   f"supported")
    _check_classes(codes[-1].shape[1], where)
    wbits = _declared_bits(props, "rrambnn.wbits",
                           max(max(1, math.ceil(math.log2(int(np.abs(c).max()) + 1))) for c in codes))
    # each layer's staircase, as the dense import, on per-channel columns
    thresholds, bits_seen = [], [in_bits]
    a_bits = in_bits
    for k in range(len(mats)):
        wk = codes[k] * scales[k][None, :]
        colsum = wk.sum(axis=0)
        gain = a_step * scales[k]
        offset = a_lo * colsum + (0 if biases[k] is None else biases[k])
        bound = sum_bound(codes[k].shape[0], wbits, _declared_bits(props, "rrambnn.abits", a_bits))
        conv = kinds[k] == "conv"
        layer = [ly for ly in layers if not isinstance(ly, Pool)][k]
        if conv and layer.pad and abs(a_lo) > 1e-9:
            raise RrambnnError(f"{names[k]}: zero padding of inputs whose lowest level is {a_lo:g}, not 0: the chip "
                               f"pads with code 0")
        g_of = _layer_function(g, segs[k + 1], gain, offset, conv)

        if k == len(mats) - 1:
            theta, note = _output_thresholds(g_of, bound, names[k], segs[k + 1], output_mode)
            thresholds.append(theta)
            break
        th, lvk, a_lo, a_step, flip = _staircase(g_of, bound, codes[k].shape[1], names[k])
        codes[k][:, flip] *= -1
        a_bits = max(1, math.ceil(math.log2(len(lvk))))
        bits_seen.append(a_bits)
        thresholds.append(th)
    abits = _declared_bits(props, "rrambnn.abits", max(bits_seen))
    ths = _full_thresholds(codes, thresholds, code_of_p, wbits, abits, where)
    if note:
        meta = {**meta, "import_note": note}
    try:
        cobits = int(props.get("rrambnn.cobits", FLOAT_BITS))
    except ValueError:
        cobits = FLOAT_BITS
    spec = NetSpec((h, w, 1), tuple(layers))
    return CnnNetwork(spec, [c.astype(np.int16) for c in codes], ths, wbits, abits, cobits, output_mode, meta,
                      where=where)
