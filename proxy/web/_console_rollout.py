"""The admin console's safe-rollout pages (``hook_settings.candidate``, the kept hook versions), for admins only
(the :data:`~proxy.web._web.Admin` dependency), rendered as every console page (:mod:`._console_pages`).

- ``/ui/candidate``: the candidate (its dotted name, version, limits, permissions), how often it agreed with the
  live hook over its newest shadow runs, the shadow runs skipped since start-up, the fields it differs on and
  the logins it differs on (each linking to its run). Without a candidate, how to configure one.
- ``/ui/versions``: every hook version kept, newest load first, with its runs counted by outcome and its shadow
  runs, the live one and the candidate marked; a form to compare two.
- ``/ui/versions/diff?from=<sha>&to=<sha>``: a unified diff of two versions' kept sources (8 to 64 hex
  digits each, a prefix naming one version): 400 for a malformed parameter, 404 for an unknown version.

The run page (``/ui/runs/{run_id}``) shows the version that served the run and the candidate's shadow run
(:func:`run_rollout`). Everything the hook returned or its source says is shown through
:func:`._console_pages.hook_text` rules (control and bidirectional-text characters escaped), then autoescaped.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import func, select

from .._db import CandidateRun, Database, HookRun, HookVersion
from .._hook import HookService
from .._metrics import COMPARED_FIELDS
from .._text import jsonable, one_line, printable
from ._console_pages import render
from ._web import Admin, DatabaseDep, HookDep, WebDep

__all__ = (
    "MAX_CANDIDATE_RUNS",
    "CandidateSummary",
    "FieldDiff",
    "parse_sha",
    "router",
    "run_rollout",
    "source_diff",
    "summarize_candidate",
)

#: How many of the candidate's newest shadow runs the candidate page judges it on.
MAX_CANDIDATE_RUNS = 200
#: The most lines a version diff shows (the rest is cut, and the page says so).
MAX_DIFF_LINES = 5000
#: The most source lines (both versions together) the diff page compares: difflib's matching can take time
#: quadratic in them, on the proxy's own CPU.
MAX_DIFFED_LINES = 10_000
#: The longest value of a field shown in a diff cell.
MAX_VALUE_CHARS = 500
_HEX = re.compile(r"^[0-9a-f]+$")

router = APIRouter(include_in_schema=False)


# --- shown values ----------------------------------------------------------------------------------------------


def shown(value: Any) -> str:
    """A compared value on one line: JSON (so ``null``, ``"5"`` and ``5`` differ), control characters escaped."""
    return one_line(json.dumps(jsonable(value), ensure_ascii=False), MAX_VALUE_CHARS)


def short(sha256: str | None) -> str:
    """The first 12 hex digits of a SHA-256, as the console names a version."""
    return (sha256 or "")[:12]


@dataclass(frozen=True)
class FieldDiff:
    """One field a candidate decided otherwise than the live hook."""

    name: str
    live: str
    candidate: str


def _field_order(name: str) -> tuple[int, str]:
    return (COMPARED_FIELDS.index(name), "") if name in COMPARED_FIELDS else (len(COMPARED_FIELDS), name)


def field_diffs(diff: Mapping[str, Any] | None) -> list[FieldDiff]:
    """A candidate run's ``diff`` as rows, in the order of :data:`~proxy._metrics.COMPARED_FIELDS`."""
    rows: list[FieldDiff] = []
    for name in sorted(diff or {}, key=_field_order):
        pair = (diff or {})[name]
        pair = pair if isinstance(pair, dict) else {}
        rows.append(FieldDiff(one_line(str(name), 64), shown(pair.get("live")), shown(pair.get("candidate"))))
    return rows


# --- the candidate page ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Differing:
    """A login the candidate decided otherwise."""

    run_id: str
    started_at: datetime
    subject: str | None
    user_id: str | None
    live_outcome: str | None
    outcome: str
    fields: list[FieldDiff]


@dataclass
class CandidateSummary:
    """How the candidate's newest shadow runs compare with the live decisions."""

    runs: int = 0
    agree: int = 0
    #: ``(field, how many runs differ on it)``, most first
    fields: list[tuple[str, int]] = field(default_factory=list)
    differing: list[Differing] = field(default_factory=list)

    @property
    def differ(self) -> int:
        return self.runs - self.agree

    @property
    def rate(self) -> float | None:
        """The share of runs that agreed, in percent (``None`` without runs)."""
        return None if not self.runs else 100.0 * self.agree / self.runs


def summarize_candidate(rows: list[tuple[CandidateRun, HookRun | None]]) -> CandidateSummary:
    """The agreement of these candidate runs (newest first) and the logins they differ on."""
    summary = CandidateSummary(runs=len(rows))
    counted: Counter[str] = Counter()
    for candidate, run in rows:
        if candidate.agrees:
            summary.agree += 1
            continue
        diffs = field_diffs(candidate.diff)
        counted.update(diff.name for diff in diffs)
        summary.differing.append(
            Differing(
                run_id=candidate.run_id,
                started_at=candidate.started_at,
                subject=run.subject if run else None,
                user_id=run.user_id if run else None,
                live_outcome=run.outcome if run else None,
                outcome=candidate.outcome,
                fields=diffs,
            )
        )
    summary.fields = sorted(counted.items(), key=lambda item: (-item[1], _field_order(item[0])))
    return summary


async def candidate_runs(
    database: Database, sha256: str | None, limit: int = MAX_CANDIDATE_RUNS
) -> list[tuple[CandidateRun, HookRun | None]]:
    """The newest shadow runs of the candidate version ``sha256`` (of any version when ``None``), each with
    its login's run."""
    query = select(CandidateRun, HookRun).join(HookRun, HookRun.run_id == CandidateRun.run_id, isouter=True)
    if sha256:
        query = query.where(CandidateRun.sha256 == sha256)
    query = query.order_by(CandidateRun.started_at.desc(), CandidateRun.run_id.desc()).limit(limit)
    async with database.session() as session:
        return [(candidate, run) for candidate, run in (await session.execute(query)).all()]


async def shadow_counts(database: Database) -> dict[str, tuple[int, int]]:
    """Candidate version -> (its shadow runs, how many agreed)."""
    query = select(CandidateRun.sha256, CandidateRun.agrees, func.count()).group_by(
        CandidateRun.sha256, CandidateRun.agrees
    )
    counts: dict[str, tuple[int, int]] = {}
    async with database.session() as session:
        for sha256, agrees, count in (await session.execute(query)).all():
            runs, agreed = counts.get(str(sha256), (0, 0))
            counts[str(sha256)] = (runs + int(count), agreed + (int(count) if agrees else 0))
    return counts


def _limits(hook: HookService) -> list[tuple[str, str]]:
    shown_limits = [
        (item.name, "—" if getattr(hook.limits, item.name) is None else str(getattr(hook.limits, item.name)))
        for item in dataclasses.fields(hook.limits)
    ]
    permissions = hook.settings.permissions
    return [*shown_limits, ("host calls granted", ", ".join(permissions) if permissions else "none")]


# --- the versions page -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionRow:
    """A kept version as the versions page lists it."""

    version: HookVersion
    counts: list[tuple[str, int]]
    runs: int
    live: bool
    candidate: bool
    shadow_runs: int = 0
    shadow_agree: int = 0

    @property
    def ok_share(self) -> float | None:
        ok = dict(self.counts).get("ok", 0)
        return None if not self.runs else 100.0 * ok / self.runs

    @property
    def short(self) -> str:
        return short(self.version.sha256)


def parse_sha(params: Mapping[str, str], name: str) -> tuple[str | None, str | None]:
    """A version's SHA-256 or prefix from the query string (lower-cased), or what is wrong with it."""
    text = params.get(name, "").strip().lower()
    if not text:
        return None, f"{name}: required (a version's SHA-256, or at least its first 8 hex digits)"
    if len(text) > 64 or len(text) < 8 or not text.isascii() or not _HEX.match(text):
        return None, f"{name}: a version's SHA-256, or at least its first 8 hex digits (8 to 64 of 0-9, a-f)"
    return text, None


@dataclass(frozen=True)
class DiffLine:
    """One line of a unified diff: ``kind`` is ``file``, ``hunk``, ``add``, ``del`` or ``same``."""

    kind: str
    text: str


def _lines(sources: Mapping[str, str], path: str) -> list[str]:
    return sources[path].splitlines() if path in sources else []


def source_diff(
    old: Mapping[str, str], new: Mapping[str, str], old_name: str, new_name: str, *, limit: int = MAX_DIFF_LINES
) -> tuple[list[DiffLine], bool]:
    """A unified diff of two versions' sources (file by file, by path; two single modules with one another
    whatever their names), and whether it was cut at ``limit`` lines. Every line is
    :func:`~proxy._text.printable`: a bidirectional-text control in a source cannot reorder what the admin
    reads."""
    found: list[DiffLine] = []
    if len(old) == len(new) == 1:  # one module each (custom_sso.py and candidate_sso.py): compared, not swapped
        ((old_path, old_text),), ((new_path, new_text),) = old.items(), new.items()
        pairs = [(old_path, old_text.splitlines(), new_path, new_text.splitlines())]
    else:
        pairs = [(path, _lines(old, path), path, _lines(new, path)) for path in sorted(set(old) | set(new))]
    for old_path, before_lines, new_path, after_lines in pairs:
        before = f"{old_name}/{old_path}" if old_path in old else "/dev/null"
        after = f"{new_name}/{new_path}" if new_path in new else "/dev/null"
        diff = difflib.unified_diff(before_lines, after_lines, fromfile=before, tofile=after, lineterm="")
        for index, line in enumerate(diff):
            if len(found) >= limit:
                return found, True
            if index < 2:  # the file's "---" and "+++" header
                kind = "file"
            elif line.startswith("@@"):
                kind = "hunk"
            else:
                kind = {"+": "add", "-": "del"}.get(line[:1], "same")
            found.append(DiffLine(kind, printable(line)))
    return found, False


# --- the run page ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CandidateBlock:
    """The candidate's shadow run of one login, as the run page shows it."""

    outcome: str
    sha256: str | None
    values: str
    diff: list[FieldDiff]
    duration_ms: float | None
    error: str
    started_at: datetime


async def run_rollout(database: Database, run: HookRun) -> dict[str, Any]:
    """What the run page shows of safe rollout: the version that served ``run`` (``version``: its SHA-256;
    ``version_kept``) and the candidate's shadow run of it (``candidate``, or ``None``)."""
    async with database.session() as session:
        kept = run.hook_sha256 is not None and await session.get(HookVersion, run.hook_sha256) is not None
        shadow = await session.get(CandidateRun, run.run_id)
    block = None
    if shadow is not None:
        block = CandidateBlock(
            outcome=shadow.outcome,
            sha256=shadow.sha256,
            values=json.dumps(jsonable(shadow.decided), indent=2, ensure_ascii=False) if shadow.decided else "",
            diff=field_diffs(shadow.diff),
            duration_ms=shadow.duration_ms,
            error=printable(shadow.error or ""),
            started_at=shadow.started_at,
        )
    granted = json.dumps(jsonable(run.decided), indent=2, ensure_ascii=False) if run.decided else ""
    return {"version": run.hook_sha256, "version_kept": kept, "candidate": block, "granted": printable(granted)}


# --- the routes ------------------------------------------------------------------------------------------------


def _current(hook: HookService | None) -> str | None:
    return (hook.describe().sha256 or None) if hook is not None else None


def _diff_limiter(request: Request) -> anyio.CapacityLimiter:
    """One diff at a time per proxy, whoever asks (made on first use, in the app's event loop)."""
    state = request.app.state
    limiter: anyio.CapacityLimiter | None = getattr(state, "diff_limiter", None)
    if limiter is None:
        limiter = state.diff_limiter = anyio.CapacityLimiter(1)
    return limiter


@router.get("/ui/candidate")
async def candidate_page(request: Request, user: Admin, web: WebDep, database: DatabaseDep, hook: HookDep) -> Response:
    config = web.settings.config
    shadow = request.app.state.shadow
    if config.candidate is None:
        return render(request, "candidate.html", user, section="candidate", target=None, shadow=None)
    candidate: HookService | None = shadow.candidate if shadow is not None else None
    sha256 = _current(candidate)
    rows = await candidate_runs(database, sha256)
    shadows = await shadow_counts(database)
    others = sum(runs for version, (runs, _) in shadows.items() if version != sha256) if sha256 else 0
    return render(
        request,
        "candidate.html",
        user,
        section="candidate",
        target=config.candidate,
        shadow=shadow,
        source=candidate.describe() if candidate is not None else None,
        limits=_limits(candidate) if candidate is not None else [],
        live_sha256=_current(hook),
        live_target=config.hook,
        summary=summarize_candidate(rows),
        window=MAX_CANDIDATE_RUNS,
        others=others,
        short=short,
    )


@router.get("/ui/versions")
async def versions_page(request: Request, user: Admin, database: DatabaseDep, hook: HookDep) -> Response:
    live = _current(hook)
    shadow = request.app.state.shadow
    candidate = _current(shadow.candidate) if shadow is not None else None
    shadows = await shadow_counts(database)
    rows = [
        VersionRow(
            version=version,
            counts=sorted(counts.items(), key=lambda item: (-item[1], item[0])),
            runs=sum(counts.values()),
            live=version.sha256 == live,
            candidate=version.sha256 == candidate,
            shadow_runs=shadows.get(version.sha256, (0, 0))[0],
            shadow_agree=shadows.get(version.sha256, (0, 0))[1],
        )
        for version, counts in await database.versions()
    ]
    return render(
        request,
        "versions.html",
        user,
        section="versions",
        rows=rows,
        versions=[row.version for row in rows],
        live=live,
        candidate=candidate,
        picked={},
        short=short,
    )


@router.get("/ui/versions/diff")
async def diff_page(request: Request, user: Admin, database: DatabaseDep) -> Response:
    params = request.query_params
    versions = [version for version, _ in await database.versions()]
    picked = {name: params.get(name, "")[:64] for name in ("from", "to")}
    context: dict[str, Any] = {"section": "versions", "versions": versions, "picked": picked, "short": short}
    if not params.get("from", "").strip() and not params.get("to", "").strip():
        return render(request, "diff.html", user, errors=[], **context)
    found = await _picked_versions(params, database)
    if isinstance(found, tuple):
        status, errors = found
        return render(request, "diff.html", user, status=status, errors=errors, **context)
    old, new = found
    missing = [version for version in found if version.sources is None]
    lines: list[DiffLine] = []
    cut = False
    total = sum(text.count("\n") + 1 for version in found for text in (version.sources or {}).values())
    too_large = total if total > MAX_DIFFED_LINES else 0
    if not missing and not too_large:
        lines, cut = await anyio.to_thread.run_sync(
            lambda: source_diff(old.sources or {}, new.sources or {}, short(old.sha256), short(new.sha256)),
            limiter=_diff_limiter(request),
        )
    return render(
        request,
        "diff.html",
        user,
        errors=[],
        old=old,
        new=new,
        missing=missing,
        lines=lines,
        cut=cut,
        too_large=too_large,
        max_diffed=MAX_DIFFED_LINES,
        max_lines=MAX_DIFF_LINES,
        **context,
    )


async def _picked_versions(params: Mapping[str, str], database: Database) -> list[HookVersion] | tuple[int, list[str]]:
    """The two kept versions ``from`` and ``to`` name, or the page's status and errors."""
    shas = [parse_sha(params, "from"), parse_sha(params, "to")]
    errors = [error for _, error in shas if error]
    if errors:
        return 400, errors
    found: list[HookVersion] = []
    for name, (sha, _) in zip(("from", "to"), shas, strict=True):
        version = await database.get_version(sha or "")
        if version is None:
            text = f"{name}: no kept version's SHA-256 is or starts with {sha} (or several do: give more digits)"
            return 404, [text]
        found.append(version)
    return found
