"""The second simulator: the same cocotb regression on Icarus Verilog (an OS package, not a PyPI
one: ``apt-get install iverilog``). ``.ci/run`` installs it and runs ``pytest -m icarus`` after the
README's test command; without it these tests skip with one line saying so."""

import numpy as np
import pytest
from conftest import check
from test_cocotb import check_random_network

from rrambnn.gen import device as dev
from rrambnn.gen.network import BinaryNetwork, random_network
from rrambnn.hw.config import ChipConfig
from rrambnn.sim.chip_sim import simulate
from rrambnn.sim.runner import icarus_missing
from rrambnn.weights import shipped

pytestmark = [pytest.mark.icarus,
              pytest.mark.skipif(bool(icarus_missing()), reason=f"Icarus Verilog missing: {icarus_missing()}")]


@pytest.mark.parametrize("arch, tile, pipeline, output, seed", [
    ("23-17-9-5", (8, 6), True, "argmax", 11),
    ("23-17-9-5", (8, 6), False, "priority", 12),
    ("9-4", (4, 3), True, "priority", 14),
])
def test_random_networks_on_icarus(arch, tile, pipeline, output, seed):
    """Random idles and backpressure, a held result under a threshold write, refused writes."""
    check_random_network(arch, tile, pipeline, output, seed, images=300, throughput=100, simulator="icarus")


def test_programming_on_icarus():
    """Write-verify with stuck cells, pulse failures and endurance, images streaming meanwhile,
    then every cell and switch counter read back."""
    rng = np.random.default_rng(21)
    net = random_network("23-17-9-5", rng)
    x = rng.integers(0, 2, (200, net.arch[0])).astype(np.uint8)
    initial = [rng.integers(0, 2, w.shape).astype(np.uint8) for w in net.weights]
    cmds = dev.commands_for(net.cells, 4)
    cfg = ChipConfig((8, 6), True, "priority", debug=True, word=4, retries=2, pulse_cycles=3,
                     device=dev.DeviceParams(0.9, 0.3, 4, 21))
    res = simulate(net, cfg, x, seed=21, initial_cells=initial, commands=cmds, images_during_programming=100,
                   read_back=True, throughput_images=0, simulator="icarus")
    check(res)
    p = res["programming"]
    assert p["hardware"] == p["golden"] and p["failed_match"] and p["golden"]["cells_failed"] > 0
    assert res["read_back"]["cell_mismatches"] == 0 and res["read_back"]["count_mismatches"] == 0


@pytest.mark.parametrize("output, pipeline", [("priority", False), ("argmax", True)])
def test_reference_chip_1000_images_on_icarus(output, pipeline, mnist_test):
    net = BinaryNetwork.load(shipped())
    x = net.preprocess(mnist_test.images[:1000])
    res = simulate(net, ChipConfig((128, 128), pipeline, output, debug=True), x, seed=7, throughput_images=100,
                   simulator="icarus")
    check(res)
    assert res["images"] == 1000
    assert (np.array(res["hw_labels"]) == net.classify(x, output)).all()


@pytest.mark.parametrize("spec, wbits, abits, tile, positions, output, seed", [
    ("i9x7x1-c3x5s2p1-p2-d6-d4", 2, 2, (4, 3), 2, "priority", 41),
    ("i11x10x1-c3x3-p3-d7-d3", 3, 1, (5, 2), 1, "argmax", 43),
])
def test_random_cnn_chips_on_icarus(spec, wbits, abits, tile, positions, output, seed):
    """The CNN chip's Verilog on the second simulator, the same testbench and golden model:
    every activation map, cycles per image = the formula."""
    from rrambnn.gen.cnn import random_cnn
    from rrambnn.sim.chip_sim import simulate_cnn
    rng = np.random.default_rng(seed)
    net = random_cnn(spec, wbits, abits, rng, output_mode=output)
    x = rng.integers(0, 1 << abits, (40,) + net.spec.input).astype(np.uint8)
    print(f"spec {spec} w{wbits} a{abits} tile {tile} positions {positions} {output} seed {seed}")
    res = simulate_cnn(net, x, tile=tile, positions=positions, seed=seed, throughput_images=10, simulator="icarus")
    assert res["passed"] and res["mismatches"] == 0 and res["images"] >= 50, res.get("examples")
    assert res["interval_measured"] == res["interval_model"]
    assert (np.array(res["hw_labels"]) == net.classify(x, output)).all()
