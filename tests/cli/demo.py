"""Run ``hookjail demo`` as a real subprocess, and sign in through its embedded provider with httpx."""

from __future__ import annotations

import html
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin

import httpx

from tests.cli.helpers import free_port

BANNER_END = "Press Ctrl-C to stop."


@dataclass
class Demo:
    """A running ``hookjail demo``."""

    url: str
    process: subprocess.Popen[str]
    log_path: Path
    lines: list[str] = field(default_factory=list)

    @property
    def banner(self) -> str:
        return "\n".join(self.lines)

    @property
    def database(self) -> Path:
        found = re.search(r"^\s*database\s+(\S+)", self.banner, re.MULTILINE)
        assert found, self.banner
        return Path(found.group(1))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        """Interrupt it as Ctrl-C would; its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                return self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


@contextmanager
def run_demo(
    directory: Path,
    *args: str,
    env: dict[str, str] | None = None,
    command: Sequence[str] = (sys.executable, "-m", "proxy"),
    cwd: Path | None = None,
) -> Iterator[Demo]:
    """Start ``hookjail demo`` (``command``) on a free port from ``cwd`` (default: ``directory``, not the
    checkout) with an environment that holds nothing but PATH (and ``env``), and wait for its instructions."""
    port = free_port()
    log_path = directory / "demo.log"
    with (
        log_path.open("w") as log,
        subprocess.Popen(
            [*command, "demo", "--port", str(port), *args],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            cwd=cwd or directory,
            env={"PATH": "/usr/bin:/bin", **(env or {})},
        ) as process,
    ):
        demo = Demo(url=f"http://127.0.0.1:{port}/", process=process, log_path=log_path)
        ready = threading.Event()

        def read() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                demo.lines.append(line.rstrip("\n"))
                if line.strip() == BANNER_END:
                    ready.set()
            ready.set()  # EOF: it exited

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            assert ready.wait(60), "hookjail demo printed no instructions within 60 s:\n" + demo.log()
            assert process.poll() is None, f"hookjail demo exited ({process.returncode}):\n{demo.log()}"
            yield demo
        finally:
            demo.stop()
            reader.join(10)


def dashboard_values(page: str) -> dict[str, str]:
    """The values shown on /ui/ (``<dd id="user-...">``), by id."""
    return {name: html.unescape(value) for name, value in re.findall(r'<dd id="user-([a-z-]+)">([^<]*)</dd>', page)}


def sign_in(demo: Demo, typed: str) -> httpx.Response:
    """Open the demo, follow "Log in with SSO", type ``typed`` on the provider's form, follow every redirect."""
    with httpx.Client(follow_redirects=True, timeout=30) as client:
        home = client.get(demo.url)
        assert home.status_code == 200
        link = re.search(r'<a [^>]*href="([^"]+)"[^>]*>Log in with SSO</a>', home.text)
        assert link, home.text
        form = client.get(urljoin(str(home.url), html.unescape(link.group(1))))
        assert form.status_code == 200, form.text
        assert 'name="sub"' in form.text, form.text
        return client.post(str(form.url), data={"sub": typed})
