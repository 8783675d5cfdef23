"""The device plugin's settings: read from the command line once at start, frozen, passed down."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vdpa_operator.deviceplugin.config import DEFAULT_RESOURCE_PREFIX

DEVICE_PLUGIN_DIR = Path("/var/lib/kubelet/device-plugins")
"""kubelet's `DevicePluginPath`; its `kubelet.sock` takes legacy registrations."""
KUBELET_SOCKET = "kubelet.sock"
PLUGINS_REGISTRY = Path("/var/lib/kubelet/plugins_registry")
"""kubelet's plugin-watcher directory; when it exists the plugin registers there instead (upstream)."""
DEVINFO_DIR = Path("/var/run/k8s.cni.cncf.io/devinfo/dp")
CDI_DIR = Path("/var/run/cdi")
"""The CDI library's dynamic spec directory."""
CONFIG_FILE = Path("/etc/pcidp/config.json")
API_VERSION = "v1beta1"
SUPPORTED_VERSIONS = ("v1alpha1", "v1beta1")
"""What upstream announces to the plugin watcher."""


@dataclass(frozen=True)
class Timing:
    probe_interval: float = 0.05
    """How often the vDPA devices and their bindings are read, and the config file checked: a device that goes
    away is reported Unhealthy within about this long (bench/device_plugin.py measures it)."""
    scan_interval: float = 1.0
    """How often the whole node is scanned (VFs, PFs, links) when the probe saw no change."""
    kubelet_check_interval: float = 1.0
    """How often the kubelet's socket and our own are checked (upstream: 5 s)."""
    register_timeout: float = 5.0
    retry_max: float = 30.0
    """Longest wait between attempts to register with a kubelet that is not answering."""


@dataclass(frozen=True)
class Settings:
    node_name: str
    config_file: Path = CONFIG_FILE
    device_plugin_dir: Path = DEVICE_PLUGIN_DIR
    plugins_registry: Path = PLUGINS_REGISTRY
    devinfo_dir: Path = DEVINFO_DIR
    resource_prefix: str = DEFAULT_RESOURCE_PREFIX
    use_cdi: bool = False
    cdi_dir: Path = CDI_DIR
    timing: Timing = Timing()

    @property
    def kubelet_socket(self) -> Path:
        return self.device_plugin_dir / KUBELET_SOCKET

    def plugin_watcher(self) -> bool:
        """Register through kubelet's plugin watcher (its directory exists), else on kubelet.sock; the service
        asks once, at start, as upstream (`DetectPluginWatchMode`)."""
        return self.plugins_registry.is_dir()

    def socket_of(self, prefix: str, resource: str, *, plugin_watcher: bool) -> Path:
        """A resource's socket: upstream's `<prefix>_<resource>.sock`, in the directory kubelet looks in."""
        return (self.plugins_registry if plugin_watcher else self.device_plugin_dir) / f"{prefix}_{resource}.sock"
