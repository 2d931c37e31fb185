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
