"""Network files: one reader (gen.netfile.read_network), and every command reads its weights file
once (the issue on first runs and names: "a weights file opened once per command")."""

import pytest

from rrambnn import fileio
from rrambnn.cli import main
from rrambnn.errors import RrambnnError
from rrambnn.gen.cnn import CnnNetwork
from rrambnn.gen.netfile import accept, is_online, load_network, read_network
from rrambnn.gen.network import BinaryNetwork
from rrambnn.gen.sliced import SlicedNetwork, random_sliced
from rrambnn.weights import shipped


@pytest.fixture
def reads(monkeypatch):
    """The paths of every .npz read (a file's container is read once per entry in the list)."""
    seen = []
    real = fileio._load_npz

    def counting(path, only=None):
        seen.append(str(path))
        return real(path, only)
    monkeypatch.setattr(fileio, "_load_npz", counting)
    return seen


@pytest.fixture(scope="module")
def sliced_file(tmp_path_factory):
    import numpy as np
    path = tmp_path_factory.mktemp("net") / "sliced.npz"
    random_sliced((64, 12, 10), 2, 2, np.random.default_rng(3), crop=8).save(path)
    return str(path)


def test_read_network_builds_the_kind_its_format_names(sliced_file):
    assert isinstance(read_network(), BinaryNetwork)
    assert isinstance(read_network(sliced_file), SlicedNetwork)
    assert isinstance(read_network(shipped("lenet5-2-2-1-4.npz")), CnnNetwork)
    online = read_network(shipped("online-400-200-10.npz"))
    assert is_online(online) and online["bits"] == 8


@pytest.mark.parametrize("name, multi_bit, cnn, text", [
    ("online-400-200-10.npz", True, True, "an n-bit online network"),
    ("lenet5-2-2-1-4.npz", True, False, "a network of layer spec"),
])
def test_accept_names_what_the_file_holds(name, multi_bit, cnn, text):
    with pytest.raises(RrambnnError, match=text):
        load_network(shipped(name), multi_bit=multi_bit, cnn=cnn)


def test_a_multi_bit_network_where_binary_ones_are_taken(sliced_file):
    with pytest.raises(RrambnnError, match="2-bit weights and 2-bit activations; this command takes binary"):
        accept(read_network(sliced_file), sliced_file)


@pytest.mark.parametrize("args", [
    ["eval"],
    ["verilog", "--out", "{tmp}/a.v"],
    ["verilog", "--weights", "{sliced}", "--out", "{tmp}/a.v"],
    pytest.param(["verilog", "--weights", shipped("online-400-200-10.npz"), "--out", "{tmp}/a.v"],
                 marks=pytest.mark.slow),  # 20 s: the default suite's budget
    ["verilog", "--weights", shipped("lenet5-2-2-1-4.npz"), "--positions", "4", "--out", "{tmp}/a.v"],
    ["cost", "--out", "{tmp}/c", "--json"],
    ["export", "--out", "{tmp}/m.onnx"],
], ids=["eval", "verilog", "verilog-sliced", "verilog-online", "verilog-cnn", "cost", "export"])
def test_each_command_reads_its_weights_file_once(tmp_path, reads, sliced_file, args):
    if args[0] == "export":
        pytest.importorskip("onnx")
    argv = [str(a).replace("{tmp}", str(tmp_path)).replace("{sliced}", sliced_file) for a in args]
    main(argv)
    weights = [p for p in reads if p.endswith(".npz") and str(tmp_path) not in p]
    given = argv[argv.index("--weights") + 1] if "--weights" in argv else str(shipped())
    assert weights == [given]
