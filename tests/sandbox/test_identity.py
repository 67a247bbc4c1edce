"""Identity, signals, ptrace, namespaces and the rest of the zygote's seccomp deny list."""

from __future__ import annotations

import platform
import signal

import pyseccomp
import pytest

from runner._confine import LANDLOCK_MIN_ABI, probe
from runner._landlock import abi_version

from ._jail import Jail

_EXPECTED_LAYERS = {
    "no_new_privs": True,
    "user_namespace": "uid 1000 in ns",
    "network_namespace": True,
    "pid_namespace": True,
    "ipc_namespace": True,
    "private_tmp": "tmpfs 64 MiB",
    "landlock": f"abi {abi_version()}",
    "seccomp": True,
}
_PTRACE_ATTACH = 16
_CLONE_NEWUSER = 0x10000000


def _syscall_attempt(name: str, args: str) -> str:
    """Source of an attempt making system call ``name`` with ``args`` (Python expressions using ``ctx``)."""
    number = pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name)
    return f"""
import ctypes, os
def attempt(ctx):
    libc = ctypes.CDLL(None, use_errno=True)
    result = libc.syscall({number}, *[ctypes.c_long(a) for a in ({args},)])
    if result < 0:
        raise OSError(ctypes.get_errno(), "{name}")
    return result
"""


def test_host_offers_landlock_with_scoping() -> None:
    assert abi_version() >= LANDLOCK_MIN_ABI


def test_prepare_reports_every_layer_on(jail: Jail) -> None:
    assert jail.run("def attempt(ctx):\n    return None", where="zygote")["layers"] == _EXPECTED_LAYERS


def test_probe_reports_every_layer_without_confining() -> None:
    assert probe() == _EXPECTED_LAYERS
    with open("/etc/shadow", "rb"):  # the caller is still whole
        pass


def test_runs_as_unprivileged_uid_without_capabilities(jail: Jail) -> None:
    report = jail.run(
        """
        import ctypes, os
        def attempt(ctx):
            header = (ctypes.c_uint32 * 2)(0x20080522, 0)
            data = (ctypes.c_uint32 * 6)()
            assert ctypes.CDLL(None).capget(header, data) == 0
            return [os.getuid(), os.geteuid(), os.getgid(), list(data)]
        """
    )
    assert report["value"] == [1000, 1000, 1000, [0] * 6]


# Signal 0 goes through the same permission checks as a real signal without harming the target if the
# layer were broken (a broken layer would fail the test with no error instead of killing the test run).


def test_cant_see_parent_pid(jail: Jail) -> None:
    # A child lives in a PID namespace of its own: the zygote (its parent) is outside it, so has no pid there.
    report = jail.run("import os\ndef attempt(ctx):\n    return os.getppid()")
    assert report["value"] == 0


def test_cant_signal_zygote(jail: Jail) -> None:
    report = jail.run("import os\ndef attempt(ctx):\n    os.kill(ctx['zygote_pid'], 0)")
    assert report["errno"] == "ESRCH"  # no such pid inside the namespace


def test_cant_signal_proxy(jail: Jail) -> None:
    report = jail.run("import os\ndef attempt(ctx):\n    os.kill(ctx['proxy_pid'], 0)")
    assert report["errno"] == "ESRCH"


def test_zygote_cant_signal_proxy(jail: Jail) -> None:
    report = jail.run("import os\ndef attempt(ctx):\n    os.kill(ctx['proxy_pid'], 0)", where="zygote")
    assert report["errno"] == "EPERM"  # Landlock's signal scoping: the proxy is outside the domain


def test_cant_signal_pid_namespace_reaper(jail: Jail) -> None:
    report = jail.run(f"import os\ndef attempt(ctx):\n    os.kill(1, {int(signal.SIGKILL)})")
    assert report["errno"] == "EPERM"


def test_cant_signal_another_logins_child(jail: Jail) -> None:
    report = jail.run(
        f"import os\ndef attempt(ctx):\n    os.kill(ctx['sibling_pid'], {int(signal.SIGKILL)})", sibling=True
    )
    assert report["errno"] == "EPERM"
    assert report["sibling_alive"] is True


def test_can_signal_itself(jail: Jail) -> None:
    report = jail.run(
        """
        import os, signal
        def attempt(ctx):
            seen = []
            signal.signal(signal.SIGUSR1, lambda *_: seen.append("usr1"))
            os.kill(os.getpid(), signal.SIGUSR1)
            return seen
        """
    )
    assert report["value"] == ["usr1"]


def test_cant_ptrace_zygote(jail: Jail) -> None:
    report = jail.run(_syscall_attempt("ptrace", f"{_PTRACE_ATTACH}, ctx['zygote_pid'], 0, 0"))
    assert report["errno"] == "EPERM"


def test_cant_ptrace_another_logins_child(jail: Jail) -> None:
    report = jail.run(_syscall_attempt("ptrace", f"{_PTRACE_ATTACH}, ctx['sibling_pid'], 0, 0"), sibling=True)
    assert report["errno"] == "EPERM"
    assert report["sibling_alive"] is True


def test_cant_unshare_user_namespace(jail: Jail) -> None:
    report = jail.run(_syscall_attempt("unshare", str(_CLONE_NEWUSER)))
    assert report["errno"] == "EPERM"


def test_cant_setns_into_host_network_with_leaked_descriptor(jail: Jail) -> None:
    report = jail.run(_syscall_attempt("setns", "ctx['leaked']['netns'], 0"), leak={"netns": "/proc/self/ns/net"})
    assert report["errno"] == "EPERM"


def test_cant_open_host_namespace_files(jail: Jail) -> None:
    report = jail.run("import os\ndef attempt(ctx):\n    os.open('/proc/1/ns/net', os.O_RDONLY)")
    assert report["errno"] == "EACCES"


# System calls the zygote filter denies, with arguments whose unconfined outcome is harmless and not EPERM
# (checked by the test), so that EPERM can only come from the filter.
_DENIED_CALLS = {
    "unshare": "0",
    "setns": "-1, 0",
    "ptrace": "2, os.getpid(), 0, 0",
    "process_vm_readv": "os.getpid(), 0, 0, 0, 0, 0",
    "pidfd_getfd": "-1, 0, 0",
    "kcmp": "os.getpid(), os.getpid(), 0, 0, 0",
    "mount": "0, 0, 0, 0, 0",
    "fsopen": "0, 0",
    "open_tree": "-1, 0, 0",
    "pivot_root": "0, 0",
    "chroot": "0",
    "bpf": "5, 0, 0",
    "perf_event_open": "0, 0, -1, -1, 0",
    "keyctl": "0, -3, 0",
    "add_key": "0, 0, 0, 0, 0",
    "io_uring_setup": "1, 0",
    "name_to_handle_at": "-1, 0, 0, 0, 0",
    "open_by_handle_at": "-1, 0, 0",
    "execve": "0, 0, 0",
}


@pytest.mark.parametrize("name", sorted(_DENIED_CALLS))
def test_cant_make_denied_system_call(jail: Jail, name: str) -> None:
    attempt = _syscall_attempt(name, _DENIED_CALLS[name])
    assert jail.run(attempt, where="unconfined").get("errno") != "EPERM"
    assert jail.run(attempt)["errno"] == "EPERM"


def test_runs_on_a_supported_architecture() -> None:
    # The Landlock numbers and the x32 test assume one of these; fail loudly on another rather than skip.
    assert platform.machine() in ("x86_64", "aarch64")


def test_cant_push_input_into_a_terminal(jail: Jail) -> None:
    attempt = _syscall_attempt("ioctl", "os.open('/dev/null', os.O_RDONLY), 0x5412, 0")  # TIOCSTI
    assert jail.run(attempt, where="unconfined")["errno"] == "ENOTTY"
    assert jail.run(attempt)["errno"] == "EPERM"
