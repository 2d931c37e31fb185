"""Damaged weights files through the real loaders: every single-bit flip must give a network
or one :class:`RrambnnError` (never another exception).

``rrambnn bench --fuzz N`` flips N random bits (seeded) of each shipped weights file and counts
the outcomes; the default test suite runs a few hundred."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from rrambnn.errors import RrambnnError


def load_any(path):
    """What the commands load a weights file with: an n-bit online network's codes, or any other
    network (binary, multi-bit, CNN)."""
    from rrambnn.gen.netfile import read_network
    return read_network(path)


def bit_flips(path, n: int, seed: int = 0) -> dict:
    """Flip ``n`` random single bits of ``path`` (one at a time) and load each: counts of loaded
    files, one-line errors and escapes (the exception types and positions of the first ten)."""
    good = Path(path).read_bytes()
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, len(good) * 8, n)
    loaded = errors = 0
    escapes = []
    with tempfile.TemporaryDirectory() as d:
        target = Path(d) / Path(path).name
        for b in bits.tolist():
            data = bytearray(good)
            data[b // 8] ^= 1 << (b % 8)
            target.write_bytes(bytes(data))
            try:
                load_any(target)
                loaded += 1
            except RrambnnError as e:
                if "\n" in str(e):
                    escapes.append({"bit": b, "error": "RrambnnError over several lines"})
                errors += 1
            except Exception as e:  # noqa: BLE001 - what the test counts
                escapes.append({"bit": b, "error": f"{type(e).__name__}: {str(e)[:120]}"})
    return {"file": str(path), "bytes": len(good), "flips": n, "seed": seed, "loaded": loaded,
            "one_line_errors": errors - sum(1 for e in escapes if e["error"].startswith("RrambnnError")),
            "escapes": len(escapes), "first_escapes": escapes[:10]}


def shipped_files() -> list[Path]:
    from rrambnn.weights import shipped
    return sorted(Path(shipped()).parent.glob("*.npz"))
