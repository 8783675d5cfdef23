"""The device plugin beside a fake kubelet (the simulated cluster's `DeviceManager`: real gRPC on unix sockets in
a temp dir), on a simulated host the node daemon configured."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vdpa_operator.api.models import SriovNetworkNodeStateSpec
from vdpa_operator.api.nics import DEFAULT_SUPPORTED_NICS
from vdpa_operator.daemon.node import NodeAgent
from vdpa_operator.daemon.store import DaemonStore
from vdpa_operator.deviceplugin.service import DevicePluginService, load_config
from vdpa_operator.deviceplugin.settings import Settings, Timing
from vdpa_operator.host.port import Host
from vdpa_operator.host.sim import SimKernel, sim_host
from vdpa_operator.sim.kubelet.devicemanager import DeviceManager

GOLDEN = Path(__file__).parents[2] / "golden"
SEED_SPEC = json.loads((GOLDEN / "seed-node-state-spec.json").read_text())
PARTITION_SPEC = json.loads((GOLDEN / "vdpa-partition-node-state-spec.json").read_text())
CONFIGS = json.loads((GOLDEN / "device-plugin-configmaps.json").read_text())
SEED_CONFIG = CONFIGS["seed"]["data"]["worker-0"]
"""What the operator renders into the device-plugin ConfigMap for the seed (the render tests keep it true)."""
PARTITION_CONFIG = CONFIGS["partition"]["data"]["worker-0"]
SEED_VFS = ["0000:65:00.2", "0000:65:00.3", "0000:65:01.2", "0000:65:01.3"]
MLXNICS = "openshift.io/mlxnics"
FAST = Timing(probe_interval=0.02, scan_interval=0.2, kubelet_check_interval=0.1, register_timeout=2.0,
              retry_max=0.5)


def configured_host(root: Path, spec: dict[str, Any]) -> tuple[SimKernel, Host]:
    """A simulated host after the node daemon applied `spec` (a NodeState spec)."""
    kernel = SimKernel.create(root / "host", real_netdevs=False)
    host = sim_host(kernel)
    agent = NodeAgent(host, DaemonStore(root / "store"), DEFAULT_SUPPORTED_NICS)
    observed = agent.observe()
    result = agent.apply(agent.plan(SriovNetworkNodeStateSpec.model_validate(spec), observed), observed)
    assert result.ok, result.error_message()
    return kernel, host


@dataclass
class Rig:
    host: Host
    settings: Settings
    kubelet: DeviceManager
    service: DevicePluginService

    def device_info(self) -> dict[str, str]:
        d = self.settings.devinfo_dir
        return {p.name: p.read_text() for p in sorted(d.iterdir())} if d.is_dir() else {}


def settings_for(root: Path, *, config: str, plugin_watcher: bool = False, **changes: Any) -> Settings:
    (root / "etc").mkdir(parents=True, exist_ok=True)
    config_file = root / "etc" / "worker-0"
    config_file.write_text(config)
    registry = root / "plugins_registry"
    if plugin_watcher:
        registry.mkdir(exist_ok=True)
    return Settings(node_name="worker-0", config_file=config_file, device_plugin_dir=root / "device-plugins",
                    plugins_registry=registry, devinfo_dir=root / "devinfo", cdi_dir=root / "cdi",
                    timing=FAST, **changes)


@contextlib.asynccontextmanager
async def running(host: Host, settings: Settings, *, plugin_watcher: bool = False) -> AsyncIterator[Rig]:
    """kubelet first (as on a node), then the plugin; both stopped and checked for leftovers at the end."""
    kubelet = DeviceManager(settings.device_plugin_dir, settings.plugins_registry if plugin_watcher else None,
                            watch_interval=0.02)
    await kubelet.start()
    config, file = load_config(settings)
    service = DevicePluginService(host, settings, config, file)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        yield Rig(host, settings, kubelet, service)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await kubelet.stop()
