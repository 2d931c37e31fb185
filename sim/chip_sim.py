"""Run the chip's Verilog on Verilator against the golden model (network + device)."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import numpy as np

from rrambnn.errors import RrambnnError
from rrambnn.fileio import write_npz
from rrambnn.gen.network import BinaryNetwork
from rrambnn.hw.folded import emulation_twin
from rrambnn.hw.config import ChipConfig, training_design
from rrambnn.hw.verilog import generate, to_verilog
from rrambnn.sim import runner

FOLDED_TOP = "rrambnn_emulation"


def simulate(net: BinaryNetwork, cfg: ChipConfig, x: np.ndarray, *, seed: int = 1,
             p_idle: float = 0.2, p_stall: float = 0.2, throughput_images: int = 1000,
             initial_cells=None, faults=None, commands=(), images_during_programming: int = 0,
             p_send: float = 0.05, rewrite_thresholds: bool = False, read_back: bool = False,
             thresholds=None, waves: bool | None = None, log=None, simulator: str = "verilator") -> dict:
    """Generate, build (cached) and run the cocotb scoreboard; return the testbench's result
    plus build and wall-clock figures.

    ``initial_cells``/``faults``: per-layer arrays for the arrays' starting state and fault map
    (default: the network's weights; faults from ``cfg.device``). ``commands``: programming
    commands ``(layer, row, word, bits, mask)`` sent first, while the first
    ``images_during_programming`` images stream. ``thresholds``: per-layer thresholds (the
    chip's units; current units with analog reads) written through the threshold port after
    programming and before the images, as a host writes a per-chip calibration. ``simulator``: ``verilator`` or
    ``icarus``."""
    if cfg.analog and rewrite_thresholds:
        raise RrambnnError("a chip with analog reads takes thresholds written first (a calibration), not the "
                           "integer threshold rewrites")
    b, run_dir, gen_s, arrays_path = _prepare(net, cfg, x, initial_cells, faults, waves, log, simulator=simulator)
    weights, images = run_dir / "weights.npz", run_dir / "images.npy"
    t = time.time()
    res = runner.run_test(b, "rrambnn.sim.tb_chip", {
        "weights": str(weights), "images": str(images), "arrays": str(arrays_path) if arrays_path else None,
        "seed": seed,
        "chip": cfg.to_dict(),
        "p_idle": p_idle, "p_stall": p_stall, "throughput_images": throughput_images,
        "commands": [list(map(int, c)) for c in commands], "images_during_programming": images_during_programming,
        "p_send": p_send, "rewrite_thresholds": rewrite_thresholds, "read_back": read_back,
        "thresholds": _listed(thresholds),
    }, test_dir=run_dir)
    res["sim_wall_s"] = round(time.time() - t, 2)
    return _finish(res, b, gen_s, cfg)


def _listed(thresholds):
    """Per-layer thresholds as the testbenches' JSON configuration carries them (None: none)."""
    return None if thresholds is None else [np.asarray(t).tolist() for t in thresholds]


def _prepare(net, cfg: ChipConfig, x, initial_cells, faults, waves, log, names=("initial", "fault"),
             simulator: str = "verilator"):
    """Generate and build (cached); write the network, images and per-layer arrays to a fresh
    run directory. Returns (build, run directory, generation seconds, arrays path or None)."""
    t = time.time()
    text, chip = generate(net, cfg, initial_cells, faults)
    gen_s = time.time() - t
    if log:
        log(f"generated Verilog for {'-'.join(map(str, chip.arch))} ({cfg.tag()}, {chip.n_tiles} arrays) "
            f"in {gen_s:.1f} s; building")
    b, run_dir = _build_run(text, net, x, waves, log, tag=cfg.tag()[:60], simulator=simulator)
    arrays = {}
    for k in range(len(net.weights)):
        if initial_cells is not None:
            arrays[f"{names[0]}{k}"] = np.asarray(initial_cells[k], np.uint8)
        if faults is not None:
            arrays[f"{names[1]}{k}"] = np.asarray(faults[k], np.int8)
    arrays_path = None
    if arrays:
        arrays_path = run_dir / "arrays.npz"
        write_npz(arrays_path, arrays)
    return b, run_dir, gen_s, arrays_path


def _build_run(text, net, x, waves, log, *, tag: str, top: str = runner.TOP, simulator: str = "verilator"):
    """Build (cached) and make a fresh run directory holding the network and the images."""
    b = runner.build(text, waves=waves, top=top, tag=tag, simulator=simulator)
    if log:
        name = "Icarus" if simulator == "icarus" else "Verilator"
        log(f"{tag}: {name} build {'reused from cache' if b.cached else f'took {b.seconds:.1f} s'}")
    run_dir = b.build_dir / "runs" / f"run-{time.time_ns()}"
    run_dir.mkdir(parents=True)
    net.save(run_dir / "weights.npz")
    np.save(run_dir / "images.npy", x.astype(np.uint8))
    return b, run_dir


def _finish(res: dict, b, gen_s: float, cfg: ChipConfig | None) -> dict:
    res["build_s"] = round(b.seconds, 2)
    res["build_cached"] = b.cached
    res["generate_s"] = round(gen_s, 2)
    if cfg is not None:
        res["config"] = cfg.tag()
    return res


def replay_sign(net: BinaryNetwork, cfg: ChipConfig, cells, faults, commands, x: np.ndarray, *, seed: int = 1,
           p_idle: float = 0.2, p_stall: float = 0.2, waves: bool | None = None, log=None) -> dict:
    """Replay update ``commands`` through the weight-update controller of the chip whose planes start
    as ``cells`` with ``faults`` (per layer, (n, n_in, n_out)); then read back every cell and counter
    and classify ``x``; all against the golden online chip. Returns the testbench's result."""
    from rrambnn.gen.online_sign import save_trace

    b, run_dir, gen_s, arrays_path = _prepare(net, cfg, x, cells, faults, waves, log, names=("cells", "faults"))
    trace = run_dir / "trace.npz"
    save_trace(trace, commands, net.arch)
    if log:
        log(f"replaying {len(commands)} update commands (seed {seed})")
    t = time.time()
    res = runner.run_test(b, "rrambnn.sim.tb_sign_replay", {
        "weights": str(run_dir / "weights.npz"), "images": str(run_dir / "images.npy"),
        "arrays": str(arrays_path), "trace": str(trace), "seed": seed,
        "chip": cfg.to_dict(),
        "p_idle": p_idle, "p_stall": p_stall,
    }, test_dir=run_dir)
    res["sim_wall_s"] = round(time.time() - t, 2)
    return _finish(res, b, gen_s, cfg)


def replay_nbit(trace_path, x: np.ndarray, *, seed: int = 1, word: int = 16, pulse_cycles: int = 5,
                    p_idle: float = 0.2, p_stall: float = 0.2, waves: bool | None = None, log=None) -> dict:
    """A recorded n-bit training run (:func:`rrambnn.gen.online_nbit.save_trace`) on the training
    chip on Verilator: every sample's forward pass and updates against the golden chip, then
    counters, failed cells, every cell and counter read back, and the test inputs ``x`` (bits)
    classified. Returns the testbench's result."""
    from rrambnn.gen import online_nbit
    tr = online_nbit.load_trace(trace_path)
    arch, ncfg = tr["arch"], tr["config"]
    net, cfg = training_design(arch, ncfg, [online_nbit.decode(c) for c in tr["cells"]], debug=True, word=word,
                               pulse_cycles=pulse_cycles)
    t = time.time()
    text, chip = generate(net, cfg, tr["cells"], tr["faults"])
    gen_s = time.time() - t
    if log:
        log(f"generated the training chip {'-'.join(map(str, arch))} ({cfg.tag()}, {chip.n_tiles} arrays) in "
            f"{gen_s:.1f} s; building")
    b, run_dir = _build_run(text, net, x, waves, log, tag="train-" + cfg.tag()[:60])
    if log:
        log(f"replaying {len(tr['samples'])} training samples (seed {seed})")
    t = time.time()
    res = runner.run_test(b, "rrambnn.sim.tb_nbit_replay", {
        "trace": str(Path(trace_path).resolve()), "images": str(run_dir / "images.npy"), "seed": seed,
        "chip": cfg.to_dict(), "p_idle": p_idle, "p_stall": p_stall,
    }, test_dir=run_dir)
    res["sim_wall_s"] = round(time.time() - t, 2)
    return _finish(res, b, gen_s, cfg)


def simulate_sliced(net, cfg: ChipConfig, x: np.ndarray, *, seed: int = 1, p_idle: float = 0.2,
                    p_stall: float = 0.2, throughput_images: int = 200, rewrite_thresholds: bool = True,
                    program_commands: int = 0, thresholds=None, waves: bool | None = None, log=None) -> dict:
    """A multi-bit network's chip (:class:`rrambnn.gen.sliced.SlicedNetwork`; ``x`` its input
    codes) on Verilator against the golden network: every payload in order under random idles
    and backpressure, cycles per image against ``Chip.interval``, threshold rewrites, then
    ``program_commands`` random plane writes through the write-verify controller (the device
    must not fail pulses: the golden side applies the targets, stuck cells excepted).
    ``thresholds``: per-layer thresholds (every level; current units with analog reads)
    written through the threshold port before the images, as a host writes a calibration."""
    if program_commands and cfg.device.p_fail:
        raise RrambnnError("programming a multi-bit chip in simulation needs a device without pulse failures")
    if cfg.analog and (rewrite_thresholds or program_commands):
        raise RrambnnError("a multi-bit chip with analog reads is checked on traffic (random and full rate); its "
                           "threshold rewrites and programming are not")
    cfg = cfg.for_network(net)
    t = time.time()
    text, chip = generate(net, cfg)
    gen_s = time.time() - t
    if log:
        log(f"generated Verilog for {'-'.join(map(str, chip.arch))} ({cfg.tag()}, {chip.n_tiles} arrays) "
            f"in {gen_s:.1f} s; building")
    b, run_dir = _build_run(text, net, x, waves, log, tag=cfg.tag()[:60] + f"-{'-'.join(map(str, net.arch))}")
    t = time.time()
    res = runner.run_test(b, "rrambnn.sim.tb_sliced", {
        "weights": str(run_dir / "weights.npz"), "images": str(run_dir / "images.npy"), "seed": seed,
        "chip": cfg.to_dict(),
        "p_idle": p_idle, "p_stall": p_stall, "throughput_images": throughput_images,
        "rewrite_thresholds": rewrite_thresholds, "program_commands": program_commands,
        "thresholds": _listed(thresholds),
    }, test_dir=run_dir)
    res["sim_wall_s"] = round(time.time() - t, 2)
    return _finish(res, b, gen_s, cfg)


def simulate_folded(net: BinaryNetwork, lanes, output: str, x: np.ndarray, *, chunks=None, segment: int = 32,
                    rows=None, seed: int = 1,
                    p_idle: float = 0.2, p_stall: float = 0.2, throughput_images: int = 500,
                    waves: bool | None = None, log=None) -> dict:
    """The emulation twin's Verilog on Verilator against the golden model (class and hit of
    every image, random idles and backpressure; then images per clock, which for an
    event-driven twin (``rows``) must equal its cycle model image by image)."""

    t = time.time()
    twin_args = {"lanes": lanes, "chunks": chunks, "rows": rows, "output": output, "segment": segment}
    dut = emulation_twin(net, **twin_args)
    text, tag = _twin_verilog(dut, dut, FOLDED_TOP, "folded")
    gen_s = time.time() - t
    b, run_dir = _build_run(text, net, x, waves, log, tag=tag, top=FOLDED_TOP)
    t = time.time()
    res = runner.run_test(b, "rrambnn.sim.tb_folded", {
        "weights": str(run_dir / "weights.npz"), "images": str(run_dir / "images.npy"), "seed": seed,
        "twin": twin_args, "p_idle": p_idle, "p_stall": p_stall, "throughput_images": throughput_images,
        "interval": dut.interval,
    }, test_dir=run_dir, top=FOLDED_TOP)
    res["sim_wall_s"] = round(time.time() - t, 2)
    res["interval_cycles"] = dut.interval if not dut.event else res.get("throughput", {}).get("model_cycles_per_image")
    res["lanes"] = [layer.lanes for layer in dut.layers]
    res["chunks"] = [layer.chunk for layer in dut.layers]
    return _finish(res, b, gen_s, None)


HOST_TOP = "rrambnn_board"


def _twin_verilog(dut, twin, top: str, kind: str, *extra):
    """``dut`` (built around the twin ``twin``) as Verilog, cached by what it depends on
    (converting wide folded layers takes minutes), and a build tag."""
    from rrambnn.hw.verilog import to_verilog
    key = [top, repr([(layer.words, layer.thr_words, layer.segment) for layer in twin.layers]), repr(twin.arch),
           repr(twin.fold()), repr(getattr(twin, "queue", None)), twin.output, *map(repr, extra)]
    text = runner.cached_text("verilog", key, lambda: to_verilog(dut, top))
    fold = twin.fold()
    tag = (f"{kind}-{'-'.join(map(str, twin.arch))}-l{'_'.join(str(n) for n, _ in fold)}"
           f"-c{'_'.join(str(k) for _, k in fold)}-{twin.output}")
    return text, tag[:60]


def simulate_host(net: BinaryNetwork, lanes, chunks, x: np.ndarray, *, segment: int = 32, rows=None,
                  divisor: int = 4, clock_hz: int = 27_000_000, seed: int = 1, writes: int = 20, bench: int = 200,
                  waves: bool | None = None, log=None) -> dict:
    """The board's UART host link around the emulation twin, as Verilog on Verilator: query,
    writes, every image of ``x`` and a bench run over the UART lines, against the golden model."""

    from rrambnn.hw.host import HostLink

    t = time.time()
    twin_args = {"lanes": lanes, "chunks": chunks, "rows": rows, "output": net.output_mode, "segment": segment}
    twin = emulation_twin(net, **twin_args)
    dut = HostLink(twin, divisor, clock_hz=clock_hz)
    text, tag = _twin_verilog(dut, twin, HOST_TOP, "host", divisor, clock_hz)
    gen_s = time.time() - t
    b, run_dir = _build_run(text, net, x, waves, log, tag=tag, top=HOST_TOP)
    t = time.time()
    res = runner.run_test(b, "rrambnn.sim.tb_host", {
        "weights": str(run_dir / "weights.npz"), "images": str(run_dir / "images.npy"), "seed": seed,
        "twin": twin_args, "divisor": divisor, "clock_hz": clock_hz, "writes": writes, "bench": bench,
    }, test_dir=run_dir, top=HOST_TOP)
    res["sim_wall_s"] = round(time.time() - t, 2)
    res["interval_cycles"] = twin.interval
    return _finish(res, b, gen_s, None)


MACRO_TOP = "rrambnn_macro_bench"


def simulate_macro(net: BinaryNetwork, x: np.ndarray, *, tile=(128, 128), device=None, faults=None,
                       retries: int = 3, pulse_cycles: int = 5, writes: int = 40, seed: int = 1,
                       p_idle: float = 0.2, p_stall: float = 0.2, waves: bool | None = None, log=None) -> dict:
    """The periphery variant (periphery + behavioural crossbar macro on the byte port) as Verilog
    on Verilator against the golden network and device model: images, write-verified cell
    writes and threshold writes, images again."""

    from rrambnn.gen.device import DeviceParams, device_faults
    from rrambnn.hw.crossbar import CROSSBAR_MODULE
    from rrambnn.hw.macro import CrossbarMacro, MacroBench, macro_periphery_of

    device = device or DeviceParams()
    faults = device_faults(net.arch, device, faults)
    cfg = ChipConfig(tuple(tile), output=net.output_mode, retries=retries, pulse_cycles=pulse_cycles, device=device)
    t = time.time()
    periphery = macro_periphery_of(net, retries=retries, pulse_cycles=pulse_cycles)
    bench = MacroBench(periphery, CrossbarMacro(net.weights, tile=tile, faults=faults, device=device))
    text = to_verilog(bench, MACRO_TOP) + CROSSBAR_MODULE
    gen_s = time.time() - t
    tag = f"periphery-{'-'.join(map(str, net.arch))}"
    b, run_dir = _build_run(text, net, x, waves, log, tag=tag[:60], top=MACRO_TOP)
    write_npz(run_dir / "faults.npz", {f"fault{k}": np.asarray(f, np.int8) for k, f in enumerate(faults)})
    t = time.time()
    res = runner.run_test(b, "rrambnn.sim.tb_macro", {
        "weights": str(run_dir / "weights.npz"), "images": str(run_dir / "images.npy"),
        "faults": str(run_dir / "faults.npz"), "seed": seed, "chip": cfg.to_dict(), "writes": writes,
        "p_idle": p_idle, "p_stall": p_stall,
    }, test_dir=run_dir, top=MACRO_TOP)
    res["sim_wall_s"] = round(time.time() - t, 2)
    res["interval_cycles"] = periphery.interval
    return _finish(res, b, gen_s, None)


@contextlib.contextmanager
def _progress_bar(path: Path, total: int, desc: str | None):
    """A progress bar fed by the number a testbench writes into ``path`` (None: no bar)."""
    if desc is None:
        yield
        return
    import threading

    from tqdm import tqdm
    stop = threading.Event()
    bar = tqdm(total=total, desc=desc, unit="sample", leave=False)

    def poll():
        while not stop.wait(1.0):
            try:
                bar.update(int(path.read_text() or 0) - bar.n)
            except (OSError, ValueError):
                pass
    th = threading.Thread(target=poll, daemon=True)
    th.start()
    try:
        yield
    finally:
        stop.set()
        th.join()
        bar.close()


def simulate_self_training(arch, ncfg, codes, x_train, y_train, x_test, *, faults=None, seed: int = 1, word: int = 16,
               pulse_cycles: int = 5, lr_decay: int = 0, p_idle: float = 0.2, p_stall: float = 0.2,
               p_image: float = 0.05, golden_cfg=None, waves: bool | None = None, log=None,
               progress: bool = False) -> dict:
    """The self-training chip (:mod:`rrambnn.hw.trainer`) of an n-bit network (``arch``, rule
    ``ncfg``, starting offset ``codes``, ``faults`` per layer (n, n_in, n_out), default from the
    rule's device) on Verilator: the samples (``x_train`` bits, ``y_train``) streamed into
    ``train``, every step's cycles against the cycle model, then counters, failed cells, every
    cell and counter, and ``x_test`` classified, all against the golden trainer (of rule
    ``golden_cfg``, default ``ncfg``: another rule must be caught). Returns the testbench's result."""
    from rrambnn.gen import online_nbit, planes
    faults = planes.plane_faults(arch, ncfg.device, ncfg.wbits) if faults is None else faults
    golden = online_nbit.NbitChip(arch, ncfg, codes, faults=faults)  # the cells as programmed (stuck ones held)
    cells = [c.copy() for c in golden.initial]
    net, cfg = training_design(arch, ncfg, [online_nbit.decode(c) for c in cells], word=word, pulse_cycles=pulse_cycles,
                               self_training=True)
    b, run_dir, gen_s, arrays_path = _prepare(net, cfg, x_test, cells, faults, waves, log, names=("cells", "faults"))
    write_npz(run_dir / "samples.npz", {"x": np.asarray(x_train, np.uint8), "labels": np.asarray(y_train, np.int64),
                                        "x_test": np.asarray(x_test, np.uint8)})
    if log:
        log(f"training on {len(x_train)} samples (seed {seed})")
    t = time.time()
    done = run_dir / "progress.txt"
    with _progress_bar(done, len(x_train), "on-chip" if progress else None):
        res = runner.run_test(b, "rrambnn.sim.tb_self_training", {
            "arrays": str(arrays_path), "samples": str(run_dir / "samples.npz"), "seed": seed,
            "arch": list(arch), "rule": online_nbit.config_dict(golden_cfg or ncfg),
            "chip_rule": online_nbit.config_dict(ncfg), "chip": cfg.to_dict(), "lr_decay": lr_decay,
            "p_idle": p_idle, "p_stall": p_stall, "p_image": p_image, "progress": str(done),
        }, test_dir=run_dir)
    res["sim_wall_s"] = round(time.time() - t, 2)
    return _finish(res, b, gen_s, cfg)


def simulate_cnn(net, x: np.ndarray, *, tile=(128, 128), positions: int = 1, output: str | None = None,
                 debug: bool = True, seed: int = 1, p_idle: float = 0.2, p_stall: float = 0.2,
                 throughput_images: int = 200, waves: bool | None = None, log=None, out=None,
                 simulator: str = "verilator", golden=None, device=None, chip_seed: int = 1,
                 theta=None) -> dict:
    """The CNN chip (:mod:`rrambnn.hw.cnn`) of ``net`` (a :class:`rrambnn.gen.cnn.CnnNetwork`;
    ``x`` its input codes (N, H, W, C)) on ``simulator`` (Verilator, or Icarus) against the
    golden network: every result
    payload in order under random idles and backpressure, then cycles per image against
    ``CnnChip.interval``. ``out``: also write the Verilog simulated there. ``golden``: the
    network the payloads are expected from (default ``net``; another one must be caught).
    ``device``: a profile (:class:`rrambnn.gen.analog.Profile`, not ideal): the chip reads
    through chip ``chip_seed`` of it, against the golden analog model; ``theta``: with it, the
    thresholds (current units, a per-chip calibration) the chip is generated with."""
    from rrambnn.fileio import atomic_write
    from rrambnn.hw.cnn import generate_cnn, make_chip

    from rrambnn.sim.runner import check_simulator
    check_simulator(simulator)
    analog, profile = None, None
    if device is not None and not device.ideal:
        if simulator != "verilator":
            raise RrambnnError("--device runs on Verilator (the analog crossbar model is not checked on Icarus)")
        from rrambnn.gen import analog_coded
        analog = analog_coded.chip(net, device, chip_seed)
        profile = [list(kv) for kv in device.values()]
    chip = make_chip(net, tile=tile, positions=positions, output=output, debug=debug, analog=analog, theta=theta)
    t = time.time()
    key = [net.spec.text, net.wbits, net.abits, chip.tile, positions, chip.output, debug,
           *(w.tobytes() for w in net.weights), *(th.tobytes() for th in net.thresholds),
           *([repr(profile), chip_seed, *(th.tobytes() for th in chip.theta)] if analog is not None else [])]
    text = runner.cached_text("verilog", key, lambda: generate_cnn(chip))
    gen_s = time.time() - t
    if out is not None:
        atomic_write(out, lambda f: f.write(text.encode()))
    if log:
        log(f"generated the CNN chip {net.spec.text} ({chip.n_tiles} arrays, {chip.positions} position(s) per step, "
            f"{chip.interval} cycles/image) in {gen_s:.1f} s; building")
    tag = (f"cnn-{net.spec.text}-w{net.wbits}a{net.abits}-p{positions}-{chip.output}{'-dbg' if debug else ''}"
           + (f"-{device.name}-s{chip_seed}" if analog is not None else ""))[:60]
    b = runner.build(text, waves=waves, tag=tag, simulator=simulator)
    if log:
        name = "Icarus" if simulator == "icarus" else "Verilator"
        log(f"{tag}: {name} build {'reused from cache' if b.cached else f'took {b.seconds:.1f} s'}")
    run_dir = b.build_dir / "runs" / f"run-{time.time_ns()}"
    run_dir.mkdir(parents=True)
    net.save(run_dir / "weights.npz")
    (golden or net).save(run_dir / "golden.npz")
    np.save(run_dir / "images.npy", np.asarray(x, np.uint8))
    t = time.time()
    res = runner.run_test(b, "rrambnn.sim.tb_cnn", {
        "weights": str(run_dir / "weights.npz"), "golden": str(run_dir / "golden.npz"), "images": str(run_dir / "images.npy"), "seed": seed,
        "chip": {"tile": list(chip.tile), "positions": positions, "output": chip.output, "debug": debug},
        "device": {"profile": profile, "seed": chip_seed,
                   "thresholds": None if theta is None else _listed(chip.theta)}
        if analog is not None else None,
        "p_idle": p_idle, "p_stall": p_stall, "throughput_images": throughput_images,
    }, test_dir=run_dir)
    res["sim_wall_s"] = round(time.time() - t, 2)
    res["n_tiles"], res["positions"] = chip.n_tiles, positions
    return _finish(res, b, gen_s, None)
