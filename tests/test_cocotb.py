"""Generated Verilog on Verilator (cocotb) against the golden model, bit for bit.

Every run prints its seed; rerun one with ``pytest --waves`` for an FST dump (path in the
failure message)."""

import numpy as np
import pytest
from conftest import check

from rrambnn.gen import device as dev
from rrambnn.gen.network import BinaryNetwork, random_network
from rrambnn.hw.config import ChipConfig
from rrambnn.sim.chip_sim import simulate
from rrambnn.weights import shipped


# random small networks: several row and column tiles, partial tiles, both output stages
@pytest.mark.parametrize("arch, tile, pipeline, output, seed", [
    ("23-17-9-5", (8, 6), True, "argmax", 11),
    pytest.param("23-17-9-5", (8, 6), False, "priority", 12, marks=pytest.mark.slow),  # the default suite's budget
    ("50-33-12", (16, 16), False, "argmax", 13),
    ("9-4", (4, 3), True, "priority", 14),
])
def test_random_networks(arch, tile, pipeline, output, seed):
    check_random_network(arch, tile, pipeline, output, seed, images=600, throughput=300)


def check_random_network(arch, tile, pipeline, output, seed, *, images, throughput, simulator="verilator"):
    """A random network's chip under random idles and backpressure, threshold rewrites, a held
    result under a write that would change it; also run on Icarus (tests/test_icarus.py)."""
    rng = np.random.default_rng(seed)
    net = random_network(arch, rng)
    x = rng.integers(0, 2, (images, net.arch[0])).astype(np.uint8)
    print(f"arch {arch} tile {tile} pipeline {pipeline} output {output} seed {seed} on {simulator}")
    res = simulate(net, ChipConfig(tile, pipeline, output, debug=True), x, seed=seed,
                   throughput_images=throughput, rewrite_thresholds=True, simulator=simulator)
    check(res)
    assert res["throughput"]["images_per_cycle"] == 1.0
    expected_latency = len(net.weights) + 1 if pipeline else 1
    assert res["throughput"]["latency_cycles"] == expected_latency
    assert res["thresholds_rewritten"]["images"] > 0
    # a held result survives a threshold write that would change it; writes a layer cannot hold are refused
    assert res["held_result_under_threshold_write"] == "unchanged"
    if len(net.weights) > 1:  # a narrower layer or a layer with fewer neurons than the index field holds
        assert res["thresholds_rewritten"]["refused_writes"] > 0


# write-verify programming with device effects, images streaming meanwhile
@pytest.mark.parametrize("arch, tile, yield_, p_fail, endurance, retries, seed", [
    ("23-17-9-5", (8, 6), 0.9, 0.3, 4, 2, 21),
    pytest.param("23-17-9-5", (8, 6), 1.0, 0.0, 0, 3, 22, marks=pytest.mark.slow),  # the default suite's budget
    pytest.param("30-12-6", (16, 8), 0.8, 0.6, 0, 1, 23, marks=pytest.mark.slow),  # the default suite's budget
    ("12-10", (12, 10), 0.95, 0.1, 2, 5, 24),
])
def test_programming_matches_golden(arch, tile, yield_, p_fail, endurance, retries, seed):
    rng = np.random.default_rng(seed)
    net = random_network(arch, rng)
    x = rng.integers(0, 2, (300, net.arch[0])).astype(np.uint8)
    initial = [rng.integers(0, 2, w.shape).astype(np.uint8) for w in net.weights]
    cmds = dev.commands_for(net.cells, 4)  # program the network over a random array...
    flipped = [1 - c for c in net.cells]   # ...then flip a few rows back and forth (wear)
    cmds += dev.commands_for(flipped, 4)[:20] + dev.commands_for(net.cells, 4)[:20]
    cfg = ChipConfig(tile, True, "priority", debug=True, word=4, retries=retries, pulse_cycles=3,
                     device=dev.DeviceParams(yield_, p_fail, endurance, seed))
    print(f"arch {arch} yield {yield_} p_fail {p_fail} endurance {endurance} retries {retries} seed {seed}")
    res = simulate(net, cfg, x, seed=seed, initial_cells=initial, commands=cmds,
                   images_during_programming=150, read_back=True, throughput_images=0)
    check(res)
    p = res["programming"]
    assert p["hardware"] == p["golden"] and p["failed_match"] and not p["violations"]
    assert p["commands"] == len(cmds) and p["images_during"] == 150
    assert res["read_back"]["cell_mismatches"] == 0 and res["read_back"]["count_mismatches"] == 0
    bound = 4 * ((1 + retries) * (3 + 1) + 2) + 1  # the documented worst case
    assert p["longest_busy_cycles"] <= bound
    if yield_ < 1.0 or p_fail > 0.2:
        assert p["golden"]["cells_failed"] > 0  # the scenario really exercises failures
    if endurance:
        assert res["read_back"]["switches_total"] > 0


@pytest.mark.slow  # full test set
@pytest.mark.parametrize("output, pipeline", [("priority", False), ("argmax", True)])
def test_shipped_network_all_test_images(output, pipeline, mnist_test):
    net = BinaryNetwork.load(shipped())
    x = net.preprocess(mnist_test.images)
    res = simulate(net, ChipConfig((128, 128), pipeline, output, debug=True), x, seed=7)
    check(res)
    assert res["images"] == 10000
    hw = np.array(res["hw_labels"])
    assert (hw == net.classify(x, output)).all()
    assert (hw == mnist_test.labels).mean() >= 0.96
    assert res["throughput"]["images_per_cycle"] == 1.0
