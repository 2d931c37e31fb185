"""Design-space exploration: test accuracy against hardware cost, from the golden model and the
generator.

A design point is (input crop, hidden size, hidden layers, weight bits, activation bits, batch-
norm handling). Named axes can be swept alone or crossed; the others stay at the reference
chip's values. For every point: the network is trained (``epochs``, every seed), merged the
point's way and evaluated hardware-exactly on the test set (mean and spread over seeds); its
cost is the synaptic bits, the crossbar tiles at the chosen tile size, and the periphery's
Yosys cell count (the generated chip with the arrays black-boxed). Results are cached per
training, evaluation and synthesis in the output directory, so an interrupted sweep resumes.

Batch-norm handling (hidden layers; the output stage is always merged exactly and calibrated):

* ``software``: BN kept in floating point at inference (binary weights and activations): the
  trained model's own accuracy, not a chip: no hardware cost.
* ``signed``: the exact signed merge (the reference chip): a weight column's sign absorbs the
  sign of gamma, one integer threshold per neuron.
* ``arithmetic``: w' = gamma/sigma * w, b' = beta - gamma*mu/sigma, then binarised: the scale
  gamma/sigma is lost, so thresholds are off (the tool measures how much that costs).
* ``shared``: trained with one scale per layer instead of BN (z = s*y + b_j); merged exactly.

Weight and activation precision (``wbits``, ``abits``) follow :mod:`rrambnn.gen.sliced`: n-bit
weights are n binary cells (bit slices, n planes of arrays whose column sums are shifted and
added), m-bit activations and pixels run bit-serially through each layer and hidden neurons
quantise with a threshold ramp over an SRAM macro. The trainer quantises the same way, the
merges give the golden :class:`SlicedNetwork`, and the generator builds its chip, so every
cost is the generated design's: Yosys cells (arrays and threshold RAMs black-boxed), threshold
RAM bits, crossbar tiles (n per binary tile) and cycles per image.

The arithmetic merge of an n-bit point (n > 1) requantises w' = (gamma/sigma) w / M to n bits
(M the layer's largest |gamma/sigma|) and keeps M in the thresholds; with binary weights only
the signs survive and the scale is lost (the reference chip's warning).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from pathlib import Path

import numpy as np

from rrambnn.errors import RrambnnError
from rrambnn.fileio import json_text, one_output_set, save_figure

AXES = {
    "crop": (28, 24, 20, 16, 12),
    "hidden": (64, 96, 128, 160, 192),
    "wbits": (1, 2, 3, 4, 6, 8),
    "abits": (1, 2, 3, 6, 8),
    "bn": ("software", "arithmetic", "signed", "shared"),
}
REFERENCE = {"crop": 20, "hidden": 128, "wbits": 1, "abits": 1, "bn": "signed"}
# the costs a Pareto front is drawn against (the first: the crossbar cells, known without synthesis)
COSTS = ("synaptic_bits", "periphery_cells", "area_mm2", "energy_per_image_pj")
BN_MODES = AXES["bn"]


@dataclasses.dataclass(frozen=True)
class Point:
    crop: int = 20
    hidden: int = 128
    wbits: int = 1
    abits: int = 1
    bn: str = "signed"
    layers: int = 2  # hidden layers

    @property
    def arch(self) -> tuple[int, ...]:
        return (self.crop * self.crop, *([self.hidden] * self.layers), 10)

    @property
    def key(self) -> str:
        return f"c{self.crop}-h{self.hidden}x{self.layers}-w{self.wbits}-a{self.abits}-{self.bn}"

    @property
    def hardware(self) -> bool:
        return self.bn != "software"

    @property
    def binary(self) -> bool:
        return self.wbits == 1 and self.abits == 1


def split_axis(spec: str, axes, kind: str = "") -> tuple[str, str]:
    """``"name=v,v"`` -> (name, "v,v"); ``"name"`` -> (name, ""); an axis not in ``axes`` or a
    ``name=`` with no values is one error line."""
    name, sep, text = spec.partition("=")
    name = name.strip()
    if name not in axes:
        raise RrambnnError(f"unknown axis {name!r}{kind}; axes are {', '.join(axes)}")
    if sep and not text.strip():
        raise RrambnnError(f"--axis {spec!r} gives no values (name the axis alone for all of its values)")
    return name, text


def parse_axes(specs, layers: int = 2) -> list[Point]:
    """``["crop=28,20,12", "bn"]`` -> the crossed points; an axis named alone takes all its
    values; unnamed axes stay at the reference chip's."""
    values = {name: [REFERENCE[name]] for name in AXES}
    for spec in specs:
        name, text = split_axis(spec, AXES)
        if not text:
            values[name] = list(AXES[name])
            continue
        out = []
        for v in text.split(","):
            v = v.strip()
            if name == "bn":
                if v not in BN_MODES:
                    raise RrambnnError(f"bn must be one of {', '.join(BN_MODES)}, not {v!r}")
                out.append(v)
                continue
            try:
                n = int(v)
            except ValueError:
                raise RrambnnError(f"{name} values must be integers, not {v!r}") from None
            if name == "crop" and not 1 <= n <= 28:
                raise RrambnnError(f"crop must be from 1 to 28, not {n}")
            if name == "hidden" and not 2 <= n <= 1024:
                raise RrambnnError(f"hidden must be from 2 to 1024, not {n}")
            if name in ("wbits", "abits") and not 1 <= n <= 8:
                raise RrambnnError(f"{name} must be from 1 to 8, not {n}")
            out.append(n)
        values[name] = list(dict.fromkeys(out))
    if not isinstance(layers, int) or not 1 <= layers <= 4:
        raise RrambnnError(f"hidden layers must be from 1 to 4, not {layers!r}")
    return [Point(c, h, w, a, b, layers) for c, h, w, a, b in
            itertools.product(values["crop"], values["hidden"], values["wbits"], values["abits"], values["bn"])]


def synaptic_bits(p: Point) -> int:
    return sum(a * b for a, b in zip(p.arch[:-1], p.arch[1:])) * p.wbits


def tiles(p: Point, tile=(128, 128)) -> int:
    return sum(math.ceil(a / tile[0]) * math.ceil(b / tile[1]) for a, b in zip(p.arch[:-1], p.arch[1:])) * p.wbits


# -- accuracy ----------------------------------------------------------------------

def arithmetic_merge(model) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The arithmetic merge of the hidden layers, quantised (inexact), with the output stage
    merged exactly. Hidden pre-activations are z = scale_j * y + bias_j (BN or shared scale).
    Binary weights keep only sign(scale_j * w): the scale is lost, level l fires at
    Y >= ceil(c*(t_l - bias_j)). n-bit weights requantise scale_j * w / M, so the per-neuron
    scale survives in the magnitudes and M in the thresholds ceil(c*(t_l - bias_j)/M)."""
    from rrambnn.gen.sliced import sum_bound
    from rrambnn.gen.train import BN_EPS, level_offsets, signed_merge, weight_codes
    weights, thresholds = signed_merge(model)  # the output stage, shapes and dtypes
    c = float(model.scale)
    t_lv = level_offsets(model.abits)
    for k in range(len(model.gamma)):
        qw = model.qw(k).astype(np.float64)
        if model.hidden_norm == "shared":
            scale = np.full(qw.shape[1], np.exp(np.float64(model.gamma[k][0])))
            bias = model.beta[k].astype(np.float64)
        else:
            sigma = np.sqrt(model.run_var[k].astype(np.float64) + BN_EPS)
            scale = model.gamma[k].astype(np.float64) / sigma
            bias = model.beta[k].astype(np.float64) - scale * model.run_mean[k].astype(np.float64)
        if model.wbits == 1:
            w = np.where(scale < 0, -qw, qw)  # sign(scale * w)
            big = 1.0
        else:
            big = float(np.abs(scale).max()) or 1.0
            w = weight_codes(np.clip(qw * scale / big, -1.0, 1.0), model.wbits)
        bound = sum_bound(qw.shape[0], model.wbits, model.abits)
        theta = np.clip(np.ceil(c * (t_lv[None, :] - bias[:, None]) / big), -bound, bound + 1).astype(np.int32)
        weights[k] = w.astype(weights[k].dtype)
        thresholds[k] = theta.reshape(thresholds[k].shape)
    return weights, thresholds


def evaluate(points, seed: int, epochs: int, data, out_dir: Path, train_limit: int | None = None) -> list[dict]:
    """Train once for ``points`` that share a training (crop, hidden size, layers, and BN or
    shared scale) with ``seed``; each point's accuracy its way. Hardware points also leave
    their weights file in ``out_dir/weights``."""
    from rrambnn.gen.mnist import Preprocess
    from rrambnn.gen.network import BinaryNetwork, priority_encode, score
    from rrambnn.gen.sliced import SlicedNetwork, crop_inputs
    from rrambnn.gen.train import TrainConfig, calibrate_output, train

    p0 = points[0]
    tr, te = data
    n = len(tr.labels) if train_limit is None else min(train_limit, len(tr.labels))
    tr = dataclasses.replace(tr, images=tr.images[:n], labels=tr.labels[:n])
    cfg = TrainConfig(arch=p0.arch, crop=p0.crop, epochs=epochs, seed=seed, wbits=p0.wbits, abits=p0.abits,
                      hidden_norm="shared" if p0.bn == "shared" else "bn")
    signed_net, model, _ = train(cfg, tr.images, tr.labels, progress=False)
    pre = Preprocess(p0.crop)
    x_te = crop_inputs(te.images, p0.crop, p0.abits)  # 1 bit: the chip's binarisation (pre)
    levels = (1 << p0.abits) - 1
    out = []
    for p in points:
        if p.bn == "software":
            z = model.float_eval(x_te / levels)
            prio, hit = priority_encode(z >= 0)
            out.append(score(prio, z.argmax(axis=1), hit, te.labels))
            continue
        net = signed_net
        if p.bn == "arithmetic":
            w, t = arithmetic_merge(model)
            if p.binary:
                net = BinaryNetwork(w, t, pre, cfg.output_mode, {"merge": "arithmetic"})
            else:
                net = SlicedNetwork(w, t, p.wbits, p.abits, p.crop, cfg.output_mode, {"merge": "arithmetic"})
            calibrate_output(net, crop_inputs(tr.images, p.crop, p.abits), tr.labels)
        acc = net.accuracy(x_te, te.labels)
        # named as its training (epochs, samples): a run with other settings does not overwrite it
        path = out_dir / "weights" / (f"{p.key}-s{seed}-e{epochs}" + (f"-n{train_limit}" if train_limit else "") + ".npz")
        path.parent.mkdir(parents=True, exist_ok=True)
        net.meta["explore_point"] = dataclasses.asdict(p)
        net.save(path)
        out.append({"priority": acc["priority"], "argmax": acc["argmax"], "rejects": acc["rejects"],
                    "weights": str(path)})
    return out


def shares_training(p: Point) -> tuple:
    """Points with equal keys are evaluated from one trained model."""
    return (p.crop, p.hidden, p.layers, p.wbits, p.abits, p.bn == "shared")


# -- cost --------------------------------------------------------------------------

def periphery_cost(p: Point, weights_path: str, tile=(128, 128), output="priority") -> dict:
    """The generated chip's cost: Yosys cells of the digital periphery by type (the analog-sense
    view: crossbar arrays, sense stages and threshold RAMs black-boxed), threshold RAM bits,
    cycles per image at full rate and what the chip contains (:func:`rrambnn.studies.cost.inventory`)."""
    from rrambnn.gen.netfile import load_network
    from rrambnn.hw.config import ChipConfig
    from rrambnn.hw.verilog import build_chip
    from rrambnn.studies.cost import inventory, periphery_cells
    net = load_network(weights_path, multi_bit=True)
    cfg = ChipConfig(tuple(tile), False, output).for_network(net)
    chip = build_chip(net, cfg)
    cells = periphery_cells(chip)
    return {"cells": sum(v for k, v in cells.items() if k.startswith("$_")), "cells_by_type": cells,
            "ram_bits": chip.threshold_ram_bits, "interval": chip.interval, "inventory": inventory(chip, output)}


def cost_key(p: Point, tile) -> str:
    """The cost depends on the shape, the precision and the tile, not on the weights' values
    (v3: the digital periphery in the analog-sense view, with cells by type; slices converted one
    by one, their shift-add in the periphery; v4: the inventory counts row drivers)."""
    key = f"cost5:{'-'.join(map(str, p.arch))}:t{tile[0]}x{tile[1]}"
    return key if p.binary else f"{key}:w{p.wbits}a{p.abits}"


# -- the sweep ---------------------------------------------------------------------

CACHE_FIELDS = {"eval": ("priority", "argmax"), "cost": ("cells", "ram_bits", "interval", "inventory", "cells_by_type"),
                "cnneval": ("priority", "argmax", "weights"),
                "cnncost": ("cells", "interval", "inventory", "cells_by_type")}


class Cache:
    """A JSON file of finished work, keyed by strings (``eval:...``, ``cost:...``); written after
    every result. An entry without the fields its kind needs is not used (the work is done
    again); a file that is not a JSON object is one error line."""

    def __init__(self, path: Path):
        self.path = path
        self.data = {}
        if path.is_dir():
            raise RrambnnError(f"{path}: a directory is where the exploration cache goes; remove it")
        if path.exists():
            try:
                self.data = json.loads(path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
                raise RrambnnError(f"{path}: the exploration cache is not valid JSON ({type(e).__name__}); "
                                   f"delete it to start over") from None
            except OSError as e:
                raise RrambnnError(f"{path}: cannot read the exploration cache ({e.strerror or e})") from None
            if not isinstance(self.data, dict):
                raise RrambnnError(f"{path}: the exploration cache is not a JSON object; delete it to start over")

    def get(self, key):
        value = self.data.get(key)
        need = CACHE_FIELDS.get(key.split(":", 1)[0].rstrip("0123456789"), ())  # cost4:... is a cost
        return value if isinstance(value, dict) and all(k in value for k in need) else None

    def put(self, key, value):
        from rrambnn.fileio import atomic_write
        self.data[key] = value
        atomic_write(self.path, lambda f: f.write(json_text(self.data, indent=1).encode()))


def _eval_task(args):
    points, seed, epochs, data_dir, out_dir, train_limit = args
    from rrambnn.gen.mnist import load_split
    data = (_load_cached(data_dir, "train", load_split), _load_cached(data_dir, "test", load_split))
    return evaluate(points, seed, epochs, data, Path(out_dir), train_limit)


_DATA = {}


def _load_cached(data_dir, split, load_split):
    if (data_dir, split) not in _DATA:  # once per worker process
        _DATA[data_dir, split] = load_split(split, data_dir)
    return _DATA[data_dir, split]


def _cost_task(args):
    p, weights, tile = args
    return periphery_cost(p, weights, tile)


def run_tasks(fn, tasks, *, jobs: int, backend: str, desc: str, progress: bool, done=None):
    """``fn`` over ``tasks`` in order: local processes (``jobs``), or Ray / Dask when asked
    for and installed (the same command, wider: ``ray.init()`` joins the cluster named by
    ``RAY_ADDRESS``, dask's ``Client()`` the scheduler named by ``DASK_SCHEDULER_ADDRESS``).
    ``done(i, result)`` is called as each result arrives (in order), so a caller can keep it
    before the next one: an interrupted run loses only the tasks still running."""
    from tqdm import tqdm
    if not tasks:
        return []
    bar = tqdm(total=len(tasks), desc=desc, unit="task", disable=not progress)
    out = []

    def take(r):
        if done is not None:
            done(len(out), r)
        out.append(r)
        bar.update()

    try:
        if backend == "ray":
            try:
                import ray
            except ImportError:
                raise RrambnnError("--backend ray needs Ray installed (pip install ray)") from None
            ray.init(ignore_reinit_error=True)
            remote = ray.remote(fn)
            for r in [remote.remote(t) for t in tasks]:
                take(ray.get(r))
            return out
        if backend == "dask":
            try:
                from dask.distributed import Client
            except ImportError:
                raise RrambnnError("--backend dask needs dask.distributed installed (pip install distributed)") \
                    from None
            client = Client()
            for f in client.map(fn, tasks, pure=False):
                take(f.result())
            return out
        if jobs <= 1:
            for t in tasks:
                take(fn(t))
            return out
        import multiprocessing as mp

        from rrambnn.studies import ignore_interrupts
        with mp.get_context("spawn").Pool(jobs, initializer=ignore_interrupts) as pool:
            for r in pool.imap(fn, tasks):
                take(r)
            return out
    finally:
        bar.close()


def explore(points, *, seeds: int, epochs: int, out_dir: Path, data_dir=None, tile=(128, 128), jobs: int = 2,
            backend: str = "local", synth: bool = True, progress: bool = True, train_limit: int | None = None,
            tech="32nm", device=None, chips: int = 5, calibration: int = 2000) -> dict:
    from rrambnn.hw.layer import check_tile
    from rrambnn.studies.cost import load_tech
    tech = load_tech(tech)
    try:
        tile = check_tile(tile)
    except (TypeError, ValueError) as e:
        raise RrambnnError(str(e)) from None
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cache = Cache(out_dir / "cache.json")
    rows = {}
    groups = {}  # one training per group and seed
    for p in points:
        rows[p.key] = {"point": dataclasses.asdict(p), "arch": "-".join(map(str, p.arch)),
                       "synaptic_bits": synaptic_bits(p), "tiles": tiles(p, tile) if p.hardware else None}
        groups.setdefault(shares_training(p), []).append(p)
    todo = []
    for group in groups.values():
        for s in range(seeds):
            missing = [p for p in group if cache.get(eval_key(p, s, epochs, train_limit)) is None]
            if missing:
                todo.append((missing, s))
    def keep_eval(i, res_group):
        group, s = todo[i]
        for p, r in zip(group, res_group):
            cache.put(eval_key(p, s, epochs, train_limit), r)

    run_tasks(_eval_task, [(g, s, epochs, data_dir, str(out_dir), train_limit) for g, s in todo],
              jobs=jobs, backend=backend, desc="train and evaluate", progress=progress, done=keep_eval)
    cost_todo = []
    for p in points:
        row = rows[p.key]
        evals = [cache.get(eval_key(p, s, epochs, train_limit)) for s in range(seeds)]
        for mode in ("priority", "argmax"):
            accs = np.array([e[mode] for e in evals])
            row[f"acc_{mode}"] = float(accs.mean())
            row[f"acc_{mode}_std"] = float(accs.std())
        row["weights"] = evals[0].get("weights")
        if p.hardware and synth:
            ck = cost_key(p, tile)
            if cache.get(ck) is None and ck not in {c for c, _ in cost_todo}:
                cost_todo.append((ck, (p, row["weights"], tile)))
    run_tasks(_cost_task, [t for _, t in cost_todo], jobs=jobs, backend=backend, desc="synthesize peripheries",
              progress=progress, done=lambda i, c: cache.put(cost_todo[i][0], c))
    from rrambnn.studies.cost import price
    for p in points:
        row = rows[p.key]
        if p.hardware and synth:
            cost = cache.get(cost_key(p, tile))
            row["periphery_cells"] = cost["cells"]
            row["threshold_ram_bits"] = cost["ram_bits"]
            row["cycles_per_image"] = cost["interval"]
            c = price(cost["inventory"], cost["cells_by_type"], tech)
            row["area_mm2"] = c["area_mm2"]
            row["energy_per_image_pj"] = c["energy_per_image_pj"]
            row["power_mw"] = c["power_mw"]
            row["tops_per_mm2"], row["tops_per_w"] = c["tops_per_mm2"], c["tops_per_w"]
    mark_pareto(rows)
    if synth:
        for cost in COSTS[1:]:
            mark_pareto(rows, cost)
    return {"epochs": epochs, "seeds": seeds, "tile": list(tile), "tech": tech["name"],
            "clock_mhz": tech["clock_mhz"], "rows": rows,
            **on_device(rows, device, chips=chips, calibration=calibration, data_dir=data_dir, cache=cache, jobs=jobs,
                        backend=backend, progress=progress, synth=synth)}


def on_device(rows: dict, device, *, chips: int, calibration: int, data_dir, cache, jobs: int, backend: str,
              progress: bool, synth: bool) -> dict:
    """`--device`: the chip points read through ``device`` (a profile;
    :func:`rrambnn.studies.variation.explore_device`) and their Pareto fronts on it; the
    result's ``device`` entry ({} without a profile)."""
    if device is None:
        return {}
    from rrambnn.studies.variation import explore_device
    explore_device(rows, device, chips=chips, calibration=calibration, data_dir=data_dir, cache=cache, jobs=jobs,
                   backend=backend, progress=progress, run_tasks=run_tasks)
    for cost in COSTS if synth else COSTS[:1]:
        mark_pareto(rows, cost, acc="device_priority", flag="device_" + pareto_flag(cost))
    return {"device": {"name": device.name, "path": device.path, "chips": chips, "calibration": calibration}}


def eval_key(p: Point, seed: int, epochs: int, train_limit) -> str:
    return f"eval:{p.key}:s{seed}:e{epochs}" + (f":n{train_limit}" if train_limit else "")


def pareto_flag(cost: str) -> str:
    return "pareto" if cost == "synaptic_bits" else f"pareto_{cost}"


def mark_pareto(rows: dict, cost: str = "synaptic_bits", acc: str = "acc_priority", flag: str | None = None) -> None:
    """Flag (``flag``, default :func:`pareto_flag`) the hardware points no other point beats in
    both accuracy ``acc`` and ``cost``."""
    pts = [(k, r) for k, r in rows.items() if r.get("tiles") is not None and acc in r and r.get(cost) is not None]
    for k, r in pts:
        r[flag or pareto_flag(cost)] = not any(o[acc] >= r[acc] and o[cost] <= r[cost]
                                       and (o[acc] > r[acc] or o[cost] < r[cost]) for _, o in pts)


# -- outputs -----------------------------------------------------------------------

def verilog_command(row: dict) -> str | None:
    """The command that generates the row's chip (its options: a CNN point's positions and tile)."""
    if not row.get("weights"):
        return None
    extra = f" {row['verilog_args']}" if row.get("verilog_args") else ""
    return f"rrambnn verilog --weights {row['weights']}{extra} --out {Path(row['weights']).stem}.v"


def study(axes, *, layers: int = 2, seeds: int = 2, epochs: int = 10, out_dir: Path, data_dir=None, tile="128x128",
          jobs: int = 2, backend: str = "local", synth: bool = True, progress: bool = True, tech="32nm",
          train_limit: int | None = None, device=None, chips: int = 5, calibration: int = 2000) -> dict:
    """`rrambnn explore`: the points crossed from ``axes`` (default: crop, hidden=64,128,192 and
    bn), each trained ``seeds`` times and costed; table, JSON and plots in ``out_dir``.
    Returns the result with ``files``."""
    from rrambnn.gen.mnist import load_split
    points = parse_axes(axes or ["crop", "hidden=64,128,192", "bn"], layers=layers)
    for name, v in (("--seeds", seeds), ("--epochs", epochs), ("--jobs", jobs)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise RrambnnError(f"{name} must be a positive integer, not {v!r}")
    from rrambnn.fileio import check_writable
    check_writable(out_dir, directory=True)
    from rrambnn.studies.cost import load_tech
    load_tech(tech)  # a bad technology fails before the training
    load_split("test", data_dir)  # fail early, with the paths it tried, if MNIST is missing
    res = explore(points, seeds=seeds, epochs=epochs, out_dir=Path(out_dir), data_dir=data_dir, tile=tile, jobs=jobs,
                  backend=backend, synth=synth, progress=progress, tech=tech, train_limit=train_limit,
                  device=device, chips=chips, calibration=calibration)
    res["files"] = write_outputs(res, Path(out_dir))
    return res


def describe(res: dict) -> list[str]:
    """The table and the Pareto fronts, as lines."""
    lines = [markdown_table(res)]
    for cost in COSTS:
        front = [k for k, r in res["rows"].items() if r.get(pareto_flag(cost))]
        if front:
            lines.append(f"Pareto front vs {COST_LABELS[cost]} ({len(front)} points): {', '.join(front)}")
        front = [k for k, r in res["rows"].items() if r.get("device_" + pareto_flag(cost))]
        if front:
            lines.append(f"Pareto front on device {res['device']['name']} vs {COST_LABELS[cost]} ({len(front)} "
                         f"points): {', '.join(front)}")
    best = cheapest(res, 0.96)
    if best:
        lines.append(best)
    return lines


COST_LABELS = {"synaptic_bits": "synaptic bits (RRAM cells)", "periphery_cells": "digital periphery Yosys cells",
               "area_mm2": "chip area (mm^2)", "energy_per_image_pj": "energy per image (pJ)",
               "tiles": "crossbar tiles"}


def cheapest(res: dict, floor: float) -> str | None:
    """The chip points whose mean priority accuracy is above ``floor`` that cost the least area and
    the least energy per image, as a sentence."""
    ok = [(k, r) for k, r in res["rows"].items() if r.get("area_mm2") and r["acc_priority"] > floor]
    if not ok:
        return f"no chip point is above {floor * 100:g}% (priority encoder)"
    out = []
    for cost, unit in (("area_mm2", "mm^2"), ("energy_per_image_pj", "pJ/image")):
        k, r = min(ok, key=lambda kv: kv[1][cost])
        out.append(f"least {cost.split('_')[0]}: {k} ({r['acc_priority'] * 100:.2f}%): {r['area_mm2']:.4f} mm^2, "
                   f"{r['energy_per_image_pj']:,.0f} pJ/image, {r['power_mw']:.1f} mW at {r['cycles_per_image']} "
                   f"cycle(s)/image")
    return f"cheapest chip above {floor * 100:g}% at {res.get('tech', '32nm')}: " + "; ".join(out)


def markdown_table(res: dict) -> str:
    dev = res.get("device")
    lines = [f"Design points ({res['seeds']} seed(s), {res['epochs']} epochs each; accuracy on the 10,000 MNIST test "
             f"images, mean +- spread over seeds; tiles of {res['tile'][0]}x{res['tile'][1]}; * = Pareto front of "
             f"priority-encoder accuracy vs synaptic bits, + = vs periphery cells, a = vs area, e = vs energy per image; "
             f"periphery cells: Yosys cells of the generated chip's digital periphery, with arrays, sense stages and "
             f"threshold RAMs as macros; area and energy: `rrambnn cost` at {res.get('tech', '32nm')}, "
             f"{res.get('clock_mhz', 100):g} MHz; "
             f"cycles: per image at full rate)" + _cnn_note(res) + _device_note(res), "",
             "| point | network | priority acc | argmax acc | " + ("on device: priority mean (worst chip) | "
                                                                if dev else "")
             + "synaptic bits | tiles | periphery cells "
             "| threshold RAM bits | cycles/image | area (mm^2) | energy/image (pJ) | Verilog |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if dev else "")]
    for key, r in sorted(res["rows"].items(), key=lambda kv: (kv[1]["synaptic_bits"], kv[0])):
        star = "".join(m for m, c in zip("*+ae", COSTS) if r.get(pareto_flag(c)))
        star += "d" if r.get("device_" + pareto_flag("synaptic_bits")) else ""
        on_dev = (f" {r['device_priority'] * 100:.2f} ({r['device_priority_worst'] * 100:.2f}) |"
                  if "device_priority" in r else " - |") if dev else ""
        tiles_ = r["tiles"] if r["tiles"] is not None else "software BN (no chip)"
        cells = r.get("periphery_cells")
        cmd = verilog_command(r)
        lines.append(f"| {star}{key} | {r['arch']} | {r['acc_priority'] * 100:.2f} +- {r['acc_priority_std'] * 100:.2f}"
                     f" | {r['acc_argmax'] * 100:.2f} +- {r['acc_argmax_std'] * 100:.2f} |{on_dev} {r['synaptic_bits']:,} | "
                     f"{tiles_} | {f'{cells:,}' if cells else '-'} | {_num(r.get('threshold_ram_bits'))} | "
                     f"{_num(r.get('cycles_per_image'))} | {_fmt(r.get('area_mm2'), '.4f')} | "
                     f"{_fmt(r.get('energy_per_image_pj'), ',.0f')} | {f'`{cmd}`' if cmd else '-'} |")
    return "\n".join(lines) + "\n"


def _device_note(res: dict) -> str:
    d = res.get("device")
    if not d:
        return ""
    how = (f"each chip's thresholds refitted from {d['calibration']:,} training images read through it"
           if d["calibration"] else "as programmed (no calibration)")
    return (f". On device: the chip point's network (first seed) on chips 0-{d['chips'] - 1} of device profile "
            f"{d['name']} ({d['path']}), {how}; priority accuracy, mean and worst chip, rejects counted wrong; "
            f"d = Pareto front of that accuracy vs synaptic bits")


def _cnn_note(res: dict) -> str:
    if not res.get("cnn"):
        return ""
    reads = f"the read disturbance d = {res['disturbance']:g} drawn per read" if res["disturbance"] else "ideal reads"
    copies = ("; synaptic bits and tiles count its kernels' copies" if res.get("synth", True) else "")
    return (f". CNN points: {res.get('arch', 'the base spec')} with other channels, kernels and bits (converter "
            f"bits = activation bits, {res['gbits']}-bit gradients), trained through the crossbar model with {reads}, "
            f"accuracy of the integer chip with ideal reads; each chip (the first seed's network) computes "
            f"{res['positions']} output position(s) per step of a convolution{copies}")


def _num(v) -> str:
    return "-" if v is None else f"{v:,}"


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


BN_MARKERS = {"BN signed": "o", "BN shared": "s", "BN arithmetic": "x", "BN software": "^"}  # fixed, figure to figure


def _family(p: dict) -> str:
    """A point's marker group: the BN handling of an MLP point, the weight bits of a CNN point."""
    return f"BN {p['bn']}" if "bn" in p else f"CNN, {p['wbits']}-bit weights"


def _label(p: dict) -> str:
    if "spec" in p:  # a CNN point
        kernel = f", {p['kernel']}x{p['kernel']} kernels" if p.get("kernel") else ""
        return f"channels {'x'.join(map(str, p['channels']))}{kernel}, w{p['wbits']}a{p['abits']}"
    bits = f", w{p['wbits']}a{p['abits']}" if (p["wbits"], p["abits"]) != (1, 1) else ""
    return f"crop {p['crop']}, {p['hidden']}x{p['layers']}, {p['bn']}{bits}"


def plot(res: dict, path: Path, cost: str = "synaptic_bits", title: str = "") -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = [(k, r) for k, r in res["rows"].items() if cost in r and r.get(cost)]
    fig, ax = plt.subplots(figsize=(9, 5.5))
    families = list(dict.fromkeys(_family(r["point"]) for _, r in rows))
    spare = itertools.cycle("Dv<>ph")
    for fam in families:
        mk = BN_MARKERS.get(fam) or next(spare)
        sel = [r for _, r in rows if _family(r["point"]) == fam]
        ax.errorbar([r[cost] for r in sel], [r["acc_priority"] * 100 for r in sel],
                    yerr=[r["acc_priority_std"] * 100 for r in sel], fmt=mk, label=fam, alpha=0.8)
    front = sorted((r for _, r in rows if r.get(pareto_flag(cost))), key=lambda r: r[cost])
    if front:
        ax.plot([r[cost] for r in front], [r["acc_priority"] * 100 for r in front], "k--", lw=1, label="Pareto front")
        for i, r in enumerate(front):  # neighbours labelled below-right and above-left: no overlap
            ax.annotate(_label(r["point"]), (r[cost], r["acc_priority"] * 100),
                        textcoords="offset points", xytext=(4, -10) if i % 2 == 0 else (-4, 6),
                        ha="left" if i % 2 == 0 else "right", fontsize=7)
    dev = [r for _, r in rows if "device_priority" in r]
    if dev:  # the same chips read through the device profile: hollow, with their own front
        d = res["device"]
        ax.scatter([r[cost] for r in dev], [r["device_priority"] * 100 for r in dev], facecolors="none",
                   edgecolors="tab:red", label=f"on {d['name']} ({d['chips']} chips, mean"
                                               f"{', calibrated' if d['calibration'] else ''})")
        dfront = sorted((r for r in dev if r.get("device_" + pareto_flag(cost))), key=lambda r: r[cost])
        ax.plot([r[cost] for r in dfront], [r["device_priority"] * 100 for r in dfront], ":", color="tab:red", lw=1,
                label=f"Pareto front on {d['name']}")
    ax.set_xscale("log")
    ax.set_xlabel(COST_LABELS.get(cost, cost))
    ax.set_ylabel("test accuracy, priority encoder (%)")
    ax.set_title(title or "accuracy vs hardware cost")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
    plt.close(fig)


@one_output_set  # the files together, or the earlier ones left whole
def write_outputs(res: dict, out_dir: Path) -> dict:
    from rrambnn.fileio import atomic_write
    out_dir = Path(out_dir)
    paths = {"json": out_dir / "explore.json", "md": out_dir / "explore.md", "png": out_dir / "explore.png"}
    atomic_write(paths["json"], lambda f: f.write(json_text(res, indent=1).encode()))
    atomic_write(paths["md"], lambda f: f.write(("\n".join(describe(res)) + "\n").encode()))
    plot(res, paths["png"])
    tech, mhz = res.get("tech", "32nm"), res.get("clock_mhz", 100)
    for name, cost, title in (("png_cells", "periphery_cells", "accuracy vs digital periphery"),
                              ("png_area", "area_mm2", f"accuracy vs chip area ({tech})"),
                              ("png_energy", "energy_per_image_pj", f"accuracy vs energy per image ({tech}, {mhz:g} MHz)")):
        if any(r.get(cost) for r in res["rows"].values()):
            paths[name] = out_dir / f"explore_{cost.split('_')[0] if cost != 'periphery_cells' else 'periphery'}.png"
            plot(res, paths[name], cost=cost, title=title)
    return {k: str(v) for k, v in paths.items()}
