"""The `rrambnn` command line."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from rrambnn.errors import RrambnnError


def _weights_arg(p: argparse.ArgumentParser, required=False):
    from rrambnn.weights import REFERENCE
    p.add_argument("--weights", metavar="W", required=required,
                   help=f"weights .npz (default: the shipped {REFERENCE})")


def _data_arg(p):
    p.add_argument("--data", metavar="DIR",
                   help="MNIST directory (default: $RRAMBNN_MNIST, else ../shared/mnist of the checkout)")


def load_net(path, *, multi_bit: bool = False):
    """The weights file (default: the shipped network). Multi-bit networks (rrambnn.gen.sliced)
    only where the command handles them (``multi_bit``); elsewhere one clear error."""
    from rrambnn.gen.network import BinaryNetwork
    from rrambnn.gen.sliced import SlicedNetwork, is_sliced_file
    from rrambnn.weights import shipped
    path = path if path else shipped()
    if is_sliced_file(path):
        net = SlicedNetwork.load(path)
        if not multi_bit:
            raise RrambnnError(f"{path}: a network with {net.wbits}-bit weights and {net.abits}-bit activations; "
                               f"this command takes binary networks (verilog, eval and sim take multi-bit ones)")
        return net
    return BinaryNetwork.load(path)


def check_mnist_inputs(net):
    if getattr(net, "preprocess", True) is None:
        raise RrambnnError("this network has raw-bit inputs (crop 0); it cannot be run on MNIST")


def net_inputs(net, images):
    """Test images as the network's inputs (binarised crop, or m-bit codes of a multi-bit network)."""
    check_mnist_inputs(net)
    return net.inputs(images) if hasattr(net, "abits") else net.preprocess(images)


def _emit(args, result: dict, lines: list[str]):
    if getattr(args, "json", False):
        print(json.dumps(result, indent=2))
    else:
        print("\n".join(lines))


# -- train -----------------------------------------------------------------------

def cmd_train(args):
    from rrambnn.gen.mnist import load_split
    from rrambnn.gen.train import TrainConfig, train

    cfg = TrainConfig(arch=args.arch, crop=args.crop, epochs=args.epochs, batch=args.batch,
                      lr=args.lr, shift=args.shift, seed=args.seed, output_mode=args.output, ema=args.ema,
                      wbits=args.wbits, abits=args.abits, hidden_norm=args.norm)
    cfg.validate()
    out = Path(args.out)
    if out.suffix != ".npz":
        raise RrambnnError(f"--out must name a .npz file, not {str(out)!r}")
    tr = load_split("train", args.data)
    te = load_split("test", args.data)
    net, _, history = train(cfg, tr.images, tr.labels, progress=not args.quiet)
    acc = net.accuracy(net_inputs(net, te.images), te.labels)
    net.meta["accuracy"] = acc
    net.meta["history"] = history
    net.save(out)
    _emit(args, {"out": str(out), "accuracy": acc, "train_seconds": net.meta["train_seconds"]}, [
        f"wrote {out}",
        f"test accuracy (hardware-exact): priority {acc['priority']:.4f}  argmax {acc['argmax']:.4f}",
        f"training took {net.meta['train_seconds']} s",
    ])


# -- eval ------------------------------------------------------------------------

def cmd_eval(args):
    from rrambnn.gen.mnist import load_split

    net = load_net(args.weights, multi_bit=True)
    check_mnist_inputs(net)
    te = load_split("test", args.data)
    x = net_inputs(net, te.images)
    acc = net.accuracy(x, te.labels)
    crop = int(round(x.shape[1] ** 0.5))
    bits = f"  {net.wbits}-bit weights, {net.abits}-bit activations" if hasattr(net, "abits") else ""
    res = {"weights": str(args.weights or "shipped"), "arch": "-".join(map(str, net.arch)),
           "images": len(te.labels), "accuracy": acc, "default_output": net.output_mode}
    _emit(args, res, [
        f"network {res['arch']}  crop {crop}x{crop}{bits}  on {len(te.labels)} test images",
        f"  priority encoder: {acc['priority'] * 100:.2f}%",
        f"  argmax:           {acc['argmax'] * 100:.2f}%",
    ])


# -- bench -----------------------------------------------------------------------

def cmd_bench(args):
    from rrambnn.gen import bench
    from rrambnn.gen.mnist import load_split

    net = load_net(args.weights)
    te = load_split("test", args.data)
    x = net.preprocess(te.images)
    reps = max(1, args.images // len(x))
    import numpy as np
    xs = np.concatenate([x] * reps)
    res = {"golden": bench.golden_inference(net, xs)}
    lines = [f"machine: {res['golden']['machine']}",
             f"golden inference ({len(xs)} images): {res['golden']['golden_images_per_s']:,} images/s "
             f"(with full trace {res['golden']['golden_traced_images_per_s']:,}); float matmul net "
             f"{res['golden']['float_matmul_images_per_s']:,} images/s; ratio {res['golden']['golden_over_float']}"]
    if args.hardware:
        from rrambnn.sim import bench as sim_bench
        res["hardware"] = sim_bench.run(net, te, images=args.sim_images)
        lines += sim_bench.describe(res["hardware"])
    if args.online:
        if args.online_epochs < 1:
            raise RrambnnError(f"--online-epochs must be a positive integer, not {args.online_epochs}")
        from rrambnn.gen.learning import binary_data
        res["online"] = o = bench.online_training(binary_data(args.data), epochs=args.online_epochs,
                                                  progress=not args.json)
        lines.append(f"online training, golden n-bit trainer: {o['network']} {o['bits']}-bit, {o['epochs']} epochs x "
                     f"{o['samples'] // o['epochs']:,} samples with faults and endurance in {o['seconds']} s "
                     f"({o['samples_per_s']:,} samples/s; peak {o['peak_argmax'] * 100:.2f}% argmax, "
                     f"{o['switches']:.3g} switches); with pulse failures "
                     f"{o['pulse_failure_path']['samples_per_s']:,} samples/s")
    if args.fpga:
        from rrambnn.fpga import bench as fpga_bench
        res["fpga"] = fpga_bench.run(net, te, boards=args.boards.split(","), images=args.sim_images,
                                     log=None if args.json else print)
        lines += fpga_bench.describe(res["fpga"])
    if args.out:
        from rrambnn.fileio import atomic_write
        out, merged = Path(args.out), {}
        if out.is_file():  # sections of an earlier run that this one did not repeat are kept
            try:
                merged = json.loads(out.read_text())
            except (ValueError, OSError):
                merged = {}
        merged = {**(merged if isinstance(merged, dict) else {}), **res}
        atomic_write(out, lambda f: f.write((json.dumps(merged, indent=2) + "\n").encode()))
        lines.append(f"wrote {args.out}")
    _emit(args, res, lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rrambnn", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    from rrambnn.gen.train import TrainConfig
    d = TrainConfig()
    t = sub.add_parser("train", help="train a network (binary, or multi-bit with --wbits/--abits) and write a "
                                     "weights file")
    t.add_argument("--arch", default="400-128-128-10")
    t.add_argument("--out", required=True, help="output .npz")
    t.add_argument("--crop", type=int, default=d.crop)
    t.add_argument("--epochs", type=int, default=d.epochs)
    t.add_argument("--batch", type=int, default=d.batch)
    t.add_argument("--lr", type=float, default=d.lr)
    t.add_argument("--shift", type=int, default=d.shift, help="augmentation: random translation, pixels")
    t.add_argument("--ema", type=float, default=d.ema, help="parameter moving-average decay (0: off)")
    t.add_argument("--seed", type=int, default=d.seed)
    t.add_argument("--output", default="priority", help="default output stage: priority|argmax")
    t.add_argument("--wbits", type=int, default=1, help="weight bits, stored as bit slices in binary cells (1-8)")
    t.add_argument("--abits", type=int, default=1, help="activation and pixel bits (1-8; > 1: bit-serial layers)")
    t.add_argument("--norm", choices=("bn", "shared"), default="bn",
                   help="hidden normalisation: batch norm, or one shared scale per layer")
    t.add_argument("--quiet", action="store_true")
    t.add_argument("--json", action="store_true")
    _data_arg(t)
    t.set_defaults(fn=cmd_train)

    e = sub.add_parser("eval", help="accuracy of the hardware-exact network on the MNIST test set")
    _weights_arg(e)
    _data_arg(e)
    e.add_argument("--json", action="store_true")
    e.set_defaults(fn=cmd_eval)

    b = sub.add_parser("bench", help="rerunnable benchmarks (golden model; --hardware adds Verilator)")
    _weights_arg(b)
    _data_arg(b)
    b.add_argument("--images", type=int, default=100000, help="golden benchmark batch size")
    b.add_argument("--hardware", action="store_true", help="also Verilator build time and cocotb throughput")
    b.add_argument("--fpga", action="store_true", help="also board builds (minutes to an hour) and the boards' "
                                                       "folds on Verilator")
    b.add_argument("--boards", default="icebreaker,ulx3s-85f", help="--fpga: boards, comma-separated")
    b.add_argument("--online", action="store_true", help="also the n-bit golden trainer: 400-200-10, 8 bits, 50 "
                                                         "epochs of 60,000 samples with the device model (minutes)")
    b.add_argument("--online-epochs", type=int, default=50, help="--online: epochs (default 50)")
    b.add_argument("--sim-images", type=int, default=10000)
    b.add_argument("--out", help="also write the results as JSON here (sections of an earlier run in the file "
                                 "that this run does not repeat are kept)")
    b.add_argument("--json", action="store_true")
    b.set_defaults(fn=cmd_bench)

    from rrambnn.cli_hw import add_hw_commands
    add_hw_commands(sub)
    from rrambnn.cli_fpga import add_fpga_commands
    add_fpga_commands(sub)
    from rrambnn.cli_explore import add_explore_command
    add_explore_command(sub)
    return p


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    # designs built only to read their geometry, or whose Verilog came from the cache, are never
    # elaborated; Amaranth would warn about each of them (the test suite filters the same warning)
    from amaranth.hdl import UnusedElaboratable
    warnings.filterwarnings("ignore", category=UnusedElaboratable)
    try:
        args.fn(args)
    except RrambnnError as e:
        print(f"rrambnn {args.cmd}: error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"rrambnn {args.cmd}: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
