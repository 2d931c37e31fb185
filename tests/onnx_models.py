"""QONNX models built with onnx.helper for the import tests: FINN's MLP shapes as Brevitas
exports them (no network access, no PyTorch). Random weights and batch-norm statistics; the
tests check exactness, not accuracy."""

from __future__ import annotations

import numpy as np

DOMAIN = "qonnx.custom_op.general"
FINN_SHAPES = {"TFC": (64, 64, 64), "SFC": (256, 256, 256), "LFC": (1024, 1024, 1024)}


class Builder:
    def __init__(self):
        from onnx import helper, numpy_helper
        self.h, self.nh = helper, numpy_helper
        self.nodes, self.inits, self.n = [], [], 0

    def const(self, value, dtype=np.float32):
        self.n += 1
        name = f"c{self.n}"
        self.inits.append(self.nh.from_array(np.asarray(value, dtype), name))
        return name

    def node(self, op, inputs, domain="", **attrs):
        self.n += 1
        out = f"t{self.n}"
        self.nodes.append(self.h.make_node(op, inputs, [out], name=f"{op}_{self.n}", domain=domain, **attrs))
        return out

    def model(self, x_in, x_out, in_shape, n_out):
        import onnx
        h = self.h
        graph = h.make_graph(self.nodes, "finn-like", [h.make_tensor_value_info(x_in, onnx.TensorProto.FLOAT, in_shape)],
                             [h.make_tensor_value_info(x_out, onnx.TensorProto.FLOAT, [in_shape[0], n_out])],
                             self.inits)
        return h.make_model(graph, opset_imports=[h.make_opsetid("", 13), h.make_opsetid(DOMAIN, 1)])


def bipolar_input(b: Builder, name: str = "image"):
    """The image flattened and binarised at pixel / 255 >= 0.5 to -1/+1 (a BipolarQuant)."""
    x = b.node("Flatten", [name], axis=1)
    return b.node("BipolarQuant", [b.node("Sub", [x, b.const(0.5)]), b.const(1.0)], domain=DOMAIN)


def bn(b: Builder, x, cols, rng, negative=0.0):
    gamma = rng.uniform(0.5, 2.0, cols) * np.where(rng.random(cols) < negative, -1, 1)
    return b.node("BatchNormalization", [x, b.const(gamma), b.const(rng.normal(0, 0.5, cols)),
                                         b.const(rng.normal(0, 3, cols)), b.const(rng.uniform(20, 60, cols))],
                  epsilon=1e-4)


def finn_mlp(hidden, *, abits: int = 1, rng, batch: int = 1, gemm: bool = False, negative: float = 0.0,
             out_bias: bool = False, wbits: int = 1, zero_class: int | None = None):
    """FINN's FC network as brevitas exports it to QONNX: (N,1,28,28) pixels / 255 -> Flatten ->
    2x - 1 -> input quantiser -> [MatMul with BipolarQuant weights (per-column scales in hidden
    layers) -> BatchNormalization -> activation quantiser] x len(hidden) -> MatMul -> TensorNorm
    (a scalar Mul and Add). A = 1: BipolarQuant activations and inputs; A = 2: signed 2-bit Quant
    activations and an unsigned 2-bit Quant input (round(3 x)). ``gemm``: Gemm (transB) layers;
    ``negative``: the fraction of batch-norm scales below zero; ``wbits`` 2: FINN's 2-bit weights,
    a signed narrow 2-bit Quant (-1, 0, +1 times the scale) instead of BipolarQuant; ``zero_class``:
    that class's weights all 0 (a pruned output, with 2-bit weights)."""
    b = Builder()

    def wquant(w, scale):
        if wbits == 1:
            return b.node("BipolarQuant", [b.const(w), b.const(scale)], domain=DOMAIN)
        return b.node("Quant", [b.const(w), b.const(scale), b.const(0.0), b.const(2.0)], domain=DOMAIN, signed=1,
                      narrow=1, rounding_mode="ROUND")

    x = b.node("Flatten", ["image"], axis=1)
    if abits == 1:
        x = b.node("Mul", [x, b.const(2.0)])
        x = b.node("Sub", [x, b.const(1.0)])
        x = b.node("BipolarQuant", [x, b.const(1.0)], domain=DOMAIN)
    else:
        x = b.node("Quant", [x, b.const(1 / 3), b.const(0.0), b.const(2.0)], domain=DOMAIN, signed=0, narrow=0,
                   rounding_mode="ROUND")
    widths = (784,) + tuple(hidden) + (10,)
    for k, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        last = k == len(widths) - 2
        w = rng.normal(size=(n_in, n_out)).astype(np.float32)
        if last and zero_class is not None:
            w[:, zero_class] = 0
        # powers of two: float32 sums are then exact, so qonnx's float execution has the model's real
        # values (arbitrary float scales make its float32 sums break ties and cross thresholds by rounding)
        scale = (np.float32(0.25) if last else (2.0 ** -rng.integers(0, 5, n_out)).astype(np.float32))
        if gemm:
            wq = wquant(w.T, np.asarray(scale).reshape(-1, 1) if not last else scale)
            step = (2.0 if abits == 1 else 0.5) * 0.25  # the last layer's sum step: input level spacing x scale
            args = [x, wq] + ([b.const(step * rng.integers(-4, 5, n_out))] if last and out_bias else [])
            x = b.node("Gemm", args, transB=1)
        else:
            x = b.node("MatMul", [x, wquant(w, scale)])
        if last:
            x = b.node("Mul", [x, b.const(0.7)])
            x = b.node("Add", [x, b.const(0.25)])
            break
        x = bn(b, x, n_out, rng, negative)
        if abits == 1:
            x = b.node("BipolarQuant", [x, b.const(1.0)], domain=DOMAIN)
        else:
            x = b.node("Quant", [x, b.const(0.5), b.const(0.0), b.const(2.0)], domain=DOMAIN, signed=1, narrow=0,
                       rounding_mode="ROUND")
        x = b.node("Dropout", [x])
    return b.model("image", x, [batch, 1, 28, 28], 10)


def run_qonnx(model, images: np.ndarray, batch: int) -> np.ndarray:
    """qonnx's executor on uint8 images (N, 28, 28), ``batch`` at a time -> output scores."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes
    m = ModelWrapper(model).transform(InferShapes())
    name_in, name_out = m.graph.input[0].name, m.graph.output[0].name
    x = (images.astype(np.float32) / 255)[:, None]
    return np.concatenate([execute_onnx(m, {name_in: x[i:i + batch]})[name_out] for i in range(0, len(x), batch)])


def brevitas_cnn(rng, *, batch: int = 1, pool_first: bool = False, pad2: int = 0):
    """A small CNN as Brevitas exports one: a 2-bit unsigned input Quant, Conv (BipolarQuant
    kernels with per-channel power-of-two scales, padding 1) -> BatchNormalization -> signed 2-bit
    Quant -> MaxPool, a second Conv (no padding: its inputs' lowest level is not 0) -> ... ->
    Flatten of NCHW -> MatMul -> BN -> Quant -> MatMul -> TensorNorm. ``pool_first``: MaxPool
    before the quantiser (refused); ``pad2``: padding of the second Conv (> 0 refused)."""
    b = Builder()
    x = b.node("Quant", ["image", b.const(1 / 3), b.const(0.0), b.const(2.0)], domain=DOMAIN, signed=0, narrow=0,
               rounding_mode="ROUND")

    def conv(x, ci, co, pad):
        w = np.where(rng.random((co, ci, 3, 3)) < 0.5, -1.0, 1.0)
        s = (2.0 ** -rng.integers(0, 4, co)).reshape(co, 1, 1, 1)
        wq = b.node("BipolarQuant", [b.const(w), b.const(s)], domain=DOMAIN)
        return b.node("Conv", [x, wq], kernel_shape=[3, 3], pads=[pad] * 4, strides=[1, 1])

    def act(x, c):
        x = bn(b, x, c, rng, 0.25)
        return b.node("Quant", [x, b.const(0.5), b.const(0.0), b.const(2.0)], domain=DOMAIN, signed=1, narrow=0,
                      rounding_mode="ROUND")

    x = conv(x, 1, 4, 1)
    if pool_first:
        x = act(b.node("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2]), 4)
    else:
        x = b.node("MaxPool", [act(x, 4)], kernel_shape=[2, 2], strides=[2, 2])
    x = conv(x, 4, 6, pad2)
    side = 14 + 2 * pad2 - 2
    x = b.node("MaxPool", [act(x, 6)], kernel_shape=[2, 2], strides=[2, 2])
    x = b.node("Flatten", [x], axis=1)
    n = 6 * (side // 2) ** 2
    x = b.node("MatMul", [x, b.node("BipolarQuant", [b.const(np.where(rng.random((n, 16)) < 0.5, -1.0, 1.0)),
                                                     b.const(0.25)], domain=DOMAIN)])
    x = act(x, 16)
    x = b.node("MatMul", [x, b.node("BipolarQuant", [b.const(np.where(rng.random((16, 10)) < 0.5, -1.0, 1.0)),
                                                     b.const(0.5)], domain=DOMAIN)])
    x = b.node("Add", [b.node("Mul", [x, b.const(0.7)]), b.const(0.1)])
    return b.model("image", x, [batch, 1, 28, 28], 10)
