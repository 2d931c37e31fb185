import os
import subprocess
import sys

import numpy as np
import pytest

from rrambnn.errors import RrambnnError


def rr(*args, env=None, cwd=None):
    """Run the CLI in a fresh interpreter."""
    return subprocess.run([sys.executable, "-m", "rrambnn", *args], capture_output=True, text=True,
                          env=env, cwd=cwd)


def one_error_line(r, text):
    """The run failed with exit 2 and one error line containing ``text``, no traceback."""
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert text in lines[0], lines[0]


def check(res):
    """A cocotb scoreboard run passed: every result checked, none differs (seed, log and waves
    in the message)."""
    assert res["passed"], (f"{res.get('mismatches')} mismatches (seed {res.get('seed')}), "
                           f"examples {res.get('examples', [])[:3]}; log {res['log']}; waves {res.get('waves')}")
    assert res["mismatches"] == 0 and res["checked"] >= res["images"]


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


def network_and_images(arch: str, n: int, seed: int, mnist_test):
    """The shipped reference network and n MNIST test images for "400-128-128-10", else a random
    argmax network of ``arch`` and n random images (the Verilog-against-golden tests' inputs)."""
    from rrambnn.gen.network import BinaryNetwork, random_network
    from rrambnn.weights import shipped
    if arch == "400-128-128-10":
        net = BinaryNetwork.load(shipped())
        return net, net.preprocess(mnist_test.images[:n])
    rng = np.random.default_rng(seed)
    net = random_network(arch, rng, output_mode="argmax")
    return net, rng.integers(0, 2, (n, net.arch[0])).astype(np.uint8)
