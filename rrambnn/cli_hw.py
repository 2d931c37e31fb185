"""Hardware commands of the CLI: verilog, sim, run."""

from __future__ import annotations

import argparse
import json
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
    from rrambnn.hw.verilog import ChipConfig
    return ChipConfig.checked(args.tile, args.pipeline, args.output or net.output_mode,
                              args.debug if debug is None else debug,
                              weight_bits=getattr(args, "weight_bits", 1),
                              err_bits=getattr(args, "err_bits", 2)).for_network(net)


def _precision(chip) -> str:
    """How a multi-bit chip computes, for the command's summary line ('' for binary chips)."""
    parts = []
    if chip.slices > 1:
        parts.append(f"{chip.slices}-bit weights in {chip.slices} computing planes")
    if chip.act_bits > 1:
        parts.append(f"{chip.act_bits}-bit activations bit-serial, {chip.interval} cycles/image, "
                     f"{chip.threshold_ram_bits:,} threshold RAM bits")
    return "".join(f", {p}" for p in parts)


def _training_chip(args):
    """An n-bit online network file -> (its training chip's network, configuration)."""
    from rrambnn.gen import learning
    from rrambnn.hw.verilog import training_design
    d = learning.load_codes(args.weights)
    if args.weight_bits not in (1, d["bits"]):
        raise RrambnnError(f"{args.weights} holds {d['bits']}-bit weights; --weight-bits {args.weight_bits} differs")
    if args.pipeline:
        raise RrambnnError("the training chip feeds its layers bit-serially: --pipeline does not apply")
    ncfg = learning.NbitConfig(bits=d["bits"], act_bits=d["act_bits"], range_shift=d["range_shift"])
    return training_design(d["arch"], ncfg, d["codes"], tile=args.tile, output=args.output or "argmax",
                           debug=args.debug, err_bits=args.err_bits)


def cmd_verilog(args):
    from rrambnn.cli import load_net
    from rrambnn.gen.learning import is_online_file
    from rrambnn.hw.verilog import write_verilog

    if args.weights and is_online_file(args.weights):
        net, cfg = _training_chip(args)
    else:
        net = load_net(args.weights, multi_bit=True)
        if args.err_bits is None:
            args.err_bits = 2
        cfg = _config(args, net)
    out = Path(args.out)
    chip = write_verilog(net, cfg, out)
    online = (f", {cfg.weight_bits}-bit weights in {cfg.weight_bits} planes with the weight-update controller"
              f"{' (the training chip: offset code, restore)' if cfg.restore else ''}" if cfg.weight_bits > 1 else "")
    print(f"wrote {out}: {'-'.join(map(str, chip.arch))}, {chip.n_tiles} crossbar tile(s) of "
          f"{cfg.tile[0]}x{cfg.tile[1]}, output {cfg.output}, latency {chip.latency} cycle(s){online}{_precision(chip)}")


def _test_images(net, args):
    from rrambnn.cli import check_mnist_inputs, net_inputs
    from rrambnn.gen.mnist import load_split
    check_mnist_inputs(net)
    te = load_split("test", args.data)
    n = args.images
    if not isinstance(n, int) or not 1 <= n <= len(te.labels):
        raise RrambnnError(f"--images must be from 1 to {len(te.labels)}, not {n!r}")
    return net_inputs(net, te.images[:n]), te.labels[:n]


def _simulate_modes(args, modes, debug=True, out_dir=None):
    """Simulate the chip in each output stage; with ``out_dir`` the Verilog simulated is
    also written there (rrambnn_chip_<mode>.v)."""
    import numpy as np
    from rrambnn.cli import load_net
    from rrambnn.hw.verilog import ChipConfig, write_verilog
    from rrambnn.sim.chip_sim import simulate, simulate_sliced

    net = load_net(args.weights, multi_bit=True)
    multi = hasattr(net, "abits")
    x, labels = _test_images(net, args)
    log = None if args.json else print
    report = {"images": len(labels), "modes": {}}
    for mode in modes:
        cfg = ChipConfig.checked(args.tile, args.pipeline, mode, debug).for_network(net)
        if out_dir is not None:
            path = Path(out_dir) / f"rrambnn_chip_{mode}.v"
            chip = write_verilog(net, cfg, path)
            if log:
                log(f"wrote {path} ({'-'.join(map(str, chip.arch))}, {chip.n_tiles} tiles, output {mode})")
        if multi:  # payloads of every image, cycles per image against the model
            res = simulate_sliced(net, cfg, x, seed=args.seed, waves=args.waves or None, log=log,
                                  rewrite_thresholds=False)
            res["checked"] = res.get("images")
            res["throughput"] = {"images_per_cycle": (1 / res["interval_model"]) if res.get("interval_model") else None,
                                 "latency_cycles": res.get("interval_model", 1) - 1 if net.abits > 1 else 1}
        else:
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
            "compared": "class, hit, every layer's activations, last column sums" if debug else "class, hit",
        }
        if not res["passed"] and log:
            log(f"  FAILED: {res.get('mismatches')} mismatches; log {res['log']}; "
                f"examples {res.get('examples', [])[:3]}; rerun with --waves for an FST dump")
    return report


def _print_report(args, report):
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for mode, r in report["modes"].items():
        print(f"{mode:8}  agreement {r['agreement'] * 100:.2f}% ({r['mismatches']} mismatches in "
              f"{r['checked']} checks)  hardware accuracy {r['hw_accuracy'] * 100:.2f}%  "
              f"golden {r['golden_accuracy'] * 100:.2f}%  {r['images_per_cycle']} image/clock, "
              f"latency {r['latency_cycles']}")


def cmd_sim(args):
    report = _simulate_modes(args, [args.output] if args.output else ["priority", "argmax"], debug=True)
    _print_report(args, report)
    if not all(r["passed"] for r in report["modes"].values()):
        raise RrambnnError("hardware and golden model disagree (see above)")


def cmd_run(args):
    """The main job: Verilog for both output stages from the weights, each checked on Verilator."""
    report = _simulate_modes(args, ["priority", "argmax"], debug=False, out_dir=args.out)
    _print_report(args, report)
    if not all(r["passed"] for r in report["modes"].values()):
        raise RrambnnError("hardware and golden model disagree (see above)")


def _device_args(p):
    p.add_argument("--yield", dest="yield_", type=float, default=1.0, help="bit yield (fraction of healthy cells)")
    p.add_argument("--pulse-fail", type=float, default=0.0, help="probability that a SET/RESET pulse fails")
    p.add_argument("--endurance", type=int, default=0, help="switches after which a cell is stuck (0: unlimited)")
    p.add_argument("--retries", type=int, default=3, help="write-verify retries after the first pulse")
    p.add_argument("--seed", type=int, default=0, help="device seed: fault map and pulse outcomes")
    p.add_argument("--faults", help="measured fault map (.npz with fault0.. codes 0 ok, 1 stuck HRS, 2 stuck LRS)")


def cmd_program(args):
    import numpy as np

    from rrambnn.cli import load_net
    from rrambnn.gen import device as dev
    from rrambnn.hw.verilog import ChipConfig
    from rrambnn.sim.chip_sim import simulate

    net = load_net(args.weights)
    params = dev.DeviceParams(args.yield_, args.pulse_fail, args.endurance, args.seed)
    cfg = ChipConfig.checked(args.tile, args.pipeline, args.output or net.output_mode, True,
                             word=args.word, retries=args.retries, pulse_cycles=args.pulse_cycles, device=params)
    x, labels = _test_images(net, args)
    faults = dev.device_faults(net.arch, params, dev.load_fault_maps(args.faults, net.arch) if args.faults else None)
    chip, rep, cmds, init = dev.program_network(net, params, tile=cfg.tile, word=cfg.word, retries=cfg.retries,
                                                initial=args.initial, faults=faults)
    programmed = type(net)(chip.weights(), [t.copy() for t in net.thresholds], net.preprocess, net.output_mode)
    golden_acc = programmed.accuracy(x, labels)
    ideal_acc = net.accuracy(x, labels)
    log = None if args.json else print
    if log:
        log(f"golden: {len(cmds)} commands, {rep.pulses_set} SET + {rep.pulses_reset} RESET pulses, "
            f"{len(rep.failed)} cells failed; accuracy priority {golden_acc['priority'] * 100:.2f}% "
            f"argmax {golden_acc['argmax'] * 100:.2f}% (ideal chip {ideal_acc[cfg.output] * 100:.2f}% {cfg.output})")
    res = simulate(net, cfg, x, seed=args.seed + 1, initial_cells=init, faults=chip.faults, commands=cmds,
                   read_back=not args.no_read_back, throughput_images=0, waves=args.waves or None, log=log)
    p = res.get("programming", {})
    hw_labels = np.array(res.pop("hw_labels", []))
    report = {
        "passed": res["passed"], "commands": len(cmds), "hardware": p.get("hardware"), "golden": p.get("golden"),
        "failed_cells_match": p.get("failed_match"), "failed_cells": p.get("failed_golden", [])[:50],
        "read_back": {k: v for k, v in res.get("read_back", {}).items() if k != "examples"} or None,
        "classification": {"images": len(labels), "mismatches": res.get("mismatches"),
                           "hw_accuracy": float((hw_labels == labels).mean()) if len(hw_labels) == len(labels) else None,
                           "golden_accuracy": golden_acc, "ideal_accuracy": ideal_acc, "output": cfg.output},
        "device": {"yield": params.yield_, "pulse_fail": params.p_fail,
                   "endurance": params.endurance, "seed": params.seed, "retries": cfg.retries},
        "log": res["log"], "waves": res.get("waves"),
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        hw, g = report["hardware"] or {}, report["golden"] or {}
        print(f"hardware: {hw.get('pulses_set')} SET + {hw.get('pulses_reset')} RESET pulses, "
              f"{hw.get('cells_failed')} cells failed; golden {g.get('pulses_set')} + {g.get('pulses_reset')}, "
              f"{g.get('cells_failed')}; failed-cell lists {'match' if report['failed_cells_match'] else 'DIFFER'}")
        if report["read_back"]:
            rb = report["read_back"]
            print(f"read-back: {rb['cells']} cells, {rb['cell_mismatches']} state and {rb['count_mismatches']} "
                  f"switch-counter mismatches")
        c = report["classification"]
        print(f"classification on the programmed chip: {c['mismatches']} mismatches in {res.get('checked')} checks; "
              f"hardware accuracy {c['hw_accuracy'] * 100:.2f}% ({cfg.output})")
    if not res["passed"]:
        raise RrambnnError(f"hardware and golden model disagree; log {res['log']}")


def cmd_sweep(args):
    from rrambnn.cli import load_net
    from rrambnn.gen import sweep
    from rrambnn.gen.mnist import load_split

    if args.what in ("bits", "endurance"):
        from rrambnn.cli_online import cmd_sweep_online
        return cmd_sweep_online(args)
    if args.what != "yield":
        raise RrambnnError(f"rrambnn sweep knows yield, bits and endurance, not {args.what!r}")
    net = load_net(args.weights)
    yields = sweep.parse_floats(args.yields, "--yields", 0.0, 1.0)
    if args.seeds < 1:
        raise RrambnnError(f"--seeds must be a positive integer, not {args.seeds}")
    te = load_split("test", args.data)
    x = net.preprocess(te.images)
    res = sweep.sweep_yield(net, x, te.labels, yields, list(range(args.seeds)), p_fail=args.pulse_fail,
                            retries=args.retries, progress=not args.json)
    res["network"] = "-".join(map(str, net.arch))
    spot = []
    if args.spot_checks:
        import numpy as np

        from rrambnn.gen.device import DeviceParams
        from rrambnn.hw.verilog import ChipConfig
        from rrambnn.sim.chip_sim import simulate
        faulty_points = [y for y in yields if y < 1.0][:args.spot_checks] or yields[:args.spot_checks]
        for y in faulty_points:
            params = DeviceParams(y, args.pulse_fail, 0, 0)
            faulty, _ = sweep.programmed_network(net, params, retries=args.retries)
            n = min(args.spot_images, len(x))
            cfg = ChipConfig.checked("128x128", False, net.output_mode, True, device=params)
            r = simulate(faulty, cfg, x[:n], seed=1, throughput_images=0)
            hw = np.array(r.pop("hw_labels"))
            spot.append({"yield": y, "seed": 0, "images": n, "passed": r["passed"], "mismatches": r["mismatches"],
                         "hw_accuracy": float((hw == te.labels[:n]).mean())})
    res["spot_checks"] = spot
    paths = sweep.write_outputs(res, Path(args.out), "yield", f"{res['network']}: accuracy vs bit yield")
    if args.json:
        print(json.dumps({**res, "files": paths}, indent=2))
    else:
        print(sweep.markdown_table(res))
        for sc in spot:
            print(f"spot check on Verilator, yield {sc['yield']}: {sc['mismatches']} mismatches on {sc['images']} "
                  f"images, hardware accuracy {sc['hw_accuracy'] * 100:.2f}%")
        print("wrote " + ", ".join(paths.values()))
    if any(not sc["passed"] for sc in spot):
        raise RrambnnError("a hardware spot check disagreed with the golden model")


def add_hw_commands(sub):
    from rrambnn.cli import _data_arg, _weights_arg

    v = sub.add_parser("verilog", help="generate the chip's Verilog")
    _weights_arg(v)
    v.add_argument("--out", required=True, help="output .v file")
    _chip_args(v)
    v.add_argument("--weight-bits", type=int, default=1,
                   help="1: binary inference chip; 2..12: n-bit weights in n planes + the weight-update controller")
    v.add_argument("--err-bits", type=int, default=None,
                   help="rank-1 error (step) width of the weight-update controller (default 2; for an n-bit online "
                        "network file, the width its blank-start rule needs)")
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
            s.add_argument("--out", default="out", help="directory for rrambnn_chip_priority.v / _argmax.v")
        s.set_defaults(fn=fn)

    pr = sub.add_parser("program", help="program the chip's arrays with write-verify on Verilator, "
                                        "then classify; all checked against the golden device model")
    _weights_arg(pr)
    _data_arg(pr)
    _device_args(pr)
    _chip_args(pr, debug=False)
    pr.add_argument("--word", type=int, default=16, help="cells per programming command")
    pr.add_argument("--pulse-cycles", type=int, default=5, help="pulse width in clocks (50 ns at 100 MHz)")
    pr.add_argument("--initial", default="hrs", help="array state before programming: hrs, random or weights")
    pr.add_argument("--images", type=int, default=10000, help="test images classified after programming")
    pr.add_argument("--no-read-back", action="store_true", help="skip reading back every cell and counter")
    pr.add_argument("--waves", action="store_true")
    pr.add_argument("--json", action="store_true")
    pr.set_defaults(fn=cmd_program)

    sw = sub.add_parser("sweep", help="accuracy vs bit yield (golden model, hardware spot checks), or of online "
                                      "training vs weight bits or endurance")
    sw.add_argument("what", help="yield | bits | endurance")
    _weights_arg(sw)
    _data_arg(sw)
    sw.add_argument("--yields", default="1.0,0.99,0.98,0.97,0.96,0.95,0.94,0.92,0.9,0.85,0.8")
    sw.add_argument("--seeds", type=int, default=5, help="chips (fault maps) per yield")
    sw.add_argument("--pulse-fail", type=float, default=0.0)
    sw.add_argument("--retries", type=int, default=3)
    sw.add_argument("--spot-checks", type=int, default=1, help="faulty points also run on Verilator")
    sw.add_argument("--spot-images", type=int, default=2000)
    sw.add_argument("--out", default="out/sweep", help="directory for the table, JSON and PNG")
    sw.add_argument("--json", action="store_true")
    from rrambnn.cli_online import add_online_commands, add_sweep_args
    add_sweep_args(sw)
    sw.set_defaults(fn=cmd_sweep)
    add_online_commands(sub)
