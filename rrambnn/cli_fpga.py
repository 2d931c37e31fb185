"""FPGA commands of the CLI: ``fpga`` (bitstreams) and ``board`` (the host link)."""

from __future__ import annotations

from pathlib import Path

from rrambnn.cli_args import data_arg, float_arg, int_arg, json_arg, print_json, ranged_int, weights_arg
from rrambnn.errors import RrambnnError


def _self_training(args, spec):
    """`fpga --self-training`: the self-training chip's periphery on the board, and why no bitstream."""
    from rrambnn.fileio import check_writable
    from rrambnn.fpga.build import self_training_fit
    from rrambnn.hw.config import chip_design
    from rrambnn.hw.verilog import build_chip
    from rrambnn.weights import ONLINE_NBIT, shipped
    for opt in ("lanes", "chunks", "rows", "freq"):
        if getattr(args, opt) is not None:
            raise RrambnnError(f"--{opt} belongs to the emulation twin; --self-training reports the self-training chip")
    out = check_writable(Path(args.out or f"out/fpga/{spec.name}-self-training"), directory=True)
    net, cfg = chip_design(args.weights or shipped(ONLINE_NBIT), self_training=True)
    report = self_training_fit(spec, build_chip(net, cfg), out, log=None if args.json else print)
    if args.json:
        print_json(report)
    else:
        p, cap = report["periphery"], report["capacity"]
        print(f"{report['title']}, self-training chip {'-'.join(map(str, report['arch']))} "
              f"({report['weight_bits']}-bit weights, {report['crossbar_arrays']} arrays)")
        print(f"  periphery (arrays as black boxes): LUT4 {p['luts']:,}/{cap['luts']:,}, flip-flops {p['ffs']:,}, "
              f"carries {p['carries']:,}, multipliers {p['multipliers']}/{cap['multipliers']}, block RAM {p['bram']}")
        print(f"  cells: {report['cells_bits']:,} bits; block RAM {cap['bram_bits'] + cap['spram_bits']:,} bits")
    raise RrambnnError(f"no bitstream for the self-training chip on {spec.name}: {'; '.join(report['does_not'])} "
                       f"(report {report['report']})")


def _cnn(args, spec, net):
    """`fpga --weights CNN.npz`: the CNN chip's periphery on the board, and why no bitstream."""
    from rrambnn.fileio import check_writable
    from rrambnn.fpga.build import cnn_fit
    from rrambnn.hw.cnn import make_chip
    for opt in ("lanes", "chunks", "rows", "freq", "baud", "data"):
        if getattr(args, opt) is not None:
            raise RrambnnError(f"--{opt} belongs to the binary chips' bitstreams; a CNN weights file gets the CNN "
                               f"chip's fit report (no bitstream)")
    if args.self_training or args.variant != "emulation":
        raise RrambnnError(f"{'--self-training' if args.self_training else '--variant ' + args.variant} does not "
                           f"apply to a CNN weights file (the CNN chip has no self-training or macro variant)")
    positions = args.positions or 1
    tile = args.tile or "128x128"
    chip = make_chip(net, tile=tile, positions=positions)  # refused before the folder is made
    default = f"out/fpga/{spec.name}-cnn-{Path(args.weights).stem}-p{positions}-t{tile}"
    out = check_writable(Path(args.out or default), directory=True, files=("cnn-report.json",))
    report = cnn_fit(spec, chip, out, log=None if args.json else print)
    if args.json:
        print_json(report)
    else:
        p, cap = report["periphery"], report["capacity"]
        print(f"{report['title']}, CNN chip {report['spec']} ({report['weight_bits']}-bit weights, "
              f"{report['activation_bits']}-bit activations, {report['positions']} position(s) per step, "
              f"{report['crossbar_arrays']} arrays, {report['cycles_per_image']:,} cycles per image)")
        print(f"  periphery (arrays as black boxes): LUT4 sites {p['lut_sites']:,}/{cap['luts']:,} (LUT4 "
              f"{p['luts']:,}, carries {p['carries']:,}), flip-flops {p['ffs']:,}, multipliers "
              f"{p['multipliers']}/{cap['multipliers']}, block RAM {p['bram']}")
        print(f"  what would: {report['would']}")
    raise RrambnnError(f"no bitstream for the CNN chip on {spec.name}: {'; '.join(report['does_not'])} "
                       f"(report {report['report']})")


def _int_list(text: str | None, name: str, n: int) -> list[int] | None:
    if text is None:
        return None
    try:
        values = [int(v) for v in str(text).split(",")]
    except ValueError:
        raise RrambnnError(f"--{name} must be integers separated by commas, not {text!r}") from None
    if len(values) == 1:
        values = values * n
    if len(values) != n:
        raise RrambnnError(f"--{name} needs one value per layer ({n}), not {len(values)}")
    return values


def cmd_fpga(args):
    from rrambnn.fpga.build import board_spec
    from rrambnn.fpga.twin import build_bitstream
    from rrambnn.gen.cnn import CnnNetwork
    from rrambnn.gen.netfile import accept, read_network
    spec = board_spec(args.board)
    read = None
    if args.weights is not None:
        read = read_network(args.weights)
        if isinstance(read, CnnNetwork):
            return _cnn(args, spec, read)
    for flag, given in (("--positions", args.positions), ("--tile", args.tile)):
        if given is not None:
            raise RrambnnError(f"{flag} applies to CNN chips (a weights file of format rrambnn-cnn)")
    baud = 115200 if args.baud is None else args.baud
    if args.self_training:
        return _self_training(args, spec)
    if args.variant != "emulation":
        for opt in ("lanes", "chunks", "rows"):
            if getattr(args, opt) is not None:
                raise RrambnnError(f"--{opt} folds the emulation twin; the {args.variant} variant has no fold")
    net = accept(read_network(None) if read is None else read, args.weights)
    n = len(net.weights)
    out = Path(args.out or f"out/fpga/{spec.name}-{args.variant}")
    fold = {}
    if args.variant == "emulation":
        fold = {"lanes": _int_list(args.lanes, "lanes", n), "chunks": _int_list(args.chunks, "chunks", n),
                "rows": _int_list(args.rows, "rows", n)}
    report = build_bitstream(net, spec, args.variant, out, **fold, freq_mhz=args.freq, baud=baud,
                             data_dir=args.data, log=None if args.json else print)
    interval = report.get("interval_cycles")
    if args.json:
        print_json(report)
        return
    print(f"{report['title']}, {args.variant}: bitstream {report['bitstream']}")
    print(f"  clock {report['clock_mhz']:g} MHz, nextpnr Fmax {report['fmax_mhz']:g} MHz (timing met)")
    print(f"  logic cells {report['logic_cells']}/{report['logic_cells_available']}, LUT4 {report['luts']}, "
          f"flip-flops {report['ffs']}, block RAM {report['bram']}/{report['bram_available']}")
    if interval:
        latency = f", latency {report['latency_cycles']} cycles" if "latency_cycles" in report else ""
        mean = f" (mean over the {report['interval_images']:,} MNIST test images)" if "interval_images" in report else ""
        print(f"  {interval:g} cycles per image{mean}{latency}: {report['images_per_s']:,} images/s at "
              f"{report['clock_mhz']:g} MHz ({report['images_per_s_at_fmax']:,} at Fmax)")
    if "worst_interval_cycles" in report:
        worst = report["worst_interval_cycles"]
        print(f"  event-driven layers, row lanes {report['rows']}: worst case (every input active) {worst:g} cycles "
              f"per image = {round(report['clock_mhz'] * 1e6 / worst):,} images/s")
    elif "interval_note" in report:
        print(f"  {report['interval_note']}")
    if args.variant == "emulation":
        print(f"  host link: UART {baud} baud, up to {report['link_images_per_s']:g} images/s over the wire; "
              f"`rrambnn board bench` measures the core on the board")
    print(f"  report {report['report']}; {report['build_s']:g} s")


def cmd_board(args):
    from rrambnn.fpga.host import (Board, bench_against_golden, check_timeout, classify_against_golden, open_serial,
                                   twin_for)
    from rrambnn.gen.netfile import load_network, mnist_inputs
    # every argument is checked before the port is opened
    check_timeout(args.timeout)
    net = x = labels = None
    if args.action != "info":
        net = load_network(args.weights)
        if args.action in ("bench", "classify"):
            x, labels = mnist_inputs(net, args.data, args.images)
    board = Board(open_serial(args.port, args.baud), timeout=args.timeout, name=f"the board on {args.port}")
    info = board.query()
    desc = (f"{'-'.join(map(str, info.arch))} network, lanes {list(info.lanes)}, chunks {list(info.chunks)}, "
            f"output {info.output}, clock {info.clock_hz / 1e6:g} MHz")
    if args.action == "info":
        if args.json:
            print_json(info.__dict__)
        else:
            print(f"{args.port}: rrambnn emulation board, protocol {info.version}: {desc}")
        return
    twin_for(net, info)  # the board must run this network's shape and fold
    if args.action == "program":
        from tqdm import tqdm
        total = sum(c.size + len(t) for c, t in zip(net.cells, net.thresholds))
        with tqdm(total=total, desc="writing cells and thresholds", unit="write", disable=args.json) as bar:
            n = board.program(net, progress=bar.update)
        res = {"port": args.port, "writes": n}
        if args.json:
            print_json(res)
        else:
            print(f"wrote {n} cells and thresholds to the board on {args.port}")
        return
    if args.action == "bench":
        res = bench_against_golden(board, net, x[0], args.repeat)
        if args.json:
            print_json(res)
        else:
            rate = f", {res['images_per_s']:,} images/s at {res['clock_mhz']:g} MHz" if "images_per_s" in res else ""
            print(f"{res['images']} images back to back in {res['cycles']} cycles: "
                  f"{res['cycles_per_image']} cycles per image{rate}; result "
                  f"{'matches' if res['matches_golden'] else 'DIFFERS FROM'} the golden model")
        if not res["matches_golden"]:
            raise RrambnnError("the board's result differs from the golden model")
        return
    from tqdm import tqdm
    with tqdm(total=len(x), desc="classifying on the board", unit="image", disable=args.json) as bar:
        res = {"port": args.port, **classify_against_golden(board, net, x, labels, progress=bar.update)}
    if args.json:
        print_json(res)
    else:
        print(f"{len(x)} test images on the board ({desc}): accuracy {res['accuracy'] * 100:.2f}%, "
              f"golden model {res['golden_accuracy'] * 100:.2f}%, {res['differ_from_golden']} results differ")
    if res["differ_from_golden"]:
        raise RrambnnError(f"{res['differ_from_golden']} of {len(x)} board results differ from the golden model "
                           f"(first: images {res['first_differences'][:5]})")


def _variant(text: str) -> str:
    """The FPGA variant's name; ``periphery``, its name before the macro variant was renamed, still works."""
    return "macro" if text == "periphery" else text


def add_fpga_commands(sub):
    from rrambnn.fpga.build import BOARDS, VARIANTS

    f = sub.add_parser("fpga", help="build an FPGA bitstream (YoWASP toolchain) and report resources and Fmax")
    f.add_argument("--board", required=True, choices=list(BOARDS), help="the board to build for")
    f.add_argument("--variant", default="emulation", type=_variant, choices=list(VARIANTS),
                   help="emulation: the whole classifier, weights in block RAM, UART host link; "
                        "macro: the digital periphery with a narrow port to an external crossbar macro "
                        "(was called periphery; that name still works)")
    weights_arg(f)
    data_arg(f)
    f.add_argument("--freq", type=float_arg, help="design clock in MHz (default: the board's for the variant: "
                                              "iCEBreaker 27; ULX3S 72 event-driven (its default fold), 50 "
                                              "folded or macro; a PLL makes it)")
    f.add_argument("--lanes", help="emulation: neurons per cycle, per layer (comma-separated) or one for all")
    f.add_argument("--chunks", help="emulation: inputs per memory word, per layer (comma-separated)")
    f.add_argument("--rows", help="emulation: event-driven layers reading only active inputs, this many row "
                                  "lanes per layer (comma-separated; the ULX3S default 32,24,16)")
    f.add_argument("--baud", type=int_arg, default=None, help="UART baud rate of the host link (default 115200)")
    f.add_argument("--out", help="build directory (default out/fpga/BOARD-VARIANT)")
    f.add_argument("--positions", type=ranged_int(1, 64), default=None,
                   help="a CNN weights file: output columns each convolution computes per step in the CNN chip "
                        "whose fit is reported (default 1)")
    f.add_argument("--tile", default=None, help="a CNN weights file: crossbar tile size ROWSxCOLS "
                                                "(default 128x128)")
    f.add_argument("--self-training", action="store_true",
                   help="the self-training chip of an n-bit online network (--weights; default the shipped "
                        "online-400-200-10.npz): synthesizes its periphery for the board and reports what keeps it "
                        "from a bitstream")
    json_arg(f)
    f.set_defaults(fn=cmd_fpga)

    b = sub.add_parser("board", help="talk to a board running the emulation bitstream over its UART")
    b.add_argument("action", choices=["info", "program", "classify", "bench"],
                   help="info: what the board runs; program: write a weights file's cells and thresholds; "
                        "classify: test images vs the golden model; bench: one image N times, timed on the board")
    b.add_argument("--port", required=True, help="serial port (e.g. /dev/ttyUSB1) or a pyserial URL")
    b.add_argument("--baud", type=int_arg, default=115200, help="UART baud rate of the host link")
    b.add_argument("--timeout", type=float_arg, default=2.0, help="seconds to wait for a reply")
    weights_arg(b)
    data_arg(b)
    b.add_argument("--images", type=int_arg, default=10000, help="classify: number of MNIST test images")
    b.add_argument("--repeat", type=int_arg, default=1_000_000, help="bench: images fed back to back")
    json_arg(b)
    b.set_defaults(fn=cmd_board)
