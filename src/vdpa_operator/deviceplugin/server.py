"""One resource's endpoint for kubelet: a grpc.aio server on a unix socket serving `v1beta1.DevicePlugin`, and
in plugin-watcher mode `pluginregistration.Registration` on the same socket; in legacy mode it registers itself
with kubelet's `Registration` service.

The server only answers from the last scan (`update` hands it a new pool): Allocate never touches the machine,
it checks every requested ID first (an unknown or unhealthy one is INVALID_ARGUMENT naming it, and nothing is
written), then writes the device-info files and answers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc

from vdpa_operator.deviceplugin import allocation
from vdpa_operator.deviceplugin.devices import Inventory
from vdpa_operator.deviceplugin.files import DEVICE_INFO_MODE, OutputFiles
from vdpa_operator.deviceplugin.pools import Pool
from vdpa_operator.deviceplugin.settings import API_VERSION, SUPPORTED_VERSIONS, Settings
from vdpa_operator.errors import VdpaOperatorError
from vdpa_operator.kubeletapi.deviceplugin import api_pb2 as dp
from vdpa_operator.kubeletapi.deviceplugin import api_pb2_grpc as dp_grpc
from vdpa_operator.kubeletapi.pluginregistration import api_pb2 as reg
from vdpa_operator.kubeletapi.pluginregistration import api_pb2_grpc as reg_grpc

logger = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]
PLUGIN_TYPE = "DevicePlugin"
OPTIONS = dp.DevicePluginOptions(pre_start_required=False, get_preferred_allocation_available=True)


class RegistrationError(VdpaOperatorError):
    """kubelet did not take the registration (not running, refused, timed out)."""


class ResourceServer:
    def __init__(self, pool: Pool, inventory: Inventory, settings: Settings, files: OutputFiles, *,
                 plugin_watcher: bool) -> None:
        self.pool = pool
        self.inventory = inventory
        self.settings = settings
        self.files = files
        self.plugin_watcher = plugin_watcher
        self.socket = settings.socket_of(pool.config.prefix, pool.config.name, plugin_watcher=plugin_watcher)
        self.endpoint = self.socket.name
        """The socket's name, what a legacy registration tells kubelet."""
        self.registered = False
        self._server: grpc.aio.Server | None = None
        self._changed = asyncio.Condition()
        self._version = 0
        self._closing = False
        self._cdi_text = ""

    @property
    def resource_name(self) -> str:
        return self.pool.config.resource_name

    # --- lifecycle ---------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Serve on the socket (a stale file from a dead plugin is replaced); CDI spec written first."""
        self._closing = False
        self._write_cdi_spec()
        self.socket.parent.mkdir(parents=True, exist_ok=True)
        self.socket.unlink(missing_ok=True)
        server = grpc.aio.server()
        dp_grpc.add_DevicePluginServicer_to_server(_DevicePlugin(self), server)  # type: ignore[no-untyped-call]
        if self.plugin_watcher:
            reg_grpc.add_RegistrationServicer_to_server(_WatcherRegistration(self), server)  # type: ignore[no-untyped-call]
        try:
            server.add_insecure_port(f"unix://{self.socket}")
            await server.start()
        except BaseException:
            await server.stop(None)  # a grpc.aio server left to the garbage collector can hang the process
            raise
        self._server = server
        logger.info("%s: serving %d devices on %s", self.resource_name, len(self.pool.members), self.socket)

    async def stop(self) -> None:
        """Stop serving: open ListAndWatch streams end, the socket goes (kubelet drops the resource)."""
        async with self._changed:
            self._closing = True
            self._changed.notify_all()
        if self._server is not None:
            await self._server.stop(grace=0.5)
            self._server = None
        self.socket.unlink(missing_ok=True)
        self.registered = False

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def register(self) -> None:
        """Legacy mode: `Registration.Register` on kubelet's socket (after `start`, so kubelet can dial back)."""
        request = dp.RegisterRequest(version=API_VERSION, endpoint=self.endpoint, resource_name=self.resource_name,
                                     options=OPTIONS)
        try:
            async with grpc.aio.insecure_channel(f"unix://{self.settings.kubelet_socket}") as channel:
                stub = dp_grpc.RegistrationStub(channel)  # type: ignore[no-untyped-call]
                await stub.Register(request, timeout=self.settings.timing.register_timeout)
        except grpc.aio.AioRpcError as exc:
            raise RegistrationError(f"register {self.resource_name} with kubelet at {self.settings.kubelet_socket} "
                                    f"failed: {exc.code().name}: {exc.details()}") from None
        self.registered = True
        logger.info("%s: registered with kubelet (endpoint %s)", self.resource_name, self.endpoint)

    def socket_present(self) -> bool:
        return self.socket.exists()

    # --- state -------------------------------------------------------------------------------------------------

    async def update(self, pool: Pool, inventory: Inventory) -> None:
        """A new scan: ListAndWatch streams get the list again when what they show changed."""
        changed = pool.listed() != self.pool.listed()
        self.pool, self.inventory = pool, inventory
        self._write_cdi_spec()
        if changed:
            async with self._changed:
                self._version += 1
                self._changed.notify_all()

    async def devices(self) -> AsyncIterator[dp.ListAndWatchResponse]:
        """The list now, then again after every change, until the server stops."""
        sent = -1

        def due() -> bool:
            return self._closing or self._version != sent

        while True:
            async with self._changed:
                await self._changed.wait_for(due)
                if self._closing:
                    return
                sent = self._version
                response = list_response(self.pool)
            yield response

    def _write_cdi_spec(self) -> None:
        """With CDI, the pool's spec file, rewritten when its text changes (a char device can change with no
        change of health, e.g. a vhost device rebound between two scans)."""
        if not self.settings.use_cdi:
            return
        text = allocation.cdi_spec(self.pool, self.inventory)
        if text != self._cdi_text:
            self.files.write(self.settings.cdi_dir / allocation.cdi_spec_file(self.pool), text)
            self._cdi_text = text

    def allocate(self, request: dp.AllocateRequest) -> dp.AllocateResponse:
        """ValueError naming the first unknown or unhealthy ID; nothing is written then."""
        for container in request.container_requests:
            for device_id in container.devices_ids:
                member = self.pool.members.get(device_id)
                if member is None:
                    raise ValueError(f"{self.resource_name}: unknown device {device_id!r}: not in this pool "
                                     f"({', '.join(self.pool.members) or 'no devices'})")
                if not member.healthy:
                    raise ValueError(f"{self.resource_name}: device {device_id} is Unhealthy: {member.problem}")
        answers = [allocation.allocate(self.pool, list(c.devices_ids), self.inventory, cdi=self.settings.use_cdi)
                   for c in request.container_requests]
        for answer in answers:
            for name, text in answer.device_info.items():
                self.files.write(self.settings.devinfo_dir / name, text, DEVICE_INFO_MODE)
        return dp.AllocateResponse(container_responses=[_container_response(a) for a in answers])

    def preferred(self, request: dp.PreferredAllocationRequest) -> dp.PreferredAllocationResponse:
        return dp.PreferredAllocationResponse(container_responses=[
            dp.ContainerPreferredAllocationResponse(deviceIDs=allocation.preferred(
                self.pool, list(c.available_deviceIDs), list(c.must_include_deviceIDs), c.allocation_size))
            for c in request.container_requests
        ])

    def remove_files(self) -> None:
        """Its device-info files and CDI spec, for a resource that leaves the config."""
        for device_id in self.pool.members:
            self.files.remove(self.settings.devinfo_dir / allocation.device_info_file(self.pool, device_id))
        if self.settings.use_cdi:
            self.files.remove(self.settings.cdi_dir / allocation.cdi_spec_file(self.pool))


def list_response(pool: Pool) -> dp.ListAndWatchResponse:
    devices = []
    for device_id, health, numa in pool.listed():
        topology = dp.TopologyInfo(nodes=[dp.NUMANode(ID=numa)]) if numa is not None else None
        devices.append(dp.Device(ID=device_id, health=health, topology=topology))
    return dp.ListAndWatchResponse(devices=devices)


def _container_response(answer: allocation.ContainerAllocation) -> dp.ContainerAllocateResponse:
    return dp.ContainerAllocateResponse(
        envs=dict(answer.envs),
        devices=[dp.DeviceSpec(container_path=s.container_path, host_path=s.host_path, permissions=s.permissions)
                 for s in answer.devices],
        annotations=dict(answer.annotations),
    )


class _DevicePlugin(dp_grpc.DevicePluginServicer):
    def __init__(self, server: ResourceServer) -> None:
        self.server = server

    async def GetDevicePluginOptions(self, request: dp.Empty, context: Context) -> dp.DevicePluginOptions:
        return OPTIONS

    async def ListAndWatch(self, request: dp.Empty, context: Context) -> AsyncIterator[dp.ListAndWatchResponse]:
        logger.info("%s: ListAndWatch opened", self.server.resource_name)
        async for response in self.server.devices():
            yield response

    async def GetPreferredAllocation(
        self, request: dp.PreferredAllocationRequest, context: Context
    ) -> dp.PreferredAllocationResponse:
        return self.server.preferred(request)

    async def Allocate(self, request: dp.AllocateRequest, context: Context) -> dp.AllocateResponse:
        try:
            response = self.server.allocate(request)
        except ValueError as exc:
            logger.warning("Allocate refused: %s", exc)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except OSError as exc:
            logger.error("Allocate failed writing a device-info file: %s", exc)
            await context.abort(grpc.StatusCode.INTERNAL, f"writing a device-info file failed: {exc}")
        logger.info("%s: allocated %s", self.server.resource_name,
                    "; ".join(",".join(c.devices_ids) for c in request.container_requests))
        return response

    async def PreStartContainer(
        self, request: dp.PreStartContainerRequest, context: Context
    ) -> dp.PreStartContainerResponse:
        return dp.PreStartContainerResponse()


class _WatcherRegistration(reg_grpc.RegistrationServicer):
    """What kubelet's plugin watcher asks a socket that appears in its directory."""

    def __init__(self, server: ResourceServer) -> None:
        self.server = server

    async def GetInfo(self, request: reg.InfoRequest, context: Context) -> reg.PluginInfo:
        return reg.PluginInfo(type=PLUGIN_TYPE, name=self.server.resource_name, endpoint=str(self.server.socket),
                              supported_versions=list(SUPPORTED_VERSIONS))

    async def NotifyRegistrationStatus(
        self, request: reg.RegistrationStatus, context: Context
    ) -> reg.RegistrationStatusResponse:
        if request.plugin_registered:
            self.server.registered = True
            logger.info("%s: registered with kubelet (plugin watcher)", self.server.resource_name)
        else:
            self.server.registered = False
            logger.warning("%s: kubelet refused the registration: %s", self.server.resource_name, request.error)
            # served again on a fresh socket at the next check (upstream stops for good)
            self.server.socket.unlink(missing_ok=True)
        return reg.RegistrationStatusResponse()
