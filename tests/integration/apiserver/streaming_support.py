"""A kubelet's streaming server (sim/kubelet/streaming.py) on its own loop thread, over a real network namespace
the test makes, with a Node and a Pod in the embedded API server that point at it."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2 as httpx

from vdpa_operator import remotecommand as rc
from vdpa_operator.sim.apiserver import ServerHandle
from vdpa_operator.sim.kubelet import streaming
from vdpa_operator.sim.kubelet.streaming import ContainerView

MERGE = {"Content-Type": "application/merge-patch+json"}
NODE = "worker-x"
LINK = "exectest0"
"""A veth made in the test's namespace only (its peer is the namespace's eth0): a command that lists it ran there."""


@dataclass
class Containers:
    """The kubelet's side of the Protocol, as a dict the test edits."""

    views: dict[tuple[str, str, str], ContainerView] = field(default_factory=dict)

    def locate(self, namespace: str, pod: str, container: str) -> ContainerView | None:
        return self.views.get((namespace, pod, container))


class KubeletInThread:
    """`streaming.start` on a loop of its own, as the kubelet runs it beside its other work."""

    def __init__(self, pods: Containers, token: str, protocols: Sequence[str] = rc.PROTOCOLS) -> None:
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        box: dict[str, Any] = {}

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            box["server"] = self.loop.run_until_complete(streaming.start(pods, token, protocols=protocols))
            ready.set()
            self.loop.run_forever()
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

        self.thread = threading.Thread(target=run, name="streaming", daemon=True)
        self.thread.start()
        assert ready.wait(10)
        self.server: streaming.StreamingServer = box["server"]

    @property
    def port(self) -> int:
        return self.server.port

    def stop(self) -> None:
        """Stop serving (open sessions are closed, 1001) and join the thread; again is a no-op."""
        if not self.thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@contextmanager
def network_namespace() -> Iterator[Path]:
    """A new named network namespace holding the veth `LINK` and its peer `eth0`; removed afterwards."""
    name = f"vdpa-exec-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "add", LINK, "type", "veth", "peer", "name", "eth0"], check=True)
        yield Path("/run/netns") / name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@contextmanager
def running_kubelet(api: ServerHandle, pods: Containers, protocols: Sequence[str] = rc.PROTOCOLS, *,
                    node: str = NODE) -> Iterator[KubeletInThread]:
    """A streaming server and the Node `node` that points at it."""
    kubelet = KubeletInThread(pods, api.kubelet_token, protocols)
    try:
        add_node(api, kubelet.port, node)
        yield kubelet
    finally:
        kubelet.stop()


def admin(api: ServerHandle) -> httpx.Client:
    return httpx.Client(base_url=api.url, headers=api.headers, verify=api.verify, timeout=10)


def add_node(api: ServerHandle, port: int, name: str = NODE) -> None:
    with admin(api) as http:
        http.post("/api/v1/nodes", json={"metadata": {"name": name}}).raise_for_status()
        http.patch(f"/api/v1/nodes/{name}/status", headers=MERGE, json={"status": {
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}}).raise_for_status()


def add_pod(api: ServerHandle, name: str, *, containers: Sequence[str] = ("main",), node: str | None = NODE,
            phase: str = "Running", namespace: str = "default") -> None:
    spec: dict[str, Any] = {"containers": [{"name": c, "image": "sim"} for c in containers]}
    if node is not None:
        spec["nodeName"] = node
    with admin(api) as http:
        http.post(f"/api/v1/namespaces/{namespace}/pods", json={"metadata": {"name": name}, "spec": spec}
                  ).raise_for_status()
        http.patch(f"/api/v1/namespaces/{namespace}/pods/{name}/status", headers=MERGE,
                   json={"status": {"phase": phase}}).raise_for_status()


def sleeping(marker: str) -> bool:
    """Whether a `sleep <marker>` process exists (the marker: an argument no other process has)."""
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0") if entry.name.isdigit() else []
        except OSError:
            continue
        if argv[:1] and argv[0].endswith(b"sleep") and argv[1:2] == [marker.encode()]:
            return True
    return False
