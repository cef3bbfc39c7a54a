"""The first-party import graph of ``src/handsynth``: module cycles and package arrows.

    python scripts/import_graph.py            # summary: cycles, package arrows, imports inside functions

Read from the source (``ast``), so nothing is imported. An import under ``if TYPE_CHECKING:`` is not an
edge (it never runs); every other import is, wherever it sits, so an import moved into a function cannot
hide a cycle. ``tests/test_import_graph.py`` asserts what this prints.
"""

from __future__ import annotations

import ast
import re
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "handsynth"
# Stages from the bottom up: a package may import the ones below it. Leaves first, the commands last,
# then the package's own lazy public face (handsynth/__init__.py).
LAYERS = (
    "errors", "atomic", "lazy", "cli_args", "cli_common", "progress", "save_clock", "runtime", "pinhole", "viz", "data", "config", "objects", "hand", "poses", "render", "text", "importers", "diffusion", "methods", "generate",
    "eval", "recon", "world", "micro", "demo", "cli", "handsynth",
)  # fmt: skip
# Arrows that deliberately run back up: eval's 3D estimator plug-in loads a handsynth.recon checkpoint.
ALLOWED_UPWARD = {("eval", "recon")}
_REF = re.compile(rf"^{PACKAGE}(\.\w+)+(:\w+)?$")


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str, is_package: bool) -> list[tuple[list[str], bool]]:
    """(candidate module names, most specific first; inside a function?) for every runtime import."""
    found: list[tuple[list[str], bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for sub in child.orelse:
                    visit_stmt(sub, in_function)
                continue
            visit_stmt(child, in_function)

    def visit_stmt(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, ast.Import):
            found.extend(([a.name], in_function) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # ``from pkg import sub`` imports the submodule pkg.sub when there is one, else a name of pkg
            found.extend(([f"{target}.{a.name}", target], in_function) for a in node.names)
        inner = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        visit(node, inner)

    visit(tree, False)
    return [(c, f) for c, f in found if c[-1] == PACKAGE or c[-1].startswith(PACKAGE + ".")]


def dynamic_references(root: Path = ROOT) -> dict[str, set[str]]:
    """module -> first-party modules it names in a ``"handsynth.x.y"`` / ``"handsynth.x.y:attr"`` string
    (``importlib`` plug-ins, registries): not imports, but arrows all the same."""
    files = {module_name(p, root): p for p in sorted((root / PACKAGE).rglob("*.py"))}
    out: dict[str, set[str]] = {m: set() for m in files}
    for mod, path in files.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and _REF.match(node.value):
                target = node.value.split(":")[0]
                while target not in files and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target in files and target != mod:
                    out[mod].add(target)
    return out


def upward_arrows(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    """(package, package it reaches) for every arrow from a lower layer to a higher one."""
    rank = {name: i for i, name in enumerate(LAYERS)}
    return {
        (a, b)
        for a, targets in package_graph(graph).items()
        for b in targets
        if rank.get(a, len(LAYERS)) < rank.get(b, len(LAYERS))
    }


def build_graph(root: Path = ROOT) -> tuple[dict[str, set[str]], int]:
    """module -> first-party modules it imports at run time; and how many of those sit in functions."""
    files = {module_name(p, root): p for p in sorted((root / PACKAGE).rglob("*.py"))}
    graph: dict[str, set[str]] = {m: set() for m in files}
    top_level: dict[str, set[str]] = {m: set() for m in files}
    for mod, path in files.items():
        tree = ast.parse(path.read_text(), str(path))
        for candidates, in_function in _imports(tree, mod, path.name == "__init__.py"):
            target = next((c for c in candidates if c in files), candidates[-1])
            while target not in files and "." in target:
                target = target.rsplit(".", 1)[0]  # a name imported from a module, not a submodule
            # a module's own parent packages are imported with it anyway: not an edge
            if target in files and target != mod and not mod.startswith(target + "."):
                graph[mod].add(target)
                if not in_function:
                    top_level[mod].add(target)
    in_functions = sum(len(graph[m] - top_level[m]) for m in graph)
    return graph, in_functions


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one member (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def package_of(module: str) -> str:
    """``handsynth.methods.attentionhand.task`` -> ``methods``; top-level modules keep their name.

    A stage's ``cli.py`` (its sub-commands, collected by ``handsynth/cli.py``) belongs to the command
    layer on top, so ``data/cli.py`` (``handsynth prepare``) may run the importers above ``data``."""
    parts = module.split(".")
    if len(parts) > 2 and parts[-1] == "cli":
        return "cli"
    return parts[1] if len(parts) > 1 else parts[0]


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Package -> packages it imports (edges inside one package dropped)."""
    out: dict[str, set[str]] = defaultdict(set)
    for mod, targets in graph.items():
        for t in targets:
            a, b = package_of(mod), package_of(t)
            if a != b:
                out[a].add(b)
    return dict(out)


def main() -> int:
    graph, in_functions = build_graph()
    edges = sum(len(v) for v in graph.values())
    print(f"{len(graph)} modules, {edges} first-party imports ({in_functions} inside functions)")
    mod_cycles = cycles(graph)
    print(f"module cycles: {len(mod_cycles)}")
    for c in mod_cycles:
        print("  " + " <-> ".join(c))
    pkgs = package_graph(graph)
    pkg_cycles = cycles(pkgs)
    print(f"package cycles: {len(pkg_cycles)}")
    for c in pkg_cycles:
        print("  " + " <-> ".join(c))
        members = set(c)
        for mod, targets in sorted(graph.items()):
            for t in sorted(targets):
                if (
                    package_of(mod) in members
                    and package_of(t) in members
                    and package_of(mod) != package_of(t)
                ):
                    print(f"    {mod} -> {t}")
    dynamic = dynamic_references()
    both = {m: graph[m] | dynamic.get(m, set()) for m in graph}
    unlisted = sorted(set(package_graph(both)) - set(LAYERS))
    up = sorted(upward_arrows(both))
    print(f"upward package arrows (imports and module-name strings): {len(up)}")
    for a, b in up:
        print(f"  {a} -> {b}" + ("  (allowed)" if (a, b) in ALLOWED_UPWARD else ""))
    if unlisted:
        print(f"packages missing from LAYERS: {', '.join(unlisted)}")
    bad = mod_cycles or pkg_cycles or unlisted or set(up) - ALLOWED_UPWARD
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
