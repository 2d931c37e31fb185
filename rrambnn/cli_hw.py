"""Hardware commands of the CLI: verilog, sim, run."""

from __future__ import annotations

import argparse
from pathlib import Path

from rrambnn.errors import RrambnnError


def _chip_args(p: argparse.ArgumentParser, debug=True):
    p.add_argument("--tile", default="128x128", help="crossbar tile size ROWSxCOLS (default 128x128)")
    p.add_argument("--pipeline", action="store_true", help="register every layer (latency layers+1)")
    p.add_argument("--output", choices=None, default=None,
                   help="output stage: priority|argmax (default: the weights file's)")
    if debug:
        p.add_argument("--debug", action="store_true",
                       help="add every layer's activations and the last column sums to the result payload")


def _config(args, net, debug=None):
    from rrambnn.gen.verilog import ChipConfig
    return ChipConfig.checked(args.tile, args.pipeline, args.output or net.output_mode,
                              args.debug if debug is None else debug)


def cmd_verilog(args):
    from rrambnn.cli import load_net
    from rrambnn.gen.verilog import write_verilog

    net = load_net(args.weights)
    cfg = _config(args, net)
    out = Path(args.out)
    chip = write_verilog(net, cfg, out)
    print(f"wrote {out}: {'-'.join(map(str, chip.arch))}, {chip.n_tiles} crossbar tile(s) of "
          f"{cfg.tile[0]}x{cfg.tile[1]}, output {cfg.output}, latency {chip.latency} cycle(s)")


def _test_images(net, args):
    from rrambnn.gen.mnist import load_split
    if net.preprocess is None:
        raise RrambnnError("this network has raw-bit inputs (crop 0); it cannot be simulated on MNIST")
    te = load_split("test", args.data)
    n = args.images
    if not isinstance(n, int) or not 1 <= n <= len(te.labels):
        raise RrambnnError(f"--images must be from 1 to {len(te.labels)}, not {n!r}")
    return net.preprocess(te.images[:n]), te.labels[:n]


def _simulate_modes(args, modes):
    import numpy as np
    from rrambnn.cli import load_net
    from rrambnn.gen.verilog import ChipConfig
    from rrambnn.sim.chip_sim import simulate

    net = load_net(args.weights)
    x, labels = _test_images(net, args)
    log = None if args.json else print
    report = {"images": len(labels), "modes": {}}
    for mode in modes:
        cfg = ChipConfig.checked(args.tile, args.pipeline, mode, True)
        res = simulate(net, cfg, x, seed=args.seed, waves=args.waves or None, log=log)
        hw = np.array(res.pop("hw_labels"))
        golden = net.classify(x, mode)
        report["modes"][mode] = {
            "passed": res["passed"], "mismatches": res.get("mismatches"), "checked": res.get("checked"),
            "agreement": float((hw == golden).mean()) if len(hw) == len(golden) else 0.0,
            "hw_accuracy": float((hw == labels).mean()) if len(hw) == len(labels) else 0.0,
            "golden_accuracy": float((golden == labels).mean()),
            "images_per_cycle": res.get("throughput", {}).get("images_per_cycle"),
            "latency_cycles": res.get("throughput", {}).get("latency_cycles"),
            "testbench_images_per_s": res.get("random_phase", {}).get("images_per_s"),
            "build_s": res["build_s"], "seed": args.seed, "log": res["log"], "waves": res.get("waves"),
        }
        if not res["passed"] and log:
            log(f"  FAILED: {res.get('mismatches')} mismatches; log {res['log']}; "
                f"examples {res.get('examples', [])[:3]}; rerun with --waves for an FST dump")
    return report


def _print_report(args, report):
    import json
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for mode, r in report["modes"].items():
        print(f"{mode:8}  agreement {r['agreement'] * 100:.2f}% ({r['mismatches']} mismatches in "
              f"{r['checked']} checks)  hardware accuracy {r['hw_accuracy'] * 100:.2f}%  "
              f"golden {r['golden_accuracy'] * 100:.2f}%  {r['images_per_cycle']} image/clock, "
              f"latency {r['latency_cycles']}")


def cmd_sim(args):
    report = _simulate_modes(args, [args.output] if args.output else ["priority", "argmax"])
    _print_report(args, report)
    if not all(r["passed"] for r in report["modes"].values()):
        raise RrambnnError("hardware and golden model disagree (see above)")


def cmd_run(args):
    from rrambnn.cli import load_net
    from rrambnn.gen.verilog import write_verilog

    net = load_net(args.weights)
    out = Path(args.out)
    chip = write_verilog(net, _config(args, net, debug=False), out)
    if not args.json:
        print(f"wrote {out} ({'-'.join(map(str, chip.arch))}, {chip.n_tiles} tiles)")
    args.output = None
    report = _simulate_modes(args, ["priority", "argmax"])
    report["verilog"] = str(out)
    _print_report(args, report)
    if not all(r["passed"] for r in report["modes"].values()):
        raise RrambnnError("hardware and golden model disagree (see above)")


def add_hw_commands(sub):
    from rrambnn.cli import _data_arg, _weights_arg

    v = sub.add_parser("verilog", help="generate the chip's Verilog")
    _weights_arg(v)
    v.add_argument("--out", required=True, help="output .v file")
    _chip_args(v)
    v.set_defaults(fn=cmd_verilog)

    for name, fn, helptext in (
        ("sim", cmd_sim, "simulate the chip on Verilator (cocotb) against the golden model"),
        ("run", cmd_run, "generate Verilog from the weights and check it on Verilator in both output modes"),
    ):
        s = sub.add_parser(name, help=helptext)
        _weights_arg(s)
        _data_arg(s)
        s.add_argument("--images", type=int, default=10000, help="number of MNIST test images")
        s.add_argument("--seed", type=int, default=1, help="testbench seed (idles, backpressure)")
        s.add_argument("--waves", action="store_true", help="build with FST tracing (dump.fst per run)")
        s.add_argument("--json", action="store_true")
        _chip_args(s, debug=False)
        if name == "run":
            s.add_argument("--out", default="out/rrambnn_chip.v", help="where to write the Verilog")
        s.set_defaults(fn=fn)
