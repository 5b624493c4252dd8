"""The runnable examples in module docstrings stay correct."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "instacolor.color",
    "instacolor.detection.detectron2_backend",
    "instacolor.hints",
    "instacolor.hints.cells",
    "instacolor.hints.files",
    "instacolor.hints.propagation",
    "instacolor.hints.reference",
    "instacolor.hints.values",
    "instacolor.io.coco",
    "instacolor.labels",
    "instacolor.models.generator",
    "instacolor.models.inputs",
    "instacolor.models.semantic",
    "instacolor.reconstruct",
    "instacolor.runtime.torch_runtime",
    "instacolor.structures",
    "instacolor.weights",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no docstring example"
    assert result.failed == 0
