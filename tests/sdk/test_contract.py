"""The host-call wire contract the proxy imports: strict args, LiteLLM-shaped results, named errors."""

from __future__ import annotations

import pytest

from sdk._hostapi import (
    METHODS,
    Invalid,
    UserInfoArgs,
    UserRecord,
    dump_result,
    parse_args,
)


def test_methods_are_the_four_host_calls() -> None:
    assert METHODS == ("user_info", "new_user", "add_new_member", "team_info")


def test_unknown_method_is_refused_as_permission_error() -> None:
    with pytest.raises(PermissionError, match="no host call named 'delete_user'"):
        parse_args("delete_user", {})


def test_unknown_argument_is_invalid() -> None:
    with pytest.raises(Invalid, match="user_info: is_admin: unknown argument"):
        parse_args("user_info", {"user_id": "a", "is_admin": True})


def test_wrong_type_is_invalid_without_coercion() -> None:
    with pytest.raises(Invalid, match="user_id"):
        parse_args("user_info", {"user_id": 1})


def test_member_needs_an_id_or_email() -> None:
    with pytest.raises(Invalid, match="user_id or a user_email"):
        parse_args("add_new_member", {"team_id": "t", "member": {"role": "user"}})


def test_single_member_and_list_both_parse_to_members() -> None:
    single = parse_args("add_new_member", {"team_id": "t", "member": {"user_id": "a"}})
    many = parse_args("add_new_member", {"team_id": "t", "member": [{"user_id": "a"}]})
    assert single.members == many.members  # type: ignore[attr-defined]


def test_new_user_role_must_be_litellms() -> None:
    with pytest.raises(Invalid, match="user_role"):
        parse_args("new_user", {"user_role": "root"})


def test_valid_args_parse() -> None:
    assert parse_args("user_info", {"user_id": "alice"}) == UserInfoArgs(user_id="alice")


def test_user_info_result_fills_litellms_fields() -> None:
    result = dump_result("user_info", {"user_id": "a", "user_info": UserRecord(user_id="a", user_role="team")})
    assert result == {
        "user_id": "a",
        "user_info": {
            "user_id": "a",
            "user_email": None,
            "user_alias": None,
            "user_role": "team",
            "models": [],
            "max_budget": None,
            "budget_duration": None,
            "spend": 0.0,
            "teams": [],
            "metadata": {},
        },
        "keys": [],
        "teams": [],
    }


def test_new_user_result_has_no_key() -> None:
    assert dump_result("new_user", {"user_id": "a"})["key"] is None
