import numpy as np
import pytest

from rrambnn.errors import RrambnnError
from rrambnn.gen.mnist import Preprocess
from rrambnn.gen.network import BinaryNetwork
from rrambnn.gen.train import TrainConfig, calibrate_output, signed_merge, train


@pytest.fixture(scope="module")
def small_run(mnist_train):
    cfg = TrainConfig(arch="144-24-16-10", crop=12, epochs=2, batch=100, seed=5, shift=1, ema=0.0, lr=0.01)
    n = 6000
    return cfg, train(cfg, mnist_train.images[:n], mnist_train.labels[:n], progress=False)


def test_signed_merge_is_exact(small_run, mnist_test):
    cfg, (net, model, history) = small_run
    # exercise every branch of the merge: negative and zero BN scales
    model.gamma[0][:5] *= -1
    model.gamma[1][3] = -0.7
    model.gamma[0][7] = 0.0
    model.beta[0][7] = -0.2
    weights, thresholds = signed_merge(model)
    merged = BinaryNetwork(weights, thresholds, Preprocess(12))
    x = Preprocess(12)(mnist_test.images)
    z = model.float_eval(x)
    t = merged.forward(x)
    assert ((z >= 0) == (t.acts[-1] == 1)).all()  # every output neuron, every test image
    assert (weights[0][:, :5] == -np.where(model.W[0][:, :5] >= 0, 1, -1)).all()
    assert (t.acts[0][:, 7] == 0).all()  # gamma 0, beta < 0: never fires


def test_training_learns_and_is_deterministic(small_run, mnist_train, mnist_test):
    cfg, (net, model, history) = small_run
    acc = net.accuracy(Preprocess(12)(mnist_test.images), mnist_test.labels)
    assert acc["argmax"] > 0.45 and acc["priority"] > 0.3  # chance is 0.1
    assert len(history) == 2 and history[1]["loss"] < history[0]["loss"]
    net2, _, _ = train(cfg, mnist_train.images[:6000], mnist_train.labels[:6000], progress=False)
    assert all((a == b).all() for a, b in zip(net.weights + net.thresholds, net2.weights + net2.thresholds))
    cfg3 = TrainConfig(arch="144-24-16-10", crop=12, epochs=2, batch=100, seed=6, shift=1, ema=0.0, lr=0.01)
    net3, _, _ = train(cfg3, mnist_train.images[:6000], mnist_train.labels[:6000], progress=False)
    assert any((a != b).any() for a, b in zip(net.weights, net3.weights))


def test_calibration_never_lowers_training_score(small_run, mnist_train):
    cfg, (net, model, history) = small_run
    x = Preprocess(12)(mnist_train.images[:6000])
    res = calibrate_output(net, x, mnist_train.labels[:6000])
    assert res["train_score_after"] >= res["train_score_before"]


@pytest.mark.parametrize("kw, message", [
    ({"arch": "400-128-9"}, "MNIST needs 10 outputs"),
    ({"arch": "300-10"}, "input size 300 does not match crop 20x20 = 400"),
    ({"epochs": 0}, "Epochs must be a positive integer, not 0"),
    ({"batch": -3}, "Batch must be a positive integer, not -3"),
    ({"shift": 9}, "Shift must be an integer from 0 to 4 pixels, not 9"),
    ({"lr": -1.0}, "Learning rates must be positive"),
    ({"output_mode": "max"}, "Output mode must be one of priority, argmax, not 'max'"),
    ({"crop": 40}, "Crop must be an integer from 1 to 28, not 40"),
])
def test_config_errors(kw, message):
    with pytest.raises(RrambnnError, match=message):
        TrainConfig(**kw).validate()


def test_loss_gradient_matches_finite_differences(rng):
    from rrambnn.gen.train import loss_and_grad
    z = rng.standard_normal((6, 10))
    y = rng.integers(0, 10, 6)
    _, g = loss_and_grad(z, y, 0.5, 1.3)
    num = np.zeros_like(z)
    for i in range(6):
        for j in range(10):
            d = np.zeros_like(z)
            d[i, j] = 1e-6
            num[i, j] = (loss_and_grad(z + d, y, 0.5, 1.3)[0] - loss_and_grad(z - d, y, 0.5, 1.3)[0]) / 2e-6
    assert np.abs(num - g).max() < 1e-6


def test_priority_loss_ignores_neurons_above_the_label():
    from rrambnn.gen.train import loss_and_grad
    z = np.zeros((1, 10))
    _, g = loss_and_grad(z, np.array([3]), bce_weight=0.0, priority_weight=1.0)
    _, g_ce = loss_and_grad(z, np.array([3]), bce_weight=0.0, priority_weight=0.0)
    extra = g - g_ce
    assert (extra[0, :3] > 0).all() and extra[0, 3] < 0 and (extra[0, 4:] == 0).all()


def test_calibration_equals_the_plain_coordinate_descent():
    """calibrate_output scores a threshold's candidates from what the other columns decide; the
    plain descent (every candidate scored on the whole sums) picks the same thresholds with the
    same scores, ties and rejects included."""
    import numpy as np

    def plain(s, theta, labels, span, step, bound, pw, rounds=3):
        def score(th):
            fires = s >= th
            prio_ok = fires.any(axis=1) & (fires.argmax(axis=1) == labels)
            return pw * prio_ok.mean() + ((s - th).argmax(axis=1) == labels).mean()
        best = before = score(theta)
        for _ in range(rounds):
            improved = False
            for j in range(len(theta)):
                for cand in range(theta[j] - span * step, theta[j] + span * step + 1, step):
                    if cand == theta[j] or not -bound <= cand <= bound + 1:
                        continue
                    trial = theta.copy()
                    trial[j] = cand
                    sc = score(trial)
                    if sc > best + 1e-12:
                        best, theta, improved = sc, trial, True
            if not improved:
                break
        return theta, before, best

    class Net:  # the interface calibrate_output uses
        def __init__(self, sums, theta, bound):
            self.sums, self.thresholds, self.weights, self.b = sums, [theta], [None], bound

        def forward(self, x, trace):
            return type("T", (), {"sums": [self.sums]})

        def bound(self, k):
            return self.b

        def __post_init__(self):
            pass

    rng = np.random.default_rng(5)
    for trial in range(6):
        n, c = 400, int(rng.integers(2, 11))
        sums = rng.integers(-6, 7, (n, c))  # small range: many ties
        labels = rng.integers(0, c, n)
        theta = rng.integers(-3, 4, c).astype(np.int32)
        pw = [1.0, 2.0][trial % 2]
        want, before, best = plain(sums, theta.copy(), labels, 4, 1, 8, pw)
        net = Net(sums, theta.copy(), 8)
        net.bound = lambda k: 8
        res = calibrate_output(net, None, labels, span=4, priority_weight=pw)
        assert (net.thresholds[-1] == want).all()
        assert res == {"train_score_before": float(before), "train_score_after": float(best)}
