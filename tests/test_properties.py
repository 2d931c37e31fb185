"""Property-based tests of the readers that take outside bytes: weights files, MNIST IDX files
and the board link's replies. Whatever the bytes, the answer is a value or one RrambnnError,
never another exception."""

import gzip
import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rrambnn.errors import RrambnnError
from rrambnn.fpga.host import BoardInfo, decode_result, parse_query, query_length
from rrambnn.gen.mnist import read_idx
from rrambnn.gen.network import BinaryNetwork, random_network
from rrambnn.gen.netfile import load_network
from rrambnn.hw.host import PROTOCOL_VERSION

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _valid_weights_bytes(tmp_path) -> bytes:
    net = random_network((16, 8, 10), np.random.default_rng(0))
    path = tmp_path / "ok.npz"
    net.save(path)
    return path.read_bytes()


def _damaged(good: bytes, cut: int, flips) -> bytes:
    """``good`` cut to ``cut`` bytes (modulo its length + 1), then each (position, mask) of
    ``flips`` XORed in."""
    data = bytearray(good[:cut % (len(good) + 1)])
    for pos, x in flips:
        if data:
            data[pos % len(data)] ^= x
    return bytes(data)


@SETTINGS
@given(data=st.binary(max_size=2048))
def test_any_bytes_as_weights_are_a_network_or_one_error(tmp_path, data):
    path = tmp_path / "w.npz"
    path.write_bytes(data)
    with pytest.raises(RrambnnError):
        load_network(path, multi_bit=True)


@SETTINGS
@given(cut=st.integers(min_value=0), flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(1, 255)),
                                                       max_size=8))
def test_a_damaged_weights_file_is_a_network_or_one_error(tmp_path, cut, flips):
    path = tmp_path / "w.npz"
    path.write_bytes(_damaged(_valid_weights_bytes(tmp_path), cut, flips))
    try:
        net = load_network(path, multi_bit=True)
    except RrambnnError:
        return
    assert isinstance(net, BinaryNetwork) and net.arch == (16, 8, 10)


def _idx(magic: int, dims: list[int], body: bytes) -> bytes:
    return magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims) + body


@SETTINGS
@given(n=st.integers(0, 3), pixels=st.binary(min_size=0, max_size=3 * 784), extra=st.binary(max_size=8),
       gz=st.booleans())
def test_idx_images_read_back_or_one_error(tmp_path, n, pixels, extra, gz):
    body = (pixels * 4)[:n * 784] + extra
    raw = _idx(2051, [n, 28, 28], body)
    path = tmp_path / ("x.idx.gz" if gz else "x.idx")
    path.write_bytes(gzip.compress(raw) if gz else raw)
    try:
        arr = read_idx(path, 2051, 2)
    except RrambnnError:
        assert len(body) != n * 784
        return
    assert arr.shape == (n, 28, 28) and arr.tobytes() == body


@SETTINGS
@given(data=st.binary(max_size=64), gz=st.booleans())
def test_any_bytes_as_idx_are_one_error_or_an_array(tmp_path, data, gz):
    path = tmp_path / ("y.gz" if gz else "y")
    path.write_bytes(data)
    try:
        arr = read_idx(path, 2049, 0)
    except RrambnnError:
        return
    assert arr.ndim == 1


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=80))
def test_any_reply_to_a_query_is_board_info_or_one_error(data):
    try:
        info = parse_query(data)
    except RrambnnError:
        return
    assert isinstance(info, BoardInfo) and len(data) == query_length(len(info.lanes))


@settings(max_examples=200, deadline=None)
@given(arch=st.lists(st.integers(1, 65535), min_size=2, max_size=5), output=st.integers(0, 1),
       clock=st.integers(0, 2 ** 32 - 1), kind=st.integers(0, 1))
def test_a_well_formed_query_reply_parses_back(arch, output, clock, kind):
    n = len(arch) - 1
    buf = io.BytesIO()
    buf.write(b"RB" + bytes([PROTOCOL_VERSION, n, output, kind]))
    for a in arch:
        buf.write(a.to_bytes(2, "little"))
    lanes = [min(k + 1, arch[k + 1]) for k in range(n)]  # at most one lane per neuron
    for k in range(n):
        buf.write(lanes[k].to_bytes(2, "little") + (k + 2).to_bytes(2, "little"))
    image = -(-arch[0] // 8)
    buf.write(image.to_bytes(2, "little") + (9).to_bytes(2, "little") + clock.to_bytes(4, "little"))
    info = parse_query(buf.getvalue())
    assert info.arch == tuple(arch) and info.clock_hz == clock and info.kind == kind
    assert info.output == ("argmax" if output else "priority") and info.image_bytes == image
    assert info.lanes == tuple(lanes) and info.chunks == tuple(range(2, n + 2))


@pytest.mark.parametrize("field, value, text", [
    ("lanes", 0, "layer 0: 0 lane(s)"), ("lanes", 999, "layer 0: 999 lane(s)"),
    ("image", 3, "3 bytes per image for 400 inputs"), ("write", 0, "0 bytes per write"),
    ("kind", 7, "design code 7")])
def test_a_query_reply_describing_no_drivable_chip_is_one_error(field, value, text):
    arch, lanes, image, write, kind = (400, 128, 10), [8, 10], 50, 9, 0
    lanes[0] = value if field == "lanes" else lanes[0]
    image = value if field == "image" else image
    write = value if field == "write" else write
    kind = value if field == "kind" else kind
    data = b"RB" + bytes([PROTOCOL_VERSION, 2, 0, kind]) + b"".join(a.to_bytes(2, "little") for a in arch)
    data += b"".join(v.to_bytes(2, "little") + (1).to_bytes(2, "little") for v in lanes)
    data += image.to_bytes(2, "little") + write.to_bytes(2, "little") + (12_000_000).to_bytes(4, "little")
    with pytest.raises(RrambnnError, match=text.replace("(", r"\(").replace(")", r"\)")):
        parse_query(data)


@given(byte=st.integers(0, 255))
def test_every_result_byte_decodes(byte):
    cls, hit = decode_result(byte)
    assert 0 <= cls < 128 and hit in (0, 1) and (hit << 7 | cls) == byte


def _npz_with(tmp_path, members: dict, compress=None):
    """An .npz-like zip with these raw members (name -> bytes)."""
    import zipfile
    path = tmp_path / "crafted.npz"
    with zipfile.ZipFile(path, "w", compression=compress or zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


@pytest.mark.parametrize("members, text", [
    ({"format.npy": b"not an array"}, "is not an NPY array (no NPY magic)"),
    ({"w0.npy": _npy_bytes(np.zeros(4, np.int8))[:30]}, "damaged NPY header"),  # cut inside the header
    ({"w0.npy": _npy_bytes(np.zeros(4, np.int8))[:-2]}, "its header promises 4 bytes of data, it holds 2"),
    ({"notes.txt": b"hello"}, "member 'notes.txt' is not an .npy array"),
    ({"w0.npy": _npy_bytes(np.array([{"a": 1}], dtype=object))}, "holds Python objects"),
])
def test_crafted_members_are_one_error(tmp_path, members, text):
    path = _npz_with(tmp_path, members)
    with pytest.raises(RrambnnError, match=text.replace("(", r"\(").replace(")", r"\)")):
        load_network(path, multi_bit=True)


def test_a_header_claiming_a_tebibyte_is_refused_before_allocating(tmp_path):
    """The header's shape is checked against the member's bytes; nothing that large is allocated."""
    header = "{'descr': '<i8', 'fortran_order': False, 'shape': (137438953472,), }"
    header += " " * (64 - (10 + len(header) + 1) % 64) + "\n"
    data = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + b"\0" * 8
    with pytest.raises(RrambnnError, match=r"promises 1,099,511,627,776 bytes of data, it holds 8"):
        load_network(_npz_with(tmp_path, {"w0.npy": data}), multi_bit=True)


def test_an_unsupported_compression_method_is_one_error(tmp_path):
    import zipfile
    path = _npz_with(tmp_path, {"format.npy": _npy_bytes(np.array("rrambnn-bnn"))})
    raw = bytearray(path.read_bytes())
    for sig in (b"PK\x03\x04", b"PK\x01\x02"):  # local header and central directory: method 99
        i = raw.find(sig)
        off = 8 if sig == b"PK\x03\x04" else 10
        raw[i + off:i + off + 2] = (99).to_bytes(2, "little")
    path.write_bytes(bytes(raw))
    assert zipfile.is_zipfile(path)
    with pytest.raises(RrambnnError, match="compression method 99 is not supported"):
        load_network(path, multi_bit=True)


def test_a_fifo_is_refused_without_waiting(tmp_path):
    import os
    fifo = tmp_path / "w.npz"
    os.mkfifo(fifo)
    with pytest.raises(RrambnnError, match="not a regular file"):
        load_network(fifo, multi_bit=True)


def test_deeply_nested_metadata_is_one_error(tmp_path):
    from rrambnn.fileio import Entries
    e = Entries(tmp_path / "x.npz", {"meta": np.array("[" * 100_000 + "]" * 100_000)})
    with pytest.raises(RrambnnError, match="nested too deeply"):
        e.json("meta")


def test_single_bit_flips_of_every_shipped_file_never_escape():
    """200 random single-bit flips of each shipped weights file through the loaders the commands
    use: every outcome a network or one error line (`rrambnn bench --fuzz N` runs more)."""
    from rrambnn.studies import fuzz
    files = fuzz.shipped_files()
    assert len(files) >= 5
    for p in files:
        r = fuzz.bit_flips(p, 200, seed=7)
        assert r["escapes"] == 0, r
        assert r["one_line_errors"] > 150, r


@SETTINGS
@given(cut=st.integers(min_value=0), flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(1, 255)),
                                                       max_size=6))
def test_a_damaged_tech_file_is_a_technology_or_one_error(tmp_path, cut, flips):
    """Bit flips and truncations of the shipped 32 nm technology file through the real loader."""
    from rrambnn.studies import cost
    path = tmp_path / "t.toml"
    path.write_bytes(_damaged((cost.TECH_DIR / "32nm.toml").read_bytes(), cut, flips))
    try:
        tech = cost.load_tech(path)
    except RrambnnError as e:
        assert "\n" not in str(e)
        return
    assert cost.cell_area_um2(tech) > 0 and tech["crossbar"]["column_cap_ff_per_cell"] > 0 and tech["clock_mhz"] > 0


@SETTINGS
@given(data=st.binary(max_size=512) | st.sampled_from([b'{"eval:p:s0:e1": {"priority": 1}}', b"[]", b"null",
                                                        b'{"cost4:x": 5}', b"\xff", b"[" * 5000]))
def test_any_bytes_as_an_explore_cache_are_a_cache_or_one_error(tmp_path, data):
    from rrambnn.studies.explore import Cache
    path = tmp_path / "cache.json"
    path.write_bytes(data)
    try:
        c = Cache(path)
    except RrambnnError as e:
        assert "\n" not in str(e)
        return
    assert isinstance(c.data, dict)
    for key in c.data:
        v = c.get(key)
        assert v is None or isinstance(v, dict)
