"""No import circles in bench/ or runners/: read from the source (every import, at the top or inside a
function, since an import moved into a function still ties the two modules), not from sys.modules.
Only an import under `if TYPE_CHECKING:` is left out: it never runs."""

import ast
from pathlib import Path

from tests.conftest import ROOT


def module_files(root: Path) -> dict[str, Path]:
    found = {}
    for top in ("bench", "runners"):
        for path in (root / top).rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The modules of ours that `name` imports: `from bench import x` counts as bench.x when x is a module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in executed(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base] * bool(base))
            targets = [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def executed(tree: ast.AST):
    """Every node of the tree but those under `if TYPE_CHECKING:`."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in [child, *executed(child)])
            continue
        yield node
        yield from executed(node)


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while (w := stack.pop()) != v:
                component.append(w)
            if component:
                found.append(sorted([v, *component]))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    known = module_files(root)
    return {name: imports_of(name, path, known) for name, path in known.items()}


def test_bench_and_runners_import_no_module_in_a_circle():
    assert circles(import_graph(ROOT)) == []


def test_a_circle_through_a_third_module_is_found(tmp_path):
    """The check itself: a -> b -> c -> a, one link inside a function, is a circle; d <-> e, one way for
    annotations only, is none."""
    (tmp_path / "bench").mkdir()
    (tmp_path / "runners").mkdir()
    (tmp_path / "bench" / "__init__.py").write_text("")
    (tmp_path / "runners" / "__init__.py").write_text("")
    (tmp_path / "bench" / "a.py").write_text("from bench import b\n")
    (tmp_path / "bench" / "b.py").write_text("import runners.c\n")
    (tmp_path / "runners" / "c.py").write_text("def f():\n    from bench.a import x\n")
    (tmp_path / "bench" / "d.py").write_text("from bench import a, e\n")  # e imports d for its types only
    (tmp_path / "bench" / "e.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from bench import d\n")
    assert circles(import_graph(tmp_path)) == [["bench.a", "bench.b", "runners.c"]]
