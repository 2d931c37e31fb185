"""Trained networks shipped with rrambnn (see the README for the file format)."""

from pathlib import Path

DIR = Path(__file__).resolve().parent
REFERENCE = "bnn-400-128-128-10.npz"  # the reference chip
ONLINE = "bnn-400-200-10.npz"  # the binary 400-200-10 network (sign-forward online training starts here)
ONLINE_NBIT = "online-400-200-10.npz"  # 8-bit codes trained on the chip model (n-bit online training starts here)


def shipped(name: str = REFERENCE) -> Path:
    return DIR / name
