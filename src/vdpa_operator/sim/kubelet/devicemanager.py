"""kubelet's side of the device plugin API, for the simulated cluster's kubelet and the device plugin's tests.

What kubelet's device manager does (pkg/kubelet/cm/devicemanager), over real gRPC on unix sockets:
- serves `v1beta1.Registration` on `<dir>/kubelet.sock`; `Register` checks the version (`v1beta1`) and that the
  resource is an extended resource name (`<domain>/<name>`), dials `<dir>/<endpoint>`, asks
  `GetDevicePluginOptions` and keeps a `ListAndWatch` stream open; a plugin registering the same resource
  again replaces the old endpoint;
- with a plugin-watcher directory, notices sockets that appear there, asks `GetInfo`, connects to the
  endpoint it names and answers `NotifyRegistrationStatus`;
- `stop(wipe=True)` is a kubelet restart as plugins see it: its socket and every other socket in the directory
  are removed, and `start` makes a new `kubelet.sock`.

Each resource's devices (ID → health, NUMA nodes) are what the last ListAndWatch message said; a stream that
ends marks the resource's devices Unhealthy, as kubelet does once the endpoint is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from vdpa_operator.kubeletapi.deviceplugin import api_pb2 as dp
from vdpa_operator.kubeletapi.deviceplugin import api_pb2_grpc as dp_grpc
from vdpa_operator.kubeletapi.pluginregistration import api_pb2 as reg
from vdpa_operator.kubeletapi.pluginregistration import api_pb2_grpc as reg_grpc

logger = logging.getLogger(__name__)

KUBELET_SOCKET = "kubelet.sock"
SUPPORTED_VERSIONS = ("v1beta1",)
_EXTENDED_RESOURCE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
"""`v1helper.IsExtendedResourceName`: a domain-prefixed name outside kubernetes.io (checked below)."""


@dataclass
class Endpoint:
    """One registered resource as kubelet keeps it."""

    resource: str
    socket: Path
    channel: grpc.aio.Channel
    stub: Any
    options: dp.DevicePluginOptions
    devices: dict[str, tuple[str, tuple[int, ...]]] = field(default_factory=dict)
    """ID → (health, NUMA nodes), from the last ListAndWatch message."""
    updates: int = 0
    """ListAndWatch messages received."""
    updated_at: float = 0.0
    """time.monotonic() of the last message."""
    connected: bool = True
    task: asyncio.Task[None] | None = None

    def healthy(self) -> list[str]:
        return sorted(i for i, (health, _) in self.devices.items() if health == "Healthy")


class DeviceManager:
    def __init__(self, device_plugin_dir: Path, plugins_registry: Path | None = None, *,
                 watch_interval: float = 0.1, node_path: Callable[[str], Path] = Path) -> None:
        self.dir = device_plugin_dir
        self.node_path = node_path
        """Where a path of the node (a plugin's `GetInfo` endpoint) is on this machine: itself on a real node;
        under the simulated node's root otherwise."""
        self.plugins_registry = plugins_registry
        self.watch_interval = watch_interval
        self.endpoints: dict[str, Endpoint] = {}
        self.registrations: list[dp.RegisterRequest] = []
        """Every Register call taken, in order."""
        self.changed = asyncio.Condition()
        self._server: grpc.aio.Server | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._watched: set[Path] = set()

    @property
    def socket(self) -> Path:
        return self.dir / KUBELET_SOCKET

    async def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.socket.unlink(missing_ok=True)
        server = grpc.aio.server()
        dp_grpc.add_RegistrationServicer_to_server(_Registration(self), server)  # type: ignore[no-untyped-call]
        server.add_insecure_port(f"unix://{self.socket}")
        await server.start()
        self._server = server
        if self.plugins_registry is not None:
            self._watcher = asyncio.create_task(self._watch_registry())

    async def stop(self, *, wipe: bool = True) -> None:
        """Stop serving and drop every endpoint; its own socket goes, and with `wipe` every socket in the
        directory, as a restarting kubelet does."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        for endpoint in list(self.endpoints.values()):
            await self._disconnect(endpoint)
        self.endpoints.clear()
        self._watched.clear()
        if self._server is not None:
            await self._server.stop(grace=0)
            self._server = None
        self.socket.unlink(missing_ok=True)
        if wipe:
            for path in self.dir.glob("*"):
                if path.is_socket():
                    path.unlink(missing_ok=True)

    # --- what the rest of kubelet (and a test) asks -----------------------------------------------------------

    async def wait_for(self, resource: str, predicate: Callable[[Endpoint], bool], timeout: float = 10.0) -> Endpoint:
        """The endpoint of `resource` once `predicate` holds for it; TimeoutError naming what was seen."""
        async def satisfied() -> Endpoint:
            async with self.changed:
                while True:
                    endpoint = self.endpoints.get(resource)
                    if endpoint is not None and predicate(endpoint):
                        return endpoint
                    await self.changed.wait()

        try:
            return await asyncio.wait_for(satisfied(), timeout)
        except TimeoutError:
            seen = self.endpoints.get(resource)
            raise TimeoutError(f"{resource}: condition not met within {timeout}s; last seen: "
                               f"{seen.devices if seen else 'not registered'}") from None

    async def allocate(self, resource: str, device_ids: list[list[str]]) -> dp.AllocateResponse:
        endpoint = self.endpoints[resource]
        request = dp.AllocateRequest(container_requests=[dp.ContainerAllocateRequest(devices_ids=ids)
                                                         for ids in device_ids])
        response: dp.AllocateResponse = await endpoint.stub.Allocate(request, timeout=10)
        return response

    async def preferred(self, resource: str, available: list[str], must_include: list[str],
                        size: int) -> list[str]:
        endpoint = self.endpoints[resource]
        if not endpoint.options.get_preferred_allocation_available:
            return []
        request = dp.PreferredAllocationRequest(container_requests=[dp.ContainerPreferredAllocationRequest(
            available_deviceIDs=available, must_include_deviceIDs=must_include, allocation_size=size)])
        response = await endpoint.stub.GetPreferredAllocation(request, timeout=10)
        return list(response.container_responses[0].deviceIDs)

    # --- registration ------------------------------------------------------------------------------------------

    async def register(self, request: dp.RegisterRequest) -> None:
        """kubelet's `Register`: ValueError (an error status for the plugin) when it refuses."""
        if request.version not in SUPPORTED_VERSIONS:
            raise ValueError(f"requested device plugin version {request.version!r} is not supported; "
                             f"supported versions: {list(SUPPORTED_VERSIONS)}")
        if not _is_extended_resource(request.resource_name):
            raise ValueError(f"the ResourceName {request.resource_name!r} is invalid")
        self.registrations.append(request)
        await self.connect(request.resource_name, self.dir / request.endpoint)

    async def connect(self, resource: str, socket: Path) -> None:
        """Dial the plugin, read its options and start following its ListAndWatch."""
        channel = grpc.aio.insecure_channel(f"unix://{socket}")
        stub = dp_grpc.DevicePluginStub(channel)  # type: ignore[no-untyped-call]
        try:
            options = await stub.GetDevicePluginOptions(dp.Empty(), timeout=5)
        except grpc.aio.AioRpcError as exc:
            await channel.close()
            raise ValueError(f"cannot reach the device plugin at {socket}: {exc.details()}") from None
        old = self.endpoints.get(resource)
        if old is not None:
            await self._disconnect(old)
        endpoint = Endpoint(resource, socket, channel, stub, options)
        async with self.changed:
            self.endpoints[resource] = endpoint
            self.changed.notify_all()
        endpoint.task = asyncio.create_task(self._list_and_watch(endpoint))
        logger.info("device plugin %s registered at %s", resource, socket)

    async def _list_and_watch(self, endpoint: Endpoint) -> None:
        try:
            async for response in endpoint.stub.ListAndWatch(dp.Empty()):
                async with self.changed:
                    endpoint.devices = {d.ID: (d.health, tuple(n.ID for n in d.topology.nodes))
                                        for d in response.devices}
                    endpoint.updates += 1
                    endpoint.updated_at = time.monotonic()
                    self.changed.notify_all()
        except grpc.aio.AioRpcError as exc:
            logger.info("ListAndWatch of %s ended: %s", endpoint.resource, exc.code().name)
        async with self.changed:
            endpoint.connected = False
            endpoint.devices = {i: ("Unhealthy", numa) for i, (_, numa) in endpoint.devices.items()}
            self.changed.notify_all()

    async def _disconnect(self, endpoint: Endpoint) -> None:
        if endpoint.task is not None:
            endpoint.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await endpoint.task
        await endpoint.channel.close()

    async def _watch_registry(self) -> None:
        """Plugin watcher: a new socket in the directory is asked who it is and connected."""
        assert self.plugins_registry is not None
        while True:
            present = set(self.plugins_registry.glob("*.sock")) if self.plugins_registry.is_dir() else set()
            for socket in sorted(present - self._watched):
                self._watched.add(socket)
                await self._register_watched(socket)
            for socket in self._watched - present:
                self._watched.discard(socket)
                for name, endpoint in list(self.endpoints.items()):
                    if endpoint.socket == socket:
                        await self._disconnect(endpoint)
                        async with self.changed:
                            del self.endpoints[name]
                            self.changed.notify_all()
            await asyncio.sleep(self.watch_interval)

    async def _register_watched(self, socket: Path) -> None:
        async with grpc.aio.insecure_channel(f"unix://{socket}") as channel:
            stub = reg_grpc.RegistrationStub(channel)  # type: ignore[no-untyped-call]
            try:
                info = await stub.GetInfo(reg.InfoRequest(), timeout=5)
            except grpc.aio.AioRpcError as exc:
                logger.warning("plugin socket %s does not answer GetInfo: %s", socket, exc.details())
                return
            error = ""
            if info.type != "DevicePlugin":
                error = f"plugin type {info.type!r} is not handled here"
            elif not set(info.supported_versions) & set(SUPPORTED_VERSIONS):
                error = f"none of the versions {list(info.supported_versions)} is supported"
            elif not _is_extended_resource(info.name):
                error = f"the ResourceName {info.name!r} is invalid"
            if not error:
                try:
                    await self.connect(info.name, self.node_path(info.endpoint))
                except ValueError as exc:
                    error = str(exc)
            await stub.NotifyRegistrationStatus(reg.RegistrationStatus(plugin_registered=not error, error=error),
                                                timeout=5)


def _is_extended_resource(name: str) -> bool:
    domain = name.partition("/")[0]
    return bool(_EXTENDED_RESOURCE.fullmatch(name)) and not name.startswith("requests.") and not (
        domain == "kubernetes.io" or domain.endswith(".kubernetes.io"))


class _Registration(dp_grpc.RegistrationServicer):
    def __init__(self, manager: DeviceManager) -> None:
        self.manager = manager

    async def Register(self, request: dp.RegisterRequest, context: grpc.aio.ServicerContext[Any, Any]) -> dp.Empty:
        try:
            await self.manager.register(request)
        except ValueError as exc:
            await context.abort(grpc.StatusCode.UNKNOWN, str(exc))
        return dp.Empty()
