"""Packages import in one direction: tissuenet <- baselines <- benchmarks -> reports; tissuebench knows all.

Parses every module (lazy imports inside functions included) and fails on any package-level circle.
"""

import ast
import sys
from pathlib import Path

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
