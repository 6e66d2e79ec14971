"""No import cycle among digest's modules. Imports made only for type checking are left out:
they name a type and run nothing (the backends and sources name their config models that way,
because loading the config looks their names and secrets up in the registries)."""

from __future__ import annotations

import pytest

grimp = pytest.importorskip("grimp", reason="grimp comes with import-linter (make lint)")


def import_cycles(package: str) -> list[list[str]]:
    """The groups of modules that import each other, directly or through others (Tarjan)."""
    graph = grimp.build_graph(package, exclude_type_checking_imports=True)
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        order[module] = low[module] = len(order)
        stack.append(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in order:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], order[imported])
        if low[module] == order[module]:
            group = stack[stack.index(module) :]
            del stack[stack.index(module) :]
            if len(group) > 1:
                cycles.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in order:
            visit(module)
    return cycles


def test_digest_has_no_import_cycle() -> None:
    assert import_cycles("digest") == []


def test_the_check_finds_a_cycle(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "loop"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from loop import b\n")
    (package / "b.py").write_text("def f():\n    from loop import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_cycles("loop") == [["loop.a", "loop.b"]]
