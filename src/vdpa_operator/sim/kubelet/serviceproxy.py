"""The `kubernetes` Service inside each network namespace the kubelet runs pods in, as kube-proxy provides it.

Containers are told `KUBERNETES_SERVICE_HOST`/`_PORT` = the API server's address from the kubeconfig, which on a
simulated cluster is a loopback address of the machine's own network namespace: unreachable from a pod's
namespace or the node's. So for each such namespace the kubelet listens on that address there and forwards each
connection to the API server (TLS passes through untouched: the server's certificate names the same address).
The listening socket is made by a short-lived thread that enters the namespace (setns is per thread), so the
forwarding itself stays on the kubelet's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ipaddress
import logging
import os
import socket
import threading

logger = logging.getLogger(__name__)

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def socket_in(netns: str, host: str) -> socket.socket:
    """An unbound TCP socket (for `host`'s family) of the network namespace at path `netns`: a socket keeps the
    namespace it was made in, whatever thread binds or connects it later."""
    made: list[socket.socket | BaseException] = []

    def work() -> None:
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            target = os.open(netns, os.O_RDONLY)
            try:
                _setns(target)
            finally:
                os.close(target)
            try:
                made.append(socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM))
            finally:
                _setns(own)
        except BaseException as exc:  # handed to the caller's thread
            made.append(exc)
        finally:
            os.close(own)

    thread = threading.Thread(target=work, name="netns-socket")
    thread.start()
    thread.join()
    result = made[0]
    if isinstance(result, BaseException):
        raise result
    return result


def listen_in(netns: str, host: str, port: int) -> socket.socket:
    """A listening TCP socket bound to host:port inside the network namespace at path `netns`."""
    sock = socket_in(netns, host)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(64)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


async def pipe_both(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream_reader: asyncio.StreamReader,
                    upstream_writer: asyncio.StreamWriter) -> None:
    """Relay bytes both ways until each side has closed."""
    await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


class ServiceProxy:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.servers: dict[str, asyncio.Server] = {}

    @staticmethod
    def needed(host: str) -> bool:
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return host == "localhost"

    async def open(self, netns: str) -> None:
        """Serve the API server's address inside `netns` (a path); a failure is logged: pods then cannot reach
        the API, which their own errors will say."""
        if netns in self.servers or not self.needed(self.host):
            return
        try:
            sock = listen_in(netns, self.host, self.port)
        except OSError as exc:
            logger.warning("cannot serve the API server's address %s:%d in %s: %s", self.host, self.port, netns, exc)
            return
        self.servers[netns] = await asyncio.start_server(self._forward, sock=sock)

    async def close(self, netns: str) -> None:
        server = self.servers.pop(netns, None)
        if server is not None:
            server.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await server.wait_closed()

    async def close_all(self) -> None:
        for netns in list(self.servers):
            await self.close(netns)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(self.host, self.port)
        except OSError:
            writer.close()
            return
        await pipe_both(reader, writer, upstream_reader, upstream_writer)
