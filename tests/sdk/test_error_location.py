"""sdk.contract.error_location: pydantic's Union/Optional branch tags are dropped, list indexes kept."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from sdk.contract import error_location, first_error


class _Shape(BaseModel):
    model_config = ConfigDict(strict=True)

    limit: float | list[int]


def test_union_tags_are_dropped_and_indexes_kept() -> None:
    assert error_location(("limit", "float")) == ["limit"]
    assert error_location(("teams", "list[str]", 2, "none")) == ["teams", 2]
    assert error_location(("metadata", "owner", 0)) == ["metadata", "owner", 0]


def test_locations_of_a_real_union_error() -> None:
    with pytest.raises(ValidationError) as caught:
        _Shape.model_validate({"limit": ["a"]})
    assert [error_location(error["loc"]) for error in caught.value.errors()] == [["limit"], ["limit", 0]]
    assert first_error(caught.value).startswith("limit: ")
