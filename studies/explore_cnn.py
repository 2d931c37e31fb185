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
import itertools
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
    def hardware(self) -> bool:
        return True

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
    error line)."""
    convs = [i for i, layer in enumerate(base.layers) if isinstance(layer, Conv)]
    layers = list(base.layers)
    for j, i in enumerate(convs):
        c = layers[i]
        k, pad = c.k, c.pad
        if kernel is not None:
            pad = (kernel - 1) // 2 if c.pad == (c.k - 1) // 2 and c.pad else min(c.pad, kernel - 1)
            k = kernel
        layers[i] = Conv(k, channels[j] if channels is not None else c.c_out, min(c.stride, k), pad)
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


def train_point(p: CnnPoint, seed: int, epochs: int, disturbance: float, data, out_dir: Path,
                train_limit: int | None) -> dict:
    """Train ``p`` once (``seed``), calibrate, evaluate hardware-exactly; the weights file is left
    in ``out_dir/weights``."""
    from rrambnn.gen import cnn_train
    tr, te = data
    cfg = cnn_train.CnnTrainConfig(spec=p.spec, abits=p.abits, cobits=p.abits, wbits=p.wbits, gbits=GBITS,
                                   disturbance=disturbance, epochs=epochs, seed=seed, samples=train_limit or 0)
    net, model, _ = cnn_train.train(cfg, tr.images, tr.labels, progress=False)
    res = cnn_train.evaluate(net, model, tr, te, float_disturbed=False)
    path = out_dir / "weights" / f"{p.key}-s{seed}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    net.meta["explore_point"] = dataclasses.asdict(p)
    net.save(path)
    acc = res["accuracy"]
    return {"priority": acc["priority"], "argmax": acc["argmax"], "rejects": acc["rejects"],
            "float": res["float_accuracy"], "weights": str(path)}


def chip_cost(weights: str, tile, positions: int) -> dict:
    """The generated CNN chip's periphery cells, inventory and cycles per image (cached by shape)."""
    from rrambnn.gen.cnn import CnnNetwork
    from rrambnn.hw.cnn import make_chip
    from rrambnn.studies.cost import cnn_inventory, periphery_cells
    net = CnnNetwork.load(weights)
    chip = make_chip(net, tile=f"{tile[0]}x{tile[1]}", positions=positions)
    cells = periphery_cells(chip)
    return {"cells": sum(v for k, v in cells.items() if k.startswith("$_")), "cells_by_type": cells, "ram_bits": 0,
            "interval": int(chip.interval), "inventory": cnn_inventory(chip, chip.output)}


def cost_key(p: CnnPoint, tile, positions: int) -> str:
    return f"cnncost1:{p.spec}:w{p.wbits}a{p.abits}:t{tile[0]}x{tile[1]}:P{positions}"


def eval_key(p: CnnPoint, seed: int, epochs: int, disturbance: float, train_limit) -> str:
    return (f"cnneval1:{p.spec}:w{p.wbits}a{p.abits}g{GBITS}:d{disturbance:g}:s{seed}:e{epochs}"
            + (f":n{train_limit}" if train_limit else ""))


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
            progress: bool = True, train_limit: int | None = None, tech="32nm") -> dict:
    from rrambnn.studies.cost import load_tech, price
    from rrambnn.studies.explore import Cache, mark_pareto, run_tasks
    from rrambnn.studies.explore import COSTS
    tech = load_tech(tech)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cache = Cache(out_dir / "cache.json")
    rows = {p.key: {"point": dataclasses.asdict(p), "arch": p.spec, "bits": p.bits, "synaptic_bits": synaptic_bits(p),
                    "tiles": tiles(p, tile)} for p in points}
    todo = [(p, s) for p in points for s in range(seeds)
            if cache.get(eval_key(p, s, epochs, disturbance, train_limit)) is None]
    results = run_tasks(_train_task, [(p, s, epochs, disturbance, data_dir, str(out_dir), train_limit) for p, s in todo],
                        jobs=jobs, backend=backend, desc="train and evaluate", progress=progress)
    for (p, s), r in zip(todo, results):
        cache.put(eval_key(p, s, epochs, disturbance, train_limit), r)
    cost_todo = {}
    for p in points:
        row = rows[p.key]
        evals = [cache.get(eval_key(p, s, epochs, disturbance, train_limit)) for s in range(seeds)]
        for mode in ("priority", "argmax"):
            accs = np.array([e[mode] for e in evals])
            row[f"acc_{mode}"], row[f"acc_{mode}_std"] = float(accs.mean()), float(accs.std())
        row["weights"] = evals[0]["weights"]
        ck = cost_key(p, tile, positions)
        if synth and cache.get(ck) is None:
            cost_todo.setdefault(ck, (row["weights"], tuple(tile), positions))
    costs = run_tasks(_cost_task, list(cost_todo.values()), jobs=jobs, backend=backend,
                      desc="synthesize CNN chips", progress=progress)
    for ck, c in zip(cost_todo, costs):
        cache.put(ck, c)
    for p in points:
        row = rows[p.key]
        if not synth:
            continue
        cost = cache.get(cost_key(p, tile, positions))
        c = price(cost["inventory"], cost["cells_by_type"], tech)
        row.update(periphery_cells=cost["cells"], threshold_ram_bits=None, cycles_per_image=cost["interval"],
                   area_mm2=c["area_mm2"], energy_per_image_pj=c["energy_per_image_pj"], power_mw=c["power_mw"],
                   tops_per_mm2=c["tops_per_mm2"], tops_per_w=c["tops_per_w"])
    mark_pareto(rows)
    if synth:
        for cost in COSTS[1:]:
            mark_pareto(rows, cost)
    return {"epochs": epochs, "seeds": seeds, "tile": list(tile), "tech": tech["name"], "clock_mhz": tech["clock_mhz"],
            "positions": positions, "disturbance": disturbance, "gbits": GBITS, "cnn": True, "rows": rows}


def study(axes, *, arch: str, seeds: int = 2, epochs: int = 3, out_dir: Path, data_dir=None, tile="128x128",
          positions: int = 1, disturbance: float = 0.0, jobs: int = 2, backend: str = "local", synth: bool = True,
          progress: bool = True, tech="32nm", train_limit: int | None = None) -> dict:
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
    if synth:  # every point's chip can be built (positions, tile, map sizes) before any training
        from rrambnn.gen.cnn import random_cnn
        from rrambnn.hw.cnn import make_chip
        for p in points:
            make_chip(random_cnn(p.spec, p.wbits, p.abits, np.random.default_rng(0)),
                      tile=f"{tile[0]}x{tile[1]}", positions=positions)
    check_writable(out_dir, directory=True)
    load_tech(tech)  # a bad technology fails before the training
    load_split("test", data_dir)  # fail early, with the paths it tried, if MNIST is missing
    res = explore(points, seeds=seeds, epochs=epochs, out_dir=Path(out_dir), data_dir=data_dir, tile=tile,
                  positions=positions, disturbance=disturbance, jobs=jobs, backend=backend, synth=synth,
                  progress=progress, train_limit=train_limit, tech=tech)
    res["arch"] = parse_spec(arch).text
    res["files"] = write_outputs(res, Path(out_dir))
    return res
