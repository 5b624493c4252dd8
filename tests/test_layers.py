"""Imports go one way: no import circle, and at most a known few imports back up the layers.

Run as a script to print the counts and the offending imports::

    python tests/test_layers.py
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

try:
    from tests.layer_graph import PACKAGE, import_graph, modules
except ModuleNotFoundError:  # run as a script: python tests/test_layers.py
    from layer_graph import PACKAGE, import_graph, modules

# Lowest first. A module belongs to the longest prefix listed; it may import its own layer
# and the layers before it. docs/architecture.md draws the same order.
LAYERS: list[tuple[str, ...]] = [
    ("instacolor._version", "instacolor.errors"),
    ("instacolor.color", "instacolor.labels"),
    ("instacolor.structures",),
    ("instacolor.models", "instacolor.decode"),
    ("instacolor.weights",),
    (
        "instacolor.io",
        "instacolor.reconstruct",
        "instacolor.propagation",
        "instacolor.hints",
        "instacolor.detection",
        "instacolor.runtime",
        "instacolor.metrics",
        "instacolor.perceptual",
    ),
    ("instacolor.arguments",),
    ("instacolor.colorizer", "instacolor.api", "instacolor"),
    ("instacolor.train", "instacolor.evaluation"),
    ("instacolor.batch", "instacolor.video"),
    ("instacolor.review",),
    ("instacolor.cli", "instacolor.__main__"),
]

# Packages whose public names have one import path: the package.
ONE_PATH_PACKAGES = ("instacolor.weights",)

# Imports allowed to run back up (importer, imported), each with its reason.
UPWARD_BUDGET = 2


def layer_of(name: str) -> int:
    best, rank = -1, None
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), index
    if rank is None:
        raise LookupError(f"{name} is in no layer of tests/test_layers.py: add it to LAYERS")
    return rank


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strong(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in graph:
                continue
            if target not in index:
                strong(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        for node in sorted(graph):
            if node not in index:
                strong(node)
    finally:
        sys.setrecursionlimit(limit)
    return found


def upward_imports(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    return sorted(
        (source, target)
        for source, targets in graph.items()
        for target in targets
        if target in graph and layer_of(target) > layer_of(source)
    )


def test_every_module_has_a_layer():
    for name in modules():
        layer_of(name)


def test_no_import_circle():
    assert circles(import_graph()) == []


def test_imports_run_back_up_the_layers_at_most_a_known_few_times():
    upward = upward_imports(import_graph())
    assert len(upward) <= UPWARD_BUDGET, upward


def test_public_names_of_a_package_are_imported_from_the_package():
    """One import path per name: outside the package, a name its ``__init__`` exports is
    imported from the package, not from the module that defines it."""
    import importlib

    found = []
    for package in ONE_PATH_PACKAGES:
        public = set(importlib.import_module(package).__all__)
        for name, path in modules().items():
            if name == package or name.startswith(package + "."):
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    package + "."
                ):
                    found += [(name, node.module, a.name) for a in node.names if a.name in public]
    assert found == []


# Loaded on first use, not by ``import instacolor`` (docs/architecture.md, import cost).
ON_FIRST_USE = ("torchvision", "pycocotools", "tifffile", "imagecodecs", "sympy")


@pytest.mark.slow
def test_import_instacolor_leaves_the_heavy_packages_for_first_use():
    code = (
        f"import sys, instacolor; print(' '.join(m for m in {ON_FIRST_USE!r} if m in sys.modules))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.split() == []
    code = (
        "import sys, instacolor.detection as d; d.TorchvisionMaskRCNN; "
        "print('torchvision' in sys.modules)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "True"


def test_counting_finds_a_circle_and_an_upward_import():
    graph = {"instacolor.errors": {"instacolor.api"}, "instacolor.api": {"instacolor.errors"}}
    assert circles(graph) == [["instacolor.api", "instacolor.errors"]]
    assert upward_imports(graph) == [("instacolor.errors", "instacolor.api")]


def test_no_test_module_imports_another_test_module():
    """Shared test helpers live in modules without the ``test_`` prefix (``tests/*_helpers.py``,
    ``tests/layer_graph.py``, ...): no module of tests/ imports from a ``tests.test_*`` one."""

    def is_test_module(name: str) -> bool:
        parts = name.split(".")
        return parts[-1].startswith("test_") and parts[:-1] in ([], ["tests"])

    found = []
    for path in sorted(Path(__file__).resolve().parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                module = node.module or ""
                if module in ("", "tests"):  # from . import test_x, from tests import test_x
                    names = [alias.name for alias in node.names]
                else:
                    names = [module]
            else:
                continue
            found += [(path.name, node.lineno, name) for name in names if is_test_module(name)]
    assert found == []


if __name__ == "__main__":
    # another checkout's package folder, or this one's
    package = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else PACKAGE
    graph = import_graph(package)
    found = circles(graph)
    upward = upward_imports(graph)
    print(f"modules {len(graph)}, import circles {len(found)}, upward imports {len(upward)}")
    for component in found:
        print("circle:", " <-> ".join(component))
    for source, target in upward:
        print(f"upward: {source} -> {target}")
