"""The runnable examples in docstrings are tests: pytest collects every module of the
package with ``--doctest-modules`` (pyproject.toml), not a hand-kept list."""

from __future__ import annotations


def test_docstring_examples_are_collected_from_the_whole_package(pytestconfig):
    assert "instacolor" in pytestconfig.getini("testpaths")
    assert pytestconfig.getoption("doctestmodules")
    assert {"ELLIPSIS", "NORMALIZE_WHITESPACE"} <= set(pytestconfig.getini("doctest_optionflags"))
