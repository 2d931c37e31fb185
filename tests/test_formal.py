"""Formal proofs (SymbiYosys) of the write-verify and weight-update controllers' promises."""

import pytest

from rrambnn.sim.formal import ProgrammerHarness, UpdaterHarness, programmer_bound, prove, tools_missing

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


@pytest.mark.parametrize("offset", [True, False], ids=["offset-code", "sign-magnitude"])
def test_weight_updater_writes_each_cell_once_in_order(tmp_path, offset):
    """Bounded check over whole commands: one cell a command, each cell of a weight at most once,
    least significant first, the sign / most significant cell last; no command taken while busy."""
    res = prove(UpdaterHarness(offset=offset), tmp_path, mode="bmc")
    assert res["passed"], res


def test_the_order_property_can_fail(tmp_path):
    """The same check with the write order reversed finds a counterexample."""
    harness = UpdaterHarness(offset=True)
    harness.order = list(reversed(harness.order))
    res = prove(harness, tmp_path, mode="bmc")
    assert res["status"] == "FAIL" and res["failed"], res
