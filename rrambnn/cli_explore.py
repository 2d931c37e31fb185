"""`rrambnn explore`: design-space exploration (accuracy against hardware cost)."""

from __future__ import annotations

import json
from pathlib import Path

from rrambnn.cli_args import data_arg, json_arg
from rrambnn.errors import RrambnnError


def cmd_explore(args):
    from rrambnn.studies import explore as ex
    from rrambnn.gen.mnist import load_split

    points = ex.parse_axes(args.axis or ["crop", "hidden=64,128,192", "bn"], layers=args.layers)
    for name, v, lo in (("--seeds", args.seeds, 1), ("--epochs", args.epochs, 1), ("--jobs", args.jobs, 1)):
        if not isinstance(v, int) or v < lo:
            raise RrambnnError(f"{name} must be a positive integer, not {v!r}")
    load_split("test", args.data)  # fail early, with the paths it tried, if MNIST is missing
    res = ex.explore(points, seeds=args.seeds, epochs=args.epochs, out_dir=Path(args.out), data_dir=args.data,
                     tile=args.tile, jobs=args.jobs, backend=args.backend, synth=not args.no_synth,
                     progress=not args.json)
    paths = ex.write_outputs(res, Path(args.out))
    if args.json:
        print(json.dumps({"outputs": paths, "rows": res["rows"]}, indent=2))
        return
    print(ex.markdown_table(res))
    for cost in ("synaptic_bits", "periphery_cells"):
        front = [k for k, r in res["rows"].items() if r.get(ex.pareto_flag(cost))]
        if front:
            print(f"Pareto front vs {cost.replace('_', ' ')} ({len(front)} points): {', '.join(front)}")
    print("wrote " + ", ".join(paths.values()))


def add_explore_command(sub):
    from rrambnn.studies.explore import AXES
    e = sub.add_parser("explore", help="design-space exploration: accuracy vs crossbar and periphery cost")
    e.add_argument("--axis", action="append", metavar="NAME[=V,V,...]",
                   help=f"an axis to sweep (repeat to cross); names: {', '.join(AXES)}; alone: all its values "
                        f"(default: crop, hidden=64,128,192, bn)")
    e.add_argument("--layers", type=int, default=2, help="hidden layers (default 2, as the reference chip)")
    e.add_argument("--seeds", type=int, default=2)
    e.add_argument("--epochs", type=int, default=10, help="training epochs per point (the reference used 150)")
    e.add_argument("--jobs", type=int, default=2, help="local worker processes")
    e.add_argument("--backend", choices=["local", "ray", "dask"], default="local",
                   help="hand the points to Ray or Dask (when installed) instead of local processes")
    e.add_argument("--tile", default="128x128", help="crossbar tile size ROWSxCOLS for tiles and the generated chip")
    e.add_argument("--no-synth", action="store_true", help="skip the Yosys periphery cost")
    e.add_argument("--out", default="out/explore", help="directory: table, JSON, plots, weights, cache")
    data_arg(e)
    json_arg(e)
    e.set_defaults(fn=cmd_explore)
