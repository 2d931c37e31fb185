"""Network files: the one reader every command, flow and study uses, and what a command does
with the network it read (its MNIST inputs, its test accuracy).

Four kinds of .npz exist (their formats are in docs/site/weights-format.md): a binary network
(:class:`rrambnn.gen.network.BinaryNetwork`, format ``rrambnn-bnn``), a multi-bit network
(:class:`rrambnn.gen.sliced.SlicedNetwork`, ``rrambnn-sliced``), an n-bit online network
(offset codes, :func:`rrambnn.gen.online_nbit.load_codes`, ``rrambnn-online``) and a network of any
layer spec, convolutions included (:class:`rrambnn.gen.cnn.CnnNetwork`, ``rrambnn-cnn``).
:func:`read_network` reads a file once (every entry checked) and builds the object its format
names; :func:`accept` decides whether a command takes it. A command reads its weights file once
and hands the object down.
"""

from __future__ import annotations

import numpy as np

from rrambnn.errors import RrambnnError
from rrambnn.fileio import read_npz


def read_network(path=None):
    """The network in ``path`` (default: the shipped reference network), read once: a
    :class:`BinaryNetwork`, :class:`SlicedNetwork`, :class:`CnnNetwork`, or the dict of an n-bit
    online network (:func:`rrambnn.gen.online_nbit.load_codes`)."""
    from rrambnn.gen import online_nbit
    from rrambnn.gen.cnn import FORMAT as CNN, CnnNetwork
    from rrambnn.gen.network import BinaryNetwork
    from rrambnn.gen.sliced import FORMAT as SLICED, SlicedNetwork
    from rrambnn.weights import shipped
    if path is not None and not str(path):
        raise RrambnnError("the weights file name is empty")
    path = path if path else shipped()
    entries = read_npz(path, ".npz weights file")
    fmt = entries.get("format")
    fmt = str(fmt) if fmt is not None and fmt.shape == () and fmt.dtype.kind == "U" else None
    if fmt == online_nbit.FORMAT:
        return online_nbit.load_codes(path, entries)
    cls = {CNN: CnnNetwork, SLICED: SlicedNetwork}.get(fmt, BinaryNetwork)
    return cls.load(path, entries)


def is_online(net) -> bool:
    """Whether ``net`` (from :func:`read_network`) is an n-bit online network."""
    return isinstance(net, dict)


def accept(net, path=None, *, multi_bit: bool = False, cnn: bool = False):
    """``net`` (from :func:`read_network`) when the command takes its kind: binary networks
    always, multi-bit and convolutional networks only where the caller handles them
    (``multi_bit``, ``cnn``); else one clear error naming what the file holds."""
    from rrambnn.gen.cnn import CnnNetwork
    from rrambnn.gen.sliced import SlicedNetwork
    from rrambnn.weights import shipped
    where = path if path else shipped()
    if is_online(net):
        raise RrambnnError(f"{where}: an n-bit online network (offset codes); this command takes binary or multi-bit "
                           f"networks (verilog and online take online ones)")
    if isinstance(net, CnnNetwork) and not cnn:
        raise RrambnnError(f"{where}: a network of layer spec {net.spec.text} ({net.wbits}-bit weights, {net.abits}-bit "
                           f"activations); this command does not take it yet (eval, verilog, sim, run and cost do)")
    if isinstance(net, SlicedNetwork) and not multi_bit:
        raise RrambnnError(f"{where}: a network with {net.wbits}-bit weights and {net.abits}-bit activations; this "
                           f"command takes binary networks (verilog, eval and sim take multi-bit ones)")
    return net


def load_network(path=None, *, multi_bit: bool = False, cnn: bool = False):
    """:func:`read_network` then :func:`accept`: the network of ``path`` if the command takes it."""
    return accept(read_network(path), path, multi_bit=multi_bit, cnn=cnn)


def check_mnist_inputs(net) -> None:
    if getattr(net, "preprocess", True) is None:
        raise RrambnnError("this network has raw-bit inputs (crop 0); it cannot be run on MNIST")


def network_inputs(net, images: np.ndarray) -> np.ndarray:
    """MNIST images as the network's inputs (the binarised crop, or the m-bit codes of a
    multi-bit network)."""
    check_mnist_inputs(net)
    return net.inputs(images) if hasattr(net, "abits") else net.preprocess(images)


def mnist_inputs(net, data_dir, n: int):
    """The first ``n`` MNIST test images as the network's inputs, and their labels."""
    from rrambnn.gen.mnist import load_split
    check_mnist_inputs(net)
    te = load_split("test", data_dir)
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= len(te.labels):
        raise RrambnnError(f"--images must be from 1 to {len(te.labels)}, not {n!r}")
    return network_inputs(net, te.images[:n]), te.labels[:n]


def mnist_train_inputs(net, data_dir, n: int):
    """The first ``n`` MNIST training images as the network's inputs (a calibration set; none
    for 0)."""
    from rrambnn.gen.mnist import load_split
    check_mnist_inputs(net)
    tr = load_split("train", data_dir)
    if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= len(tr.labels):
        raise RrambnnError(f"--calibration must be an integer from 0 to {len(tr.labels)} (training images), not {n!r}")
    return network_inputs(net, tr.images[:n])


def evaluate(net, data_dir=None) -> dict:
    """Accuracy of the hardware-exact network on the MNIST test set, in both output stages."""
    from rrambnn.gen.mnist import load_split
    check_mnist_inputs(net)
    te = load_split("test", data_dir)
    x = network_inputs(net, te.images)
    if hasattr(net, "spec"):
        return {"arch": net.spec.text, "images": len(te.labels), "accuracy": net.accuracy(x, te.labels),
                "default_output": net.output_mode, "weight_bits": net.wbits, "activation_bits": net.abits,
                "converter_bits": net.cobits}
    return {"arch": "-".join(map(str, net.arch)), "crop": int(round(x.shape[1] ** 0.5)), "images": len(te.labels),
            "accuracy": net.accuracy(x, te.labels), "default_output": net.output_mode,
            **({"weight_bits": net.wbits, "activation_bits": net.abits} if hasattr(net, "abits") else {}),
            **({"weight_code": "ternary"} if getattr(net, "ternary", False) else {})}
