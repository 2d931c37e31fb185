"""FPGA commands of the CLI: ``fpga`` (bitstreams) and ``board`` (the host link)."""

from __future__ import annotations

import json
from pathlib import Path

from rrambnn.errors import RrambnnError


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


def default_rows(spec, n: int, lanes=None, chunks=None, rows=None):
    """``rows``, or the board's event-driven default when no fold is given and ``spec`` has one
    for an ``n``-layer network; ``None`` for a folded twin."""
    if rows is lanes is chunks is None and spec.rows is not None and n == len(spec.rows):
        return list(spec.rows)
    return rows


def emulation_design(net, spec, *, lanes=None, chunks=None, rows=None, f_want=None, baud: int = 115200):
    """The host link around the emulation twin of ``net`` for board ``spec``: folded (``lanes``,
    ``chunks``) or event-driven (``rows``); without any of them the board's default fold (its
    ``rows`` for the reference network where it has them, else its folded ``lanes`` and ``chunks``).
    The clock is the PLL's nearest to ``f_want`` (Hz; default: the board's for that fold), and
    the link's ``clock_hz``."""
    from rrambnn.hw.folded import emulation_twin
    from rrambnn.hw.host import HostLink

    n = len(net.weights)
    if rows is not None and (lanes is not None or chunks is not None):
        raise RrambnnError("--rows (event-driven layers) excludes --lanes and --chunks (folded layers)")
    rows = default_rows(spec, n, lanes, chunks, rows)
    try:
        if rows is not None:
            twin = emulation_twin(net, rows=rows, ram_style=spec.event_ram_style)
        else:
            lanes = lanes or (list(spec.lanes) if n == len(spec.lanes) else [1] * n)
            chunks = chunks or (list(spec.chunks) if n == len(spec.chunks) else [None] * n)
            twin = emulation_twin(net, lanes=lanes, chunks=chunks, segment=spec.segment, ram_style=spec.ram_style)
    except ValueError as e:
        raise RrambnnError(str(e)) from None
    f = spec.pll(f_want or spec.emulation_clock(twin.event)).f_out
    divisor = round(f / baud)
    if divisor < 4:
        raise RrambnnError(f"a {f / 1e6:g} MHz clock cannot run the UART at {baud} baud")
    return twin, HostLink(twin, divisor, clock_hz=int(f))


def twin_timing(net, twin, data_dir=None) -> dict:
    """Cycles per image of ``twin`` for the report: a folded twin's are fixed; an event-driven
    twin's depend on the images, so they are modelled on the MNIST test set (and the worst case,
    every input active, is given too)."""
    if not twin.event:
        return {"interval_cycles": twin.interval, "latency_cycles": twin.latency}
    from rrambnn.gen.mnist import load_split
    out = {"fold": "event-driven", "worst_interval_cycles": twin.interval, "worst_latency_cycles": twin.latency}
    try:
        test = load_split("test", data_dir)
    except RrambnnError as e:
        out["interval_note"] = f"images/s not modelled: {e}"
        return out
    x = net.preprocess(test.images)
    model = twin.timing(x)
    out.update({"interval_cycles": round(model["interval"], 4), "latency_cycles": model["latency"],
                "interval_images": len(x), "layer_cycles_mean": [round(v, 3) for v in model["layer_cycles"]],
                "layer_cycles_worst": model["worst_cycles"]})
    return out


def cmd_fpga(args):
    from rrambnn.cli import load_net
    from rrambnn.fpga.build import board_spec, build
    spec = board_spec(args.board)
    net = load_net(args.weights)
    n = len(net.weights)
    if args.freq is not None and not 1 <= args.freq <= 400:
        raise RrambnnError(f"--freq must be from 1 to 400 MHz, not {args.freq!r}")
    out = Path(args.out or f"out/fpga/{spec.name}-{args.variant}")
    log = None if args.json else print
    if args.variant == "emulation":
        fold = {"lanes": _int_list(args.lanes, "lanes", n), "chunks": _int_list(args.chunks, "chunks", n),
                "rows": _int_list(args.rows, "rows", n)}
        twin, design = emulation_design(net, spec, **fold, f_want=args.freq and args.freq * 1e6, baud=args.baud)
        f_clk = design.clock_hz
        extra = {"variant": "emulation", "arch": list(net.arch), "lanes": [layer.lanes for layer in twin.layers],
                 "chunks": [layer.chunk for layer in twin.layers], "depths": [layer.depth for layer in twin.layers],
                 "baud": args.baud, "link_images_per_s": round(args.baud / 10 / (1 + -(-net.arch[0] // 8)), 1)}
        if twin.event:
            extra["rows"] = [layer.rows for layer in twin.layers]
        extra.update(twin_timing(net, twin, args.data))
        interval = extra.get("interval_cycles")
    else:
        f_clk = spec.pll(args.freq * 1e6 if args.freq else spec.f_periphery).f_out
        from rrambnn.fpga.periphery import periphery_design
        design, extra = periphery_design(net, f_clk=f_clk, baud=args.baud)
        interval = extra.get("interval_cycles")
    report = build(spec, design, out, f_clk=f_clk, name=f"rrambnn_{args.variant}", interval=interval,
                   extra=extra, log=log)
    if args.json:
        print(json.dumps(report, indent=2))
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
        print(f"  host link: UART {args.baud} baud, up to {report['link_images_per_s']:g} images/s over the wire; "
              f"`rrambnn board bench` measures the core on the board")
    print(f"  report {report['report']}; {report['build_s']:g} s")


def _open_board(args):
    from rrambnn.fpga.host import Board, open_serial
    return Board(open_serial(args.port, args.baud), timeout=args.timeout, name=f"the board on {args.port}")


def cmd_board(args):
    import numpy as np

    from rrambnn.cli import load_net
    board = _open_board(args)
    info = board.query()
    desc = (f"{'-'.join(map(str, info.arch))} network, lanes {list(info.lanes)}, chunks {list(info.chunks)}, "
            f"output {info.output}, clock {info.clock_hz / 1e6:g} MHz")
    if args.action == "info":
        if args.json:
            print(json.dumps(info.__dict__, indent=2))
        else:
            print(f"{args.port}: rrambnn emulation board, protocol {info.version}: {desc}")
        return
    net = load_net(args.weights)
    from rrambnn.fpga.host import twin_for
    twin_for(net, info)  # the board must run this network's shape and fold
    if args.action == "program":
        from tqdm import tqdm
        total = sum(c.size + len(t) for c, t in zip(net.cells, net.thresholds))
        with tqdm(total=total, desc="writing cells and thresholds", unit="write", disable=args.json) as bar:
            n = board.program(net, progress=bar.update)
        res = {"port": args.port, "writes": n}
        print(json.dumps(res) if args.json else f"wrote {n} cells and thresholds to the board on {args.port}")
        return
    from rrambnn.cli_hw import _test_images
    x, labels = _test_images(net, args)
    if args.action == "bench":
        res = board.bench(x[0], args.repeat)
        golden = net.forward(x[:1])
        want = (int(golden.labels(info.output)[0]), int(golden.hit[0]))
        res["matches_golden"] = tuple(res["result"]) == want
        if args.json:
            print(json.dumps(res, indent=2))
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
        got = board.classify(x, progress=bar.update)
    t = net.forward(x)
    want = np.stack([t.labels(info.output), t.hit.astype(np.int64)], axis=1)
    differ = np.flatnonzero((got != want).any(axis=1))
    res = {"port": args.port, "images": len(x), "accuracy": float((got[:, 0] == labels).mean()),
           "golden_accuracy": float((want[:, 0] == labels).mean()), "differ_from_golden": len(differ),
           "first_differences": differ[:10].tolist()}
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print(f"{len(x)} test images on the board ({desc}): accuracy {res['accuracy'] * 100:.2f}%, "
              f"golden model {res['golden_accuracy'] * 100:.2f}%, {len(differ)} results differ")
    if len(differ):
        raise RrambnnError(f"{len(differ)} of {len(x)} board results differ from the golden model "
                           f"(first: images {differ[:5].tolist()})")


def add_fpga_commands(sub):
    from rrambnn.cli import _data_arg, _weights_arg
    from rrambnn.fpga.build import BOARDS, VARIANTS

    f = sub.add_parser("fpga", help="build an FPGA bitstream (YoWASP toolchain) and report resources and Fmax")
    f.add_argument("--board", required=True, choices=list(BOARDS))
    f.add_argument("--variant", default="emulation", choices=list(VARIANTS),
                   help="emulation: the whole classifier, weights in block RAM, UART host link; "
                        "periphery: the digital periphery with a narrow port to an external crossbar macro")
    _weights_arg(f)
    _data_arg(f)
    f.add_argument("--freq", type=float, help="design clock in MHz (default: the board's for the variant: "
                                              "iCEBreaker 27; ULX3S 72 event-driven (its default fold), 50 "
                                              "folded or periphery; a PLL makes it)")
    f.add_argument("--lanes", help="emulation: neurons per cycle, per layer (comma-separated) or one for all")
    f.add_argument("--chunks", help="emulation: inputs per memory word, per layer (comma-separated)")
    f.add_argument("--rows", help="emulation: event-driven layers reading only active inputs, this many row "
                                  "lanes per layer (comma-separated; the ULX3S default 32,24,16)")
    f.add_argument("--baud", type=int, default=115200)
    f.add_argument("--out", help="build directory (default out/fpga/BOARD-VARIANT)")
    f.add_argument("--json", action="store_true")
    f.set_defaults(fn=cmd_fpga)

    b = sub.add_parser("board", help="talk to a board running the emulation bitstream over its UART")
    b.add_argument("action", choices=["info", "program", "classify", "bench"],
                   help="info: what the board runs; program: write a weights file's cells and thresholds; "
                        "classify: test images vs the golden model; bench: one image N times, timed on the board")
    b.add_argument("--port", required=True, help="serial port (e.g. /dev/ttyUSB1) or a pyserial URL")
    b.add_argument("--baud", type=int, default=115200)
    b.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for a reply")
    _weights_arg(b)
    _data_arg(b)
    b.add_argument("--images", type=int, default=10000, help="classify: number of MNIST test images")
    b.add_argument("--repeat", type=int, default=1_000_000, help="bench: images fed back to back")
    b.add_argument("--json", action="store_true")
    b.set_defaults(fn=cmd_board)
