"""Online-training commands of the CLI: online, and the sweeps over weight bits and endurance."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rrambnn.errors import RrambnnError

ONLINE_ARCHS = {"400-200-10": "bnn-400-200-10.npz", "400-128-128-10": "bnn-400-128-128-10.npz"}


FORWARDS = ("nbit", "sign")
PRETRAINED_LR_SHIFT = 5  # fine-tuning a trained network: a quarter of the blank start's learning rate


def _online_args(p: argparse.ArgumentParser, bits=True, shared=True):
    """Online-training options; ``shared=False`` leaves out those the `sweep` command already has
    (--weights, --data, --pulse-fail, --retries, --json)."""
    from rrambnn.gen.learning import NbitConfig
    from rrambnn.gen.online import OnlineConfig
    d, nb = OnlineConfig(), NbitConfig()
    p.add_argument("--forward", default="nbit",
                   help="nbit: the n-bit forward and backward pass of the measured macro (sigmoid MLP, n-bit "
                        "errors, stochastic rounding; default); sign: the binary chip's forward on the sign "
                        "cells with the ternary hinge rule")
    p.add_argument("--arch", default="400-200-10",
                   help=f"network to train: {' or '.join(ONLINE_ARCHS)} (nbit: 400-200-10 only; --weights overrides)")
    if shared:
        p.add_argument("--weights", metavar="W",
                       help="network to start from (pretrained; nbit: an n-bit online network .npz) or take the "
                            "shape of (blank)")
    p.add_argument("--start", default="pretrained",
                   help="pretrained (nbit: the shipped online-400-200-10.npz; sign: the signs of the shipped "
                        "binary network) or blank (random weights)")
    if bits:
        p.add_argument("--bits", type=int, default=d.bits, help="weight bits n (cells per weight), 2..12")
    p.add_argument("--act-bits", type=int, default=None, help="nbit: neuron bits m (default min(n, 8))")
    p.add_argument("--err-bits", type=int, default=None,
                   help="error precision in bits (default: nbit n; sign 2 = ternary)")
    p.add_argument("--lr-shift", type=int, default=None,
                   help=f"nbit: learning rate 2^-K (default {nb.lr_shift} from a blank start, {PRETRAINED_LR_SHIFT} "
                        f"fine-tuning a pretrained network)")
    p.add_argument("--decay", type=int, default=None, help=f"nbit: the learning rate halves every K epochs "
                                                           f"(0: constant; default {nb.decay})")
    p.add_argument("--no-restore", dest="restore", action="store_false",
                   help="nbit: leave a weight whose write failed as the cells hold it (default: restore its old code)")
    p.add_argument("--range-shift", type=int, default=None,
                   help="nbit: real weight range 2^-K (default 1 below 8 bits, else 0)")
    p.add_argument("--batch", type=int, default=None,
                   help=f"sign: 1 = a rank-1 command per layer and sample; >1 summed element updates "
                        f"(default {d.batch})")
    p.add_argument("--margin", type=int, default=None, help=f"sign: hinge margin of the output error "
                                                            f"(default {d.margin})")
    p.add_argument("--window", type=int, default=None, help=f"sign: straight-through window of the hidden error "
                                                            f"(default {d.window})")
    p.add_argument("--init-magnitude", type=int, default=None,
                   help="sign: starting magnitude of every weight (default: half range pretrained, M//8 blank)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--samples", type=int, default=10000, help="training images per epoch (0: all 60,000)")
    p.add_argument("--yield", dest="yield_", type=float, default=1.0, help="bit yield of every plane")
    if bits:
        p.add_argument("--endurance", type=int, default=0, help="switches a cell survives (0: unlimited)")
    p.add_argument("--seed", type=int, default=0,
                   help="training order, blank weights, stochastic rounding, fault maps, pulse failures")
    if shared:
        p.add_argument("--pulse-fail", type=float, default=0.0, help="probability that one pulse fails")
        p.add_argument("--retries", type=int, default=d.retries)
        p.add_argument("--data", metavar="DIR",
                       help="MNIST directory (default: $RRAMBNN_MNIST, else ../shared/mnist of the checkout)")
        p.add_argument("--json", action="store_true")


def _forward(args) -> str:
    if args.forward not in FORWARDS:
        raise RrambnnError(f"--forward must be nbit or sign, not {args.forward!r}")
    if args.forward == "nbit":
        for opt in ("batch", "margin", "window", "init_magnitude"):
            if getattr(args, opt) is not None:
                raise RrambnnError(f"--{opt.replace('_', '-')} belongs to --forward sign")
    elif any(v is not None for v in (args.act_bits, args.range_shift, args.lr_shift, args.decay)):
        raise RrambnnError("--act-bits, --range-shift, --lr-shift and --decay belong to --forward nbit")
    return args.forward


def _network(args):
    """The starting network: a binary network (sign), or for nbit a dict with the arch and,
    for a pretrained start, the codes of an n-bit online network file."""
    from rrambnn.cli import load_net
    from rrambnn.weights import ONLINE_NBIT, shipped
    if _forward(args) == "nbit":
        from rrambnn.gen import learning
        from rrambnn.gen.network import parse_arch
        if args.weights:
            args._start_net = learning.load_codes(args.weights)
            return args._start_net
        if args.arch not in ONLINE_ARCHS:
            raise RrambnnError(f"--arch must be one of {', '.join(ONLINE_ARCHS)} (or give --weights), not {args.arch!r}")
        if args.arch != "400-200-10":
            raise RrambnnError(f"the n-bit rule trains networks with one hidden layer (400-200-10), not {args.arch}; "
                               f"--forward sign trains {args.arch}")
        if args.start == "pretrained":
            args._start_net = learning.load_codes(shipped(ONLINE_NBIT))
            return args._start_net
        return {"arch": parse_arch(args.arch), "codes": None}
    if args.weights:
        return load_net(args.weights)
    if args.arch not in ONLINE_ARCHS:
        raise RrambnnError(f"--arch must be one of {', '.join(ONLINE_ARCHS)} (or give --weights), not {args.arch!r}")
    return load_net(shipped(ONLINE_ARCHS[args.arch]))


def _config(args, bits=None, endurance=None):
    from rrambnn.gen.device import DeviceParams
    from rrambnn.gen.learning import NbitConfig
    from rrambnn.gen.online import OnlineConfig
    if args.start not in ("pretrained", "blank"):
        raise RrambnnError(f"--start must be pretrained or blank, not {args.start!r}")
    if args.epochs < 1:
        raise RrambnnError(f"--epochs must be a positive integer, not {args.epochs}")
    if args.samples < 0:
        raise RrambnnError(f"--samples must be 0 (all) or positive, not {args.samples}")
    device = DeviceParams(args.yield_, args.pulse_fail, args.endurance if endurance is None else endurance, args.seed)
    bits = args.bits if bits is None else bits
    if _forward(args) == "nbit":
        lr = args.lr_shift if args.lr_shift is not None else (
            NbitConfig.lr_shift if args.start == "blank" else PRETRAINED_LR_SHIFT)
        act_bits, range_shift = args.act_bits, args.range_shift
        net = getattr(args, "_start_net", None)
        if isinstance(net, dict) and net.get("codes") is not None and args.start == "pretrained":
            for opt, mine, theirs in (("act-bits", act_bits, net["act_bits"]),
                                      ("range-shift", range_shift, net["range_shift"])):
                if mine is not None and theirs is not None and mine != theirs:
                    raise RrambnnError(f"--{opt} {mine} differs from the starting network's {theirs}")
            act_bits = net["act_bits"] if act_bits is None else act_bits
            range_shift = net["range_shift"] if range_shift is None else range_shift
        return NbitConfig(bits=bits, act_bits=act_bits, err_bits=args.err_bits, lr_shift=lr,
                          decay=NbitConfig.decay if args.decay is None else args.decay, range_shift=range_shift,
                          restore=args.restore, retries=args.retries, device=device,
                          seed=args.seed)
    d = OnlineConfig()
    pick = lambda v, default: default if v is None else v  # noqa: E731
    return OnlineConfig(bits=bits, err_bits=pick(args.err_bits, d.err_bits), batch=pick(args.batch, d.batch),
                        margin=pick(args.margin, d.margin), window=pick(args.window, d.window),
                        init_magnitude=args.init_magnitude, retries=args.retries, device=device, seed=args.seed)


def _data(net, data_dir):
    import numpy as np

    from rrambnn.gen.mnist import load_split
    if isinstance(net, dict):
        from rrambnn.gen.learning import binary_data
        return binary_data(data_dir, int(round(net["arch"][0] ** 0.5)))
    if net.preprocess is None:
        raise RrambnnError("this network has raw-bit inputs (crop 0); it cannot be trained on MNIST")
    tr, te = load_split("train", data_dir), load_split("test", data_dir)
    return (net.preprocess(tr.images), tr.labels.astype(np.int64), net.preprocess(te.images),
            te.labels.astype(np.int64))


def _check_start(net, cfg, args):
    if isinstance(net, dict) and net["codes"] is not None and args.start == "pretrained" and net["bits"] != cfg.bits:
        raise RrambnnError(f"the starting network has {net['bits']}-bit weights; --bits is {cfg.bits} "
                           f"(a blank start takes any)")


def run_online(net, cfg, data, args, *, record: int = 0, progress: bool = False) -> dict:
    """One run in either forward mode (what `online` and every sweep point do)."""
    from rrambnn.gen import learning, online
    samples = args.samples or None
    if isinstance(net, dict):
        _check_start(net, cfg, args)
        codes = None if args.start == "blank" else net["codes"]
        return learning.run(net["arch"], cfg, data, codes=codes, epochs=args.epochs, samples=samples,
                            record=record, progress=progress)
    r = online.run(net, cfg, data, blank=args.start == "blank", epochs=args.epochs, samples=samples,
                   record_updates=record, progress=progress)
    r["result"]["forward"] = "sign"
    return r


def cmd_online(args):
    from rrambnn.gen import learning, online, online_report

    net = _network(args)
    cfg = _config(args)
    _check_start(net, cfg, args)
    nbit = args.forward == "nbit"
    if args.trace_updates < 1:
        raise RrambnnError(f"--trace-updates must be a positive integer, not {args.trace_updates}")
    if args.trace_samples < 1:
        raise RrambnnError(f"--trace-samples must be a positive integer, not {args.trace_samples}")
    if args.replay_images < 1:
        raise RrambnnError(f"--replay-images must be a positive integer, not {args.replay_images}")
    if args.replay and nbit and (cfg.bits > 8 or cfg.m > 8):
        raise RrambnnError(f"the training chip holds at most 8-bit weights and neurons, not {cfg.bits}/{cfg.m}: "
                           f"--replay needs --bits 8 or less")
    for opt in ("trace", "save"):
        path = getattr(args, opt)
        if path is not None and (not path or Path(path).is_dir()):
            raise RrambnnError(f"--{opt} must name a file, not {path!r}")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise RrambnnError(f"--out must name a directory, not the file {args.out}")
    if args.save and not nbit:
        raise RrambnnError("--save belongs to --forward nbit")
    data = _data(net, args.data)
    record = (args.trace_samples if nbit else args.trace_updates) if (args.trace or args.replay) else 0
    run = run_online(net, cfg, data, args, record=record, progress=not args.json)
    res = run["result"]
    res["files"] = online_report.write_run(res, Path(args.out))  # written before a replay, which can fail
    if args.save:
        learning.save_codes(args.save, res["arch"], cfg, run["chip"].codes(),
                            {"trained_by": "rrambnn online", "result": {k: res[k] for k in ("rule", "start", "epochs",
                             "samples_per_epoch", "device", "seed", "final", "best", "best_epoch")}})
        res["files"]["network"] = args.save
    if args.trace:
        if nbit:
            learning.save_trace(args.trace, run["chip"], run["trace"], run["initial_codes"])
        else:
            online.save_trace(args.trace, run["trace"], res["arch"])
        res["files"]["trace"] = args.trace
    if args.replay:
        res["replay"] = (_replay_nbit if nbit else _replay)(args, run, cfg, data[2][:args.replay_images])
        res["files"].update(online_report.write_run(res, Path(args.out)))
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print("\n".join(online_report.describe_run(res)))
        print("wrote " + ", ".join(res["files"].values()))
    if args.replay and not res["replay"]["passed"]:
        raise RrambnnError(f"the hardware replay disagreed with the golden model: {res['replay'].get('failures')}; "
                           f"log {res['replay'].get('log')}")


def _replay(args, run, cfg, x_te) -> dict:
    """The recorded commands through the weight-update controller on Verilator, from the chip's
    initial state, against the golden online chip; then ``x_te`` classified."""
    from rrambnn.hw.verilog import ChipConfig
    from rrambnn.sim.chip_sim import replay

    chip, start = run["chip"], run["start_net"]
    hw_cfg = ChipConfig.checked("128x128", False, start.output_mode, False, retries=cfg.retries,
                                device=cfg.device, weight_bits=cfg.bits, err_bits=cfg.err_bits)
    faults = [a.faults for a in chip.arrays]
    log = None if args.json else (lambda s: print(f"[replay] {s}", flush=True))
    r = replay(start, hw_cfg, chip.initial, faults, run["trace"], x_te, seed=args.seed + 1, log=log)
    keep = ("passed", "commands", "cycles", "replay_wall_s", "readback_wall_s", "hardware", "golden", "failed_cells",
            "failed_match", "cells_read", "cell_mismatches", "count_mismatches", "codes_match", "switches_total",
            "worn_out_cells",
            "images", "class_mismatches", "build_s", "build_cached", "failures", "log")
    return {k: r.get(k) for k in keep}


def _replay_nbit(args, run, cfg, x_te) -> dict:
    """The recorded samples on the training chip on Verilator (forward passes, updates, then every
    cell and counter, and ``x_te`` classified), against the golden n-bit chip."""
    from rrambnn.gen import learning
    from rrambnn.sim.chip_sim import replay_training

    trace = Path(args.trace) if args.trace else Path(args.out) / "trace.npz"
    learning.save_trace(trace, run["chip"], run["trace"], run["initial_codes"])
    log = None if args.json else (lambda s: print(f"[replay] {s}", flush=True))
    r = replay_training(trace, x_te, seed=args.seed + 1, log=log)
    keep = ("passed", "samples", "commands", "cycles", "cycles_per_sample", "replay_wall_s", "readback_wall_s",
            "forward_mismatches", "step_mismatches", "hardware", "golden", "failed_cells", "failed_match", "cells_read",
            "cell_mismatches", "count_mismatches", "codes_match", "switches_total", "worn_out_cells", "images",
            "class_mismatches", "build_s", "build_cached", "failures", "log")
    return {"trace": str(trace), **{k: r.get(k) for k in keep}}


def cmd_sweep_online(args):
    from rrambnn.gen import online_report, sweep

    net = _network(args)
    if args.what == "bits":
        values = [int(v) for v in sweep.parse_floats(args.values or "2,3,4,5,6,8,10,12", "--values", 2, 12)]
        points = [{"bits": b} for b in values]
    else:
        values = [int(v) for v in sweep.parse_floats(args.values or "0,100000,30000,10000,3000,1000,300",
                                                     "--values", 0, 2 ** 32 - 1)]
        points = [{"endurance": e} for e in values]
    for pt in points:  # validate every point before the long run
        cfg = _config(args, bits=pt.get("bits"), endurance=pt.get("endurance"))
        if isinstance(net, dict) and net["codes"] is not None and args.start == "pretrained" and net["bits"] != cfg.bits:
            raise RrambnnError(f"the pretrained network has {net['bits']}-bit weights: sweep {args.what} over "
                               f"{cfg.bits} bits needs --start blank")
    if args.jobs < 1:
        raise RrambnnError(f"--jobs must be a positive integer, not {args.jobs}")
    res = online_report.sweep(net, args, points, jobs=args.jobs, progress=not args.json)
    paths = online_report.write_sweep(res, Path(args.out), args.what)
    if args.json:
        print(json.dumps({**res, "files": paths}, indent=2))
    else:
        print(online_report.sweep_table(res))
        print("wrote " + ", ".join(paths.values()))


def add_online_commands(sub):
    o = sub.add_parser("online", help="online training on the chip model: n-bit weights in binary cells, "
                                      "quantised updates, device effects; optional Verilator replay")
    _online_args(o)
    o.add_argument("--out", default="out/online", help="directory for online.json, accuracy.png, switches.png")
    o.add_argument("--save", metavar="FILE", help="nbit: write the trained codes as an online network .npz "
                                                  "(a later --weights start)")
    o.add_argument("--trace", help="write the first commands (see --trace-updates) as an update trace .npz")
    o.add_argument("--trace-updates", type=int, default=5000, help="sign: weight updates in the recorded trace")
    o.add_argument("--trace-samples", type=int, default=1000, help="nbit: training samples in the recorded trace")
    o.add_argument("--replay", action="store_true",
                   help="replay the trace on Verilator, bit for bit (nbit: every sample's forward pass on the "
                        "n-bit chip, then its updates through the weight-update controller)")
    o.add_argument("--replay-images", type=int, default=200, help="test images classified after the replay")
    o.set_defaults(fn=cmd_online)


def add_sweep_args(sw):
    """The online sweeps' options on the `sweep` command (what = bits | endurance)."""
    sw.add_argument("--values", help="bits: weight bits to try (2,3,4,5,6,8,10,12); endurance: limits to try "
                                     "(0 = unlimited; 0,100000,30000,10000,3000,1000,300)")
    sw.add_argument("--jobs", type=int, default=2, help="points run in parallel (processes)")
    _online_args(sw, bits=False, shared=False)
    sw.add_argument("--bits", type=int, default=8, help="weight bits (endurance sweep)")
    sw.add_argument("--endurance", type=int, default=0, help="endurance limit (bits sweep)")
