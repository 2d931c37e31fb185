"""Sphinx configuration of the rrambnn documentation site (MyST markdown).

Build from the repository root, warnings as errors:

    python -m sphinx -W --keep-going -b html docs/site out/docs-html
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import gen_cli  # noqa: E402

# the command-line reference, generated from rrambnn.cli.build_parser() at every build
gen_cli.write(HERE / "cli.md")

from rrambnn import __version__  # noqa: E402

project = "rrambnn"
release = version = __version__

extensions = ["myst_parser"]
source_suffix = {".md": "markdown"}
root_doc = "index"
# the pages of this folder and nothing else: no file outside docs/site, no subfolder, is parsed
# (the tables and plots under results/ are linked and shown, not parsed)
include_patterns = ["*.md"]
exclude_patterns = ["_build", "**/.*"]

myst_enable_extensions = ["deflist"]
myst_heading_anchors = 3  # [text](page.md#a-heading) links, as on GitHub
highlight_language = "none"  # indented blocks are commands, trees and tables, not Python

html_theme = "alabaster"
html_title = f"rrambnn {release}"
html_theme_options = {"description": "RRAM-crossbar neural-network chips, checked bit for bit",
                      "show_relbars": True}
