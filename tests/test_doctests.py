"""The examples in volrecon's docstrings run and print what they say."""

import doctest
import importlib
import pkgutil

import pytest

import volrecon


def _modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(volrecon.__path__, prefix="volrecon."))


@pytest.mark.parametrize("name", [m for m in _modules() if ">>>" in (importlib.util.find_spec(m).loader.get_source(m) or "")])
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} fail"
