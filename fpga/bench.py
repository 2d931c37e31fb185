"""FPGA benchmark: for each board, the emulation bitstream (resources, Fmax, images/s), the
periphery bitstream, and the board's fold of the twin on Verilator against the golden model
on the whole test set (stream regression and the UART link)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from rrambnn.errors import RrambnnError


def run(net, test_split, *, boards=("icebreaker", "ulx3s-85f"), images: int = 10000, link_images: int = 1000,
        log=print) -> dict:
    from rrambnn.cli_fpga import emulation_design, twin_timing
    from rrambnn.fpga.build import board_spec, build
    from rrambnn.fpga.periphery import periphery_design
    from rrambnn.sim.chip_sim import simulate_folded, simulate_host

    x = net.preprocess(test_split.images[:images])
    out = {}
    for name in boards:
        spec = board_spec(name)
        res = {}
        with tempfile.TemporaryDirectory(dir=".") as d:
            twin, design = emulation_design(net, spec)
            timing = twin_timing(net, twin)
            for variant, (dsg, interval, extra, f_clk) in {
                "emulation": (design, timing.get("interval_cycles"), timing, design.clock_hz),
                "periphery": (*_periphery(net, spec, periphery_design), {}, spec.f_periphery),
            }.items():
                try:
                    rep = build(spec, dsg, Path(d) / variant, f_clk=f_clk, interval=interval, extra=extra, log=log)
                except RrambnnError as e:
                    rep = {"error": str(e)}
                rep.pop("report", None)
                rep.pop("bitstream", None)
                res[variant] = rep
        rows = [layer.rows for layer in twin.layers] if twin.event else None
        lanes = None if rows else [layer.lanes for layer in twin.layers]
        chunks = None if rows else [layer.chunk for layer in twin.layers]
        sim = simulate_folded(net, lanes, net.output_mode, x, chunks=chunks, rows=rows, segment=spec.segment, seed=1,
                              throughput_images=len(x) if rows else 500, log=log)
        res["verilator_regression"] = {"images": sim["images"], "mismatches": sim["mismatches"],
                                       "passed": sim["passed"], "cycles_per_image": sim["throughput"]["cycles_per_image"],
                                       "interval_cycles": timing.get("interval_cycles"),
                                       "latency_cycles": timing.get("latency_cycles")}
        if rows:
            res["verilator_regression"]["timing_mismatches"] = sim["throughput"]["timing_mismatches"]
            res["verilator_regression"]["measured_cycles_per_image"] = sim["throughput"]["measured_cycles_per_image"]
        link = simulate_host(net, lanes, chunks, x[:link_images], segment=spec.segment, rows=rows, seed=1, log=log)
        res["uart_link_regression"] = {"images": link["images"], "mismatches": link["mismatches"],
                                       "passed": link["passed"], "bench": link["bench"]}
        out[name] = res
    return out


def _periphery(net, spec, periphery_design):
    design, extra = periphery_design(net, f_clk=spec.f_periphery)
    return design, extra["interval_cycles"]


def describe(res: dict) -> list[str]:
    lines = []
    for board, r in res.items():
        for variant in ("emulation", "periphery"):
            e = r[variant]
            if "error" in e:
                lines.append(f"{board} {variant}: {e['error']}")
                continue
            lines.append(f"{board} {variant}: {e['clock_mhz']:g} MHz (Fmax {e['fmax_mhz']:g}), {e['logic_cells']}/"
                         f"{e['logic_cells_available']} logic cells, {e['luts']} LUT4, {e['ffs']} FFs, "
                         f"{e['bram']}/{e['bram_available']} block RAMs; {e['interval_cycles']:g} cycles/image = "
                         f"{e['images_per_s']:,} images/s; build {e['build_s']:g} s")
        v, u = r["verilator_regression"], r["uart_link_regression"]
        if "timing_mismatches" in v:  # event-driven: the mean over every image, each at the model's cycle
            pace = (f"{v['measured_cycles_per_image']} cycles/image over all of them, "
                    f"{v['timing_mismatches']} off the cycle model")
        else:
            pace = f"{v['cycles_per_image']} cycles/image"
        lines.append(f"{board} fold on Verilator: {v['images']} images, {v['mismatches']} mismatches, {pace}; "
                     f"UART link: {u['images']} images, {u['mismatches']} mismatches, bench "
                     f"{u['bench']['cycles_per_image']} cycles/image")
    return lines
