"""Allowlist and denylist from ``access.csv`` beside this file (granted to the hook by ``hook_settings.files``).

The file is read at each login, so edits apply without a restart. A refused user gets a clear reason on the
login error page (``raise Deny(...)``: HTTP 403, outcome ``denied``); so does anyone when the file is unreadable
or malformed (fail closed: the detail goes to stderr, kept in the run record for the operator, not to the user).
A denial is a decision, so even ``on_failure: idp_defaults`` does not let a refused user in.
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from pathlib import Path

from sdk import Deny, LitellmUserRoles, OpenID, SSOUserDefinedValues, hook

ACCESS_FILE = Path(__file__).with_name("access.csv")


@dataclass(frozen=True)
class Rule:
    """One line of access.csv."""

    pattern: str
    allow: bool
    role: LitellmUserRoles
    models: tuple[str, ...]
    max_budget: float


def load_rules(path: Path = ACCESS_FILE) -> dict[str, Rule]:
    """The rules of ``path`` by pattern; a malformed line is an error naming it."""
    rules: dict[str, Rule] = {}
    with path.open(newline="", encoding="utf-8") as file:
        lines = (line for line in file if not line.startswith("#"))
        for row in csv.DictReader(lines):
            pattern = row["pattern"].strip().lower()
            decision = row["decision"].strip()
            if decision not in ("allow", "deny") or not pattern:
                raise ValueError(f"{path.name}: bad rule {dict(row)} (needs a pattern, and allow or deny)")
            allow = decision == "allow"
            rules[pattern] = Rule(
                pattern=pattern,
                allow=allow,
                role=LitellmUserRoles(row["role"].strip()) if allow else LitellmUserRoles.INTERNAL_USER_VIEW_ONLY,
                models=tuple(row["models"].split()),
                max_budget=float(row["max_budget"] or 0),
            )
    return rules


def match(rules: dict[str, Rule], email: str) -> Rule | None:
    """The most specific rule for ``email``: the address itself, then its domain, then parent domains."""
    email = email.lower()
    if email in rules:
        return rules[email]
    domain = email.rpartition("@")[2]
    while domain:
        rule = rules.get("@" + domain)
        if rule is not None:
            return rule
        domain = domain.partition(".")[2]
    return None


@hook
async def custom_sso_handler(userIDPInfo: OpenID) -> SSOUserDefinedValues:
    if not userIDPInfo.id or not userIDPInfo.email:
        raise Deny("This proxy needs an email address from your identity provider; ask your administrator.")
    try:
        rules = load_rules()
    except Exception as exc:
        print(f"access list unusable: {type(exc).__name__}: {exc}", file=sys.stderr)  # for the operator
        raise Deny("This proxy's access list cannot be read right now; ask your administrator.") from None
    rule = match(rules, userIDPInfo.email)
    if rule is None:
        raise Deny(f"{userIDPInfo.email} is not on this proxy's access list; ask your administrator to add you.")
    if not rule.allow:
        raise Deny(f"{userIDPInfo.email} is not allowed to use this proxy (rule {rule.pattern}).")
    return SSOUserDefinedValues(
        models=list(rule.models),
        user_id=userIDPInfo.id,
        user_email=userIDPInfo.email,
        user_role=rule.role.value,
        max_budget=rule.max_budget,
        budget_duration="30d",
    )
