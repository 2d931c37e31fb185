"""Formal proofs (SymbiYosys) of the write-verify and weight-update controllers' promises."""

from pathlib import Path

import pytest

from rrambnn.hw.updater import WeightUpdater
from rrambnn.sim import formal
from rrambnn.sim.formal import (ChipHarness, HostContractHarness, HostHarness, ProgrammerHarness, UpdaterHarness,
                                 programmer_bound, prove, tools_missing)

pytestmark = pytest.mark.skipif(bool(tools_missing()), reason=f"formal tools missing: {tools_missing()}")


@pytest.mark.parametrize("word, retries, pulse_cycles", [(3, 1, 2), (4, 2, 1), (2, 0, 3)])
def test_programmer_properties_are_proved(tmp_path, word, retries, pulse_cycles):
    res = prove(ProgrammerHarness(word=word, retries=retries, pulse_cycles=pulse_cycles), tmp_path)
    assert res["passed"], res


def test_the_documented_bound_is_exact(tmp_path):
    """One cycle less than the bound is violated: a bounded check finds the command that takes it."""
    tight = programmer_bound(3, 1, 2) - 1
    res = prove(ProgrammerHarness(word=3, retries=1, pulse_cycles=2, bound=tight), tmp_path, mode="bmc")
    assert not res["passed"] and res["status"] == "FAIL" and res["failed"], res


UPDATERS = {  # the controllers the chips build: offset code (multi-bit chip; with restore: the training chip),
    # sign-magnitude (sign-forward chip); and a larger one (8-bit weights, 16-bit words, a 16-16-10 network)
    "offset-code": dict(offset=True),
    "offset-code-restore": dict(offset=True, restore=True),
    "sign-magnitude": dict(offset=False),
    "8bit-16-16-10-restore": dict(arch=(16, 16, 10), bits=8, word=16, offset=True, restore=True),
}


@pytest.mark.parametrize("kind", list(UPDATERS))
def test_weight_updater_properties_are_proved(tmp_path, kind):
    """k-induction (with the harness's strengthening invariants): one cell a command, each cell of
    a weight at most once, least significant first, the sign / most significant cell last; no
    command taken while busy; with restore, a weight that reads back wrong gets exactly the cells
    off its old code written back to the old code (in the same order, each once), one that reads
    back right no further write, and none is left unchecked."""
    res = prove(UpdaterHarness(**UPDATERS[kind]), tmp_path)
    assert res["passed"] and res["mode"] == "prove", res


@pytest.mark.parametrize("restore", [False, True], ids=["no-restore", "restore"])
def test_weight_updater_properties_are_reachable(tmp_path, restore):
    """Cover: a weight's last cell written after all the others; a restore of two cells that
    completes, and a weight of two written cells that reads back right. Not vacuous."""
    res = prove(UpdaterHarness(restore=restore), tmp_path, mode="cover")
    assert res["passed"], res


def fails_at(res, comment: str) -> bool:
    """Whether the check failed at the assertion of sim/formal.py whose line has ``comment``."""
    lines = Path(formal.__file__).read_text().splitlines()
    line = next(i for i, text in enumerate(lines, 1) if comment in text)
    return res["status"] == "FAIL" and any(f"formal.py:{line} " in f"{f} " for f in res["failed"])


def test_the_order_property_can_fail(tmp_path):
    """The same properties with the write order reversed: a bounded check finds a counterexample
    (the invariants left out, so that a property, not an invariant, fails)."""
    harness = UpdaterHarness(offset=True, invariants=False)
    harness.order = list(reversed(harness.order))
    res = prove(harness, tmp_path, mode="bmc")
    assert fails_at(res, "# in the code's write order"), res


@pytest.mark.parametrize("change", ["no-read-back", "new-code"])
def test_the_restore_properties_can_fail(tmp_path, change):
    """A controller without the restore path (no read-back) under the restore properties, or the
    restore writes required to set the new code instead of the old: a counterexample."""
    harness = UpdaterHarness(offset=True, restore=True, invariants=False)
    if change == "no-read-back":
        u = harness.dut
        harness.dut = WeightUpdater(u.arch, wbits=u.wbits, step_bits=u.step_bits, word=u.word,
                                    cmd_layout=harness.prog.cmd_layout, offset=True)
    else:
        harness.restore_to = "new"
    res = prove(harness, tmp_path, mode="bmc")
    assert fails_at(res, "# no weight is left without its read-back" if change == "no-read-back"
                    else "# the old code, set to its old state"), res


@pytest.mark.parametrize("pipeline, output", [(False, "priority"), (False, "argmax"), (True, "priority")])
def test_chip_holds_results_and_loses_none(tmp_path, pipeline, output):
    """Any i.valid / o.ready pattern, threshold writes, programming commands: a held result never
    changes; no result is lost or duplicated; until the first write every result is the golden
    model's for its image, in order (crossbar arrays: the behavioural Verilog model)."""
    res = prove(ChipHarness(pipeline=pipeline, output=output), tmp_path, mode="bmc")
    assert res["passed"], res


@pytest.mark.parametrize("pipeline, output", [(False, "priority"), (False, "argmax"), (True, "priority"),
                                              (True, "argmax")])
def test_chip_stream_handshake_is_proved_unbounded(tmp_path, pipeline, output):
    """k-induction closes for the handshake, whatever the cells hold: a held result never changes,
    no result without an image in flight, never more images than stages, the arrays never pulsed
    with an image in flight (the invariant: the scoreboard counts exactly the full stages)."""
    res = prove(ChipHarness(pipeline=pipeline, output=output, golden=False), tmp_path, mode="prove", depth=4)
    assert res["passed"] and res["mode"] == "prove", res


def test_chip_handshake_proof_can_fail(tmp_path):
    """The same proof with one stage too few fails (in its base case)."""
    res = prove(ChipHarness(pipeline=True, capacity=2, golden=False), tmp_path, mode="prove", depth=4)
    assert res["status"] == "FAIL" and res["failed"], res


def test_chip_properties_are_reachable(tmp_path):
    """Cover: a full pipeline delivers a golden-checked result; a result is held while a
    threshold write is offered. The properties above are not vacuous."""
    res = prove(ChipHarness(pipeline=True), tmp_path, mode="cover")
    assert res["passed"], res


@pytest.mark.parametrize("change", ["capacity", "golden"])
def test_chip_stream_properties_can_fail(tmp_path, change):
    """One stage too few, or one wrong golden answer: the check finds a counterexample."""
    harness = ChipHarness(pipeline=True, capacity=2) if change == "capacity" else ChipHarness()
    if change == "golden":
        harness.table = [v ^ 1 if i == 5 else v for i, v in enumerate(harness.table)]
    res = prove(harness, tmp_path, mode="bmc")
    assert res["status"] == "FAIL" and res["failed"], res


@pytest.mark.slow
def test_host_link_returns_to_idle(tmp_path):
    """After any byte sequence and silence, the host link never waits 10 cycles without progress
    unless it is idle: no byte sequence wedges it."""
    res = prove(HostHarness(), tmp_path, mode="bmc")
    assert res["passed"], res


def test_host_link_without_timeout_would_wedge(tmp_path):
    """With a partial-command timeout longer than the bound (as good as none, which the link
    had before), a truncated command leaves the link waiting: the check finds it."""
    res = prove(HostHarness(timeout=12), tmp_path, mode="bmc")
    assert res["status"] == "FAIL" and res["failed"], res


def test_host_link_is_proved_unbounded_for_any_core_that_keeps_the_contract(tmp_path):
    """k-induction closes: after any byte sequence and silence, the host link (parser, FIFOs, bench
    counters) never waits 12 cycles without progress unless it is idle, for every core that
    answers within 2 cycles (ContractCore); the cover shows 8-cycle waits happen."""
    res = prove(HostContractHarness(), tmp_path / "prove", mode="prove", depth=16)
    assert res["passed"] and res["mode"] == "prove", res
    res = prove(HostContractHarness(), tmp_path / "cover", mode="cover", depth=20)
    assert res["passed"], res


def test_host_link_proof_finds_the_wedge_without_timeout(tmp_path):
    """The same proof with a partial-command timeout longer than the bound fails."""
    res = prove(HostContractHarness(timeout=16), tmp_path, mode="prove", depth=16)
    assert res["status"] == "FAIL" and res["failed"], res
