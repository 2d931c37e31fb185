"""Online-training commands of the CLI: online, and the sweeps over weight bits and endurance."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rrambnn.errors import RrambnnError

ONLINE_ARCHS = {"400-200-10": "bnn-400-200-10.npz", "400-128-128-10": "bnn-400-128-128-10.npz"}


def _online_args(p: argparse.ArgumentParser, bits=True, shared=True):
    """Online-training options; ``shared=False`` leaves out those the `sweep` command already has
    (--weights, --data, --pulse-fail, --retries, --json)."""
    from rrambnn.gen.online import OnlineConfig
    d = OnlineConfig()
    p.add_argument("--arch", default="400-200-10",
                   help=f"network to train: {' or '.join(ONLINE_ARCHS)} (shipped weights; --weights overrides)")
    if shared:
        p.add_argument("--weights", metavar="W",
                       help="weights .npz to start from (pretrained) or take the shape of (blank)")
    p.add_argument("--start", default="pretrained", help="pretrained (signs from the weights) or blank (random signs)")
    if bits:
        p.add_argument("--bits", type=int, default=d.bits, help="weight bits n (sign + n-1 magnitude bits), 2..12")
    p.add_argument("--err-bits", type=int, default=d.err_bits, help="error precision in bits (2 = ternary)")
    p.add_argument("--batch", type=int, default=d.batch,
                   help="1: a rank-1 command per layer and sample; >1: summed element updates per batch")
    p.add_argument("--margin", type=int, default=d.margin, help="hinge margin of the output error")
    p.add_argument("--window", type=int, default=d.window, help="straight-through window of the hidden error")
    p.add_argument("--init-magnitude", type=int, default=None,
                   help="starting magnitude of every weight (default: half range pretrained, M//8 blank)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--samples", type=int, default=10000, help="training images per epoch (0: all 60,000)")
    p.add_argument("--yield", dest="yield_", type=float, default=1.0, help="bit yield of every plane")
    if bits:
        p.add_argument("--endurance", type=int, default=0, help="switches a cell survives (0: unlimited)")
    p.add_argument("--seed", type=int, default=0, help="training order, blank signs, fault maps, pulse failures")
    if shared:
        p.add_argument("--pulse-fail", type=float, default=0.0, help="probability that one pulse fails")
        p.add_argument("--retries", type=int, default=d.retries)
        p.add_argument("--data", metavar="DIR",
                       help="MNIST directory (default: $RRAMBNN_MNIST, else ../shared/mnist of the checkout)")
        p.add_argument("--json", action="store_true")


def _network(args):
    from rrambnn.cli import load_net
    from rrambnn.weights import shipped
    if args.weights:
        return load_net(args.weights)
    if args.arch not in ONLINE_ARCHS:
        raise RrambnnError(f"--arch must be one of {', '.join(ONLINE_ARCHS)} (or give --weights), not {args.arch!r}")
    return load_net(shipped(ONLINE_ARCHS[args.arch]))


def _config(args, bits=None, endurance=None):
    from rrambnn.gen.device import DeviceParams
    from rrambnn.gen.online import OnlineConfig
    if args.start not in ("pretrained", "blank"):
        raise RrambnnError(f"--start must be pretrained or blank, not {args.start!r}")
    if args.epochs < 1:
        raise RrambnnError(f"--epochs must be a positive integer, not {args.epochs}")
    if args.samples < 0:
        raise RrambnnError(f"--samples must be 0 (all) or positive, not {args.samples}")
    device = DeviceParams(args.yield_, args.pulse_fail, args.endurance if endurance is None else endurance, args.seed)
    return OnlineConfig(bits=args.bits if bits is None else bits, err_bits=args.err_bits, batch=args.batch,
                        margin=args.margin, window=args.window, init_magnitude=args.init_magnitude,
                        retries=args.retries, device=device, seed=args.seed)


def _data(net, data_dir):
    import numpy as np

    from rrambnn.gen.mnist import load_split
    if net.preprocess is None:
        raise RrambnnError("this network has raw-bit inputs (crop 0); it cannot be trained on MNIST")
    tr, te = load_split("train", data_dir), load_split("test", data_dir)
    return (net.preprocess(tr.images), tr.labels.astype(np.int64), net.preprocess(te.images),
            te.labels.astype(np.int64))


def cmd_online(args):
    from rrambnn.gen import online, online_report

    net = _network(args)
    cfg = _config(args)
    if args.replay and args.trace_updates < 1:
        raise RrambnnError(f"--trace-updates must be a positive integer, not {args.trace_updates}")
    data = _data(net, args.data)
    record = args.trace_updates if (args.trace or args.replay) else 0
    run = online.run(net, cfg, data, blank=args.start == "blank", epochs=args.epochs, samples=args.samples or None,
                     record_updates=record, progress=not args.json)
    res = run["result"]
    if args.replay:
        res["replay"] = _replay(args, run, cfg, data[2][:args.replay_images])
    res["files"] = online_report.write_run(res, Path(args.out))
    if args.trace:
        online.save_trace(args.trace, run["trace"], res["arch"])
        res["files"]["trace"] = args.trace
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
    from rrambnn.gen.verilog import ChipConfig
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
        _config(args, bits=pt.get("bits"), endurance=pt.get("endurance"))
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
    o.add_argument("--trace", help="write the first commands (see --trace-updates) as an update trace .npz")
    o.add_argument("--trace-updates", type=int, default=5000, help="weight updates in the recorded trace")
    o.add_argument("--replay", action="store_true",
                   help="replay the trace on Verilator through the weight-update controller, bit for bit")
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
