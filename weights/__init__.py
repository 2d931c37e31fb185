"""Trained networks shipped with rrambnn (see the README for the file format)."""

from pathlib import Path

DIR = Path(__file__).resolve().parent
REFERENCE = "bnn-400-128-128-10.npz"  # the reference chip
ONLINE = "bnn-400-200-10.npz"  # the binary 400-200-10 network (sign-forward online training starts here)
ONLINE_NBIT = "online-400-200-10.npz"  # 8-bit codes trained on the chip model (n-bit online training starts here)
LENET5 = "lenet5-4-4-4-4.npz"  # LeNet-5 at A/CO/W/G 4/4/4/4, trained through the crossbar model with d = 0.05
LENET5_BINARY = "lenet5-2-2-1-4.npz"  # LeNet-5 with binary weights (W = 1), A/CO/G 2/2/4


def shipped(name: str = REFERENCE) -> Path:
    return DIR / name
