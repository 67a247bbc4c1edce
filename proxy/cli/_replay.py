"""``hookjail replay``: run a candidate hook on recorded (or given) logins and show what would change.

The inputs are the OpenIDs the newest logins' hook saw (``hook_settings.record_inputs`` keeps them, table
``login_inputs``), each compared with what the live hook decided then (the run's outcome and granted values);
or a JSON-lines file of OpenIDs, each run through the configured live hook too, for its side of the comparison.

The candidate is a file (``path.py:function``, a package directory too) or a version the proxy kept (its
SHA-256 or a unique prefix of at least 8 hex digits, ``sha256:function`` to name another function), whose
sources are written to a temporary directory. It runs in the live hook's sandbox with its limits and
``hook_settings.candidate_settings`` applied, exactly as the shadow runs of ``hook_settings.candidate`` do:
judged as a login would judge it (:func:`proxy.rollout.evaluate`), its host calls answered from the database
read-only (writes are staged and dropped), and compared field by field (:func:`proxy.rollout.compare`).
Nothing is written to the database.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import secrets
import shutil
import tempfile
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import anyio
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from runner import HookImportError, SandboxUnavailable

from .._config import HookTarget, ProxyConfig, resolve_reference
from .._db import Database, HookVersion, normalize_url
from .._errors import ConfigError
from .._hook import HookService
from .._login import LoginService, _with_identity
from .._openid import OpenIDInvalid, parse_openid
from .._sessions import SessionCodec
from .._sso import SSOSettings, sso_settings_from_env
from .._text import clip, one_line
from ..rollout import compare, evaluate

__all__ = (
    "EXIT_BREAKS",
    "EXIT_CHANGED",
    "EXIT_SAME",
    "EXIT_UNUSABLE",
    "EXIT_USAGE",
    "ReplayError",
    "ReplayInput",
    "ReplayReport",
    "ReplayResult",
    "run_replay",
)

#: Exit codes: nothing changes; values (or an outcome) change; a login that succeeded would now fail.
EXIT_SAME, EXIT_CHANGED, EXIT_BREAKS = 0, 1, 2
#: Exit codes: bad arguments, configuration, database or inputs; a hook that cannot be run.
EXIT_USAGE, EXIT_UNUSABLE = 3, 4

#: The default number of recorded logins replayed (``--last``).
DEFAULT_LAST = 500

_SHA256_PREFIX = re.compile(r"[0-9a-fA-F]{8,64}")
#: What a candidate's error, a subject and a value may take in the text table.
_ERROR_WIDTH, _SUBJECT_WIDTH, _VALUE_WIDTH = 100, 28, 48


class ReplayError(Exception):
    """Replay cannot run: the message names the problem, ``code`` is the exit code."""

    def __init__(self, message: str, *, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class ReplayInput:
    """One login to replay.

    Attributes:
        openid: the OpenID the hook sees (with ``email_verified``, ``subject`` and ``issuer``).
        run_id: the recorded run it fed (``None`` for an ``--openids`` line).
        line: its line in the ``--openids`` file (``None`` for a recorded login).
        live_outcome: what the live hook decided then (``None``: to be found by running the live hook).
        live_values: with ``ok``, the values granted then.
    """

    openid: dict[str, Any]
    run_id: str | None = None
    line: int | None = None
    subject: str | None = None
    live_outcome: str | None = None
    live_values: dict[str, Any] | None = None

    @property
    def label(self) -> str:
        """How the table names it: the run id, or the line of the ``--openids`` file."""
        return self.run_id if self.run_id is not None else f"line {self.line}"


@dataclass(frozen=True)
class ReplayResult:
    """The live decision and the candidate's on one input, and how they differ (:func:`proxy.rollout.compare`)."""

    item: ReplayInput
    live_outcome: str
    live_values: dict[str, Any] | None
    outcome: str
    values: dict[str, Any] | None
    error: str | None
    diff: dict[str, dict[str, Any]]

    @property
    def breaks(self) -> bool:
        """A login that succeeded would now fail."""
        return self.live_outcome == "ok" and self.outcome != "ok"

    def as_dict(self) -> dict[str, Any]:
        """One change as ``--json`` prints it."""
        return {
            "run_id": self.item.run_id,
            "line": self.item.line,
            "subject": self.item.subject,
            "live_outcome": self.live_outcome,
            "candidate_outcome": self.outcome,
            "breaks": self.breaks,
            "diff": self.diff,
            "candidate_error": None if self.error is None else clip(self.error, _ERROR_WIDTH * 4),
        }


@dataclass
class ReplayReport:
    """What ``hookjail replay`` found, newest input first (in file order for ``--openids``)."""

    candidate: str
    sha256: str
    #: the ``--openids`` file the inputs came from, ``None`` for the recorded logins
    openids: str | None = None
    results: list[ReplayResult] = field(default_factory=list)

    @property
    def changes(self) -> list[ReplayResult]:
        """The inputs whose outcome or values would change."""
        return [result for result in self.results if result.diff]

    @property
    def exit_code(self) -> int:
        """2 when a login that succeeded would fail, 1 when anything else changes, else 0."""
        if any(result.breaks for result in self.results):
            return EXIT_BREAKS
        return EXIT_CHANGED if self.changes else EXIT_SAME

    def outcomes(self) -> dict[str, dict[str, int]]:
        """The inputs counted by outcome, live and candidate."""
        live = Counter(result.live_outcome for result in self.results)
        candidate = Counter(result.outcome for result in self.results)
        return {"live": dict(sorted(live.items())), "candidate": dict(sorted(candidate.items()))}

    def as_dict(self) -> dict[str, Any]:
        """The report as ``--json`` prints it: a summary and the changes."""
        summary = {
            "candidate": self.candidate,
            "candidate_sha256": self.sha256,
            "source": "recorded" if self.openids is None else "openids",
            "openids": self.openids,
            "inputs": len(self.results),
            "changed": len(self.changes),
            "breaks": sum(result.breaks for result in self.results),
            "outcomes": self.outcomes(),
            "exit_code": self.exit_code,
        }
        return {"summary": summary, "changes": [result.as_dict() for result in self.changes]}

    def as_text(self, *, arrow: str = "->") -> str:
        """The report for people: the changes as a table, the outcome counts, the verdict."""
        sha = f", sha256 {self.sha256[:12]}" if self.sha256 else ""
        source = "recorded logins (newest first)" if self.openids is None else f"logins from {self.openids}"
        count = len(self.results)
        lines = [f"replayed {count} {source} with candidate {one_line(self.candidate, 200)}{sha}", ""]
        changes = self.changes
        if changes:
            lines += [f"{len(changes)} of {_logins(len(self.results))} would change:", *_table(changes, arrow), ""]
        lines += [*_outcome_table(self.outcomes()), ""]
        lines.append(_verdict(self, changes))
        return "\n".join(lines)


def _shown(value: Any, width: int) -> str:
    """A value as JSON on one line (control characters escaped), cut to ``width`` characters."""
    text = one_line(json.dumps(value, ensure_ascii=False, default=str), 10 * width)
    return text if len(text) <= width else text[: width - 1] + "…"


def _cut(text: str, width: int) -> str:
    text = one_line(text, 10 * width)
    return text if len(text) <= width else text[: width - 1] + "…"


def _change_lines(result: ReplayResult, arrow: str) -> list[str]:
    """What changes for one input: each field with its value before and after, and the candidate's error."""
    lines = [
        f"{name}: {_shown(change['live'], _VALUE_WIDTH)} {arrow} {_shown(change['candidate'], _VALUE_WIDTH)}"
        for name, change in result.diff.items()
        if name != "outcome"
    ]
    if result.error is not None and result.outcome != "ok":
        lines.append(f"error: {_cut(result.error, _ERROR_WIDTH)}")
    return lines or ["(outcome only)"]


def _table(changes: Sequence[ReplayResult], arrow: str) -> list[str]:
    rows = [
        (
            result.item.label,
            _cut(result.item.subject or "?", _SUBJECT_WIDTH),
            f"{result.live_outcome} {arrow} {result.outcome}",
            _change_lines(result, arrow),
        )
        for result in changes
    ]
    header = ("run id", "subject", "outcome")
    widths = [max(len(header[i]), *(len(row[i]) for row in rows)) for i in range(3)]
    indent = " " * (sum(widths) + 2 * 3 + 2)
    lines = ["  " + "  ".join(name.ljust(width) for name, width in zip(header, widths, strict=True)) + "  changes"]
    for label, subject, outcome, details in rows:
        cells = "  ".join(text.ljust(width) for text, width in zip((label, subject, outcome), widths, strict=True))
        lines.append(f"  {cells}  {details[0]}")
        lines += [indent + detail for detail in details[1:]]
    return lines


def _outcome_table(outcomes: Mapping[str, Mapping[str, int]]) -> list[str]:
    names = sorted(set(outcomes["live"]) | set(outcomes["candidate"]))
    width = max(len("outcome"), *(len(one_line(name, 40)) for name in names)) if names else len("outcome")
    lines = [f"  {'outcome':<{width}}  {'live':>6}  {'candidate':>9}"]
    for name in names:
        live, candidate = outcomes["live"].get(name, 0), outcomes["candidate"].get(name, 0)
        lines.append(f"  {one_line(name, 40):<{width}}  {live:>6}  {candidate:>9}")
    return lines


def _logins(count: int) -> str:
    return f"{count} login" if count == 1 else f"{count} logins"


def _verdict(report: ReplayReport, changes: Sequence[ReplayResult]) -> str:
    breaks = sum(result.breaks for result in report.results)
    if breaks:
        return f"exit 2: {_logins(breaks)} that succeeded would now fail ({len(changes)} changed in all)"
    if changes:
        return f"exit 1: {_logins(len(changes))} would change"
    return "exit 0: no login would change"


# --- the database and the inputs -----------------------------------------------------------------------------


def _db_reason(exc: Exception) -> str:
    """A database error in a few words: the driver's message, without SQLAlchemy's SQL and links."""
    return one_line(str(getattr(exc, "orig", None) or exc), 300)


def _hide_password(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def database_url(config: ProxyConfig, override: str | None, environ: Mapping[str, str]) -> str:
    """The database the proxy serving ``config`` uses (``--database-url`` wins), as an async SQLAlchemy URL.

    Raises:
        ConfigError: the URL is not one, or its ``os.environ/`` variable is not set.
        ReplayError: it names a SQLite file that does not exist.
    """
    url = override or config.general_settings.database_url or "sqlite:///hookjail.db"
    source = "--database-url" if override else "general_settings.database_url"
    if override is None and config.general_settings.database_url is not None:
        url = resolve_reference(url, source, environ)
    try:
        normalized = normalize_url(url, config.directory)
        parsed = make_url(normalized)
    except Exception as exc:
        raise ConfigError(f"{source}: not a database URL ({exc})") from None
    path = parsed.database
    if parsed.drivername.startswith("sqlite") and path not in (None, "", ":memory:") and not Path(path).is_file():
        raise ReplayError(f"database: no SQLite file {path} ({source}, else hookjail.db beside the config)")
    return normalized


async def recorded_inputs(database: Database, last: int) -> list[ReplayInput]:
    """The newest ``last`` recorded logins, newest first, with what the live hook decided then."""
    try:
        rows = await database.recorded_inputs(last)
    except (SQLAlchemyError, OSError) as exc:
        raise ReplayError(f"database: cannot read the recorded logins: {_db_reason(exc)}") from None
    inputs = [
        ReplayInput(
            openid=_with_identity(entry.openid),
            run_id=run.run_id,
            subject=run.subject,
            live_outcome=run.outcome,
            live_values=run.decided if run.outcome == "ok" else None,
        )
        for entry, run in rows
        if isinstance(entry.openid, dict)
    ]
    if not inputs:
        raise ReplayError(
            "no recorded logins in the database: set hook_settings.record_inputs: true and let logins happen, "
            "or pass --openids FILE"
        )
    return inputs


#: Keys of the OpenID the proxy adds for every provider (:func:`proxy._login._with_identity`), kept from a line.
_IDENTITY_KEYS = ("email_verified", "subject", "issuer")


def _openid(data: Any, where: str) -> dict[str, Any]:
    """One ``--openids`` line as the hook would see it: validated as fastapi-sso's ``OpenID``."""
    if not isinstance(data, dict):
        raise ReplayError(f"{where}: expected a JSON object, got {type(data).__name__}")
    try:
        openid = parse_openid(data)
    except OpenIDInvalid as exc:
        raise ReplayError(f"{where}: not a valid OpenID: {exc}") from None
    return _with_identity(openid | {key: data[key] for key in _IDENTITY_KEYS if key in data})


def load_openids(path: str) -> list[ReplayInput]:
    """The OpenIDs of a JSON-lines file (one JSON object per line; blank lines skipped), in file order."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ReplayError(f"--openids {path}: cannot read the file: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ReplayError(f"--openids {path}: not a UTF-8 text file") from None
    inputs: list[ReplayInput] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"--openids {path} line {number}"
        try:
            data = json.loads(line)
        except ValueError as exc:
            raise ReplayError(f"{where}: not valid JSON: {exc}") from None
        openid = _openid(data, where)
        subject = openid.get("id") or openid.get("email")
        inputs.append(ReplayInput(openid=openid, line=number, subject=subject if isinstance(subject, str) else None))
    if not inputs:
        raise ReplayError(f"--openids {path}: no OpenID in the file")
    return inputs


# --- the candidate -------------------------------------------------------------------------------------------


def parse_candidate(text: str) -> tuple[str, str | None]:
    """``path.py:function`` or ``sha256:function`` → (the file or version, the function or ``None``)."""
    base, colon, function = text.rpartition(":")
    if not colon:
        return text, None
    if not base or not function.isidentifier():
        raise ReplayError(f"--candidate {text!r}: expected PATH.py:FUNCTION or SHA256[:FUNCTION]")
    return base, function


def _file_target(path: Path, function: str | None, config: ProxyConfig, text: str) -> HookTarget:
    if path.is_dir() and not (path / "__init__.py").is_file():
        raise ReplayError(f"--candidate {text}: a directory that is not a package (no __init__.py)")
    if function is None:
        if config.hook is None:
            raise ReplayError(f"--candidate {text}: name the handler too: {text}:FUNCTION")
        function = config.hook.function
    return HookTarget(path=path.resolve(), function=function, dotted=f"{path}:{function}")


def _safe_relative(name: str) -> PurePosixPath:
    relative = PurePosixPath(name)
    if relative.is_absolute() or not relative.parts or any(part in ("", ".", "..") for part in relative.parts):
        raise ReplayError(f"the stored version has a source file with an unsafe path: {name!r}", code=EXIT_UNUSABLE)
    return relative


def write_version(version: HookVersion, directory: Path) -> Path:
    """Write a kept version's sources under ``directory`` as they were laid out; returns the hook's path
    (the module file, or the package directory). Readable by the sandbox's worker uid, as a hook beside the
    config is."""
    short = version.sha256[:12]
    if version.sources is None:
        raise ReplayError(
            f"--candidate {short}: version {short} ({version.file}) was kept without its source "
            "(larger than 1 MiB or not UTF-8)",
            code=EXIT_UNUSABLE,
        )
    package = version.file.endswith("/")
    name = _safe_relative(version.file.rstrip("/"))
    if len(name.parts) != 1:
        raise ReplayError(f"--candidate {short}: the stored file name {version.file!r} is unsafe", code=EXIT_UNUSABLE)
    root = directory / name if package else directory
    for relative, text in version.sources.items():
        target = root / _safe_relative(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        target.chmod(0o644)
    for folder in [directory, *(p for p in directory.rglob("*") if p.is_dir())]:
        folder.chmod(0o755 if folder != directory else 0o711)
    hook = directory / name
    if not (hook / "__init__.py" if package else hook).is_file():
        raise ReplayError(f"--candidate {short}: the stored sources lack {version.file}", code=EXIT_UNUSABLE)
    return hook


async def _stored_target(
    sha: str, function: str | None, database: Database, stack: AsyncExitStack, text: str
) -> HookTarget:
    try:
        version = await database.get_version(sha)
    except (SQLAlchemyError, OSError) as exc:
        raise ReplayError(f"database: cannot read the kept hook versions: {_db_reason(exc)}") from None
    if version is None:
        raise ReplayError(
            f"--candidate {text}: no file of that name, and no kept hook version whose sha256 starts with "
            f"{sha.lower()} (or several do: give more digits)"
        )
    directory = Path(tempfile.mkdtemp(prefix="hookjail-replay-"))
    stack.callback(shutil.rmtree, directory, ignore_errors=True)
    path = write_version(version, directory)
    function = function or version.function
    return HookTarget(path=path, function=function, dotted=f"sha256:{version.sha256[:12]}:{function}")


async def resolve_candidate(text: str, config: ProxyConfig, database: Database, stack: AsyncExitStack) -> HookTarget:
    """Where the candidate is: a file or package (``path.py[:function]``), else a kept version written to a
    temporary directory (removed with ``stack``)."""
    base, function = parse_candidate(text)
    path = Path(base).expanduser()
    if path.exists():
        return _file_target(path, function, config, text)
    if _SHA256_PREFIX.fullmatch(base):
        return await _stored_target(base, function, database, stack, text)
    raise ReplayError(
        f"--candidate {text}: no file {base} (a kept version is named by its sha256 or a prefix of at least "
        "8 hex digits)"
    )


async def _started(stack: AsyncExitStack, service: HookService, which: str) -> HookService:
    """Start a hook's runner; a hook that cannot run is a :class:`ReplayError` naming it."""
    try:
        await stack.enter_async_context(service)
    except HookImportError as exc:
        raise ReplayError(
            f"{which} {service.target.dotted} cannot be used: {one_line(exc.message, 500)}", code=EXIT_UNUSABLE
        ) from None
    except SandboxUnavailable as exc:
        raise ReplayError(
            f"sandbox: {one_line(exc.message, 500)} (run with --allow-weak-sandbox or set hook_settings.sandbox: "
            "permissive to accept a weaker sandbox)",
            code=EXIT_UNUSABLE,
        ) from None
    return service


# --- running -------------------------------------------------------------------------------------------------


def login_rules(environ: Mapping[str, str]) -> SSOSettings:
    """The login rules of the environment that judge a hook's values (``ALLOWED_EMAIL_DOMAINS``,
    ``PROXY_ADMIN_ID``), read as ``hookjail serve`` reads them; no identity provider is needed or used."""
    rules = {name: environ[name] for name in ("ALLOWED_EMAIL_DOMAINS", "PROXY_ADMIN_ID") if name in environ}
    sso = sso_settings_from_env({**rules, "GOOGLE_CLIENT_ID": "replay", "GOOGLE_CLIENT_SECRET": "replay"})
    return dataclasses.replace(sso, kind="replay", client_id="", client_secret="")


@dataclass(frozen=True)
class _Judges:
    """What judges each run: the candidate, the live hook (``--openids`` only) and the login's rules."""

    candidate: HookService
    live: HookService | None
    login: LoginService
    database: Database


async def _replay_one(item: ReplayInput, judges: _Judges) -> ReplayResult:
    try:
        return await _judge(item, judges)
    except (SQLAlchemyError, OSError) as exc:  # the hook's own failures are outcomes: this is the database's
        raise ReplayError(f"database: cannot read it: {_db_reason(exc)}") from None


async def _judge(item: ReplayInput, judges: _Judges) -> ReplayResult:
    run_id = item.run_id or secrets.token_hex(8)
    live_outcome, live_values = item.live_outcome, item.live_values
    if live_outcome is None:
        assert judges.live is not None
        live = await evaluate(
            item.openid,
            hook=judges.live,
            login=judges.login,
            database=judges.database,
            settings=judges.live.settings,
            run_id=run_id,
        )
        live_outcome, live_values = live.outcome, live.decided
    judged = await evaluate(
        item.openid,
        hook=judges.candidate,
        login=judges.login,
        database=judges.database,
        settings=judges.candidate.settings,
        run_id=run_id,
    )
    return ReplayResult(
        item=item,
        live_outcome=live_outcome,
        live_values=live_values,
        outcome=judged.outcome,
        values=judged.decided,
        error=judged.error,
        diff=compare(live_outcome, live_values, judged.outcome, judged.decided),
    )


async def run_all(
    items: Sequence[ReplayInput],
    run_one: Callable[[ReplayInput], Awaitable[ReplayResult]],
    *,
    concurrency: int,
    on_result: Callable[[ReplayResult], None] | None = None,
) -> list[ReplayResult]:
    """Run every input, ``concurrency`` at once; the results in the inputs' order."""
    results: list[ReplayResult | None] = [None] * len(items)
    pending = iter(enumerate(items))

    async def worker() -> None:
        for index, item in pending:  # one iterator shared by the workers: each input is taken once
            result = results[index] = await run_one(item)
            if on_result is not None:
                on_result(result)

    try:
        async with anyio.create_task_group() as group:
            for _ in range(max(1, min(concurrency, len(items)))):
                group.start_soon(worker)
    except BaseExceptionGroup as failed:
        reason = _replay_error(failed)
        if reason is None:
            raise
        raise reason from None
    return [result for result in results if result is not None]


def _replay_error(group: BaseExceptionGroup[BaseException]) -> ReplayError | None:
    """The first :class:`ReplayError` in a task group's failure, if any."""
    for exc in group.exceptions:
        found = _replay_error(exc) if isinstance(exc, BaseExceptionGroup) else exc
        if isinstance(found, ReplayError):
            return found
    return None


async def run_replay(
    config: ProxyConfig,
    candidate: str,
    *,
    last: int = DEFAULT_LAST,
    openids: str | None = None,
    database_override: str | None = None,
    allow_weak_sandbox: bool = False,
    environ: Mapping[str, str] | None = None,
    on_inputs: Callable[[int], None] | None = None,
    on_result: Callable[[ReplayResult], None] | None = None,
) -> ReplayReport:
    """Replay ``candidate`` on the newest ``last`` recorded logins (or the OpenIDs of the ``openids`` file)
    and compare it with what the live hook decided.

    Args:
        on_inputs: told how many inputs will run, before the first runs.
        on_result: told of each input done (in the order they finish).

    Raises:
        ReplayError: naming the problem, with the exit code.
        ConfigError: a database URL that is not one.
    """
    env = os.environ if environ is None else environ
    items = load_openids(openids) if openids is not None else None
    if items is not None and config.hook is None:
        raise ReplayError("--openids needs the live hook to compare with: general_settings.custom_sso is not set")
    database = Database(database_url(config, database_override, env))
    async with AsyncExitStack() as stack:
        stack.push_async_callback(database.close)
        if not await database.ping():
            raise ReplayError(f"database: cannot connect to {_hide_password(database.url)}")
        target = await resolve_candidate(candidate, config, database, stack)
        if items is None:
            items = await recorded_inputs(database, last)
        with_candidate = config.model_copy(update={"candidate": target})
        service = HookService(with_candidate, allow_weak_sandbox=allow_weak_sandbox, candidate=True)
        await _started(stack, service, "the candidate")
        live = None
        if openids is not None:
            live = await _started(stack, HookService(config, allow_weak_sandbox=allow_weak_sandbox), "the live hook")
        login = LoginService(
            config=config,
            sso=login_rules(env),
            hook=None,
            database=database,
            sessions=SessionCodec(secrets.token_hex()),
        )
        judges = _Judges(candidate=service, live=live, login=login, database=database)
        if on_inputs is not None:
            on_inputs(len(items))
        results = await run_all(
            items,
            lambda item: _replay_one(item, judges),
            concurrency=service.settings.max_concurrency,
            on_result=on_result,
        )
    return ReplayReport(candidate=target.dotted, sha256=service.describe().sha256, openids=openids, results=results)
