"""The benchmarks behind `rrambnn bench`: golden inference (the integer network beside a plain
float matmul network), the hardware on Verilator (build time, cocotb throughput, Yosys cells),
the golden n-bit trainer, and the boards (bitstreams and their folds on Verilator)."""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from rrambnn.errors import RrambnnError
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


def _ratio(a, b):
    """a / b to two decimals; None when b rounded to 0 (a run too short to time)."""
    return round(a / b, 2) if b else None


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


def online_training(data, *, epochs: int = 50, samples: int | None = None, pretrained_samples: int = 10_000,
                    progress: bool = False) -> dict:
    """The n-bit golden trainer on 400-200-10, 8-bit weights, on a device with yield 0.99 in
    every plane and endurance 10,000, in one run: from a blank start for ``epochs`` epochs
    without pulse failures (the order-free path) and with p_fail = 0.01 (every tile following
    its generator stream, restores before the next weight); then from the shipped pretrained
    network for ``pretrained_samples`` samples, both ways. Samples/s of each and the ratios."""
    from rrambnn.gen import online_nbit
    from rrambnn.gen.device import DeviceParams
    from rrambnn.weights import ONLINE_NBIT, shipped

    def timed(p_fail, codes, n_epochs, n, lr_shift=None):
        cfg = online_nbit.NbitConfig(wbits=8, device=DeviceParams(yield_=0.99, p_fail=p_fail, endurance=10_000),
                                  **({} if lr_shift is None else {"lr_shift": lr_shift}))
        t = time.perf_counter()
        r = online_nbit.run((400, 200, 10), cfg, data, codes=codes, epochs=n_epochs, samples=n, progress=progress,
                         desc=f"bench online p_fail {p_fail}")
        wall = time.perf_counter() - t
        res = r["result"]
        total = res["samples_per_epoch"] * n_epochs
        return {"p_fail": p_fail, "epochs": n_epochs, "samples": total, "seconds": round(wall, 1),
                "samples_per_s": round(total / wall), "first_epoch_seconds": res["per_epoch"][1]["seconds"],
                "peak_argmax": res["best"]["argmax"], "switches": res["switches"]["total"],
                "cells_failed": sum(e["cells_failed"] for e in res["per_epoch"])}

    blank = [timed(p, None, epochs, samples) for p in (0.0, 0.01)]
    codes = online_nbit.load_codes(shipped(ONLINE_NBIT))["codes"]
    k = min(pretrained_samples, len(data[0]))
    pre = [timed(p, codes, 1, k, online_nbit.PRETRAINED_LR_SHIFT) for p in (0.0, 0.01)]
    ideal, failing = blank
    return {"network": "400-200-10", "bits": 8, "device": {"yield": 0.99, "endurance": 10_000},
            "epochs": epochs, "samples": ideal["samples"], "seconds": ideal["seconds"],
            "samples_per_s": ideal["samples_per_s"], "peak_argmax": ideal["peak_argmax"],
            "switches": ideal["switches"],
            "blank": {"ideal": ideal, "pulse_failures": failing,
                      "slowdown": _ratio(ideal["samples_per_s"], failing["samples_per_s"]),
                      "first_epoch_slowdown": _ratio(failing["first_epoch_seconds"], ideal["first_epoch_seconds"])},
            "pretrained": {"ideal": pre[0], "pulse_failures": pre[1],
                           "slowdown": _ratio(pre[0]["samples_per_s"], pre[1]["samples_per_s"])},
            "machine": machine()}


# -- hardware on Verilator ---------------------------------------------------------------

def hardware(net: BinaryNetwork, test_split, images: int = 10000) -> dict:
    """Fresh (uncached) build of the reference chip with the debug payload, then the
    scoreboard over ``images`` test images with random idles/backpressure and a
    free-flowing throughput phase."""
    from rrambnn.fpga.build import synth_stats
    from rrambnn.hw.config import ChipConfig
    from rrambnn.hw.verilog import generate
    from rrambnn.sim import chip_sim

    x = net.preprocess(test_split.images[:images])
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        old = os.environ.get("RRAMBNN_CACHE")
        os.environ["RRAMBNN_CACHE"] = cache
        try:
            for output, pipeline in (("priority", False), ("argmax", True)):
                cfg = ChipConfig((128, 128), pipeline, output, debug=True)
                res = chip_sim.simulate(net, cfg, x, seed=1, throughput_images=min(images, 5000))
                out[cfg.tag()] = {
                    "passed": res["passed"], "mismatches": res["mismatches"], "images": res["images"],
                    "verilator_build_s": res["build_s"], "generate_s": res["generate_s"],
                    "random_traffic_images_per_s": res["random_phase"]["images_per_s"],
                    "free_flow_images_per_s": res["throughput"]["images_per_s"],
                    "images_per_cycle": res["throughput"]["images_per_cycle"],
                    "latency_cycles": res["throughput"]["latency_cycles"],
                }
                text, _ = generate(net, ChipConfig((128, 128), pipeline, output))
                t = time.time()
                stats = synth_stats(text)
                out[cfg.tag()]["yosys_cells_periphery"] = stats["cells"]
                out[cfg.tag()]["yosys_flipflops"] = sum(v for k, v in stats["cells_by_type"].items() if "DFF" in k)
                out[cfg.tag()]["yosys_s"] = round(time.time() - t, 1)
        finally:
            if old is None:
                os.environ.pop("RRAMBNN_CACHE", None)
            else:
                os.environ["RRAMBNN_CACHE"] = old
    return out


def describe_hardware(res: dict) -> list[str]:
    lines = []
    for tag, r in res.items():
        lines.append(
            f"{tag}: Verilator build {r['verilator_build_s']} s (+{r['generate_s']} s generation); "
            f"{r['images']} images, {r['mismatches']} mismatches; cocotb {r['random_traffic_images_per_s']:,} "
            f"images/s with random idles/backpressure, {r['free_flow_images_per_s']:,} free-flowing; "
            f"{r['images_per_cycle']} image/clock, latency {r['latency_cycles']}; Yosys: "
            f"{r['yosys_cells_periphery']} cells ({r['yosys_flipflops']} flip-flops) for the periphery")
    return lines


# -- the first run -------------------------------------------------------------------------

def first_run(data_dir=None, *, log=None) -> dict:
    """The README's first command as a new user runs it: a fresh virtual environment, ``pip
    install -e`` of this checkout (pip's download cache off: wheels come from the index or the
    machine's configured wheel sources), then ``rrambnn run`` with an empty build cache in an
    empty directory. Phases: install (venv + pip), and per output stage the Verilog generation,
    the Verilator build (verilate + compile) and the simulation of all test images; the two
    stages run side by side on two cores, so the run's wall time is not their sum."""
    import subprocess
    import sys
    from rrambnn.gen.mnist import find_mnist_dir
    checkout = Path(__file__).resolve().parent.parent
    if not (checkout / "pyproject.toml").is_file():
        raise RrambnnError(f"--first-run needs a source checkout (pip install -e); {checkout} has no pyproject.toml")
    data = find_mnist_dir(data_dir)

    def step(what, cmd, **kw):
        if log:
            log(f"first run: {what}")
        t = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, **kw)
        if r.returncode != 0:
            tail = (r.stderr.strip() or r.stdout.strip()).splitlines()[-1:] or ["(no output)"]
            raise RrambnnError(f"first run: {what} failed (exit {r.returncode}): {tail[0]}")
        return r, round(time.perf_counter() - t, 2)

    with tempfile.TemporaryDirectory(prefix="rrambnn-first-run-") as tmp:
        tmp = Path(tmp)
        env = {k: v for k, v in os.environ.items() if k not in ("RRAMBNN_CACHE", "VIRTUAL_ENV", "PYTHONPATH")}
        _, venv_s = step("python -m venv", [sys.executable, "-m", "venv", str(tmp / "venv")], env=env)
        pip = [str(tmp / "venv" / "bin" / "python"), "-m", "pip", "install", "-q", "--no-cache-dir",
               "--disable-pip-version-check"]
        _, pip_s = step("pip install -e .", pip + ["-e", str(checkout)], env=env)
        (tmp / "work").mkdir()
        env["RRAMBNN_CACHE"] = str(tmp / "cache")
        r, run_s = step("rrambnn run", [str(tmp / "venv" / "bin" / "rrambnn"), "run", "--data", str(data), "--json"],
                        env=env, cwd=tmp / "work")
        try:
            report = json.loads(r.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            raise RrambnnError("first run: rrambnn run --json printed no JSON result") from None
    stages = {}
    for mode, m in report["modes"].items():
        stages[mode] = {k: m.get(k) for k in ("generate_s", "build_s", "sim_wall_s", "mismatches", "checked",
                                             "hw_accuracy", "testbench_images_per_s")}
    return {"machine": machine(), "install_s": round(venv_s + pip_s, 2), "venv_s": venv_s, "pip_install_s": pip_s,
            "run_s": run_s, "total_s": round(venv_s + pip_s + run_s, 2), "images": report["images"],
            "passed": all(m["passed"] for m in report["modes"].values()), "stages": stages,
            "pip": "--no-cache-dir: every wheel fetched from the configured index or wheel sources "
                   "(a local wheel directory on the measuring machine; downloads add network time)"}


def describe_first_run(r: dict) -> list[str]:
    lines = [f"first run ({'0 mismatches' if r['passed'] else 'FAILED'}, {r['images']:,} images per stage): "
             f"install {r['install_s']} s (venv {r['venv_s']} s, pip {r['pip_install_s']} s) + rrambnn run "
             f"{r['run_s']} s = {r['total_s']} s"]
    for mode, s in r["stages"].items():
        lines.append(f"  {mode}: generate {s['generate_s']} s, Verilator build {s['build_s']} s, simulate "
                     f"{s['sim_wall_s']} s ({s['mismatches']} mismatches in {s['checked']:,} checks)")
    return lines


# -- boards -------------------------------------------------------------------------------

def boards(net, test_split, *, boards=("icebreaker", "ulx3s-85f"), images: int = 10000, link_images: int = 1000,
           log=print) -> dict:
    """For each board: the emulation and macro bitstreams (resources, Fmax, images/s), then
    the board's fold of the twin on Verilator against the golden model (stream regression on
    ``images`` test images, the UART link on ``link_images``)."""
    from rrambnn.fpga.build import board_spec
    from rrambnn.fpga.twin import build_bitstream, emulation_design, twin_timing
    from rrambnn.sim.chip_sim import simulate_folded, simulate_host

    x = net.preprocess(test_split.images[:images])
    out = {}
    for name in boards:
        spec = board_spec(name)
        res = {}
        twin, _ = emulation_design(net, spec)
        timing = twin_timing(net, twin)
        with tempfile.TemporaryDirectory(dir=".") as d:
            for variant in ("emulation", "macro"):
                try:
                    rep = build_bitstream(net, spec, variant, Path(d) / variant, log=log)
                except RrambnnError as e:
                    rep = {"error": str(e)}
                rep.pop("report", None)
                rep.pop("bitstream", None)
                res[variant] = rep
        rows = [layer.rows for layer in twin.layers] if twin.event else None
        lanes = None if rows else [layer.lanes for layer in twin.layers]
        chunks = None if rows else [layer.chunk for layer in twin.layers]
        sim = simulate_folded(net, lanes, net.output_mode, x, chunks=chunks, rows=rows, segment=spec.segment, seed=1,
                              throughput_images=len(x) if rows else 500, log=log)
        res["verilator_regression"] = {"images": sim["images"], "mismatches": sim["mismatches"],
                                       "passed": sim["passed"], "cycles_per_image": sim["throughput"]["cycles_per_image"],
                                       "interval_cycles": timing.get("interval_cycles"),
                                       "latency_cycles": timing.get("latency_cycles")}
        if rows:
            res["verilator_regression"]["timing_mismatches"] = sim["throughput"]["timing_mismatches"]
            res["verilator_regression"]["measured_cycles_per_image"] = sim["throughput"]["measured_cycles_per_image"]
        link = simulate_host(net, lanes, chunks, x[:link_images], segment=spec.segment, rows=rows, seed=1, log=log)
        res["uart_link_regression"] = {"images": link["images"], "mismatches": link["mismatches"],
                                       "passed": link["passed"], "bench": link["bench"]}
        out[name] = res
    return out


def describe_boards(res: dict) -> list[str]:
    lines = []
    for board, r in res.items():
        for variant in ("emulation", "macro"):
            e = r[variant] if variant in r else r["periphery"]  # results written before the rename
            if "error" in e:
                lines.append(f"{board} {variant}: {e['error']}")
                continue
            lines.append(f"{board} {variant}: {e['clock_mhz']:g} MHz (Fmax {e['fmax_mhz']:g}), {e['logic_cells']}/"
                         f"{e['logic_cells_available']} logic cells, {e['luts']} LUT4, {e['ffs']} FFs, "
                         f"{e['bram']}/{e['bram_available']} block RAMs; {e['interval_cycles']:g} cycles/image = "
                         f"{e['images_per_s']:,} images/s; build {e['build_s']:g} s")
        v, u = r["verilator_regression"], r["uart_link_regression"]
        if "timing_mismatches" in v:  # event-driven: the mean over every image, each at the model's cycle
            pace = (f"{v['measured_cycles_per_image']} cycles/image over all of them, "
                    f"{v['timing_mismatches']} off the cycle model")
        else:
            pace = f"{v['cycles_per_image']} cycles/image"
        lines.append(f"{board} fold on Verilator: {v['images']} images, {v['mismatches']} mismatches, {pace}; "
                     f"UART link: {u['images']} images, {u['mismatches']} mismatches, bench "
                     f"{u['bench']['cycles_per_image']} cycles/image")
    return lines


def write_merged(path, res: dict) -> None:
    """``res`` as JSON at ``path``, keeping the sections of an earlier run that this one did not
    repeat (written atomically)."""
    from rrambnn.fileio import atomic_write, json_text
    out, merged = Path(path), {}
    if out.is_file():
        try:
            merged = json.loads(out.read_text())
        except (ValueError, OSError):
            merged = {}
    merged = {**(merged if isinstance(merged, dict) else {}), **res}
    atomic_write(out, lambda f: f.write((json_text(merged, indent=2) + "\n").encode()))


def run(net, data_dir=None, *, images: int = 100000, hardware_: bool = False, online: bool = False,
        online_epochs: int = 50, fpga: bool = False, board_names=("icebreaker", "ulx3s-85f"), sim_images: int = 10000,
        on_chip: int = 0, cnn: bool = False, onnx: bool = False, fuzz: int = 0, analog: int = 0,
        first_run_: bool = False, progress: bool = False, log=None) -> dict:
    """The benchmarks `rrambnn bench` asks for: golden inference always, then the optional
    sections. Returns one dict with a section each."""
    from rrambnn.gen.mnist import load_split
    if images < 1:
        raise RrambnnError(f"--images must be a positive integer, not {images}")
    if online and online_epochs < 1:
        raise RrambnnError(f"--online-epochs must be a positive integer, not {online_epochs}")
    if fuzz < 0:
        raise RrambnnError(f"--fuzz must be a non-negative integer, not {fuzz}")
    te = load_split("test", data_dir)
    x = net.preprocess(te.images)
    xs = np.concatenate([x] * max(1, images // len(x)))
    res = {"golden": golden_inference(net, xs)}
    if first_run_:
        res["first_run"] = first_run(data_dir, log=log)
    if hardware_:
        res["hardware"] = hardware(net, te, images=sim_images)
    if online:
        from rrambnn.gen.online_nbit import binary_data
        res["online"] = online_training(binary_data(data_dir), epochs=online_epochs, progress=progress)
    if fpga:
        res["fpga"] = boards(net, te, boards=board_names, images=sim_images, log=log)
    if on_chip:
        res["on_chip"] = self_training(data_dir, samples=on_chip, log=log)
    if cnn:
        res["cnn"] = cnn_epoch(data_dir, progress=progress)
    if onnx:
        res["onnx"] = onnx_import()
    if analog:
        res["analog"] = analog_monte_carlo(net, x, te.labels, data_dir, chips=analog, progress=progress)
    if fuzz:
        from rrambnn.studies import fuzz as fz
        res["fuzz"] = {"flips_per_file": fuzz, "files": [fz.bit_flips(p, fuzz, seed=1) for p in fz.shipped_files()],
                       "machine": machine()}
    return res


def analog_monte_carlo(net, x, labels, data_dir, *, chips: int, progress: bool = False) -> dict:
    """The golden analog model of the reference chip on the ``realistic`` profile: ``chips``
    chips (maps drawn, every test image read with noise), then the same chips calibrated
    (2,000 training images read through each, thresholds refitted, the test set again)."""
    from tqdm import tqdm

    from rrambnn.gen import analog
    from rrambnn.gen.mnist import load_split
    from rrambnn.gen.analog import check_binary
    from rrambnn.studies.variation import check_chips
    check_binary(net)
    check_chips(chips, "--analog")
    prof = analog.load_profile("realistic")
    bar = tqdm(total=2 * chips, desc="bench analog", unit="chip", disable=not progress, leave=False)
    t0 = time.perf_counter()
    plain = []
    for seed in range(chips):
        plain.append(analog.accuracy(net, x, labels, analog.chip_map(net.cells, prof, seed))["argmax"])
        bar.update()
    t_plain = time.perf_counter() - t0
    x_cal = net.preprocess(load_split("train", data_dir).images[:2000])
    t1 = time.perf_counter()
    cal = []
    for seed in range(chips):
        chip = analog.chip_map(net.cells, prof, seed)
        cal.append(analog.accuracy(net, x, labels, chip, theta=analog.calibrate(net, chip, x_cal))["argmax"])
        bar.update()
    t_cal = time.perf_counter() - t1
    bar.close()
    return {"machine": machine(), "profile": "realistic", "chips": chips, "images": len(x),
            "seconds": round(t_plain, 2), "chip_images_per_s": round(chips * len(x) / t_plain),
            "seconds_with_calibration": round(t_cal, 2), "calibration_images": len(x_cal),
            "argmax_mean": round(float(np.mean(plain)), 4), "argmax_worst": round(float(np.min(plain)), 4),
            "calibrated_argmax_mean": round(float(np.mean(cal)), 4),
            "calibrated_argmax_worst": round(float(np.min(cal)), 4)}


def cnn_epoch(data_dir, *, progress: bool = False) -> dict:
    """One LeNet-5 epoch over the 60,000 training images at A/CO/W/G 4/4/4/4 through the crossbar
    model (SGD with momentum, batch 100), three ways: ideal reads, the read disturbance
    (d = 0.05) drawn once per minibatch, and drawn for every read (the default); and the golden
    integer network's inference on the 10,000 test images."""
    from rrambnn.gen import cnn_train
    from rrambnn.gen.mnist import load_split
    tr, te = load_split("train", data_dir), load_split("test", data_dir)
    runs = {}
    for name, d, draws in (("ideal_reads", 0.0, "read"), ("disturbed_per_minibatch", 0.05, "batch"),
                           ("disturbed_per_read", 0.05, "read")):
        cfg = cnn_train.CnnTrainConfig(spec="lenet5", abits=4, cobits=4, wbits=4, gbits=4, disturbance=d, draws=draws,
                                       epochs=1)
        t0 = time.perf_counter()
        net, _, hist = cnn_train.train(cfg, tr.images, tr.labels, progress=progress)
        runs[name] = {"disturbance": d, "draws": draws if d else None, "epoch_seconds": round(hist[0]["seconds"], 2),
                      "samples_per_s": round(len(tr.labels) / hist[0]["seconds"]),
                      "train_call_seconds": round(time.perf_counter() - t0, 2)}
    x = net.inputs(te.images)
    t1 = time.perf_counter()
    acc = net.accuracy(x, te.labels)
    infer = time.perf_counter() - t1
    t2 = time.perf_counter()
    net.accuracy(x, te.labels, disturbance=0.05, seed=0)
    disturbed = time.perf_counter() - t2
    return {"machine": machine(), "spec": net.spec.text, "bits": cfg.bits, "batch": cfg.batch, "epochs": runs,
            "test_accuracy_after_one_epoch_per_read": acc,
            "golden_inference_images_per_s": round(len(te.labels) / infer),
            "golden_disturbed_per_read_images_per_s": round(len(te.labels) / disturbed)}


def onnx_import(*, seed: int = 1) -> dict:
    """Export and import of a random binary 784-1024-1024-1024-10 network (FINN's LFC shape)
    through QONNX (the [onnx] extra): seconds each, and that the import gives the network back."""
    from rrambnn.gen import onnx_io
    from rrambnn.gen.mnist import Preprocess
    from rrambnn.gen.network import random_network
    net = random_network((784, 1024, 1024, 1024, 10), np.random.default_rng(seed))
    net.preprocess = Preprocess(crop=28, threshold=128)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "lfc.onnx"
        t0 = time.perf_counter()
        onnx_io.export(net, path)
        t1 = time.perf_counter()
        back = onnx_io.import_model(path)
        t2 = time.perf_counter()
        size = path.stat().st_size
    same = all((a == b).all() for a, b in zip(net.weights + net.thresholds, back.weights + back.thresholds))
    return {"machine": machine(), "arch": "784-1024-1024-1024-10", "export_seconds": round(t1 - t0, 2),
            "import_seconds": round(t2 - t1, 2), "model_bytes": size, "round_trip_equal": bool(same)}


def self_training(data_dir, *, samples: int, log=None) -> dict:
    """The self-training chip (400-200-10, 8 bits, the shipped online network fine-tuned on a chip
    with yield 0.95, pulse failures 0.01 and endurance 10) on Verilator: ``samples`` samples,
    checked against the golden trainer; cycles per sample in the design, samples per second in
    simulation."""
    from rrambnn.studies.online import OnlineRequest, on_chip
    if samples < 1:
        raise RrambnnError(f"--on-chip must be a positive number of samples, not {samples}")
    req = OnlineRequest(yield_=0.95, pulse_fail=0.01, endurance=10, seed=3, data=data_dir)
    with tempfile.TemporaryDirectory() as d:
        r = on_chip(req, Path(d), samples=samples, images=200, log=log)
    keep = ("arch", "device", "samples", "passed", "cycles_per_sample", "cycle_model_mismatches", "clock_mhz",
            "us_per_sample_at_clock", "samples_per_s_at_clock", "samples_per_s_simulated", "train_wall_s",
            "sim_wall_s", "build_s", "build_cached", "golden_samples_per_s", "failed_cells", "switches_total")
    return {"machine": machine(), **{k: r.get(k) for k in keep}}


def describe(res: dict) -> list[str]:
    g = res["golden"]
    lines = [f"machine: {g['machine']}",
             f"golden inference ({g['images']} images): {g['golden_images_per_s']:,} images/s "
             f"(with full trace {g['golden_traced_images_per_s']:,}); float matmul net "
             f"{g['float_matmul_images_per_s']:,} images/s; ratio {g['golden_over_float']}"]
    if "first_run" in res:
        lines += describe_first_run(res["first_run"])
    if "hardware" in res:
        lines += describe_hardware(res["hardware"])
    if "cnn" in res:
        c = res["cnn"]
        e = c["epochs"]
        lines.append(f"CNN training through the crossbar model: {c['spec']} A/CO/W/G {c['bits']}, batch {c['batch']}: "
                     f"one 60,000-image epoch in {e['ideal_reads']['epoch_seconds']} s with ideal reads, "
                     f"{e['disturbed_per_minibatch']['epoch_seconds']} s with the disturbance (d 0.05) drawn per "
                     f"minibatch, {e['disturbed_per_read']['epoch_seconds']} s drawn per read; golden CNN inference "
                     f"{c['golden_inference_images_per_s']:,} images/s ({c['golden_disturbed_per_read_images_per_s']:,} "
                     f"with reads disturbed)")
    if "onnx" in res:
        o = res["onnx"]
        lines.append(f"QONNX: {o['arch']} exported in {o['export_seconds']} s, imported in {o['import_seconds']} s "
                     f"({o['model_bytes']:,} bytes; round trip equal: {o['round_trip_equal']})")
    if "analog" in res:
        a = res["analog"]
        lines.append(f"analog Monte Carlo, golden model, profile {a['profile']}: {a['chips']} chips x {a['images']:,} "
                     f"images in {a['seconds']} s ({a['chip_images_per_s']:,} chip-images/s; argmax mean "
                     f"{a['argmax_mean'] * 100:.2f}%, worst {a['argmax_worst'] * 100:.2f}%); calibrated from "
                     f"{a['calibration_images']:,} images each: {a['seconds_with_calibration']} s (mean "
                     f"{a['calibrated_argmax_mean'] * 100:.2f}%, worst {a['calibrated_argmax_worst'] * 100:.2f}%)")
    if "online" in res:
        o = res["online"]
        lines.append(f"online training, golden n-bit trainer: {o['network']} {o['bits']}-bit, {o['epochs']} epochs x "
                     f"{o['samples'] // o['epochs']:,} samples with faults and endurance in {o['seconds']} s "
                     f"({o['samples_per_s']:,} samples/s; peak {o['peak_argmax'] * 100:.2f}% argmax, "
                     f"{o['switches']:.3g} switches); with pulse failures (p 0.01) "
                     f"{o['blank']['pulse_failures']['samples_per_s']:,} samples/s, {o['blank']['slowdown']}x the "
                     f"time ({o['blank']['pulse_failures']['seconds']} s); from the pretrained network "
                     f"{o['pretrained']['ideal']['samples_per_s']:,} vs {o['pretrained']['pulse_failures']['samples_per_s']:,}"
                     f" samples/s ({o['pretrained']['slowdown']}x)")
    if "fpga" in res:
        lines += describe_boards(res["fpga"])
    if "fuzz" in res:
        for f in res["fuzz"]["files"]:
            lines.append(f"{Path(f['file']).name}: {f['flips']:,} single-bit flips: {f['loaded']:,} still load, "
                         f"{f['one_line_errors']:,} one-line errors, {f['escapes']} escapes")
    if "on_chip" in res:
        o = res["on_chip"]
        lines.append(f"self-training chip {'-'.join(map(str, o['arch']))} on Verilator, {o['samples']} samples "
                     f"({'agrees with' if o['passed'] else 'DISAGREES with'} the golden trainer): "
                     f"{o['cycles_per_sample']:,} cycles per sample ({o['us_per_sample_at_clock']} us, "
                     f"{o['samples_per_s_at_clock']:,} samples/s at {o['clock_mhz']:g} MHz); "
                     f"{o['samples_per_s_simulated']} samples/s simulated (build {o['build_s']} s)")
    return lines
