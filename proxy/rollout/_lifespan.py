"""Safe rollout, wired into the proxy's lifespan: every hook version kept, the candidate's shadow started, and
recorded login inputs deleted after ``hook_settings.record_retention_days``."""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from datetime import timedelta

import anyio

from runner import HookImportError

from .._config import ProxyConfig
from .._db import Database, utcnow
from .._errors import ProxyError
from .._hook import HookService
from .._login import LoginService
from .._metrics import Metrics
from .._text import one_line
from ._shadow import Shadow

__all__ = ("PURGE_INTERVAL", "CandidateUnusable", "purge_expired_inputs", "start_rollout")

logger = logging.getLogger("hookjail.rollout")

#: How often recorded login inputs past their retention are deleted (also once at start).
PURGE_INTERVAL = 3600.0


class CandidateUnusable(ProxyError):
    """``hook_settings.candidate`` does not import or is not a usable handler (the message says why)."""


async def purge_expired_inputs(database: Database, retention_days: int) -> int:
    """Delete the login inputs older than the retention; how many were deleted."""
    deleted = await database.purge_inputs(utcnow() - timedelta(days=retention_days))
    if deleted:
        logger.info("deleted %d recorded login inputs older than %d days", deleted, retention_days)
    return deleted


async def _keep_purging(database: Database, retention_days: int) -> None:
    while True:
        try:
            await purge_expired_inputs(database, retention_days)
        except Exception:
            logger.exception("could not delete expired login inputs")
        await anyio.sleep(PURGE_INTERVAL)


async def _keep_version(database: Database, hook: HookService) -> None:
    try:
        await database.record_version(hook.version())
    except Exception:
        logger.exception("could not keep version %s of hook %s", hook.describe().short_sha256, hook.target.dotted)


async def start_rollout(
    stack: AsyncExitStack,
    *,
    config: ProxyConfig,
    hook: HookService | None,
    database: Database,
    login: LoginService,
    metrics: Metrics,
    allow_weak_sandbox: bool = False,
) -> Shadow | None:
    """Start what safe rollout needs for the proxy's lifetime (stopped with ``stack``): keep the live hook's
    versions, run the candidate in the shadow of logins, purge expired inputs.

    Raises:
        CandidateUnusable: the candidate does not import, or the sandbox it needs is unavailable.
    """
    if hook is not None:
        hook.on_load = database.record_version
        await _keep_version(database, hook)
    shadow: Shadow | None = None
    if config.candidate is not None:
        candidate = HookService(config, allow_weak_sandbox=allow_weak_sandbox, candidate=True)
        shadow = Shadow(candidate, login=login, database=database, metrics=metrics)
        try:
            await stack.enter_async_context(shadow)
        except HookImportError as exc:
            raise CandidateUnusable(
                f"the candidate {config.candidate.dotted} cannot be used: {one_line(exc.message)}"
            ) from None
        candidate.on_load = database.record_version
        await _keep_version(database, candidate)
        login.shadow = shadow
        logger.info("candidate %s runs in the shadow of every login", config.candidate.dotted)
    # last, so that a failure to start above is not wrapped in this group's exception group
    group = await stack.enter_async_context(anyio.create_task_group())
    stack.callback(group.cancel_scope.cancel)
    group.start_soon(_keep_purging, database, config.hook_settings.record_retention_days)
    return shadow
