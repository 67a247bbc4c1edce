"""A harness that confines a fresh interpreter the way the zygote does and runs one attempt inside it.

Each :meth:`Jail.run` starts ``python`` (a new process: confinement cannot be undone), which calls
:meth:`Confinement.prepare`, then either runs the attempt itself (``where="zygote"``: the hook's import-time
code) or forks a child that calls :meth:`Confinement.apply_child` first (``where="child"``: a call). The
attempt is a function ``attempt(ctx)`` written as source; the harness reports what it returned, the errno
name of the ``OSError`` it raised, or the signal that killed the child.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = str(Path(__file__).resolve().parents[2])

_SCRIPT = r"""
import errno, json, os, signal, sys
cfg = json.loads(sys.argv[1])
sys.path.insert(0, cfg["repo"])
from runner._confine import Confinement

ctx = dict(cfg["ctx"], proxy_pid=os.getppid(), zygote_pid=os.getpid())
# Descriptors a careless parent might have leaked into the zygote, opened while it could still open them.
ctx["leaked"] = {name: os.open(path, os.O_RDONLY) for name, path in cfg["leak"].items()}
if cfg["where"] == "unconfined":  # the control experiment: what the attempt does without the sandbox
    conf = None
else:
    conf = Confinement.prepare(
        network=cfg["network"], read_paths=cfg["read_paths"], tmp_root=cfg["tmp_root"], strict=True
    )
# Made after prepare(), as the zygote makes them: the temp root is now the worker's own tmpfs.
tmp_dirs = {"own": cfg["ctx"]["tmp_dir"], "other": cfg["ctx"]["other_tmp"]}
for path in tmp_dirs.values():
    os.mkdir(path, 0o700)
with open(os.path.join(tmp_dirs["other"], "secret"), "w") as file:
    file.write("another login's openid")
namespace = {}
exec(cfg["code"], namespace)


def outcome():
    try:
        value = namespace["attempt"](ctx)
    except OSError as exc:
        name = errno.errorcode.get(exc.errno, exc.errno) if exc.errno else None
        return {"errno": name, "type": type(exc).__name__}
    except Exception as exc:
        return {"raised": type(exc).__name__, "message": str(exc)}
    return {"value": value}


def child(tmp_dir, report_fd):
    os.umask(0o077)  # as the runner's child does: its filter then denies umask
    os.setpgid(0, 0)  # and it leads a process group of its own: its filter then denies setpgid
    conf.apply_child(tmp_dir)
    os.write(report_fd, json.dumps(outcome()).encode())
    os._exit(0)


if cfg["sibling"]:
    # Another login's child, confined the same way, idling while the attempt runs.
    ready_r, ready_w = os.pipe()
    sibling = os.fork()
    if sibling == 0:
        if conf is not None:
            os.umask(0o077)
            os.setpgid(0, 0)
            conf.apply_child(cfg["ctx"]["other_tmp"])
        os.write(ready_w, str(os.getpid()).encode())  # its pid in the children's PID namespace
        signal.pause()
        os._exit(0)
    inner_pid = int(os.read(ready_r, 20))
    # As the attempt names it: a child from inside that namespace, the zygote from outside it.
    ctx["sibling_pid"] = inner_pid if cfg["where"] == "child" else sibling

result = {"layers": conf.layers if conf else {}}
if cfg["where"] in ("zygote", "unconfined"):
    result.update(outcome())
else:
    report_r, report_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(report_r)
        child(cfg["ctx"]["tmp_dir"], report_w)
    os.close(report_w)
    chunks = []
    while chunk := os.read(report_r, 65536):
        chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    if chunks:
        result.update(json.loads(b"".join(chunks)))
    result["signal"] = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
if cfg["sibling"]:
    result["sibling_alive"] = os.waitpid(sibling, os.WNOHANG) == (0, 0)
    os.kill(sibling, signal.SIGKILL)
    os.waitpid(sibling, 0)
result["tmp_listing"] = {name: sorted(os.listdir(path)) for name, path in tmp_dirs.items()}
print(json.dumps(result))
"""


def python_read_paths() -> list[str]:
    """The interpreter's own directories, as the runner grants them."""
    return sorted({sys.prefix, sys.base_prefix, *site.getsitepackages(), os.path.join(REPO, "runner")})


@dataclass
class Jail:
    """Paths for one test: a private temp root with this call's and another call's dir, and a hook dir.

    Attributes:
        tmp_root: the zygote's private temp root (0700), empty: a tmpfs is mounted over it in the worker.
        tmp_dir: this child's temp dir, made under ``tmp_root`` by the zygote.
        other_tmp: another login's child's temp dir, made likewise, holding a file ``secret``.
        hook_dir: the operator's directory: ``allowed.csv`` (granted) beside ``config.yaml`` (not).
    """

    tmp_root: Path
    tmp_dir: Path
    other_tmp: Path
    hook_dir: Path

    def run(
        self,
        code: str,
        *,
        where: str = "child",
        network: bool = False,
        sibling: bool = False,
        leak: dict[str, str] | None = None,
        ctx: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Run ``attempt(ctx)`` (defined by ``code``) confined; return the harness's report.

        ``where`` is ``"child"`` (a call's child), ``"zygote"`` (import time) or ``"unconfined"`` (the control
        experiment). The report holds ``layers`` and one of ``value``, ``errno`` (a name such as
        ``"EACCES"``) or ``raised``; for a child also ``signal`` (the signal that killed it, or None); and
        ``tmp_listing``: what the two temp dirs held at the end (``own`` and ``other``), as seen from inside
        the worker (the host does not see its tmpfs).

        With ``sibling``, another login's child idles meanwhile; ``ctx["sibling_pid"]`` is its pid as the
        attempt sees it (the children's PID namespace for a child, the zygote's own otherwise). A child sets
        its umask to ``0o077`` and leads a process group of its own before :meth:`Confinement.apply_child`, as the
        runner's child does.
        """
        cfg = {
            "repo": REPO,
            "code": textwrap.dedent(code),
            "where": where,
            "network": network,
            "sibling": sibling,
            "leak": leak or {},
            "read_paths": [*python_read_paths(), str(self.hook_dir / "allowed.csv")],
            "tmp_root": str(self.tmp_root),
            "ctx": {
                "tmp_dir": str(self.tmp_dir),
                "other_tmp": str(self.other_tmp),
                "hook_dir": str(self.hook_dir),
                **(ctx or {}),
            },
        }
        done = subprocess.run(
            [sys.executable, "-I", "-c", _SCRIPT, json.dumps(cfg)],
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": "/usr/bin:/bin"},
            check=False,
        )
        assert done.returncode == 0, done.stderr
        report: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
        return report
