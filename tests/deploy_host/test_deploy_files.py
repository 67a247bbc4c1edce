"""The deployment files parse, agree with each other and with the real command line, and nothing in them is
privileged or unconfined. (No container runtime here: the Dockerfile is read, not built.)"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from proxy.cli import _serve_parser

from . import _unit
from ._profile import PROFILE, REPO

DEPLOY = REPO / "deploy"
DOCKERFILE = REPO / "Dockerfile"
KUBERNETES = DEPLOY / "kubernetes"
IMAGE_CMD = ["hookjail", "--config", "/etc/hookjail/config.yaml", "--host", "0.0.0.0"]
IMAGE_USER = "10001"

#: What must appear nowhere: a privileged container, or seccomp/AppArmor switched off.
FORBIDDEN = (
    "privileged: true",
    "--privileged",
    "privileged=true",
    "seccomp=unconfined",
    "seccomp:unconfined",
    "apparmor=unconfined",
    "apparmor:unconfined",
    "Unconfined",
    "CAP_SYS_ADMIN=",
    "SYS_ADMIN]",
)


def _files() -> list[Path]:
    return [DOCKERFILE, *sorted(path for path in DEPLOY.rglob("*") if path.is_file())]


def _yaml_files() -> list[Path]:
    return sorted(DEPLOY.rglob("*.yaml"))


def _documents(path: Path) -> list[Any]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document is not None]


def _walk(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key), value
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending += line[:-1] + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            keyword, _, rest = pending.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
            pending = ""
    return instructions


# --- everything -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", _files(), ids=lambda p: str(p.relative_to(REPO)))
def test_nothing_is_privileged_or_unconfined(path: Path) -> None:
    text = path.read_text()
    for needle in FORBIDDEN:
        assert needle not in text, f"{path.relative_to(REPO)}: {needle!r}"


@pytest.mark.parametrize("path", _yaml_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_yaml_parses_and_asks_for_no_privilege(path: Path) -> None:
    documents = _documents(path)
    assert documents
    for key, value in _walk(documents):
        assert not (key == "privileged" and value is True), path
        assert not (key == "allowPrivilegeEscalation" and value is True), path
        if key in ("seccompProfile", "appArmorProfile") and isinstance(value, dict):
            assert value.get("type") != "Unconfined", path
        if key == "add":
            assert "SYS_ADMIN" not in value and "ALL" not in value, path


def test_the_seccomp_profile_is_json() -> None:
    profile = json.loads(PROFILE.read_text())
    assert profile["syscalls"]


# --- Dockerfile -------------------------------------------------------------------------------------------------


def test_dockerfile_builds_a_wheel_then_a_slim_python_311_image() -> None:
    instructions = _dockerfile()
    stages = [args for keyword, args in instructions if keyword == "FROM"]
    assert len(stages) == 2
    assert stages[0].endswith(" AS build")
    base = dict(args.split("=", 1) for keyword, args in instructions if keyword == "ARG" and "=" in args)
    assert base["PYTHON_IMAGE"].startswith("python:3.11-slim-")  # Debian-based
    runs = [args for keyword, args in instructions if keyword == "RUN"]
    assert any("pip wheel" in run for run in runs)
    assert any("libseccomp2" in run and "apt-get install" in run for run in runs)
    assert any("--no-index" in run and "hookjail" in run for run in runs)
    copies = [args for keyword, args in instructions if keyword == "COPY"]
    assert "--from=build /wheels /tmp/wheels" in copies
    for copied in ("pyproject.toml", "proxy", "runner", "sdk"):
        assert any(copied in args.split() for args in copies), copied
        assert (REPO / copied).exists()


def test_dockerfile_runs_the_real_command_as_a_numeric_unprivileged_user() -> None:
    instructions = dict(_dockerfile()[::-1])  # the last of each instruction wins
    assert json.loads(instructions["CMD"]) == IMAGE_CMD
    args = _serve_parser().parse_args(IMAGE_CMD[1:])  # the real CLI accepts these flags
    assert (args.config, args.host, args.port) == ("/etc/hookjail/config.yaml", "0.0.0.0", 4000)
    assert instructions["EXPOSE"] == "4000"
    assert instructions["USER"].split(":")[0] == IMAGE_USER
    assert "/health" in instructions["HEALTHCHECK"] and "4000" in instructions["HEALTHCHECK"]
    assert "--security-opt seccomp=deploy/seccomp/hookjail.json" in DOCKERFILE.read_text()


# --- compose and haproxy ----------------------------------------------------------------------------------------


def test_compose_runs_two_replicas_behind_haproxy_with_one_database() -> None:
    (compose,) = _documents(DEPLOY / "compose.yaml")
    services = compose["services"]
    assert set(services) == {"postgres", "hookjail-1", "hookjail-2", "haproxy"}
    haproxy_address = services["haproxy"]["networks"]["hookjail"]["ipv4_address"]
    for name in ("hookjail-1", "hookjail-2"):
        replica = services[name]
        assert replica["security_opt"] == [
            "no-new-privileges:true",
            "seccomp=./seccomp/hookjail.json",
            "apparmor=hookjail",
        ]
        assert replica["cap_drop"] == ["ALL"] and "cap_add" not in replica
        assert "ports" not in replica  # reached through haproxy only
        env = replica["environment"]
        for variable in ("LITELLM_MASTER_KEY", "PROXY_BASE_URL", "GENERIC_CLIENT_SECRET"):
            assert re.fullmatch(rf"\$\{{{variable}:\?[^}}]+\}}", env[variable]), variable  # from the environment
        assert env["DATABASE_URL"].startswith("postgresql://") and "@postgres:5432/" in env["DATABASE_URL"]
        assert env["FORWARDED_ALLOW_IPS"] == haproxy_address
        for volume in replica["volumes"]:
            source, target, mode = volume.split(":")
            assert (DEPLOY / source).is_file(), source
            assert target.startswith("/etc/hookjail/") and mode == "ro"
        assert replica["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert (DEPLOY / "seccomp" / "hookjail.json").is_file()
    assert services["haproxy"]["ports"] == ["4000:4000"]
    haproxy = (DEPLOY / "haproxy.cfg").read_text()
    assert re.findall(r"^\s*server (\S+) (\S+)$", haproxy, re.MULTILINE) == [
        ("hookjail-1", "hookjail-1:4000"),
        ("hookjail-2", "hookjail-2:4000"),
    ]
    assert "option httpchk GET /health" in haproxy


def test_haproxy_accepts_its_configuration() -> None:
    haproxy = subprocess.run(["which", "haproxy"], capture_output=True, text=True, check=False).stdout.strip()
    assert haproxy, "haproxy is part of the test machine (.ci/run installs it)"
    done = subprocess.run(
        [haproxy, "-c", "-f", str(DEPLOY / "haproxy.cfg")], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr  # warnings only: the replicas' names resolve in Docker's network


# --- Kubernetes -------------------------------------------------------------------------------------------------


def _kubernetes() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for path in KUBERNETES.glob("*.yaml"):
        for document in _documents(path):
            found[document["kind"]] = document
    return found


def test_kustomization_lists_every_manifest() -> None:
    resources = _kubernetes()["Kustomization"]["resources"]
    assert sorted(resources) == sorted(p.name for p in KUBERNETES.glob("*.yaml") if p.name != "kustomization.yaml")


def test_deployment_probes_health_and_runs_under_the_shipped_profile() -> None:
    manifests = _kubernetes()
    pod = manifests["Deployment"]["spec"]["template"]
    spec = pod["spec"]
    assert manifests["Deployment"]["spec"]["replicas"] >= 2
    assert spec["securityContext"]["seccompProfile"] == {
        "type": "Localhost",
        "localhostProfile": "profiles/hookjail.json",
    }
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert str(spec["securityContext"]["runAsUser"]) == IMAGE_USER
    (container,) = spec["containers"]
    context = container["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": "http"}, probe
    assert {"name": "http", "containerPort": 4000} in container["ports"]
    assert container["args"][0] == "hookjail"
    args = _serve_parser().parse_args(container["args"][1:])
    assert (args.config, args.port) == ("/etc/hookjail/config.yaml", 4000)
    # The Service reaches these pods on that port.
    service = manifests["Service"]["spec"]
    assert service["selector"].items() <= pod["metadata"]["labels"].items()
    assert service["ports"][0]["targetPort"] == "http"


def test_deployment_takes_its_secrets_from_the_secret_and_its_files_from_the_configmap() -> None:
    manifests = _kubernetes()
    spec = manifests["Deployment"]["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    from_secret = {item["name"]: item["valueFrom"]["secretKeyRef"] for item in container["env"] if "valueFrom" in item}
    assert set(from_secret) == {"LITELLM_MASTER_KEY", "GENERIC_CLIENT_SECRET", "DATABASE_URL"}
    secret = manifests["Secret"]
    for variable, ref in from_secret.items():
        assert ref["name"] == secret["metadata"]["name"]
        assert ref["key"] in secret["stringData"], variable
    plain = {item["name"]: item["value"] for item in container["env"] if "value" in item}
    assert plain["PROXY_BASE_URL"].startswith("https://")
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}
    config_volume = volumes[mounts["/etc/hookjail"]["name"]]
    assert config_volume["configMap"]["name"] == manifests["ConfigMap"]["metadata"]["name"]
    assert "subPath" not in mounts["/etc/hookjail"]  # a subPath mount never sees a changed hook
    assert "/tmp" in mounts  # the worker's temp root, with a read-only root filesystem


def test_configmap_carries_the_shipped_config_and_hook() -> None:
    data = _kubernetes()["ConfigMap"]["data"]
    assert data["config.yaml"] == (DEPLOY / "config.yaml").read_text()
    assert data["custom_sso.py"] == (REPO / "examples" / "custom_sso.py").read_text()
    config = yaml.safe_load(data["config.yaml"])
    assert config["general_settings"]["database_url"] == "os.environ/DATABASE_URL"
    assert config["general_settings"]["master_key"] == "os.environ/LITELLM_MASTER_KEY"
    assert config["hook_settings"]["sandbox"] == "strict"


def test_shipped_config_loads(tmp_path: Path) -> None:
    from proxy._config import load_config

    for name, text in _kubernetes()["ConfigMap"]["data"].items():
        (tmp_path / name).write_text(text)
    config = load_config(tmp_path / "config.yaml")
    assert config.hook is not None
    assert config.hook.dotted == "custom_sso.custom_sso_handler"


# --- systemd ----------------------------------------------------------------------------------------------------


def test_unit_keeps_what_the_sandbox_needs() -> None:
    settings = _unit.settings()

    def one(key: str) -> str:
        (value,) = settings[key]
        return value

    assert one("NoNewPrivileges") == "yes"
    assert one("PrivateTmp") == "yes"
    assert one("ProtectSystem") == "strict"
    assert "/var/lib/hookjail" in one("ReadWritePaths").split()
    assert set(one("RestrictNamespaces").split()) == {"user", "mnt", "pid", "ipc", "net"}
    assert "CAP_SYS_ADMIN" not in one("CapabilityBoundingSet")
    assert "ProtectProc" not in settings  # see the unit: the proxy reads its worker's /proc entries
    assert "PrivateUsers" not in settings  # a user namespace of the service's own would leave no uid 65532
    filters = " ".join(settings["SystemCallFilter"]).split()
    assert not any(entry.startswith("~") for entry in filters)
    assert {"mount", "seccomp", "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self"} <= set(
        filters
    )
    command = shlex.split(one("ExecStart"))
    args = _serve_parser().parse_args(command[1:])
    assert args.config == "/etc/hookjail/config.yaml"


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = _unit.systemd_analyze()
    assert analyze is not None, "systemd-analyze is part of the test machine (.ci/run installs systemd)"
    # verify wants ExecStart's program to exist: point it at this interpreter.
    text = _unit.UNIT.read_text().replace("/opt/hookjail/bin/hookjail", str(Path(sys.executable).resolve()))
    unit = tmp_path / "hookjail.service"
    unit.write_text(text)
    done = subprocess.run(
        [analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "hookjail.service" not in done.stderr, done.stderr  # unknown keys and bad values are only warnings
