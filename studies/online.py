"""Online-training studies: one run of either rule from a request, its hardware replay, and the
sweeps over weight bits and endurance (points in parallel processes, kept beside the outputs so
a stopped sweep resumes)."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from pathlib import Path

from rrambnn.errors import RrambnnError
from rrambnn.fileio import check_writable, json_text

ONLINE_ARCHS = {"400-200-10": "bnn-400-200-10.npz", "400-128-128-10": "bnn-400-128-128-10.npz"}
FORWARDS = ("nbit", "sign")
SIGN_ONLY = ("batch", "margin", "window", "init_magnitude")
NBIT_ONLY = ("abits", "range_shift", "lr_shift", "decay")
LATER_OPTIONS = ("device", "calibration")  # request fields a sweep's kept points may predate


@dataclasses.dataclass(frozen=True)
class OnlineRequest:
    """What to train and how: the command line's online-training options (None: the rule's
    default). Plain values only, so a request travels to worker processes as it is."""

    forward: str = "nbit"
    arch: str = "400-200-10"
    weights: str | None = None
    start: str = "pretrained"
    wbits: int = 8
    abits: int | None = None
    err_bits: int | None = None
    lr_shift: int | None = None
    decay: int | None = None
    range_shift: int | None = None
    restore: bool = True
    batch: int | None = None
    margin: int | None = None
    window: int | None = None
    init_magnitude: int | None = None
    epochs: int = 3
    samples: int = 10000
    yield_: float = 1.0
    pulse_fail: float = 0.0
    endurance: int = 0
    retries: int = 3
    seed: int = 0
    data: str | None = None
    device: str | None = None  # sign: a device profile the sign cells read through (analog reads)
    calibration: int | None = None  # with device: training images that calibrate the thresholds first

    @classmethod
    def from_options(cls, options) -> "OnlineRequest":
        """The request from an object with these attributes (e.g. parsed arguments)."""
        return cls(**{f.name: getattr(options, f.name) for f in dataclasses.fields(cls)})

    def check(self) -> "OnlineRequest":
        if self.forward not in FORWARDS:
            raise RrambnnError(f"--forward must be nbit or sign, not {self.forward!r}")
        if self.forward == "nbit":
            for opt in SIGN_ONLY:
                if getattr(self, opt) is not None:
                    raise RrambnnError(f"--{opt.replace('_', '-')} belongs to --forward sign")
        elif any(getattr(self, opt) is not None for opt in NBIT_ONLY):
            raise RrambnnError("--abits, --range-shift, --lr-shift and --decay belong to --forward nbit")
        if self.start not in ("pretrained", "blank"):
            raise RrambnnError(f"--start must be pretrained or blank, not {self.start!r}")
        if self.epochs < 1:
            raise RrambnnError(f"--epochs must be a positive integer, not {self.epochs}")
        if self.samples < 0:
            raise RrambnnError(f"--samples must be 0 (all) or positive, not {self.samples}")
        if self.device is not None and self.nbit:
            raise RrambnnError("--device trains with --forward sign (the binary chip's reads of its sign cells); the "
                               "n-bit macro's sigmoid reads are not modelled with a device profile")
        if self.calibration is not None and self.device is None:
            raise RrambnnError("--calibration goes with --device (it fits the thresholds of a profile's chip)")
        return self

    def profile(self):
        """The device profile of ``device`` (None: digital reads); its stuck cells are the online
        chip's (--yield), so its own yield must be 1."""
        if self.device is None:
            return None
        from rrambnn.gen.analog import load_profile
        p = load_profile(self.device)
        if p.ideal and self.calibration is not None:
            raise RrambnnError("--calibration fits a profile's chip; the ideal profile reads digitally (nothing to fit)")
        if p.yield_ < 1:
            raise RrambnnError(f"the online chip's stuck cells come from --yield; the profile {p.name} has yield "
                               f"{p.yield_} (give one with yield = 1)")
        return p

    @property
    def nbit(self) -> bool:
        return self.forward == "nbit"


def start_network(req: OnlineRequest):
    """The starting network: a binary network (sign), or for nbit a dict with the arch and,
    for a pretrained start, the codes of an n-bit online network file."""
    from rrambnn.gen.netfile import load_network
    from rrambnn.weights import ONLINE_NBIT, shipped
    req.check()
    if req.nbit:
        from rrambnn.gen import online_nbit
        from rrambnn.gen.network import parse_arch
        if req.weights:
            return online_nbit.load_codes(req.weights)
        if req.arch not in ONLINE_ARCHS:
            raise RrambnnError(f"--arch must be one of {', '.join(ONLINE_ARCHS)} (or give --weights), not {req.arch!r}")
        if req.arch != "400-200-10":
            raise RrambnnError(f"the n-bit rule trains networks with one hidden layer (400-200-10), not {req.arch}; "
                               f"--forward sign trains {req.arch}")
        if req.start == "pretrained":
            return online_nbit.load_codes(shipped(ONLINE_NBIT))
        return {"arch": parse_arch(req.arch), "codes": None}
    if req.weights:
        return load_network(req.weights)
    if req.arch not in ONLINE_ARCHS:
        raise RrambnnError(f"--arch must be one of {', '.join(ONLINE_ARCHS)} (or give --weights), not {req.arch!r}")
    return load_network(shipped(ONLINE_ARCHS[req.arch]))


def rule_config(req: OnlineRequest, net, bits=None, endurance=None):
    """The rule's configuration (:class:`NbitConfig` or :class:`SignConfig`) for ``req``
    starting from ``net``, at a sweep point's ``bits`` or ``endurance`` where given."""
    from rrambnn.gen.device import DeviceParams
    from rrambnn.gen.online_nbit import NbitConfig, default_lr_shift
    from rrambnn.gen.online_sign import SignConfig
    req.check()
    device = DeviceParams(req.yield_, req.pulse_fail, req.endurance if endurance is None else endurance, req.seed)
    bits = req.wbits if bits is None else bits
    if req.nbit:
        lr = req.lr_shift if req.lr_shift is not None else default_lr_shift(bits, req.start == "pretrained")
        abits, range_shift = req.abits, req.range_shift
        if isinstance(net, dict) and net.get("codes") is not None and req.start == "pretrained":
            for opt, mine, theirs in (("abits", abits, net["act_bits"]),
                                      ("range-shift", range_shift, net["range_shift"])):
                if mine is not None and theirs is not None and mine != theirs:
                    raise RrambnnError(f"--{opt} {mine} differs from the starting network's {theirs}")
            abits = net["act_bits"] if abits is None else abits
            range_shift = net["range_shift"] if range_shift is None else range_shift
        cfg = NbitConfig(wbits=bits, abits=abits, err_bits=req.err_bits, lr_shift=lr,
                         decay=NbitConfig.decay if req.decay is None else req.decay, range_shift=range_shift,
                         restore=req.restore, retries=req.retries, device=device, seed=req.seed)
    else:
        d = SignConfig()
        pick = lambda v, default: default if v is None else v  # noqa: E731
        cfg = SignConfig(wbits=bits, err_bits=pick(req.err_bits, d.err_bits), batch=pick(req.batch, d.batch),
                           margin=pick(req.margin, d.margin), window=pick(req.window, d.window),
                           init_magnitude=req.init_magnitude, retries=req.retries, device=device, seed=req.seed)
    if isinstance(net, dict) and net["codes"] is not None and req.start == "pretrained" and net["bits"] != cfg.wbits:
        raise RrambnnError(f"the starting network has {net['bits']}-bit weights; --wbits is {cfg.wbits} "
                           f"(a blank start takes any)")
    return cfg


def dataset(net, data_dir):
    """MNIST as the network to train sees it: (x_train, y_train, x_test, y_test)."""
    import numpy as np

    from rrambnn.gen.mnist import load_split
    if isinstance(net, dict):
        from rrambnn.gen.online_nbit import binary_data
        return binary_data(data_dir, int(round(net["arch"][0] ** 0.5)))
    if net.preprocess is None:
        raise RrambnnError("this network has raw-bit inputs (crop 0); it cannot be trained on MNIST")
    tr, te = load_split("train", data_dir), load_split("test", data_dir)
    return (net.preprocess(tr.images), tr.labels.astype(np.int64), net.preprocess(te.images),
            te.labels.astype(np.int64))


def train(req: OnlineRequest, net, cfg, data, *, record: int = 0, progress: bool = False) -> dict:
    """One run in either forward mode (what `online` and every sweep point do)."""
    from rrambnn.gen import online_nbit, online_sign
    samples = req.samples or None
    if isinstance(net, dict):
        codes = None if req.start == "blank" else net["codes"]
        return online_nbit.run(net["arch"], cfg, data, codes=codes, epochs=req.epochs, samples=samples,
                            record=record, progress=progress)
    r = online_sign.run(net, cfg, data, blank=req.start == "blank", epochs=req.epochs, samples=samples,
                        record_updates=record, progress=progress, profile=req.profile(),
                        calibration=req.calibration or 0)
    r["result"]["forward"] = "sign"
    return r


def online(req: OnlineRequest, out: Path, *, save=None, trace=None, trace_samples: int = 1000,
           trace_updates: int = 5000, replay: bool = False, replay_images: int = 200, progress: bool = False,
           log=None) -> dict:
    """`rrambnn online`: one run, its report in ``out`` (JSON and plots), optionally the trained
    codes (``save``), the recorded trace and its replay on Verilator."""
    from rrambnn.gen import online_nbit
    from rrambnn.gen import online_sign
    from rrambnn.studies import online_report

    net = start_network(req)
    cfg = rule_config(req, net)
    for name, v in (("trace-updates", trace_updates), ("trace-samples", trace_samples),
                    ("replay-images", replay_images)):
        if v < 1:
            raise RrambnnError(f"--{name} must be a positive integer, not {v}")
    if replay and req.nbit and (cfg.wbits > 8 or cfg.m > 8):
        raise RrambnnError(f"the training chip holds at most 8-bit weights and neurons, not {cfg.wbits}/{cfg.m}: "
                           f"--replay needs --wbits 8 or less")
    for name, path in (("--trace", trace), ("--save", save)):
        if path is not None:
            check_writable(path, option=name)
    out = check_writable(out, directory=True)
    if save and not req.nbit:
        raise RrambnnError("--save belongs to --forward nbit")
    if req.device is not None and (trace or replay):
        raise RrambnnError("--trace and --replay check the digital weight-update controller; with --device the "
                           "reads are analog (golden model only)")
    req.profile()  # a bad profile is one error line before anything is loaded
    data = dataset(net, req.data)
    record = (trace_samples if req.nbit else trace_updates) if (trace or replay) else 0
    run = train(req, net, cfg, data, record=record, progress=progress)
    res = run["result"]
    res["write_energy"] = online_report.write_energy(res)
    res["files"] = online_report.write_run(res, out)  # written before a replay, which can fail
    if save:
        online_nbit.save_codes(save, res["arch"], cfg, run["chip"].codes(),
                            {"trained_by": "rrambnn online", "result": {k: res[k] for k in ("rule", "start", "epochs",
                             "samples_per_epoch", "device", "seed", "final", "best", "best_epoch")}})
        res["files"]["network"] = str(save)
    if trace:
        if req.nbit:
            online_nbit.save_trace(trace, run["chip"], run["trace"], run["initial_codes"])
        else:
            online_sign.save_trace(trace, run["trace"], res["arch"])
        res["files"]["trace"] = str(trace)
    if replay:
        x_te = data[2][:replay_images]
        if req.nbit:
            res["replay"] = replay_nbit(Path(trace) if trace else out / "trace.npz", run, x_te, seed=req.seed + 1,
                                        log=log)
        else:
            res["replay"] = replay_sign(run, cfg, x_te, seed=req.seed + 1, log=log)
        res["files"].update(online_report.write_run(res, out))
    return res


REPLAY_KEYS = ("passed", "commands", "cycles", "replay_wall_s", "readback_wall_s", "hardware", "golden",
               "failed_cells", "failed_match", "cells_read", "cell_mismatches", "count_mismatches", "codes_match",
               "switches_total", "worn_out_cells", "images", "class_mismatches", "build_s", "build_cached",
               "failures", "log")


def replay_sign(run, cfg, x_te, *, seed: int, log=None) -> dict:
    """The recorded commands through the weight-update controller on Verilator, from the chip's
    initial state, against the golden online chip; then ``x_te`` classified."""
    from rrambnn.hw.config import ChipConfig
    from rrambnn.sim.chip_sim import replay_sign

    chip, start = run["chip"], run["start_net"]
    hw_cfg = ChipConfig.checked("128x128", False, start.output_mode, False, retries=cfg.retries,
                                device=cfg.device, update_bits=cfg.wbits, step_bits=cfg.err_bits)
    faults = [a.faults for a in chip.arrays]
    r = replay_sign(start, hw_cfg, chip.initial, faults, run["trace"], x_te, seed=seed, log=log)
    return {k: r.get(k) for k in REPLAY_KEYS}


def replay_nbit(trace: Path, run, x_te, *, seed: int, log=None) -> dict:
    """The recorded samples on the training chip on Verilator (forward passes, updates, then every
    cell and counter, and ``x_te`` classified), against the golden n-bit chip."""
    from rrambnn.gen import online_nbit
    from rrambnn.sim.chip_sim import replay_nbit

    online_nbit.save_trace(trace, run["chip"], run["trace"], run["initial_codes"])
    r = replay_nbit(trace, x_te, seed=seed, log=log)
    keys = REPLAY_KEYS + ("samples", "cycles_per_sample", "forward_mismatches", "step_mismatches")
    return {"trace": str(trace), **{k: r.get(k) for k in keys}}


def on_chip(req: OnlineRequest, out: Path, *, samples: int = 200, images: int = 200, clock_mhz: float = 100.0,
            log=None, progress: bool = False) -> dict:
    """`rrambnn online --on-chip`: the first ``samples`` samples of the run's training order
    streamed into the self-training chip on Verilator (it computes every step itself), checked
    against the golden trainer step by step (cycles against the cycle model) and at the end
    (every cell and counter, the failed cells, ``images`` test images); the throughput in
    simulation and in the design. Writes ``onchip.json`` in ``out``."""
    import time

    import numpy as np

    from rrambnn.fileio import atomic_write
    from rrambnn.gen import online_nbit, planes
    from rrambnn.hw.trainer import chip_interval, sample_cycles
    from rrambnn.sim.chip_sim import simulate_self_training

    if not req.nbit:
        raise RrambnnError("--on-chip trains with the n-bit rule (--forward nbit): the self-training chip runs it")
    for name, v in (("on-chip-samples", samples), ("on-chip-images", images)):
        if not isinstance(v, int) or v < 1:
            raise RrambnnError(f"--{name} must be a positive integer, not {v}")
    net = start_network(req)
    cfg = rule_config(req, net)
    if cfg.wbits > 8 or cfg.m > 8:
        raise RrambnnError(f"the self-training chip holds at most 8-bit weights and neurons, not {cfg.wbits}/{cfg.m}")
    out = check_writable(out, directory=True)
    data = dataset(net, req.data)
    x_tr, y_tr, x_te, y_te = data
    arch = net["arch"]
    codes, programming = online_nbit.start_codes(arch, cfg, None if req.start == "blank" else net["codes"], data)
    order = next(online_nbit.sample_order(cfg, len(x_tr), req.samples or None, 1))[:samples]
    faults = planes.plane_faults(arch, cfg.device, cfg.wbits)
    golden = online_nbit.NbitChip(arch, cfg, codes, faults=faults)
    before = golden.accuracy(x_te, y_te)
    t = time.time()
    for i in order:
        golden.apply(x_tr[i], golden.compute(x_tr[i], int(y_tr[i])))
    golden_s = time.time() - t
    after = golden.accuracy(x_te, y_te)
    r = simulate_self_training(arch, cfg, codes, x_tr[order], y_tr[order], x_te[:images], faults=faults, seed=req.seed + 1,
                   log=log, progress=progress)
    cps = r.get("cycles_per_sample")
    per = np.array(r.get("busy_per_sample") or [0])
    spread = {"min": int(per.min()), "median": int(np.median(per)), "p99": int(np.percentile(per, 99)),
              "max": int(per.max()),
              "no_error": sample_cycles(arch, cfg, interval=chip_interval(cfg), updated=False),
              "error_no_update": sample_cycles(arch, cfg, interval=chip_interval(cfg), updated=True)}
    res = {"arch": list(arch), "rule": cfg.describe(), "start": req.start,
           "device": {"yield": cfg.device.yield_, "p_fail": cfg.device.p_fail, "endurance": cfg.device.endurance,
                      "seed": cfg.device.seed},
           "samples": samples, "images_checked": images, "programming": programming,
           "passed": r.get("passed"), "failures": r.get("failures"),
           "cycles_per_sample": cps, "cycles_spread": spread, "cycle_model_mismatches": r.get("cycle_mismatches"),
           "us_per_sample_at_clock": round(cps / clock_mhz, 2) if cps else None, "clock_mhz": clock_mhz,
           "samples_per_s_at_clock": round(clock_mhz * 1e6 / cps) if cps else None,
           "sim_wall_s": r.get("sim_wall_s"), "train_wall_s": r.get("train_wall_s"),
           "samples_per_s_simulated": round(samples / r["train_wall_s"], 1) if r.get("train_wall_s") else None,
           "golden_samples_per_s": round(samples / max(golden_s, 1e-9), 1),
           "accuracy_before": before, "accuracy_after": after,
           **{k: r.get(k) for k in ("hardware", "golden", "failed_cells", "failed_match", "cell_mismatches",
                                    "count_mismatches", "codes_match", "class_mismatches", "images_during_training",
                                    "image_mismatches", "switches_total", "worn_out_cells", "updating_samples",
                                    "n_samples", "busy_cycles", "model_cycles", "cells_read", "build_s",
                                    "build_cached", "config", "log")}}
    path = out / "onchip.json"
    atomic_write(path, lambda f: f.write(json_text(res, indent=1).encode()))
    res["files"] = {"result": str(path)}
    return res


def describe_on_chip(res: dict) -> list[str]:
    """The on-chip run in a few lines."""
    a, b = res["accuracy_before"], res["accuracy_after"]
    d = res["device"]
    return [
        f"self-training chip {'-'.join(map(str, res['arch']))}, {res['rule']['weight_bits']}-bit weights, "
        f"{res['start']} start; device yield {d['yield']}, pulse failure {d['p_fail']}, "
        f"endurance {d['endurance'] or 'unlimited'}",
        f"{res['samples']} samples streamed into the chip on Verilator: "
        f"{'agrees with the golden trainer' if res['passed'] else 'DISAGREES with the golden trainer'} "
        f"(every cell and switch counter, {res['failed_cells']} failed cells in order, counters, "
        f"{res['images_checked']} test images; cycle-model mismatches {res['cycle_model_mismatches']})",
        f"cycles per sample {res['cycles_per_sample']:,} on average (measured = model): {res['us_per_sample_at_clock']} "
        f"us at {res['clock_mhz']:g} MHz, {res['samples_per_s_at_clock']:,} samples/s; data-dependent: min "
        f"{res['cycles_spread']['min']:,}, median {res['cycles_spread']['median']:,}, max {res['cycles_spread']['max']:,} "
        f"(no error: {res['cycles_spread']['no_error']}; the rest is write-verify)",
        f"simulation {res['samples_per_s_simulated']} samples/s on Verilator (golden trainer "
        f"{res['golden_samples_per_s']:,} samples/s)",
        f"test accuracy (10,000 images, argmax) {a['argmax']:.2%} before, {b['argmax']:.2%} after the samples",
    ]


# -- sweeps ---------------------------------------------------------------------------

_DATA: dict = {}  # per worker process: the preprocessed dataset, loaded once for all its points


def _point(req: OnlineRequest, start, point: dict) -> dict:
    """One sweep point in a worker process, from its own copy of the starting network ``start``
    (read once by :func:`sweep`; training changes the copy)."""
    import copy
    net = copy.deepcopy(start)
    cfg = rule_config(req, net, bits=point.get("bits"), endurance=point.get("endurance"))
    key = (req.data, req.forward, req.arch, req.weights)  # the starting network sets the crop
    if key not in _DATA:
        _DATA[key] = dataset(net, req.data)
    r = train(req, net, cfg, _DATA[key])
    return {**point, **r["result"]}


def rule_record(cfg) -> dict:
    """A rule configuration as plain values (part of a sweep point's cache key)."""
    from rrambnn.gen.online_nbit import NbitConfig, config_dict
    return config_dict(cfg) if isinstance(cfg, NbitConfig) else dataclasses.asdict(cfg)


def parse_values(what: str, values: str | None) -> list[dict]:
    from rrambnn.studies.sweep import parse_floats
    default = {"bits": "2,3,4,5,6,8,10,12", "endurance": "0,100000,30000,10000,3000,1000,300"}
    if what == "bits":  # an empty --values is an error, not the defaults
        return [{"bits": int(b)} for b in parse_floats(default[what] if values is None else values, "--values", 2, 12,
                                                        integer=True)]
    if what == "endurance":
        return [{"endurance": int(e)} for e in parse_floats(default[what] if values is None else values, "--values", 0,
                                                             2 ** 32 - 1, integer=True)]
    raise RrambnnError(f"rrambnn sweep knows yield, bits, endurance and cnn-bits, not {what!r}")


def sweep(req: OnlineRequest, what: str, values: str | None, out: Path, *, jobs: int = 2,
          progress: bool = False) -> dict:
    """`rrambnn sweep bits|endurance`: every point a full run (in ``jobs`` processes); the
    table, JSON and plots in ``out``. Returns the result with the files written."""
    from rrambnn.studies import online_report
    from rrambnn.studies.points import run_points

    points = parse_values(what, values)
    req.profile()  # a bad profile is one error line before anything is loaded
    net = start_network(req)
    rules = []
    for pt in points:  # validate every point before the long run
        bits = pt.get("bits", req.wbits)
        if isinstance(net, dict) and net["codes"] is not None and req.start == "pretrained" and net["bits"] != bits:
            raise RrambnnError(f"the pretrained network has {net['bits']}-bit weights: sweep {what} over "
                               f"{bits} bits needs --start blank")
        rules.append(rule_record(rule_config(req, net, bits=pt.get("bits"), endurance=pt.get("endurance"))))
    if jobs < 1:
        raise RrambnnError(f"--jobs must be a positive integer, not {jobs}")
    out = check_writable(out, directory=True)
    # (options added later are left out of the key while unset: older kept points still count)
    key_fields = {k: v for k, v in dataclasses.asdict(req).items() if v is not None or k not in LATER_OPTIONS}
    # every finished point is kept beside the outputs, so a stopped sweep resumes where it was
    cache = out / f".{what}-points"
    cache.mkdir(parents=True, exist_ok=True)

    def path_of(pt):
        # the request, the point and the rule as resolved (its defaults may change between versions)
        key = {**key_fields, **pt, "rule": rules[points.index(pt)]}
        key = hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
        return cache / f"{what}-{pt[what]}-{key}.json"

    rows = run_points(points, path_of, functools.partial(_point, req, net), jobs=jobs, desc=f"sweep {what}",
                      progress=progress)
    for row in rows:  # the energy of the pulses counted (rows cached before it was reported get it too)
        row.setdefault("write_energy", online_report.write_energy(row))
    res = {"axis": what, "forward": req.forward, "network": "-".join(map(str, rows[0]["arch"])),
           "start": req.start, "epochs": req.epochs, "samples_per_epoch": rows[0]["samples_per_epoch"],
           "fixed": {"bits": req.wbits, "endurance": req.endurance, "yield": req.yield_, "pulse_fail": req.pulse_fail,
                     "act_bits": req.abits, "err_bits": req.err_bits, "lr_shift": req.lr_shift,
                     "decay": req.decay, "batch": req.batch, "seed": req.seed,
                     **({"device": req.device, "calibration": req.calibration} if req.device else {})},
           "points": rows}
    res["files"] = online_report.write_sweep(res, out, what)
    return res
