"""Online-training commands of the CLI: online, and the sweeps over weight bits and endurance."""

from __future__ import annotations

import argparse

from rrambnn.cli_args import (MAX_EPOCHS, MNIST_TRAIN, data_arg, device_args, int_arg, json_arg, old_flag,
                              print_json, ranged_int)
from rrambnn.errors import RrambnnError

SEED_HELP = "training order, blank weights, stochastic rounding, fault maps, pulse failures"


def _online_args(p: argparse.ArgumentParser):
    """The options of one online-training run."""
    from rrambnn.gen.online_nbit import PRETRAINED_LR_SHIFT, NbitConfig, default_lr_shift
    from rrambnn.gen.online_sign import SignConfig
    from rrambnn.studies.online import ONLINE_ARCHS
    d, nb = SignConfig(), NbitConfig()
    p.add_argument("--forward", default="nbit",
                   help="nbit: the n-bit forward and backward pass of the measured macro (sigmoid MLP, n-bit "
                        "errors, stochastic rounding; default); sign: the binary chip's forward on the sign "
                        "cells with the ternary hinge rule")
    p.add_argument("--arch", default="400-200-10",
                   help=f"network to train: {' or '.join(ONLINE_ARCHS)} (nbit: 400-200-10 only; --weights overrides)")
    p.add_argument("--weights", metavar="W",
                   help="network to start from (pretrained; nbit: an n-bit online network .npz) or take the "
                        "shape of (blank)")
    p.add_argument("--start", default="pretrained",
                   help="pretrained (nbit: the shipped online-400-200-10.npz; sign: the signs of the shipped "
                        "binary network) or blank (random weights)")
    p.add_argument("--wbits", metavar="N", type=int_arg, default=d.wbits,
                   help=f"weight bits n (cells per weight), 2..12 (default {d.wbits}; the endurance sweep's)")
    old_flag(p, "--bits", "wbits", int_arg)
    p.add_argument("--abits", metavar="M", type=int_arg, default=None,
                   help="nbit: activation (neuron) bits m (default min(n, 8))")
    old_flag(p, "--act-bits", "abits", int_arg)
    p.add_argument("--err-bits", type=int_arg, default=None,
                   help="error precision in bits (default: nbit n; sign 2 = ternary)")
    p.add_argument("--lr-shift", type=int_arg, default=None,
                   help=f"nbit: learning rate 2^-K (default from a blank start {default_lr_shift(8)} at 8 bits and "
                        f"more, {default_lr_shift(7)} below; {PRETRAINED_LR_SHIFT} fine-tuning a pretrained network)")
    p.add_argument("--decay", type=int_arg, default=None, help=f"nbit: the learning rate halves every K epochs "
                                                           f"(0: constant; default {nb.decay})")
    p.add_argument("--no-restore", dest="restore", action="store_false",
                   help="nbit: leave a weight whose write failed as the cells hold it (default: restore its old code)")
    p.add_argument("--range-shift", type=int_arg, default=None,
                   help="nbit: real weight range 2^-K (default 1 below 8 bits, else 0)")
    p.add_argument("--batch", type=ranged_int(1, MNIST_TRAIN), default=None,
                   help=f"sign: 1 = a rank-1 command per layer and sample; >1 summed element updates "
                        f"(default {d.batch})")
    p.add_argument("--margin", type=int_arg, default=None, help=f"sign: hinge margin of the output error "
                                                            f"(default {d.margin})")
    p.add_argument("--window", type=int_arg, default=None, help=f"sign: straight-through window of the hidden error "
                                                            f"(default {d.window})")
    p.add_argument("--init-magnitude", type=int_arg, default=None,
                   help="sign: starting magnitude of every weight (default: half range pretrained, M//8 blank)")
    p.add_argument("--epochs", type=ranged_int(1, MAX_EPOCHS), default=3, help="epochs (default 3)")
    p.add_argument("--samples", type=ranged_int(0, MNIST_TRAIN), default=10000, help="training images per epoch (0: all 60,000; default "
                                                              "10,000)")
    device_args(p, seed_help=SEED_HELP)
    p.add_argument("--device", metavar="FILE.toml|NAME",
                   help="sign: every forward and transposed read goes through chip --seed of a device profile "
                        "(see eval --device; analog reads, golden model)")
    p.add_argument("--calibration", type=ranged_int(1, MNIST_TRAIN), default=None, metavar="N",
                   help="with --device: first fit the chip's thresholds on N training images read through it "
                        "(as eval --device calibrates), then train")
    data_arg(p)
    json_arg(p)


def _request(args):
    from rrambnn.studies.online import OnlineRequest
    return OnlineRequest.from_options(args)


def cmd_online(args):
    from rrambnn.studies import online_report
    from rrambnn.studies.online import describe_on_chip, on_chip, online

    if args.on_chip:
        if args.device is not None:
            raise RrambnnError("--on-chip runs the digital self-training chip; --device is a golden-model option here")
        for opt in ("save", "trace", "replay"):
            if getattr(args, opt):
                raise RrambnnError(f"--{opt} belongs to the golden run; --on-chip trains the self-training chip")
        log = None if args.json else (lambda s: print(f"[on-chip] {s}", flush=True))
        res = on_chip(_request(args), args.out, samples=args.on_chip_samples, images=args.on_chip_images, log=log,
                      progress=not args.json)
        if args.json:
            print_json(res)
        else:
            print("\n".join(describe_on_chip(res)))
            print("wrote " + ", ".join(res["files"].values()))
        if not res["passed"]:
            raise RrambnnError(f"the self-training chip disagreed with the golden trainer: {res['failures']}; "
                               f"log {res['log']}")
        return

    log = None if args.json else (lambda s: print(f"[replay] {s}", flush=True))
    res = online(_request(args), args.out, save=args.save, trace=args.trace, trace_samples=args.trace_samples,
                 trace_updates=args.trace_updates, replay=args.replay, replay_images=args.replay_images,
                 progress=not args.json, log=log)
    if args.json:
        print_json(res)
    else:
        print("\n".join(online_report.describe_run(res)))
        print("wrote " + ", ".join(res["files"].values()))
    if args.replay and not res["replay"]["passed"]:
        raise RrambnnError(f"the hardware replay disagreed with the golden model: {res['replay'].get('failures')}; "
                           f"log {res['replay'].get('log')}")


def cmd_sweep_online(args):
    from rrambnn.studies import online_report
    from rrambnn.studies.online import sweep

    res = sweep(_request(args), args.what, args.values, args.out, jobs=args.jobs, progress=not args.json)
    if args.json:
        print_json(res)
    else:
        print(online_report.sweep_table(res))
        print("wrote " + ", ".join(res["files"].values()))


def add_online_commands(sub):
    o = sub.add_parser("online", help="online training on the chip model: n-bit weights in binary cells, "
                                      "quantised updates, device effects; optional Verilator replay")
    _online_args(o)
    o.add_argument("--out", default="out/online", help="directory for online.json, accuracy.png, switches.png")
    o.add_argument("--save", metavar="FILE", help="nbit: write the trained codes as an online network .npz "
                                                  "(a later --weights start)")
    o.add_argument("--trace", help="write the first commands (see --trace-updates) as an update trace .npz")
    o.add_argument("--trace-updates", type=int_arg, default=5000, help="sign: weight updates in the recorded trace")
    o.add_argument("--trace-samples", type=int_arg, default=1000, help="nbit: training samples in the recorded trace")
    o.add_argument("--replay", action="store_true",
                   help="replay the trace on Verilator, bit for bit (nbit: every sample's forward pass on the "
                        "n-bit chip, then its updates through the weight-update controller)")
    o.add_argument("--replay-images", type=int_arg, default=200, help="test images classified after the replay")
    o.add_argument("--on-chip", action="store_true",
                   help="nbit: stream the run's first training samples into the self-training chip on Verilator "
                        "(it computes every step itself) and check it against the golden trainer")
    o.add_argument("--on-chip-samples", type=int_arg, default=200, help="samples for --on-chip (default 200)")
    o.add_argument("--on-chip-images", type=int_arg, default=200,
                   help="test images the chip classifies after --on-chip (default 200)")
    o.set_defaults(fn=cmd_online)


def add_sweep_args(sw, what: str):
    """The options of `sweep bits` and `sweep endurance`: a run's options and the points."""
    _online_args(sw)
    sw.add_argument("--values", help="weight bits to try (default 2,3,4,5,6,8,10,12)" if what == "bits" else
                    "endurance limits to try, 0 = unlimited (default 0,100000,30000,10000,3000,1000,300)")
    sw.add_argument("--jobs", type=int_arg, default=2, help="points run in parallel (processes)")
    sw.add_argument("--out", default="out/sweep", help="directory for the table, JSON and PNGs")
