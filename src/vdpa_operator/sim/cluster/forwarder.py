"""The API server at the same address inside every node's namespace as on the machine.

Pods with `hostNetwork` run in their node's network namespace, where the machine's 127.0.0.1 is not. This process
listens on `127.0.0.1:<port>` inside each node namespace it is given and relays every connection to the same
address in its own (the machine's) namespace, byte for byte: TLS passes through, so the API server's certificate
(valid for 127.0.0.1) and the kubeconfig's URL hold in both places, and in-cluster clients use
`KUBERNETES_SERVICE_HOST=127.0.0.1`, `KUBERNETES_SERVICE_PORT=<port>`. No link or address is added anywhere.

A socket keeps the namespace it was made in: the listeners are made after `setns(2)` into each node namespace,
then the process returns to its own. Run as `python -m vdpa_operator.sim.cluster.forwarder --port P NETNS…`.
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

CLONE_NEWNET = 0x40000000
HOST = "127.0.0.1"


@contextlib.contextmanager
def inside(netns_path: str) -> Iterator[None]:
    """This thread in the namespace at `netns_path`, and back to its own afterwards."""
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


def listener(netns_path: str, port: int) -> socket.socket:
    with inside(netns_path):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            writer.close()


async def _relay(port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        upstream_reader, upstream_writer = await asyncio.open_connection(HOST, port)
    except OSError:
        writer.close()
        return
    await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))


async def serve(port: int, netns_paths: list[str]) -> None:
    servers = [await asyncio.start_server(lambda r, w: _relay(port, r, w), sock=listener(path, port))
               for path in netns_paths]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"relaying {HOST}:{port} in {', '.join(netns_paths)} to {HOST}:{port} here", flush=True)
    await stop.wait()
    for server in servers:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("netns", nargs="+", help="network namespace names or paths")
    args = parser.parse_args()
    paths = [name if "/" in name else f"/var/run/netns/{name}" for name in args.netns]
    asyncio.run(serve(args.port, paths))


if __name__ == "__main__":
    main()
