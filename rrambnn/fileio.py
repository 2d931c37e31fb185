"""Files: atomic writes (an existing file is replaced only by a complete new one) and checked
reads of the project's .npz files."""

from __future__ import annotations

import os
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from rrambnn.errors import RrambnnError


def atomic_write(path, write) -> Path:
    """Call ``write(binary_file)`` on a temporary file beside ``path``, then rename it over
    ``path``. Permissions follow the umask, as for a plainly created file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# -- .npz files: every weights, trace and fault-map file of the project ------------------

NPZ_ERRORS = (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, zlib.error)


def read_npz(path, what: str) -> dict:
    """Every entry of the .npz at ``path`` (never unpickling); one clear error naming ``what``
    (e.g. ".npz weights file") when it is missing or unreadable, a corrupted entry included."""
    path = Path(path)
    if not path.is_file():
        raise RrambnnError(f"{what} not found: {path}")
    if not zipfile.is_zipfile(path):
        raise RrambnnError(f"{path}: not a readable {what} (not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except NPZ_ERRORS as e:
        detail = str(e).split("\n")[0]
        if "allow_pickle" in detail:
            detail = "an entry holds Python objects, not arrays"
        raise RrambnnError(f"{path}: not a readable {what} ({type(e).__name__}: {detail})") from None


def npz_format(path) -> str | None:
    """The ``format`` entry of an .npz (None for anything else, unreadable files included)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return str(z["format"]) if "format" in z.files and z["format"].shape == () else None
    except NPZ_ERRORS:
        return None


def write_npz(path, arrays: dict) -> Path:
    """A compressed .npz, written atomically."""
    return atomic_write(Path(path), lambda f: np.savez_compressed(f, **arrays))


def layer_arrays(weights, thresholds) -> dict:
    """The per-layer entries of a network file: ``w{i}`` and ``theta{i}``."""
    out = {}
    for i, (w, t) in enumerate(zip(weights, thresholds)):
        out[f"w{i}"], out[f"theta{i}"] = w, t
    return out


def rethrow_in(path, err: RrambnnError) -> RrambnnError:
    """``err`` with the file's path in front (once)."""
    msg = str(err)
    return RrambnnError(msg if msg.startswith(str(path)) else f"{path}: {msg}")


class Entries:
    """Checked access to the entries of an .npz read by :func:`read_npz`: every problem is one
    error line starting with the file's path."""

    def __init__(self, path, data: dict):
        self.path, self.data = Path(path), data

    def error(self, msg: str) -> RrambnnError:
        return RrambnnError(f"{self.path}: {msg}")

    def array(self, key: str) -> np.ndarray:
        if key not in self.data:
            raise self.error(f"missing entry '{key}'")
        return self.data[key]

    def int(self, key: str) -> int:
        v = self.array(key)
        if v.shape != () or not np.issubdtype(v.dtype, np.integer):
            raise self.error(f"'{key}' must be an integer scalar")
        return int(v)

    def str(self, key: str) -> str:
        v = self.array(key)
        if v.shape != () or v.dtype.kind != "U":
            raise self.error(f"'{key}' must be a string scalar")
        return str(v)

    def json(self, key: str):
        import json
        try:
            return json.loads(self.str(key))
        except json.JSONDecodeError as e:
            raise self.error(f"'{key}' is not valid JSON ({e})") from None

    def header(self, fmt: str, version: int) -> None:
        """The ``format`` and ``version`` entries must be ``fmt`` and ``version``."""
        if self.str("format") != fmt:
            raise self.error(f"format is {str(self.data['format'])!r}, expected {fmt!r}")
        if self.int("version") != version:
            raise self.error(f"format version {int(self.data['version'])} is not supported (expected {version})")

    def layers(self, arch) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Weights ``w{i}`` (checked against ``arch``) and thresholds ``theta{i}`` per layer; an
        entry of either kind beyond the layers of ``arch`` is an error."""
        n = len(arch) - 1
        weights = [self.array(f"w{i}") for i in range(n)]
        for i, w in enumerate(weights):
            if w.shape != (arch[i], arch[i + 1]):
                raise self.error(f"w{i} has shape {w.shape}, arch {'-'.join(map(str, arch))} needs "
                                 f"({arch[i]}, {arch[i + 1]})")
        thresholds = [self.array(f"theta{i}") for i in range(n)]
        names = {f"w{i}" for i in range(n)} | {f"theta{i}" for i in range(n)}
        extra = sorted(k for k in self.data if k.startswith(("w", "theta")) and k[-1].isdigit() and k not in names)
        if extra:
            raise self.error(f"entries {', '.join(extra)} do not match arch {'-'.join(map(str, arch))}")
        return weights, thresholds

    def arch(self) -> np.ndarray:
        arch = self.array("arch")
        if arch.ndim != 1 or len(arch) < 2 or not np.issubdtype(arch.dtype, np.integer) or (arch < 1).any():
            raise self.error("'arch' must list at least two positive layer sizes")
        return arch


def check_writable(path, *, directory: bool = False, option: str = "--out") -> Path:
    """Fail now, with one line, if ``path`` (a file, or with ``directory`` a directory) cannot be
    written: a run checks where its results go before it starts working."""
    text = str(path)
    path = Path(path)
    if not text.strip():
        raise RrambnnError(f"{option} must name a {'directory' if directory else 'file'}, not {text!r}")
    if directory and path.exists() and not path.is_dir():
        raise RrambnnError(f"{option} must name a directory, not the file {path}")
    if not directory and path.is_dir():
        raise RrambnnError(f"{option} must name a file, not the directory {path}")
    where = path if directory else path.parent
    try:
        where.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=where, prefix=".rrambnn-probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise RrambnnError(f"{option} {path}: cannot write there ({e.strerror or e})") from None
    return path


def write_text(path, text: str) -> Path:
    """A text file, written atomically."""
    return atomic_write(path, lambda f: f.write(text.encode()))


def save_figure(fig, path, **kw) -> Path:
    """A matplotlib figure as PNG, written atomically."""
    return atomic_write(path, lambda f: fig.savefig(f, format="png", **kw))
