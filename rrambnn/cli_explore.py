"""`rrambnn explore`: design-space exploration (accuracy against hardware cost)."""

from __future__ import annotations

from rrambnn.cli_args import MAX_EPOCHS, data_arg, int_arg, json_arg, print_json, ranged_int


def _given(value, default):
    return default if value is None else value


def cmd_explore(args):
    from rrambnn.errors import RrambnnError
    from rrambnn.studies import explore

    device = None
    if args.device is not None:  # the profile checked before any training
        from rrambnn.gen.analog import load_profile
        device = load_profile(args.device)
    else:
        for flag, value in (("--chips", args.chips), ("--calibration", args.calibration)):
            if value is not None:
                raise RrambnnError(f"{flag} goes with --device (the chips each point is read through)")
    on_device = dict(device=device, chips=_given(args.chips, 5), calibration=_given(args.calibration, 2000))
    if args.arch is not None:
        from rrambnn.studies import explore_cnn
        if args.layers is not None:
            raise RrambnnError("--layers goes with MLP points; a CNN's layers come from --arch")
        res = explore_cnn.study(args.axis, arch=args.arch, seeds=args.seeds, epochs=_given(args.epochs, 3),
                                out_dir=args.out, data_dir=args.data, tile=args.tile,
                                positions=_given(args.positions, 1), disturbance=_given(args.disturbance, 0.0),
                                jobs=args.jobs, backend=args.backend, synth=not args.no_synth, progress=not args.json,
                                tech=args.tech, train_limit=args.samples, **on_device)
    else:
        for flag, value in (("--positions", args.positions), ("--disturbance", args.disturbance)):
            if value is not None:
                raise RrambnnError(f"{flag} goes with CNN points (--arch SPEC)")
        res = explore.study(args.axis, layers=_given(args.layers, 2), seeds=args.seeds, epochs=_given(args.epochs, 10),
                            out_dir=args.out, data_dir=args.data, tile=args.tile, jobs=args.jobs,
                            backend=args.backend, synth=not args.no_synth, progress=not args.json, tech=args.tech,
                            train_limit=args.samples, **on_device)
    if args.json:
        print_json({"outputs": res["files"], "rows": res["rows"], **({"device": res["device"]} if "device" in res else {})})
        return
    print("\n".join(explore.describe(res)))
    print("wrote " + ", ".join(res["files"].values()))


def add_explore_command(sub):
    from rrambnn.studies.explore import AXES
    e = sub.add_parser("explore", help="design-space exploration: accuracy vs crossbar and periphery cost")
    from rrambnn.studies.explore_cnn import AXES as CNN_AXES
    e.add_argument("--axis", action="append", metavar="NAME[=V,V,...]",
                   help=f"an axis to sweep (repeat to cross); names: {', '.join(AXES)}; with --arch: "
                        f"{', '.join(CNN_AXES)} (channels=6x16,3x8: one count per convolution); alone: all its "
                        f"values (default: crop, hidden=64,128,192, bn; with --arch: channels, wbits)")
    e.add_argument("--arch", metavar="SPEC", help="explore convolutional networks: the base layer spec "
                   "(lenet5 or a spec with a convolution, see train --help) whose convolutions the axes vary")
    e.add_argument("--layers", type=ranged_int(1, 4), default=None, help="MLP points: hidden layers (default 2, "
                   "as the reference chip)")
    e.add_argument("--positions", type=ranged_int(1, 64), default=None, help="CNN points: output positions each "
                   "convolution computes per step in the generated chip (default 1)")
    e.add_argument("--disturbance", type=float, default=None, help="CNN points: train with the read "
                   "disturbance d, drawn per read (default 0: ideal reads)")
    e.add_argument("--samples", type=ranged_int(1, 60000), default=None,
                   help="MLP points: train on the first N training images; CNN points: N random training images an "
                        "epoch (default: all 60,000)")
    e.add_argument("--seeds", type=int_arg, default=2, help="trainings per point (seeds)")
    e.add_argument("--epochs", type=ranged_int(1, MAX_EPOCHS), default=None,
                   help="training epochs per point (default 10 for MLPs, 3 for CNNs; the reference used 150)")
    e.add_argument("--jobs", type=int_arg, default=2, help="local worker processes")
    e.add_argument("--backend", choices=["local", "ray", "dask"], default="local",
                   help="hand the points to Ray or Dask (when installed) instead of local processes")
    e.add_argument("--tile", default="128x128", help="crossbar tile size ROWSxCOLS for tiles and the generated chip")
    e.add_argument("--no-synth", action="store_true", help="skip the Yosys periphery cost (and area and energy)")
    e.add_argument("--tech", default="32nm", help="technology of the area and energy costs (see rrambnn cost)")
    e.add_argument("--device", metavar="FILE.toml|NAME",
                   help="also read each chip point (its first seed's network) through --chips chips of a device "
                        "profile (see eval --device), calibrated: accuracy on the device and its Pareto fronts")
    e.add_argument("--chips", type=ranged_int(1, 10_000), default=None, help="--device: chips per point (default 5)")
    e.add_argument("--calibration", type=ranged_int(0, 60_000), default=None,
                   help="--device: training images per chip's calibration (0: none; default 2000)")
    e.add_argument("--out", default="out/explore", help="directory: table, JSON, plots, weights, cache")
    data_arg(e)
    json_arg(e)
    e.set_defaults(fn=cmd_explore)
