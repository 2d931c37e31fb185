"""Options shared by several commands of the CLI, defined once."""

from __future__ import annotations

import argparse


INT_LIMIT = 1 << 62  # no count, seed or size of this tool comes near it; larger ints overflow numpy


def int_arg(text: str) -> int:
    """An integer option: a whole number of at most 2^62 in magnitude (refused up front, so no
    command later overflows or runs for ever on it)."""
    try:
        v = int(text, 10)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
    if abs(v) > INT_LIMIT:
        raise argparse.ArgumentTypeError(f"must be a whole number of at most 2^62 in magnitude, not {text}")
    return v


def float_arg(text: str) -> float:
    """A number option: finite (NaN and infinities are refused up front)."""
    import math
    try:
        v = float(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"must be a number, not {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be a finite number, not {text!r}")
    return v


def ranged_int(lo: int, hi: int):
    """An integer option from ``lo`` to ``hi`` (refused up front otherwise)."""
    def parse(text: str) -> int:
        v = int_arg(text)
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"must be a whole number from {lo:,} to {hi:,}, not {text}")
        return v
    parse.__name__ = "int"
    return parse


def fraction_arg(text: str) -> float:
    """A probability or fraction option: a number from 0 to 1 (refused up front otherwise)."""
    v = float_arg(text)
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 1, not {text}")
    return v


SEED_LIMIT = 2 ** 32 - 1  # the seeds every generator of the project takes (numpy, the chips' xorshift32)


def seed_arg(text: str) -> int:
    """A seed option: a whole number from 0 to 2^32 - 1."""
    return ranged_int(0, SEED_LIMIT)(text)


MAX_EPOCHS = 10_000  # a run of more epochs is a typo, not a plan (the reference network took 150)
MNIST_TRAIN, MNIST_TEST = 60_000, 10_000


def weights_arg(p: argparse.ArgumentParser, required=False):
    from rrambnn.weights import REFERENCE
    p.add_argument("--weights", metavar="W", required=required,
                   help=f"weights .npz (default: the shipped {REFERENCE})")


def data_arg(p: argparse.ArgumentParser):
    p.add_argument("--data", metavar="DIR",
                   help="MNIST directory (default: $RRAMBNN_MNIST, else ../shared/mnist of the checkout)")


def old_flag(p: argparse.ArgumentParser, flag: str, dest: str, type=None):
    """An earlier spelling of an option, kept working for scripts (hidden from --help and the
    reference: one name per concept)."""
    p.add_argument(flag, dest=dest, type=type, default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def json_arg(p: argparse.ArgumentParser):
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def device_args(p: argparse.ArgumentParser, *, seed_help: str = "device seed: fault maps and pulse outcomes",
                faults: bool = False):
    """The device model: yield, pulse failures, endurance, write-verify retries, seed."""
    p.add_argument("--yield", dest="yield_", type=fraction_arg, default=1.0,
                   help="bit yield: fraction of healthy cells in every array and plane (default 1.0)")
    p.add_argument("--pulse-fail", type=fraction_arg, default=0.0,
                   help="probability that a SET/RESET pulse fails (default 0)")
    p.add_argument("--endurance", type=ranged_int(0, 2 ** 32 - 1), default=0,
                   help="switches a cell survives before it sticks (0: unlimited; default 0)")
    p.add_argument("--retries", type=ranged_int(0, 255), default=3,
                   help="write-verify retries after the first pulse (default 3)")
    p.add_argument("--seed", type=seed_arg, default=0, help=f"{seed_help} (default 0)")
    if faults:
        p.add_argument("--faults", help="measured fault map (.npz with fault0.. codes 0 ok, 1 stuck HRS, "
                                        "2 stuck LRS)")


def chip_args(p: argparse.ArgumentParser, debug=True):
    p.add_argument("--tile", default="128x128", help="crossbar tile size ROWSxCOLS (default 128x128)")
    p.add_argument("--pipeline", action="store_true", help="register every layer (latency layers+1)")
    p.add_argument("--output", default=None, choices=("priority", "argmax"),
                   help="output stage: priority|argmax (default: the weights file's)")
    p.add_argument("--positions", type=ranged_int(1, 4096), default=None,
                   help="CNN chips: output columns each convolution computes per step, i.e. copies of its kernel "
                        "tiles (1 = time-multiplexed; default 1)")
    if debug:
        p.add_argument("--debug", action="store_true",
                       help="add every layer's activations and the last column sums to the result payload")


def print_json(result) -> None:
    """``--json``: the result as one line of JSON, printed last (``tail -1`` gets all of it)."""
    from rrambnn.fileio import json_text
    print(json_text(result, separators=(", ", ": "), default=str))


def emit(args, result: dict, lines: list[str]):
    """The result as JSON (``--json``) or as lines of text."""
    if getattr(args, "json", False):
        print_json(result)
    else:
        print("\n".join(lines))


class DefaultsFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default (unless the help already says it)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if (action.option_strings and action.default is not None and action.default is not False
                and action.default != argparse.SUPPRESS and "default" not in text):
            text += (" " if text else "") + "(default: %(default)s)"
        return text


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, ``rrambnn CMD: error: ...`` (exit 2), like
    every other error of the command line; ``--help`` shows every option with its default."""

    def __init__(self, *args, **kw):
        kw.setdefault("formatter_class", DefaultsFormatter)
        super().__init__(*args, **kw)

    invalid_choice: str | None = None  # how this command words a bad positional choice ({value!r})

    def error(self, message):
        import re
        import sys
        m = re.match(r"argument \S+: invalid choice: '(.*)' \(choose from", message)
        if m and self.invalid_choice:
            message = self.invalid_choice.format(value=m.group(1))
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)
