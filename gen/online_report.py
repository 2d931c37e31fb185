"""Online training results: text, JSON, plots; the sweeps over weight bits and endurance."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def describe_run(res: dict) -> list[str]:
    d = res["device"]
    if res.get("forward") == "nbit":
        r = res["rule"]
        how = (f"n-bit forward: {r['weight_bits']}-bit weights, {r['neuron_bits']}-bit neurons, {r['error_bits']}-bit "
               f"errors, eta 2^-{r['lr_shift']} halving every {r['decay_epochs'] or 'never'} epochs")
    else:
        how = f"sign forward: {res['bits']}-bit weights, {res['err_bits']}-bit errors, batch {res['batch']}"
    lines = [f"online training of {'-'.join(map(str, res['arch']))} from a {res['start']} start ({how}), "
             f"{res['samples_per_epoch']} images/epoch; device yield {d['yield']}, pulse failure {d['p_fail']}, "
             f"endurance {d['endurance'] or 'unlimited'}",
             "| epoch | priority | argmax | rejects | weight updates | SET pulses | RESET pulses | failed cells | s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for e in res["per_epoch"]:
        lines.append(f"| {e['epoch']} | {e['priority'] * 100:.2f}% | {e['argmax'] * 100:.2f}% | {e.get('rejects', '-')} | "
                     f"{e['weight_updates']:,} | {e['pulses_set']:,} | {e['pulses_reset']:,} | {e['cells_failed']:,} | "
                     f"{e['seconds']} |")
    sw = res["switches"]
    lines.append("switches per bit position: " + ", ".join(f"{p} {n:,} (max {m}/cell)" for p, n, m in
                                                          zip(sw["planes"], sw["switches"], sw["max_per_cell"])))
    if sw.get("worn_out_cells"):
        lines.append("cells worn out: " + ", ".join(f"{p} {n:,}" for p, n in zip(sw["planes"], sw["worn_out_cells"])))
    if "replay" in res and res.get("forward") == "nbit":
        r = res["replay"]
        fwd = "all equal" if not r["forward_mismatches"] else f"{r['forward_mismatches']} DIFFER"
        lines.append(f"training chip on Verilator: {r['samples']} samples ({r['commands']:,} update commands, "
                     f"{r['cycles']:,} cycles, {r['cycles_per_sample']} per sample); forward passes "
                     f"{fwd}; "
                     f"counters {'equal' if r['hardware'] == r['golden'] else 'DIFFER'}; failed-cell stream "
                     f"{'equal' if r['failed_match'] else 'DIFFERS'} ({r['failed_cells']} cells); {r['cells_read']:,} cells "
                     f"read back, {r['cell_mismatches']} cell and {r['count_mismatches']} counter mismatches; "
                     f"{r['class_mismatches']} of {r['images']} test images differ")
    elif "replay" in res:
        r = res["replay"]
        lines.append(f"hardware replay on Verilator: {r['commands']} commands, {r['hardware']['weight_updates']:,} weight "
                     f"updates, {r['cycles']:,} cycles; counters {'equal' if r['hardware'] == r['golden'] else 'DIFFER'}; "
                     f"failed-cell stream {'equal' if r['failed_match'] else 'DIFFERS'} ({r['failed_cells']} cells); "
                     f"{r['cells_read']:,} cells read back, {r['cell_mismatches']} cell and {r['count_mismatches']} "
                     f"counter mismatches; {r['class_mismatches']} of {r['images']} classifications differ")
    return lines


def write_run(res: dict, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "online.json", "accuracy": out / "accuracy.png", "switches": out / "switches.png"}
    paths["json"].write_text(json.dumps(res, indent=2) + "\n")
    plt = _plt()
    ep = [e["epoch"] for e in res["per_epoch"]]
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for mode, color in (("priority", "tab:blue"), ("argmax", "tab:orange")):
        ax.plot(ep, [e[mode] * 100 for e in res["per_epoch"]], "o-", color=color, label=mode)
    ax.set_xlabel("epoch (0 = before training)")
    ax.set_ylabel("MNIST test accuracy (%)")
    ax.set_title(f"{'-'.join(map(str, res['arch']))}, {res['bits']}-bit weights, {res['start']} start")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(paths["accuracy"])
    plt.close(fig)
    plot_switches(res["switches"], paths["switches"], f"switches per bit position ({res['bits']}-bit weights)")
    if "histogram" in res["switches"]:
        paths["histogram"] = out / "switch_histogram.png"
        plot_histogram(res["switches"]["histogram"], paths["histogram"],
                       f"cells by switch count ({res['bits']}-bit weights, {res['epochs']} epochs)")
    return {k: str(v) for k, v in paths.items()}


def plot_histogram(hist: dict, path: Path, title: str):
    """Cells per switch-count decade (0, 1-9, 10-99, ...): how much of the array wears."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    edges = hist["edges"]
    labels = ["0"] + [f"{a:,}-{b - 1:,}" for a, b in zip(edges[1:], edges[2:] + [None])
                      if b is not None] + [f">= {edges[-1]:,}"]
    labels = labels[:len(hist["cells"])]
    ax.bar(range(len(hist["cells"])), hist["cells"], color="tab:purple")
    for i, c in enumerate(hist["cells"]):
        ax.text(i, c, f"{c:,}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_yscale("symlog")
    ax.margins(y=0.2)
    ax.set_xlabel("switches of a cell over the run")
    ax.set_ylabel("cells (all planes, both layers)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_switches(sw: dict, path: Path, title: str):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    x = np.arange(len(sw["planes"]))
    ax.bar(x, sw["mean_per_cell"], color="tab:green", label="mean switches per cell")
    ax.plot(x, sw["max_per_cell"], "kx", label="most switched cell")
    ax.set_xticks(x, sw["planes"])
    ax.set_yscale("symlog")
    ax.margins(y=0.15)
    ax.set_xlabel("bit position (b0 / mag0 = least significant bit)")
    ax.set_ylabel("switches")
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# -- sweeps ---------------------------------------------------------------------------

_DATA: dict = {}  # per worker process: the preprocessed dataset, loaded once for all its points


def _point(arch_args: dict, point: dict) -> dict:
    """One sweep point in a worker process."""
    import argparse

    from rrambnn.cli_online import _config, _data, _network, run_online
    args = argparse.Namespace(**arch_args)
    net = _network(args)
    cfg = _config(args, bits=point.get("bits"), endurance=point.get("endurance"))
    key = (args.data, args.forward, args.arch)
    if key not in _DATA:
        _DATA[key] = _data(net, args.data)
    r = run_online(net, cfg, _DATA[key], args)
    return {**point, **r["result"]}


def sweep(net, args, points: list[dict], *, jobs: int, progress: bool) -> dict:
    """Run every point (in ``jobs`` processes); each is a full online-training run."""
    from tqdm import tqdm
    keys = ("forward", "arch", "weights", "start", "bits", "act_bits", "err_bits", "lr_shift", "decay", "range_shift",
            "restore", "batch", "margin", "window", "init_magnitude", "epochs", "samples", "yield_", "pulse_fail",
            "endurance", "retries", "seed", "data")
    arch_args = {k: getattr(args, k) for k in keys}
    rows = []
    bar = tqdm(total=len(points), desc=f"sweep {args.what}", unit="point", disable=not progress)
    # every finished point is kept beside the outputs, so a stopped sweep resumes where it was
    cache = Path(args.out) / f".{args.what}-points"
    cache.mkdir(parents=True, exist_ok=True)

    def path_of(pt):
        key = hashlib.sha1(json.dumps({**arch_args, **pt}, sort_keys=True, default=str).encode()).hexdigest()[:16]
        return cache / f"{args.what}-{pt[args.what]}-{key}.json"

    def keep(pt, row):
        from rrambnn.fileio import atomic_write
        atomic_write(path_of(pt), lambda f: f.write(json.dumps(row).encode()))
        rows.append(row)
        bar.update()

    todo = []
    for pt in points:
        if path_of(pt).is_file():
            rows.append(json.loads(path_of(pt).read_text()))
            bar.update()
        else:
            todo.append(pt)
    points_all, points = points, todo
    if jobs == 1 or len(points) <= 1:
        for pt in points:
            keep(pt, _point(arch_args, pt))
    else:
        # fresh interpreters with single-threaded BLAS: per-sample training does tiny products, and
        # several workers each spinning a BLAS thread pool on the same cores slow each other down
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, "1")
        with ProcessPoolExecutor(max_workers=min(jobs, os.cpu_count() or 1, len(points)),
                                 mp_context=multiprocessing.get_context("spawn")) as ex:
            futs = {ex.submit(_point, arch_args, pt): pt for pt in points}
            for f in as_completed(futs):
                keep(futs[f], f.result())
    bar.close()
    axis = args.what
    rows.sort(key=lambda r: points_all.index({axis: r[axis]}))
    return {"axis": axis, "forward": args.forward, "network": "-".join(map(str, rows[0]["arch"])),
            "start": args.start, "epochs": args.epochs, "samples_per_epoch": rows[0]["samples_per_epoch"],
            "fixed": {"bits": args.bits, "endurance": args.endurance, "yield": args.yield_, "pulse_fail": args.pulse_fail,
                      "act_bits": args.act_bits, "err_bits": args.err_bits, "lr_shift": args.lr_shift,
                      "decay": args.decay, "batch": args.batch, "seed": args.seed},
            "points": rows}


def _label(axis, v):
    return ("unlimited" if v == 0 else f"{v:,}") if axis == "endurance" else str(v)


def sweep_table(res: dict) -> str:
    axis = res["axis"]
    head = "weight bits" if axis == "bits" else "endurance (switches)"
    nbit = res.get("forward") == "nbit"
    top = "MSB" if nbit else "sign"
    lines = [f"| {head} | priority (final) | argmax (final) | peak argmax (epoch) | weight updates | pulses | "
             f"cells failed | switches | switches LSB / {top} |", "|---|---|---|---|---|---|---|---|---|"]
    for r in res["points"]:
        last = r["per_epoch"][-1]
        sw = r["switches"]["switches"]
        lsb, msb = (sw[0], sw[-1]) if nbit else (sw[1] if len(sw) > 1 else 0, sw[0])
        peak = max(r["per_epoch"], key=lambda e: e["argmax"])
        lines.append(f"| {_label(axis, r[axis])} | {r['final']['priority'] * 100:.2f}% | {r['final']['argmax'] * 100:.2f}% | "
                     f"{peak['argmax'] * 100:.2f}% ({peak['epoch']}) | {last['weight_updates']:,} | "
                     f"{last['pulses_set'] + last['pulses_reset']:,} | {last['cells_failed']:,} | {sum(sw):.3g} | "
                     f"{lsb:,} / {msb:,} |")
    return "\n".join(lines)


def write_sweep(res: dict, out: Path, stem: str) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / f"{stem}.json", "md": out / f"{stem}.md", "png": out / f"{stem}.png"}
    paths["json"].write_text(json.dumps(res, indent=2) + "\n")
    paths["md"].write_text(sweep_table(res) + "\n")
    plt = _plt()
    axis = res["axis"]
    nbit = res.get("forward") == "nbit"
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    labels = [_label(axis, r[axis]) for r in res["points"]]
    x = np.arange(len(labels))
    for mode, color in (("priority", "tab:blue"), ("argmax", "tab:orange")):
        ax.plot(x, [r["final"][mode] * 100 for r in res["points"]], "o-", color=color, label=f"{mode}, final epoch")
    ax.plot(x, [r["per_epoch"][0]["argmax"] * 100 for r in res["points"]], ":", color="gray", label="before training")
    ax.set_xticks(x, labels)
    if axis == "endurance":  # how much of the array wore out
        worn = [sum(r["switches"]["worn_out_cells"] or [0]) for r in res["points"]]
        ax2 = ax.twinx()
        ax2.bar(x, worn, color="tab:red", alpha=0.2, label="worn-out cells")
        ax2.set_ylabel("worn-out cells (all planes)", color="tab:red")
        ax.set_zorder(ax2.get_zorder() + 1)
        ax.patch.set_visible(False)
    _finish(plt, fig, ax, paths["png"],
            ("weight bits" if nbit else "weight bits (sign + magnitude)") if axis == "bits"
            else "endurance limit (switches per cell)",
            "MNIST test accuracy (%)", f"online training {res['network']} ({res.get('forward', 'sign')} forward), {res['start']} start, "
            f"{res['epochs']} epochs x {res['samples_per_epoch']:,} images")
    # accuracy during training, one curve per point: how long each configuration keeps learning
    paths["epochs_png"] = out / f"{stem}_epochs.png"
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    cmap = plt.get_cmap("viridis")
    for i, r in enumerate(res["points"]):
        ax.plot([e["epoch"] for e in r["per_epoch"]], [e["argmax"] * 100 for e in r["per_epoch"]], "o-", ms=3,
                color=cmap(i / max(1, len(res["points"]) - 1)), label=f"{axis} {_label(axis, r[axis])}")
    trained = [e["argmax"] * 100 for r in res["points"] for e in r["per_epoch"][1:]]
    if trained and min(trained) > 50:  # zoom on the trained curves (epoch 0, untrained, falls below)
        ax.set_ylim(min(trained) - 1, max(trained) + 0.5)
    _finish(plt, fig, ax, paths["epochs_png"], "epoch", "MNIST test accuracy, argmax (%)",
            f"online training {res['network']}, {res['start']} start, {res['samples_per_epoch']:,} images per epoch")
    return {k: str(v) for k, v in paths.items()}


def _finish(plt, fig, ax, path, xlabel, ylabel, title):
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
