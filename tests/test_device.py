import numpy as np
import pytest

from rrambnn.errors import RrambnnError
from rrambnn.gen import device as dev


def test_xorshift32_known_answers():
    s, seq = 1, []
    for _ in range(3):
        s = dev.xorshift32(s)
        seq.append(s)
    assert seq == [270369, 67634689, 2647435461]
    assert dev.tile_seed(0, 0, 0, 0) != 0 and dev.tile_seed(1, 0, 0, 0) != dev.tile_seed(1, 0, 0, 1)
    assert dev.fail_threshold(0.0) == 0 and dev.fail_threshold(1.0) == 2 ** 32 - 1
    assert dev.fail_threshold(0.5) == 2 ** 31


def test_fault_maps_follow_yield_and_seed():
    a = dev.fault_maps((400, 128, 10), 0.9, seed=3)
    b = dev.fault_maps((400, 128, 10), 0.9, seed=3)
    c = dev.fault_maps((400, 128, 10), 0.9, seed=4)
    assert all((x == y).all() for x, y in zip(a, b)) and any((x != y).any() for x, y in zip(a, c))
    f = a[0]
    assert f.shape == (400, 128) and abs((f != 0).mean() - 0.1) < 0.01
    assert abs((f == dev.STUCK_LRS).mean() - (f == dev.STUCK_HRS).mean()) < 0.01
    assert all((m == 0).all() for m in dev.fault_maps((4, 3), 1.0, 0))


def make_tile(cells, faults=None, p_fail=0.0, endurance=0, seed=5):
    cells = np.array(cells, np.uint8)
    faults = np.zeros(cells.shape, np.int8) if faults is None else np.array(faults, np.int8)
    return dev.Tile(cells, faults, dev.tile_seed(seed, 0, 0, 0), dev.fail_threshold(p_fail), endurance)


def test_stuck_cells_hold_and_ignore_pulses():
    t = make_tile([[0, 1, 0]], faults=[[dev.STUCK_LRS, dev.STUCK_HRS, 0]])
    assert t.cells.tolist() == [[1, 0, 0]]  # stuck values override the initial image
    s0 = t.rng_state
    t.pulse(0, 0, 0)
    t.pulse(0, 1, 1)
    t.pulse(0, 2, 1)
    assert t.cells.tolist() == [[1, 0, 1]] and t.counts.tolist() == [[0, 0, 1]]
    assert t.rng_state != s0  # every pulse advances the generator, stuck or not


def test_endurance_freezes_a_cell_after_E_switches():
    t = make_tile([[0]], endurance=3)
    for k in range(10):
        t.pulse(0, 0, (k + 1) % 2)
    assert t.counts[0, 0] == 3 and t.cells[0, 0] == 1  # switched 0->1->0->1, then stuck at 1


def test_pulse_failure_rate_and_reproducibility():
    outcomes = []
    for seed in (1, 1, 2):
        t = make_tile(np.zeros((1, 2000)), p_fail=0.3, seed=seed)
        for c in range(2000):
            t.pulse(0, c, 1)
        outcomes.append(t.cells.copy())
    assert (outcomes[0] == outcomes[1]).all() and (outcomes[0] != outcomes[2]).any()
    assert abs(outcomes[0].mean() - 0.7) < 0.04


def test_write_verify_retries_and_reports():
    chip = dev.Chip((3, 4), (3, 4), [np.zeros((3, 4), np.uint8)], dev.DeviceParams(p_fail=1.0, seed=1))
    target = [np.ones((3, 4), np.uint8)]
    rep = dev.program(chip, dev.commands_for(target, 4), word=4, retries=2)
    assert rep.pulses_set == 12 * 3 and rep.pulses_reset == 0  # 1 + 2 retries per cell, all fail
    assert rep.failed == [(0, r, c) for r in range(3) for c in range(4)]
    chip = dev.Chip((3, 4), (2, 3), [np.zeros((3, 4), np.uint8)], dev.DeviceParams())
    rep = dev.program(chip, dev.commands_for(target, 3), word=3, retries=2)
    assert rep.pulses_set == 12 and not rep.failed and (chip.cells()[0] == 1).all()
    assert (chip.counts()[0] == 1).all() and (chip.weights()[0] == 1).all()


def test_commands_cover_cells_and_skip_equal_words():
    target = [np.array([[1, 0, 1, 1, 0]], np.uint8)]
    cmds = dev.commands_for(target, 2)
    assert cmds == [(0, 0, 0, 0b01, 0b11), (0, 0, 1, 0b11, 0b11), (0, 0, 2, 0b0, 0b1)]
    same = dev.commands_for(target, 2, current=[np.array([[1, 0, 0, 1, 0]], np.uint8)])
    assert same == [(0, 0, 1, 0b11, 0b11)]


@pytest.mark.parametrize("kw, message", [
    ({"yield_": 1.5}, "Bit yield must be a number from 0 to 1, not 1.5"),
    ({"p_fail": -0.1}, "Pulse failure probability must be from 0 to 1"),
    ({"endurance": -1}, "Endurance must be a non-negative integer"),
    ({"seed": -2}, "Seed must be a non-negative integer, not -2"),
])
def test_device_params_validation(kw, message):
    with pytest.raises(RrambnnError, match=message):
        dev.DeviceParams(**kw)


def test_fault_map_file(tmp_path):
    p = tmp_path / "f.npz"
    np.savez(p, fault0=np.zeros((4, 3), np.int8), fault1=np.full((3, 2), 2, np.int8))
    maps = dev.load_fault_maps(p, (4, 3, 2))
    assert (maps[1] == 2).all()
    np.savez(p, fault0=np.zeros((4, 3), np.int8))
    with pytest.raises(RrambnnError, match="not a fault-map file with fault0..fault1"):
        dev.load_fault_maps(p, (4, 3, 2))
    np.savez(p, fault0=np.full((4, 3), 7, np.int8), fault1=np.zeros((3, 2), np.int8))
    with pytest.raises(RrambnnError, match="fault0 must have shape \\(4, 3\\) and codes 0/1/2"):
        dev.load_fault_maps(p, (4, 3, 2))


def test_fast_path_equals_replay(rng):
    from rrambnn.gen.network import random_network
    net = random_network("40-30-10", rng)
    params = dev.DeviceParams(yield_=0.85, seed=9)
    faults = dev.fault_maps(net.arch, params.yield_, params.seed)
    chip, rep, cmds, init = dev.program_network(net, params, tile=(16, 16), word=8, initial="random", faults=faults)
    fast = dev.programmed_cells_ideal_pulses(net.cells, faults, params)
    assert all((a == b).all() for a, b in zip(chip.cells(), fast))
    wrong = sum(((c != t) & (f != 0)).sum() for c, t, f in zip(fast, net.cells, faults))
    assert len(rep.failed) == wrong > 0
    with pytest.raises(ValueError, match="only without pulse failures"):
        dev.programmed_cells_ideal_pulses(net.cells, faults, dev.DeviceParams(p_fail=0.1))
    with pytest.raises(RrambnnError, match="Initial array state must be hrs, random or weights, not 'x'"):
        dev.program_network(net, params, initial="x")


@pytest.mark.parametrize("seed", range(4))
def test_whole_layer_programming_equals_the_controller_replay(seed):
    """planes.program_layers (every tile's write-verify outcomes at once, what the yield sweep
    uses) against device.program_network (cell by cell, the hardware's order): cells, switch
    counters, pulses, failed cells in report order and every tile generator's state, with
    pulse failures, endurance, stuck cells and a tile split in rows and columns."""
    from rrambnn.gen import planes
    from rrambnn.gen.network import random_network
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    net = random_network((140, 130, 9), rng)
    params = dev.DeviceParams(0.9, (0.01, 0.3)[seed % 2], (0, 1, 2)[seed % 3], seed)
    chip, rep, _, init = dev.program_network(net, params, tile=(64, 64), word=16, retries=2,
                                         initial=("hrs", "random")[seed % 2])
    cells, pulses, failed, arrays = planes.program_layers(net.cells, chip.faults, params, tile=(64, 64), retries=2,
                                                          initial=init)
    assert all((a == b).all() for a, b in zip(cells, chip.cells()))
    assert all((a.counts[0] == c).all() for a, c in zip(arrays, chip.counts()))
    assert pulses == (rep.pulses_set, rep.pulses_reset) and failed == rep.failed and len(failed) > 0
    states = {(k, br, bc): t.rng_state for k, tiles in enumerate(chip.tiles) for (br, bc), t in tiles.items()}
    assert states == {(k, br, bc): v for k, a in enumerate(arrays) for (_, br, bc), v in a.rng.items()}
