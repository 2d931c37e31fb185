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
from rrambnn.gen.networks import load_network
from rrambnn.hw.host import PROTOCOL_VERSION

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _valid_weights_bytes(tmp_path) -> bytes:
    net = random_network((16, 8, 10), np.random.default_rng(0))
    path = tmp_path / "ok.npz"
    net.save(path)
    return path.read_bytes()


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
    good = bytearray(_valid_weights_bytes(tmp_path))
    data = good[:cut % (len(good) + 1)]
    for pos, x in flips:
        if data:
            data[pos % len(data)] ^= x
    path = tmp_path / "w.npz"
    path.write_bytes(bytes(data))
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
    for k in range(n):
        buf.write((k + 1).to_bytes(2, "little") + (k + 2).to_bytes(2, "little"))
    buf.write((7).to_bytes(2, "little") + (9).to_bytes(2, "little") + clock.to_bytes(4, "little"))
    info = parse_query(buf.getvalue())
    assert info.arch == tuple(arch) and info.clock_hz == clock and info.kind == kind
    assert info.output == ("argmax" if output else "priority")
    assert info.lanes == tuple(range(1, n + 1)) and info.chunks == tuple(range(2, n + 2))


@given(byte=st.integers(0, 255))
def test_every_result_byte_decodes(byte):
    cls, hit = decode_result(byte)
    assert 0 <= cls < 128 and hit in (0, 1) and (hit << 7 | cls) == byte
