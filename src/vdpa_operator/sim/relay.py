"""TCP relays between network namespaces, byte for byte (TLS passes through, so certificates hold): what
kube-proxy does for the simulated cluster. Used by `sim up`'s forwarder process (the API server's address inside
each node namespace), and by the kubelet (that address inside each pod namespace; webhook Services into pods).

A socket keeps the namespace it was made in, so each is made inside its endpoint's namespace
(`host.linux.netns.socket_in_netns`: a short-lived thread enters it) and then used from the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass

from vdpa_operator.host.errors import HostError
from vdpa_operator.host.linux.netns import netns_path, socket_in_netns

UNREACHABLE = (OSError, HostError)
"""What making or connecting an endpoint's socket raises when its namespace or address is not there."""


@dataclass(frozen=True)
class Endpoint:
    netns: str | None
    """A namespace's path (None: this process's own)."""
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Endpoint:
        """`[NETNS=]HOST:PORT`; NETNS a name under /var/run/netns or a path."""
        netns, _, address = text.rpartition("=")
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"{text!r}: expected [NETNS=]HOST:PORT")
        return cls(netns_path(netns) if netns else None, host, int(port))

    def __str__(self) -> str:
        return f"{self.host}:{self.port}" + (f" in {self.netns}" if self.netns else "")

    def socket(self) -> socket.socket:
        """An unbound TCP socket of this endpoint's namespace, for its address family."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        if self.netns is None:
            return socket.socket(family, socket.SOCK_STREAM)
        return socket_in_netns(self.netns, family, socket.SOCK_STREAM, op=f"relay {self}")


def listener(endpoint: Endpoint) -> socket.socket:
    """A listening, non-blocking socket on `endpoint`, for `asyncio.start_server(sock=…)`."""
    sock = endpoint.socket()
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((endpoint.host, endpoint.port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


async def connect(endpoint: Endpoint) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    sock = endpoint.socket()
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, (endpoint.host, endpoint.port))
    except OSError:
        sock.close()
        raise
    return await asyncio.open_connection(sock=sock)


async def relay(target: Endpoint, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Relay one accepted connection to `target`, both ways until each side has closed; a target that cannot be
    reached closes the connection."""
    try:
        upstream_reader, upstream_writer = await connect(target)
    except UNREACHABLE:
        writer.close()
        return
    await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            writer.close()
