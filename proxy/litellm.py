"""hookjail inside LiteLLM's own proxy: the operator's ``custom_sso`` handler, sandboxed, with a one-line change.

In LiteLLM's ``config.yaml``::

    general_settings:
      custom_sso: proxy.litellm.custom_sso_handler   # this module's adapter
    hook_settings:
      handler: custom_sso.custom_sso_handler         # the operator's unchanged handler, beside config.yaml
      timeout: 5
      permissions: [user_info]

LiteLLM imports this module while it loads its config (``get_instance_fn``). At that import the adapter:

1. finds the config file LiteLLM was started with (``HOOKJAIL_CONFIG`` when set, else LiteLLM's own
   ``user_config_file_path``, else its ``CONFIG_FILE_PATH`` / ``WORKER_CONFIG`` variables);
2. validates ``hook_settings`` with hookjail's own rules (:func:`proxy._config.load_config`'s, key paths in
   the messages), plus the adapter's two keys: ``handler`` (required; resolved like ``custom_sso``, relative
   to config.yaml) and ``run_log`` (optional JSON-lines file of every run, relative to config.yaml);
3. imports the handler once in the sandbox (a throwaway worker template, on a thread of its own since
   LiteLLM's event loop is busy importing us) — so a handler that does not import stops LiteLLM at start with
   hookjail's message, as ``hookjail --config`` does;
4. starts the real :class:`~runner.HookRunner` on LiteLLM's event loop, in a task that holds it until LiteLLM's
   shutdown (LiteLLM offers no hook for that: the adapter wraps its ``proxy_shutdown_event``), which stops the
   worker template and its children.

Each login LiteLLM awaits :func:`custom_sso_handler` with fastapi-sso's ``OpenID``. The handler runs in the
sandbox; its values are validated strictly (:func:`proxy._values.validate_values`) and checked against
``hook_settings.policy`` (:func:`proxy._values.apply_policy`); LiteLLM gets its own ``SSOUserDefinedValues``.
A failure raises LiteLLM's ``ProxyException`` with hookjail's status for the outcome (504 timeout, 502 a
broken hook, 403 denied/invalid/refused, 503 unavailable) and a message carrying the run id; LiteLLM's
callback turns it into a failed login. Every run is logged on LiteLLM's logger (``LiteLLM Proxy``) and,
with ``hook_settings.run_log``, appended to that file as one JSON object.

The handler's host calls (``user_info``, ``new_user``, ``add_new_member``, ``team_info``) are answered by
LiteLLM's own management functions, called in-process as the proxy admin (:class:`LiteLLMHost`), after
hookjail's checks: ``hook_settings.permissions``, the wire contract of :mod:`sdk._hostapi`, the policy for the
users ``new_user`` creates, and ``max_host_calls`` / ``max_host_reply_kb`` (the runner's). LiteLLM's errors
keep their shape: its 404 is the hook's ``NotFoundError`` with LiteLLM's message; an error of LiteLLM's own
(no database, a bug) is the hook's ``HostUnavailableError``, the details going to LiteLLM's log only.

Nothing here imports LiteLLM at module level: its modules are looked up when needed, so this module can be
imported (and type-checked) without LiteLLM installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import importlib
import json
import logging
import os
import secrets
import sys
import threading
import time
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any, Final
from urllib.parse import urlencode

from fastapi.encoders import jsonable_encoder
from pydantic import ValidationError
from starlette.requests import Request

from runner import HookDenied, HookError, HookRunner
from sdk.contract import (
    AddMemberArgs,
    Conflict,
    HostUnavailable,
    Invalid,
    NewUserArgs,
    NotFound,
    TeamInfoArgs,
    UserInfoArgs,
    check_granted,
    dump_result,
    parse_args,
)

from . import _config
from ._config import ProxyConfig
from ._errors import ConfigError
from ._hook import HookService, runner_options
from ._outcomes import reason_for, status_for
from ._text import ERROR_LIMIT, STREAM_LIMIT, clip, one_line
from ._values import UserValues, ValuesInvalid, ValuesRefused, apply_policy, idp_defaults, validate_values

__all__ = (
    "ADAPTER",
    "ENV_CONFIG",
    "Adapter",
    "AdapterSettings",
    "HookjailStartError",
    "LiteLLMHost",
    "custom_sso_handler",
    "find_config",
    "litellm_error",
    "load_settings",
)

#: What ``general_settings.custom_sso`` names to load this adapter.
ADAPTER: Final = "proxy.litellm.custom_sso_handler"
#: The environment variable naming the config file, when LiteLLM's own state should not be used.
ENV_CONFIG: Final = "HOOKJAIL_CONFIG"
#: The adapter's own keys in ``hook_settings`` (the others are hookjail's, validated by ``HookSettings``).
_OWN_KEYS: Final = ("handler", "run_log")

logger = logging.getLogger("LiteLLM Proxy")  # LiteLLM's verbose_proxy_logger

#: The adapter's words for values hookjail refused (the field at fault follows); other outcomes' reasons and
#: statuses are hookjail's own (:mod:`proxy._outcomes`).
_JUDGED: Final = {
    "invalid": "The login hook returned invalid values",
    "refused": "The login hook's values break the operator's policy",
}
#: The OpenID fields a handler receives (fastapi-sso's ``OpenID``).
_OPENID_FIELDS: Final = ("id", "email", "first_name", "last_name", "display_name", "picture", "provider")
#: Host calls recorded per run (the rest are counted).
_MAX_RECORDED_CALLS: Final = 200


class HookjailStartError(RuntimeError):
    """Raised at LiteLLM's start (this module's import) when the adapter cannot serve: the config is invalid,
    or the handler does not import in the sandbox. LiteLLM's start fails with this message."""


# --- configuration -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AdapterSettings:
    """The validated configuration of the adapter.

    Attributes:
        config: hookjail's view of config.yaml: ``hook_settings`` validated, ``hook`` the operator's handler
            (from ``hook_settings.handler``), ``model_list`` for ``policy.models_must_exist``.
        run_log: the JSON-lines file every run is appended to, or ``None``.
    """

    config: ProxyConfig
    run_log: Path | None = None


def find_config(environ: Mapping[str, str] | None = None) -> Path:
    """The config file LiteLLM was started with: ``HOOKJAIL_CONFIG``, else LiteLLM's ``user_config_file_path``,
    else its ``CONFIG_FILE_PATH`` or ``WORKER_CONFIG`` variable (when that names a file).

    Raises:
        ConfigError: none of them names a file.
    """
    env = os.environ if environ is None else environ
    override = env.get(ENV_CONFIG)
    if override:
        return Path(override)
    server = sys.modules.get("litellm.proxy.proxy_server")
    candidates = [getattr(server, "user_config_file_path", None), env.get("CONFIG_FILE_PATH"), env.get("WORKER_CONFIG")]
    for candidate in candidates:
        if isinstance(candidate, str) and candidate and os.path.isfile(candidate):
            return Path(candidate)
    raise ConfigError(
        f"hookjail's custom_sso adapter cannot tell which config file LiteLLM was started with; "
        f"start it with `litellm --config config.yaml`, or set {ENV_CONFIG}=/path/to/config.yaml"
    )


def load_settings(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> AdapterSettings:
    """Read config.yaml and validate what the adapter uses, with the rules of ``hookjail --config``.

    Validated: ``hook_settings`` (hookjail's ``HookSettings``, strictly, plus ``handler`` and ``run_log``),
    ``model_list[].model_name``, and the near misses :func:`proxy._config.load_config` refuses (a misspelt
    ``hook_settings``). Every other LiteLLM key is LiteLLM's business and left alone (``general_settings``
    included: ``custom_sso`` names this adapter, the handler is ``hook_settings.handler``).

    Raises:
        ConfigError: naming every offending key path.
    """
    env = os.environ if environ is None else environ
    config_path, raw = _config.read_config_file(path)

    # hookjail's near-miss rule, on the top level only: general_settings is LiteLLM's (custom_sso is ours).
    problems: list[tuple[str | None, str]] = _config._near_misses_in(raw, (), _config.LITELLM_TOP_LEVEL_KEYS)
    block = _hook_settings_block(raw, config_path.name, problems)
    handler = block.get("handler")
    run_log = block.get("run_log")
    problems += _own_key_problems(handler, run_log)

    resolved = _resolved_used_keys(raw, block, handler, env, problems)
    try:
        config = ProxyConfig.model_validate({"path": config_path, **resolved})
    except ValidationError as exc:
        problems += _config._validation_problems(exc)
    if problems:
        raise _config._error(config_path.name, _renamed(problems))
    hook = _config._resolve_hook(config, problems)
    read_paths = _config._resolve_files(config, problems)
    log_path = _run_log_path(config_path, run_log, problems)
    if problems:
        raise _config._error(config_path.name, _renamed(problems))
    config = config.model_copy(update={"hook": hook, "read_paths": read_paths, "env": dict(config.hook_settings.env)})
    return AdapterSettings(config=config, run_log=log_path)


def _hook_settings_block(raw: Mapping[Any, Any], source: str, problems: list[tuple[str | None, str]]) -> dict[Any, Any]:
    """The ``hook_settings`` mapping (empty when absent).

    Raises:
        ConfigError: it is not a mapping (with the ``problems`` found so far).
    """
    block = raw.get("hook_settings")
    if block is None:
        return {}
    if not isinstance(block, dict):
        problems.append(("hook_settings", f"expected a mapping, got {type(block).__name__}"))
        raise _config._error(source, problems)
    return block


def _own_key_problems(handler: Any, run_log: Any) -> list[tuple[str | None, str]]:
    """What is wrong with the adapter's own keys, ``hook_settings.handler`` and ``hook_settings.run_log``."""
    problems: list[tuple[str | None, str]] = []
    if handler is None:
        problems.append(
            (
                "hook_settings.handler",
                "required key is missing: the operator's handler, e.g. custom_sso.custom_sso_handler "
                f"(general_settings.custom_sso names hookjail's adapter, {ADAPTER})",
            )
        )
    elif handler == ADAPTER:
        problems.append(("hook_settings.handler", "names hookjail's adapter itself; name the operator's handler"))
    elif not isinstance(handler, str):
        problems.append(("hook_settings.handler", f"expected 'module.function' (got {handler!r})"))
    if run_log is not None and (not isinstance(run_log, str) or not run_log.strip()):
        problems.append(("hook_settings.run_log", f"expected a file path (got {run_log!r})"))
    return problems


def _resolved_used_keys(
    raw: Mapping[Any, Any],
    block: Mapping[Any, Any],
    handler: Any,
    env: Mapping[str, str],
    problems: list[tuple[str | None, str]],
) -> dict[str, Any]:
    """The keys hookjail validates, in its own config's shape, their environment references resolved.

    ``hook_settings`` without the adapter's own keys, the handler as ``general_settings.custom_sso`` (so
    hookjail's rules resolve it), and ``model_list``. Unresolvable references are added to ``problems``.
    """
    used: dict[str, Any] = {"hook_settings": {key: value for key, value in block.items() if key not in _OWN_KEYS}}
    if isinstance(handler, str) and handler != ADAPTER:
        used["general_settings"] = {"custom_sso": handler}
    if raw.get("model_list") is not None:
        used["model_list"] = raw["model_list"]
    return {key: _config._resolve_env(value, (key,), env, problems, only_used=True) for key, value in used.items()}


def _run_log_path(config_path: Path, run_log: Any, problems: list[tuple[str | None, str]]) -> Path | None:
    """``hook_settings.run_log`` relative to the config file, or ``None``; a missing directory is a problem."""
    log_path = None if run_log is None else (config_path.parent / run_log)
    if log_path is not None and not log_path.parent.is_dir():
        problems.append(
            ("hook_settings.run_log", f"the directory of {run_log} does not exist (relative to the config file)")
        )
    return log_path


def _renamed(problems: Sequence[tuple[str | None, str]]) -> list[tuple[str | None, str]]:
    """Problems as the operator wrote the keys: the handler's (validated as ``general_settings.custom_sso``)
    under ``hook_settings.handler``, and a misspelt ``handler`` / ``run_log`` suggested as such."""
    out: list[tuple[str | None, str]] = []
    for key, message in problems:
        if key == "general_settings.custom_sso":
            out.append(("hook_settings.handler", message.replace("hookjail loads handlers", "the handler is loaded")))
            continue
        block, _, name = (key or "").rpartition(".")
        if block == "hook_settings" and message.startswith("unknown key"):
            match = difflib.get_close_matches(name.lower(), [*_OWN_KEYS, *_config.HookSettings.model_fields], n=1)
            if match and match[0] in _OWN_KEYS:
                out.append((key, f"unknown key; did you mean {match[0]!r}?"))
                continue
        out.append((key, message))
    return out


# --- LiteLLM, looked up when needed -------------------------------------------------------------------------


def _litellm(module: str) -> ModuleType:
    return importlib.import_module(module)


def _admin() -> Any:
    """LiteLLM's caller identity for the host calls: the proxy admin (the operator granted the calls)."""
    types = _litellm("litellm.proxy._types")
    server = sys.modules.get("litellm.proxy.proxy_server")
    admin_name = getattr(server, "litellm_proxy_admin_name", None) or "default_user_id"
    return types.UserAPIKeyAuth(user_role=types.LitellmUserRoles.PROXY_ADMIN, user_id=admin_name)


def _request(path: str, query: Mapping[str, str]) -> Any:
    """A Starlette request for LiteLLM functions that read one (``user_info``, ``team_info``)."""
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "query_string": urlencode(query).encode(),
        "headers": [],
        "client": ("127.0.0.1", 0),
        "server": ("127.0.0.1", 0),
        "scheme": "http",
        "root_path": "",
    }
    return Request(scope)


_UNAVAILABLE: Final = "LiteLLM could not answer this host call (see the proxy's log)"
#: LiteLLM's words for "this needs a database" (its messages vary by endpoint).
_NO_DATABASE: Final = ("db not connected", "database not connected", "no db connected", "connect a database")


def _message_of(exc: BaseException) -> str:
    message = getattr(exc, "message", None)
    if message is None:
        message = getattr(exc, "detail", None)
    if isinstance(message, dict):
        message = message.get("error") or message.get("message") or json.dumps(message, default=str)
    return str(message if message is not None else exc)


def _status_of(exc: BaseException) -> int:
    for name in ("status_code", "code"):
        value = getattr(exc, name, None)
        if value is None:
            continue
        try:
            return int(value)
        except (TypeError, ValueError):
            continue
    return 500


def litellm_error(exc: BaseException) -> Exception:
    """The host-call error the hook gets for an error of one of LiteLLM's management functions.

    LiteLLM's shapes are kept: a 404 is ``NotFound`` (the hook's ``NotFoundError``), a 409 ``Conflict``, a 400
    or 422 ``Invalid``, a 401 or 403 ``PermissionError``, each with LiteLLM's message. Anything else — LiteLLM
    has no database, a 5xx, a bug — is ``HostUnavailable`` with a generic message (the real one is logged).
    """
    message = one_line(_message_of(exc), 300)
    status = _status_of(exc)
    if any(words in message.lower() for words in _NO_DATABASE) or status >= 500:
        return HostUnavailable(_UNAVAILABLE)
    if status == 404:
        return NotFound(message)
    if status == 409:
        return Conflict(message)
    if status in (400, 422):
        return Invalid(message)
    if status in (401, 403):
        return PermissionError(message)
    return HostUnavailable(_UNAVAILABLE)


def _plain(value: Any) -> Any:
    """A LiteLLM answer (pydantic models, dicts, datetimes) as JSON data."""
    return jsonable_encoder(value)


class LiteLLMHost:
    """Answers one run's host calls with LiteLLM's own management functions (the runner's ``host=``).

    Before LiteLLM is called: the method must be a host call granted in ``hook_settings.permissions``
    (:func:`sdk._hostapi.check_granted`'s refusal, word for word), its arguments must match the wire
    contract (``Invalid`` naming the field), and a user ``new_user`` creates must obey ``hook_settings.policy``.
    LiteLLM's answer is shaped by the contract's result model; API keys are never passed to the hook
    (``keys`` is empty, ``new_user`` creates no key).

    Args:
        grants: ``hook_settings.permissions``.
        policy: ``hook_settings.policy``.
        model_names: the ``model_name`` of every ``model_list`` entry.

    Attributes:
        calls: what each call did, for the run record: ``{"method", "outcome", "error"?, "ms"}``.
    """

    def __init__(self, grants: Sequence[str], policy: _config.HookPolicy, model_names: Set[str]) -> None:
        self.grants = frozenset(grants)
        self.policy = policy
        self.model_names = frozenset(model_names)
        self.calls: list[dict[str, Any]] = []

    def reset(self) -> None:
        """Forget a lost attempt's calls (the runner runs a call again whose worker died with its template)."""
        self.calls = []

    async def __call__(self, method: str, args: dict[str, Any]) -> Any:
        """Answer one host call; raising sends the error into the hook (its class name is the error type)."""
        started = time.perf_counter()
        record: dict[str, Any] = {"method": one_line(method, 64), "outcome": "unfinished"}
        if len(self.calls) < _MAX_RECORDED_CALLS:
            self.calls.append(record)
        try:
            value = await self._answer(method, args, record)
        except HookError as exc:
            record.update(outcome="limit", error=exc.message)
            raise
        except (PermissionError, NotFound, Invalid, Conflict, HostUnavailable) as exc:
            record.update(outcome=type(exc).__name__, error=one_line(str(exc), 300))
            raise
        except Exception:  # a bug of ours: the hook must not see its details
            logger.exception("hookjail: host call %s failed inside the adapter", one_line(method, 64))
            record.update(outcome="HostUnavailable", error="internal error (see the proxy's log)")
            raise HostUnavailable(_UNAVAILABLE) from None
        finally:
            record["ms"] = round((time.perf_counter() - started) * 1000, 2)
        record["outcome"] = "ok"
        return value

    async def _answer(self, method: str, args: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
        check_granted(method, self.grants)
        parsed = parse_args(method, args)
        try:
            answer = await self._litellm(method, parsed)
        except HookError:
            raise
        except Exception as exc:  # LiteLLM's error: its shape for the hook, its details for the log
            error = litellm_error(exc)
            said = f"{_status_of(exc)}: {one_line(_message_of(exc), 300)}"
            record["litellm_error"] = said
            if isinstance(error, HostUnavailable):
                logger.warning("hookjail: LiteLLM could not answer host call %s: %s", method, said)
            raise error from None
        try:
            return dump_result(method, answer)
        except ValidationError:
            logger.exception("hookjail: LiteLLM's answer to %s does not have the expected shape", method)
            raise HostUnavailable(_UNAVAILABLE) from None

    async def _litellm(self, method: str, parsed: Any) -> Any:
        """Call LiteLLM's function for ``method`` as the proxy admin; its answer as JSON data."""
        admin = _admin()
        if isinstance(parsed, UserInfoArgs):
            users = _litellm("litellm.proxy.management_endpoints.internal_user_endpoints")
            request = _request("/user/info", {"user_id": parsed.user_id})
            answer = _plain(await users.user_info(request=request, user_id=parsed.user_id, user_api_key_dict=admin))
            answer["keys"] = []
            return answer
        if isinstance(parsed, TeamInfoArgs):
            teams = _litellm("litellm.proxy.management_endpoints.team_endpoints")
            request = _request("/team/info", {"team_id": parsed.team_id})
            answer = _plain(
                await teams.team_info(
                    http_request=request, team_id=parsed.team_id, key_limit=None, user_api_key_dict=admin
                )
            )
            answer["keys"] = []
            return answer
        types = _litellm("litellm.proxy._types")
        if isinstance(parsed, NewUserArgs):
            self._check_new_user(parsed)
            users = _litellm("litellm.proxy.management_endpoints.internal_user_endpoints")
            fields = parsed.model_dump(exclude_none=True)
            request = types.NewUserRequest(**fields, auto_create_key=False)
            answer = _plain(await users.new_user(data=request, user_api_key_dict=admin))
            answer["key"] = None
            return answer
        assert isinstance(parsed, AddMemberArgs)
        teams = _litellm("litellm.proxy.management_endpoints.team_endpoints")
        members = [types.Member(**m.model_dump(exclude_none=True)) for m in parsed.members]
        request = types.TeamMemberAddRequest(
            team_id=parsed.team_id,
            member=members if isinstance(parsed.member, list) else members[0],
            max_budget_in_team=parsed.max_budget_in_team,
        )
        return _plain(await teams.team_member_add(data=request, user_api_key_dict=admin))

    def _check_new_user(self, parsed: NewUserArgs) -> None:
        """``hook_settings.policy`` applies to the users a hook creates as to the values it returns."""
        policy = self.policy
        role = parsed.user_role or "internal_user_viewer"
        if policy.allowed_roles is not None and role not in policy.allowed_roles:
            raise PermissionError(f"new_user: a new user's role {role!r} is not in hook_settings.policy.allowed_roles")
        if policy.max_budget is not None and (parsed.max_budget is None or parsed.max_budget > policy.max_budget):
            given = "unlimited" if parsed.max_budget is None else f"{parsed.max_budget:g}"
            raise PermissionError(
                f"new_user: a new user's max_budget {given} is over hook_settings.policy.max_budget "
                f"({policy.max_budget:g})"
            )
        if policy.models_must_exist:
            unknown = sorted(set(parsed.models) - self.model_names)
            if unknown:
                raise PermissionError(f"new_user: models not in model_list: {', '.join(unknown)}")


# --- the adapter --------------------------------------------------------------------------------------------


def _openid(value: Any) -> dict[str, Any]:
    """LiteLLM's ``result`` (fastapi-sso's ``OpenID``, a dict, or LiteLLM's ``CustomOpenID``) as the plain
    dict the worker turns back into an ``OpenID``: its string fields only."""
    if isinstance(value, Mapping):
        data: Mapping[str, Any] = value
    elif hasattr(value, "model_dump"):
        data = value.model_dump()
    else:
        data = {name: getattr(value, name, None) for name in _OPENID_FIELDS}
    return {name: str(data[name]) for name in _OPENID_FIELDS if data.get(name) is not None}


@dataclass
class _Run:
    """One login's run, as logged and appended to ``run_log``."""

    run_id: str
    openid: dict[str, Any]
    outcome: str = "error"
    error: str | None = None
    duration_ms: float | None = None
    stdout: str = ""
    stderr: str = ""
    host_calls: list[dict[str, Any]] = field(default_factory=list)
    values: dict[str, Any] | None = None
    fallback: str | None = None

    def record(self, handler: str, sha256: str) -> dict[str, Any]:
        return {
            "time": datetime.now(UTC).isoformat(),
            "event": "hook_run",
            "run_id": self.run_id,
            "outcome": self.outcome,
            "error": None if self.error is None else clip(self.error, ERROR_LIMIT),
            "duration_ms": None if self.duration_ms is None else round(self.duration_ms, 2),
            "subject": self.openid.get("id"),
            "provider": self.openid.get("provider"),
            "handler": handler,
            "sha256": sha256,
            "fallback": self.fallback,
            "values": self.values,
            "host_calls": self.host_calls,
            "stdout": clip(self.stdout, STREAM_LIMIT),
            "stderr": clip(self.stderr, STREAM_LIMIT),
        }


class Adapter:
    """The sandboxed handler, served to LiteLLM: one :class:`~proxy._hook.HookService` per event loop.

    Args:
        settings: the validated configuration.
    """

    def __init__(self, settings: AdapterSettings) -> None:
        self.settings = settings
        self.config = settings.config
        assert self.config.hook is not None
        self.handler = self.config.hook.dotted
        self._ready: asyncio.Future[HookService] | None = None
        self._keeper: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._log_lock = threading.Lock()

    # --- lifecycle ---------------------------------------------------------------------------------------

    def check_import(self) -> dict[str, bool | str]:
        """Import the handler once in the sandbox, from a thread of its own (the caller's event loop may be
        busy), and return the sandbox layers.

        Raises:
            HookError: the handler does not import (``HookImportError``) or the sandbox is unavailable.
        """
        outcome: dict[str, Any] = {}

        async def probe() -> dict[str, bool | str]:
            spec, limits, sandbox = runner_options(self.config)
            async with HookRunner(spec, limits, sandbox) as runner:
                return runner.report_layers()

        def thread() -> None:
            try:
                outcome["layers"] = asyncio.run(probe())
            except BaseException as exc:  # handed to the caller
                outcome["error"] = exc

        worker = threading.Thread(target=thread, name="hookjail-import-check", daemon=True)
        worker.start()
        worker.join()
        if "error" in outcome:
            raise outcome["error"]
        layers: dict[str, bool | str] = outcome["layers"]
        return layers

    def start_soon(self) -> None:
        """Start the runner on the running event loop now (LiteLLM's, while it starts), if there is one."""
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop()
            self._ensure_started()

    def _ensure_started(self) -> asyncio.Future[HookService]:
        loop = asyncio.get_running_loop()
        ready = self._ready
        failed = ready is not None and ready.done() and (ready.cancelled() or ready.exception() is not None)
        if ready is None or self._loop is not loop or failed:
            ready = loop.create_future()
            self._ready, self._loop = ready, loop
            self._keeper = loop.create_task(self._keep(ready), name="hookjail-runner")
        return ready

    async def _keep(self, ready: asyncio.Future[HookService]) -> None:
        """Hold the runner until this task is cancelled (:meth:`aclose`, or the event loop's end)."""
        try:
            async with HookService(self.config) as service:
                ready.set_result(service)
                logger.info(
                    "hookjail: sandboxed handler %s ready (layers: %s)", self.handler, service.health()["layers"]
                )
                try:
                    await asyncio.Event().wait()
                finally:
                    logger.info("hookjail: stopping the sandboxed handler %s", self.handler)
        except asyncio.CancelledError:
            if not ready.done():
                ready.cancel()
            raise
        except Exception as exc:
            if not ready.done():
                ready.set_exception(exc)
            logger.error("hookjail: the sandboxed handler %s could not start: %s", self.handler, exc)

    async def service(self) -> HookService:
        """The running :class:`~proxy._hook.HookService` (started on this event loop at first use)."""
        return await asyncio.shield(self._ensure_started())

    async def aclose(self) -> None:
        """Stop the runner now (LiteLLM's shutdown calls this, see :func:`_stop_with_litellm`); the next login
        would start it again."""
        keeper, self._keeper, self._ready = self._keeper, None, None
        if keeper is not None:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper

    # --- one login ---------------------------------------------------------------------------------------

    async def __call__(self, result: Any) -> Any:
        """Run the handler for one login; LiteLLM's ``SSOUserDefinedValues`` or LiteLLM's ``ProxyException``."""
        openid = _openid(result)
        run = _Run(run_id=secrets.token_hex(8), openid=openid)
        try:
            values = await self._run(run)
        finally:
            self._report(run)
        if values is None:
            raise self._failure(run)
        types = _litellm("litellm.proxy._types")
        return types.SSOUserDefinedValues(**values.model_dump())

    async def _run(self, run: _Run) -> UserValues | None:
        settings = self.config.hook_settings
        host = LiteLLMHost(settings.permissions, settings.policy, self.config.model_names)
        try:
            service = await self.service()
            call = await service.call(openid=run.openid, run_id=run.run_id, host=host)
        except HookError as exc:
            run.outcome = exc.outcome
            run.error = exc.reason if isinstance(exc, HookDenied) else exc.message
            run.duration_ms = exc.duration * 1000
            run.stdout, run.stderr = exc.stdout, exc.stderr
            run.host_calls = host.calls
            return self._fallback(run)
        except Exception as exc:  # a bug below the hook still ends as a recorded, failed login
            logger.exception("hookjail: run %s failed inside the adapter", run.run_id)
            run.outcome, run.error = "error", f"internal error: {type(exc).__name__}"
            return self._fallback(run)
        run.duration_ms = call.duration * 1000
        run.stdout, run.stderr = call.stdout, call.stderr
        run.host_calls = host.calls
        try:
            values = validate_values(call.value)
        except ValuesInvalid as exc:
            run.outcome, run.error = exc.outcome, exc.message
            return self._fallback(run)
        try:
            values = apply_policy(values, settings.policy, self.config.model_names)
        except ValuesRefused as exc:  # the operator's policy: never replaced by defaults
            run.outcome, run.error = exc.outcome, exc.message
            return None
        run.outcome, run.values = "ok", values.model_dump()
        return values

    def _fallback(self, run: _Run) -> UserValues | None:
        """``on_failure: idp_defaults``: LiteLLM's defaults for a failed run (never for a denial)."""
        subject = run.openid.get("id")
        if run.outcome == "denied" or self.config.hook_settings.on_failure != "idp_defaults" or not subject:
            return None
        values = idp_defaults(subject, run.openid.get("email"))
        run.fallback, run.values = "idp_defaults", values.model_dump()
        return values

    def _failure(self, run: _Run) -> Exception:
        """LiteLLM's ``ProxyException`` for a failed login: hookjail's status and short reason, and the run id."""
        types = _litellm("litellm.proxy._types")
        if run.outcome == "denied":
            reason = one_line(run.error or "", 300).strip() or reason_for("denied")
        elif run.outcome in _JUDGED:
            reason = f"{_JUDGED[run.outcome]} ({one_line((run.error or '').split(':')[0], 80)})."
        else:
            reason = reason_for(run.outcome)
        status = status_for(run.outcome)
        error: Exception = types.ProxyException(
            message=f"{reason} (hookjail run id {run.run_id})",
            type="auth_error",
            param=f"hook_{run.outcome}",
            code=status,
        )
        return error

    def _report(self, run: _Run) -> None:
        """Log the run on LiteLLM's logger, and append it to ``hook_settings.run_log``."""
        ready = self._ready
        loaded = ready is not None and ready.done() and not ready.cancelled() and ready.exception() is None
        sha256 = ready.result().describe().short_sha256 if ready is not None and loaded else ""
        record = run.record(self.handler, sha256)
        level = logging.INFO if run.outcome == "ok" else logging.WARNING
        logger.log(
            level,
            "hookjail: hook run %s %s in %s ms%s%s",
            run.run_id,
            run.outcome,
            "-" if run.duration_ms is None else f"{run.duration_ms:.1f}",
            "" if run.error is None else f": {one_line(run.error, 500)}",
            " (idp_defaults used)" if run.fallback else "",
            extra={"hookjail_run": record},
        )
        if self.settings.run_log is not None:
            line = json.dumps(record, ensure_ascii=True, default=str) + "\n"
            try:
                with self._log_lock, self.settings.run_log.open("a", encoding="utf-8") as file:
                    file.write(line)
            except OSError as exc:
                logger.error(
                    "hookjail: cannot append to hook_settings.run_log %s: %s", self.settings.run_log, exc.strerror
                )


# --- what LiteLLM loads ------------------------------------------------------------------------------------


class _Booted:
    """The adapter of this process, once booted."""

    adapter: Adapter | None = None
    lock = threading.Lock()


def _boot() -> Adapter:
    """Read and validate the config, import the handler in the sandbox once, start the runner soon."""
    with _Booted.lock:
        if _Booted.adapter is not None:
            return _Booted.adapter
        started = time.perf_counter()
        try:
            path = find_config()
            adapter = Adapter(load_settings(path))
            layers = adapter.check_import()
        except (ConfigError, HookError) as exc:
            message = f"hookjail: {exc}"
            logger.error("%s", message)
            raise HookjailStartError(message) from None
        _Booted.adapter = adapter
        off = [name for name, value in layers.items() if value is False]
        logger.warning(
            "hookjail: custom_sso handler %s runs sandboxed (config %s; checked in %.0f ms%s)",
            adapter.handler,
            path,
            (time.perf_counter() - started) * 1000,
            f"; layers OFF: {', '.join(off)}" if off else "",
        )
        adapter.start_soon()
        _stop_with_litellm(adapter)
        return adapter


def _stop_with_litellm(adapter: Adapter) -> None:
    """Stop the runner in LiteLLM's shutdown.

    LiteLLM has no shutdown hook for a ``custom_sso``, and uvicorn re-raises the SIGTERM it caught once the
    lifespan has ended, before the event loop could cancel the task holding the runner. So the adapter wraps
    ``proxy_server.proxy_shutdown_event``, which LiteLLM's lifespan awaits at its end (looked up by name at
    that time). Without it (another LiteLLM) the runner still stops with the event loop, or at worst its
    worker template dies with LiteLLM's process (it has a parent-death signal).
    """
    server = sys.modules.get("litellm.proxy.proxy_server")
    original = getattr(server, "proxy_shutdown_event", None)
    if server is None or original is None or getattr(original, "hookjail_adapter", None) is not None:
        return

    async def proxy_shutdown_event(*args: Any, **kwargs: Any) -> Any:
        try:
            await adapter.aclose()
        except Exception:
            logger.exception("hookjail: stopping the sandboxed handler failed")
        return await original(*args, **kwargs)

    proxy_shutdown_event.hookjail_adapter = adapter  # type: ignore[attr-defined]
    proxy_shutdown_event.__wrapped__ = original  # type: ignore[attr-defined]
    setattr(server, "proxy_shutdown_event", proxy_shutdown_event)  # noqa: B010 (a module of LiteLLM's)


async def custom_sso_handler(userIDPInfo: Any) -> Any:
    """LiteLLM's ``custom_sso``: run the operator's handler in hookjail's sandbox for this login.

    Args:
        userIDPInfo: fastapi-sso's ``OpenID`` (or the dict LiteLLM may pass instead).

    Returns:
        LiteLLM's ``SSOUserDefinedValues``: the handler's values, validated and within the policy.

    Raises:
        ProxyException: LiteLLM's; the login fails with hookjail's status and a message carrying the run id.
    """
    adapter = _Booted.adapter or _boot()
    return await adapter(userIDPInfo)


# LiteLLM imports this module while loading its config: validate and check the handler now, so that a broken
# configuration or handler stops LiteLLM at start. Imported anywhere else (tests, tools), wait for first use.
if "litellm.proxy.proxy_server" in sys.modules or os.environ.get(ENV_CONFIG):
    _boot()
