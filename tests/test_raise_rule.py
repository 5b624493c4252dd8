"""Every error raised on purpose is an InstacolorError subclass (issue 16 item 4).

Checked on the source of the modules listed here: a ``raise`` of a builtin exception
class (``raise ValueError(...)``) is refused, a re-raise (``raise``) or an instacolor
error is fine. Modules join the list once their raises are converted.
"""

from __future__ import annotations

import ast
import builtins
import inspect
from importlib import import_module

import pytest

from instacolor.errors import InputError, WeightsError
from instacolor.models.generator import ColorGenerator

MODULES = [
    "instacolor.checkpoints",
    "instacolor.download",
    "instacolor.models.generator",
    "instacolor.official",
    "instacolor.train.data",
    "instacolor.train.loop",
    "instacolor.train.losses",
    "instacolor.weights",
]
BUILTIN_ERRORS = {
    name
    for name in dir(builtins)
    if isinstance(getattr(builtins, name), type)
    and issubclass(getattr(builtins, name), BaseException)
}


def _builtin_raises(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(exc, ast.Name) and exc.id in BUILTIN_ERRORS:
                found.append(f"line {node.lineno}: raise {exc.id}")
    return found


@pytest.mark.parametrize("name", MODULES)
def test_no_builtin_exception_is_raised(name):
    assert _builtin_raises(inspect.getsource(import_module(name))) == []


def test_the_check_finds_a_builtin_raise():
    source = "def f(x):\n    if x:\n        raise ValueError('no')\n    raise\n"
    assert _builtin_raises(source) == ["line 3: raise ValueError"]
    assert _builtin_raises("raise WeightsError('x')\n") == []


def test_generator_width_is_an_input_error():
    with pytest.raises(InputError, match="width: expected a positive integer, received 0"):
        ColorGenerator(0)
    assert issubclass(InputError, ValueError) and not issubclass(WeightsError, ValueError)
