"""The import graph of the instacolor package, read from its source with ``ast``."""

from __future__ import annotations

import ast
from pathlib import Path

#: The instacolor package folder of this checkout.
PACKAGE = Path(__file__).resolve().parents[1] / "instacolor"


def module_name(path: Path, package: Path = PACKAGE) -> str:
    """Dotted module name of a source file of ``package``."""
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(package: Path = PACKAGE) -> dict[str, Path]:
    """Every module of ``package``, by dotted name."""
    return {module_name(path, package): path for path in sorted(package.rglob("*.py"))}


def type_checking_only(node: ast.If) -> bool:
    """Whether an ``if`` is ``if TYPE_CHECKING:`` (or ``if typing.TYPE_CHECKING:``)."""
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported_modules(tree: ast.AST, known: dict[str, Path]) -> set[str]:
    """The instacolor modules a file imports (module level or in functions), not TYPE_CHECKING."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and type_checking_only(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "instacolor")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("instacolor"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in known else node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """For each module of ``package``, the other instacolor modules it imports."""
    known = modules(package)
    return {
        name: imported_modules(ast.parse(path.read_text(encoding="utf-8")), known) - {name}
        for name, path in known.items()
    }
