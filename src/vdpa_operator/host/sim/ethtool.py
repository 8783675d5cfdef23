"""`Ethtool` on the simulated host: driver info and the `hw-tc-offload` feature from the model (rules 14–15
in `kernel/ethtool.py`). Netdevs are found by (netns, name), so a virtio netdev moved into a pod and renamed `eth0`
still answers `virtio_net` with its vdpa device as bus-info. Only `hw-tc-offload` is modelled; any other
feature name reads as absent (None)."""

from __future__ import annotations

from vdpa_operator.host.errors import netdev_target
from vdpa_operator.host.sim.kernel import SimKernel, host_errors
from vdpa_operator.host.types import DriverInfo, Netns


class SimEthtool:
    def __init__(self, kernel: SimKernel) -> None:
        self.kernel = kernel

    def driver_info(self, name: str, netns: Netns = None) -> DriverInfo:
        with host_errors("get driver info of", netdev_target(name, netns)):
            return self.kernel.driver_info(name, netns)

    def feature(self, name: str, feature: str, netns: Netns = None) -> bool | None:
        with host_errors(f"get feature {feature} of", netdev_target(name, netns)):
            return self.kernel.feature(name, feature, netns)

    def set_feature(self, name: str, feature: str, enabled: bool, netns: Netns = None) -> None:
        with host_errors(f"set feature {feature} {'on' if enabled else 'off'} on", netdev_target(name, netns)):
            self.kernel.set_feature(name, feature, enabled, netns)
