"""Run the inference chip's Verilog on Verilator against the golden model."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from rrambnn.gen.network import BinaryNetwork
from rrambnn.gen.verilog import ChipConfig, generate
from rrambnn.sim import runner


def simulate(net: BinaryNetwork, cfg: ChipConfig, x: np.ndarray, *, seed: int = 1,
             p_idle: float = 0.2, p_stall: float = 0.2, throughput_images: int = 1000,
             reprogram: bool = False, waves: bool | None = None, log=None) -> dict:
    """Generate, build (cached) and run the cocotb scoreboard; return the testbench's result
    plus build and wall-clock figures."""
    t = time.time()
    text, chip = generate(net, cfg)
    gen_s = time.time() - t
    if log:
        log(f"generated Verilog for {'-'.join(map(str, chip.arch))} ({cfg.tag()}) in {gen_s:.1f} s; building")
    b = runner.build(text, waves=waves, tag=cfg.tag())
    if log:
        log(f"Verilator build {'reused from cache' if b.cached else f'took {b.seconds:.1f} s'}; "
            f"simulating {len(x)} images (seed {seed})")
    run_dir = b.build_dir / "runs" / f"run-{time.time_ns()}"
    run_dir.mkdir(parents=True)
    weights = run_dir / "weights.npz"
    net.save(weights)
    images = run_dir / "images.npy"
    np.save(images, x.astype(np.uint8))
    t = time.time()
    res = runner.run_test(b, "rrambnn.sim.tb_chip", {
        "weights": str(weights), "images": str(images), "seed": seed,
        "chip": {"tile": list(cfg.tile), "pipeline": cfg.pipeline, "output": cfg.output, "debug": cfg.debug},
        "p_idle": p_idle, "p_stall": p_stall, "throughput_images": throughput_images,
        "reprogram": reprogram,
    }, test_dir=run_dir)
    res["sim_wall_s"] = round(time.time() - t, 2)
    res["build_s"] = round(b.seconds, 2)
    res["build_cached"] = b.cached
    res["generate_s"] = round(gen_s, 2)
    res["config"] = cfg.tag()
    return res
