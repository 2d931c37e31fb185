"""The weight-update controller on Verilator (cocotb) against the golden online chip, bit for bit."""

import numpy as np
import pytest

from rrambnn.gen import device as dev
from rrambnn.gen import online_sign, planes
from rrambnn.gen.network import random_network
from rrambnn.hw.config import ChipConfig
from rrambnn.sim.chip_sim import replay_sign


def random_commands(net, rng, n_cmds, bits, err_bits):
    """Rank-1 and element commands with random inputs, errors and deltas (including the extremes)."""
    M, E = planes.max_magnitude(bits), (1 << (err_bits - 1)) - 1
    cmds = []
    for _ in range(n_cmds):
        k = int(rng.integers(len(net.weights)))
        n_in, n_out = net.weights[k].shape
        if rng.random() < 0.5:
            x = (rng.random(n_in) < 0.4).astype(np.uint8)
            e = rng.integers(-E, E + 1, n_out) * (rng.random(n_out) < 0.5)
            cmds.append(online_sign.Command(k, True, x=x, e=e.astype(np.int64)))
        else:
            cmds.append(online_sign.Command(k, False, row=int(rng.integers(n_in)), col=int(rng.integers(n_out)),
                                       delta=int(rng.choice([-M, M, int(rng.integers(-M, M + 1))]))))
    return cmds


@pytest.mark.parametrize("arch, tile, bits, err_bits, yield_, p_fail, endurance, retries, seed", [
    ("20-12-5", (8, 8), 4, 2, 0.9, 0.1, 6, 2, 31),
    pytest.param("20-12-5", (8, 8), 2, 3, 1.0, 0.0, 0, 3, 32, marks=pytest.mark.slow),
    ("13-9", (16, 4), 6, 4, 0.95, 0.3, 0, 1, 33),
])
def test_random_updates_match_golden(arch, tile, bits, err_bits, yield_, p_fail, endurance, retries, seed):
    rng = np.random.default_rng(seed)
    net = random_network(arch, rng)
    params = dev.DeviceParams(yield_=yield_, p_fail=p_fail, endurance=endurance, seed=seed)
    cells = [rng.integers(0, 2, (bits,) + w.shape).astype(np.uint8) for w in net.weights]
    faults = planes.plane_faults(net.arch, params, bits)
    cmds = random_commands(net, rng, 60, bits, err_bits)
    x = rng.integers(0, 2, (100, net.arch[0])).astype(np.uint8)
    cfg = ChipConfig(tile, False, "priority", word=8, retries=retries, pulse_cycles=2, device=params,
                     update_bits=bits, step_bits=err_bits)
    print(f"arch {arch} tile {tile} bits {bits} device {params} seed {seed}")
    res = replay_sign(net, cfg, cells, faults, cmds, x, seed=seed)
    assert res["passed"], f"{res.get('failures')}; log {res['log']}; waves {res.get('waves')}"
    assert res["hardware"] == res["golden"] and res["failed_match"] and res["codes_match"]
    assert res["cell_mismatches"] == 0 and res["count_mismatches"] == 0 and res["class_mismatches"] == 0
    assert res["hardware"]["weight_updates"] > 60 and res["switches_total"] > 0
    if yield_ < 1.0 or endurance:
        assert res["failed_cells"] > 0  # the device effects were exercised


@pytest.mark.slow
def test_full_chip_replays_a_training_trace(tmp_path):
    """The issue's acceptance test: thousands of updates recorded from the golden trainer on
    400-200-10 with 8-bit weights, pulse failures, faults and an endurance limit, replayed through
    the weight-update controller of the full chip (80 arrays) on Verilator."""
    import json
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "rrambnn", "online", "--forward", "sign", "--bits", "8", "--samples", "400", "--epochs", "1",
                        "--yield", "0.99", "--pulse-fail", "0.02", "--endurance", "2", "--seed", "3", "--replay",
                        "--trace-updates", "5000", "--out", str(tmp_path), "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    rp = json.loads(r.stdout)["replay"]
    assert rp["passed"] and rp["hardware"] == rp["golden"] and rp["failed_match"] and rp["codes_match"]
    assert rp["hardware"]["weight_updates"] >= 5000 and rp["cells_read"] == 8 * (400 * 200 + 200 * 10)
    assert rp["cell_mismatches"] == rp["count_mismatches"] == rp["class_mismatches"] == 0
    assert rp["failed_cells"] > 0 and rp["worn_out_cells"] > 0  # faults, failures and wear were all in play
