"""Hardware benchmark: Verilator build time of the full network and cocotb throughput."""

from __future__ import annotations

import os
import tempfile
import time

from rrambnn.gen.network import BinaryNetwork
from rrambnn.hw.verilog import ChipConfig, generate, synth_stats


def run(net: BinaryNetwork, test_split, images: int = 10000) -> dict:
    """Fresh (uncached) build of the reference chip with the debug payload, then the
    scoreboard over ``images`` test images with random idles/backpressure and a
    free-flowing throughput phase."""
    from rrambnn.sim import chip_sim

    x = net.preprocess(test_split.images[:images])
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        old = os.environ.get("RRAMBNN_CACHE")
        os.environ["RRAMBNN_CACHE"] = cache
        try:
            for output, pipeline in (("priority", False), ("argmax", True)):
                cfg = ChipConfig((128, 128), pipeline, output, debug=True)
                res = chip_sim.simulate(net, cfg, x, seed=1, throughput_images=min(images, 5000))
                out[cfg.tag()] = {
                    "passed": res["passed"], "mismatches": res["mismatches"], "images": res["images"],
                    "verilator_build_s": res["build_s"], "generate_s": res["generate_s"],
                    "random_traffic_images_per_s": res["random_phase"]["images_per_s"],
                    "free_flow_images_per_s": res["throughput"]["images_per_s"],
                    "images_per_cycle": res["throughput"]["images_per_cycle"],
                    "latency_cycles": res["throughput"]["latency_cycles"],
                }
                text, _ = generate(net, ChipConfig((128, 128), pipeline, output))
                t = time.time()
                stats = synth_stats(text)
                out[cfg.tag()]["yosys_cells_periphery"] = stats["cells"]
                out[cfg.tag()]["yosys_flipflops"] = sum(v for k, v in stats["cells_by_type"].items() if "DFF" in k)
                out[cfg.tag()]["yosys_s"] = round(time.time() - t, 1)
        finally:
            if old is None:
                os.environ.pop("RRAMBNN_CACHE", None)
            else:
                os.environ["RRAMBNN_CACHE"] = old
    return out


def describe(res: dict) -> list[str]:
    lines = []
    for tag, r in res.items():
        lines.append(
            f"{tag}: Verilator build {r['verilator_build_s']} s (+{r['generate_s']} s generation); "
            f"{r['images']} images, {r['mismatches']} mismatches; cocotb {r['random_traffic_images_per_s']:,} "
            f"images/s with random idles/backpressure, {r['free_flow_images_per_s']:,} free-flowing; "
            f"{r['images_per_cycle']} image/clock, latency {r['latency_cycles']}; Yosys: "
            f"{r['yosys_cells_periphery']} cells ({r['yosys_flipflops']} flip-flops) for the periphery")
    return lines
