"""The `kubernetes` Service inside each network namespace the kubelet runs pods in, as kube-proxy provides it.

Containers are told `KUBERNETES_SERVICE_HOST`/`_PORT` = the API server's address from the kubeconfig, which on a
simulated cluster is a loopback address of the machine's own network namespace: unreachable from a pod's
namespace or the node's. So for each such namespace the kubelet listens on that address there and forwards each
connection to the API server (TLS passes through untouched: the server's certificate names the same address).
The relaying is `sim/relay.py`, shared with `sim up`'s forwarder."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging

from vdpa_operator.sim.relay import UNREACHABLE, Endpoint, listener, relay

logger = logging.getLogger(__name__)

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
            sock = listener(Endpoint(netns, self.host, self.port))
        except UNREACHABLE as exc:
            logger.warning("cannot serve the API server's address %s:%d in %s: %s", self.host, self.port, netns, exc)
            return
        upstream = Endpoint(None, self.host, self.port)
        self.servers[netns] = await asyncio.start_server(lambda r, w: relay(upstream, r, w), sock=sock)

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
