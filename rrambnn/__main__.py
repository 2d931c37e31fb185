"""The ``rrambnn`` command's entry point (also ``python -m rrambnn``): a Ctrl-C from the first
line on, while the command's modules are still being imported included, is one line and exit
status 130, never a traceback (:func:`rrambnn.cli.main` handles it the same way once the
command runs)."""

import sys


def main(argv=None):
    try:
        from rrambnn.cli import main as cli_main
        cli_main(argv)
    except KeyboardInterrupt:
        print("rrambnn: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
