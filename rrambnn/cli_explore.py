"""`rrambnn explore`: design-space exploration (accuracy against hardware cost)."""

from __future__ import annotations

from rrambnn.cli_args import MAX_EPOCHS, data_arg, int_arg, json_arg, print_json, ranged_int


def cmd_explore(args):
    from rrambnn.studies import explore

    res = explore.study(args.axis, layers=args.layers, seeds=args.seeds, epochs=args.epochs, out_dir=args.out,
                        data_dir=args.data, tile=args.tile, jobs=args.jobs, backend=args.backend,
                        synth=not args.no_synth, progress=not args.json, tech=args.tech)
    if args.json:
        print_json({"outputs": res["files"], "rows": res["rows"]})
        return
    print("\n".join(explore.describe(res)))
    print("wrote " + ", ".join(res["files"].values()))


def add_explore_command(sub):
    from rrambnn.studies.explore import AXES
    e = sub.add_parser("explore", help="design-space exploration: accuracy vs crossbar and periphery cost")
    e.add_argument("--axis", action="append", metavar="NAME[=V,V,...]",
                   help=f"an axis to sweep (repeat to cross); names: {', '.join(AXES)}; alone: all its values "
                        f"(default: crop, hidden=64,128,192, bn)")
    e.add_argument("--layers", type=int_arg, default=2, help="hidden layers (default 2, as the reference chip)")
    e.add_argument("--seeds", type=int_arg, default=2, help="trainings per point (seeds)")
    e.add_argument("--epochs", type=ranged_int(1, MAX_EPOCHS), default=10, help="training epochs per point (the reference used 150)")
    e.add_argument("--jobs", type=int_arg, default=2, help="local worker processes")
    e.add_argument("--backend", choices=["local", "ray", "dask"], default="local",
                   help="hand the points to Ray or Dask (when installed) instead of local processes")
    e.add_argument("--tile", default="128x128", help="crossbar tile size ROWSxCOLS for tiles and the generated chip")
    e.add_argument("--no-synth", action="store_true", help="skip the Yosys periphery cost (and area and energy)")
    e.add_argument("--tech", default="32nm", help="technology of the area and energy costs (see rrambnn cost)")
    e.add_argument("--out", default="out/explore", help="directory: table, JSON, plots, weights, cache")
    data_arg(e)
    json_arg(e)
    e.set_defaults(fn=cmd_explore)
