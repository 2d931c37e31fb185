"""Files: atomic writes (an existing file is replaced only by a complete new one) and checked
reads of the project's .npz files."""

from __future__ import annotations

import os
import tempfile
import threading
import zipfile
from pathlib import Path

import numpy as np

from rrambnn.errors import RrambnnError


_sets = threading.local()  # the output sets open in this thread, innermost last


class OutputSet:
    """Files written as one set (a run's table, JSON and plot): inside ``with OutputSet():``
    every :func:`atomic_write` only stages its temporary file; leaving the block without an
    error renames them all over their files, an error deletes them all, so the files of an
    earlier run stay whole and matching. A target that is a directory fails at once."""

    def __enter__(self):
        self.staged: list[tuple[str, Path]] = []
        if not hasattr(_sets, "open"):
            _sets.open = []
        _sets.open.append(self)
        return self

    def __exit__(self, exc_type, exc, tb):
        _sets.open.remove(self)
        if exc_type is None:
            for tmp, path in self.staged:
                os.replace(tmp, path)
        else:
            for tmp, _ in self.staged:
                Path(tmp).unlink(missing_ok=True)
        return False


def one_output_set(fn):
    """Decorator: the files ``fn`` writes form one :class:`OutputSet`."""
    import functools

    @functools.wraps(fn)
    def wrapped(*args, **kw):
        with OutputSet():
            return fn(*args, **kw)
    return wrapped


def atomic_write(path, write) -> Path:
    """Call ``write(binary_file)`` on a temporary file beside ``path``, then rename it over
    ``path`` (inside an :class:`OutputSet`: when the set is complete). Permissions follow the
    umask, as for a plainly created file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        raise RrambnnError(f"{path}: a directory is in the way of this output file")
    if path.exists() and not path.is_file():  # a device, FIFO or socket is never replaced by a result
        raise RrambnnError(f"{path}: a special file is in the way of this output file")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            write(f)
        if getattr(_sets, "open", None):
            _sets.open[-1].staged.append((tmp, path))
        else:
            os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# -- .npz files: every weights, trace and fault-map file of the project ------------------

MAX_MEMBERS = 4096  # arrays in one .npz
MAX_MEMBER_BYTES = 1 << 31  # one array, uncompressed
MAX_HEADER_BYTES = 10_000  # one array's NPY header


class DamagedNpz(ValueError):
    """What is wrong with an .npz, in one phrase."""


def _npy(name: str, data: bytes) -> np.ndarray:
    """The array of one NPY member, every field checked before use (never unpickling)."""
    import io
    fmt = np.lib.format
    if not data.startswith(fmt.MAGIC_PREFIX):
        raise DamagedNpz(f"member {name!r} is not an NPY array (no NPY magic)")
    f = io.BytesIO(data)
    try:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(f, max_header_size=MAX_HEADER_BYTES)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = fmt.read_array_header_2_0(f, max_header_size=MAX_HEADER_BYTES)
        else:
            raise DamagedNpz(f"member {name!r}: NPY version {version} is not supported")
    except DamagedNpz:
        raise
    except Exception as e:  # the header parser's every failure (ValueError, SyntaxError, TokenError, ...)
        raise DamagedNpz(f"member {name!r} has a damaged NPY header ({type(e).__name__})") from None
    if dtype.hasobject:
        raise DamagedNpz(f"member {name!r} holds Python objects, not arrays")
    if not all(isinstance(n, int) and n >= 0 for n in shape):
        raise DamagedNpz(f"member {name!r} has an invalid shape {shape!r}")
    count = 1
    for n in shape:
        count *= n
    have = len(data) - f.tell()
    if count * dtype.itemsize != have:
        raise DamagedNpz(f"member {name!r}: its header promises {count * dtype.itemsize:,} bytes of data, it "
                         f"holds {have:,}")
    arr = np.frombuffer(data, dtype, count, offset=f.tell())
    return arr.reshape(shape, order="F" if fortran else "C").copy()


def _load_npz(path, only=None) -> dict:
    """The arrays of an .npz (``only``: those names), the container and every member checked
    first: a regular file, a zip archive of at most MAX_MEMBERS .npy members, stored or
    deflated, each at most MAX_MEMBER_BYTES and intact (CRC), an NPY header that parses and
    matches its data. Raises DamagedNpz (or OSError) naming the defect."""
    import stat
    path = Path(path)
    if not stat.S_ISREG(path.stat().st_mode):  # a FIFO or device would block or never end
        raise DamagedNpz("not a regular file")
    if not zipfile.is_zipfile(path):
        raise DamagedNpz("not a zip archive")
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_MEMBERS:
                raise DamagedNpz(f"{len(infos):,} members (at most {MAX_MEMBERS:,})")
            out = {}
            for info in infos:
                name = info.filename
                if not name.endswith(".npy"):
                    raise DamagedNpz(f"member {name!r} is not an .npy array")
                key = name[:-4]
                if only is not None and key not in only:
                    continue
                if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                    raise DamagedNpz(f"member {name!r}: compression method {info.compress_type} is not supported")
                if info.flag_bits & 0x1:
                    raise DamagedNpz(f"member {name!r} is encrypted")
                if info.file_size > MAX_MEMBER_BYTES:
                    raise DamagedNpz(f"member {name!r} claims {info.file_size:,} bytes (at most "
                                     f"{MAX_MEMBER_BYTES:,})")
                out[key] = _npy(name, zf.read(info))
            return out
    except (DamagedNpz, OSError):
        raise
    except Exception as e:  # the zip reader's every failure on a damaged archive
        detail = str(e).split("\n")[0][:200]
        raise DamagedNpz(f"{type(e).__name__}: {detail}" if detail else type(e).__name__) from None


def read_npz(path, what: str) -> dict:
    """Every entry of the .npz at ``path`` (never unpickling); one clear error naming ``what``
    (e.g. ".npz weights file") when it is missing or unreadable, a damaged container or member
    included."""
    path = Path(path)
    if not path.exists():
        raise RrambnnError(f"{what} not found: {path}")
    if path.is_dir():
        raise RrambnnError(f"{path}: a directory, not a {what}")
    try:
        return _load_npz(path)
    except DamagedNpz as e:
        raise RrambnnError(f"{path}: not a readable {what} ({e})") from None
    except OSError as e:
        raise RrambnnError(f"{path}: cannot read the {what} ({e.strerror or e})") from None


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
        except RecursionError:
            raise self.error(f"'{key}' is JSON nested too deeply") from None

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


NAME_MAX = 255  # bytes of one path component (Linux, macOS)
PATH_MAX = 4096  # bytes of a whole path (Linux)
TEMP_ROOM = 12  # what atomic_write's temporary sibling adds to a file's name (8 random + ".tmp")


def check_name_lengths(path, option: str = "--out", *, sibling: bool = True) -> None:
    """One line if ``path`` is longer than the system takes: any component over NAME_MAX bytes
    (a file's with room for its temporary sibling, when ``sibling``), or the whole over PATH_MAX."""
    path = Path(path)
    whole = len(os.fsencode(os.path.abspath(path)))
    if whole > PATH_MAX:
        raise RrambnnError(f"{option}: the path is {whole:,} bytes long (at most {PATH_MAX:,})")
    for part in path.parts:
        n = len(os.fsencode(part))
        room = TEMP_ROOM if sibling and part == path.name else 0
        if n + room > NAME_MAX:
            raise RrambnnError(f"{option}: the name {part[:40]}... is {n} bytes long (at most "
                               f"{NAME_MAX - room}{' with room for the temporary file written first' if room else ''})")


def check_writable(path, *, directory: bool = False, option: str = "--out", files=()) -> Path:
    """Fail now, with one line, if ``path`` (a file, or with ``directory`` a directory) cannot be
    written: a run checks where its results go before it starts working (``files``: the names
    it will write in the directory, none of which may be a directory)."""
    text = str(path)
    path = Path(path)
    if not text.strip():
        raise RrambnnError(f"{option} must name a {'directory' if directory else 'file'}, not {text!r}")
    check_name_lengths(path, option, sibling=not directory)
    try:
        if directory and path.exists() and not path.is_dir():
            raise RrambnnError(f"{option} must name a directory, not the file {path}")
        if not directory and path.is_dir():
            raise RrambnnError(f"{option} must name a file, not the directory {path}")
        if not directory and path.exists() and not path.is_file():  # a device, FIFO or socket: never replaced
            raise RrambnnError(f"{option} must name a regular file, not the special file {path}")
    except OSError as e:
        raise RrambnnError(f"{option} {path}: cannot write there ({e.strerror or e})") from None
    where = path if directory else path.parent
    try:
        where.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=where, prefix=".rrambnn-probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise RrambnnError(f"{option} {path}: cannot write there ({e.strerror or e})") from None
    for name in files:
        if (path / name).is_dir():
            raise RrambnnError(f"{path / name}: a directory is in the way of this output file")
        if (path / name).exists() and not (path / name).is_file():
            raise RrambnnError(f"{path / name}: a special file is in the way of this output file")
    return path


def read_toml(spec, names, directory: Path, kind: str) -> tuple[dict, Path, bool]:
    """A TOML file by name (one of ``names``, in ``directory``) or path: (its tables, the path,
    whether it is a shipped one); one error line when it is missing, unreadable or not TOML
    (``kind`` names it: "technology", "device profile")."""
    import tomllib
    spec = str(spec)
    shipped = spec in names
    path = directory / f"{spec}.toml" if shipped else Path(spec)
    if not path.is_file():
        raise RrambnnError(f"{kind} {spec!r}: not one of {', '.join(names)} and no file {path}")
    try:
        return tomllib.loads(path.read_text()), path, shipped
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise RrambnnError(f"{path}: not a valid TOML {kind} file ({e})") from None
    except OSError as e:
        raise RrambnnError(f"{path}: cannot read the {kind} file ({e.strerror or e})") from None


TOML_LIMIT = 1e12  # no value of a technology file or device profile comes near it (in its unit)


def toml_number(v, limit: float = TOML_LIMIT) -> bool:
    """Whether a TOML value is a real number (not a bool, not NaN or infinite) of at most
    ``limit`` in magnitude; a huge integer is compared as it is (never converted to a float, which
    would overflow)."""
    import math
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    return abs(v) <= limit if isinstance(v, int) else math.isfinite(v) and abs(v) <= limit


def shown(v, width: int = 40) -> str:
    """``repr(v)`` cut to ``width`` characters, for an error line about a value that may be huge."""
    text = repr(v)
    return text if len(text) <= width else text[:width - 3] + "..."


def json_text(obj, **kw) -> str:
    """``json.dumps`` for the project's outputs: valid JSON only. A NaN or an infinity (which
    json.dumps would write as bare NaN/Infinity) is one error naming where it is, before
    anything is written."""
    import json
    import math
    try:
        return json.dumps(obj, allow_nan=False, **kw)
    except ValueError:
        def where(o, path):
            if isinstance(o, float) and not math.isfinite(o):
                return path or "the result"
            items = o.items() if isinstance(o, dict) else enumerate(o) if isinstance(o, (list, tuple)) else ()
            for k, v in items:
                if (found := where(v, f"{path}.{k}" if path else str(k))) is not None:
                    return found
            return None
        raise RrambnnError(f"the result is not finite at {where(obj, '') or 'a value'} (NaN or infinity), which "
                           f"JSON cannot hold: check the inputs' magnitudes") from None


def write_text(path, text: str) -> Path:
    """A text file, written atomically."""
    return atomic_write(path, lambda f: f.write(text.encode()))


def save_figure(fig, path, **kw) -> Path:
    """A matplotlib figure as PNG, written atomically."""
    return atomic_write(path, lambda f: fig.savefig(f, format="png", **kw))
