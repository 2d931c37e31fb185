"""Network files: the one loader every command, flow and study uses.

Four kinds of .npz exist (their formats are in the README): a binary network
(:class:`rrambnn.gen.network.BinaryNetwork`, format ``rrambnn-bnn``), a multi-bit network
(:class:`rrambnn.gen.sliced.SlicedNetwork`, ``rrambnn-sliced``), an n-bit online network
(offset codes, :func:`rrambnn.gen.learning.load_codes`, ``rrambnn-online``) and a network of any
layer spec, convolutions included (:class:`rrambnn.gen.cnn.CnnNetwork`, ``rrambnn-cnn``).
"""

from __future__ import annotations

import numpy as np

from rrambnn.errors import RrambnnError
from rrambnn.fileio import npz_format


def load_network(path=None, *, multi_bit: bool = False, cnn: bool = False):
    """The network in ``path`` (default: the shipped reference network). Multi-bit and
    convolutional networks only where the caller handles them (``multi_bit``, ``cnn``); elsewhere,
    and for online networks, one clear error naming what the file holds."""
    from rrambnn.gen import learning
    from rrambnn.gen.cnn import FORMAT as CNN, CnnNetwork
    from rrambnn.gen.network import BinaryNetwork
    from rrambnn.gen.sliced import FORMAT as SLICED, SlicedNetwork
    from rrambnn.weights import shipped
    if path is not None and not str(path):
        raise RrambnnError("the weights file name is empty")
    path = path if path else shipped()
    fmt = npz_format(path)
    kinds = {  # format: (class, taken here, what the file holds for a command that does not take it)
        CNN: (CnnNetwork, cnn, lambda n: f"a network of layer spec {n.spec.text} ({n.wbits}-bit weights, {n.abits}-bit "
                                         f"activations); this command does not take it yet (eval, "
                                         f"verilog, sim, run and cost do)"),
        SLICED: (SlicedNetwork, multi_bit, lambda n: f"a network with {n.wbits}-bit weights and {n.abits}-bit "
                                                     f"activations; this command takes binary networks (verilog, eval "
                                                     f"and sim take multi-bit ones)"),
    }
    if fmt in kinds:
        cls, taken, holds = kinds[fmt]
        net = cls.load(path)
        if not taken:
            raise RrambnnError(f"{path}: {holds(net)}")
        return net
    if fmt == learning.FORMAT:
        raise RrambnnError(f"{path}: an n-bit online network (offset codes); this command takes binary or multi-bit "
                           f"networks (verilog and online take online ones)")
    return BinaryNetwork.load(path)


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
            **({"weight_bits": net.wbits, "activation_bits": net.abits} if hasattr(net, "abits") else {})}


def train_and_save(cfg, out, data_dir=None, *, progress: bool = False):
    """Train a network (:class:`rrambnn.gen.train.TrainConfig`), record its test accuracy and
    history in its metadata, and write it to ``out`` (.npz). Returns the network."""
    from pathlib import Path

    from rrambnn.gen.mnist import load_split
    from rrambnn.gen.train import train
    from rrambnn.fileio import check_writable
    cfg.validate()
    if Path(out).suffix != ".npz" or Path(out).is_dir():
        raise RrambnnError(f"--out must name a .npz file, not {str(out)!r}")
    out = check_writable(out)
    tr = load_split("train", data_dir)
    te = load_split("test", data_dir)
    net, _, history = train(cfg, tr.images, tr.labels, progress=progress)
    net.meta["accuracy"] = net.accuracy(network_inputs(net, te.images), te.labels)
    net.meta["history"] = history
    net.save(out)
    return net


def train_cnn_and_save(cfg, out, data_dir=None, *, progress: bool = False, log=None) -> dict:
    """Train a network of any layer spec through the crossbar model
    (:class:`rrambnn.gen.cnn_train.CnnTrainConfig`); calibrate its output thresholds on training
    images; record its hardware-exact test accuracy, the float model's and, with a disturbance,
    the accuracy under disturbed reads; write it to ``out`` (when given). Returns the result."""
    from pathlib import Path

    from rrambnn.fileio import check_writable
    from rrambnn.gen import cnn_train
    from rrambnn.gen.mnist import load_split
    cfg.validate()
    if out is not None:
        if Path(out).suffix != ".npz" or Path(out).is_dir():
            raise RrambnnError(f"--out must name a .npz file, not {str(out)!r}")
        if not cfg.integer:
            raise RrambnnError(f"A/CO/W/G {cfg.bits}: weights or activations wider than 8 bits have no chip to write "
                               f"(leave out --out to train and evaluate the float model)")
        out = check_writable(out)
    tr = load_split("train", data_dir)
    te = load_split("test", data_dir)
    net, model, history = cnn_train.train(cfg, tr.images, tr.labels, progress=progress, log=log)
    res = {"spec": model.spec.text, "bits": cfg.bits, "disturbance": cfg.disturbance, "seed": cfg.seed,
           "epochs": cfg.epochs, "train_seconds": history[-1]["seconds"] if history else 0.0,
           **cnn_train.evaluate(net, model, tr, te)}
    calibration = res.pop("calibration", None)
    if net is not None:
        net.meta.update({"calibration": calibration, "accuracy": res["accuracy"], "history": history,
                         **{k: v for k, v in res.items() if k not in ("accuracy",)}})
        if out is not None:
            net.save(out)
    res["history"] = history
    return res
