"""The import graph runs one way: base -> model -> hardware -> flows -> studies -> CLI.

Read from the installed layout (every ``import`` and ``from ... import`` in every module,
including imports inside functions), so a late import cannot hide a loop.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

LAYERS = {  # package (or module) -> layer; a module may import its own layer and those below
    "rrambnn.errors": 0, "rrambnn.fileio": 0, "rrambnn.weights": 0,
    "rrambnn.gen": 1,
    "rrambnn.hw": 2,
    "rrambnn.fpga": 3, "rrambnn.sim": 3,
    "rrambnn.studies": 4,
    "rrambnn.__main__": 5,
}  # and every rrambnn.cli* module is the command line (5); the rrambnn package itself is base
NAMES = {0: "base", 1: "model", 2: "hardware", 3: "flows", 4: "studies", 5: "CLI"}


def _package_dirs() -> dict[str, Path]:
    """Where each rrambnn package lives (the distribution maps top-level folders into it)."""
    import importlib
    out = {}
    for pkg in ("rrambnn", "rrambnn.gen", "rrambnn.hw", "rrambnn.sim", "rrambnn.fpga", "rrambnn.studies",
                "rrambnn.weights"):
        out[pkg] = Path(importlib.import_module(pkg).__file__).parent
    return out


def modules() -> dict[str, Path]:
    mods = {}
    for pkg, d in _package_dirs().items():
        for f in sorted(d.glob("*.py")):
            mods[pkg if f.stem == "__init__" else f"{pkg}.{f.stem}"] = f
    return mods


def layer_of(name: str) -> int:
    """The layer of a module; a module no rule places is an error (a new top-level module
    must be given its layer here)."""
    if name == "rrambnn":
        return 0
    if name.startswith("rrambnn.cli"):
        return 5
    parts = name.split(".")
    for k in range(len(parts), 1, -1):
        if ".".join(parts[:k]) in LAYERS:
            return LAYERS[".".join(parts[:k])]
    raise KeyError(name)


def _imported(node, name: str, is_package: bool, mods) -> set[str]:
    """The rrambnn modules one import statement (or ``importlib.import_module("...")`` call)
    names, relative imports resolved."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name.split(".")[0] == "rrambnn"}
    if isinstance(node, ast.ImportFrom):
        if node.level:  # relative: from the module's package, up level - 1 packages
            base = name.split(".") if is_package else name.split(".")[:-1]
            base = base[:len(base) - (node.level - 1)]
            module = ".".join(base + ([node.module] if node.module else []))
        else:
            module = node.module or ""
        if module.split(".")[0] != "rrambnn":
            return set()
        return {f"{module}.{a.name}" if f"{module}.{a.name}" in mods else module for a in node.names}
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "import_module"
            and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
            and node.args[0].value.startswith("rrambnn")):
        return {node.args[0].value}
    return set()


def imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the rrambnn modules it imports (a ``from pkg import mod`` counts as ``pkg.mod``)."""
    graph = {}
    for name, path in mods.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            deps |= _imported(node, name, path.name == "__init__.py", mods)
        graph[name] = {d for d in deps if d != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_every_module_has_a_layer():
    unplaced = []
    for m in modules():
        try:
            layer_of(m)
        except KeyError:
            unplaced.append(m)
    assert not unplaced, unplaced


def test_no_import_goes_up_a_layer():
    graph = imports(modules())
    bad = [f"{m} ({NAMES[layer_of(m)]}) imports {d} ({NAMES[layer_of(d)]})"
           for m, deps in sorted(graph.items()) for d in sorted(deps) if layer_of(d) > layer_of(m)]
    assert not bad, "\n".join(bad)


def test_no_import_circle():
    found = cycles(imports(modules()))
    assert not found, found


def test_nothing_imports_the_command_line():
    graph = imports(modules())
    bad = [f"{m} imports {d}" for m, deps in graph.items() for d in deps
           if layer_of(d) == 5 and layer_of(m) != 5]
    assert not bad, bad
    # the command modules hang below the parser (rrambnn.cli), never the other way round
    assert not [m for m in graph if m.startswith("rrambnn.cli_") and "rrambnn.cli" in graph[m]]


def test_the_model_imports_no_amaranth():
    gen = [m for m in modules() if m.startswith("rrambnn.gen")]
    code = ("import importlib, sys\n"
            f"for m in {gen!r}: importlib.import_module(m)\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'amaranth')\n"
            "print(' '.join(bad))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "", f"importing the model loaded {r.stdout.strip()}"


def test_no_amaranth_import_anywhere_in_the_model():
    """Also imports inside functions, which importing the modules would not run."""
    bad = []
    for m, path in modules().items():
        if layer_of(m) > 1:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            bad += [f"{m}:{node.lineno} {n}" for n in names if n.split(".")[0] == "amaranth"]
    assert not bad, bad


def test_no_private_amaranth_attributes():
    offenders = [f"{m}: {line.strip()}" for m, path in modules().items()
                 for line in path.read_text().splitlines() if "_MustUse" in line or "_MustUse__" in line]
    assert not offenders, offenders


def test_the_checker_finds_a_circle_and_an_upward_import():
    graph = {"rrambnn.gen.a": {"rrambnn.gen.b"}, "rrambnn.gen.b": {"rrambnn.gen.a"}, "rrambnn.hw.c": set()}
    assert cycles(graph) == [["rrambnn.gen.a", "rrambnn.gen.b"]]
    assert layer_of("rrambnn.hw.c") > layer_of("rrambnn.gen.a")
    assert layer_of("rrambnn.cli_new_command") == 5
    with pytest.raises(KeyError):
        layer_of("rrambnn.new_module")


def test_the_checker_reads_relative_and_dynamic_imports():
    mods = {"rrambnn.gen.a": None, "rrambnn.studies.bench": None, "rrambnn.gen": None}
    src = ("from ..studies import bench\nfrom . import a\nimport importlib\n"
           "importlib.import_module('rrambnn.hw.chip')\n")
    found = set()
    for node in ast.walk(ast.parse(src)):
        found |= _imported(node, "rrambnn.gen.x", False, mods)
    assert found == {"rrambnn.studies.bench", "rrambnn.gen.a", "rrambnn.hw.chip"}


def test_the_board_flow_does_not_use_the_simulation_flow():
    graph = imports(modules())
    bad = [f"{m} imports {d}" for m, deps in graph.items() if m.startswith("rrambnn.fpga")
           for d in deps if d.startswith("rrambnn.sim")]
    assert not bad, bad
