"""An OpenID given by hand (``hookjail check --openid``, the lines of ``hookjail replay --openids``, the
console's dry run), validated as fastapi-sso's ``OpenID``, with every problem named in one line."""

from __future__ import annotations

from typing import Any

from fastapi_sso.sso.base import OpenID
from pydantic import ValidationError

__all__ = ("OpenIDInvalid", "parse_openid")


class OpenIDInvalid(ValueError):
    """Raised when a dict is not a valid OpenID; the message is every problem as ``loc: msg``, joined by
    ``"; "`` (``openid: msg`` for the object as a whole), e.g. ``"email: value is not a valid email address:
    ..."``. The caller adds where the OpenID came from."""


def parse_openid(data: dict[str, Any], model: type[OpenID] = OpenID) -> dict[str, Any]:
    """``data`` validated as ``model`` (fastapi-sso's ``OpenID`` or a subclass of it), as plain JSON data.

    Raises:
        OpenIDInvalid: ``data`` does not validate.
    """
    try:
        return model.model_validate(data).model_dump(mode="json")
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'openid'}: {e['msg']}" for e in exc.errors())
        raise OpenIDInvalid(problems) from None
