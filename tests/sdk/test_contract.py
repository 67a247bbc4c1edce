"""The host-call wire contract the proxy imports: strict args, LiteLLM-shaped results, named errors."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

import sdk.contract
from runner import HostCallError
from sdk import LitellmUserRoles
from sdk.contract import (
    ERROR_CODES,
    ERROR_TYPES,
    METHODS,
    AddMemberArgs,
    Conflict,
    HostUnavailable,
    Invalid,
    Member,
    MemberArgs,
    NewUserArgs,
    NewUserRequest,
    NotFound,
    TeamMemberAddRequest,
    UserInfoArgs,
    UserRecord,
    dump_result,
    error_code,
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


def test_all_names_every_public_class_and_function_defined_here() -> None:
    defined = {
        name
        for name, value in vars(sdk.contract).items()
        if not name.startswith("_") and getattr(value, "__module__", None) == "sdk.contract"
    }
    assert defined <= set(sdk.contract.__all__)
    assert all(hasattr(sdk.contract, name) for name in sdk.contract.__all__)


def test_error_codes_are_the_wire_names_of_before() -> None:
    assert ERROR_TYPES == ("PermissionError", "NotFound", "Invalid", "ValueError", "Conflict", "HostUnavailable")
    assert all(error_code(cls("x")) == code for code, cls in ERROR_CODES.items())


def test_a_host_error_is_sent_under_its_code_whatever_its_class_is_called() -> None:
    class UserMissing(NotFound):
        pass

    error = UserMissing("User alice not found")
    assert isinstance(error, HostCallError) and isinstance(error, LookupError)
    assert (error.error_type, error_code(error)) == ("NotFound", "NotFound")


@pytest.mark.parametrize("error", [NotFound, Invalid, Conflict, HostUnavailable])
def test_each_host_error_carries_its_code_for_the_runner(error: type[HostCallError]) -> None:
    assert error("x").error_type == error_code(error("x")) == error.__name__


def test_an_error_outside_the_table_is_named_by_its_class() -> None:
    assert error_code(KeyError("x")) == "KeyError"


def test_new_user_request_is_the_wire_model_read_the_lax_way() -> None:
    request = NewUserRequest(
        user_id="bob",
        user_role=LitellmUserRoles.INTERNAL_USER,  # type: ignore[arg-type]
        teams=None,  # type: ignore[arg-type]  # LiteLLM's default
        tpm_limit=100,  # type: ignore[call-arg]  # a LiteLLM field hookjail accepts and does not store
    )
    assert isinstance(request, NewUserArgs)
    assert (request.user_role, request.teams, request.metadata) == ("internal_user", [], {})
    assert "tpm_limit" not in request.model_dump()


@pytest.mark.parametrize("fields", [{"user_id": "bob\n"}, {"user_email": "not an email"}, {"user_alias": "\u202e"}])
def test_new_user_request_refuses_control_characters_and_bad_emails(fields: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        NewUserRequest.model_validate(fields)


def test_team_member_add_request_gives_the_wire_args() -> None:
    request = TeamMemberAddRequest(team_id="eng", member=Member(user_email="bob@example.com"))
    assert request.args() == AddMemberArgs(
        team_id="eng", member=[MemberArgs(role="user", user_email="bob@example.com")]
    )
