"""The CLI: one clear error line for every bad input, never a traceback; outputs are kept."""

import json

import pytest

from rrambnn.gen.network import random_network
from conftest import one_error_line, rr


@pytest.fixture
def bad_weights(tmp_path):
    p = tmp_path / "bad.npz"
    p.write_bytes(b"PK\x03\x04 broken")
    return p


def test_eval_shipped_json():
    r = rr("eval", "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["arch"] == "400-128-128-10" and res["images"] == 10000
    assert res["accuracy"]["argmax"] > 0.95


def test_eval_errors(tmp_path, bad_weights):
    one_error_line(rr("eval", "--weights", str(bad_weights)), "not a readable .npz weights file")
    one_error_line(rr("eval", "--weights", str(tmp_path / "none.npz")), "weights file not found")
    one_error_line(rr("eval", "--data", str(tmp_path / "nodata")), "MNIST directory not found (looked in --data:")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "t10k-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b\x08\x00junk")
    one_error_line(rr("eval", "--data", str(tmp_path / "d")), "t10k-images-idx3-ubyte.gz: cannot read")


def test_train_errors_keep_existing_output(tmp_path):
    out = tmp_path / "keep.npz"
    out.write_bytes(b"precious")
    one_error_line(rr("train", "--arch", "400-12-x", "--out", str(out)), "Architecture must look like")
    one_error_line(rr("train", "--arch", "300-10", "--out", str(out)), "does not match crop 20x20")
    one_error_line(rr("train", "--epochs", "0", "--out", str(out)), "argument --epochs: must be a whole number from 1 to 10,000, not 0")
    one_error_line(rr("train", "--out", str(tmp_path / "w.txt")), "--out must name a .npz file")
    one_error_line(rr("train", "--out", str(out), "--data", str(tmp_path)), "MNIST file train-images-idx3-ubyte")
    assert out.read_bytes() == b"precious"


@pytest.fixture(scope="module")
def small_weights(tmp_path_factory):
    """A small network trained through the CLI (also the end-to-end test of `train`)."""
    out = tmp_path_factory.mktemp("w") / "n.npz"
    r = rr("train", "--arch", "144-16-10", "--crop", "12", "--epochs", "2", "--out", str(out),
           "--quiet", "--json")
    assert r.returncode == 0, r.stderr
    return out, json.loads(r.stdout)


def test_train_small_end_to_end(small_weights):
    out, res = small_weights
    assert res["accuracy"]["argmax"] > 0.5
    r = rr("eval", "--weights", str(out), "--json")
    assert json.loads(r.stdout)["accuracy"] == pytest.approx(res["accuracy"])


def test_program_command(small_weights):
    out, _ = small_weights
    r = rr("program", "--weights", str(out), "--yield", "0.95", "--pulse-fail", "0.2", "--endurance", "3",
           "--retries", "2", "--seed", "4", "--images", "300", "--tile", "64x16", "--initial", "random", "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    rep = json.loads(r.stdout)
    assert rep["passed"] and rep["hardware"] == rep["golden"] and rep["failed_cells_match"]
    assert rep["golden"]["cells_failed"] > 0 and rep["read_back"]["cell_mismatches"] == 0
    assert rep["classification"]["mismatches"] == 0 and rep["classification"]["images"] == 300


def test_program_errors(small_weights, tmp_path):
    out, _ = small_weights
    one_error_line(rr("program", "--weights", str(out), "--yield", "1.2"), "argument --yield: must be a number from 0 to 1")
    one_error_line(rr("program", "--weights", str(out), "--retries", "-1"), "argument --retries: must be a whole number from 0 to 255")
    one_error_line(rr("program", "--weights", str(out), "--faults", str(tmp_path / "nope.npz")), "not a fault-map file")
    one_error_line(rr("program", "--weights", str(out), "--initial", "zeros"), "Initial array state must be hrs, random or weights")


@pytest.mark.slow  # the default suite's budget
def test_sweep_yield_command(small_weights, tmp_path):
    out, _ = small_weights
    r = rr("sweep", "yield", "--weights", str(out), "--yields", "1.0,0.9,0.7", "--seeds", "2",
           "--spot-checks", "1", "--spot-images", "200", "--out", str(tmp_path / "sw"), "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout)
    acc = {e["yield"]: e["argmax"]["mean"] for e in res["summary"]}
    assert acc[1.0] > acc[0.7] and res["spot_checks"][0]["passed"] and res["spot_checks"][0]["mismatches"] == 0
    assert (tmp_path / "sw" / "yield.png").stat().st_size > 10000 and (tmp_path / "sw" / "yield.md").exists()
    one_error_line(rr("sweep", "yield", "--yields", "1.0,abc"), "--yields must be a comma-separated list")
    one_error_line(rr("sweep", "noise"), "rrambnn sweep knows yield, bits, endurance, cnn-bits and variation, not 'noise'")


def test_verilog_command(tmp_path, bad_weights):
    out = tmp_path / "chip.v"
    r = rr("verilog", "--out", str(out), "--tile", "64x64", "--pipeline", "--output", "argmax")
    assert r.returncode == 0, r.stderr
    assert "20 crossbar tile(s) of 64x64" in r.stdout and "latency 4" in r.stdout
    text = out.read_text()
    assert text.startswith("// rrambnn inference chip") and "module rrambnn_crossbar" in text
    one_error_line(rr("verilog", "--out", str(out), "--tile", "0x4"), "Tile rows must be an integer from 1 to 1024, not 0")
    one_error_line(rr("verilog", "--out", str(out), "--tile", "abc"), "Tile size must look like 128x128")
    one_error_line(rr("verilog", "--out", str(out), "--output", "softmax"), "argument --output: invalid choice: 'softmax'")
    one_error_line(rr("verilog", "--out", str(out), "--weights", str(bad_weights)), "not a readable .npz")
    assert out.read_text() == text  # failed runs left the earlier output alone


def test_sim_rejects_bad_image_count():
    one_error_line(rr("sim", "--images", "0"), "--images must be from 1 to 10000, not 0")


def test_sim_raw_network_is_rejected(tmp_path, rng):
    p = tmp_path / "raw.npz"
    random_network("7-3", rng).save(p)
    one_error_line(rr("sim", "--weights", str(p)), "raw-bit inputs")


def test_bench_golden(tmp_path):
    out = tmp_path / "bench.json"
    r = rr("bench", "--images", "20000", "--out", str(out))
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())["golden"]
    assert res["golden_images_per_s"] > 0 and res["float_matmul_images_per_s"] > 0
    assert res["machine"]["cores"] >= 1


def _corrupted_copy(tmp_path):
    """The shipped weights with 64 bytes of compressed data zeroed: a bad CRC inside an entry."""
    from rrambnn.weights import shipped
    b = bytearray(shipped().read_bytes())
    b[len(b) // 2:len(b) // 2 + 64] = bytes(64)
    p = tmp_path / "corrupt.npz"
    p.write_bytes(bytes(b))
    return p


@pytest.mark.parametrize("args, text", [
    (["train", "--seed", "-1", "--out", "{tmp}/a.npz"], "argument --seed: must be a whole number from 0 to 4,294,967,295, not -1"),
    (["train", "--arch", "400-100000000-10", "--out", "{tmp}/a.npz"], "Architecture layers hold at most"),
    (["train", "--out", ""], "--out must name a .npz file, not ''"),
    (["train", "--out", "/proc/rrambnn/a.npz"], "cannot write there"),
    (["verilog", "--tile", "128x1", "--out", "{tmp}/x.v"], "the design is too large for the generator"),
    (["verilog", "--weights", "{corrupt}", "--out", "{tmp}/x.v"], "Bad CRC-32"),
    (["eval", "--weights", ""], "the weights file name is empty"),
    (["eval", "--bogus"], "unrecognized arguments: --bogus"),
    (["train"], "the following arguments are required: --out"),
    (["sweep", "yield", "--retries", "-1", "--out", "{tmp}/s"], "argument --retries: must be a whole number from 0 to 255"),
    (["sweep", "yield", "--retries", "1000000", "--out", "{tmp}/s"], "argument --retries: must be a whole number from 0 to 255"),
    (["sweep", "bits", "--values", "2.5", "--out", "{tmp}/s"], "comma-separated list of finite whole numbers"),
    (["sweep", "loudness"], "rrambnn sweep knows yield, bits, endurance, cnn-bits and variation, not 'loudness'"),
    (["bench", "--images", "0"], "argument --images: must be a whole number from 1 to 10,000,000"),
    (["online", "--out", "{tmp}/file"], "--out must name a directory, not the file"),
    (["fpga", "--board", "icebreaker", "--baud", "0", "--out", "{tmp}/f"], "--baud must be from 300 to 12,000,000"),
    (["fpga", "--board", "icebreaker", "--variant", "macro", "--lanes", "4", "--out", "{tmp}/f"],
     "--lanes folds the emulation twin; the macro variant has no fold"),
    # arguments are checked before the serial port is opened (this port does not exist)
    (["board", "info", "--port", "{tmp}/no-such-port", "--timeout", "-1"], "--timeout must be from 0 to 3600"),
    (["board", "classify", "--port", "{tmp}/no-such-port", "--weights", "{tmp}/file"], "file"),
    (["board", "classify", "--port", "{tmp}/no-such-port", "--images", "0"], "--images must be from 1"),
])
def test_hostile_inputs_get_one_error_line(tmp_path, args, text):
    (tmp_path / "file").write_text("precious")
    corrupt = _corrupted_copy(tmp_path)
    r = rr(*[a.format(tmp=tmp_path, corrupt=corrupt) for a in args])
    one_error_line(r, text)
    assert r.stderr.startswith(f"rrambnn {args[0]}"), r.stderr
    assert (tmp_path / "file").read_text() == "precious"


def test_command_line_basics():
    r = rr("--version")
    assert r.returncode == 0 and r.stdout.startswith("rrambnn ")
    r = rr()
    assert r.returncode == 0 and "online" in r.stdout and "verilog" in r.stdout
    r = rr("sweep", "yield", "--help")
    assert r.returncode == 0 and "--yields" in r.stdout and "--lr-shift" not in r.stdout
    assert "(default: 5)" in r.stdout  # --seeds


def test_json_is_one_line_printed_last(tmp_path):
    r = rr("eval", "--json")
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.strip().splitlines()) == 1
    assert json.loads(r.stdout.strip().splitlines()[-1])["images"] == 10000


def test_ctrl_c_while_the_command_starts_is_one_line():
    """A KeyboardInterrupt while the command-line modules are still being imported: one line,
    exit status 130 (the entry point catches it before anything else runs)."""
    import subprocess
    import sys
    code = ("import builtins, sys\n"
            "real = builtins.__import__\n"
            "def imp(name, *a, **k):\n"
            "    if name == 'rrambnn.cli':\n"
            "        raise KeyboardInterrupt\n"
            "    return real(name, *a, **k)\n"
            "builtins.__import__ = imp\n"
            "sys.argv = ['rrambnn', 'eval']\n"
            "from rrambnn.__main__ import main\n"
            "main()\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 130 and r.stderr == "rrambnn: interrupted\n", (r.returncode, r.stderr)


def test_output_names_the_system_cannot_take_are_one_line(tmp_path):
    """Over-long names are refused before any work, a file's with room for the temporary sibling
    it is written through; nothing is created."""
    long_dir = tmp_path / ("a" * 300)
    one_error_line(rr("cost", "--out", str(long_dir)), "is 300 bytes long (at most 255)")
    one_error_line(rr("verilog", "--out", str(tmp_path / ("c" * 250))),
                   "is 250 bytes long (at most 243 with room for the temporary file written first)")
    deep = tmp_path / "/".join(["d" * 200] * 25)
    one_error_line(rr("cost", "--out", str(deep)), "bytes long (at most 4,096)")
    assert list(tmp_path.iterdir()) == []


def test_a_run_writes_its_whole_set_or_leaves_the_earlier_one(tmp_path):
    """A sweep whose plot path is taken by a directory: one line, exit 2, and the earlier run's
    table and JSON untouched (the files of a run are one OutputSet)."""
    out = tmp_path / "sweep"
    r = rr("sweep", "yield", "--yields", "1.0", "--seeds", "1", "--spot-checks", "0", "--out", str(out))
    assert r.returncode == 0, r.stderr
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    (out / "yield.png").unlink()
    (out / "yield.png").mkdir()
    one_error_line(rr("sweep", "yield", "--yields", "0.9", "--seeds", "1", "--spot-checks", "0", "--out", str(out)),
                   "a directory is in the way of this output file")
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert after == {k: v for k, v in before.items() if k != "yield.png"}
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_an_output_set_replaces_all_or_nothing(tmp_path):
    from rrambnn.fileio import OutputSet, write_text
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    write_text(a, "old a")
    write_text(b, "old b")
    with pytest.raises(RuntimeError):
        with OutputSet():
            write_text(a, "new a")
            assert a.read_text() == "old a"  # staged, not yet in place
            raise RuntimeError("the plot failed")
    assert a.read_text() == "old a" and b.read_text() == "old b" and sorted(tmp_path.iterdir()) == [a, b]
    with OutputSet():
        write_text(a, "new a")
        write_text(b, "new b")
    assert a.read_text() == "new a" and b.read_text() == "new b"


def test_an_error_after_a_progress_bar_starts_its_own_line():
    """A run that fails with a progress bar open: the bar is closed first, so the error line is a
    line of its own, not glued behind the bar's carriage return."""
    import subprocess
    import sys
    code = ("import argparse, sys\n"
            "import rrambnn.cli as cli\n"
            "from tqdm import tqdm\n"
            "from rrambnn.errors import RrambnnError\n"
            "bars = []\n"
            "def boom(args):\n"
            "    bars.append(tqdm(total=10, desc='work'))  # held open, as a run's loop holds its bar\n"
            "    bars[0].update(3)\n"
            "    raise RrambnnError('the data ran out')\n"
            "p = cli.build_parser()\n"
            "p.parse_known_args = lambda argv=None: (argparse.Namespace(cmd='eval', fn=boom), [])\n"
            "cli.build_parser = lambda: p\n"
            "cli.main()\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.split("\n")[-2] == "rrambnn eval: error: the data ran out", r.stderr


def test_a_failed_run_prints_no_warning_before_its_error_line_and_a_good_one_keeps_them():
    import subprocess
    import sys
    code = ("import argparse, sys, warnings\n"
            "import rrambnn.cli as cli\n"
            "from rrambnn.errors import RrambnnError\n"
            "def run(args):\n"
            "    warnings.warn('overflow in the ramp', RuntimeWarning)\n"
            "    if args.fail:\n"
            "        raise RrambnnError('the data ran out')\n"
            "p = cli.build_parser()\n"
            "fail = sys.argv[1] == 'fail'\n"
            "p.parse_known_args = lambda argv=None: (argparse.Namespace(cmd='eval', fn=run, fail=fail), [])\n"
            "cli.build_parser = lambda: p\n"
            "cli.main()\n")
    bad = subprocess.run([sys.executable, "-c", code, "fail"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr == "rrambnn eval: error: the data ran out\n", bad.stderr
    good = subprocess.run([sys.executable, "-c", code, "ok"], capture_output=True, text=True)
    assert good.returncode == 0 and "RuntimeWarning: overflow in the ramp" in good.stderr, good.stderr


@pytest.mark.parametrize("command, old, new, dest", [
    (["online"], "--bits", "--wbits", "wbits"),
    (["online"], "--act-bits", "--abits", "abits"),
    (["sweep", "bits"], "--bits", "--wbits", "wbits"),
    (["verilog", "--out", "x.v"], "--weight-bits", "--update-bits", "update_bits"),
    (["verilog", "--out", "x.v"], "--err-bits", "--step-bits", "step_bits"),
    (["cost"], "--weight-bits", "--update-bits", "update_bits"),
    (["sweep", "cnn-bits"], "--bits", "--values", "bits"),
    (["fpga", "--board", "icebreaker"], "--variant periphery", "--variant macro", "variant"),
])
def test_earlier_flag_spellings_still_work_and_help_shows_one_name(command, old, new, dest):
    """One name per concept (wbits/abits for precision, update bits and step bits for the weight-update
    controller); the earlier spellings stay as hidden aliases for scripts."""
    from rrambnn.cli import build_parser
    parser = build_parser()
    value = "4/4/4/4" if command[-1] == "cnn-bits" else "4"
    old_args, new_args = ([*command, *old.split()], [*command, *new.split()]) if " " in old else \
        ([*command, old, value], [*command, new, value])
    assert getattr(parser.parse_args(old_args), dest) == getattr(parser.parse_args(new_args), dest)
    help_text = " ".join(rr(*command[:2 if command[0] == "sweep" else 1], "--help").stdout.split())
    if " " in old:  # a value renamed: help names the new one and says the old still works
        assert "{emulation,macro}" in help_text and "was called periphery; that name still works" in help_text
    else:
        assert new in help_text and old + " " not in help_text


@pytest.mark.parametrize("args, message", [
    (["train", "--epochs", "99999999999999999999999"], "argument --epochs: must be a whole number of at most 2^62"),
    (["train", "--batch", "99999999"], "argument --batch: must be a whole number from 1 to 60,000"),
    (["online", "--epochs", "99999999999"], "argument --epochs: must be a whole number from 1 to 10,000"),
    (["online", "--pulse-fail", "nan"], "argument --pulse-fail: must be a finite number, not 'nan'"),
    (["program", "--yield", "1.5"], "argument --yield: must be a number from 0 to 1, not 1.5"),
    (["eval", "--chips", "3"], "--chips goes with --device"),
    (["eval", "--calibration", "0"], "--calibration goes with --device"),
    (["verilog", "--out", "x.v", "--output="], "argument --output: invalid choice: ''"),
    (["cost", "--arch", "16-4-2", "--wbits", "0"], "--wbits must be from 1 to 8, not 0"),
    (["sweep", "yield", "--yields=0.9,,0"], "--yields must be a comma-separated list of numbers, not '0.9,,0'"),
    (["sweep", "yield", "--spot-checks=-1"], "argument --spot-checks: must be a whole number from 0 to 1,000"),
    (["sweep", "yield", "--spot-images", "0"], "argument --spot-images: must be a whole number from 1 to 10,000"),
    (["sweep", "yield", "--pulse-fail=-1"], "argument --pulse-fail: must be a number from 0 to 1"),
    (["sweep", "bits", "--values=2,nan"], "--values must be a comma-separated list of finite whole numbers"),
    (["sweep", "variation", "--variation="], "--variation gives no values"),
    (["explore", "--axis", "hidden="], "--axis 'hidden=' gives no values"),
    (["bench", "--boards", "icebreaker"], "--boards goes with --fpga"),
    (["bench", "--fpga", "--boards", ""], "unknown board ''"),  # not the defaults (two builds)
    (["bench", "--hardware", "--sim-images=-1"], "argument --sim-images: must be a whole number from 1 to 10,000"),
    (["sweep", "endurance", "--values="], "--values must be a comma-separated list of whole numbers, not ''"),
    (["sim", "--seed=-1"], "argument --seed: must be a whole number from 0 to 4,294,967,295, not -1"),
    (["program", "--positions", "2"], "--positions applies to CNN chips"),
    (["run", "--positions=0"], "argument --positions: must be a whole number from 1 to 4,096, not 0"),
])
def test_hostile_numbers_and_flags_are_refused_up_front(tmp_path, args, message):
    """Round three of hostile input (an outside battery): huge, NaN and out-of-range numbers, empty
    list elements and flags that do nothing without another are one line before any work."""
    one_error_line(rr(*args, cwd=tmp_path), message)


def test_a_special_file_is_never_replaced_by_an_output(tmp_path):
    """An output path naming a FIFO (or a device such as /dev/full) is refused; before, the result
    was renamed over it."""
    import os
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    one_error_line(rr("verilog", "--out", str(fifo)), "must name a regular file, not the special file")
    assert fifo.is_fifo()
