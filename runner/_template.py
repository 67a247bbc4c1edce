"""The parent's handle on one worker template process: start, spawn children, learn how they exit."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping

import msgspec

from ._capture import Capture
from ._errors import HookImportError, SandboxUnavailable
from ._framing import FrameEncoder, decode_record
from ._protocol import Configure, Exited, FromTemplate, ImportFailed, Ready, Shutdown, Spawn, Spawned

# The template is started as a fresh, isolated interpreter: no PYTHON* variables, no user site, no
# current directory on sys.path. Only the directory holding the runner package is added.
_BOOT = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from runner._zygote import main; main(int(sys.argv[2]), int(sys.argv[3]))"
)
_RUNNER_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_IMPORT_OUTPUT_LIMIT = 16 * 1024
_CONTROL_BATCH = 64
#: Reports about processes or spawns the parent never asked for that a template may send before it is
#: considered tampered with (a few can happen honestly: a child exiting after its call was forgotten).
_UNSOLICITED_LIMIT = 1000

logger = logging.getLogger("hookjail.runner")


def _pipe() -> tuple[int, int]:
    """A pipe whose read end (ours) never blocks and whose write end (the worker's) does."""
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    os.set_blocking(read_end, False)
    return read_end, write_end


class TemplateDied(Exception):
    """Raised to calls waiting for a child when their template exits; they retry on a new one."""


class NotOurChild(Exception):
    """The template named a process that is not its child (a hook tampering with its template)."""


def child_pidfd(pid: int, template_pid: int) -> int | None:
    """A pidfd for ``pid`` once it is shown to be a child of the template; None if it already went.

    The template's word is not trusted: no hook code runs there, but were it ever subverted it could name any
    process (the proxy itself) for the parent to SIGKILL at the call's end. The pidfd is opened first and checked
    alive after reading the parent pid, so the /proc entry read was that same process.

    Raises:
        NotOurChild: ``pid`` is alive and is not the template's child.
    """
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:  # already exited and reaped: its Exited message is on the way
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            parent = int(stat.read().rsplit(b")", 1)[1].split()[1])
        signal.pidfd_send_signal(pidfd, 0)
    except OSError:
        os.close(pidfd)
        return None
    if parent != template_pid:
        os.close(pidfd)
        raise NotOurChild(f"process {pid} is not a child of the worker template {template_pid}")
    return pidfd


class Child:
    """One forked child, confined and waiting for (or running) exactly one call."""

    __slots__ = ("channel", "err", "exited", "out", "pid", "pidfd", "token")

    def __init__(self, token: int, pid: int, channel: socket.socket, out: int, err: int, pidfd: int | None) -> None:
        self.token = token
        self.pid = pid
        self.channel = channel
        self.out = out
        self.err = err
        self.pidfd = pidfd
        self.exited: asyncio.Future[Exited | None] = asyncio.get_running_loop().create_future()

    def kill(self) -> None:
        """SIGKILLs the child through its pidfd (no pid-reuse race); harmless if it already exited."""
        if self.pidfd is not None and not self.exited.done():
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)

    def lower_priority(self, nice: int) -> None:
        """Sets every thread of the running child to ``nice`` at once; harmless if it already exited.

        The child is the only process of its process group (it made the group, can neither fork nor change
        group: seccomp), so ``PRIO_PGRP`` names exactly its threads, the ones it starts meanwhile included (the
        kernel changes them all under one lock; a new thread inherits its creator's niceness, but one being
        created during the walk may keep the old one: the caller repeats this). Checked alive through its pidfd
        first: a group outlives its leader only as a zombie, which holds the id. Between that check and
        setpriority the child would have to exit, be reaped and its pid go to a new group leader: a sub-microsecond
        window, in which the only new group leaders are the template's own next children.
        """
        if self.pidfd is None or self.exited.done():
            return
        with contextlib.suppress(OSError):
            signal.pidfd_send_signal(self.pidfd, 0)
            os.setpriority(os.PRIO_PGRP, self.pid, nice)

    def close(self) -> None:
        self.channel.close()
        for fd in (self.out, self.err, self.pidfd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.pidfd = None


class Template:
    """A running template process and the children it forked for us."""

    def __init__(
        self,
        config: Configure,
        env: Mapping[str, str],
        *,
        prefork: int,
        next_token: Callable[[], int],
        on_death: Callable[[Template], None],
        user: int | None = None,
    ) -> None:
        self.config = config
        self._user = user
        self._env = dict(env)
        self._prefork = prefork
        self._next_token = next_token
        self._on_death = on_death
        self._loop = asyncio.get_running_loop()
        self._decoder: msgspec.msgpack.Decoder[FromTemplate] = msgspec.msgpack.Decoder(FromTemplate)
        self._encoder = FrameEncoder()
        self.ready: Ready | None = None
        self.is_async = False  # learnt by the runner's import probe, not from the template
        self._ready_future: asyncio.Future[Ready | ImportFailed | None] = self._loop.create_future()
        self.alive = False
        self.idle: collections.deque[Child] = collections.deque()
        self._unsettled: set[Child] = set()
        self._settled = asyncio.Event()
        self._settled.set()
        self._waiters: collections.deque[asyncio.Future[Child]] = collections.deque()
        self._spawning: dict[int, tuple[socket.socket, int, int]] = {}
        self._children: dict[int, Child] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._output: Capture | None = None
        self._proc_pidfd: int | None = None
        self.exited = self._loop.create_future()
        self._unsolicited_count = 0

    # --- start and stop -------------------------------------------------------------------------------------

    async def start(self, timeout: float) -> Ready:
        """Starts the process and waits for it to confine itself and compile the hook.

        Raises:
            HookImportError: the hook does not compile, or the template died.
            SandboxUnavailable: a required confinement layer is missing on this host.
        """
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        out_r, out_w = _pipe()
        try:
            self._proc = subprocess.Popen(
                [
                    sys.executable,
                    "-I",
                    "-B",
                    "-c",
                    _BOOT,
                    _RUNNER_PARENT,
                    str(child_end.fileno()),
                    str(os.getpid()),
                ],
                env=self._env,
                pass_fds=(child_end.fileno(),),
                stdin=subprocess.DEVNULL,
                user=self._user,
                group=self._user,
                extra_groups=[] if self._user is not None else None,
                stdout=out_w,
                stderr=out_w,
                cwd="/",
                close_fds=True,
            )
        finally:
            child_end.close()
            os.close(out_w)
        self._output = Capture(out_r, _IMPORT_OUTPUT_LIMIT)
        self._loop.add_reader(out_r, self._drain_output)
        self._control = parent_end
        parent_end.setblocking(False)
        self._loop.add_reader(parent_end.fileno(), self._on_control)
        self._proc_pidfd = os.pidfd_open(self._proc.pid)
        self._loop.add_reader(self._proc_pidfd, self._on_process_exit)
        self._send(self.config)
        try:
            answer = await asyncio.wait_for(self._ready_future, timeout)
        except TimeoutError:
            await self.stop()
            raise HookImportError(f"importing the hook took longer than {timeout:g} s") from None
        except asyncio.CancelledError:  # e.g. the runner closed while this template was starting
            await asyncio.shield(self.stop())
            raise
        if isinstance(answer, Ready):
            self.ready = answer
            self.alive = True
            self.top_up()
            return answer
        await self._wait_exit(1.0)
        output = self.import_output
        if isinstance(answer, ImportFailed):
            if answer.sandbox:
                raise SandboxUnavailable(answer.message[:1000])
            error = HookImportError(answer.message[:1000], traceback=answer.traceback[-4000:])
        else:
            tail = output.strip().splitlines()[-1:] if output.strip() else []
            error = HookImportError(
                f"the hook's worker exited while importing it ({self._exit_description()})"
                + (f": {tail[0][:300]}" if tail else "")
            )
        error.stdout = output
        raise error

    @property
    def import_output(self) -> str:
        """What the template printed while importing the hook (bounded)."""
        if self._output is None:
            return ""
        self._output.read_available()
        return self._output.text()

    async def stop(self, *, graceful: bool = False) -> None:
        """Ends the template. ``graceful`` lets calls already running finish (the template drains);
        otherwise every child is killed."""
        for child in list(self.idle):
            child.kill()
            child.close()
        self.idle.clear()
        if not graceful:
            for child in list(self._children.values()):
                child.kill()
        if self._control is not None and self.alive:
            with contextlib.suppress(OSError):
                self._send(Shutdown())
        if not graceful:
            self.alive = False  # a stop is not a death: no restart
            self._on_control_closed()
            await self._wait_exit(2.0)
        self.alive = False

    async def _wait_exit(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(self.exited), timeout)
        except TimeoutError:
            if self._proc is not None:
                self._proc.kill()
            await asyncio.shield(self.exited)

    def _close_control(self) -> None:
        if self._control is not None:
            with contextlib.suppress(ValueError, OSError):
                self._loop.remove_reader(self._control.fileno())
            self._control.close()
            self._control = None

    # --- children --------------------------------------------------------------------------------------------

    def retire(self, child: Child) -> None:
        """Notes that ``child``'s call has ended (it was killed if it still ran); :meth:`settled` waits for it
        to be reaped and its temp dir removed, and the reserve is topped up then (forking the replacement
        first would hold up the reap)."""
        if child.exited.done():
            self.top_up()
            return
        self._unsettled.add(child)
        self._settled.clear()

        def reaped(_: asyncio.Future[Exited | None]) -> None:
            self._unsettled.discard(child)
            if not self._unsettled:
                self._settled.set()
            self.top_up()

        child.exited.add_done_callback(reaped)

    async def settled(self) -> None:
        """Returns once every child whose call has ended is reaped and its temp dir removed (or the template
        died)."""
        if self._unsettled:
            await self._settled.wait()

    async def take_child(self) -> Child:
        """A confined child ready for one call: a pre-forked one if any, else one forked now.

        Raises:
            TemplateDied: the template exited before a child could be had.
        """
        if not self.alive:
            raise TemplateDied
        if self.idle:
            # The reserve is topped up when the call is over (see HookRunner), not now: forking the
            # replacement would compete for the CPU with the child about to run this call.
            return self.idle.popleft()
        waiter: asyncio.Future[Child] = self._loop.create_future()
        self._waiters.append(waiter)
        self.top_up()
        try:
            return await waiter
        except asyncio.CancelledError:
            # Cancelled (e.g. at the call's deadline) just after a child was handed over: keep it.
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.idle.appendleft(waiter.result())
            raise

    def top_up(self) -> None:
        """Asks for enough children to serve every waiter and keep ``prefork`` more in reserve."""
        if not self.alive:
            return
        waiting = sum(1 for waiter in self._waiters if not waiter.done())
        missing = self._prefork + waiting - len(self.idle) - len(self._spawning)
        for _ in range(missing):
            try:
                self._request_child()
            except OSError:  # the template is gone and we have not read its end of file yet
                self._on_control_closed()
                return

    def _request_child(self) -> None:
        token = self._next_token()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        out_r, out_w = _pipe()
        err_r, err_w = _pipe()
        try:
            assert self._control is not None
            frame = self._encoder.encode(Spawn(token=token))
            socket.send_fds(self._control, [frame], [theirs.fileno(), out_w, err_w])
        except OSError:
            ours.close()
            for fd in (out_r, err_r):
                os.close(fd)
            raise
        finally:
            theirs.close()
            os.close(out_w)
            os.close(err_w)
        ours.setblocking(False)
        self._spawning[token] = (ours, out_r, err_r)

    # --- messages from the template ------------------------------------------------------------------------

    def _send(self, message: Configure | Shutdown) -> None:
        assert self._control is not None
        self._control.send(self._encoder.encode(message))

    def _drain_output(self) -> None:
        assert self._output is not None
        if not self._output.read_available():
            self._loop.remove_reader(self._output.fd)

    def _on_control(self) -> None:
        # At most a batch per wake-up: a subverted template could flood this socket; the loop must stay free
        # for everything else (it calls again while data is waiting).
        for _ in range(_CONTROL_BATCH):
            if self._control is None:
                return
            try:
                data = self._control.recv(1 << 20)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._on_control_closed()
                return
            try:
                message = decode_record(self._decoder, data)
            except msgspec.DecodeError:
                # Children close this fd before running hook code, and no hook code runs in the template:
                # garbage here means the template was subverted.
                self._violation("it sent a malformed control frame")
                return
            self._dispatch(message)

    def _dispatch(self, message: FromTemplate) -> None:
        if isinstance(message, Spawned):
            fds = self._spawning.pop(message.token, None)
            if fds is None:
                self._unsolicited()
                return
            assert self._proc is not None
            try:
                pidfd = child_pidfd(message.pid, self._proc.pid)
            except NotOurChild as exc:
                ours, out_r, err_r = fds
                ours.close()
                os.close(out_r)
                os.close(err_r)
                self._violation(str(exc))
                return
            child = Child(message.token, message.pid, *fds, pidfd)
            self._children[child.pid] = child
            while self._waiters:
                waiter = self._waiters.popleft()
                if not waiter.done():
                    waiter.set_result(child)
                    return
            if not message.tmp_ok:
                # Forked while the temp space was full: good enough for a call waiting now, not for the
                # reserve, which would hand it out long after. It is replaced when a call next ends.
                child.kill()
                child.close()
                return
            self.idle.append(child)
        elif isinstance(message, Exited):
            exited_child = self._children.pop(message.pid, None)
            if exited_child is None:
                self._unsolicited()
                return
            if not exited_child.exited.done():
                exited_child.exited.set_result(message)
            if exited_child in self.idle:  # a reserve child died before serving: replace it
                self.idle.remove(exited_child)
                exited_child.close()
                self.top_up()
        elif not self._ready_future.done():
            self._ready_future.set_result(message)

    def _unsolicited(self) -> None:
        self._unsolicited_count += 1
        if self._unsolicited_count > _UNSOLICITED_LIMIT:
            self._violation("it keeps reporting processes it was not asked for")

    def _violation(self, what: str) -> None:
        """The template broke the protocol in a way only tampering explains: it is killed, not trusted."""
        logger.error("killing the hook's worker template: %s", what)
        if self._proc is not None:
            self._proc.kill()
        self._on_control_closed()

    def _on_control_closed(self) -> None:
        was_alive = self.alive
        self.alive = False
        self._close_control()
        if not self._ready_future.done():
            self._ready_future.set_result(None)
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(TemplateDied())
        self._waiters.clear()
        for ours, out_r, err_r in self._spawning.values():
            ours.close()
            os.close(out_r)
            os.close(err_r)
        self._spawning.clear()
        for child in self.idle:
            child.close()
        self.idle.clear()
        for child in self._children.values():
            if not child.exited.done():
                child.exited.set_result(None)
        self._children.clear()
        if was_alive:
            self._on_death(self)

    def _on_process_exit(self) -> None:
        assert self._proc is not None and self._proc_pidfd is not None
        if self._proc.poll() is None:
            return
        self._loop.remove_reader(self._proc_pidfd)
        os.close(self._proc_pidfd)
        self._proc_pidfd = None
        if self._output is not None:
            self._output.read_available()
            with contextlib.suppress(ValueError, OSError):
                self._loop.remove_reader(self._output.fd)
            self._output.close()
        if self._control is not None:
            self._on_control()  # read what is left, then notice the close
            if self._control is not None:
                self._on_control_closed()
        if not self.exited.done():
            self.exited.set_result(self._proc.returncode)

    def _exit_description(self) -> str:
        code = self._proc.returncode if self._proc is not None else None
        if code is None:
            return "still running"
        if code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exit code {code}"
