"""Shadow runs: ``hook_settings.candidate`` runs on every login's OpenID after the live hook, in the background.

The candidate runs in a worker of its own (its own template and limits, the live hook's sandbox), after the
login has been decided and answered: it is never on the login's critical path and never changes its result.
Its host calls read the database and stage writes that are dropped; it creates no session. Its outcome and
values are judged as a login would judge them (:func:`proxy.rollout.evaluate`) and compared field by field
with the live decision (:func:`compare`); the comparison is kept in ``candidate_runs`` and counted in the
metrics.

Under load, at most ``max_pending`` candidate runs wait or run at once (by default twice its
``max_concurrency``); a login arriving beyond that is not shadowed (counted as ``skipped``), so a slow
candidate cannot pile up work, memory or database writes behind the live traffic.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import AsyncExitStack
from typing import Any

import anyio
from anyio.abc import TaskGroup

from .._db import CandidateRecord, Database, utcnow
from .._hook import HookService
from .._login import LiveDecision, LoginService
from .._metrics import COMPARED_FIELDS, Metrics
from .._text import ERROR_LIMIT, clip, one_line, storable
from ._evaluate import evaluate

__all__ = ("Shadow", "compare")

logger = logging.getLogger("hookjail.candidate")


def compare(
    live_outcome: str,
    live_values: Mapping[str, Any] | None,
    outcome: str,
    values: Mapping[str, Any] | None,
) -> dict[str, dict[str, Any]]:
    """How a candidate's decision differs from the live one: ``{field: {"live": ..., "candidate": ...}}`` for
    the outcome and for each value that differs (``models`` compared as a set). Empty when they agree."""
    diff: dict[str, dict[str, Any]] = {}
    if live_outcome != outcome:
        diff["outcome"] = {"live": live_outcome, "candidate": outcome}
    if live_values is None or values is None:
        return diff
    for name in COMPARED_FIELDS[1:]:
        before, after = live_values.get(name), values.get(name)
        if name == "models" and isinstance(before, list) and isinstance(after, list):
            same = sorted(map(str, before)) == sorted(map(str, after))
        else:
            same = before == after
        if not same:
            diff[name] = {"live": before, "candidate": after}
    return diff


class Shadow:
    """Runs the candidate in the shadow of each login (see the module).

    Args:
        candidate: the candidate's hook service (not started: the shadow starts and stops it).
        login: judges the candidate's values as it judges a login's.
        max_pending: the most candidate runs waiting or running at once.
    """

    def __init__(
        self,
        candidate: HookService,
        *,
        login: LoginService,
        database: Database,
        metrics: Metrics,
        max_pending: int | None = None,
    ) -> None:
        self.candidate = candidate
        self.login = login
        self.database = database
        self.metrics = metrics
        self.max_pending = max_pending or 2 * candidate.settings.max_concurrency
        self.pending = 0
        self.skipped = 0
        self._group: TaskGroup | None = None
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> Shadow:
        """Start the candidate's runner (its import is proved like the live hook's: a candidate that does not
        import stops the start, naming ``hook_settings.candidate``)."""
        await self._stack.enter_async_context(self.candidate)
        self._group = await self._stack.enter_async_context(anyio.create_task_group())
        self._stack.callback(self._group.cancel_scope.cancel)  # runs first: pending shadow runs are dropped
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._group = None
        await self._stack.aclose()

    def submit(self, live: LiveDecision) -> None:
        """Run the candidate on this login's OpenID, in the background (or count it skipped)."""
        if self._group is None or live.openid is None or live.run_id is None or live.outcome is None:
            return
        if self.pending >= self.max_pending:
            self.skipped += 1
            self.metrics.candidate_run(None)
            return
        self.pending += 1
        self._group.start_soon(self._shadow, live)

    async def _shadow(self, live: LiveDecision) -> None:
        assert live.openid is not None and live.run_id is not None and live.outcome is not None
        try:
            started_at = utcnow()
            judged = await evaluate(
                live.openid,
                hook=self.candidate,
                login=self.login,
                database=self.database,
                settings=self.candidate.settings,
                run_id=live.run_id,
            )
            diff = compare(live.outcome, live.values, judged.outcome, judged.decided)
            record = CandidateRecord(
                run_id=live.run_id,
                started_at=started_at,
                sha256=self.candidate.describe().sha256 or None,
                outcome=judged.outcome,
                decided=judged.decided,
                diff=diff,
                duration_ms=judged.duration_ms,
                error=None if judged.error is None else storable(clip(judged.error, ERROR_LIMIT), ERROR_LIMIT),
            )
            self.metrics.candidate_run(diff)
            if diff:
                logger.info(
                    "candidate differs on run %s: %s",
                    live.run_id,
                    one_line(", ".join(sorted(diff))),
                    extra={"event": "candidate_run", "run_id": live.run_id, "outcome": judged.outcome},
                )
            await self.database.record_candidate(record)
        except Exception:
            logger.exception("shadow run of the candidate for run %s failed inside the proxy", live.run_id)
        finally:
            self.pending -= 1
