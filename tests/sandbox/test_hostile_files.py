"""Hostile hooks against the filesystem and the environment, through the real runner."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from ._hooks import call_once, sandbox, write_hook

pytestmark = pytest.mark.anyio


async def test_cant_read_config_yaml_beside_hook(operator_dir: Path) -> None:
    spec = write_hook(
        operator_dir,
        """
        import os
        def handler(info):
            return observe(lambda: open(os.path.join(os.path.dirname(__file__), "config.yaml")).read())
        """,
    )
    assert (await call_once(spec, sandbox(operator_dir))).value == {
        "errno": "EACCES",
        "type": "PermissionError",
    }


async def test_cant_read_database_file_beside_hook(operator_dir: Path) -> None:
    spec = write_hook(
        operator_dir,
        """
        import os
        def handler(info):
            return observe(lambda: open(os.path.join(os.path.dirname(__file__), "proxy.db"), "rb").read())
        """,
    )
    assert (await call_once(spec, sandbox(operator_dir))).value["errno"] == "EACCES"


async def test_cant_query_database_with_sqlite3(operator_dir: Path) -> None:
    spec = write_hook(
        operator_dir,
        """
        import os, sqlite3
        def handler(info):
            path = os.path.join(os.path.dirname(__file__), "proxy.db")
            return observe(lambda: sqlite3.connect(path).execute("select api_key from users").fetchall())
        """,
    )
    value = (await call_once(spec, sandbox(operator_dir))).value
    assert value == {"raised": "OperationalError", "message": "unable to open database file"}


async def test_cant_list_deployment_directory(operator_dir: Path) -> None:
    spec = write_hook(
        operator_dir,
        """
        import os
        def handler(info):
            return observe(lambda: os.listdir(os.path.dirname(__file__)))
        """,
    )
    assert (await call_once(spec, sandbox(operator_dir))).value["errno"] == "EACCES"


async def test_cant_read_config_yaml_at_import_time(operator_dir: Path) -> None:
    spec = write_hook(
        operator_dir,
        """
        import os
        STOLEN = observe(lambda: open(os.path.join(os.path.dirname(__file__), "config.yaml")).read())
        def handler(info):
            return STOLEN
        """,
    )
    assert (await call_once(spec, sandbox(operator_dir))).value["errno"] == "EACCES"


async def test_cant_read_etc_shadow(operator_dir: Path) -> None:
    spec = write_hook(operator_dir, 'def handler(info):\n    return observe(lambda: open("/etc/shadow").read())\n')
    assert (await call_once(spec, sandbox(operator_dir))).value["errno"] == "EACCES"


async def test_cant_list_root_home(operator_dir: Path) -> None:
    spec = write_hook(operator_dir, 'import os\ndef handler(info):\n    return observe(lambda: os.listdir("/root"))\n')
    assert (await call_once(spec, sandbox(operator_dir))).value["errno"] == "EACCES"


@pytest.mark.parametrize("entry", ["environ", "cmdline"])
async def test_cant_read_proxy_proc_entry(operator_dir: Path, entry: str) -> None:
    spec = write_hook(
        operator_dir,
        f"""
        def handler(info):
            return observe(lambda: open(f"/proc/{{info['proxy_pid']}}/{entry}", "rb").read().decode())
        """,
    )
    value = (await call_once(spec, sandbox(operator_dir), {"proxy_pid": os.getpid()})).value
    assert value["errno"] == "EACCES"


async def test_cant_find_proxy_secrets_in_environment(operator_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LITELLM_MASTER_KEY", "sk-hookjail-master")
    monkeypatch.setenv("DATABASE_URL", "postgresql://proxy:hookjail-db-password@db/proxy")
    spec = write_hook(operator_dir, "import os\ndef handler(info):\n    return dict(os.environ)\n")
    env = (await call_once(spec, sandbox(operator_dir, env={"HOOK_API_TOKEN": "hook-own-token"}))).value
    assert set(env) == {"PATH", "LANG", "LC_ALL", "TMPDIR", "HOOK_API_TOKEN"}
    assert env["HOOK_API_TOKEN"] == "hook-own-token"
    assert not any("hookjail-master" in value or "hookjail-db-password" in value for value in env.values())


async def test_cant_write_beside_hook(operator_dir: Path) -> None:
    spec = write_hook(
        operator_dir,
        """
        import os
        def handler(info):
            target = os.path.join(os.path.dirname(__file__), "planted.py")
            return observe(lambda: open(target, "w").write("x"))
        """,
    )
    assert (await call_once(spec, sandbox(operator_dir))).value["errno"] == "EACCES"
    assert not (operator_dir / "planted.py").exists()


async def test_cant_overwrite_own_hook_file(operator_dir: Path) -> None:
    spec = write_hook(
        operator_dir,
        """
        def handler(info):
            return observe(lambda: open(__file__, "a").write("# persisted"))
        """,
    )
    before = (operator_dir / "custom_sso.py").read_text()
    assert (await call_once(spec, sandbox(operator_dir))).value["errno"] == "EACCES"
    assert (operator_dir / "custom_sso.py").read_text() == before


async def test_cant_write_system_tmp(operator_dir: Path) -> None:
    target = f"/tmp/hookjail-escape-{os.getpid()}"
    spec = write_hook(
        operator_dir, f'def handler(info):\n    return observe(lambda: open("{target}", "w").write("x"))\n'
    )
    assert (await call_once(spec, sandbox(operator_dir))).value["errno"] == "EACCES"
    assert not os.path.exists(target)


async def test_can_write_and_read_own_tmpdir(operator_dir: Path) -> None:
    spec = write_hook(
        operator_dir,
        """
        import tempfile
        def handler(info):
            with tempfile.NamedTemporaryFile("w+") as f:
                f.write(info["id"])
                f.seek(0)
                return f.read()
        """,
    )
    assert (await call_once(spec, sandbox(operator_dir))).value == "u1"


async def test_legit_hook_imports_and_reads_granted_file(operator_dir: Path) -> None:
    spec = write_hook(
        operator_dir,
        """
        import datetime, hashlib, ipaddress, json, os, re, zoneinfo
        import pydantic

        HERE = os.path.dirname(__file__)
        ALLOWED = dict(line.split(",") for line in open(os.path.join(HERE, "allowed.csv")).read().split())

        class Values(pydantic.BaseModel):
            user_id: str
            user_role: str
            expires: datetime.datetime

        def handler(info):
            email = info["email"]
            assert re.fullmatch(r"[^@]+@example\\.com", email)
            values = Values(
                user_id=hashlib.sha256(email.encode()).hexdigest()[:12],
                user_role=ALLOWED.get(email, "internal_user"),
                expires=datetime.datetime(2030, 1, 1, tzinfo=zoneinfo.ZoneInfo("Europe/Paris")),
            )
            return {
                **json.loads(values.model_dump_json()),
                "private": ipaddress.ip_address("10.1.2.3").is_private,
                "config": observe(lambda: open(os.path.join(HERE, "config.yaml")).read()),
            }
        """,
    )
    value = (await call_once(spec, sandbox(operator_dir))).value
    assert value == {
        "user_id": hashlib.sha256(b"a@example.com").hexdigest()[:12],
        "user_role": "admin",
        "expires": "2030-01-01T00:00:00+01:00",
        "private": True,
        "config": {"errno": "EACCES", "type": "PermissionError"},
    }
