"""Every error raised on purpose is an InstacolorError subclass (issue 16 item 4).

Checked on the source of every module of the package: a ``raise`` of a builtin
exception class (``raise ValueError(...)``) is refused, a re-raise (``raise``) or an
instacolor error is fine. :data:`ALLOWED` names the few builtin raises that Python's
protocols require, each with its reason.
"""

from __future__ import annotations

import ast
import builtins
import inspect
import pkgutil
from importlib import import_module

import pytest

import instacolor
from instacolor.errors import InputError, WeightsError
from instacolor.models.generator import ColorGenerator

MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(instacolor.__path__, "instacolor.")
    if m.name != "instacolor.__main__"  # raise SystemExit(main()): the exit status
)
#: (module, builtin raise) pairs a protocol requires.
ALLOWED = {
    # raised and caught in Worker.process: the record's text names the existing output
    ("instacolor.batch.worker", "raise FileExistsError"),
}
BUILTIN_ERRORS = {
    name
    for name in dir(builtins)
    if isinstance(getattr(builtins, name), type)
    and issubclass(getattr(builtins, name), BaseException)
}


def _module_getattr_raises(tree: ast.Module) -> set[int]:
    """Lines of ``raise AttributeError`` in a module-level ``__getattr__`` (PEP 562 requires it)."""
    return {
        node.lineno
        for function in tree.body
        if isinstance(function, ast.FunctionDef) and function.name == "__getattr__"
        for node in ast.walk(function)
        if isinstance(node, ast.Raise)
        and isinstance(node.exc, ast.Call)
        and isinstance(node.exc.func, ast.Name)
        and node.exc.func.id == "AttributeError"
    }


def _builtin_raises(source: str) -> list[str]:
    found = []
    tree = ast.parse(source)
    protocol = _module_getattr_raises(tree)
    for node in ast.walk(tree):
        if node.__class__ is ast.Raise and node.lineno in protocol:
            continue
        if isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(exc, ast.Name) and exc.id in BUILTIN_ERRORS:
                found.append(f"line {node.lineno}: raise {exc.id}")
    return found


@pytest.mark.parametrize("name", MODULES)
def test_no_builtin_exception_is_raised(name):
    found = _builtin_raises(inspect.getsource(import_module(name)))
    assert [f for f in found if (name, f.split(": ", 1)[1]) not in ALLOWED] == []


def test_a_module_getattr_may_raise_attribute_error_and_nothing_else():
    source = (
        "def __getattr__(name):\n    raise AttributeError(name)\n"
        "def other(name):\n    raise AttributeError(name)\n"
    )
    assert _builtin_raises(source) == ["line 4: raise AttributeError"]


def test_every_module_is_checked():
    assert {"instacolor.api", "instacolor.runtime.export", "instacolor.batch.run"} <= set(MODULES)
    assert len(MODULES) > 50


def test_the_check_finds_a_builtin_raise():
    source = "def f(x):\n    if x:\n        raise ValueError('no')\n    raise\n"
    assert _builtin_raises(source) == ["line 3: raise ValueError"]
    assert _builtin_raises("raise WeightsError('x')\n") == []


def test_generator_width_is_an_input_error():
    with pytest.raises(InputError, match="width: expected a positive integer, received 0"):
        ColorGenerator(0)
    assert issubclass(InputError, ValueError) and not issubclass(WeightsError, ValueError)
