"""Design-space exploration of convolutional networks (``rrambnn explore --arch SPEC``): test
accuracy against the CNN chip's cost.

A point is the base spec (``lenet5`` or any spec with a convolution) with

* ``channels=6x16,3x8``: each convolution's output channels, in order (one count per
  convolution, ``x``-separated);
* ``kernel=3,5``: the kernel side of every convolution; a convolution whose base padding kept
  its output the size of its input (``pad = (k - 1) / 2``) keeps doing so, the others keep
  their padding (at most ``k - 1``);
* ``wbits=1,2,4`` and ``abits=2,4``: the weight and activation bits (the converter has the
  activation's bits, the gradients :data:`GBITS`).

The base spec's other layers (pooling, dense) stay. Every point is trained ``epochs`` through
the crossbar model (:mod:`rrambnn.gen.cnn_train`; ``--disturbance`` adds the read disturbance,
default ideal reads) for every seed, its output thresholds calibrated, and evaluated
hardware-exactly on the 10,000 test images (mean and spread over seeds); its cost is its
synaptic bits (cells), crossbar tiles, and the generated CNN chip (:mod:`rrambnn.hw.cnn`, the
chosen output positions per step): the digital periphery's Yosys cells, cycles per image, area
and energy per image priced by :func:`rrambnn.studies.cost.price` (the ``rrambnn cost`` of the
chip). Rows have the MLP exploration's fields, so the table, the Pareto fronts and the plots are
:mod:`rrambnn.studies.explore`'s. Results are cached in the output directory per training and
per synthesis: an interrupted run resumes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from pathlib import Path

import numpy as np

from rrambnn.errors import RrambnnError
from rrambnn.gen.spec import Conv, parse_spec

AXES = {"channels": None, "kernel": (3, 5), "wbits": (1, 2, 4), "abits": (2, 4)}  # channels: the base's
GBITS = 4  # the gradients' bits at every point (the paper's working combinations: 4/4/4/4, 3/3/2/4, 2/2/1/4)
MAX_BITS = 8  # an integer chip


@dataclasses.dataclass(frozen=True)
class CnnPoint:
    spec: str  # the point's layer spec (canonical text)
    wbits: int
    abits: int
    channels: tuple[int, ...]
    kernel: int | None  # None: the base's kernels

    @property
    def key(self) -> str:
        k = f"-k{self.kernel}" if self.kernel else ""
        return f"ch{'x'.join(map(str, self.channels))}{k}-w{self.wbits}-a{self.abits}"

    @property
    def bits(self) -> str:
        return f"{self.abits}/{self.abits}/{self.wbits}/{GBITS}"


def _ints(name: str, text: str, lo: int, hi: int, sep: str = ",") -> list[int]:
    out = []
    for v in text.split(sep):
        v = v.strip()
        try:
            n = int(v)
        except ValueError:
            raise RrambnnError(f"{name} values must be integers, not {v!r}") from None
        if not lo <= n <= hi:
            raise RrambnnError(f"{name} must be from {lo} to {hi}, not {n}")
        out.append(n)
    return out


def variant(base, channels=None, kernel=None) -> str:
    """The base spec (a :class:`rrambnn.gen.spec.NetSpec`) with each convolution's channels and/or
    every convolution's kernel replaced: its text (validated: a kernel larger than its input is one
    error line). A convolution that keeps its input's size (stride 1, padding (k - 1) / 2) keeps
    it with the new kernel, which must then be odd; the others keep their padding (at most
    k - 1) and stride (a kernel smaller than the stride is refused)."""
    convs = [i for i, layer in enumerate(base.layers) if isinstance(layer, Conv)]
    layers = list(base.layers)
    for j, i in enumerate(convs):
        c = layers[i]
        k, pad = c.k, c.pad
        if kernel is not None:
            same = c.stride == 1 and 2 * c.pad == c.k - 1
            if same and kernel % 2 == 0:
                raise RrambnnError(f"kernel {kernel}: {c.text} keeps its input's size, which an even kernel cannot "
                                   f"(give odd kernels)")
            if kernel < c.stride:
                raise RrambnnError(f"kernel {kernel} is smaller than {c.text}'s stride {c.stride}")
            pad = (kernel - 1) // 2 if same else min(c.pad, kernel - 1)
            k = kernel
        layers[i] = Conv(k, channels[j] if channels is not None else c.c_out, c.stride, pad)
    h, w, ch = base.input
    text = "-".join([f"i{h}x{w}x{ch}" if (h != w or ch != 1) else f"i{h}", *(layer.text for layer in layers)])
    return parse_spec(text).text


def parse_axes(specs, arch: str) -> list[CnnPoint]:
    """``["channels=6x16,3x8", "wbits=1,4"]`` on the base ``arch`` -> the crossed points; an axis
    named alone takes its default values (channels: the base's, halved and doubled)."""
    base = parse_spec(arch)
    convs = [layer for layer in base.layers if isinstance(layer, Conv)]
    if not convs:
        raise RrambnnError(f"--arch {arch!r} has no convolution; explore MLPs without --arch")
    own = tuple(c.c_out for c in convs)
    values = {"channels": [own], "kernel": [None], "wbits": [4], "abits": [4]}
    from rrambnn.studies.explore import split_axis
    for spec in specs:
        name, text = split_axis(spec, AXES, " for a CNN")
        if name == "channels":
            if not text:
                values[name] = list(dict.fromkeys([tuple(max(1, c // 2) for c in own), own, tuple(2 * c for c in own)]))
                continue
            out = []
            for v in text.split(","):
                if len(v.split("x")) != len(convs):
                    raise RrambnnError(f"channels {v.strip()!r} must give one count per convolution "
                                       f"({len(convs)} in {base.text}), e.g. {'x'.join(map(str, own))}")
                out.append(tuple(_ints("channels", v, 1, 1024, sep="x")))
            values[name] = list(dict.fromkeys(out))
        elif name == "kernel":
            values[name] = list(AXES[name]) if not text else list(dict.fromkeys(_ints("kernel", text, 1, 15)))
        else:
            values[name] = list(AXES[name]) if not text else list(dict.fromkeys(_ints(name, text, 1, MAX_BITS)))
    points = []
    for ch, k, w, a in itertools.product(values["channels"], values["kernel"], values["wbits"], values["abits"]):
        points.append(CnnPoint(variant(base, ch, k), w, a, ch, k))
    return points


def matrices(p: CnnPoint):
    return parse_spec(p.spec).matrices()


def synaptic_bits(p: CnnPoint) -> int:
    return sum(m.rows * m.cols for m in matrices(p)) * p.wbits


def tiles(p: CnnPoint, tile=(128, 128)) -> int:
    return sum(a * b for a, b in (m.tiles(tile) for m in matrices(p))) * p.wbits


TRAINING = 2  # version of what a training result means (bump when the trainer's results change)
COSTING = 2


def train_config(p: CnnPoint, seed: int, epochs: int, disturbance: float, train_limit: int | None):
    """The point's training configuration (the trainer's defaults otherwise), validated."""
    from rrambnn.gen import cnn_train
    cfg = cnn_train.CnnTrainConfig(spec=p.spec, abits=p.abits, cobits=p.abits, wbits=p.wbits, gbits=GBITS,
                                   disturbance=disturbance, epochs=epochs, seed=seed, samples=train_limit or 0)
    cfg.validate()
    return cfg


def eval_key(p: CnnPoint, seed: int, epochs: int, disturbance: float, train_limit) -> str:
    """Everything that sets a training's result: the whole configuration (the trainer's defaults
    included) and :data:`TRAINING`."""
    cfg = dataclasses.asdict(train_config(p, seed, epochs, disturbance, train_limit))
    digest = hashlib.sha1(json.dumps([cfg, TRAINING], sort_keys=True).encode()).hexdigest()[:16]
    return f"cnneval{TRAINING}:{p.key}:s{seed}:{digest}"


def train_point(p: CnnPoint, seed: int, epochs: int, disturbance: float, data, out_dir: Path,
                train_limit: int | None) -> dict:
    """Train ``p`` once (``seed``), calibrate, evaluate hardware-exactly (and with the reads
    disturbed when it trained with the disturbance); the weights file is left in
    ``out_dir/weights``, named by the training (another run's files are not overwritten)."""
    from rrambnn.gen import cnn_train
    tr, te = data
    cfg = train_config(p, seed, epochs, disturbance, train_limit)
    net, model, _ = cnn_train.train(cfg, tr.images, tr.labels, progress=False)
    res = cnn_train.evaluate(net, model, tr, te, float_disturbed=False)
    digest = eval_key(p, seed, epochs, disturbance, train_limit).rsplit(":", 1)[1]
    path = out_dir / "weights" / f"{p.key}-s{seed}-{digest[:8]}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    net.meta["explore_point"] = dataclasses.asdict(p)
    net.save(path)
    acc = res["accuracy"]
    out = {"priority": acc["priority"], "argmax": acc["argmax"], "rejects": acc["rejects"],
           "float": res["float_accuracy"], "weights": str(path)}
    if "accuracy_disturbed" in res:
        out["disturbed"] = {k: res["accuracy_disturbed"][k] for k in ("priority", "argmax")}
    return out


def chip_cost(weights: str, tile, positions: int) -> dict:
    """The generated CNN chip's periphery cells, inventory, cycles per image and arrays."""
    from rrambnn.gen.cnn import CnnNetwork
    from rrambnn.hw.cnn import make_chip
    from rrambnn.studies.cost import cnn_inventory, periphery_cells
    net = CnnNetwork.load(weights)
    chip = make_chip(net, tile=f"{tile[0]}x{tile[1]}", positions=positions)
    cells = periphery_cells(chip)
    return {"cells": sum(v for k, v in cells.items() if k.startswith("$_")), "cells_by_type": cells, "ram_bits": 0,
            "interval": int(chip.interval), "inventory": cnn_inventory(chip, chip.output),
            "tiles": int(chip.n_tiles), "copies": [len(c) for c in chip.layers]}


def cost_key(weights: str, tile, positions: int) -> str:
    """The chip of one weights file (its thresholds are constants of the generated logic, so the
    periphery depends on the values, not only on the shape): the file's content, the tile and
    the positions."""
    digest = hashlib.sha1(Path(weights).read_bytes()).hexdigest()[:16]
    return f"cnncost{COSTING}:{digest}:t{tile[0]}x{tile[1]}:P{positions}"


def _train_task(args):
    p, seed, epochs, disturbance, data_dir, out_dir, train_limit = args
    from rrambnn.gen.mnist import load_split
    from rrambnn.studies.explore import _load_cached
    data = (_load_cached(data_dir, "train", load_split), _load_cached(data_dir, "test", load_split))
    return train_point(p, seed, epochs, disturbance, data, Path(out_dir), train_limit)


def _cost_task(args):
    return chip_cost(*args)


def explore(points, *, seeds: int, epochs: int, out_dir: Path, data_dir=None, tile=(128, 128), positions: int = 1,
            disturbance: float = 0.0, jobs: int = 2, backend: str = "local", synth: bool = True,
            progress: bool = True, train_limit: int | None = None, tech="32nm", device=None, chips: int = 5,
            calibration: int = 2000) -> dict:
    """Train, evaluate and price ``points`` (each result kept in ``out_dir/cache.json`` as it
    arrives); the rows of the table. The chip of a point is its first seed's network's, with
    ``positions`` output positions per step: its tiles and cells count the positions' copies."""
    from rrambnn.studies.cost import load_tech, price
    from rrambnn.studies.explore import COSTS, Cache, mark_pareto, on_device, run_tasks
    tech = load_tech(tech)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cache = Cache(out_dir / "cache.json")
    rows = {p.key: {"point": dataclasses.asdict(p), "arch": p.spec, "bits": p.bits, "synaptic_bits": synaptic_bits(p),
                    "tiles": tiles(p, tile), "verilog_args": f"--positions {positions} --tile {tile[0]}x{tile[1]}"}
            for p in points}
    todo = [(p, s) for p in points for s in range(seeds)
            if cache.get(eval_key(p, s, epochs, disturbance, train_limit)) is None]
    run_tasks(_train_task, [(p, s, epochs, disturbance, data_dir, str(out_dir), train_limit) for p, s in todo],
              jobs=jobs, backend=backend, desc="train and evaluate", progress=progress,
              done=lambda i, r: cache.put(eval_key(todo[i][0], todo[i][1], epochs, disturbance, train_limit), r))
    cost_todo = {}
    for p in points:
        row = rows[p.key]
        evals = [cache.get(eval_key(p, s, epochs, disturbance, train_limit)) for s in range(seeds)]
        for mode in ("priority", "argmax"):
            accs = np.array([e[mode] for e in evals])
            row[f"acc_{mode}"], row[f"acc_{mode}_std"] = float(accs.mean()), float(accs.std())
            if all("disturbed" in e for e in evals):
                row[f"acc_{mode}_disturbed"] = float(np.mean([e["disturbed"][mode] for e in evals]))
        row["weights"] = evals[0]["weights"]
        if synth and cache.get(cost_key(row["weights"], tile, positions)) is None:
            cost_todo.setdefault(cost_key(row["weights"], tile, positions), (row["weights"], tuple(tile), positions))
    keys = list(cost_todo)
    run_tasks(_cost_task, list(cost_todo.values()), jobs=jobs, backend=backend, desc="synthesize CNN chips",
              progress=progress, done=lambda i, c: cache.put(keys[i], c))
    for p in points:
        row = rows[p.key]
        if not synth:
            continue
        cost = cache.get(cost_key(row["weights"], tile, positions))
        c = price(cost["inventory"], cost["cells_by_type"], tech)
        copies = cost["copies"]
        row.update(tiles=cost["tiles"], periphery_cells=cost["cells"], threshold_ram_bits=None,
                   synaptic_bits=sum(m.rows * m.cols * n for m, n in zip(matrices(p), copies)) * p.wbits,
                   cycles_per_image=cost["interval"], area_mm2=c["area_mm2"],
                   energy_per_image_pj=c["energy_per_image_pj"], power_mw=c["power_mw"],
                   tops_per_mm2=c["tops_per_mm2"], tops_per_w=c["tops_per_w"])
    mark_pareto(rows)
    if synth:
        for cost in COSTS[1:]:
            mark_pareto(rows, cost)
    return {"epochs": epochs, "seeds": seeds, "tile": list(tile), "tech": tech["name"], "clock_mhz": tech["clock_mhz"],
            "positions": positions, "disturbance": disturbance, "gbits": GBITS, "cnn": True, "synth": synth,
            "rows": rows,
            **on_device(rows, device, chips=chips, calibration=calibration, data_dir=data_dir, cache=cache, jobs=jobs,
                        backend=backend, progress=progress, synth=synth)}


def check_points(points, *, tile, positions: int, seeds: int, epochs: int, disturbance: float,
                 train_limit: int | None, tech, synth: bool) -> None:
    """Before any training: every point's training configuration, and (``synth``) its chip
    buildable at the tile and positions and its clock within the design's highest; one error
    line naming the point."""
    from rrambnn.gen.cnn import random_cnn
    from rrambnn.hw.cnn import make_chip
    from rrambnn.studies.cost import check_clock, cnn_inventory
    for p in points:
        try:
            for s in range(seeds):
                train_config(p, s, epochs, disturbance, train_limit)
            if synth:
                chip = make_chip(random_cnn(p.spec, p.wbits, p.abits, np.random.default_rng(0)),
                                 tile=f"{tile[0]}x{tile[1]}", positions=positions)
                check_clock(cnn_inventory(chip, chip.output), tech, None, None)
        except (RrambnnError, ValueError) as e:
            raise RrambnnError(f"point {p.key} ({p.spec}): {e}") from None


def study(axes, *, arch: str, seeds: int = 2, epochs: int = 3, out_dir: Path, data_dir=None, tile="128x128",
          positions: int = 1, disturbance: float = 0.0, jobs: int = 2, backend: str = "local", synth: bool = True,
          progress: bool = True, tech="32nm", train_limit: int | None = None, device=None, chips: int = 5,
          calibration: int = 2000) -> dict:
    """`rrambnn explore --arch SPEC`: the CNN points crossed from ``axes`` (default: channels and
    wbits), each trained ``seeds`` times and costed; table, JSON and plots in ``out_dir``."""
    from rrambnn.fileio import check_writable
    from rrambnn.gen.cnn import check_disturbance
    from rrambnn.gen.mnist import load_split
    from rrambnn.hw.layer import check_tile
    from rrambnn.studies.cost import load_tech
    from rrambnn.studies.explore import write_outputs
    points = parse_axes(axes or ["channels", "wbits"], arch)
    for name, v in (("--seeds", seeds), ("--epochs", epochs), ("--jobs", jobs), ("--positions", positions)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise RrambnnError(f"{name} must be a positive integer, not {v!r}")
    check_disturbance(disturbance)
    try:
        tile = check_tile(tile)
    except (TypeError, ValueError) as e:
        raise RrambnnError(str(e)) from None
    check_points(points, tile=tile, positions=positions, seeds=seeds, epochs=epochs, disturbance=disturbance,
                 train_limit=train_limit, tech=load_tech(tech), synth=synth)
    load_split("test", data_dir)  # fail early, with the paths it tried, if MNIST is missing
    check_writable(out_dir, directory=True)
    res = explore(points, seeds=seeds, epochs=epochs, out_dir=Path(out_dir), data_dir=data_dir, tile=tile,
                  positions=positions, disturbance=disturbance, jobs=jobs, backend=backend, synth=synth,
                  progress=progress, train_limit=train_limit, tech=tech, device=device, chips=chips,
                  calibration=calibration)
    res["arch"] = parse_spec(arch).text
    res["files"] = write_outputs(res, Path(out_dir))
    return res
