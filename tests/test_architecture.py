"""Imports point down: ``chat2sql`` → ``schemas`` → ``samples`` → ``inference`` → ``bot`` →
``evals`` → ``deploy`` → ``bench`` (``migrations`` on top: Alembic's command line maps every
table), and no module imports itself back through others (a cycle). The walk reads every
module's imports from its syntax tree (functions' imports included; ``if TYPE_CHECKING:`` ones
are not imports at run time), so a new cycle or upward import fails here, not in review.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("chat2sql", "schemas", "samples", "inference", "bot", "evals", "deploy", "bench", "migrations")


def _modules() -> dict[str, Path]:
    found = {}
    for layer in LAYERS:
        for path in (ROOT / layer).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _imported(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    typing_only = {
        id(child)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for stmt in node.body
        for child in ast.walk(stmt)
    }
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:  # `from pkg import submodule` depends on the submodule only
                targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    resolved = set()
    for target in targets:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target and target != name:
            resolved.add(target)
    return resolved


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imported(name, path, modules) for name, path in modules.items()}


def _layer(module: str) -> int:
    return LAYERS.index(module.split(".")[0])


def _cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_imports_only_point_down() -> None:
    graph = _graph()
    upward = {(a, b) for a, deps in graph.items() for b in deps if _layer(b) > _layer(a)}
    assert upward == set(), "imports against " + " → ".join(LAYERS)


def test_no_import_cycles() -> None:
    assert _cycles(_graph()) == []


def test_the_walk_sees_what_it_should() -> None:
    """The checker itself: a function's import counts, a TYPE_CHECKING one does not."""
    graph = _graph()
    assert "bot.core.admin" in graph["bot.core.assistant"]  # imported inside a method
    assert "bot.core.assistant" not in graph["bot.core.admin"]  # only for type checking
    assert "bot.slack.app" in graph["bot.wiring"] and "bot.slack.app" not in graph["bot.server"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [frozenset({"a", "b", "c"})]


def test_help_names_every_admin_command() -> None:
    import re

    from chat2sql import messages

    def commands(text: str) -> set[str]:
        return {" ".join(m.split()[:2]) for m in re.findall(r"`(admin [a-z]+(?: [a-z]+)?)", text)}

    usage, shown = commands(messages.ADMIN_USAGE), commands(messages.HELP)
    assert {"admin register", "admin example", "admin glossary"} <= usage <= shown, usage - shown


ADAPTERS = ("bot.slack", "bot.teams", "bot.platform", "bot.server", "bot.mcp_server", "bot.console")


def test_no_adapter_reaches_past_the_core() -> None:
    """Platforms, the MCP server and the console call the core's async methods: none reads the
    assistant's store or registry (blocking database work the core keeps off the loop)."""
    reached = []
    for name, path in _modules().items():
        if not name.startswith(ADAPTERS):
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in {"store", "registry"}
                and ast.unparse(node.value).endswith("assistant")
            ):
                reached.append(f"{name}:{node.lineno} {ast.unparse(node)}")
    assert reached == []


def test_the_measuring_commands_only_alias_the_harness() -> None:
    """``python -m inference.eval`` (and its two siblings) keep their names; each module only
    hands over to ``evals`` by name, so nothing in ``inference`` depends on the harness."""
    graph = _graph()
    for alias, target in (("eval", "harness"), ("eval_compare", "compare"), ("eval_samples", "samples")):
        path = ROOT / "inference" / f"{alias}.py"
        assert graph[f"inference.{alias}"] == set()
        assert f'runpy.run_module("evals.{target}", run_name="__main__"' in path.read_text()
        assert f"evals.{target}" in graph
