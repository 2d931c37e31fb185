"""The chip checked on Verilator as the commands ask: a network in each output stage (`sim`,
`run`), and programming with write-verify followed by classification (`program`); every result
against the golden model."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rrambnn.errors import RrambnnError


def check_modes(net, x, labels, modes, *, tile="128x128", pipeline=False, debug=True, seed: int = 1,
                waves: bool = False, out_dir=None, log=None, simulator: str = "verilator", positions: int = 1,
                device=None, x_cal=None) -> dict:
    """Simulate the chip of ``net`` in each output stage of ``modes`` on the inputs ``x`` (on
    ``simulator``: verilator or icarus); with ``out_dir`` the Verilog simulated is also written
    there (rrambnn_chip_<mode>.v). A CNN (:class:`rrambnn.gen.cnn.CnnNetwork`) runs on the CNN
    chip with ``positions`` output columns per step. ``device``: a profile, the chip reads
    through its chip ``seed``; ``x_cal``: with it, calibration inputs: the chip's thresholds are
    fitted on them through the chip (the golden analog model) and written through the threshold
    port before the images (a CNN chip, which has none, is generated with them)."""
    from rrambnn.fileio import check_writable
    from rrambnn.sim.runner import check_simulator, icarus_missing
    from rrambnn.gen.cnn import CnnNetwork
    cnn = isinstance(net, CnnNetwork)
    if check_simulator(simulator) == "icarus":
        if hasattr(net, "abits") and not cnn:
            raise RrambnnError("--simulator icarus runs the binary chip's testbench; a multi-bit network "
                               "runs on Verilator")
        if missing := icarus_missing():
            raise RrambnnError(missing)
    if out_dir is not None:
        check_writable(out_dir, directory=True)
    report = {"images": len(labels), "simulator": simulator, "modes": {}}
    analog, theta = None, None
    if x_cal is not None and (device is None or device.ideal):
        raise RrambnnError("--calibration fits a device profile's chip: give --device (not ideal)")
    if device is not None and not device.ideal:  # analog reads: the chip of seed ``seed`` of the profile
        from rrambnn.gen.analog_coded import model
        am = model(net)
        analog = am.chip(device, seed)
        report["device"] = {**device.describe(), "chip_seed": seed}
        if x_cal is not None:
            theta = am.calibrate(net, analog, x_cal)
            report["calibration"] = calibration_report(
                net, theta, len(x_cal), am.accuracy(net, x, labels, analog),
                "generated into the chip (the CNN chip has no threshold port)" if cnn else
                "written through the threshold port before the test images")
            if out_dir is not None:  # what a host writes to this chip, beside its Verilog
                from rrambnn.fileio import write_npz
                path = Path(out_dir) / "calibrated-thresholds.npz"
                write_npz(path, {f"layer{k}": np.asarray(t, np.int64) for k, t in enumerate(theta)})
                report["calibration"]["file"] = str(path)
    opts = dict(tile=tile, pipeline=pipeline, debug=debug, seed=seed, waves=waves, out_dir=out_dir,
                simulator=simulator, positions=positions, device=device, thresholds=theta)
    for mode, res in zip(modes, _each_mode(net, x, modes, opts, log)):
        hw = np.array(res.pop("hw_labels"))
        if analog is None:
            golden = net.classify(x, mode)
        else:  # the random phase's images are the chip's images 0..N-1
            from rrambnn.gen.network import answers
            prio, amax, hit = am.forward(net, x, analog, theta=theta)
            golden = answers(prio if mode == "priority" else amax, hit, mode)
        report["modes"][mode] = {
            "passed": res["passed"], "mismatches": res.get("mismatches"), "checked": res.get("checked"),
            "agreement": float((hw == golden).mean()) if len(hw) == len(golden) else 0.0,
            "hw_accuracy": float((hw == labels).mean()) if len(hw) == len(labels) else 0.0,
            "golden_accuracy": float((golden == labels).mean()),
            "images_per_cycle": res.get("throughput", {}).get("images_per_cycle"),
            "latency_cycles": res.get("throughput", {}).get("latency_cycles"),
            "testbench_images_per_s": res.get("random_phase", {}).get("images_per_s"),
            "generate_s": res.get("generate_s"), "build_s": res["build_s"], "build_cached": res.get("build_cached"),
            "sim_wall_s": res.get("sim_wall_s"), "seed": seed, "log": res["log"], "waves": res.get("waves"),
            "compared": "class, hit, every layer's activations, last column sums" if debug else "class, hit",
        }
        if not res["passed"] and log:
            log(f"  FAILED: {res.get('mismatches')} mismatches; log {res['log']}; "
                f"examples {res.get('examples', [])[:3]}; rerun with --waves for an FST dump")
    return report


def calibration_report(net, theta, images: int, as_programmed: dict, how: str) -> dict:
    """What a calibration did: thresholds fitted on ``images`` calibration images (current
    units), how many moved from the network's, how they reach the chip, and the golden accuracy
    before it."""
    from rrambnn.gen import analog as ga
    return {"images": images, "thresholds": sum(int(np.asarray(t).size) for t in theta),
            "moved": sum(int((np.asarray(t) != n).sum()) for t, n in zip(theta, ga.thresholds(net))),
            "how": how, "golden_accuracy_as_programmed": {m: as_programmed[m] for m in ("priority", "argmax")},
            "units": "2^-8 cell current (the chip's threshold port and sense stage)",
            "per_layer": [np.asarray(t).tolist() for t in theta]}


def _each_mode(net, x, modes, opts: dict, log) -> list[dict]:
    """:func:`_simulate_mode` for every output stage; two or more at once in worker processes
    when the machine has the cores (each builds and simulates its own chip: the Verilator
    builds and the testbenches overlap). Their log lines go to this process's standard output
    (``print``) when ``log`` is given."""
    import os
    if len(modes) < 2 or (os.cpu_count() or 1) < 2:
        return [_simulate_mode(net, x, mode, opts, log) for mode in modes]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    child_log = None if log is None else print
    with ProcessPoolExecutor(max_workers=min(len(modes), os.cpu_count()),
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        jobs = [pool.submit(_simulate_mode, net, x, mode, opts, child_log) for mode in modes]
        return [j.result() for j in jobs]


def _simulate_mode(net, x, mode: str, opts: dict, log) -> dict:
    """The chip of ``net`` in output stage ``mode`` on the simulator, its results against the
    golden model (and its Verilog written to ``out_dir`` when given)."""
    from rrambnn.gen.cnn import CnnNetwork
    from rrambnn.hw.config import ChipConfig
    from rrambnn.hw.verilog import write_verilog
    from rrambnn.sim.chip_sim import simulate, simulate_sliced
    tile, pipeline, debug, seed, waves, out_dir, simulator, positions, device, thresholds = (
        opts[k] for k in ("tile", "pipeline", "debug", "seed", "waves", "out_dir", "simulator", "positions",
                          "device", "thresholds"))
    if isinstance(net, CnnNetwork):
        return _simulate_cnn_mode(net, x, mode, tile=tile, positions=positions, debug=debug, seed=seed,
                                  waves=waves, out_dir=out_dir, log=log, simulator=simulator, device=device,
                                  theta=thresholds)
    cfg = ChipConfig.checked(tile, pipeline, mode, debug).for_network(net)
    if device is not None:
        cfg = cfg.with_profile(device, seed)
    if out_dir is not None:
        path = Path(out_dir) / f"rrambnn_chip_{mode}.v"
        chip = write_verilog(net, cfg, path)
        if log:
            log(f"wrote {path} ({'-'.join(map(str, chip.arch))}, {chip.n_tiles} tiles, output {mode})")
    if hasattr(net, "abits"):  # payloads of every image, cycles per image against the model
        res = simulate_sliced(net, cfg, x, seed=seed, waves=waves or None, log=log, rewrite_thresholds=False,
                              thresholds=thresholds)
        res["checked"] = res.get("images")
        res["throughput"] = {"images_per_cycle": (1 / res["interval_model"]) if res.get("interval_model")
                             else None,
                             "latency_cycles": res.get("interval_model", 1) - 1 if net.abits > 1 else 1}
        return res
    return simulate(net, cfg, x, seed=seed, waves=waves or None, log=log, simulator=simulator,
                    thresholds=thresholds)


def _simulate_cnn_mode(net, x, mode, *, tile, positions, debug, seed, waves, out_dir, log,
                       simulator: str = "verilator", device=None, theta=None) -> dict:
    """The CNN chip of ``net`` in output stage ``mode`` on Verilator (its Verilog also written to
    ``out_dir``/rrambnn_chip_<mode>.v when given)."""
    from rrambnn.hw.layer import check_tile
    from rrambnn.sim.chip_sim import simulate_cnn
    try:
        tile = check_tile(tile)
    except (TypeError, ValueError) as e:
        raise RrambnnError(str(e)) from None
    path = Path(out_dir) / f"rrambnn_chip_{mode}.v" if out_dir is not None else None
    res = simulate_cnn(net, x, tile=tile, positions=positions, output=mode, debug=debug, seed=seed,
                       waves=waves or None, log=log, out=path, simulator=simulator, device=device, chip_seed=seed,
                       theta=theta)
    if path is not None and log:
        log(f"wrote {path} (the CNN chip {net.spec.text}, {res['n_tiles']} tiles, output {mode})")
    res["throughput"] = {"images_per_cycle": 1 / res["interval_model"], "latency_cycles": res["interval_model"] - 1}
    return res


def program_and_check(net, x, labels, cfg, *, faults_file=None, initial: str = "hrs", read_back: bool = True,
                      seed: int = 0, waves: bool = False, log=None, x_cal=None) -> dict:
    """Program ``net`` into the chip of ``cfg`` (its device) with write-verify on Verilator from
    the ``initial`` array state, read back every cell and counter, then classify ``x``; all
    against the golden device model. ``x_cal`` (analog reads): calibration inputs: the
    programmed chip's thresholds are fitted on them and written through the threshold port
    after programming."""
    from rrambnn.gen import device as dev
    from rrambnn.sim.chip_sim import simulate

    params = cfg.device
    faults = dev.device_faults(net.arch, params, dev.load_fault_maps(faults_file, net.arch) if faults_file else None)
    chip, rep, cmds, init = dev.program_network(net, params, tile=cfg.tile, word=cfg.word, retries=cfg.retries,
                                                initial=initial, faults=faults)
    programmed = type(net)(chip.weights(), [t.copy() for t in net.thresholds], net.preprocess, net.output_mode)
    golden_acc = programmed.accuracy(x, labels)
    ideal_acc = net.accuracy(x, labels)
    theta, calibration = None, None
    if x_cal is not None and not cfg.analog:
        raise RrambnnError("--calibration fits a device profile's chip: give --device (not ideal)")
    if cfg.analog:  # the programmed cells read through the chip's analog map: images 0.. after programming
        from rrambnn.gen import analog as ga
        maps = ga.chip_map(ga.held_cells(init, chip.faults), cfg.profile, cfg.analog_seed)
        maps.hold(chip.cells())
        golden_acc = ga.accuracy(net, x, labels, maps)
        if x_cal is not None:
            theta = ga.calibrate(net, maps, x_cal)
            calibration = calibration_report(net, theta, len(x_cal), golden_acc,
                                             "written through the threshold port after programming")
            golden_acc = ga.accuracy(net, x, labels, maps, theta=theta)
    if log:
        log(f"golden: {len(cmds)} commands, {rep.pulses_set} SET + {rep.pulses_reset} RESET pulses, "
            f"{len(rep.failed)} cells failed; accuracy priority {golden_acc['priority'] * 100:.2f}% "
            f"argmax {golden_acc['argmax'] * 100:.2f}% (ideal chip {ideal_acc[cfg.output] * 100:.2f}% {cfg.output})")
    res = simulate(net, cfg, x, seed=seed + 1, initial_cells=init, faults=chip.faults, commands=cmds,
                   read_back=read_back, throughput_images=0, waves=waves or None, log=log, thresholds=theta)
    p = res.get("programming", {})
    hw_labels = np.array(res.pop("hw_labels", []))
    return {
        "passed": res["passed"], "commands": len(cmds), "hardware": p.get("hardware"), "golden": p.get("golden"),
        "failed_cells_match": p.get("failed_match"), "failed_cells": p.get("failed_golden", [])[:50],
        "read_back": {k: v for k, v in res.get("read_back", {}).items() if k != "examples"} or None,
        "classification": {"images": len(labels), "mismatches": res.get("mismatches"), "checked": res.get("checked"),
                           "hw_accuracy": float((hw_labels == labels).mean()) if len(hw_labels) == len(labels) else None,
                           "golden_accuracy": golden_acc, "ideal_accuracy": ideal_acc, "output": cfg.output},
        "device": {"yield": params.yield_, "pulse_fail": params.p_fail,
                   "endurance": params.endurance, "seed": params.seed, "retries": cfg.retries,
                   **({"profile": cfg.profile.describe()} if cfg.analog else {})},
        **({"calibration": calibration} if calibration else {}),
        "log": res["log"], "waves": res.get("waves"),
    }
