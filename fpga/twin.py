"""The board flow's designs: the emulation twin of a network on a board (its fold, its clock
from the board's PLL, the UART host link around it), its cycles per image, and the bitstream
build of either variant."""

from __future__ import annotations

from pathlib import Path

from rrambnn.errors import RrambnnError


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


def build_bitstream(net, spec, variant: str, out: Path, *, lanes=None, chunks=None, rows=None, freq_mhz=None,
                    baud: int = 115200, data_dir=None, log=None) -> dict:
    """Build ``variant`` (emulation: the twin behind its UART host link; macro: the digital
    periphery of a test chip whose arrays are an external crossbar macro) of ``net`` for board ``spec`` into ``out``: the
    report of :func:`rrambnn.fpga.build.build` with the design's fold and cycles per image."""
    from rrambnn.fileio import check_writable
    from rrambnn.fpga.build import build
    from rrambnn.fpga.host import check_baud
    check_writable(out, directory=True)
    if freq_mhz is not None and not 1 <= freq_mhz <= 400:
        raise RrambnnError(f"--freq must be from 1 to 400 MHz, not {freq_mhz!r}")
    check_baud(baud)
    if variant == "emulation":
        twin, design = emulation_design(net, spec, lanes=lanes, chunks=chunks, rows=rows,
                                        f_want=freq_mhz and freq_mhz * 1e6, baud=baud)
        f_clk = design.clock_hz
        extra = {"variant": "emulation", "arch": list(net.arch), "lanes": [layer.lanes for layer in twin.layers],
                 "chunks": [layer.chunk for layer in twin.layers], "depths": [layer.depth for layer in twin.layers],
                 "baud": baud, "link_images_per_s": round(baud / 10 / (1 + -(-net.arch[0] // 8)), 1)}
        if twin.event:
            extra["rows"] = [layer.rows for layer in twin.layers]
        extra.update(twin_timing(net, twin, data_dir))
    else:
        from rrambnn.fpga.macro import macro_design
        f_clk = spec.pll(freq_mhz * 1e6 if freq_mhz else spec.f_macro).f_out
        design, extra = macro_design(net, f_clk=f_clk, baud=baud)
    return build(spec, design, out, f_clk=f_clk, name=f"rrambnn_{variant}", interval=extra.get("interval_cycles"),
                 extra=extra, log=log)
