"""The ``hookjail`` command.

``hookjail --config config.yaml [...]`` serves the proxy (LiteLLM's muscle memory); ``hookjail check`` runs
the hook once through the sandbox. (Subcommands ``bench`` and ``demo`` are reserved.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import sys
from collections.abc import Sequence
from typing import Any

import uvicorn
from fastapi_sso.sso.base import OpenID
from pydantic import ValidationError

from ._app import create_app, serve_settings
from ._check import run_check
from ._config import ProxyConfig, load_config
from ._errors import ConfigError

__all__ = ("main", "run")

SUBCOMMANDS = ("check",)
RESERVED = ("bench", "demo")


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


def _add_hook_flags(parser: argparse.ArgumentParser, *, concurrency: bool) -> None:
    group = parser.add_argument_group("hook limits (override hook_settings in config.yaml)")
    group.add_argument(
        "--hook-timeout",
        type=_positive_float,
        metavar="S",
        help="wall-clock seconds per hook call (config default: 5)",
    )
    group.add_argument(
        "--hook-memory-mb",
        type=_positive_int,
        metavar="MB",
        help="memory a hook call may use, in MiB (config default: 256)",
    )
    group.add_argument(
        "--hook-cpu-seconds",
        type=_positive_float,
        metavar="S",
        help="CPU seconds per hook call (config default: 2)",
    )
    if concurrency:
        group.add_argument(
            "--hook-concurrency",
            type=_positive_int,
            metavar="N",
            help="hook calls in flight at once (config default: 8)",
        )
    group.add_argument(
        "--allow-weak-sandbox",
        action="store_true",
        help="start even if this host cannot provide every confinement layer (default: refuse)",
    )


def _serve_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hookjail",
        description="Serve the admin UI's SSO login, running the custom SSO handler in a sandbox. "
        "Subcommand: 'hookjail check --help'.",
    )
    parser.add_argument("--config", required=True, metavar="PATH", help="LiteLLM-style config.yaml (required)")
    parser.add_argument(
        "--host",
        default="0.0.0.0",  # noqa: S104 (LiteLLM's default)
        help="address to listen on (default: 0.0.0.0)",
    )
    parser.add_argument("--port", type=int, default=4000, help="port to listen on (default: 4000)")
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help="database URL (default: general_settings.database_url, else a SQLite file hookjail.db beside config.yaml)",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=("debug", "info", "warning", "error"),
        help="log level (default: info)",
    )
    _add_hook_flags(parser, concurrency=True)
    return parser


def _check_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hookjail check",
        description="Confine and import the hook, run it once on a sample (or given) OpenID, and print the "
        "validated values. Exits non-zero unless the outcome is ok.",
    )
    parser.add_argument("--config", required=True, metavar="PATH", help="LiteLLM-style config.yaml (required)")
    parser.add_argument(
        "--openid",
        metavar="JSON",
        help="the OpenID to pass, as a JSON object (default: a sample user), e.g. "
        '\'{"id": "alice", "email": "alice@example.com"}\'',
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    _add_hook_flags(parser, concurrency=False)
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    mapping = {
        "hook_timeout": "timeout",
        "hook_memory_mb": "memory_mb",
        "hook_cpu_seconds": "cpu_seconds",
        "hook_concurrency": "max_concurrency",
    }
    return {key: getattr(args, flag) for flag, key in mapping.items() if getattr(args, flag, None) is not None}


def _load(args: argparse.Namespace) -> ProxyConfig:
    return load_config(args.config).with_hook_settings(**_overrides(args))


def run(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 failure, 2 usage or configuration error)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments and arguments[0] in RESERVED:
        print(f"hookjail: '{arguments[0]}' is not available in this version", file=sys.stderr)
        return 2
    try:
        if arguments and arguments[0] == "check":
            return _check(_check_parser().parse_args(arguments[1:]))
        return _serve(_serve_parser().parse_args(arguments))
    except ConfigError as exc:
        print(f"hookjail: configuration error: {exc}", file=sys.stderr)
        return 2


def main() -> None:
    """Console-script entry point."""
    sys.exit(run())


def _check(args: argparse.Namespace) -> int:
    config = _load(args)
    openid: dict[str, Any] | None = None
    if args.openid is not None:
        try:
            openid = OpenID.model_validate(json.loads(args.openid)).model_dump(mode="json")
        except (ValueError, ValidationError) as exc:
            raise ConfigError(f"--openid: not a valid OpenID JSON object: {exc}") from None
    report = asyncio.run(run_check(config, openid, allow_weak_sandbox=args.allow_weak_sandbox))
    if args.json:
        print(json.dumps(report.as_dict()))
    else:
        print(report.as_text())
    return 0 if report.ok else 1


def _serve(args: argparse.Namespace) -> int:
    config = _load(args)
    settings = serve_settings(
        config, os.environ, database_url=args.database_url, allow_weak_sandbox=args.allow_weak_sandbox
    )
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s:     %(name)s: %(message)s")
    app = create_app(settings)
    server = uvicorn.Server(
        uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level, lifespan="on")
    )
    try:
        asyncio.run(server.serve())
    except SystemExit:
        if server.started:
            raise
    if not server.started:
        message = app.state.startup_error or "the server did not start (see the log above)"
        print(f"hookjail: cannot start: {message}", file=sys.stderr)
        return 1
    return 0
