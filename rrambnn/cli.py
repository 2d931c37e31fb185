"""rrambnn: a hardware generator for binary neural network processors whose synapses are RRAM
crossbar cells, checked bit for bit against a NumPy golden model. `rrambnn COMMAND --help`
gives a command's options and their defaults."""

from __future__ import annotations

import argparse
import sys
import warnings

from rrambnn import __version__
from rrambnn.cli_args import (MAX_EPOCHS, MNIST_TEST, MNIST_TRAIN, Parser, data_arg, emit, float_arg, int_arg,
                              json_arg, ranged_int, seed_arg, weights_arg)
from rrambnn.cli_cost import add_cost_command
from rrambnn.cli_explore import add_explore_command
from rrambnn.cli_fpga import add_fpga_commands
from rrambnn.cli_hw import add_hw_commands
from rrambnn.cli_onnx import add_onnx_commands
from rrambnn.errors import RrambnnError


# -- train -----------------------------------------------------------------------

def cmd_train(args):
    from rrambnn.gen.spec import looks_like_layer_spec
    if looks_like_layer_spec(args.arch):  # convolutions (or a name): trained through the crossbar model
        return cmd_train_cnn(args)
    from rrambnn.gen.train import train_and_save
    from rrambnn.gen.train import TrainConfig

    given = [f for f in ("cobits", "gbits", "disturbance", "draws", "momentum", "samples", "optimizer")
             if getattr(args, f) is not None]
    if given:
        flag = "disturbance-draws" if given[0] == "draws" else given[0]
        raise RrambnnError(f"--{flag} trains through the crossbar model: it needs a layer spec with a convolution "
                           f"(e.g. --arch lenet5), not the fully connected {args.arch}")
    if args.out is None:
        raise RrambnnError("the following arguments are required: --out (a fully connected network is trained to "
                           "be written; only a CNN may be trained for its accuracy alone)")
    if args.device_noise is not None:  # the profile checked before the data is read
        from rrambnn.gen.analog import load_profile
        load_profile(args.device_noise)
    d = TrainConfig()
    pick = lambda v, default: default if v is None else v  # noqa: E731
    cfg = TrainConfig(arch=args.arch, crop=pick(args.crop, d.crop), epochs=pick(args.epochs, d.epochs),
                      batch=args.batch, lr=pick(args.lr, d.lr), shift=args.shift, seed=args.seed,
                      output_mode=args.output, ema=pick(args.ema, d.ema), wbits=pick(args.wbits, 1),
                      abits=pick(args.abits, 1), hidden_norm=pick(args.norm, "bn"),
                      device_noise=args.device_noise or "")
    net = train_and_save(cfg, args.out, args.data, progress=not args.quiet)
    acc = net.meta["accuracy"]
    emit(args, {"out": str(args.out), "accuracy": acc, "train_seconds": net.meta["train_seconds"]}, [
        f"wrote {args.out}",
        f"test accuracy (hardware-exact): priority {acc['priority']:.4f}  argmax {acc['argmax']:.4f}",
        f"training took {net.meta['train_seconds']} s",
    ])


def cmd_train_cnn(args):
    from rrambnn.gen.cnn_train import CnnTrainConfig
    from rrambnn.gen.cnn_train import train_cnn_and_save

    d = CnnTrainConfig()
    pick = lambda v, default: default if v is None else v  # noqa: E731
    given = [f for f in ("crop", "ema", "norm", "device_noise") if getattr(args, f) is not None]
    if given:
        raise RrambnnError(f"--{given[0].replace('_', '-')} is an option of fully connected networks; a layer spec "
                           f"takes its input "
                           f"image from its i<H> token and trains with batch norm")
    cfg = CnnTrainConfig(spec=args.arch, abits=pick(args.abits, d.abits), cobits=pick(args.cobits, d.cobits),
                         wbits=pick(args.wbits, d.wbits), gbits=pick(args.gbits, d.gbits),
                         disturbance=pick(args.disturbance, d.disturbance), draws=pick(args.draws, d.draws),
                         epochs=pick(args.epochs, d.epochs),
                         batch=args.batch, lr=args.lr, momentum=pick(args.momentum, d.momentum),
                         optimizer=pick(args.optimizer, d.optimizer),
                         shift=args.shift, seed=args.seed, output_mode=args.output,
                         samples=pick(args.samples, d.samples))
    res = train_cnn_and_save(cfg, args.out, args.data, progress=not args.quiet,
                             log=None if (args.quiet or args.json) else print)
    lines = [f"{res['spec']}  A/CO/W/G {res['bits']}  disturbance {res['disturbance']}  {cfg.optimizer}  "
             f"{res['epochs']} epoch(s) in {res['train_seconds']} s"]
    if "accuracy" in res:
        acc = res["accuracy"]
        lines.append(f"test accuracy (hardware-exact): priority {acc['priority'] * 100:.2f}% ({acc['rejects']} "
                     f"rejects, counted wrong)  argmax {acc['argmax'] * 100:.2f}%")
        if "accuracy_disturbed" in res:
            ad = res["accuracy_disturbed"]
            lines.append(f"  with reads disturbed by U[-{cfg.disturbance}, +{cfg.disturbance}]: priority "
                         f"{ad['priority'] * 100:.2f}%  argmax {ad['argmax'] * 100:.2f}%")
    lines.append(f"float model (argmax): {res['float_accuracy'] * 100:.2f}%"
                 + ("" if "accuracy" in res else "  (no integer chip at these bit widths)"))
    if args.out:
        lines.append(f"wrote {args.out}")
    emit(args, {"out": args.out, **{k: v for k, v in res.items() if k != "history"}}, lines)


# -- eval ------------------------------------------------------------------------

def cmd_eval(args):
    from rrambnn.gen.netfile import evaluate, load_network

    from rrambnn.gen.cnn import check_disturbance, check_seed
    check_disturbance(args.disturbance)
    check_seed(args.seed)
    for flag, value in (("--read-time", args.read_time), ("--chips", args.chips), ("--calibration", args.calibration)):
        if args.device is None and value is not None:
            raise RrambnnError(f"{flag} goes with --device (the analog reads of a device profile's chips)")
    net = load_network(args.weights, multi_bit=True, cnn=True)
    if args.device is not None:
        return _eval_device(args, net)
    if args.disturbance and not hasattr(net, "spec"):
        raise RrambnnError("--disturbance evaluates networks of layer specs (CNNs) for now")
    res = {"weights": str(args.weights or "shipped"), **evaluate(net, args.data)}
    acc = res["accuracy"]
    bits = (f"  {'ternary' if res.get('weight_code') == 'ternary' else str(res['weight_bits']) + '-bit'} weights, "
            f"{res['activation_bits']}-bit activations" if "weight_bits" in res else "")
    where = f"crop {res['crop']}x{res['crop']}" if "crop" in res else f"converter {res['converter_bits']} bits"
    more = []
    if args.disturbance:
        from rrambnn.gen.netfile import network_inputs
        from rrambnn.gen.mnist import load_split
        te = load_split("test", args.data)
        ad = net.accuracy(network_inputs(net, te.images), te.labels, disturbance=args.disturbance, seed=args.seed)
        res["accuracy_disturbed"] = {**ad, "disturbance": args.disturbance, "seed": args.seed}
        more = [f"  reads disturbed by U[-{args.disturbance}, +{args.disturbance}] (seed {args.seed}): priority "
                f"{ad['priority'] * 100:.2f}%  argmax {ad['argmax'] * 100:.2f}%"]
    emit(args, res, [
        f"network {res['arch']}  {where}{bits}  on {res['images']} test images",
        f"  priority encoder: {acc['priority'] * 100:.2f}%  ({acc['rejects']} rejects: no output fires, "
        f"counted wrong)",
        f"  argmax:           {acc['argmax'] * 100:.2f}%  (always answers)",
    ] + more)


def _eval_device(args, net):
    from rrambnn.gen import analog
    from rrambnn.studies import variation
    if args.disturbance:
        raise RrambnnError("--disturbance and --device are two models of the reads; give one")
    variation.check_analog(net)
    profile = analog.load_profile(args.device)
    if args.read_time is not None:
        profile = profile.scaled(read_time_s=args.read_time)
    res = variation.device_eval(net, profile, chips=5 if args.chips is None else args.chips, seed=args.seed,
                                calibration=2000 if args.calibration is None else args.calibration,
                                data_dir=args.data, progress=not args.json)
    res = {"weights": str(args.weights or "shipped"), **res}
    emit(args, res, variation.eval_lines(res))


# -- bench -----------------------------------------------------------------------

def cmd_bench(args):
    from rrambnn.fileio import check_writable
    from rrambnn.gen.netfile import load_network
    from rrambnn.studies import bench

    if args.boards is not None and not args.fpga:
        raise RrambnnError("--boards goes with --fpga (the boards whose bitstreams are built)")
    if args.out is not None:
        check_writable(args.out)
    res = bench.run(load_network(args.weights), args.data, images=args.images, hardware_=args.hardware,
                    online=args.online, online_epochs=args.online_epochs, fpga=args.fpga,
                    board_names=("icebreaker,ulx3s-85f" if args.boards is None else args.boards).split(","),
                    sim_images=args.sim_images, on_chip=args.on_chip,
                    cnn=args.cnn, onnx=args.onnx, fuzz=args.fuzz, analog=args.analog,
                    first_run_=args.first_run,
                    progress=not args.json,
                    log=None if args.json else print)
    lines = bench.describe(res)
    if args.out:
        bench.write_merged(args.out, res)
        lines.append(f"wrote {args.out}")
    emit(args, res, lines)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="rrambnn", description=__doc__)
    p.add_argument("--version", action="version", version=f"rrambnn {__version__}")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND", parser_class=Parser)

    from rrambnn.gen.cnn_train import CnnTrainConfig
    from rrambnn.gen.train import TrainConfig
    d, c = TrainConfig(), CnnTrainConfig()
    t = sub.add_parser("train", help="train a network (binary, multi-bit, or a CNN through the crossbar model) "
                                     "and write a weights file")
    t.add_argument("--arch", default="400-128-128-10",
                   help="layer spec: dense sizes inputs first (400-128-128-10, crop*crop inputs), or with "
                        "convolutions (i28-c5x6p2-p2-c5x16-p2-d120-d84-d10, or the name lenet5): "
                        "c<k>x<channels>[s<stride>][p<pad>], p<pool>, d<neurons>")
    t.add_argument("--out", help="output .npz (required for fully connected networks)")
    t.add_argument("--crop", type=int_arg, help=f"centre crop of the 28x28 images, pixels per side (default: {d.crop}; "
                                             f"fully connected networks)")
    t.add_argument("--epochs", type=ranged_int(1, MAX_EPOCHS), help=f"training epochs (default: {d.epochs}; CNNs {c.epochs})")
    t.add_argument("--batch", type=ranged_int(1, MNIST_TRAIN), default=d.batch, help="minibatch size")
    t.add_argument("--lr", type=float_arg, help=f"learning rate (default: Adam {d.lr}; CNNs: SGD 0.1, Adam 0.01)")
    t.add_argument("--optimizer", choices=("sgd", "adam"), help="CNNs: SGD with momentum (the paper's) or Adam "
                                                                  "(default sgd)")
    t.add_argument("--shift", type=int_arg, default=d.shift, help="augmentation: random translation, pixels")
    t.add_argument("--ema", type=float_arg, help=f"parameter moving-average decay, 0: off (default: {d.ema}; fully "
                                             f"connected networks)")
    t.add_argument("--seed", type=seed_arg, default=d.seed, help="initial weights, batches, augmentation")
    t.add_argument("--output", default="priority", choices=("priority", "argmax"),
                   help="the output stage the weights file names for its chip: "
                                                             "priority|argmax")
    t.add_argument("--wbits", type=int_arg, help=f"W: weight bits, stored as bit slices in binary cells (1-8; CNNs "
                                              f"1-16 or 32 = float; default: 1, CNNs {c.wbits})")
    t.add_argument("--abits", type=int_arg, help=f"A: activation and pixel bits (1-8, > 1: bit-serial layers; CNNs 1-16 "
                                              f"or 32; default: 1, CNNs {c.abits})")
    t.add_argument("--cobits", type=int_arg, help=f"CNNs, CO: crossbar-output converter bits (1-16 or 32; default "
                                               f"{c.cobits})")
    t.add_argument("--gbits", type=int_arg, help=f"CNNs, G: back-propagated error bits (1-16 or 32; default {c.gbits})")
    t.add_argument("--disturbance", type=float_arg, help="CNNs: every weight read in training as w*(1+u), u ~ U[-d, d] "
                                                      "(default: the paper's 0.05; 0: ideal reads)")
    t.add_argument("--disturbance-draws", dest="draws", choices=("read", "batch"),
                   help="CNNs: when training draws the disturbance: afresh for every read (each sample, window, "
                        "driven row and column; default) or once per weight and minibatch (3x faster for LeNet-5); "
                        "evaluation always draws per read")
    t.add_argument("--momentum", type=float_arg, help=f"CNNs: SGD momentum (default {c.momentum})")
    t.add_argument("--samples", type=ranged_int(0, MNIST_TRAIN), help="CNNs: training samples per epoch (default 0: all 60,000)")
    t.add_argument("--device-noise", metavar="FILE.toml|NAME",
                   help="binary networks: variation-aware training, every read in training with a device profile's "
                        "variation, sense offsets and read noise drawn afresh (see eval --device)")
    t.add_argument("--norm", choices=("bn", "shared"),
                   help="hidden normalisation: batch norm, or one shared scale per layer (default: bn; fully connected "
                        "networks)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    json_arg(t)
    data_arg(t)
    t.set_defaults(fn=cmd_train)

    e = sub.add_parser("eval", help="accuracy of the hardware-exact network on the MNIST test set")
    weights_arg(e)
    e.add_argument("--disturbance", type=float_arg, default=0.0,
                   help="CNNs: also the accuracy with every weight read as w*(1+u), u ~ U[-d, d]")
    e.add_argument("--seed", type=seed_arg, default=0, help="--disturbance: the draws' seed; --device: the first chip's")
    e.add_argument("--device", metavar="FILE.toml|NAME",
                   help="analog reads of a device profile (ideal, mild, realistic, harsh, aihwkit-pcm, or a TOML "
                        "file) for binary, multi-bit and CNN networks: accuracy of --chips chips before and after "
                        "calibration")
    e.add_argument("--chips", type=ranged_int(1, 10_000), default=None,
                   help="--device: chips drawn (seeds --seed, --seed + 1, ...; default 5)")
    e.add_argument("--calibration", type=ranged_int(0, MNIST_TRAIN), default=None,
                   help="--device: training images read through each chip to refit its thresholds (0: none; default 2000)")
    e.add_argument("--read-time", type=float_arg, help="--device: seconds after programming (drift; default: the "
                                                   "profile's)")
    data_arg(e)
    json_arg(e)
    e.set_defaults(fn=cmd_eval)

    b = sub.add_parser("bench", help="rerunnable benchmarks (golden model; --hardware adds Verilator)")
    weights_arg(b)
    data_arg(b)
    b.add_argument("--images", type=ranged_int(1, 10_000_000), default=100000, help="golden benchmark batch size")
    b.add_argument("--hardware", action="store_true", help="also Verilator build time and cocotb throughput")
    b.add_argument("--first-run", action="store_true",
                   help="also the README's first command from scratch: a fresh venv, pip install -e of this "
                        "checkout without pip's cache, rrambnn run with an empty build cache; phases timed "
                        "(about a minute)")
    b.add_argument("--fpga", action="store_true", help="also board builds (minutes to an hour) and the boards' "
                                                       "folds on Verilator")
    b.add_argument("--boards", default=None, help="--fpga: boards, comma-separated (default icebreaker,ulx3s-85f)")
    b.add_argument("--online", action="store_true", help="also the n-bit golden trainer: 400-200-10, 8 bits, 50 "
                                                         "blank epochs of 60,000 samples with the device model, "
                                                         "without and with pulse failures, and the pretrained start "
                                                         "both ways (about 8 minutes)")
    b.add_argument("--online-epochs", type=int_arg, default=50, help="--online: epochs (default 50)")
    b.add_argument("--cnn", action="store_true", help="also LeNet-5 training epochs at 4/4/4/4 through the "
                                                      "crossbar model: ideal reads, the disturbance per minibatch "
                                                      "and per read (about 3 minutes)")
    b.add_argument("--onnx", action="store_true", help="also QONNX export and import of a 784-1024-1024-1024-10 "
                                                       "network (needs the [onnx] extra)")
    b.add_argument("--analog", type=ranged_int(0, 10_000), default=0, metavar="CHIPS",
                   help="also the golden analog Monte Carlo: CHIPS chips of the realistic profile on the test set, "
                        "then calibrated")
    b.add_argument("--fuzz", type=ranged_int(0, 10_000_000), default=0, metavar="N",
                   help="also N random single-bit flips of each shipped weights file through the loaders "
                        "(each a network or one error line)")
    b.add_argument("--sim-images", type=ranged_int(1, MNIST_TEST), default=10000, help="--hardware, --fpga: test images simulated")
    b.add_argument("--on-chip", type=ranged_int(0, MNIST_TRAIN), default=0, metavar="N",
                   help="also the self-training chip (400-200-10) on Verilator: N samples against the golden trainer")
    b.add_argument("--out", help="also write the results as JSON here (sections of an earlier run in the file "
                                 "that this run does not repeat are kept)")
    json_arg(b)
    b.set_defaults(fn=cmd_bench)

    add_hw_commands(sub)
    add_fpga_commands(sub)
    add_explore_command(sub)
    add_cost_command(sub)
    add_onnx_commands(sub)
    return p


def main(argv=None):
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # named by the command they were given to
        print(f"rrambnn{' ' + args.cmd if args.cmd else ''}: error: unrecognized arguments: {' '.join(extra)}",
              file=sys.stderr)
        sys.exit(2)
    if args.cmd is None:  # `rrambnn` alone: what it can do
        parser.print_help()
        return
    # designs built only to read their geometry, or whose Verilog came from the cache, are never
    # elaborated; Amaranth would warn about each of them (the test suite filters the same warning)
    from amaranth.hdl import UnusedElaboratable
    warnings.filterwarnings("ignore", category=UnusedElaboratable)
    try:
        with warnings.catch_warnings(record=True) as caught:  # held back: a failed run prints one line
            args.fn(args)
        for w in caught:  # a run that succeeds shows them, at its end
            warnings.showwarning(w.message, w.category, w.filename, w.lineno, w.file, w.line)
    except RrambnnError as e:
        _close_progress_bars()
        print(f"rrambnn {args.cmd}: error: {' '.join(str(e).split())}", file=sys.stderr)  # one line, always
        sys.exit(2)
    except KeyboardInterrupt:
        _close_progress_bars()
        print(f"rrambnn {args.cmd}: interrupted", file=sys.stderr)
        sys.exit(130)


def _close_progress_bars():
    """Close the progress bars a failed run left open, so its error line starts a line of its own
    (a bar ends with a carriage return, not a newline)."""
    tqdm = sys.modules.get("tqdm")
    if tqdm is not None:
        for bar in list(getattr(tqdm.tqdm, "_instances", ())):
            bar.close()


if __name__ == "__main__":
    main()
