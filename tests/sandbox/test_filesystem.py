"""Landlock: a confined worker reads only what was granted and writes only its own temp dir."""

from __future__ import annotations

import os
import stat

from ._jail import Jail


def test_cant_read_etc_shadow(jail: Jail) -> None:
    report = jail.run('def attempt(ctx):\n    return open("/etc/shadow").read()')
    assert report["errno"] == "EACCES"


def test_cant_list_root_home(jail: Jail) -> None:
    report = jail.run('import os\ndef attempt(ctx):\n    return os.listdir("/root")')
    assert report["errno"] == "EACCES"


def test_cant_read_proxy_environ(jail: Jail) -> None:
    report = jail.run("def attempt(ctx):\n    return open(f\"/proc/{ctx['proxy_pid']}/environ\").read()")
    assert report["errno"] == "EACCES"


def test_cant_read_proxy_cmdline(jail: Jail) -> None:
    report = jail.run("def attempt(ctx):\n    return open(f\"/proc/{ctx['proxy_pid']}/cmdline\").read()")
    assert report["errno"] == "EACCES"


def test_cant_read_own_environ_through_proc(jail: Jail) -> None:
    report = jail.run('def attempt(ctx):\n    return open("/proc/self/environ").read()')
    assert report["errno"] == "EACCES"


def test_can_read_granted_file(jail: Jail) -> None:
    report = jail.run('def attempt(ctx):\n    return open(ctx["hook_dir"] + "/allowed.csv").read()')
    assert report["value"] == "a@example.com\n"


def test_cant_read_config_beside_granted_file(jail: Jail) -> None:
    report = jail.run('def attempt(ctx):\n    return open(ctx["hook_dir"] + "/config.yaml").read()')
    assert report["errno"] == "EACCES"


def test_cant_list_directory_of_granted_file(jail: Jail) -> None:
    report = jail.run('import os\ndef attempt(ctx):\n    return os.listdir(ctx["hook_dir"])')
    assert report["errno"] == "EACCES"


def test_cant_write_granted_file(jail: Jail) -> None:
    report = jail.run('def attempt(ctx):\n    open(ctx["hook_dir"] + "/allowed.csv", "a").write("evil@example.com")')
    assert report["errno"] == "EACCES"
    assert (jail.hook_dir / "allowed.csv").read_text() == "a@example.com\n"


def test_cant_write_into_python_installation(jail: Jail) -> None:
    report = jail.run('import os\ndef attempt(ctx):\n    open(os.__file__ + ".evil", "w")')
    assert report["errno"] == "EACCES"


def test_can_write_own_tmp_dir(jail: Jail) -> None:
    report = jail.run(
        """
        import os
        def attempt(ctx):
            os.mkdir(ctx["tmp_dir"] + "/sub")
            with open(ctx["tmp_dir"] + "/sub/note", "w") as f:
                f.write("mine")
            os.rename(ctx["tmp_dir"] + "/sub/note", ctx["tmp_dir"] + "/note")
            return open(ctx["tmp_dir"] + "/note").read()
        """
    )
    assert report["value"] == "mine"


def test_cant_write_system_tmp(jail: Jail) -> None:
    target = f"/tmp/hookjail-escape-{os.getpid()}"
    report = jail.run(f'def attempt(ctx):\n    open("{target}", "w")')
    assert report["errno"] == "EACCES"
    assert not os.path.exists(target)


def test_cant_write_dev_shm(jail: Jail) -> None:
    report = jail.run(f'def attempt(ctx):\n    open("/dev/shm/hookjail-escape-{os.getpid()}", "w")')
    assert report["errno"] == "EACCES"


def test_cant_read_other_childs_tmp_file(jail: Jail) -> None:
    report = jail.run('def attempt(ctx):\n    return open(ctx["other_tmp"] + "/secret").read()')
    assert report["errno"] == "EACCES"


def test_cant_list_other_childs_tmp_dir(jail: Jail) -> None:
    report = jail.run('import os\ndef attempt(ctx):\n    return os.listdir(ctx["other_tmp"])')
    assert report["errno"] == "EACCES"


def test_cant_write_other_childs_tmp_dir(jail: Jail) -> None:
    report = jail.run('def attempt(ctx):\n    open(ctx["other_tmp"] + "/planted", "w")')
    assert report["errno"] == "EACCES"
    assert report["tmp_listing"]["other"] == ["secret"]


def test_cant_list_tmp_root(jail: Jail) -> None:
    report = jail.run('import os\ndef attempt(ctx):\n    return os.listdir(os.path.dirname(ctx["tmp_dir"]))')
    assert report["errno"] == "EACCES"


def test_cant_create_symlink_in_own_tmp_dir(jail: Jail) -> None:
    report = jail.run('import os\ndef attempt(ctx):\n    os.symlink("/etc/shadow", ctx["tmp_dir"] + "/link")')
    assert report["errno"] == "EACCES"


def test_cant_chmod_granted_file(jail: Jail) -> None:
    # The worker's uid owns every file the proxy's uid owns: only seccomp stops a chmod Landlock allows.
    before = stat.S_IMODE((jail.hook_dir / "allowed.csv").stat().st_mode)
    report = jail.run('import os\ndef attempt(ctx):\n    os.chmod(ctx["hook_dir"] + "/allowed.csv", 0o666)')
    assert report["errno"] == "EPERM"
    assert stat.S_IMODE((jail.hook_dir / "allowed.csv").stat().st_mode) == before


def test_cant_chmod_file_through_descriptor(jail: Jail) -> None:
    before = stat.S_IMODE((jail.hook_dir / "allowed.csv").stat().st_mode)
    report = jail.run(
        """
        import os
        def attempt(ctx):
            fd = os.open(ctx["hook_dir"] + "/allowed.csv", os.O_RDONLY)
            os.fchmod(fd, 0o666)
        """
    )
    assert report["errno"] == "EPERM"
    assert stat.S_IMODE((jail.hook_dir / "allowed.csv").stat().st_mode) == before


def test_cant_change_file_times(jail: Jail) -> None:
    report = jail.run('import os\ndef attempt(ctx):\n    os.utime(ctx["hook_dir"] + "/allowed.csv", (0, 0))')
    assert report["errno"] == "EPERM"


def test_zygote_cant_read_etc_shadow(jail: Jail) -> None:
    report = jail.run('def attempt(ctx):\n    return open("/etc/shadow").read()', where="zygote")
    assert report["errno"] == "EACCES"


def test_zygote_cant_write_outside_tmp_root(jail: Jail) -> None:
    report = jail.run('def attempt(ctx):\n    open(ctx["hook_dir"] + "/planted", "w")', where="zygote")
    assert report["errno"] == "EACCES"
    assert not (jail.hook_dir / "planted").exists()


def test_can_import_common_modules_and_use_them(jail: Jail) -> None:
    report = jail.run(
        """
        def attempt(ctx):
            import asyncio, datetime, hashlib, ipaddress, json, re, ssl, zoneinfo
            import pydantic

            class Values(pydantic.BaseModel):
                user_id: str

            when = datetime.datetime(2026, 1, 1, tzinfo=zoneinfo.ZoneInfo("Europe/Paris"))
            return [
                Values(user_id="u1").user_id,
                when.utcoffset().total_seconds(),
                hashlib.sha256(b"x").hexdigest()[:8],
                str(ipaddress.ip_network("10.0.0.0/8")),
                json.dumps(re.findall(r"\\d", "a1b2")),
                ssl.create_default_context().verify_mode == ssl.CERT_REQUIRED,
                asyncio.run(asyncio.sleep(0, "loop")),
            ]
        """
    )
    assert report["value"] == ["u1", 3600.0, "2d711642", "10.0.0.0/8", '["1", "2"]', True, "loop"]


def test_tmp_root_is_a_size_capped_tmpfs(jail: Jail) -> None:
    report = jail.run(
        """
        import os
        def attempt(ctx):
            info = os.statvfs(ctx["tmp_dir"])
            return [info.f_blocks * info.f_frsize, info.f_files]
        """
    )
    assert report["value"] == [64 << 20, 4096]


def test_cant_fill_disk_with_many_files(jail: Jail) -> None:
    report = jail.run(
        """
        import os
        def attempt(ctx):
            written = 0
            try:
                for n in range(1000):
                    with open(os.path.join(ctx["tmp_dir"], f"chunk-{n}"), "wb") as f:
                        for _ in range(4):
                            f.write(b"x" * (1 << 20))
                            f.flush()
                            written += 1
            except OSError as exc:
                return [written, exc.errno]
        """
    )
    written, errno_value = report["value"]
    assert errno_value == 28  # ENOSPC
    assert 60 <= written <= 64


def test_own_tmp_dir_is_invisible_to_host(jail: Jail) -> None:
    report = jail.run('def attempt(ctx):\n    open(ctx["tmp_dir"] + "/note", "w").write("private")')
    assert report["tmp_listing"]["own"] == ["note"]
    assert not jail.tmp_dir.exists()
    assert list(jail.tmp_root.iterdir()) == []
