"""Ask the company's HR directory (over HTTP) who the user is; map their department to models and budget.

Needs ``network: allow`` and two settings passed through ``hook_settings.env`` (nothing else of the proxy's
environment reaches the hook): ``HR_DIRECTORY_URL``, the directory's base URL, and ``HR_API_TOKEN``, its
bearer token. The directory answers ``GET <url>/people?email=<email>`` with
``{"department": "...", "title": "...", "active": true}``, or 404 for an unknown person.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request

from sdk import LitellmUserRoles, OpenID, SSOUserDefinedValues, hook

TIMEOUT = 2.0  # seconds; below the hook's own timeout so a slow directory gives a clear error

MODELS_BY_DEPARTMENT: dict[str, list[str]] = {
    "engineering": ["gpt-4o", "gpt-4o-mini"],
    "research": ["gpt-4o", "claude-sonnet"],
}
BUDGET_BY_DEPARTMENT: dict[str, float] = {"engineering": 50.0, "research": 80.0}


class DirectoryRefused(Exception):
    """Raised when the HR directory does not know the user, or says they are not active."""


def lookup(email: str) -> dict[str, object]:
    """The directory's record for ``email``."""
    base = os.environ["HR_DIRECTORY_URL"].rstrip("/")
    request = urllib.request.Request(
        f"{base}/people?{urllib.parse.urlencode({'email': email})}",
        headers={"Authorization": f"Bearer {os.environ['HR_API_TOKEN']}", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            record = json.load(response)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise DirectoryRefused(f"{email} is not in the HR directory") from None
        raise
    if not isinstance(record, dict):
        raise ValueError("the HR directory answered with something other than a JSON object")
    return record


@hook
def custom_sso_handler(userIDPInfo: OpenID) -> SSOUserDefinedValues:
    if not userIDPInfo.id or not userIDPInfo.email:
        raise DirectoryRefused("the identity provider sent no user id or email")
    person = lookup(userIDPInfo.email)
    if person.get("active") is not True:
        raise DirectoryRefused(f"{userIDPInfo.email} is not an active employee")
    department = str(person.get("department", "")).lower()
    return SSOUserDefinedValues(
        models=MODELS_BY_DEPARTMENT.get(department, []),
        user_id=userIDPInfo.id,
        user_email=userIDPInfo.email,
        user_role=LitellmUserRoles.INTERNAL_USER.value,
        max_budget=BUDGET_BY_DEPARTMENT.get(department, 0.0),
        budget_duration="30d",
    )
