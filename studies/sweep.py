"""Accuracy against device non-idealities (golden model), with tables and plots."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rrambnn.errors import RrambnnError
from rrambnn.fileio import json_text, one_output_set, save_figure, write_text
from rrambnn.gen import device as dev
from rrambnn.gen import planes
from rrambnn.gen.network import BinaryNetwork


def parse_floats(text: str, name: str, lo: float, hi: float, *, integer: bool = False) -> list[float]:
    """A comma-separated list of numbers from ``lo`` to ``hi`` (whole numbers with ``integer``)."""
    what = "whole numbers" if integer else "numbers"
    try:  # every element a finite number: no empty element, no NaN or infinity
        vals = [float(v) for v in str(text).split(",")]
    except ValueError:
        raise RrambnnError(f"{name} must be a comma-separated list of {what}, not {text!r}") from None
    if not all(math.isfinite(v) for v in vals) or (integer and any(v != int(v) for v in vals)):
        raise RrambnnError(f"{name} must be a comma-separated list of finite {what}, not {text!r}")
    if not vals or any(not lo <= v <= hi for v in vals):
        raise RrambnnError(f"{name} must lie between {lo} and {hi}, not {text!r}")
    return vals


def programmed_network(net: BinaryNetwork, params: dev.DeviceParams, *, tile=(128, 128),
                       retries=3) -> tuple[BinaryNetwork, dict]:
    """The network the chip holds after write-verify programming on a device (from all-HRS)."""
    faults = dev.device_faults(net.arch, params)
    if params.p_fail == 0.0 and params.endurance == 0:
        cells = dev.programmed_cells_ideal_pulses(net.cells, faults, params)
        stuck_wrong = int(sum(((c != t) & (f != 0)).sum() for c, t, f in zip(cells, net.cells, faults)))
        info = {"cells_failed": stuck_wrong}
    else:  # every tile's write-verify outcomes at once (the same as dev.program_network's replay)
        cells, (n_set, n_reset), failed, _ = planes.program_layers(net.cells, faults, params, tile=tile,
                                                                     retries=retries)
        info = {"pulses_set": n_set, "pulses_reset": n_reset, "cells_failed": len(failed)}
    weights = [np.where(c == 1, 1, -1).astype(np.int8) for c in cells]
    return BinaryNetwork(weights, [t.copy() for t in net.thresholds], net.preprocess, net.output_mode, {}), info


def sweep_yield(net: BinaryNetwork, x, labels, yields, seeds, *, p_fail=0.0, retries=3, progress=True) -> dict:
    rows = []
    bar = tqdm(total=len(yields) * len(seeds), desc="yield sweep", unit="chip", disable=not progress)
    for y in yields:
        for s in seeds:
            faulty, info = programmed_network(net, dev.DeviceParams(y, p_fail, 0, s), retries=retries)
            acc = faulty.accuracy(x, labels)
            rows.append({"yield": y, "seed": s, **acc, "cells_failed": info["cells_failed"]})
            bar.update()
    bar.close()
    summary = []
    for y in yields:
        sel = [r for r in rows if r["yield"] == y]
        entry = {"yield": y}
        for mode in ("priority", "argmax"):
            v = np.array([r[mode] for r in sel])
            entry[mode] = {"mean": float(v.mean()), "std": float(v.std()), "min": float(v.min()), "max": float(v.max())}
        entry["cells_failed_mean"] = float(np.mean([r["cells_failed"] for r in sel]))
        entry["rejects_mean"] = float(np.mean([r["rejects"] for r in sel]))
        summary.append(entry)
    return {"points": rows, "summary": summary, "seeds": list(seeds), "p_fail": p_fail, "retries": retries}


def markdown_table(res: dict) -> str:
    lines = ["| bit yield | priority (mean ± std) | argmax (mean ± std) | worst priority | priority rejects (mean) "
             "| cells wrong (mean) |",
             "|---|---|---|---|---|---|"]
    for e in res["summary"]:
        p, a = e["priority"], e["argmax"]
        lines.append(f"| {e['yield']:.3f} | {p['mean'] * 100:.2f} ± {p['std'] * 100:.2f}% | "
                     f"{a['mean'] * 100:.2f} ± {a['std'] * 100:.2f}% | {p['min'] * 100:.2f}% | "
                     f"{e['rejects_mean']:.0f} | {e['cells_failed_mean']:.0f} |")
    return "\n".join(lines)


def plot_yield(res: dict, path: Path, title: str):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ys = [e["yield"] for e in res["summary"]]
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for mode, color in (("priority", "tab:blue"), ("argmax", "tab:orange")):
        m = np.array([e[mode]["mean"] for e in res["summary"]]) * 100
        s = np.array([e[mode]["std"] for e in res["summary"]]) * 100
        lo = np.array([e[mode]["min"] for e in res["summary"]]) * 100
        hi = np.array([e[mode]["max"] for e in res["summary"]]) * 100
        ax.plot(ys, m, "o-", color=color, label=f"{mode} (mean of {len(res['seeds'])} chips)")
        ax.fill_between(ys, lo, hi, color=color, alpha=0.15, label=f"{mode} min..max")
        ax.errorbar(ys, m, yerr=s, fmt="none", ecolor=color, capsize=3)
    ax.set_xlabel("bit yield (fraction of programmable cells)")
    ax.set_ylabel("MNIST test accuracy (%)")
    ax.set_title(title)
    ax.invert_xaxis()
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


@one_output_set  # the three files together, or the earlier ones left whole
def write_outputs(res: dict, out_dir: Path, stem: str, title: str) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / f"{stem}.json", "md": out_dir / f"{stem}.md", "png": out_dir / f"{stem}.png"}
    write_text(paths["json"], json_text(res, indent=2) + "\n")
    write_text(paths["md"], markdown_table(res) + "\n")
    plot_yield(res, paths["png"], title)
    return {k: str(v) for k, v in paths.items()}


def yield_study(net: BinaryNetwork, out: Path, *, yields: str, seeds: int = 5, p_fail: float = 0.0, retries: int = 3,
                spot_checks: int = 1, spot_images: int = 2000, data_dir=None, progress: bool = False) -> dict:
    """`rrambnn sweep yield`: accuracy against bit yield over ``seeds`` chips per point (golden
    model), the first ``spot_checks`` faulty points also on Verilator; table, JSON and plot in
    ``out``."""
    from rrambnn.gen.mnist import load_split
    values = parse_floats(yields, "--yields", 0.0, 1.0)
    dev.check_retries(retries)
    if seeds < 1:
        raise RrambnnError(f"--seeds must be a positive integer, not {seeds}")
    from rrambnn.fileio import check_writable
    out = check_writable(out, directory=True, files=("yield.json", "yield.md", "yield.png"))
    te = load_split("test", data_dir)
    x = net.preprocess(te.images)
    res = sweep_yield(net, x, te.labels, values, list(range(seeds)), p_fail=p_fail, retries=retries,
                      progress=progress)
    res["network"] = "-".join(map(str, net.arch))
    spot = []
    if spot_checks:
        from rrambnn.hw.config import ChipConfig
        from rrambnn.sim.chip_sim import simulate
        faulty_points = [y for y in values if y < 1.0][:spot_checks] or values[:spot_checks]
        for y in faulty_points:
            params = dev.DeviceParams(y, p_fail, 0, 0)
            faulty, _ = programmed_network(net, params, retries=retries)
            n = min(spot_images, len(x))
            cfg = ChipConfig.checked("128x128", False, net.output_mode, True, device=params)
            r = simulate(faulty, cfg, x[:n], seed=1, throughput_images=0)
            hw = np.array(r.pop("hw_labels"))
            spot.append({"yield": y, "seed": 0, "images": n, "passed": r["passed"], "mismatches": r["mismatches"],
                         "hw_accuracy": float((hw == te.labels[:n]).mean())})
    res["spot_checks"] = spot
    res["files"] = write_outputs(res, out, "yield", f"{res['network']}: accuracy vs bit yield")
    return res
