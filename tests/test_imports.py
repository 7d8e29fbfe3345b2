"""The package's import graph, read from the source: no cycles, and no CLI verb reaching into another.

Every import counts, including the ones inside functions (jsontune imports heavy libraries lazily, and a
lazy import cycle is still a cycle: the two modules cannot be understood, or moved, one without the other).
"""

from __future__ import annotations

import ast
from pathlib import Path

import jsontune

PACKAGE = Path(jsontune.__file__).parent


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The jsontune modules `name` imports: `from a.b import c` is a.b.c when c is a module, else a.b."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in modules}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                target = f"{base}.{alias.name}"
                found.add(target if target in modules else base)
    return {m for m in found if m in modules and m != name}


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path [a, b, ..., a], or None (depth-first search with white/grey/black marks)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_lazy_cycle_and_passes_a_tree():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_sees_imports_inside_functions():
    graph = import_graph()
    assert "jsontune.serving.vllm_engine" in graph["jsontune.serving.registry"]  # imported where it is built
    assert "jsontune.serving.base" in graph["jsontune.serving.vllm_engine"]


def test_there_are_no_import_cycles_inside_jsontune():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_a_cli_verb_imports_the_library_and_the_shared_options_only():
    graph = import_graph()
    for name, imported in graph.items():
        if name.startswith("jsontune.cli.") and name != "jsontune.cli.app":
            others = {m for m in imported if m.startswith("jsontune.cli") and m != "jsontune.cli.common"}
            # `data augment` is a subcommand of the `data` group, defined in its own file.
            assert others <= {"jsontune.cli.data_augment"} if name == "jsontune.cli.data" else not others, (
                f"{name} imports {sorted(others)}"
            )


# The layers of DESIGN.md, top first. A module imports from its own layer or the ones below it, never above:
# the CLI drives the jobs, a job drives the Extractor, the Extractor drives the engines, and everything stands
# on the data, prompt and pure modules at the bottom.
LAYERS = (
    ("jsontune.cli",),
    ("jsontune.training", "jsontune.predict", "jsontune.bench", "jsontune.evaluation", "jsontune.review"),
    ("jsontune.extractor", "jsontune"),  # the package's __init__ re-exports the Extractor
    ("jsontune.serving",),
)


def layer_of(module: str) -> int:
    """The index in LAYERS of the layer `module` belongs to; below every listed layer for the rest."""
    for i, prefixes in enumerate(LAYERS):
        if any(module == p or (p != "jsontune" and module.startswith(p + ".")) for p in prefixes):
            return i
    return len(LAYERS)


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{name} (layer {layer_of(name)}) imports {target} (layer {layer_of(target)})"
        for name, imported in graph.items()
        for target in imported
        if layer_of(target) < layer_of(name)
    )


def test_the_layer_check_finds_an_engine_that_imports_a_job():
    graph = {"jsontune.serving.hf_engine": {"jsontune.predict"}, "jsontune.predict": {"jsontune.serving.base"}}
    assert upward_imports(graph) == ["jsontune.serving.hf_engine (layer 3) imports jsontune.predict (layer 1)"]


def test_no_module_imports_from_a_layer_above_it():
    assert not upward_imports(import_graph()), "\n".join(upward_imports(import_graph()))


def test_serving_holds_engines_only():
    engines = {"base", "registry", "hf_engine", "vllm_engine", "ray_engine", "server", "client", "settings"}
    found = {p.stem for p in (PACKAGE / "serving").glob("*.py")} - {"__init__"}
    assert found <= engines, f"serving/ holds more than engines: {sorted(found - engines)}"
