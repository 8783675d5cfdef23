"""Network namespaces on Linux: their files, which files are ones, and sockets opened inside one.

A socket keeps the netns it was created in, and `setns(2)` moves only the calling thread; so a socket for
another netns is made by a short-lived thread that enters it, creates the socket and leaves again, and the
caller then uses that socket from its own thread. No process is forked: pyroute2's own `netns=` does fork
a helper per socket, about 10 ms each (and in a service with asyncio signal handlers that helper's SIGTERM was
once taken for the service's own). pyroute2's `pushns`/`popns` are not used either: they keep a process-wide
stack and save `/proc/self/ns/net`, the main thread's netns, not the caller's. Python 3.11 has no `os.setns`.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import functools
import os
import socket
import stat
import threading

from vdpa_operator.host.errors import HostError, error_from_errno, error_from_os_error

NETNS_RUN_DIR = "/var/run/netns"
"""Where `ip netns add` (and pyroute2) keep named network namespaces."""
OWN_NETNS = "/proc/self/ns/net"
"""The calling process's netns: what `move_to_netns(…, None)` opens to give a link back to the host."""
NS_GET_NSTYPE = 0xB703
"""`_IO(0xb7, 0x3)` (include/uapi/linux/nsfs.h, Linux >= 4.11): the CLONE_NEW* type of an nsfs file."""
CLONE_NEWNET = 0x40000000


def netns_path(netns: str) -> str:
    """A netns name (`ip netns` style) or a path (`/proc/<pid>/ns/net`, CNI_NETNS) → the file to open."""
    return netns if "/" in netns else os.path.join(NETNS_RUN_DIR, netns)


def is_net_namespace(path: str) -> bool:
    """Whether `path` is an nsfs file of a network namespace (`/proc/<pid>/ns/net`, a bind mount under
    /var/run/netns). nsfs inodes are regular files, so the type is asked of the file itself (NS_GET_NSTYPE):
    anything else answers ENOTTY. Missing → False; a file this process may not open → PermissionDenied."""
    op = "check network namespace"
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG, errno.ELOOP):
            return False
        raise error_from_os_error(exc, op, path) from exc
    try:
        return int(fcntl.ioctl(fd, NS_GET_NSTYPE)) == CLONE_NEWNET
    except OSError as exc:
        if exc.errno in (errno.ENOTTY, errno.EINVAL):
            return False
        raise error_from_os_error(exc, op, path) from exc
    finally:
        os.close(fd)


@functools.cache
def _libc() -> ctypes.CDLL:
    """Loaded on first use: only a netns other than the caller's needs setns."""
    return ctypes.CDLL(None, use_errno=True)


def setns(fd: int) -> None:
    """libc `setns(fd, CLONE_NEWNET)` for the calling thread; OSError with the errno."""
    if _libc().setns(fd, CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def socket_in_netns(netns: str, family: int, kind: int, proto: int = 0, *, op: str) -> socket.socket:
    """A socket created inside `netns` (a name or a path), on a throwaway thread that enters it and goes back
    before it ends. HostError naming `op` and the netns when it cannot be entered."""
    result: list[socket.socket] = []
    failure: list[BaseException] = []
    path = netns_path(netns)

    def enter_and_create() -> None:
        try:
            own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            try:
                target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    setns(target)
                finally:
                    os.close(target)
                try:
                    result.append(socket.socket(family, kind, proto))
                finally:
                    setns(own)
            finally:
                os.close(own)
        except BaseException as exc:  # handed to the caller's thread below
            failure.append(exc)

    worker = threading.Thread(target=enter_and_create, name=f"netns-{netns}", daemon=True)
    worker.start()
    worker.join()
    if failure:
        exc = failure[0]
        for sock in result:
            sock.close()
        if isinstance(exc, HostError):
            raise exc
        if isinstance(exc, OSError):
            raise error_from_os_error(exc, f"enter netns for {op}", netns) from exc
        raise error_from_errno(None, "enter netns", netns, detail=repr(exc)) from exc
    return result[0]
