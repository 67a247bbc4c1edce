from __future__ import annotations

from types import ModuleType

import sdk


def test_public_names_match_all() -> None:
    public = {
        name
        for name, value in vars(sdk).items()
        if not name.startswith("_") and name != "annotations" and not isinstance(value, ModuleType)
    }
    assert public == set(sdk.__all__)


def test_sdk_ships_py_typed() -> None:
    assert sdk.__file__ is not None
    assert (__import__("pathlib").Path(sdk.__file__).parent / "py.typed").is_file()
