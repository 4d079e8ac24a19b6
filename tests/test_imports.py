"""Packages import in one direction: tissuenet <- baselines <- benchmarks -> reports; tissuebench knows all.

Parses every module (lazy imports inside functions included) and fails on any circle between packages or
between the modules of one package, and on a crowded folder or a long module.
"""

import ast
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGES = ("tissuenet", "baselines", "benchmarks", "reports", "tissuebench")
ALLOWED = {
    "tissuenet": set(),
    "baselines": {"tissuenet"},
    "benchmarks": {"tissuenet", "baselines"},
    "reports": {"tissuenet", "baselines", "benchmarks"},
    "tissuebench": {"tissuenet", "baselines", "benchmarks", "reports"},
}
# what the method package may import besides the standard library (triton only inside its CUDA kernel)
TISSUENET_THIRD_PARTY = {"torch", "triton"}
# the one exception: `torchvision:NAME` / `timm:NAME` backbones, imported lazily when such a name is built
EXTERNAL_BACKBONES = ("tissuenet/models/external.py", {"torchvision", "timm"})


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out


def _graph() -> dict[str, set[str]]:
    graph = {p: set() for p in PACKAGES}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            graph[package] |= (_imports(path) & set(PACKAGES)) - {package}
    return graph


def _circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of ``graph`` (its nodes in order, the first repeated at the end), or None."""
    seen, stack = set(), []

    def visit(node):
        if node in stack:
            return stack[stack.index(node) :] + [node]
        if node in seen:
            return None
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            found = visit(nxt)
            if found:
                return found
        stack.pop()
        seen.add(node)
        return None

    for node in sorted(graph):
        found = visit(node)
        if found:
            return found
    return None


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _module_graph(package: str) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports (``from a.b import c``: the module a.b.c if there
    is one, else a.b); a package's ``__init__`` is not counted as imported by its own modules."""
    modules = {_module_name(p): p for p in (REPO / package).rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for target in targets:
                parts = target.split(".")
                hit = next(
                    (".".join(parts[:i]) for i in range(len(parts), 0, -1) if ".".join(parts[:i]) in modules), None
                )
                if hit and hit != name and not name.startswith(hit + "."):
                    found.add(hit)
        graph[name] = found
    return graph


@pytest.mark.parametrize("package", PACKAGES)
def test_no_circle_between_modules(package):
    """Lazy imports count: an import inside a function that closes a circle still ties the two modules."""
    circle = _circle(_module_graph(package))
    assert circle is None, "import circle: " + " -> ".join(circle)


@pytest.mark.parametrize("package", PACKAGES)
def test_rooms_stay_small(package):
    """At most 12 modules side by side in a folder, no module over 400 lines."""
    for folder in {p.parent for p in (REPO / package).rglob("*.py")}:
        modules = [p.name for p in folder.glob("*.py") if p.name != "__init__.py"]
        assert len(modules) <= 12, f"{folder.relative_to(REPO)}: {len(modules)} modules side by side"
    for path in (REPO / package).rglob("*.py"):
        lines = len(path.read_text().splitlines())
        assert lines <= 400, f"{path.relative_to(REPO)}: {lines} lines"


def test_no_package_level_circle():
    graph = _graph()
    seen, stack = set(), []

    def visit(node):
        if node in stack:
            raise AssertionError(f"import circle: {' -> '.join(stack[stack.index(node) :] + [node])}")
        if node in seen:
            return
        stack.append(node)
        for nxt in sorted(graph[node]):
            visit(nxt)
        stack.pop()
        seen.add(node)

    for package in PACKAGES:
        visit(package)


def test_dependencies_run_one_way():
    graph = _graph()
    for package, deps in graph.items():
        assert deps <= ALLOWED[package], f"{package} imports {sorted(deps - ALLOWED[package])}"


def test_tissuenet_imports_only_torch():
    stdlib = set(sys.stdlib_module_names)
    for path in (REPO / "tissuenet").rglob("*.py"):
        third_party = _imports(path) - stdlib - {"tissuenet", "__future__"}
        if str(path.relative_to(REPO)) == EXTERNAL_BACKBONES[0]:
            third_party -= EXTERNAL_BACKBONES[1]
        assert third_party <= TISSUENET_THIRD_PARTY, f"{path.relative_to(REPO)} imports {sorted(third_party)}"


def test_a_circle_would_be_caught(tmp_path, monkeypatch):
    """The checker itself: a planted back-edge is reported."""
    graph = {"a": {"b"}, "b": {"a"}}
    monkeypatch.setattr(sys.modules[__name__], "_graph", lambda: graph)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGES", ("a", "b"))
    try:
        test_no_package_level_circle()
    except AssertionError as exc:
        assert "a -> b -> a" in str(exc)
    else:
        raise AssertionError("a planted circle was not found")


def test_a_module_circle_would_be_caught(tmp_path, monkeypatch):
    """A planted lazy import that closes a circle between two modules is reported."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.b import thing\n")
    (package / "b.py").write_text("def thing():\n    from pkg import a\n")
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    assert _circle(_module_graph("pkg")) in (["pkg.a", "pkg.b", "pkg.a"], ["pkg.b", "pkg.a", "pkg.b"])
