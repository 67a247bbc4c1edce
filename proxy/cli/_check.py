"""``hookjail check``: confine and import the hook, run it once on a sample (or given) OpenID, validate the
result.

The same path a login takes, without the identity provider and the database: the hook's host calls
(``user_info``, ...) are answered by an empty in-memory host granting ``hook_settings.permissions``, so a
lookup finds nobody, as on a first login (``--no-host`` refuses them instead). The pieces shared with
``hookjail bench`` live here too: reading an OpenID, the host, and judging a result as a login would.

Everything the hook said (stdout, stderr, error messages, tracebacks, values) reaches the terminal with its
control characters escaped (:func:`proxy._text.printable`), and multi-line text is indented, so a hook cannot
clear the screen, set the clipboard or print a line that looks like the report's own; ``--json`` is JSON,
with values that are not plain data shown as strings naming their type.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner import HookDenied, HookError, HookRunner, HostHandler
from sdk.testing import SAMPLE_OPENID

from .._config import ProxyConfig
from .._errors import ConfigError
from .._hook import runner_options
from .._openid import OpenIDInvalid, parse_openid
from .._text import ERROR_LIMIT, STREAM_LIMIT, TRACEBACK_LIMIT, clip, jsonable, one_line, printable
from .._values import ValuesInvalid, ValuesRefused, apply_policy, validate_values

__all__ = (
    "SAMPLE_OPENID",
    "CheckReport",
    "Verdict",
    "empty_host",
    "format_layers",
    "judge",
    "load_openid",
    "run_check",
)


def load_openid(text: str | None = None, *, path: str | None = None) -> dict[str, Any] | None:
    """The OpenID given on the command line (``--openid JSON`` or ``--openid-file PATH``), validated as
    fastapi-sso's ``OpenID``; ``None`` when neither is given (the sample user is used).

    Raises:
        ConfigError: the file cannot be read, or its content is not an OpenID JSON object.
    """
    source = "--openid"
    if path is not None:
        source = f"--openid-file {path}"
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read the file: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{source}: not a UTF-8 text file") from None
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{source}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a JSON object, got {type(data).__name__}")
    try:
        return parse_openid(data)
    except OpenIDInvalid as exc:
        raise ConfigError(f"{source}: not a valid OpenID: {exc}") from None


def empty_host(config: ProxyConfig) -> HostHandler:
    """An empty in-memory host granting ``hook_settings.permissions`` (a fresh one per call): ``user_info``
    finds nobody, ``new_user`` creates in memory only — as on a first login, with nothing written anywhere."""
    from sdk.testing import FakeHost  # noqa: PLC0415 (only the CLI needs the SDK's test host)

    return FakeHost(grants=config.hook_settings.permissions)


def host_description(config: ProxyConfig, *, host: bool) -> str:
    """One line saying how host calls are answered."""
    if not host:
        return "refused (--no-host)"
    granted = ", ".join(config.hook_settings.permissions) or "none"
    return f"an empty in-memory host, as for a first login (granted: {granted})"


@dataclass(frozen=True)
class Verdict:
    """What a login would make of a hook's result: ``outcome`` "ok", "invalid" or "refused"."""

    outcome: str
    values: dict[str, Any] | None
    error: str | None = None


def judge(value: Any, config: ProxyConfig) -> Verdict:
    """Validate a hook's result and apply ``hook_settings.policy``, as a login does."""
    try:
        values = apply_policy(validate_values(value), config.hook_settings.policy, config.model_names)
    except (ValuesInvalid, ValuesRefused) as exc:
        # the values as the hook returned them, shown even when they are not plain data (bytes, sets, ...)
        return Verdict(exc.outcome, jsonable(value) if isinstance(value, dict) else None, exc.message)
    return Verdict("ok", values.model_dump())


def format_layers(layers: dict[str, bool | str]) -> list[str]:
    """The sandbox layers as aligned lines (``on``/``off`` or the layer's own detail), escaped."""
    if not layers:
        return ["  (none reported)"]
    shown = {
        one_line(str(name), 80): one_line("on" if value is True else "OFF" if value is False else str(value), 200)
        for name, value in layers.items()
    }
    width = max(len(name) for name in shown)
    return [f"  {name:<{width}}  {value}" for name, value in shown.items()]


def _block(label: str, text: str) -> list[str]:
    """Hook-derived text under ``label``: escaped, one ``  | `` line per line, so no line of it can pass for
    a line of the report."""
    return [f"{label}:", *("  | " + line for line in printable(text).rstrip("\n").split("\n"))]


@dataclass
class CheckReport:
    """What ``hookjail check`` found (``--json`` prints :meth:`as_dict`).

    ``outcome`` is "ok", a runner outcome ("raised", "timeout", ...), "invalid", "refused", or "denied" when the
    hook refused the user on purpose (``raise Deny(reason)``): then ``error`` is the hook's reason, the text a
    login's 403 page would show.
    """

    outcome: str
    values: dict[str, Any] | None = None
    error: str | None = None
    duration_ms: float | None = None
    stdout: str = ""
    stderr: str = ""
    run_id: str | None = None
    layers: dict[str, bool | str] = field(default_factory=dict)
    host_calls: tuple[tuple[str, str], ...] = ()
    host: str = ""
    traceback: str = ""  # the hook's traceback excerpt (text output only; not part of the JSON contract)

    def __post_init__(self) -> None:
        # the worker's word, bounded here whatever the runner already bounded
        if self.error is not None:
            self.error = clip(self.error, ERROR_LIMIT)
        self.stdout = clip(self.stdout, STREAM_LIMIT)
        self.stderr = clip(self.stderr, STREAM_LIMIT)
        self.traceback = clip(self.traceback, TRACEBACK_LIMIT)

    @property
    def ok(self) -> bool:
        """Whether the hook ran and its values passed validation and policy."""
        return self.outcome == "ok"

    def as_dict(self) -> dict[str, Any]:
        """The report as the JSON object ``--json`` prints (a stable contract: exactly these keys)."""
        return {
            "outcome": self.outcome,
            "values": jsonable(self.values),
            "error": self.error,
            "duration_ms": self.duration_ms,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "run_id": self.run_id,
            "layers": self.layers,
        }

    def as_text(self) -> str:
        """The report for people."""
        lines = [f"outcome:  {one_line(self.outcome, 80)}"]
        if self.run_id:
            lines.append(f"run id:   {one_line(self.run_id, 80)}")
        if self.duration_ms is not None:
            lines.append(f"duration: {self.duration_ms:.1f} ms")
        if self.layers:
            lines.append("sandbox layers:")
            lines += format_layers(self.layers)
        if self.host:
            lines.append(f"host calls: {self.host}")
            lines += [f"  {one_line(method, 80)} -> {one_line(outcome, 80)}" for method, outcome in self.host_calls]
        if self.values is not None:
            lines.append("values:")
            # JSON with ensure_ascii escapes every control and non-ASCII character of the hook's strings
            lines += ["  " + line for line in json.dumps(jsonable(self.values), indent=2).splitlines()]
        if self.outcome == "denied":
            # the hook's reason, escaped like any hook text; shown to the user as it is on the login error page
            reason = printable(self.error or "").split("\n")
            lines.append(f"reason:   {reason[0]}")
            lines += ["  | " + line for line in reason[1:]]
            lines.append("  (the hook refused this user on purpose: a login gets HTTP 403 and this reason)")
        elif self.error:
            error = printable(self.error).split("\n")
            lines.append(f"error:    {error[0]}")
            lines += ["  | " + line for line in error[1:]]
        if self.traceback:
            lines += _block("traceback", self.traceback)
        for name in ("stdout", "stderr"):
            text = getattr(self, name)
            if text:
                lines += _block(name, text)
        return "\n".join(lines)


async def run_check(
    config: ProxyConfig,
    openid: dict[str, Any] | None = None,
    *,
    allow_weak_sandbox: bool = False,
    host: bool = True,
) -> CheckReport:
    """Run the configured hook once through the sandbox and validate what it returns.

    Args:
        config: the validated configuration.
        openid: the user (default: :data:`SAMPLE_OPENID`).
        allow_weak_sandbox: run even if a confinement layer is unavailable.
        host: answer host calls from an empty in-memory host (``False``: refuse them).
    """
    if config.hook is None:
        return CheckReport(outcome="import_error", error="general_settings.custom_sso is not set")
    spec, limits, sandbox = runner_options(config, allow_weak_sandbox=allow_weak_sandbox)
    run_id = secrets.token_hex(8)
    described = host_description(config, host=host)
    try:
        async with HookRunner(spec, limits, sandbox) as runner:
            layers = runner.report_layers()
            try:
                result = await runner.call(
                    openid if openid is not None else SAMPLE_OPENID,
                    run_id=run_id,
                    host=empty_host(config) if host else None,
                )
            except HookError as exc:
                return CheckReport(
                    outcome=exc.outcome,
                    # a denial's reason is what the user would read: report it as it is, like the run record
                    error=exc.reason if isinstance(exc, HookDenied) else exc.message,
                    duration_ms=exc.duration * 1000,
                    stdout=exc.stdout,
                    stderr=exc.stderr,
                    run_id=exc.run_id or run_id,
                    layers=layers,
                    host=described,
                    traceback=_traceback(exc),
                )
    except HookError as exc:
        return CheckReport(
            outcome=exc.outcome, error=exc.message, stdout=exc.stdout, stderr=exc.stderr, traceback=_traceback(exc)
        )
    verdict = judge(result.value, config)
    return CheckReport(
        outcome=verdict.outcome,
        values=verdict.values,
        error=verdict.error,
        duration_ms=result.duration * 1000,
        stdout=result.stdout,
        stderr=result.stderr,
        run_id=result.run_id,
        layers=layers,
        host_calls=result.host_calls,
        host=described,
    )


def _traceback(exc: HookError) -> str:
    """The traceback excerpt a ``raised`` or ``import_error`` failure carries (``""`` for the others)."""
    traceback = getattr(exc, "traceback", "")
    return traceback if isinstance(traceback, str) else ""
