"""`rrambnn sweep cnn-bits`: the low-bit CNN paper's bit-width combinations, trained through the
crossbar model, with and without the read disturbance, over several seeds.

Every point (A/CO/W/G, disturbance, seed) is one training run in a worker process; finished
points are kept beside the outputs (``.cnn-bits-points/``), keyed by everything that sets their
result, so a stopped sweep resumes where it was. The table reports the hardware-exact test
accuracy of the integer chip (mean and worst over seeds; a priority reject is a wrong answer),
the float model's where no chip exists (32-bit points), and which combinations did not converge.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import time
from pathlib import Path

import numpy as np

from rrambnn.errors import RrambnnError
from rrambnn.fileio import OutputSet, check_writable, json_text, save_figure, write_text
from rrambnn.studies.points import run_points

# the paper's combinations, A/CO/W/G (32: float)
PAPER_BITS = ("32/32/32/32", "8/8/8/8", "6/6/6/6", "4/4/4/4", "3/3/2/4", "2/2/2/2", "2/2/1/4", "2/2/2/1", "1/1/2/1",
              "1/1/1/1")
CONVERGED = 0.5  # below this test accuracy (argmax) a run counts as not converged (chance is 0.1)


def parse_bits(text: str | None) -> list[tuple[int, int, int, int]]:
    from rrambnn.gen.cnn import check_bits
    if text is not None and not str(text).strip():
        raise RrambnnError("--values is empty; give A/CO/W/G combinations separated by commas (e.g. 4/4/4/4,2/2/1/4)")
    combos = []
    for item in (text or ",".join(PAPER_BITS)).split(","):
        parts = item.strip().split("/")
        try:
            bits = tuple(int(p) for p in parts)
        except ValueError:
            bits = ()
        if len(bits) != 4:
            raise RrambnnError(f"--values takes A/CO/W/G combinations separated by commas (e.g. 4/4/4/4,2/2/1/4), "
                               f"not {item!r}")
        for name, b in zip(("A", "CO", "W", "G"), bits):
            check_bits(f"{name} bits in {item!r}", b, float_ok=True, top=16)
        combos.append(bits)
    if len(set(combos)) != len(combos):
        raise RrambnnError(f"--values lists a combination twice: {text!r}")
    return combos


_DATA: dict = {}  # per worker process: the dataset, loaded once for all its points


def _point(base: dict, data_dir, point: dict) -> dict:
    """One training run in a worker process."""
    from rrambnn.gen import cnn_train
    from rrambnn.gen.mnist import load_split
    if "data" not in _DATA:
        _DATA["data"] = (load_split("train", data_dir), load_split("test", data_dir))
    tr, te = _DATA["data"]
    a, co, w, g = point["bits"]
    cfg = cnn_train.CnnTrainConfig(**{**base, "abits": a, "cobits": co, "wbits": w, "gbits": g,
                                      "disturbance": point["disturbance"], "seed": point["seed"]})
    t0 = time.time()
    try:
        net, model, history = cnn_train.train(cfg, tr.images, tr.labels, progress=False)
    except RrambnnError as e:  # the loss became NaN or infinite: a combination that does not converge
        return {"bits": "/".join(map(str, point["bits"])), "disturbance": point["disturbance"], "seed": point["seed"],
                "train_seconds": round(time.time() - t0, 1), "diverged": str(e), "float_accuracy": 0.0}
    row = {"bits": "/".join(map(str, point["bits"])), "disturbance": point["disturbance"], "seed": point["seed"],
           "train_seconds": round(time.time() - t0, 1), "final_loss": history[-1]["loss"],
           **cnn_train.evaluate(net, model, tr, te, float_disturbed=False)}
    row.pop("calibration", None)
    return row


def headline(row: dict) -> float:
    """The accuracy a point is judged by: the chip's argmax (hardware-exact), else the float model's
    (0 for a run whose loss diverged)."""
    return row["accuracy"]["argmax"] if "accuracy" in row else row["float_accuracy"]


def summarise(rows: list[dict], combos, disturbances) -> list[dict]:
    out = []
    for bits in combos:
        key = "/".join(map(str, bits))
        for d in disturbances:
            sel = [r for r in rows if r["bits"] == key and r["disturbance"] == d]
            if not sel:
                continue
            ok = [r for r in sel if "diverged" not in r]
            e = {"bits": key, "disturbance": d, "seeds": len(sel), "diverged": len(sel) - len(ok),
                 "chip": any("accuracy" in r for r in ok)}
            if e["chip"]:  # a diverged seed counts as 0 (no answer right)
                for mode in ("priority", "argmax"):
                    v = np.array([r["accuracy"][mode] if "accuracy" in r else 0.0 for r in sel])
                    e[mode] = {"mean": float(v.mean()), "min": float(v.min())}
                    if d:  # and with the reads disturbed as in training
                        v = np.array([r["accuracy_disturbed"][mode] if "accuracy_disturbed" in r else 0.0
                                      for r in sel])
                        e[f"{mode}_disturbed"] = {"mean": float(v.mean()), "min": float(v.min())}
                e["rejects_mean"] = float(np.mean([r["accuracy"]["rejects"] for r in ok]))
            v = np.array([r["float_accuracy"] for r in sel])
            e["float"] = {"mean": float(v.mean()), "min": float(v.min())}
            heads = np.array([headline(r) for r in sel])
            e["converged"] = int((heads >= CONVERGED).sum())
            e["train_seconds_mean"] = float(np.mean([r["train_seconds"] for r in sel]))
            out.append(e)
    return out


def table(res: dict) -> str:
    lines = [f"Spec {res['spec']}, {res['epochs']} epoch(s) of {res['samples_per_epoch']:,} samples, "
             f"{res.get('optimizer', 'sgd')} (lr {res.get('lr')}), disturbance drawn per "
             f"{res.get('disturbance_draws', 'batch (in training; per block of 500 images in evaluation)')}, seeds "
             f"{res['seeds']}; hardware-exact MNIST test accuracy of the integer chip (10,000 images; a priority "
             f"reject counts wrong); 32-bit rows have no chip and give the float model's accuracy.", "",
             "| A/CO/W/G | disturbance | argmax mean | argmax worst | priority mean | priority worst | argmax, reads "
             "disturbed: mean / worst | float model mean | converged | s/run |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for e in res["summary"]:
        pct = lambda v: f"{v * 100:.2f}%"  # noqa: E731
        if e["chip"]:
            chip = (f"{pct(e['argmax']['mean'])} | {pct(e['argmax']['min'])} | {pct(e['priority']['mean'])} | "
                    f"{pct(e['priority']['min'])}")
            dist = (f"{pct(e['argmax_disturbed']['mean'])} / {pct(e['argmax_disturbed']['min'])}"
                    if "argmax_disturbed" in e else "")
        else:
            chip, dist = "no chip | | | ", ""
        conv = f"{e['converged']}/{e['seeds']}" + (f" ({e['diverged']} diverged)" if e.get("diverged") else "")
        lines.append(f"| {e['bits']} | {e['disturbance']} | {chip} | {dist} | {pct(e['float']['mean'])} | "
                     f"{conv} | {e['train_seconds_mean']:.0f} |")
    return "\n".join(lines)


def plot(res: dict, path: Path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=120)
    combos = list(dict.fromkeys(e["bits"] for e in res["summary"]))
    x = np.arange(len(combos))
    for j, (d, color) in enumerate(zip(res["disturbances"], ("tab:blue", "tab:orange", "tab:green"))):
        means, worst = [], []
        for c in combos:
            e = next((e for e in res["summary"] if e["bits"] == c and e["disturbance"] == d), None)
            val = (e["argmax"] if e and e["chip"] else e["float"]) if e else None
            means.append(val["mean"] * 100 if val else np.nan)
            worst.append(val["min"] * 100 if val else np.nan)
        off = (j - (len(res["disturbances"]) - 1) / 2) * 0.2
        ax.plot(x + off, means, "o", color=color, label=f"mean, disturbance {d}")
        ax.plot(x + off, worst, "v", color=color, alpha=0.5, label=f"worst seed, disturbance {d}")
    ax.set_xticks(x, combos, rotation=30)
    ax.set_xlabel("A/CO/W/G bits (32: float, no chip)")
    ax.set_ylabel("MNIST test accuracy, argmax (%)")
    ax.set_title(f"{res['spec']}: {res['epochs']} epoch(s), trained through the crossbar model", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def sweep(out, *, spec: str = "lenet5", bits: str | None = None, disturbances=(0.0, 0.05), seeds: int = 2,
          epochs: int = 3, samples: int = 0, lr: float | None = None, optimizer: str = "sgd", draws: str = "read",
          jobs: int = 2,
          data_dir=None,
          progress: bool = True) -> dict:
    from rrambnn.gen.cnn_train import CnnTrainConfig
    combos = parse_bits(bits)
    if not isinstance(seeds, int) or not 1 <= seeds <= 100:
        raise RrambnnError(f"--seeds must be from 1 to 100, not {seeds!r}")
    if not isinstance(jobs, int) or jobs < 1:
        raise RrambnnError(f"--jobs must be a positive integer, not {jobs!r}")
    if len(set(disturbances)) != len(disturbances):
        raise RrambnnError(f"--disturbances lists a value twice: {', '.join(map(str, disturbances))}")
    base = {"spec": spec, "epochs": epochs, "samples": samples, "optimizer": optimizer, "draws": draws}
    if lr is not None:
        base["lr"] = lr
    for a, co, w, g in combos:  # every point checked before the long run
        for d in disturbances:
            CnnTrainConfig(**base, abits=a, cobits=co, wbits=w, gbits=g, disturbance=d).validate()
    checked = CnnTrainConfig(**base)
    base["spec"] = checked.validate().text
    base["lr"] = checked.lr
    out = check_writable(out, directory=True, files=("cnn-bits.json", "cnn-bits.md", "cnn-bits.png"))
    points = [{"bits": list(b), "disturbance": d, "seed": s} for b in combos for d in disturbances
              for s in range(seeds)]
    cache = out / ".cnn-bits-points"
    cache.mkdir(parents=True, exist_ok=True)

    def path_of(pt):
        key = json.dumps({**dataclasses.asdict(CnnTrainConfig(**base)), **pt, "version": 1}, sort_keys=True)
        return cache / f"{'-'.join(map(str, pt['bits']))}-d{pt['disturbance']}-s{pt['seed']}-" \
                       f"{hashlib.sha1(key.encode()).hexdigest()[:12]}.json"

    t0 = time.time()
    kept = sum(path_of(pt).is_file() for pt in points)
    rows = run_points(points, path_of, functools.partial(_point, base, data_dir), jobs=jobs, desc="sweep cnn-bits",
                      progress=progress)
    n_train = samples or 60000
    res = {"spec": base["spec"], "epochs": epochs, "samples_per_epoch": n_train, "seeds": seeds,
           "optimizer": optimizer, "lr": base["lr"], "disturbance_draws": draws,
           "disturbances": list(disturbances), "wall_seconds": round(time.time() - t0, 1),
           "points_run": len(points) - kept, "points_kept": kept,
           "train_seconds_total": round(sum(r["train_seconds"] for r in rows), 1), "points": rows,
           "summary": summarise(rows, combos, disturbances)}
    paths = {"json": out / "cnn-bits.json", "md": out / "cnn-bits.md", "png": out / "cnn-bits.png"}
    with OutputSet():  # the three files together, or the earlier ones left whole
        write_text(paths["json"], json_text(res, indent=2) + "\n")
        write_text(paths["md"], table(res) + "\n")
        plot(res, paths["png"])
    res["files"] = {k: str(v) for k, v in paths.items()}
    return res
