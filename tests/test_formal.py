"""Formal proofs (SymbiYosys, k-induction) of the write-verify controller's promises."""

import pytest

from rrambnn.sim.formal import ProgrammerHarness, programmer_bound, prove, tools_missing

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
