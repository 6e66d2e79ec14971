"""No import cycle among digest's modules, none outgrows its room, and the registries name
exactly what the config accepts."""

from __future__ import annotations

import pytest

from digest.config import DELIVERY_BACKENDS, SOURCE_KINDS
from digest.delivery.registry import BACKENDS
from digest.sources.registry import SOURCE_KINDS as SOURCE_CLASSES

grimp = pytest.importorskip("grimp", reason="grimp comes with import-linter (make lint)")


def import_cycles(package: str) -> list[list[str]]:
    """The groups of modules that import each other, directly or through others (Tarjan)."""
    # No cache: a graph cached by an earlier run could hide a cycle added since.
    graph = grimp.build_graph(package, cache_dir=None)
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


def test_the_registries_name_what_the_config_accepts() -> None:
    # The config lists the names (it may not import the stages); the registries map them to classes.
    assert list(BACKENDS) == list(DELIVERY_BACKENDS)
    assert list(SOURCE_CLASSES) == list(SOURCE_KINDS)
    assert all(cls.name == name for name, cls in BACKENDS.items())
    assert all(cls.kind == name for name, cls in SOURCE_CLASSES.items())


# One room per job: a module that outgrows this, or a class, has taken on a neighbour's work.
MODULE_LINES = 500
CLASS_LINES = 250


def test_no_module_or_class_outgrows_its_room() -> None:
    import ast
    from pathlib import Path

    import digest

    root = Path(digest.__file__).parent
    too_big = []
    for path in sorted(root.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        name = path.relative_to(root.parent).as_posix()
        if len(source.splitlines()) > MODULE_LINES:
            too_big.append(f"{name}: {len(source.splitlines())} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                lines = node.end_lineno - node.lineno + 1
                if lines > CLASS_LINES:
                    too_big.append(f"{name}: class {node.name}: {lines} lines")
    assert too_big == [], f"split these (modules ≤ {MODULE_LINES} lines, classes ≤ {CLASS_LINES}): {too_big}"
