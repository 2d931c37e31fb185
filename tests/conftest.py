import os

import numpy as np
import pytest

from rrambnn.errors import RrambnnError


def pytest_addoption(parser):
    parser.addoption("--waves", action="store_true", help="build cocotb tests with FST tracing")


@pytest.fixture(autouse=True, scope="session")
def _waves(request):
    if request.config.getoption("--waves"):
        os.environ["RRAMBNN_WAVES"] = "1"


@pytest.fixture(scope="session")
def mnist_test():
    """The real MNIST test split (loaded once per session)."""
    from rrambnn.gen.mnist import load_split
    try:
        return load_split("test")
    except RrambnnError as e:
        pytest.fail(f"MNIST is needed for this test: {e}")


@pytest.fixture(scope="session")
def mnist_train():
    from rrambnn.gen.mnist import load_split
    try:
        return load_split("train")
    except RrambnnError as e:
        pytest.fail(f"MNIST is needed for this test: {e}")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
