"""The shipped networks meet the issue's accuracy targets (hardware-exact, full test set)."""

import pytest

from rrambnn.gen.network import BinaryNetwork
from rrambnn.weights import ONLINE, REFERENCE, shipped


@pytest.mark.parametrize("name, arch, targets", [
    (REFERENCE, (400, 128, 128, 10), {"argmax": 0.965, "priority": 0.960}),
    (ONLINE, (400, 200, 10), {"argmax": 0.95, "priority": 0.94}),
])
def test_shipped_accuracy(name, arch, targets, mnist_test):
    net = BinaryNetwork.load(shipped(name))
    assert net.arch == arch
    acc = net.accuracy(net.preprocess(mnist_test.images), mnist_test.labels)
    for mode, target in targets.items():
        assert acc[mode] >= target, f"{name} {mode}: {acc[mode]:.4f} < {target}"
    assert net.meta["accuracy"] == pytest.approx(acc)  # the file's metadata tells the truth
