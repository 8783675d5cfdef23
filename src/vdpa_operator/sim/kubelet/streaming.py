"""The kubelet's streaming endpoints, `/exec` and `/containerLogs`, for the simulated cluster's kubelet to embed.

The API server proxies `pods/exec` and `pods/log` here (sim/apiserver/proxy.py), as kube-apiserver proxies them
to port 10250 of a real kubelet; the paths and query names are the real kubelet's:

- `GET /exec/{namespace}/{pod}/{container}?command=…&command=…&input=1&output=1&error=1&tty=1` (also
  `stdin`/`stdout`/`stderr`), a WebSocket speaking `v5.channel.k8s.io` or `v4.channel.k8s.io`
  (vdpa_operator.remotecommand). The command runs as the container would see it: in the pod's network namespace
  and the container's mount namespace (`nsenter --mount=… --net=…`), with the container's environment, working
  directory and user, on a pseudo-terminal when `tty` (its own session with the terminal as controlling terminal,
  via `setsid --ctty`, so ^C reaches the foreground process as SIGINT), stdin forwarded, resizes applied. How it
  ended goes on the error stream: Success,
  Failure NonZeroExitCode with the code, or Failure naming why it could not run (no such container, not running,
  command not found, network namespace gone) — after the upgrade, so the API server relays it as it relays
  everything else.
- `GET /containerLogs/{namespace}/{pod}/{container}?follow=&tailLines=&limitBytes=`: the container's log file,
  followed until the container stops or the client leaves. `timestamps`, `previous`, `sinceSeconds` and
  `sinceTime` are refused (400): the log file is the container's raw output, with no times and no earlier run.

The kubelet says where a container is through `PodProcesses.locate`. Only the API server may ask: every request
carries `Authorization: Bearer <token>`, the kubelet-client token the API server was started with
(sim/apiserver/proxy.py `kubelet_client_token`), handed to the kubelet when it starts; anything else is 401.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hmac
import logging
import os
import shutil
import signal
import struct
import termios
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from aiohttp import WSMsgType, web

from vdpa_operator import remotecommand as rc
from vdpa_operator.errors import VdpaOperatorError

log = logging.getLogger(__name__)

OUTPUT_GRACE = 2.0
"""Seconds to wait, once the command has exited, for its output to reach EOF (a background child still holding
stdout open is then cut off, so the session ends)."""
FIRST_SIZE_WAIT = 1.0
"""Seconds a terminal session waits for the client's size before the command starts (kubectl sends it first;
without the wait the command may start on a 0×0 terminal)."""
LOG_POLL = 0.2
"""How often a followed log is read again for new bytes."""
LOG_CHUNK = 64 * 1024
MAX_MESSAGE = 4 * 1024 * 1024

Send = Callable[[int, bytes], Awaitable[None]]
Reader = Callable[[Send], Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class ContainerView:
    """A container as a command run in it should see it."""

    netns_path: Path | None
    """The pod's network namespace (a file such as /run/netns/<name>); None: the kubelet's own (hostNetwork on
    a kubelet that already runs in the node's namespace)."""
    log_file: Path | None
    """The container's stdout and stderr, raw bytes as written (no CRI log prefixes); None: nothing yet."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Its environment; `PATH` in it is where a command's name is looked up."""
    cwd: Path | None = None
    uid: int | None = None
    gid: int | None = None
    running: bool = True
    """False once the container has exited: exec is refused, a followed log ends."""
    pid: int | None = None
    """The container's process: a command run in it enters its mount namespace too (the container's volumes,
    e.g. a hostPath /var/run/openvswitch that is the node's, not the machine's)."""


class PodProcesses(Protocol):
    """What the kubelet tells the streaming server: where a pod's container is (None when it has no such one)."""

    def locate(self, namespace: str, pod: str, container: str) -> ContainerView | None: ...


POD_PROCESSES = web.AppKey("pod_processes", PodProcesses)
TOKEN = web.AppKey("kubelet_client_token", bytes)
PROTOCOL_LIST: web.AppKey[tuple[str, ...]] = web.AppKey("protocols")
SESSIONS: web.AppKey[set[web.WebSocketResponse]] = web.AppKey("sessions")


# --- requests -----------------------------------------------------------------------------------------------------


def _authorized(request: web.Request) -> bool:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), request.app[TOKEN])


def _flag(query: Mapping[str, str], *names: str) -> bool:
    """strconv.ParseBool's true values, under any of the names."""
    return any(query.get(name, "").lower() in ("1", "t", "true") for name in names)


def _where(request: web.Request) -> tuple[str, str, str]:
    info = request.match_info
    return info["namespace"], info["pod"], info["container"]


@web.middleware
async def _only_the_api_server(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                               ) -> web.StreamResponse:
    if not _authorized(request):
        return web.Response(status=401, text="Unauthorized\n")
    return await handler(request)


# --- exec ---------------------------------------------------------------------------------------------------------


class _CannotRun(Exception):
    def __init__(self, status: dict[str, object]) -> None:
        super().__init__(status.get("message"))
        self.status = status


@dataclass(frozen=True)
class ExecOptions:
    command: tuple[str, ...]
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool


def exec_options(query: Mapping[str, str], commands: Sequence[str]) -> ExecOptions:
    """The kubelet's reading of an exec request (its `input/output/error/tty` names, or the API's). A tty merges
    stderr into stdout, as the kubelet does."""
    tty = _flag(query, "tty")
    return ExecOptions(tuple(commands), _flag(query, "input", "stdin"), _flag(query, "output", "stdout"),
                       _flag(query, "error", "stderr") and not tty, tty)


async def _exec(request: web.Request) -> web.StreamResponse:
    options = exec_options(request.query, request.query.getall("command", []))
    if not options.command:
        return web.Response(status=400, text="you must specify at least 1 command\n")
    if not (options.stdin or options.stdout or options.stderr):
        return web.Response(status=400, text="you must specify at least 1 of stdin, stdout, stderr\n")
    protocols = request.app[PROTOCOL_LIST]
    if rc.choose(rc.offered_protocols(request.headers.get("Sec-WebSocket-Protocol")), protocols) is None:
        return web.Response(status=400, text=f"exec is served over WebSocket with one of the subprotocols "
                                             f"{', '.join(protocols)}\n")
    ws = web.WebSocketResponse(protocols=protocols, max_msg_size=MAX_MESSAGE)
    await ws.prepare(request)
    sessions: set[web.WebSocketResponse] = request.app[SESSIONS]
    sessions.add(ws)
    try:
        await _session(ws, request.app[POD_PROCESSES], _where(request), options)
    finally:
        sessions.discard(ws)
        await ws.close()
    return ws


async def _session(ws: web.WebSocketResponse, pods: PodProcesses, where: tuple[str, str, str],
                   options: ExecOptions) -> None:
    lock = asyncio.Lock()

    async def send(stream: int, data: bytes) -> None:
        async with lock:
            await ws.send_bytes(rc.frame(stream, data))

    size, early, left = await _first_size(ws) if options.tty else (None, [], False)
    if left:
        return
    try:
        process = await _start(pods, where, options, size)
    except _CannotRun as err:
        await ws.send_bytes(rc.status_message(err.status))
        return
    outputs = [asyncio.create_task(reader(send)) for reader in process.readers()]
    client = asyncio.create_task(_from_client(ws, process, early, v5=ws.ws_protocol == rc.V5))
    exited = asyncio.create_task(process.wait())
    try:
        await asyncio.wait({client, exited}, return_when=asyncio.FIRST_COMPLETED)
        if not exited.done():  # the client left first: the command goes too
            process.kill()
            return
        if outputs:
            await asyncio.wait(outputs, timeout=OUTPUT_GRACE)
        async with lock:
            with contextlib.suppress(ConnectionError):  # the client left as the command ended
                await ws.send_bytes(rc.status_message(rc.exited(exited.result())))
    finally:
        process.kill()
        for task in (*outputs, client):
            task.cancel()
        await asyncio.gather(*outputs, client, exited, return_exceptions=True)
        process.close()


async def _first_size(ws: web.WebSocketResponse) -> tuple[rc.TerminalSize | None, list[bytes], bool]:
    """The terminal size the client sends first (None if none came within `FIRST_SIZE_WAIT`), the messages read
    before it, and whether the client has already left."""
    sizes, early = rc.ResizeReader(), list[bytes]()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + FIRST_SIZE_WAIT
    while (wait := deadline - loop.time()) > 0:
        try:
            message = await ws.receive(timeout=wait)
        except TimeoutError:
            break
        if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
            return None, early, True
        if message.type != WSMsgType.BINARY or not message.data:
            continue
        if message.data[0] == rc.RESIZE and (found := sizes.feed(message.data[1:])):
            return found[-1], early, False
        early.append(message.data)
    return None, early, False


async def _from_client(ws: web.WebSocketResponse, process: _Process, early: list[bytes], *, v5: bool) -> None:
    """stdin, resizes and (v5) stdin's close (those read before the command started first), until the client
    closes the connection."""
    sizes = rc.ResizeReader()
    for data in early:
        await _apply(data, process, sizes, v5=v5)
    async for message in ws:
        if message.type == WSMsgType.BINARY and message.data:
            await _apply(message.data, process, sizes, v5=v5)


async def _apply(message: bytes, process: _Process, sizes: rc.ResizeReader, *, v5: bool) -> None:
    stream, data = rc.parse(message)
    if stream == rc.STDIN:
        await process.write(data)
    elif stream == rc.RESIZE:
        for size in sizes.feed(data):
            process.resize(size)
    elif stream == rc.CLOSE and v5 and data[:1] == bytes((rc.STDIN,)):
        process.close_stdin()


def _resolve(command: Sequence[str], env: Mapping[str, str], cwd: Path | None) -> str:
    """The executable `command[0]` names, looked up in the container's PATH as the runtime does."""
    name = command[0]
    if "/" in name:
        path = Path(name) if name.startswith("/") or cwd is None else cwd / name
        if os.access(path, os.X_OK) and path.is_file():
            return str(path)
    else:
        found = shutil.which(name, path=env.get("PATH", os.defpath))
        if found is not None:
            return found
    raise _CannotRun(rc.failure(f'exec failed: unable to start container process: exec: "{name}": executable file '
                                f'not found in $PATH', code=500))


async def _start(pods: PodProcesses, where: tuple[str, str, str], options: ExecOptions,
                 size: rc.TerminalSize | None) -> _Process:
    namespace, pod, container = where
    view = pods.locate(namespace, pod, container)
    if view is None:
        raise _CannotRun(rc.failure(f'container "{container}" not found in pod {namespace}/{pod}', reason="NotFound",
                                    code=404))
    if not view.running:
        raise _CannotRun(rc.failure(f'container "{container}" in pod {namespace}/{pod} is not running',
                                    reason="BadRequest", code=400))
    argv = [_resolve(options.command, view.env, view.cwd), *options.command[1:]]
    if view.netns_path is not None:
        if not view.netns_path.exists():
            raise _CannotRun(rc.failure(f"the network namespace {view.netns_path} of pod {namespace}/{pod} is gone"))
        mount = [f"--mount=/proc/{view.pid}/ns/mnt"] if view.pid is not None else []
        argv = [_tool("nsenter"), *mount, f"--net={view.netns_path}", "--", *argv]
    if options.tty:
        argv = [_tool("setsid"), "--ctty", "--wait", "--", *argv]
    return await _Process.spawn(argv, view, options, size)


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise _CannotRun(rc.failure(f"the kubelet needs {name} (util-linux) to run commands in pods"))
    return found


class _Process:
    """A started command: its stdio as pipes, or one pseudo-terminal when a tty was asked for."""

    def __init__(self, proc: asyncio.subprocess.Process, options: ExecOptions, master: int | None) -> None:
        self.proc = proc
        self.options = options
        self.master = master

    @classmethod
    async def spawn(cls, argv: Sequence[str], view: ContainerView, options: ExecOptions,
                    size: rc.TerminalSize | None = None) -> _Process:
        master = slave = None
        if options.tty:
            master, slave = os.openpty()
            os.set_blocking(master, False)
            if size is not None:
                _set_size(master, size)
            stdin = stdout = stderr = slave
        else:
            pipe, null = asyncio.subprocess.PIPE, asyncio.subprocess.DEVNULL
            stdin, stdout, stderr = (pipe if wanted else null for wanted in (options.stdin, options.stdout,
                                                                             options.stderr))
        try:
            env = {"TERM": "xterm", **view.env} if options.tty else dict(view.env)  # as runc sets for a tty
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=stdin, stdout=stdout, stderr=stderr, env=env, cwd=view.cwd,
                start_new_session=not options.tty, user=view.uid,
                group=view.uid if view.gid is None and view.uid is not None else view.gid,
                extra_groups=None if view.uid is None else [])
        except OSError as err:
            if master is not None:
                os.close(master)
            raise _CannotRun(rc.failure(f"exec failed: {err}")) from None
        finally:
            if slave is not None:
                os.close(slave)
        return cls(proc, options, master)

    def readers(self) -> list[Reader]:
        if self.master is not None:
            return [self._read_terminal] if self.options.stdout else [self._drain_terminal]
        found: list[Reader] = []
        if self.proc.stdout is not None:
            found.append(_pipe_reader(self.proc.stdout, rc.STDOUT))
        if self.proc.stderr is not None:
            found.append(_pipe_reader(self.proc.stderr, rc.STDERR))
        return found

    async def _read_terminal(self, send: Send) -> None:
        assert self.master is not None
        while data := await _read_fd(self.master):
            await send(rc.STDOUT, data)

    async def _drain_terminal(self, _send: Send) -> None:
        assert self.master is not None
        while await _read_fd(self.master):
            pass

    async def write(self, data: bytes) -> None:
        if not self.options.stdin:
            return
        if self.master is not None:
            await _write_fd(self.master, data)
        elif self.proc.stdin is not None and not self.proc.stdin.is_closing():
            with contextlib.suppress(ConnectionError):
                self.proc.stdin.write(data)
                await self.proc.stdin.drain()

    def close_stdin(self) -> None:
        """stdin's EOF: the pipe closes; on a terminal, ^D (EOF to a reader in canonical mode)."""
        if self.master is not None:
            with contextlib.suppress(OSError):
                os.write(self.master, b"\x04")
        elif self.proc.stdin is not None:
            self.proc.stdin.close()

    def resize(self, size: rc.TerminalSize) -> None:
        if self.master is not None:
            _set_size(self.master, size)

    async def wait(self) -> int:
        code = await self.proc.wait()
        return 128 - code if code < 0 else code  # killed by signal N: 128+N, as a shell and the runtimes say

    def kill(self) -> None:
        """The command and whatever it started in its session/process group."""
        if self.proc.returncode is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    def close(self) -> None:
        if self.master is not None:
            os.close(self.master)
            self.master = None


def _set_size(terminal: int, size: rc.TerminalSize) -> None:
    with contextlib.suppress(OSError):
        fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", size.height, size.width, 0, 0))


def _pipe_reader(stream: asyncio.StreamReader, stream_id: int) -> Reader:
    async def read(send: Send) -> None:
        while data := await stream.read(LOG_CHUNK):
            await send(stream_id, data)
    return read


async def _ready(fd: int, *, write: bool = False) -> None:
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    add, remove = (loop.add_writer, loop.remove_writer) if write else (loop.add_reader, loop.remove_reader)

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    add(fd, wake)
    try:
        await ready
    finally:
        remove(fd)


async def _read_fd(fd: int) -> bytes:
    """The next bytes from a terminal's master side; b"" once every process holding the terminal has closed it
    (Linux reports that as EIO)."""
    while True:
        try:
            return os.read(fd, LOG_CHUNK)
        except BlockingIOError:
            await _ready(fd)
        except OSError:
            return b""


async def _write_fd(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            await _ready(fd, write=True)
        except OSError:
            return


# --- containerLogs ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogOptions:
    follow: bool = False
    tail_lines: int | None = None
    limit_bytes: int | None = None


_UNSUPPORTED_LOG_OPTIONS = {
    "timestamps": "the simulated container's log is its raw output, with no times",
    "previous": "the simulated kubelet keeps no log of an earlier run of a container",
    "sinceSeconds": "the simulated container's log is its raw output, with no times",
    "sinceTime": "the simulated container's log is its raw output, with no times",
}


class BadLogRequest(VdpaOperatorError, ValueError):
    pass


def log_options(query: Mapping[str, str]) -> LogOptions:
    """The options of a `containerLogs` request; `BadLogRequest` names a bad or unsupported one."""
    for name, why in _UNSUPPORTED_LOG_OPTIONS.items():
        value = query.get(name, "")
        if value and value.lower() not in ("0", "f", "false"):
            raise BadLogRequest(f"{name} is not supported: {why}")
    return LogOptions(_flag(query, "follow"), _count(query, "tailLines", 0), _count(query, "limitBytes", 1))


def _count(query: Mapping[str, str], name: str, least: int) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise BadLogRequest(f"{name}: {raw!r} is not a whole number") from None
    if value < least:
        raise BadLogRequest(f"{name}: must be at least {least}, not {value}")
    return value


def tail_offset(path: Path, lines: int) -> int:
    """Where the last `lines` lines of the file start (a last line without its newline counts as one)."""
    size = path.stat().st_size
    if lines == 0:
        return size
    with path.open("rb") as f:
        end, seen = size, 0
        if size:
            f.seek(size - 1)
            if f.read(1) == b"\n":
                end -= 1
        position = end
        while position > 0:
            step = min(LOG_CHUNK, position)
            position -= step
            f.seek(position)
            block = f.read(step)
            for index in range(len(block) - 1, -1, -1):
                if block[index:index + 1] == b"\n" and position + index < end:
                    seen += 1
                    if seen == lines:
                        return position + index + 1
        return 0


async def _container_logs(request: web.Request) -> web.StreamResponse:
    namespace, pod, container = where = _where(request)
    pods = request.app[POD_PROCESSES]
    try:
        options = log_options(request.query)
    except BadLogRequest as err:
        return web.Response(status=400, text=f"{err}\n")
    view = pods.locate(namespace, pod, container)
    if view is None:
        return web.Response(status=404, text=f'container "{container}" not found in pod {namespace}/{pod}\n')
    response = web.StreamResponse(headers={"Content-Type": "text/plain"})
    await response.prepare(request)
    left = options.limit_bytes
    offset = None
    while True:
        path = view.log_file
        if path is not None and path.exists():
            if offset is None:
                offset = tail_offset(path, options.tail_lines) if options.tail_lines is not None else 0
            offset, left = await _copy(path, offset, left, response)
        if left == 0 or not options.follow or not view.running:
            break
        await asyncio.sleep(LOG_POLL)
        view = pods.locate(*where) or _gone(view)
    await response.write_eof()
    return response


def _gone(view: ContainerView) -> ContainerView:
    return ContainerView(view.netns_path, view.log_file, view.env, view.cwd, view.uid, view.gid, running=False)


async def _copy(path: Path, offset: int, left: int | None, response: web.StreamResponse) -> tuple[int, int | None]:
    """Write what the file holds past `offset` (at most `left` bytes); the new offset and what is left."""
    with path.open("rb") as f:
        f.seek(offset)
        while left is None or left > 0:
            data = f.read(LOG_CHUNK if left is None else min(LOG_CHUNK, left))
            if not data:
                break
            await response.write(data)
            offset += len(data)
            left = None if left is None else left - len(data)
    return offset, left


# --- the server ---------------------------------------------------------------------------------------------------


async def _close_sessions(app: web.Application) -> None:
    sessions = app[SESSIONS]
    for ws in list(sessions):
        await ws.close(code=1001, message=b"kubelet shutting down")


def make_app(pods: PodProcesses, token: str, *, protocols: Sequence[str] = rc.PROTOCOLS) -> web.Application:
    """The streaming endpoints over `pods`, answering requests that carry `token` only. `protocols`: the exec
    subprotocols accepted (an older kubelet's `(V4,)`, for tests of clients that must fall back). Run it with
    `handler_cancellation=True` (as `start` does), so a followed log stops when the API server hangs up."""
    if not token:
        raise ValueError("the kubelet's streaming server needs the API server's kubelet-client token")
    app = web.Application(middlewares=[_only_the_api_server])
    app[POD_PROCESSES] = pods
    app[TOKEN] = token.encode()
    app[PROTOCOL_LIST] = tuple(protocols)
    app[SESSIONS] = set()
    app.router.add_get("/exec/{namespace}/{pod}/{container}", _exec)
    app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", _container_logs)
    app.on_shutdown.append(_close_sessions)
    return app


@dataclass
class StreamingServer:
    """A started streaming server: where it listens (put `port` into the Node's kubeletEndpoint) and how to stop."""

    runner: web.AppRunner
    host: str
    port: int

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start(pods: PodProcesses, token: str, host: str = "127.0.0.1", port: int = 0, *,
                protocols: Sequence[str] = rc.PROTOCOLS) -> StreamingServer:
    """Serve the streaming endpoints on host:port (0: a free port) in the running loop."""
    runner = web.AppRunner(make_app(pods, token, protocols=protocols), access_log=None, handler_cancellation=True,
                           shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return StreamingServer(runner, host, runner.addresses[0][1])
