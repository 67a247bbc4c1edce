"""Hostile hooks run through the real runner: a hook writes what it observed into its return value."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from runner import CallResult, HookRunner, HookSpec, Limits, Sandbox

# Prepended to every hook: ``observe(fn)`` -> {"value": ...} or {"errno": "EACCES", "type": ...}.
PRELUDE = """\
import errno as _errno


def observe(fn):
    try:
        return {"value": fn()}
    except OSError as exc:
        code = exc.errno
        name = _errno.errorcode.get(code, code) if isinstance(code, int) and code > 0 else code
        return {"errno": name, "type": type(exc).__name__}
    except Exception as exc:
        return {"raised": type(exc).__name__, "message": str(exc)}

"""

LIMITS = Limits(timeout=10.0, prefork=1)


def write_hook(operator_dir: Path, source: str, name: str = "custom_sso.py") -> HookSpec:
    """Write a hook next to the operator's config.yaml (as LiteLLM's seed does) and return its spec."""
    path = operator_dir / name
    path.write_text(PRELUDE + textwrap.dedent(source))
    return HookSpec(path=str(path), function="handler")


def sandbox(operator_dir: Path, **options: Any) -> Sandbox:
    """The strict sandbox, granting the operator's data file ``allowed.csv`` (and nothing else beside it)."""
    options.setdefault("read_paths", (str(operator_dir / "allowed.csv"),))
    return Sandbox(strict=True, **options)


async def call_once(spec: HookSpec, box: Sandbox, arg: Any = None) -> CallResult:
    """Start a runner, make one call, stop it."""
    async with HookRunner(spec, LIMITS, box) as runner:
        return await runner.call(arg if arg is not None else {"id": "u1", "email": "a@example.com"})


async def hook_value(operator_dir: Path, source: str) -> Any:
    """Write ``source`` as the hook (see :func:`write_hook`), call it once in the strict sandbox; what it returned."""
    return (await call_once(write_hook(operator_dir, source), sandbox(operator_dir))).value
