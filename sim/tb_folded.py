"""cocotb testbench of the emulation twin (:class:`rrambnn.hw.folded.FoldedNetwork` or
:class:`rrambnn.hw.folded.EventNetwork`).

Image driver with random idle cycles -> DUT -> result monitor with random backpressure ->
golden model -> in-order checker of class and hit for every image; then a free-flowing phase
measures the images per clock. Configuration arrives as JSON through $RRAMBNN_TB_CONFIG
(written by :func:`rrambnn.sim.chip_sim.simulate_folded`); the seed is logged.
"""

from __future__ import annotations

import gc
import time

import cocotb

from rrambnn.gen.network import answers
from rrambnn.hw.crossbar import _bits
from rrambnn.sim.runner import write_result
from rrambnn.sim.tb_chip import ImageDriver, Monitor, pack_rows, read_config, start, stream


@cocotb.test()
async def folded_matches_golden(dut):
    cfg, net, x, seed, rng = read_config(dut)
    t = net.forward(x)
    want = [(int(c), int(h)) for c, h in zip(t.labels(cfg["twin"]["output"]), t.hit)]
    images = pack_rows(x)
    cls_w = _bits(net.arch[-1])  # the payload: cls, then hit
    gc.freeze()

    await start(dut, [(dut.i__valid, 0), (dut.o__ready, 0), (dut.wr__valid, 0)])

    driver = ImageDriver(dut, rng, cfg.get("p_idle", 0.2))
    results = Monitor(dut.o__valid, dut.o__ready, dut.o__payload, rng, cfg.get("p_stall", 0.2))
    t0 = time.perf_counter()
    per_image = 4 * int(cfg["interval"]) + 100  # random idles and stalls included
    cycle = await stream(dut, driver, results, images, range(len(x)), 0, per_image)
    wall = time.perf_counter() - t0
    got = [(v & ((1 << cls_w) - 1), (v >> cls_w) & 1) for v in results.received]
    mismatches = [i for i, (g, w) in enumerate(zip(got, want)) if g != w]

    # free-flowing: images per clock
    n_tp = min(len(x), int(cfg.get("throughput_images", 500)))
    driver.p_idle, results.p_stall = 0.0, 0.0
    first = len(driver.accept_cycles)
    cycle = await stream(dut, driver, results, images, range(n_tp), cycle, per_image)
    acc = driver.accept_cycles[first:]
    throughput = {"images": n_tp, "cycles_per_image": steady_rate(acc)}
    timing_errors = []
    if cfg["twin"]["rows"]:  # event-driven: every acceptance at the cycle the model says
        from rrambnn.hw.folded import emulation_twin
        model = emulation_twin(net, **cfg["twin"]).timing(x[:n_tp])
        rel = [a - acc[0] for a in acc]
        want_rel = [a - model["accept"][0] for a in model["accept"]]
        timing_errors = [i for i, (g, w) in enumerate(zip(rel, want_rel)) if g != w]
        throughput.update({"model_cycles_per_image": round(model["interval"], 4),
                           "measured_cycles_per_image": round((acc[-1] - acc[0]) / max(1, n_tp - 1), 4),
                           "model_span": want_rel[-1], "measured_span": rel[-1],
                           "timing_mismatches": len(timing_errors)})
    result = {"seed": seed, "images": len(x), "checked": len(got), "mismatches": len(mismatches),
              "examples": [{"image": i, "got": got[i], "want": want[i]} for i in mismatches[:10]],
              "hw_labels": answers([g[0] for g in got], [g[1] for g in got], cfg["twin"]["output"]).tolist(), "random_phase": {"cycles": cycle, "wall_s": round(wall, 2),
                                                                 "images_per_s": round(len(x) / wall, 1)},
              "throughput": throughput}
    write_result(cfg, result)
    assert not mismatches, f"{len(mismatches)} mismatches, first {result['examples'][:3]}"
    assert not timing_errors, f"{len(timing_errors)} images accepted off the cycle model, first {timing_errors[:3]}"


def steady_rate(accept_cycles: list[int]) -> float:
    """Mean cycles between acceptances over the last even-length window (skipping the first
    images, which fill the pipeline; the rate may alternate between two values)."""
    w = max(1, min(len(accept_cycles) - 1 - 10, 200))
    w -= w % 2 if w > 1 else 0
    return round((accept_cycles[-1] - accept_cycles[-1 - w]) / w, 3)
