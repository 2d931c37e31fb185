"""Online training results: text, JSON and plots of a run and of the sweeps over weight bits and
endurance (:mod:`rrambnn.studies.online` runs them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rrambnn.fileio import json_text, one_output_set, save_figure, write_text


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def write_energy(res: dict, tech: str = "32nm") -> dict:
    """The energy of a run's programming pulses (every pulse priced at the technology file's
    energy per pulse, the macro's 13.08 pJ: failed pulses and pulses on worn cells too), with the
    macro's published figure for the same weight bits (50 epochs of 60,000 samples)."""
    from rrambnn.studies.cost import MACRO_WRITE, load_tech
    t = load_tech(tech)
    last = res["per_epoch"][-1]
    pulses = int(last["pulses_set"] + last["pulses_reset"])
    pj = t["write"]["energy_pj_per_pulse"]
    out = {"tech": t["name"], "pj_per_pulse": pj, "pulses": pulses, "switches": int(sum(res["switches"]["switches"])),
           "joules": pulses * pj * 1e-12}
    if res.get("forward") == "nbit" and res.get("bits") in MACRO_WRITE:
        out["macro_joules"], out["macro_switches"] = MACRO_WRITE[res["bits"]]
    return out


def describe_energy(e: dict, res: dict) -> str:
    line = (f"write energy {e['joules'] * 1e3:.4g} mJ ({e['pulses']:,} pulses x {e['pj_per_pulse']:g} pJ, "
            f"{res['epochs']} epoch(s) of {res['samples_per_epoch']:,} samples)")
    if "macro_joules" in e:
        line += (f"; the macro: {e['macro_joules'] * 1e3:g} mJ for {e['macro_switches']:.3g} switches over 50 epochs "
                 f"of 60,000 at {res['bits']} bits")
    return line


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
    if p := res.get("device_profile"):
        trim = f"row offsets trimmed to 1/{1 << p['offset_trim_bits']} cell" if p.get("offset_trim_bits") else \
            "row offsets untrimmed"
        more = ""
        if c := p.get("calibration"):
            a = c["as_programmed"]
            more = (f"; thresholds calibrated on {c['images']} training images before training (as programmed: "
                    f"priority {a['priority'] * 100:.2f}%, argmax {a['argmax'] * 100:.2f}%; epoch 0 is the "
                    f"calibrated chip)")
        lines.insert(1, f"reads through chip {p['chip_seed']} of device profile {p['name']} (golden analog model, "
                        f"{trim}){more}")
    for e in res["per_epoch"]:
        lines.append(f"| {e['epoch']} | {e['priority'] * 100:.2f}% | {e['argmax'] * 100:.2f}% | {e.get('rejects', '-')} | "
                     f"{e['weight_updates']:,} | {e['pulses_set']:,} | {e['pulses_reset']:,} | {e['cells_failed']:,} | "
                     f"{e['seconds']} |")
    sw = res["switches"]
    lines.append("switches per bit position: " + ", ".join(f"{p} {n:,} (max {m}/cell)" for p, n, m in
                                                          zip(sw["planes"], sw["switches"], sw["max_per_cell"])))
    if sw.get("worn_out_cells"):
        lines.append("cells worn out: " + ", ".join(f"{p} {n:,}" for p, n in zip(sw["planes"], sw["worn_out_cells"])))
    lines.append(describe_energy(res.get("write_energy") or write_energy(res), res))
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


@one_output_set  # the run's files together, or the earlier ones left whole
def write_run(res: dict, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "online.json", "accuracy": out / "accuracy.png", "switches": out / "switches.png"}
    write_text(paths["json"], json_text(res, indent=2) + "\n")
    plt = _plt()
    ep = [e["epoch"] for e in res["per_epoch"]]
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for mode, color in (("priority", "tab:blue"), ("argmax", "tab:orange")):
        ax.plot(ep, [e[mode] * 100 for e in res["per_epoch"]], "o-", color=color, label=mode)
    dp = res.get("device_profile")
    if dp and dp.get("calibration"):  # the chip before its calibration, left of epoch 0
        a = dp["calibration"]["as_programmed"]
        for mode, color in (("priority", "tab:blue"), ("argmax", "tab:orange")):
            ax.plot([-0.5], [a[mode] * 100], "x", color=color)
        ax.annotate("as programmed", (-0.5, a["argmax"] * 100), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xticks(ep)
    ax.set_xlabel("epoch (0 = before training" + (", calibrated" if dp and dp.get("calibration") else "") + ")")
    ax.set_ylabel("MNIST test accuracy (%)")
    ax.set_title(f"{'-'.join(map(str, res['arch']))}, {res['bits']}-bit weights, {res['start']} start"
                 + (f", chip {dp['chip_seed']} of {dp['name']}" if dp else ""))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, paths["accuracy"])
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
    save_figure(fig, path)
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
    save_figure(fig, path)
    plt.close(fig)


# -- sweeps ---------------------------------------------------------------------------

def _label(axis, v):
    return ("unlimited" if v == 0 else f"{v:,}") if axis == "endurance" else str(v)


def sweep_table(res: dict) -> str:
    axis = res["axis"]
    head = "weight bits" if axis == "bits" else "endurance (switches)"
    nbit = res.get("forward") == "nbit"
    top = "MSB" if nbit else "sign"
    lines = [f"| {head} | priority (final) | argmax (final) | peak argmax (epoch) | weight updates | pulses | "
             f"cells failed | switches | switches LSB / {top} | write energy (mJ) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["points"]:
        last = r["per_epoch"][-1]
        sw = r["switches"]["switches"]
        lsb, msb = (sw[0], sw[-1]) if nbit else (sw[1] if len(sw) > 1 else 0, sw[0])
        peak = max(r["per_epoch"], key=lambda e: e["argmax"])
        lines.append(f"| {_label(axis, r[axis])} | {r['final']['priority'] * 100:.2f}% | {r['final']['argmax'] * 100:.2f}% | "
                     f"{peak['argmax'] * 100:.2f}% ({peak['epoch']}) | {last['weight_updates']:,} | "
                     f"{last['pulses_set'] + last['pulses_reset']:,} | {last['cells_failed']:,} | {sum(sw):.3g} | "
                     f"{lsb:,} / {msb:,} | {(r.get('write_energy') or write_energy(r))['joules'] * 1e3:.3g} |")
    pj = write_energy(res["points"][0])["pj_per_pulse"] if res["points"] else 0
    lines.append(f"\nwrite energy: every programming pulse at {pj:g} pJ (the macro's 5.22 mJ / 3.99e8 switches)")
    if device := res.get("fixed", {}).get("device"):
        cal = res["fixed"].get("calibration")
        lines.append(f"reads through chip --seed of device profile {device} (golden analog model)"
                     f"{f', thresholds calibrated on {cal} training images first' if cal else ''}")
    return "\n".join(lines)


@one_output_set
def write_sweep(res: dict, out: Path, stem: str) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / f"{stem}.json", "md": out / f"{stem}.md", "png": out / f"{stem}.png"}
    write_text(paths["json"], json_text(res, indent=2) + "\n")
    write_text(paths["md"], sweep_table(res) + "\n")
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
            "MNIST test accuracy (%)", f"online training {res['network']} ({res.get('forward', 'sign')} forward"
            f"{', device ' + res['fixed']['device'] if res.get('fixed', {}).get('device') else ''}), {res['start']} start, "
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
    save_figure(fig, path)
    plt.close(fig)
