"""`vdpactl device-plugin`: kubelet's device plugin for VFs with vDPA devices. Thin: read the flags into one
`Settings`, read the config (exit 2 when it cannot be served), pick the Host adapter, run the service until
SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from vdpa_operator.cli.common import (
    configure_logging,
    fail,
    on_stop_signals,
    open_host,
    sim_host_options,
)
from vdpa_operator.deviceplugin import settings as defaults
from vdpa_operator.deviceplugin.config import DEFAULT_RESOURCE_PREFIX, ConfigError

if TYPE_CHECKING:
    from vdpa_operator.deviceplugin.service import DevicePluginService


@click.command("device-plugin")
@click.option("--node-name", default=lambda: os.environ.get("NODE_NAME", ""), show_default="$NODE_NAME",
              help="The node this plugin runs on.")
@sim_host_options
@click.option("--config-file", metavar="FILE", default=str(defaults.CONFIG_FILE), show_default=True,
              help="The resource list (the operator's device-plugin-config ConfigMap entry for this node); "
              "watched: a change is applied without a restart.")
@click.option("--device-plugin-path", metavar="DIR", default=str(defaults.DEVICE_PLUGIN_DIR), show_default=True,
              help="kubelet's device plugin directory (its kubelet.sock takes legacy registrations).")
@click.option("--plugins-registry", metavar="DIR", default=str(defaults.PLUGINS_REGISTRY), show_default=True,
              help="kubelet's plugin-watcher directory; when it exists, register there instead.")
@click.option("--devinfo-dir", metavar="DIR", default=str(defaults.DEVINFO_DIR), show_default=True,
              help="Where device-info files for the CNI are written.")
@click.option("--resource-prefix", metavar="PREFIX", default=DEFAULT_RESOURCE_PREFIX, show_default=True,
              help="Resource name prefix; a resource's own resourcePrefix wins.")
@click.option("--use-cdi", is_flag=True, help="Hand devices to the runtime through CDI specs instead of "
              "device specs.")
@click.option("--cdi-dir", metavar="DIR", default=str(defaults.CDI_DIR), show_default=True,
              help="Where CDI specs are written (with --use-cdi).")
def device_plugin(node_name: str, host_kind: str, sim_root: str, sim_netns: str | None, config_file: str,
                  device_plugin_path: str, plugins_registry: str, devinfo_dir: str, resource_prefix: str,
                  use_cdi: bool, cdi_dir: str) -> None:
    """Advertise this node's VFs with vDPA devices to kubelet and hand them to pods (Allocate, device-info)."""
    if not node_name:
        fail("--node-name (or $NODE_NAME) is required")
    from vdpa_operator.deviceplugin.service import DevicePluginService, load_config
    from vdpa_operator.deviceplugin.settings import Settings

    settings = Settings(
        node_name=node_name, config_file=Path(config_file), device_plugin_dir=Path(device_plugin_path),
        plugins_registry=Path(plugins_registry), devinfo_dir=Path(devinfo_dir), resource_prefix=resource_prefix,
        use_cdi=use_cdi, cdi_dir=Path(cdi_dir),
    )
    try:
        config, file = load_config(settings)
    except ConfigError as err:
        fail(str(err))
    configure_logging()
    service = DevicePluginService(open_host(host_kind, sim_root, None, sim_netns), settings, config, file)
    asyncio.run(_run(service))


async def _run(service: DevicePluginService) -> None:
    """Until SIGTERM/SIGINT (a pod being stopped); the service removes its sockets and files on the way out."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    on_stop_signals(loop, stop.set)
    await service.run(stop)
