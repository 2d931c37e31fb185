"""Analog device studies: accuracy of chips drawn from a device profile (`rrambnn eval
--device`), before and after per-chip calibration, and the Monte Carlo sweep of each effect's
strength (`rrambnn sweep variation`), for binary, multi-bit and convolutional networks.

Every chip is the golden analog model (:mod:`rrambnn.gen.analog` for binary networks,
:mod:`rrambnn.gen.analog_coded` for weights in bit slices) with its own seed: its conductance
map, sense offsets and read noise all follow from it. Calibration fits each chip's
thresholds from the first ``calibration`` images of the *training* split read through that chip;
accuracy is always on the test split (10,000 images by default), a priority reject counting wrong.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from pathlib import Path

import numpy as np

from rrambnn.errors import RrambnnError
from rrambnn.fileio import OutputSet, check_writable, json_text, save_figure, write_text
from rrambnn.gen import analog, analog_coded
from rrambnn.studies.points import run_points

# sweep axes: the profile key each sets, its default values, and how it reads in a table
EFFECTS = {
    "variation": ("sigma_lrs", "0,0.05,0.1,0.15,0.2,0.25,0.3", "device-to-device sigma of LRS cells (HRS: the "
                                                               "profile's HRS/LRS ratio of sigmas)"),
    "read-noise": ("read_noise", "0,0.025,0.05,0.1,0.15,0.2", "read noise, relative sigma per read"),
    "offset": ("offset", "0,0.5,1,2,3,4", "sense offset sigma, in ideal cell currents"),
    "ir-drop": ("wire_ohm", "0,1,2.5,5,10,20", "wire resistance per cell, ohm"),
    "drift": ("read_time_s", "1,1e2,1e4,1e6,1e8", "read time after programming, s (drift exponent from the profile)"),
}


def check_chips(chips, name: str = "--chips") -> int:
    if isinstance(chips, bool) or not isinstance(chips, int) or not 1 <= chips <= 10000:
        raise RrambnnError(f"{name} must be an integer from 1 to 10000, not {chips!r}")
    return chips


def _stats(v) -> dict:
    v = np.asarray(v, float)
    return {"mean": float(v.mean()), "std": float(v.std()), "worst": float(v.min()), "best": float(v.max())}


def check_analog(net):
    """``net`` when the analog model reads it (binary, multi-bit and CNN networks); one error
    line otherwise."""
    from rrambnn.gen.cnn import CnnNetwork
    from rrambnn.gen.network import BinaryNetwork
    from rrambnn.gen.sliced import SlicedNetwork
    if not isinstance(net, (BinaryNetwork, SlicedNetwork, CnnNetwork)):
        raise RrambnnError("--device models binary, multi-bit and CNN networks' reads; an online network's "
                           "codes are not one of them")
    return net


def describe_network(net) -> str:
    """What a report calls the network."""
    if hasattr(net, "spec"):
        return f"CNN {net.spec.text} (W{net.wbits}/A{net.abits})"
    if hasattr(net, "abits"):
        return f"multi-bit {'-'.join(map(str, net.arch))} (W{'t' if net.ternary else net.wbits}/A{net.abits})"
    return f"binary {'-'.join(map(str, net.arch))}"


def chips_accuracy(net, x, y, x_cal, profile: analog.Profile, seeds, progress=None) -> list[dict]:
    """Per chip: accuracy before calibration and, with calibration images, after."""
    make, _, acc, cal = analog_coded.model(check_analog(net))
    rows = []
    for seed in seeds:
        chip = make(profile, seed)
        row = {"seed": int(seed), "before": acc(net, x, y, chip)}
        if len(x_cal):
            row["after"] = acc(net, x, y, chip, theta=cal(net, chip, x_cal))
        rows.append(row)
        if progress:
            progress(1)
    return rows


def summarise(rows: list[dict], digital: dict) -> dict:
    out = {}
    for stage in ("before", "after"):
        if stage not in rows[0]:
            continue
        out[stage] = {m: _stats([r[stage][m] for r in rows]) for m in ("argmax", "priority")}
        out[stage]["rejects_mean"] = float(np.mean([r[stage]["rejects"] for r in rows]))
        out[stage]["loss_points"] = {m: round((digital[m] - out[stage][m]["mean"]) * 100, 3)
                                     for m in ("argmax", "priority")}
    if "after" in out:  # the fraction of the lost accuracy that calibration wins back
        lost = digital["argmax"] - out["before"]["argmax"]["mean"]
        won = out["after"]["argmax"]["mean"] - out["before"]["argmax"]["mean"]
        out["recovered_fraction"] = round(won / lost, 4) if lost > 1e-9 else None
    return out


def _data(net, data_dir, calibration: int):
    from rrambnn.gen.mnist import load_split
    from rrambnn.gen.netfile import mnist_train_inputs, network_inputs
    te = load_split("test", data_dir)
    x, y = network_inputs(net, te.images), te.labels
    return x, y, mnist_train_inputs(net, data_dir, calibration) if calibration else x[:0]


def device_eval(net, profile: analog.Profile, *, chips: int = 5, seed: int = 0, calibration: int = 2000,
                data_dir=None, progress: bool = False) -> dict:
    """``chips`` chips of ``profile`` (seeds ``seed``...): accuracy before and after calibration,
    per chip and summarised, beside the digital twin's."""
    from tqdm import tqdm
    check_analog(net)
    check_chips(chips)
    x, y, x_cal = _data(net, data_dir, calibration)
    digital = net.accuracy(x, y)
    bar = tqdm(total=chips, desc=f"chips of {profile.name}", unit="chip", disable=not progress, leave=False)
    t0 = time.time()
    rows = chips_accuracy(net, x, y, x_cal, profile, range(seed, seed + chips), progress=bar.update)
    bar.close()
    return {"network": describe_network(net), "profile": profile.describe(), "sources": profile.sources,
            "chips": chips, "first_seed": seed,
            "images": len(x), "calibration_images": len(x_cal), "digital": digital,
            "summary": summarise(rows, digital), "per_chip": rows, "seconds": round(time.time() - t0, 2)}


def eval_lines(res: dict) -> list[str]:
    p, s = res["profile"], res["summary"]
    pct = lambda v: f"{v * 100:.2f}%"  # noqa: E731
    lines = [f"{res.get('network', 'network')}, device {p['name']} ({p['path']}): {res['chips']} chip(s) from seed "
             f"{res['first_seed']}, {res['images']} test images",
             f"  digital twin:       argmax {pct(res['digital']['argmax'])}  priority {pct(res['digital']['priority'])}"]
    for stage, what in (("before", "as programmed:     "), ("after", "after calibration: ")):
        if stage in s:
            a, q = s[stage]["argmax"], s[stage]["priority"]
            lines.append(f"  {what} argmax {pct(a['mean'])} (worst chip {pct(a['worst'])})  priority "
                         f"{pct(q['mean'])} (worst {pct(q['worst'])}; rejects counted wrong)")
    if "after" in s:
        lines.append(f"  calibration: {res['calibration_images']} training images read through each chip; "
                     f"recovers {s['recovered_fraction'] * 100:.1f}% of the lost argmax accuracy"
                     if s.get("recovered_fraction") is not None else
                     f"  calibration: {res['calibration_images']} training images; nothing was lost")
    return lines


# -- explore --device -------------------------------------------------------------------

def _device_task(args) -> dict:
    """One network file on ``chips`` chips of a profile (given by its fields): the summary."""
    weights, fields, chips, calibration, data_dir = args
    from rrambnn.gen.netfile import load_network
    net = check_analog(load_network(weights, multi_bit=True, cnn=True))
    x, y, x_cal = _data(net, data_dir, calibration)
    rows = chips_accuracy(net, x, y, x_cal, analog.Profile(**fields), range(chips))
    return summarise(rows, net.accuracy(x, y))


def explore_device(rows: dict, profile: analog.Profile, *, chips: int, calibration: int, data_dir, cache, jobs: int,
                   backend: str, progress: bool, run_tasks) -> None:
    """`explore --device`: every chip point's network (its first seed's weights file) on chips
    0..``chips``-1 of ``profile``, calibrated per chip from ``calibration`` training images (none:
    as programmed). Adds ``device_priority``/``device_argmax`` (means), ``device_priority_worst``
    and ``device_loss_points`` to each row; each result kept in ``cache`` under the file's hash.
    ``run_tasks``: the exploration's task runner (its workers and backend)."""
    fields = _fields(profile)
    stage = "after" if calibration else "before"
    todo = {}
    for r in rows.values():
        if r.get("tiles") is None or not r.get("weights"):
            continue
        try:
            digest = hashlib.sha1(Path(r["weights"]).read_bytes()).hexdigest()[:12]
        except OSError as e:
            raise RrambnnError(f"{r['weights']}: the point's weights file cannot be read ({e.strerror}); the "
                               f"cache names it: remove {cache.path} to train again") from None
        key = "device:" + digest + ":" + hashlib.sha1(json.dumps([fields, chips, calibration], sort_keys=True)
                                                       .encode()).hexdigest()[:12]
        r["_device_key"] = key
        if cache.get(key) is None:
            todo.setdefault(key, (r["weights"], fields, chips, calibration, data_dir))
    keys = list(todo)
    run_tasks(_device_task, list(todo.values()), jobs=jobs, backend=backend, desc=f"chips of {profile.name}",
              progress=progress, done=lambda i, v: cache.put(keys[i], v))
    for r in rows.values():
        key = r.pop("_device_key", None)
        if key is None:
            continue
        got = cache.get(key)[stage]
        r.update(device_priority=got["priority"]["mean"], device_argmax=got["argmax"]["mean"],
                 device_priority_worst=got["priority"]["worst"], device_loss_points=got["loss_points"]["priority"])


# -- the Monte Carlo sweep ----------------------------------------------------------------

_DATA: dict = {}  # per worker process


def _point(net, net_key: str, data_dir, calibration: int, point: dict) -> dict:
    key = (net_key, str(data_dir), calibration)  # a second sweep in this process reads its own
    if key not in _DATA:
        _DATA.clear()
        _DATA[key] = _data(net, data_dir, calibration)
    x, y, x_cal = _DATA[key]
    prof = analog.Profile(**point["profile"])
    t0 = time.time()
    rows = chips_accuracy(net, x, y, x_cal, prof, range(point["first_seed"], point["first_seed"] + point["chips"]))
    return {"effect": point["effect"], "value": point["value"], "rows": rows, "seconds": round(time.time() - t0, 2)}


def _network_key(net) -> str:
    """What a kept point's network is: a hash of its weights, thresholds and input stage (the
    file was read once; its bytes also hold metadata that does not change a chip)."""
    if hasattr(net, "abits"):  # multi-bit and CNN
        h = hashlib.sha1(json.dumps([describe_network(net), net.output_mode, getattr(net, "cobits", None)]).encode())
    else:  # binary: as before (points kept by earlier sweeps stay valid)
        h = hashlib.sha1(json.dumps([net.arch, net.output_mode, None if net.preprocess is None else
                                     [net.preprocess.crop, net.preprocess.threshold]]).encode())
    for a in (*net.weights, *net.thresholds):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:12]


def effect_profile(base: analog.Profile, effect: str, value: float) -> analog.Profile:
    """``base``'s conductances with only ``effect`` on, at ``value``."""
    off = base.scaled(sigma_lrs=0.0, sigma_hrs=0.0, read_noise=0.0, offset=0.0, wire_ohm=0.0, read_time_s=base.t0_s,
                      yield_=1.0, name=f"{base.name}: {effect} {value:g}")
    key = EFFECTS[effect][0]
    if effect == "variation":
        ratio = base.sigma_hrs / base.sigma_lrs if base.sigma_lrs else 1.0
        return off.scaled(sigma_lrs=value, sigma_hrs=value * ratio)
    if effect == "drift" and not (base.nu_mean or base.nu_sigma):
        raise RrambnnError(f"sweep variation --effects drift: profile {base.name} has no drift (nu_mean = nu_sigma "
                           f"= 0); give one that has (e.g. aihwkit-pcm)")
    return off.scaled(**{key: value})


def parse_effects(text: str, values: dict) -> list[tuple[str, list[float]]]:
    from rrambnn.studies.sweep import parse_floats
    names = [e.strip() for e in text.split(",") if e.strip()]
    if not names:
        raise RrambnnError(f"--effects is empty; give some of {', '.join(EFFECTS)}")
    out = []
    for e in names:
        if e not in EFFECTS:
            raise RrambnnError(f"--effects knows {', '.join(EFFECTS)}, not {e!r}")
        if e in dict(out):
            raise RrambnnError(f"--effects lists {e} twice")
        hi = 1e12 if e == "drift" else (64.0 if e in ("offset",) else (1000.0 if e == "ir-drop" else 2.0))
        lo = 1e-9 if e == "drift" else 0.0
        out.append((e, parse_floats(values.get(e) or EFFECTS[e][1], f"--{e}", lo, hi)))
    return out


def sweep(net_path, out, *, device: str = "realistic", effects: str = "variation,read-noise,offset,ir-drop",
          values: dict | None = None, chips: int = 20, seed: int = 0, calibration: int = 2000, jobs: int = 2,
          data_dir=None, progress: bool = True) -> dict:
    """Accuracy (mean, spread, worst over ``chips`` chips) against each effect's strength, alone,
    before and after calibration; md/json/png in ``out``, points kept for a resumed run."""
    from rrambnn.gen.netfile import load_network
    net = check_analog(load_network(net_path, multi_bit=True, cnn=True))
    base = analog.load_profile(device)
    check_chips(chips)
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise RrambnnError(f"--jobs must be a positive integer, not {jobs!r}")
    axes = parse_effects(effects, values or {})
    profiles = {(e, v): effect_profile(base, e, v) for e, vs in axes for v in vs}  # all checked before the run
    x, y, _ = _data(net, data_dir, 0)
    digital = net.accuracy(x, y)
    out = check_writable(out, directory=True, files=("variation.json", "variation.md", "variation.png"))
    cache = out / ".variation-points"
    cache.mkdir(parents=True, exist_ok=True)
    net_key = _network_key(net)
    points = [{"effect": e, "value": v, "chips": chips, "first_seed": seed,
               "profile": _fields(profiles[e, v])} for e, vs in axes for v in vs]

    def path_of(pt):
        key = json.dumps({**pt, "calibration": calibration, "net": net_key, "version": 1}, sort_keys=True)
        return cache / f"{pt['effect']}-{pt['value']:g}-{hashlib.sha1(key.encode()).hexdigest()[:12]}.json"

    t0 = time.time()
    kept = sum(path_of(pt).is_file() for pt in points)
    rows = run_points(points, path_of, functools.partial(_point, net, net_key, data_dir, calibration), jobs=jobs,
                      desc="sweep variation", progress=progress)
    curves = [{"effect": r["effect"], "value": r["value"], **summarise(r["rows"], digital),
               "seconds": r["seconds"]} for r in rows]
    res = {"network": describe_network(net), "device": base.describe(), "sources": base.sources, "chips": chips,
           "first_seed": seed,
           "calibration_images": calibration, "images": len(x), "digital": digital,
           "effects": {e: {"key": EFFECTS[e][0], "meaning": EFFECTS[e][2], "values": vs} for e, vs in axes},
           "curves": curves, "wall_seconds": round(time.time() - t0, 1), "points_run": len(points) - kept,
           "points_kept": kept, "per_chip": rows}
    paths = {"json": out / "variation.json", "md": out / "variation.md", "png": out / "variation.png"}
    with OutputSet():
        write_text(paths["json"], json_text(res, indent=2) + "\n")
        write_text(paths["md"], table(res) + "\n")
        plot(res, paths["png"])
    res["files"] = {k: str(v) for k, v in paths.items()}
    return res


def _fields(p: analog.Profile) -> dict:
    return {f: getattr(p, f) for f in analog.Profile.__dataclass_fields__ if f not in ("sources", "path")}


def table(res: dict) -> str:
    pct = lambda v: f"{v * 100:.2f}%"  # noqa: E731
    d = res["device"]
    lines = [f"{res.get('network', 'Reference chip')} on {res['images']:,} MNIST test images, {res['chips']} chips per point (seeds from "
             f"{res['first_seed']}); each effect alone on the conductances of profile `{d['name']}` (G_LRS "
             f"{d['g_lrs_us']} uS, on/off {d['on_off_ratio']}). Digital twin: argmax {pct(res['digital']['argmax'])}, "
             f"priority {pct(res['digital']['priority'])}. Calibration: thresholds refitted per chip from "
             f"{res['calibration_images']} training images. A priority reject counts wrong.", "",
             "| effect | value | argmax mean | sd | worst chip | priority mean | worst chip | argmax after calibration "
             "| worst chip | recovered |", "|---|---|---|---|---|---|---|---|---|---|"]
    for c in res["curves"]:
        b = c["before"]
        a = c.get("after")
        rec = "" if c.get("recovered_fraction") is None else f"{c['recovered_fraction'] * 100:.0f}%"
        lines.append(f"| {c['effect']} | {c['value']:g} | {pct(b['argmax']['mean'])} | {b['argmax']['std'] * 100:.2f} "
                     f"| {pct(b['argmax']['worst'])} | {pct(b['priority']['mean'])} | {pct(b['priority']['worst'])} | "
                     + (f"{pct(a['argmax']['mean'])} | {pct(a['argmax']['worst'])} | {rec} |" if a else " | | |"))
    lines += ["", "Effects: " + "; ".join(f"{e}: {v['meaning']}" for e, v in res["effects"].items()) + "."]
    return "\n".join(lines)


def plot(res: dict, path: Path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    effects = list(res["effects"])
    fig, axes = plt.subplots(1, len(effects), figsize=(3.2 * len(effects), 3.4), dpi=120, squeeze=False)
    for ax, e in zip(axes[0], effects):
        cs = [c for c in res["curves"] if c["effect"] == e]
        xs = [c["value"] for c in cs]
        for stage, color in (("before", "tab:red"), ("after", "tab:blue")):
            if stage not in cs[0]:
                continue
            m = [c[stage]["argmax"]["mean"] * 100 for c in cs]
            w = [c[stage]["argmax"]["worst"] * 100 for c in cs]
            label = "as programmed" if stage == "before" else "calibrated"
            ax.plot(xs, m, "o-", color=color, label=f"{label}, mean")
            ax.plot(xs, w, "v--", color=color, alpha=0.5, label=f"{label}, worst chip")
        ax.axhline(res["digital"]["argmax"] * 100, color="grey", lw=0.8, label="digital twin")
        if e == "drift":
            ax.set_xscale("log")
        ax.set_xlabel(res["effects"][e]["meaning"], fontsize=7)
        ax.set_title(e, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("MNIST test accuracy, argmax (%)")
    axes[0][0].legend(fontsize=6, loc="lower left")
    fig.suptitle(f"{res.get('network', 'Reference chip')}, {res['chips']} chips per point, conductances of {res['device']['name']}",
                 fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
