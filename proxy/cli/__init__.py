"""The ``hookjail`` command.

``hookjail --config config.yaml [...]`` (or ``hookjail serve --config config.yaml``) serves the proxy (LiteLLM's
muscle memory); ``hookjail --version`` prints the version; subcommands:

- ``hookjail check``: confine and import the hook, print the sandbox layers, run it once, print the values;
- ``hookjail bench``: run the hook many times, print the latency distribution and a suggested timeout;
- ``hookjail demo``: serve the bundled example behind an embedded development OpenID provider;
- ``hookjail replay``: run a candidate hook on recorded logins, print what would change.

Exit status: 0 ok, 1 the hook (or the server) failed, 2 usage or configuration error. ``hookjail replay`` has
its own (see :data:`REPLAY_EXIT_CODES`): its 1 and 2 say what the candidate would change.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import logging
import math
import os
import shutil
import signal
import socket
import sys
import tempfile
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

import uvicorn
from fastapi import FastAPI
from uvicorn.config import LOGGING_CONFIG

from .._config import RUNNER_DEFAULTS, ProxyConfig, load_config
from .._errors import ConfigError
from .._lifecycle import drain_timeout, install_reload_signal
from .._logging import LogFormat, configure_logging
from ..web import create_app, serve_settings
from ._bench import BenchOptions, run_bench, unicode_ok
from ._check import load_openid, run_check
from ._term import ProgressBar, can_encode

__all__ = ("main", "run")

#: The usage of ``hookjail`` (and ``hookjail serve``): every command at a glance.
USAGE = """hookjail [serve] --config PATH [options]
       hookjail check --config PATH [options]
       hookjail bench --config PATH [options]
       hookjail demo [options]
       hookjail replay --config PATH --candidate PATH.py:FUNCTION [options]
       hookjail --version"""

_COMMANDS_HELP = """Serve the admin UI's SSO login from a LiteLLM config.yaml, running the custom SSO handler
in a sandbox.

commands:
  [serve]  serve the login (the default: `hookjail --config config.yaml`, as with `litellm --config`)
  check    run the hook once in the sandbox, print what it returned: 'hookjail check --help'
  bench    run the hook many times, print its latency and a suggested timeout: 'hookjail bench --help'
  demo     serve the bundled example behind a development identity provider: 'hookjail demo --help'
  replay   run a candidate hook on recorded logins, print what would change: 'hookjail replay --help'"""

_LOG_LEVELS = ("debug", "info", "warning", "error")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number (0-65535), got {text!r}")
    return value


def _default(name: str) -> str:
    """A hook limit's default, as the help text says it (``5``, ``256``, ``2``)."""
    value = getattr(RUNNER_DEFAULTS, name)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _add_hook_flags(parser: argparse.ArgumentParser, *, concurrency: bool) -> None:
    group = parser.add_argument_group("hook limits (override hook_settings in config.yaml)")
    group.add_argument(
        "--hook-timeout",
        type=_positive_float,
        metavar="S",
        help=f"wall-clock seconds per hook call (default: hook_settings.timeout, else {_default('timeout')})",
    )
    group.add_argument(
        "--hook-memory-mb",
        type=_positive_int,
        metavar="MB",
        help="memory a hook call may use, in MiB (default: hook_settings.memory_mb, else "
        + _default("memory_mb")
        + ")",
    )
    group.add_argument(
        "--hook-cpu-seconds",
        type=_positive_float,
        metavar="S",
        help=f"CPU seconds per hook call (default: hook_settings.cpu_seconds, else {_default('cpu_seconds')})",
    )
    if concurrency:
        group.add_argument(
            "--hook-concurrency",
            type=_positive_int,
            metavar="N",
            help="hook calls in flight at once (default: hook_settings.max_concurrency, else "
            + _default("max_concurrency")
            + ")",
        )
    group.add_argument(
        "--allow-weak-sandbox",
        action="store_true",
        help="run even if this host cannot provide every confinement layer (default: refuse)",
    )


def _add_openid_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--openid",
        metavar="JSON",
        help="the OpenID to pass, as a JSON object (default: a sample user), e.g. "
        '\'{"id": "alice", "email": "alice@example.com"}\'',
    )
    group.add_argument(
        "--openid-file",
        metavar="PATH",
        help="read the OpenID to pass from a JSON file (default: a sample user)",
    )


def _add_host_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-host",
        dest="host",
        action="store_false",
        help="refuse the hook's host calls (user_info, ...) instead of answering them from an empty "
        "in-memory host granting hook_settings.permissions, as for a first login (default: answer)",
    )


def version() -> str:
    """hookjail's version: the installed distribution's, else the ``pyproject.toml`` of this checkout."""
    try:
        return importlib.metadata.version("hookjail")
    except importlib.metadata.PackageNotFoundError:
        pass
    try:
        with (Path(__file__).resolve().parents[2] / "pyproject.toml").open("rb") as file:
            return str(tomllib.load(file)["project"]["version"])
    except (OSError, KeyError, TypeError, tomllib.TOMLDecodeError):
        return "unknown"


def _serve_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hookjail",
        usage=USAGE,
        description=_COMMANDS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"hookjail {version()}", help="print the version and exit"
    )
    parser.add_argument("--config", required=True, metavar="PATH", help="LiteLLM-style config.yaml (required)")
    parser.add_argument(
        "--host",
        default="0.0.0.0",  # noqa: S104 (LiteLLM's default)
        help="address to listen on (default: 0.0.0.0)",
    )
    parser.add_argument("--port", type=_port, default=4000, help="port to listen on (default: 4000)")
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help="database URL (default: general_settings.database_url, else a SQLite file hookjail.db beside config.yaml)",
    )
    parser.add_argument("--log-level", default="info", choices=_LOG_LEVELS, help="log level (default: info)")
    parser.add_argument(
        "--log-format",
        default="text",
        choices=("text", "json"),
        help="text, or json: one JSON object per line, with one line per login and per hook run carrying "
        "run_id, outcome, duration_ms, subject and provider (default: text)",
    )
    parser.add_argument(
        "--forwarded-allow-ips",
        metavar="ADDRESSES",
        help="comma-separated addresses or networks of the reverse proxies whose X-Forwarded-Proto and "
        "X-Forwarded-For are believed, or * for any (default: $FORWARDED_ALLOW_IPS, else 127.0.0.1,::1)",
    )
    _add_hook_flags(parser, concurrency=True)
    return parser


def _check_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hookjail check",
        description="Confine and import the hook, print the active sandbox layers, run it once on a sample "
        "(or given) OpenID, and print the validated values. Exits 0 if the outcome is ok, 1 if the hook "
        "failed, denied the user (raise Deny) or its values were refused, 2 on a usage or configuration error.",
    )
    parser.add_argument("--config", required=True, metavar="PATH", help="LiteLLM-style config.yaml (required)")
    _add_openid_flags(parser)
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object (outcome, values, error, duration_ms, stdout, stderr, run_id, layers) "
        "instead of text (default: text)",
    )
    _add_host_flag(parser)
    _add_hook_flags(parser, concurrency=False)
    return parser


def _bench_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hookjail bench",
        description="Run the hook through the sandbox many times with the config's hook_settings, then print "
        "the latency distribution (p50/p90/p99/max and a histogram), the outcome counts and a suggested "
        "--hook-timeout: max(p99 x safety factor, floor), rounded up. A progress bar goes to stderr when it is "
        "a terminal. The hook really runs every time: with hook_settings.network: allow, whatever it calls over the "
        "network is called N times. Exits 0 if every call was ok, 1 otherwise, 2 on a usage or configuration error.",
    )
    parser.add_argument("--config", required=True, metavar="PATH", help="LiteLLM-style config.yaml (required)")
    parser.add_argument(
        "-n", "--calls", type=_positive_int, default=500, metavar="N", help="calls in all (default: 500)"
    )
    parser.add_argument(
        "--concurrency",
        type=_positive_int,
        default=4,
        metavar="N",
        help="callers at once, each calling again when its call returns (default: 4); more than "
        "hook_settings.max_concurrency makes calls wait for a worker slot, as logins would",
    )
    _add_openid_flags(parser)
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object with the same figures (default: text)"
    )
    parser.add_argument(
        "--safety-factor",
        type=_positive_float,
        default=3.0,
        metavar="X",
        help="the suggested timeout is p99 times this (default: 3)",
    )
    parser.add_argument(
        "--timeout-floor",
        type=_positive_float,
        default=1.0,
        metavar="S",
        help="the smallest timeout suggested, in seconds (default: 1)",
    )
    parser.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="never draw the progress bar (default: draw it on stderr when stderr is a terminal)",
    )
    _add_host_flag(parser)
    _add_hook_flags(parser, concurrency=True)
    return parser


def _demo_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hookjail demo",
        description="For development only. Serve the bundled example (examples/config.yaml and "
        "examples/custom_sso.py) behind an embedded development OpenID provider that signs in anyone: open the "
        "printed URL, click 'Log in with SSO', type any name or email, and see the hook's values on the "
        "dashboard. Needs no environment variables: the master key and the OIDC client are made up for the "
        "session, the database is a temporary SQLite file.",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address the proxy listens on (default: 127.0.0.1); the provider always listens on 127.0.0.1, "
        "so the browser must run on this machine",
    )
    parser.add_argument("--port", type=_port, default=4000, help="port the proxy listens on (default: 4000)")
    parser.add_argument(
        "--idp-port",
        type=_port,
        default=0,
        metavar="PORT",
        help="port of the development OpenID provider on 127.0.0.1 (default: 0, any free port)",
    )
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="serve another config.yaml, e.g. examples/domain_roles/config.yaml (default: examples/config.yaml "
        "of this checkout, else of the current directory)",
    )
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help="keep users in this database (default: a temporary SQLite file, deleted when the demo stops)",
    )
    parser.add_argument("--log-level", default="info", choices=_LOG_LEVELS, help="log level (default: info)")
    _add_hook_flags(parser, concurrency=True)
    return parser


#: ``hookjail replay``'s exit codes (its 1 and 2 are verdicts on the candidate, so its errors are 3 and 4).
REPLAY_EXIT_CODES = """exit codes:
  0  no replayed login would change
  1  values would change (or an outcome, in a way exit 2 does not cover)
  2  a login that succeeded would now fail
  3  usage, configuration or input error: bad flags, config.yaml, database, --openids file, unknown version,
     no recorded logins
  4  a hook cannot be run: the candidate (with --openids, the live hook) does not import or is not a usable
     handler, a kept version has no source, or the sandbox is unavailable
  130  interrupted"""


_REPLAY_HELP = """Run a candidate version of the hook on the newest recorded logins (hook_settings.record_inputs keeps
the OpenID each login's hook saw), or on a JSON-lines file of OpenIDs, and compare its outcome and values
with what the live hook decided, both judged as a login would judge them.

The candidate runs in the live hook's sandbox with its limits, hook_settings.candidate_settings applied. Its
host calls read the database; nothing is written. Prints the logins whose outcome or values would change
and the outcomes counted, live and candidate; a progress bar goes to stderr when it is a terminal."""


class _ReplayArgumentParser(argparse.ArgumentParser):
    """Reports a usage error with ``hookjail replay``'s usage exit code (argparse's 2 means "would fail")."""

    def error(self, message: str) -> NoReturn:
        from ._replay import EXIT_USAGE  # noqa: PLC0415

        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _replay_parser() -> argparse.ArgumentParser:
    parser = _ReplayArgumentParser(
        prog="hookjail replay",
        description=_REPLAY_HELP,
        epilog=REPLAY_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", required=True, metavar="PATH", help="LiteLLM-style config.yaml (required)")
    parser.add_argument(
        "--candidate",
        required=True,
        metavar="PATH.py:FUNCTION",
        help="the candidate handler (required): a file or package and its function (default function: the live "
        "hook's), or a hook version the proxy kept, by its sha256 or a unique prefix of at least 8 hex digits, "
        "optionally SHA256:FUNCTION (default: the version's function)",
    )
    inputs = parser.add_mutually_exclusive_group()
    inputs.add_argument(
        "--last",
        type=_positive_int,
        metavar="N",
        help="replay the newest N recorded logins (default: 500)",
    )
    inputs.add_argument(
        "--openids",
        metavar="FILE",
        help="replay the OpenIDs of this JSON-lines file (one JSON object per line) instead, each run through "
        "the live hook too for what it decides (default: the recorded logins)",
    )
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help="database URL (default: general_settings.database_url, else a SQLite file hookjail.db beside config.yaml)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object (summary and changes) instead of text (default: text)",
    )
    parser.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="never draw the progress bar (default: draw it on stderr when stderr is a terminal)",
    )
    parser.add_argument(
        "--allow-weak-sandbox",
        action="store_true",
        help="run even if this host cannot provide every confinement layer (default: refuse)",
    )
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    mapping = {
        "hook_timeout": "timeout",
        "hook_memory_mb": "memory_mb",
        "hook_cpu_seconds": "cpu_seconds",
        "hook_concurrency": "max_concurrency",
    }
    return {key: getattr(args, flag) for flag, key in mapping.items() if getattr(args, flag, None) is not None}


def _load(args: argparse.Namespace, path: str | Path | None = None) -> ProxyConfig:
    return load_config(path if path is not None else args.config).with_hook_settings(**_overrides(args))


def run(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 failure, 2 usage or configuration error)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    commands: dict[str, tuple[Callable[[], argparse.ArgumentParser], Callable[[argparse.Namespace], int]]] = {
        "serve": (_serve_parser, _serve),
        "check": (_check_parser, _check),
        "bench": (_bench_parser, _bench),
        "demo": (_demo_parser, _demo),
        "replay": (_replay_parser, _replay),
    }
    if arguments and arguments[0] in commands:
        parser, command = commands[arguments[0]]
        arguments = arguments[1:]
    else:  # `hookjail --config config.yaml`, as LiteLLM users type it
        parser, command = commands["serve"]
    args = parser().parse_args(arguments)
    try:
        return command(args)
    except ConfigError as exc:
        return _config_error(exc, as_json=getattr(args, "json", False))


def _config_error(exc: ConfigError, *, as_json: bool) -> int:
    """Print a configuration error (``--json``: as one JSON object on stdout, like a report); returns 2."""
    if as_json:
        error = {"outcome": "config_error", "error": str(exc), "key": exc.key, "keys": list(exc.keys)}
        print(json.dumps(error), flush=True)
    else:
        print(f"hookjail: configuration error: {exc}", file=sys.stderr)
    return 2


def main() -> None:
    """Console-script entry point."""
    sys.exit(run())


def _write(text: str, stream: TextIO) -> None:
    """Print, replacing what the stream's encoding cannot show (a C locale must not crash a report)."""
    encoding = getattr(stream, "encoding", None) or "utf-8"
    print(text.encode(encoding, "replace").decode(encoding), file=stream, flush=True)


# --- check ---------------------------------------------------------------------------------------------------


def _check(args: argparse.Namespace) -> int:
    config = _load(args)
    openid = load_openid(args.openid, path=args.openid_file)
    report = asyncio.run(run_check(config, openid, allow_weak_sandbox=args.allow_weak_sandbox, host=args.host))
    if args.json:
        print(json.dumps(report.as_dict()), flush=True)
    else:
        _write(report.as_text(), sys.stdout)
    return 0 if report.ok else 1


# --- bench ---------------------------------------------------------------------------------------------------


def _bench(args: argparse.Namespace) -> int:
    config = _load(args)
    openid = load_openid(args.openid, path=args.openid_file)
    options = BenchOptions(
        calls=args.calls,
        concurrency=args.concurrency,
        safety_factor=args.safety_factor,
        floor=args.timeout_floor,
        host=args.host,
        allow_weak_sandbox=args.allow_weak_sandbox,
    )
    progress = ProgressBar(options.calls, sys.stderr, enabled=args.progress and sys.stderr.isatty(), label="bench ")
    failed = 0

    def on_call(outcome: str) -> None:
        nonlocal failed
        failed += outcome != "ok"
        progress.advance(note=f"{failed} failed" if failed else "")

    try:
        report = asyncio.run(run_bench(config, openid, options, on_call))
    except KeyboardInterrupt:
        progress.close()
        print(f"hookjail bench: interrupted after {progress.done} of {options.calls} calls", file=sys.stderr)
        return 130
    progress.close()
    if args.json:
        print(json.dumps(report.as_dict()), flush=True)
    else:
        _write(report.as_text(unicode=unicode_ok(sys.stdout)), sys.stdout)
    return 0 if report.ok else 1


# --- replay --------------------------------------------------------------------------------------------------


def _replay(args: argparse.Namespace) -> int:
    from ._replay import DEFAULT_LAST, EXIT_USAGE, ReplayError, ReplayResult, run_replay  # noqa: PLC0415

    progress: ProgressBar | None = None
    changed = 0

    def on_inputs(total: int) -> None:
        nonlocal progress
        progress = ProgressBar(total, sys.stderr, enabled=args.progress and sys.stderr.isatty(), label="replay ")

    def on_result(result: ReplayResult) -> None:
        nonlocal changed
        changed += bool(result.diff)
        if progress is not None:
            progress.advance(note=f"{changed} changed" if changed else "")

    try:
        config = _load(args)
        report = asyncio.run(
            run_replay(
                config,
                args.candidate,
                last=args.last or DEFAULT_LAST,
                openids=args.openids,
                database_override=args.database_url,
                allow_weak_sandbox=args.allow_weak_sandbox,
                on_inputs=on_inputs,
                on_result=on_result,
            )
        )
    except KeyboardInterrupt:
        done = f" after {progress.done} of {progress.total} logins" if progress is not None else ""
        if progress is not None:
            progress.close()
        print(f"hookjail replay: interrupted{done}", file=sys.stderr)
        return 130
    except ConfigError as exc:
        _config_error(exc, as_json=args.json)
        return EXIT_USAGE
    except ReplayError as exc:
        if progress is not None:
            progress.close()
        if args.json:
            print(json.dumps({"error": exc.message, "exit_code": exc.code}), flush=True)
        else:
            _write(f"hookjail replay: {exc.message}", sys.stderr)
        return exc.code
    if progress is not None:
        progress.close()
    if args.json:
        print(json.dumps(report.as_dict()), flush=True)
    else:
        _write(report.as_text(arrow="→" if can_encode(sys.stdout, "→…") else "->"), sys.stdout)
    return report.exit_code


# --- serve and demo ------------------------------------------------------------------------------------------


def _configure_logging(level: str, log_format: LogFormat = "text") -> dict[str, Any] | None:
    """Set up logging; returns uvicorn's ``log_config`` (see :func:`proxy._logging.configure_logging`)."""
    return configure_logging(level, log_format)


def _run_server(
    app: FastAPI,
    *,
    host: str,
    port: int,
    log_level: str,
    on_started: Callable[[], None] | None = None,
    forwarded_allow_ips: str | None = None,
    log_config: dict[str, Any] | None = LOGGING_CONFIG,
    graceful_timeout: float | None = None,
) -> int:
    """Serve ``app`` until interrupted; 1 if it did not start (the reason is printed).

    uvicorn believes ``X-Forwarded-Proto``/``-For`` only from ``forwarded_allow_ips`` (None: uvicorn's
    ``FORWARDED_ALLOW_IPS``, else loopback); ``X-Forwarded-Host`` is never used. SIGTERM drains the requests
    in flight for up to ``graceful_timeout`` seconds; SIGHUP reloads the hook (:mod:`proxy._lifecycle`).
    """
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        lifespan="on",
        proxy_headers=True,
        forwarded_allow_ips=forwarded_allow_ips,
        timeout_graceful_shutdown=None if graceful_timeout is None else math.ceil(graceful_timeout),
        log_config=log_config,
    )
    server = uvicorn.Server(config)
    app.state.reap_workers = True  # this process owns every worker process below it

    async def announce(callback: Callable[[], None]) -> None:
        while not server.started:
            await asyncio.sleep(0.05)
        callback()

    async def serve() -> None:
        announcer = asyncio.create_task(announce(on_started)) if on_started is not None else None
        remove_reload_signal = install_reload_signal(app, asyncio.get_running_loop())
        try:
            await server.serve()
        finally:
            remove_reload_signal()
            if announcer is not None:
                announcer.cancel()

    try:
        asyncio.run(serve())
    except SystemExit:
        if server.started:
            raise
    except KeyboardInterrupt:
        if not server.started:
            return 1
    if not server.started:
        message = app.state.startup_error or "the server did not start (see the log above)"
        print(f"hookjail: cannot start: {message}", file=sys.stderr)
        return 1
    return 0


def _serve(args: argparse.Namespace) -> int:
    config = _load(args)
    settings = serve_settings(
        config, os.environ, database_url=args.database_url, allow_weak_sandbox=args.allow_weak_sandbox
    )
    log_config = _configure_logging(args.log_level, args.log_format)
    # uvicorn drains on SIGTERM, then raises it again: an interrupt ends the process with status 0
    signal.signal(signal.SIGTERM, _interrupt)
    return _run_server(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        forwarded_allow_ips=args.forwarded_allow_ips,
        log_config=log_config,
        graceful_timeout=drain_timeout(config),
    )


def _demo(args: argparse.Namespace) -> int:
    from ._demo import demo_environ, find_example_config, run_dev_idp  # noqa: PLC0415 (flask etc. only here)

    config_path = find_example_config(args.config, Path.cwd())
    config = _load(args, config_path)
    _port_free(args.host, args.port)
    # uvicorn stops gracefully on SIGTERM, then re-raises it: make that an interrupt so the cleanup below runs
    signal.signal(signal.SIGTERM, _interrupt)
    scratch = None
    database_url = args.database_url
    if database_url is None:
        scratch = Path(tempfile.mkdtemp(prefix="hookjail-demo-"))
        database_url = f"sqlite:///{scratch / 'demo.db'}"
    log_config = _configure_logging(args.log_level)
    if args.log_level != "debug":
        # the provider's request log and the libraries' chatter would bury the instructions
        for name in ("werkzeug", "oidc_provider_mock", "httpx", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)
    try:
        with run_dev_idp(args.idp_port) as idp:
            environ = demo_environ(idp)
            settings = serve_settings(
                config, environ, database_url=database_url, allow_weak_sandbox=args.allow_weak_sandbox
            )
            browse = args.host if args.host not in ("0.0.0.0", "::", "") else "127.0.0.1"  # noqa: S104
            url = f"http://{'[' + browse + ']' if ':' in browse else browse}:{args.port}/"
            banner = _demo_banner(
                url=url,
                config=config,
                idp_url=idp.url,
                database=str(scratch / "demo.db") if scratch else _hide_password(database_url),
                temporary=scratch is not None,
                host=args.host,
                master_key=settings.master_key,
                generated_key=settings.master_key == environ["LITELLM_MASTER_KEY"],
            )
            return _run_server(
                create_app(settings),
                host=args.host,
                port=args.port,
                log_level=args.log_level,
                on_started=lambda: _write(banner, sys.stdout),
                log_config=log_config,
                graceful_timeout=drain_timeout(config),
            )
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _hide_password(url: str) -> str:
    from sqlalchemy.engine import make_url  # noqa: PLC0415

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL: serve_settings reports it
        return url


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _port_free(host: str, port: int) -> None:
    """Fail early, with the flag to change, when the port is taken (a LiteLLM proxy often has 4000)."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                f"--port {port}: cannot listen on {host}:{port} ({exc.strerror}); pick another port"
            ) from None


def _demo_banner(
    *,
    url: str,
    config: ProxyConfig,
    idp_url: str,
    database: str,
    temporary: bool,
    host: str,
    master_key: str,
    generated_key: bool = True,
) -> str:
    from ._demo import CLIENT_ID, SAMPLE_USERS, master_key_lines  # noqa: PLC0415

    hook = config.hook.dotted if config.hook is not None else "none (general_settings.custom_sso is not set)"
    try:
        shown_config = config.path.relative_to(Path.cwd())
    except ValueError:
        shown_config = config.path
    rule = "=" * 78
    lines = [
        "",
        rule,
        "hookjail demo: FOR DEVELOPMENT ONLY. The identity provider below signs in anyone, without a password.",
        rule,
        "",
        f"  1. Open {url}",
        '  2. Click "Log in with SSO".',
        '  3. On the provider\'s page type any name or email in the "sub" box and press "Authorize"',
        f"     (or click {' / '.join(SAMPLE_USERS)}). A name without @ becomes <name>@example.com.",
        "  4. The dashboard shows what the hook decided (role, models, budget).",
        "",
        "What this started:",
        f"  proxy              {url}  config {shown_config}, hook {hook}",
        f"  identity provider  {idp_url}  (oidc-provider-mock, in this process)",
        f"  OIDC client        GENERIC_CLIENT_ID={CLIENT_ID}, a random secret, GENERIC_DISCOVERY_URL at the provider",
        *master_key_lines(url, master_key, generated=generated_key),
        f"  database           {database}" + ("  (temporary, deleted when the demo stops)" if temporary else ""),
        "  Your shell's SSO variables and master key are not used, and nothing was exported.",
    ]
    if host not in ("127.0.0.1", "localhost", "::1"):
        lines.append("  Note: the provider listens on 127.0.0.1 only: sign in from a browser on this machine.")
    lines += ["", "Press Ctrl-C to stop.", ""]
    return "\n".join(lines)
