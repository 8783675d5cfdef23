"""TCP relays between network namespaces: an address in one namespace that is a service in another, byte for
byte (TLS passes through, so certificates hold).

`sim up` runs one for the API server: pods with `hostNetwork` run in their node's namespace, where the machine's
127.0.0.1 is not, so this listens on `127.0.0.1:<port>` inside each node namespace and connects to the same
address in the machine's. The kubeconfig's URL then holds in both places, and in-cluster clients use
`KUBERNETES_SERVICE_HOST=127.0.0.1`, `KUBERNETES_SERVICE_PORT=<port>`; no link or address is added anywhere.
The other way round (`--listen 127.0.0.1:W --connect POD_NETNS=127.0.0.1:6443`) it makes a pod's port reachable
where the API server calls a webhook Service.

A socket keeps the namespace it was made in: each one is made after `setns(2)` into its namespace, then the
thread returns to its own. Run as
`python -m vdpa_operator.sim.cluster.forwarder --listen [NETNS=]HOST:PORT… --connect [NETNS=]HOST:PORT`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import os
import signal
import socket
from collections.abc import Iterator
from dataclasses import dataclass

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/var/run/netns"


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
        path = None if not netns else netns if "/" in netns else os.path.join(NETNS_DIR, netns)
        return cls(path, host, int(port))

    def __str__(self) -> str:
        return f"{self.host}:{self.port}" + (f" in {self.netns}" if self.netns else "")


@contextlib.contextmanager
def inside(netns_path: str | None) -> Iterator[None]:
    """This thread in the namespace at `netns_path` (None: stay), and back to its own afterwards."""
    if netns_path is None:
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(netns_path, os.O_RDONLY)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {netns_path}")
        try:
            yield
        finally:
            if libc.setns(own, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")
    finally:
        os.close(target)
        os.close(own)


def listener(endpoint: Endpoint) -> socket.socket:
    with inside(endpoint.netns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((endpoint.host, endpoint.port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


async def connect(endpoint: Endpoint) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    with inside(endpoint.netns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, (endpoint.host, endpoint.port))
    except OSError:
        sock.close()
        raise
    return await asyncio.open_connection(sock=sock)


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


async def _relay(target: Endpoint, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        upstream_reader, upstream_writer = await connect(target)
    except OSError:
        writer.close()
        return
    await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))


async def serve(listen: list[Endpoint], target: Endpoint, stop: asyncio.Event) -> None:
    servers = [await asyncio.start_server(lambda r, w: _relay(target, r, w), sock=listener(endpoint))
               for endpoint in listen]
    print(f"relaying {', '.join(map(str, listen))} to {target}", flush=True)
    await stop.wait()
    for server in servers:
        server.close()


async def _main(listen: list[Endpoint], target: Endpoint) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(listen, target, stop)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", action="append", required=True, type=Endpoint.parse,
                        metavar="[NETNS=]HOST:PORT")
    parser.add_argument("--connect", required=True, type=Endpoint.parse, metavar="[NETNS=]HOST:PORT")
    args = parser.parse_args()
    asyncio.run(_main(args.listen, args.connect))


if __name__ == "__main__":
    main()
