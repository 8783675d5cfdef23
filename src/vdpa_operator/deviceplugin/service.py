"""`vdpactl device-plugin`: a thin loop that keeps one `ResourceServer` per configured resource in step with
the config file, the node, and kubelet.

Every `probe_interval` it reads the node's vDPA devices and checks the config file; when either changed, and
every `scan_interval` regardless, it scans the node (Host calls on one worker thread), rebuilds the pools and
hands them to the servers (ListAndWatch sends only what changed). Every `kubelet_check_interval`
it checks the sockets: when kubelet restarted (its `kubelet.sock` is a new file, or our socket was wiped)
the servers restart and register again; a registration kubelet did not take is retried with backoff.
A config change that cannot be read keeps the last good config serving and is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from vdpa_operator.deviceplugin.allocation import CDI_SPEC_PREFIX
from vdpa_operator.deviceplugin.config import Config, ConfigError, parse_config
from vdpa_operator.deviceplugin.devices import Inventory, VdpaInfo
from vdpa_operator.deviceplugin.discovery import scan, vdpa_devices
from vdpa_operator.deviceplugin.files import OutputFiles, remove_stale
from vdpa_operator.deviceplugin.pools import Pool, build_pools
from vdpa_operator.deviceplugin.server import RegistrationError, ResourceServer
from vdpa_operator.deviceplugin.settings import Settings
from vdpa_operator.fileio import UNIX_PATH_MAX
from vdpa_operator.host.errors import HostError
from vdpa_operator.host.port import Host

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class ConfigFile:
    """The config file's identity, following symlinks (a ConfigMap volume swaps a `..data` link)."""

    stamp: tuple[int, int, int, int] | None
    text: str

    @classmethod
    def read(cls, path: Path) -> ConfigFile:
        """OSError when unreadable."""
        info = os.stat(path)
        return cls((info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size), path.read_text())

    @staticmethod
    def stamp_of(path: Path) -> tuple[int, int, int, int] | None:
        try:
            info = os.stat(path)
        except OSError:
            return None
        return info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size


def load_config(settings: Settings, *, plugin_watcher: bool | None = None) -> tuple[Config, ConfigFile]:
    """Read and check the config file; ConfigError (naming the file) when it cannot be served. `plugin_watcher`:
    where the sockets go (default: as `settings` decides now)."""
    try:
        file = ConfigFile.read(settings.config_file)
    except OSError as exc:
        raise ConfigError(f"{settings.config_file}: cannot read the resource config: {exc.strerror}; "
                          "pass --config-file (in a cluster: the device-plugin-config ConfigMap key of this "
                          "node)") from None
    config = parse_config(file.text, source=str(settings.config_file), default_prefix=settings.resource_prefix)
    watcher = settings.plugin_watcher() if plugin_watcher is None else plugin_watcher
    for resource in config.resources:
        socket = settings.socket_of(resource.prefix, resource.name, plugin_watcher=watcher)
        if len(os.fsencode(socket)) > UNIX_PATH_MAX:
            flag = "--plugins-registry" if watcher else "--device-plugin-path"
            raise ConfigError(f"{settings.config_file}: resource {resource.prefix}/{resource.name}: its socket "
                              f"{socket} is {len(os.fsencode(socket))} bytes, over the {UNIX_PATH_MAX} a unix "
                              f"socket path may have; use a shorter {flag} or resourceName")
    return config, file


class DevicePluginService:
    def __init__(self, host: Host, settings: Settings, config: Config, config_file: ConfigFile) -> None:
        self.host = host
        self.settings = settings
        self.config = config
        self.config_file = config_file
        self.plugin_watcher = settings.plugin_watcher()
        self.files = OutputFiles()
        self.servers: dict[str, ResourceServer] = {}
        self.pools: dict[str, Pool] = {}
        self.inventory = Inventory()
        self._vdpa_seen: dict[str, VdpaInfo] = {}
        self._kubelet_stamp: tuple[int, int, int, int] | None = None
        self._retry_at: dict[str, float] = {}
        self._retry_delay: dict[str, float] = {}
        self._scan_error = ""
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="host")
        for warning in config.warnings:
            logger.warning("%s", warning)

    async def _host(self, fn: Callable[[Host], T]) -> T:
        """Host calls on the one worker thread (a sync netlink socket must not run inside the loop)."""
        return await asyncio.get_running_loop().run_in_executor(self._worker, fn, self.host)

    # --- the loop ----------------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        timing = self.settings.timing
        mode = "plugin watcher at " + str(self.settings.plugins_registry) if self.plugin_watcher else \
            "kubelet registration at " + str(self.settings.kubelet_socket)
        logger.info("device plugin for node %s: %d resources, %s", self.settings.node_name,
                    len(self.config.resources), mode)
        if self.settings.use_cdi:
            for path in remove_stale(self.settings.cdi_dir, CDI_SPEC_PREFIX):
                logger.info("removed a CDI spec an earlier run left: %s", path)
        try:
            await self._rescan()
            await self._apply()
            await self._check_kubelet()
            loop = asyncio.get_running_loop()
            next_kubelet_check = loop.time() + timing.kubelet_check_interval
            next_scan = loop.time() + timing.scan_interval
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timing.probe_interval)
                if stop.is_set():
                    break
                await self._reload_if_changed()
                vdpa = await self._probe()
                if (vdpa is not None and vdpa != self._vdpa_seen) or loop.time() >= next_scan:
                    if await self._rescan(vdpa):
                        await self._apply()
                    next_scan = loop.time() + timing.scan_interval
                if loop.time() >= next_kubelet_check:
                    await self._check_kubelet()
                    next_kubelet_check = loop.time() + timing.kubelet_check_interval
        finally:
            await self.shutdown()

    async def shutdown(self) -> None:
        """Stop every server and remove what this process wrote (sockets, device-info files, CDI specs)."""
        for server in list(self.servers.values()):
            await server.stop()
        self.servers.clear()
        self.files.remove_all()
        self._worker.shutdown(wait=True)
        logger.info("device plugin stopped; its sockets, device-info files and CDI specs are removed")

    # --- config and pools --------------------------------------------------------------------------------------

    async def _reload_if_changed(self) -> None:
        stamp = ConfigFile.stamp_of(self.settings.config_file)
        if stamp == self.config_file.stamp:
            return
        try:
            config, file = load_config(self.settings, plugin_watcher=self.plugin_watcher)
        except ConfigError as exc:
            logger.error("config change not applied, still serving the last good config: %s", exc)
            self.config_file = ConfigFile(stamp, self.config_file.text)
            return
        self.config_file = file
        if config == self.config:
            return
        for warning in config.warnings:
            logger.warning("%s", warning)
        logger.info("config reloaded from %s: %s", self.settings.config_file,
                    ", ".join(r.resource_name for r in config.resources) or "no resources")
        self.config = config
        await self._apply()

    async def _probe(self) -> dict[str, VdpaInfo] | None:
        """The vDPA devices and their bindings; None when they cannot be read (the next scan reports why)."""
        try:
            return await self._host(vdpa_devices)
        except HostError:
            return None

    async def _rescan(self, vdpa: dict[str, VdpaInfo] | None = None) -> bool:
        """A whole scan, with the vDPA devices the probe just read (or read here); True when the node changed."""
        try:
            seen = vdpa if vdpa is not None else await self._host(vdpa_devices)
            inventory = await self._host(lambda host: scan(host, seen))
        except HostError as exc:
            if str(exc) != self._scan_error:
                logger.warning("scan failed, keeping the last one: %s", exc)
                self._scan_error = str(exc)
            return False
        if self._scan_error:
            logger.info("scan works again")
            self._scan_error = ""
        self._vdpa_seen = seen
        changed = inventory != self.inventory
        self.inventory = inventory
        return changed

    async def _apply(self) -> None:
        """Pools from the config and the last scan; servers started, updated and stopped to match."""
        pools = {p.config.resource_name: p for p in build_pools(self.config.resources, self.inventory, self.pools)}
        for name in [n for n in self.servers if n not in pools]:
            server = self.servers.pop(name)
            await server.stop()
            server.remove_files()
            logger.info("%s: resource removed from the config; unregistered", name)
        for name, pool in pools.items():
            _log_changes(name, self.pools.get(name), pool)
            running = self.servers.get(name)
            if running is not None:
                await running.update(pool, self.inventory)
                continue
            server = ResourceServer(pool, self.inventory, self.settings, self.files,
                                    plugin_watcher=self.plugin_watcher)
            self.servers[name] = server
            await server.start()
            await self._register(server)
        self.pools = pools

    # --- kubelet -----------------------------------------------------------------------------------------------

    async def _check_kubelet(self) -> None:
        """Restart servers whose socket kubelet wiped, or all of them when kubelet's own socket is new; register
        whatever is not registered yet (legacy mode)."""
        stamp = ConfigFile.stamp_of(self.settings.kubelet_socket)
        kubelet_restarted = not self.plugin_watcher and stamp is not None and self._kubelet_stamp is not None \
            and stamp != self._kubelet_stamp
        self._kubelet_stamp = stamp
        for server in self.servers.values():
            if kubelet_restarted or not server.socket_present():
                logger.warning("%s: %s; restarting the server", server.resource_name,
                               "kubelet restarted" if kubelet_restarted else f"{server.socket} is gone")
                await server.restart()
                self._retry_at.pop(server.resource_name, None)
            if not server.registered:
                await self._register(server)

    async def _register(self, server: ResourceServer) -> None:
        if self.plugin_watcher:
            return  # kubelet's watcher finds the socket and asks GetInfo
        name = server.resource_name
        now = asyncio.get_running_loop().time()
        if now < self._retry_at.get(name, 0.0):
            return
        if not self.settings.kubelet_socket.exists():
            self._backoff(name, now, f"no kubelet at {self.settings.kubelet_socket} yet")
            return
        try:
            await server.register()
        except RegistrationError as exc:
            self._backoff(name, now, str(exc))
            return
        self._retry_at.pop(name, None)
        self._retry_delay.pop(name, None)

    def _backoff(self, name: str, now: float, why: str) -> None:
        delay = min(self.settings.timing.retry_max,
                    self._retry_delay.get(name, self.settings.timing.kubelet_check_interval / 2) * 2)
        if name not in self._retry_delay:
            logger.warning("%s: not registered: %s; retrying", name, why)
        self._retry_delay[name] = delay
        self._retry_at[name] = now + delay


def _log_changes(name: str, before: Pool | None, after: Pool) -> None:
    """One line per device whose membership or health changed."""
    old = before.members if before is not None else {}
    for device_id, member in after.members.items():
        was = old.get(device_id)
        if was is None:
            logger.info("%s: %s added (%s%s)", name, device_id, member.health,
                        f": {member.problem}" if member.problem else "")
        elif was.health != member.health:
            logger.warning("%s: %s is %s%s", name, device_id, member.health,
                           f": {member.problem}" if member.problem else " again")
    for device_id in old.keys() - after.members.keys():
        logger.info("%s: %s removed (its PCI function is gone or no longer selected)", name, device_id)
