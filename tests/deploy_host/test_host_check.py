"""``hookjail check`` (and a serving replica) under the seccomp filters of the places it is deployed to, without a
container runtime: a launcher (:mod:`._launcher`) drops capabilities or switches uid, sets no_new_privs, loads
the filter and execs the real command, as runc does for a container's first process.

* the rule of every default container profile (Docker's, and Kubernetes' RuntimeDefault, which is the runtime's
  default): no namespaces without CAP_SYS_ADMIN. Strict mode must refuse to start and name the layer.
* the shipped profile, deploy/seccomp/hookjail.json, as an allow list (everything else EPERM): every layer on,
  as the image's user (uid 10001, no capabilities) and as root with the root variant's capabilities.
* the systemd unit's SystemCallFilter= and CapabilityBoundingSet=: every layer on.

They need root (to switch uid and drop capabilities) and a kernel that gives this machine every layer, as CI's
does.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from runner._identity import unreadable_by

from ..cli.helpers import free_port
from . import _unit
from ._profile import REPO, load, machine_supported

USER = 10001  # the image's user (Dockerfile: USER 10001)
ROOT_VARIANT_CAPS = ["CAP_CHOWN", "CAP_SETUID", "CAP_SETGID"]
LAYERS = (
    "no_new_privs",
    "user_namespace",
    "network_namespace",
    "pid_namespace",
    "ipc_namespace",
    "private_tmp",
    "landlock",
    "seccomp",
)

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="switching uid and dropping capabilities need root"),
    pytest.mark.skipif(not machine_supported(), reason="the profile's tests know x86_64 and aarch64"),
]


WORKER_UID = 65532  # hook_settings.worker_uid's default: the worker's uid with distinct_uid


def _readable_by(uid: int) -> bool:
    paths = [str(REPO), sys.executable, sys.prefix, sys.base_prefix, os.path.realpath(sys.executable)]
    return all(unreadable_by(path, uid, uid) is None for path in paths)


needs_readable_checkout = pytest.mark.skipif(
    not _readable_by(USER), reason=f"uid {USER} cannot read this checkout or its Python"
)
# A root proxy with only CHOWN, SETUID and SETGID needs distinct_uid on (see the root variant's test).
needs_distinct_uid = pytest.mark.skipif(
    not _readable_by(WORKER_UID), reason=f"uid {WORKER_UID} cannot read this checkout or its Python"
)


@pytest.fixture
def tmpdir_for_all() -> Iterator[Path]:
    """A $TMPDIR like /tmp (mode 1777), which uid 10001 can use too; removed afterwards, whoever owns what."""
    path = Path(tempfile.mkdtemp(prefix="hookjail-deploy-"))
    path.chmod(0o1777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _launch(spec: dict[str, Any], command: list[str]) -> list[str]:
    return [sys.executable, "-m", "tests.deploy_host._launcher", json.dumps(spec), *command]


def _check(spec: dict[str, Any], tmpdir: Path, config: Path = REPO / "examples" / "config.yaml") -> tuple[int, Any]:
    """Run ``hookjail check --config ... --json`` under ``spec``: its exit code and report."""
    done = subprocess.run(
        _launch(spec, [sys.executable, "-m", "proxy", "check", "--config", str(config), "--json"]),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TMPDIR": str(tmpdir), "LANG": "C.UTF-8"},
        check=False,
    )
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


def _assert_every_layer_on(layers: dict[str, Any]) -> None:
    for layer in LAYERS:
        assert layers.get(layer) not in (None, False), (layer, layers)
    assert layers["user_namespace"] == "uid 1000 in ns"
    assert str(layers["private_tmp"]).startswith("tmpfs ")
    assert int(str(layers["landlock"]).split()[1]) >= 6


# --- the default container profiles: strict mode refuses --------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        # The rule alone, the way every default container profile has it: unshare, setns and clone with a
        # namespace flag -> EPERM, whatever else is allowed.
        pytest.param({"filter": "deny_namespaces", "caps": ROOT_VARIANT_CAPS}, id="no-namespaces-rule"),
        # Docker's default profile as a whole (the shipped one without hookjail's additions), Docker's default
        # capabilities (root in the container, no CAP_SYS_ADMIN).
        pytest.param({"filter": "docker_default"}, id="docker-default-profile"),
    ],
)
def test_strict_mode_refuses_under_a_default_container_profile(spec: dict[str, Any], tmpdir_for_all: Path) -> None:
    code, report = _check(spec, tmpdir_for_all)
    assert code == 1
    assert report["outcome"] == "sandbox"
    # The layer, and the call the kernel (here: the filter) refused.
    assert report["error"].startswith(
        "user_namespace is not available on this host: unshare: Operation not permitted. "
    )
    assert "deploy/seccomp/hookjail.json" in report["error"]  # the fix is named
    assert report["values"] is None  # the hook never ran
    # The fix is not in the message (the runner's text names no profile or flag): README "Deploying" says it.


# --- the shipped profile: every layer on ------------------------------------------------------------------------


@needs_readable_checkout
def test_every_layer_on_as_the_images_user_under_the_shipped_profile(tmpdir_for_all: Path) -> None:
    code, report = _check({"filter": "hookjail", "uid": USER}, tmpdir_for_all)
    assert (code, report["outcome"]) == (0, "ok"), report
    _assert_every_layer_on(report["layers"])
    # The documented trade-off of a non-root container: distinct_uid off, and saying why.
    assert report["layers"]["distinct_uid"] == (
        "off: the proxy does not run as root, so it cannot start the worker as another uid"
    )


@needs_distinct_uid
def test_every_layer_and_distinct_uid_as_root_with_three_capabilities(tmpdir_for_all: Path) -> None:
    # The Kubernetes ConfigMap's config.yaml and hook, as a replica would read them.
    config = _configmap_dir(tmpdir_for_all) / "config.yaml"
    code, report = _check({"filter": "hookjail", "caps": ROOT_VARIANT_CAPS}, tmpdir_for_all, config)
    assert (code, report["outcome"]) == (0, "ok"), report
    _assert_every_layer_on(report["layers"])
    assert report["layers"]["distinct_uid"] == "uid 65532"


@pytest.mark.parametrize(("extra", "ok"), [([], False), (["CAP_SETFCAP"], True)], ids=["three-caps", "with-setfcap"])
def test_root_without_distinct_uid_needs_cap_setfcap(tmpdir_for_all: Path, extra: list[str], ok: bool) -> None:
    """With distinct_uid off (worker_uid: null here; or 65532 cannot read the installation), a root proxy's
    worker maps uid 0 into its user namespace, which Linux 5.12+ allows only with CAP_SETFCAP: the root variant's
    three capabilities are enough only with distinct_uid on. Strict mode refuses, naming the layer."""
    directory = _configmap_dir(tmpdir_for_all)
    config = directory / "config.yaml"
    text = config.read_text()
    assert "worker_uid: 65532" in text
    config.chmod(0o644)
    config.write_text(text.replace("worker_uid: 65532", "worker_uid: null"))
    code, report = _check({"filter": "hookjail", "caps": ROOT_VARIANT_CAPS + extra}, tmpdir_for_all, config)
    if ok:
        assert (code, report["outcome"]) == (0, "ok"), report
        _assert_every_layer_on(report["layers"])
        assert report["layers"]["distinct_uid"] == "off: no worker uid configured"
    else:
        assert (code, report["outcome"]) == (1, "sandbox"), report
        assert report["error"].startswith("user_namespace is not available on this host: Operation not permitted")


def _configmap_dir(parent: Path) -> Path:
    """deploy/kubernetes/configmap.yaml's files in a directory every uid can read, as the pod mounts them."""
    data = yaml.safe_load((REPO / "deploy" / "kubernetes" / "configmap.yaml").read_text())["data"]
    directory = parent / "etc-hookjail"
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    for name, text in data.items():
        (directory / name).write_text(text)
        (directory / name).chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    return directory


# --- the systemd unit -------------------------------------------------------------------------------------------


@needs_distinct_uid
@pytest.mark.skipif(_unit.systemd_analyze() is None, reason="systemd-analyze expands the unit's filter")
def test_every_layer_on_under_the_units_system_call_filter(tmpdir_for_all: Path) -> None:
    spec = {
        "filter": "allow",
        "names": sorted(_unit.allowed_syscalls()),
        "socket_families": _unit.socket_families(),
        "caps": _unit.capabilities(),
    }
    code, report = _check(spec, tmpdir_for_all)
    assert (code, report["outcome"]) == (0, "ok"), report
    _assert_every_layer_on(report["layers"])
    assert report["layers"]["distinct_uid"] == "uid 65532"


@needs_distinct_uid
@pytest.mark.skipif(_unit.systemd_analyze() is None, reason="systemd-analyze expands the unit's filter")
def test_without_the_units_additions_the_sandbox_cannot_build_itself(tmpdir_for_all: Path) -> None:
    """The unit lists mount, seccomp and landlock_* beside @system-service because it needs them."""
    names = _unit.allowed_syscalls() - {"mount"}
    spec = {"filter": "allow", "names": sorted(names), "caps": _unit.capabilities()}
    code, report = _check(spec, tmpdir_for_all)
    assert code == 1
    assert report["error"].startswith("private_tmp is not available on this host"), report


# --- a serving replica ------------------------------------------------------------------------------------------


@needs_readable_checkout
def test_a_replica_serves_with_every_layer_under_the_shipped_profile(tmpdir_for_all: Path) -> None:
    """`hookjail --config ...` (the image's CMD, here on loopback) as uid 10001 under the shipped profile:
    /health with the master key shows the layers the hook runs under."""
    load()  # the profile parses (the launcher reads it too)
    port = free_port()
    key = "sk-deploy-test-master-key"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "TMPDIR": str(tmpdir_for_all),
        "LANG": "C.UTF-8",
        "LITELLM_MASTER_KEY": key,
        "GENERIC_CLIENT_ID": "hookjail",
        "GENERIC_CLIENT_SECRET": "secret",
        "GENERIC_DISCOVERY_URL": "http://127.0.0.1:9/.well-known/openid-configuration",
        "PROXY_BASE_URL": f"http://127.0.0.1:{port}",
    }
    command = [sys.executable, "-m", "proxy", "--config", str(REPO / "examples" / "config.yaml")]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    command += ["--database-url", f"sqlite:///{tmpdir_for_all}/hookjail.db"]
    server = subprocess.Popen(
        _launch({"filter": "hookjail", "uid": USER}, command),
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        health = _wait_for_health(f"http://127.0.0.1:{port}/health", key, server)
        assert health["status"] == "ok", health
        _assert_every_layer_on(health["hook"]["layers"])
        public = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()
        assert set(public) == {"status", "version"}
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        assert server.stdout is not None
        server.stdout.close()


def _wait_for_health(url: str, key: str, server: subprocess.Popen[str]) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            assert server.stdout is not None
            pytest.fail(f"the replica exited ({server.returncode}):\n{server.stdout.read()}")
        try:
            answer = httpx.get(url, headers={"Authorization": f"Bearer {key}"}, timeout=5)
        except httpx.TransportError:
            time.sleep(0.25)
            continue
        health: dict[str, Any] = answer.json()
        return health
    pytest.fail("the replica did not answer /health within 60 s")
