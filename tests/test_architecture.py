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
    "rrambnn.cli": 5, "rrambnn.cli_args": 5, "rrambnn.cli_hw": 5, "rrambnn.cli_online": 5,
    "rrambnn.cli_fpga": 5, "rrambnn.cli_explore": 5, "rrambnn.__main__": 5, "rrambnn": 0,
}
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
    parts = name.split(".")
    for k in range(len(parts), 0, -1):
        if ".".join(parts[:k]) in LAYERS:
            return LAYERS[".".join(parts[:k])]
    raise KeyError(name)


def imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the rrambnn modules it imports (a ``from pkg import mod`` counts as ``pkg.mod``)."""
    graph = {}
    for name, path in mods.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.startswith("rrambnn"))
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rrambnn"):
                for a in node.names:
                    sub = f"{node.module}.{a.name}"
                    deps.add(sub if sub in mods else node.module)
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
    assert all(layer_of(m) is not None for m in modules())


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


def test_no_private_amaranth_attributes():
    offenders = [f"{m}: {line.strip()}" for m, path in modules().items()
                 for line in path.read_text().splitlines() if "_MustUse" in line or "_MustUse__" in line]
    assert not offenders, offenders


def test_the_checker_finds_a_circle_and_an_upward_import():
    graph = {"rrambnn.gen.a": {"rrambnn.gen.b"}, "rrambnn.gen.b": {"rrambnn.gen.a"}, "rrambnn.hw.c": set()}
    assert cycles(graph) == [["rrambnn.gen.a", "rrambnn.gen.b"]]
    assert layer_of("rrambnn.hw.c") > layer_of("rrambnn.gen.a")
    with pytest.raises(KeyError):
        layer_of("elsewhere.module")


def test_the_board_flow_does_not_use_the_simulation_flow():
    graph = imports(modules())
    bad = [f"{m} imports {d}" for m, deps in graph.items() if m.startswith("rrambnn.fpga")
           for d in deps if d.startswith("rrambnn.sim")]
    assert not bad, bad
