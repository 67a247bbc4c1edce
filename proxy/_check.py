"""``hookjail check``: confine and import the hook, run it once on a sample (or given) OpenID, validate the
result.

The same path a login takes, without the identity provider and the database.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from runner import HookError, HookRunner

from ._config import ProxyConfig
from ._hook import runner_options
from ._values import ValuesInvalid, ValuesRefused, apply_policy, validate_values

__all__ = ("SAMPLE_OPENID", "CheckReport", "run_check")

SAMPLE_OPENID: dict[str, Any] = {
    "id": "check-user",
    "email": "check-user@example.com",
    "first_name": "Check",
    "last_name": "User",
    "display_name": "Check User",
    "picture": None,
    "provider": "generic",
}


@dataclass
class CheckReport:
    """What ``hookjail check`` found (``--json`` prints :meth:`as_dict`)."""

    outcome: str
    values: dict[str, Any] | None = None
    error: str | None = None
    duration_ms: float | None = None
    stdout: str = ""
    stderr: str = ""
    run_id: str | None = None
    layers: dict[str, bool | str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether the hook ran and its values passed validation and policy."""
        return self.outcome == "ok"

    def as_dict(self) -> dict[str, Any]:
        """The report as the JSON object ``--json`` prints."""
        return {
            "outcome": self.outcome,
            "values": self.values,
            "error": self.error,
            "duration_ms": self.duration_ms,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "run_id": self.run_id,
            "layers": self.layers,
        }

    def as_text(self) -> str:
        """The report for people."""
        lines = [f"outcome:  {self.outcome}"]
        if self.run_id:
            lines.append(f"run id:   {self.run_id}")
        if self.duration_ms is not None:
            lines.append(f"duration: {self.duration_ms:.1f} ms")
        if self.layers:
            lines.append("sandbox layers:")
            width = max(len(name) for name in self.layers)
            lines += [f"  {name:<{width}}  {value}" for name, value in self.layers.items()]
        if self.values is not None:
            lines.append("values:")
            lines += ["  " + line for line in json.dumps(self.values, indent=2).splitlines()]
        if self.error:
            lines.append(f"error:    {self.error}")
        for name in ("stdout", "stderr"):
            text = getattr(self, name)
            if text:
                lines.append(f"{name}:")
                lines += ["  | " + line for line in text.rstrip("\n").splitlines()]
        return "\n".join(lines)


async def run_check(
    config: ProxyConfig, openid: dict[str, Any] | None = None, *, allow_weak_sandbox: bool = False
) -> CheckReport:
    """Run the configured hook once through the sandbox and validate what it returns."""
    if config.hook is None:
        return CheckReport(outcome="import_error", error="general_settings.custom_sso is not set")
    spec, limits, sandbox = runner_options(config, allow_weak_sandbox=allow_weak_sandbox)
    run_id = secrets.token_hex(8)
    try:
        async with HookRunner(spec, limits, sandbox) as runner:
            layers = runner.layers
            try:
                result = await runner.call(openid if openid is not None else SAMPLE_OPENID, run_id=run_id)
            except HookError as exc:
                return CheckReport(
                    outcome=exc.outcome,
                    error=exc.message,
                    duration_ms=exc.duration * 1000,
                    stdout=exc.stdout,
                    stderr=exc.stderr,
                    run_id=exc.run_id or run_id,
                    layers=layers,
                )
    except HookError as exc:
        return CheckReport(outcome=exc.outcome, error=exc.message, stdout=exc.stdout, stderr=exc.stderr)
    report = CheckReport(
        outcome="ok",
        duration_ms=result.duration * 1000,
        stdout=result.stdout,
        stderr=result.stderr,
        run_id=result.run_id,
        layers=layers,
    )
    try:
        values = validate_values(result.value)
        apply_policy(values, config.hook_settings.policy, config.model_names)
    except (ValuesInvalid, ValuesRefused) as exc:
        report.outcome, report.error = exc.outcome, exc.message
        report.values = result.value if isinstance(result.value, dict) else None
        return report
    report.values = values.model_dump()
    return report
