"""Generated Verilog on Verilator (cocotb) against the golden model, bit for bit.

Every run prints its seed; rerun one with ``pytest --waves`` for an FST dump (path in the
failure message)."""

import numpy as np
import pytest

from rrambnn.gen.network import BinaryNetwork, random_network
from rrambnn.gen.verilog import ChipConfig
from rrambnn.sim.chip_sim import simulate
from rrambnn.weights import shipped


def check(res):
    assert res["passed"], (f"{res.get('mismatches')} mismatches (seed {res.get('seed')}), "
                           f"examples {res.get('examples', [])[:3]}; log {res['log']}; waves {res.get('waves')}")
    assert res["mismatches"] == 0 and res["checked"] >= res["images"]


# random small networks: several row and column tiles, partial tiles, both output stages
@pytest.mark.parametrize("arch, tile, pipeline, output, seed", [
    ("23-17-9-5", (8, 6), True, "argmax", 11),
    ("23-17-9-5", (8, 6), False, "priority", 12),
    ("50-33-12", (16, 16), False, "argmax", 13),
    ("9-4", (4, 3), True, "priority", 14),
])
def test_random_networks(arch, tile, pipeline, output, seed):
    rng = np.random.default_rng(seed)
    net = random_network(arch, rng)
    x = rng.integers(0, 2, (600, net.arch[0])).astype(np.uint8)
    print(f"arch {arch} tile {tile} pipeline {pipeline} output {output} seed {seed}")
    res = simulate(net, ChipConfig(tile, pipeline, output, debug=True), x, seed=seed,
                   throughput_images=300, reprogram=True)
    check(res)
    assert res["throughput"]["images_per_cycle"] == 1.0
    expected_latency = len(net.weights) + 1 if pipeline else 1
    assert res["throughput"]["latency_cycles"] == expected_latency
    assert res["reprogram"]["cells_pulsed"] > 0 and res["reprogram"]["thresholds_written"] > 0


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
