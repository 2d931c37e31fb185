"""`rrambnn cost`: area, power and energy per image of a design, against the published figures."""

from __future__ import annotations

import sys

from rrambnn.cli_args import float_arg, int_arg, json_arg, old_flag, print_json, ranged_int, weights_arg


def cmd_cost(args):
    from rrambnn.errors import RrambnnError
    from rrambnn.fileio import check_writable
    from rrambnn.studies import cost

    if args.published:
        return published(args)
    if args.arch is None and (args.wbits is not None or args.abits is not None):
        raise RrambnnError("--wbits and --abits go with --arch: a weights file carries its own precision")
    if args.arch is not None and args.self_training:
        raise RrambnnError("--self-training costs the chip of an n-bit online weights file: give --weights, not --arch")
    from rrambnn.gen.analog import load_profile
    cost.load_tech(args.tech)  # a bad technology or device fails before the synthesis, and before anything is made
    device = load_profile(args.device)
    res = cost.design_cost(args.weights, arch=args.arch, wbits=1 if args.wbits is None else args.wbits,
                           abits=1 if args.abits is None else args.abits,
                           tech=args.tech, clock_mhz=args.clock, tile=args.tile, output=args.output,
                           self_training=args.self_training, update_bits=args.update_bits, positions=args.positions,
                           device=device,
                           ready=lambda: check_writable(args.out, directory=True, files=("cost.json", "cost.md", "cost.png")),
                           log=None if args.json else lambda s: print(s, file=sys.stderr, flush=True))
    files = cost.write_outputs(res, args.out)
    if args.json:
        print_json({**{k: v for k, v in res.items() if k != "cells_by_type"}, "outputs": files})
        return
    print("\n".join(cost.describe(res)))
    print("wrote " + ", ".join(files.values()))


def published(args):
    """`cost --published`: the published figures next to the model's (the held-out checks)."""
    from rrambnn.errors import RrambnnError
    from rrambnn.fileio import check_writable
    from rrambnn.studies import cost
    defaults = (("--weights", args.weights, None), ("--arch", args.arch, None), ("--clock", args.clock, None),
                ("--self-training", args.self_training, False), ("--wbits", args.wbits, None),
                ("--abits", args.abits, None), ("--tile", args.tile, "128x128"), ("--output", args.output, None),
                ("--update-bits", args.update_bits, 1), ("--positions", args.positions, 1),
                ("--device", args.device, "ideal"))
    given = [f for f, v, default in defaults if v != default]
    if given:
        raise RrambnnError(f"--published prices its own designs (the thesis chip, ISAAC's IMA): {given[0]} does not go with it")
    cost.published_tech(args.tech)  # a file that cannot be compared fails before anything is made
    check_writable(args.out, directory=True, files=("published.json", "published.md"))
    tab = cost.published_table(args.tech)
    files = cost.write_published(tab, args.out)
    if args.json:
        print_json({**tab, "outputs": files})
        return
    print("\n".join(cost.describe_published(tab)))
    print(f"wrote {files['json']}, {files['md']}")


def add_cost_command(sub):
    c = sub.add_parser("cost", help="area, power, energy per image, TOPS/mm^2 and TOPS/W of a design")
    weights_arg(c)
    c.add_argument("--arch", help="cost an architecture without weights, e.g. 400-128-128-10 (with --wbits/--abits)")
    c.add_argument("--wbits", type=int_arg, default=None, help="with --arch: weight bits (bit slices; default 1)")
    c.add_argument("--abits", type=int_arg, default=None, help="with --arch: activation bits (bit-serial; default 1)")
    c.add_argument("--update-bits", dest="update_bits", metavar="N", type=int_arg, default=1,
                   help="1: the inference chip; 2..12: the binary network's chip with n-bit weights in n planes "
                        "and the weight-update controller (as rrambnn verilog --update-bits)")
    old_flag(c, "--weight-bits", "update_bits", int_arg)
    c.add_argument("--tech", default="32nm",
                   help="technology: 32nm (default; ISAAC's figures and the thesis's totals), 130nm (the "
                        "macro's node), or a TOML file in their format")
    c.add_argument("--clock", type=float_arg, default=None,
                   help="clock in MHz (default: the technology file's, 100); refused beyond the design's highest "
                        "(its columns' read: settling and the sense decision; a converter's rate)")
    c.add_argument("--device", default="ideal", metavar="FILE.toml|NAME",
                   help="device profile whose conductances and read voltage price the crossbar reads, and whose "
                        "wire resistance sets the IR-drop limit (default ideal: NeuroSim V1.4's RRAM; see eval --device)")
    c.add_argument("--tile", default="128x128", help="crossbar tile size ROWSxCOLS (default 128x128)")
    c.add_argument("--output", default=None, choices=("priority", "argmax"), help="output stage: priority|argmax (default: the weights file's)")
    c.add_argument("--self-training", action="store_true",
                   help="with an n-bit online network: cost the self-training chip (default: its training chip)")
    c.add_argument("--positions", type=ranged_int(1, 4096), default=1,
                   help="a CNN weights file: output columns each convolution computes per step (default 1)")
    c.add_argument("--published", action="store_true",
                   help="the published figures next to the model's: the thesis chip (calibrated), ISAAC's IMA "
                        "(held out), the macro's write energy (published.md, published.json in --out)")
    c.add_argument("--out", default="out/cost", help="directory for cost.json, cost.md, cost.png (default out/cost)")
    json_arg(c)
    c.set_defaults(fn=cmd_cost)
