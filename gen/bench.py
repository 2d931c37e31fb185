"""Golden-inference benchmark: the integer network beside a plain float matmul network."""

from __future__ import annotations

import os
import platform
import time

import numpy as np

from rrambnn.gen.network import BinaryNetwork


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__}


def _best_rate(fn, n_images, repeats):
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return n_images / best


def golden_inference(net: BinaryNetwork, x: np.ndarray, repeats: int = 5) -> dict:
    """Images/s of the hardware-exact network (labels only, and with every layer's trace)
    beside a float32 network of the same shape (matmul + bias + ReLU, argmax)."""
    rng = np.random.default_rng(0)
    fw = [rng.standard_normal(w.shape).astype(np.float32) for w in net.weights]
    fb = [rng.standard_normal(w.shape[1]).astype(np.float32) for w in net.weights]
    xf = x.astype(np.float32)

    def float_net():
        for i in range(0, len(xf), 8192):
            a = xf[i:i + 8192]
            for k, (w, b) in enumerate(zip(fw, fb)):
                a = a @ w + b
                if k < len(fw) - 1:
                    np.maximum(a, 0, out=a)
            a.argmax(axis=1)

    net.forward(x[:100], trace=False)  # warm-up
    labels = _best_rate(lambda: net.forward(x, trace=False), len(x), repeats)
    traced = _best_rate(lambda: net.forward(x, trace=True), len(x), repeats)
    flt = _best_rate(float_net, len(x), repeats)
    return {
        "images": len(x),
        "golden_images_per_s": round(labels),
        "golden_traced_images_per_s": round(traced),
        "float_matmul_images_per_s": round(flt),
        "golden_over_float": round(labels / flt, 3),
        "machine": machine(),
    }


def online_training(data, *, epochs: int = 50, samples: int | None = None, fail_samples: int = 200,
                    progress: bool = False) -> dict:
    """The n-bit golden trainer on 400-200-10 (8-bit weights, blank start) for ``epochs`` epochs
    with the device model on (yield 0.99 in every plane, endurance 10,000; no pulse failures, the
    vectorised path), then the first ``fail_samples`` of a run with pulse failures (p = 0.01: weight by
    weight; a blank start, where updates are densest)."""
    from rrambnn.gen import learning
    from rrambnn.gen.device import DeviceParams

    cfg = learning.NbitConfig(bits=8, device=DeviceParams(yield_=0.99, endurance=10_000))
    t = time.perf_counter()
    r = learning.run((400, 200, 10), cfg, data, epochs=epochs, samples=samples, progress=progress,
                     desc="bench online")
    wall = time.perf_counter() - t
    res = r["result"]
    n = res["samples_per_epoch"] * epochs
    fail_cfg = learning.NbitConfig(bits=8, device=DeviceParams(yield_=0.99, p_fail=0.01, endurance=10_000))
    k = min(fail_samples, len(data[0]))
    t = time.perf_counter()
    learning.run((400, 200, 10), fail_cfg, (data[0][:k], data[1][:k], data[2][:100], data[3][:100]), epochs=1,
                 samples=k)
    fail_wall = time.perf_counter() - t
    return {"network": "400-200-10", "bits": 8, "epochs": epochs, "samples": n, "seconds": round(wall, 1),
            "samples_per_s": round(n / wall), "device": {"yield": 0.99, "endurance": 10_000, "p_fail": 0.0},
            "peak_argmax": res["best"]["argmax"], "switches": res["switches"]["total"],
            "pulse_failure_path": {"samples": k, "p_fail": 0.01, "seconds": round(fail_wall, 1),
                                   "samples_per_s": round(k / fail_wall)},
            "machine": machine()}
