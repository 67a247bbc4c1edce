"""The optional @hook decorator checks a handler's shape at import time."""

from __future__ import annotations

from typing import Any

import pytest

from sdk import OpenID, SSOUserDefinedValues, hook


def test_one_parameter_async_handler_is_returned_unchanged() -> None:
    async def handler(user: OpenID) -> SSOUserDefinedValues:
        raise NotImplementedError

    assert hook(handler) is handler


def test_sync_handler_is_accepted() -> None:
    def handler(user: OpenID) -> SSOUserDefinedValues:
        raise NotImplementedError

    assert hook(handler) is handler


def test_two_parameters_are_refused() -> None:
    async def handler(user: OpenID, request: Any) -> SSOUserDefinedValues:
        raise NotImplementedError

    with pytest.raises(TypeError, match="exactly one positional parameter"):
        hook(handler)


def test_no_parameter_is_refused() -> None:
    async def handler() -> SSOUserDefinedValues:
        raise NotImplementedError

    with pytest.raises(TypeError, match="exactly one positional parameter"):
        hook(handler)


def test_required_keyword_only_parameter_is_refused() -> None:
    async def handler(user: OpenID, *, tenant: str) -> SSOUserDefinedValues:
        raise NotImplementedError

    with pytest.raises(TypeError, match="keyword-only parameters, it requires tenant"):
        hook(handler)


def test_other_return_annotation_is_refused() -> None:
    async def handler(user: OpenID) -> str:
        raise NotImplementedError

    with pytest.raises(TypeError, match="must return SSOUserDefinedValues, it is annotated to return str"):
        hook(handler)
