"""The first-party import graph (scripts/import_graph.py) has no cycles and its arrows point down the
stages, except the one deliberate plug-in; an import hidden inside a function still counts."""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

_SPEC = importlib.util.spec_from_file_location(
    "import_graph", Path(__file__).resolve().parents[1] / "scripts" / "import_graph.py"
)
graph_tool = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(graph_tool)


def test_no_module_cycles():
    graph, _ = graph_tool.build_graph()
    assert graph_tool.cycles(graph) == []


def test_no_package_cycles_and_one_upward_arrow_at_most():
    graph, _ = graph_tool.build_graph()
    assert graph_tool.cycles(graph_tool.package_graph(graph)) == []
    dynamic = graph_tool.dynamic_references()
    both = {m: graph[m] | dynamic.get(m, set()) for m in graph}
    assert set(graph_tool.package_graph(both)) <= set(graph_tool.LAYERS), "add new packages to LAYERS"
    assert graph_tool.upward_arrows(both) <= graph_tool.ALLOWED_UPWARD
    assert len(graph_tool.ALLOWED_UPWARD) <= 1


def test_the_checker_sees_a_cycle_hidden_in_a_function(tmp_path):
    """A planted two-module cycle, one side importing inside a function, is found; TYPE_CHECKING is not."""
    pkg = tmp_path / "handsynth"
    (pkg / "a").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a" / "__init__.py").write_text("")
    (pkg / "a" / "x.py").write_text("from handsynth.a.y import f\n")
    (pkg / "a" / "y.py").write_text(
        textwrap.dedent(
            """
            from typing import TYPE_CHECKING
            if TYPE_CHECKING:
                from handsynth.a.z import T
            def f():
                from handsynth.a import x
            """
        )
    )
    (pkg / "a" / "z.py").write_text("from handsynth.a.y import f\n")
    graph, in_functions = graph_tool.build_graph(tmp_path)
    assert graph_tool.cycles(graph) == [["handsynth.a.x", "handsynth.a.y"]]
    assert in_functions == 1
    assert "handsynth.a.z" not in graph["handsynth.a.y"]
