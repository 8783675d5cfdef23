"""`Ethtool` on the simulated host: driver info and the `hw-tc-offload` feature from the model (rules 14–15
in `kernel.py`). Netdevs are found by (netns, name), so a virtio netdev moved into a pod and renamed `eth0`
still answers `virtio_net` with its vdpa device as bus-info. Only `hw-tc-offload` is modelled; any other
feature name reads as absent (None)."""

from __future__ import annotations

from vdpa_operator.host.sim.kernel import KernelError, SimKernel, host_error
from vdpa_operator.host.types import DriverInfo, Netns


class SimEthtool:
    def __init__(self, kernel: SimKernel) -> None:
        self.kernel = kernel

    def driver_info(self, name: str, netns: Netns = None) -> DriverInfo:
        try:
            return self.kernel.driver_info(name, netns)
        except KernelError as exc:
            raise host_error(exc, "get driver info of", _where(name, netns)) from exc

    def feature(self, name: str, feature: str, netns: Netns = None) -> bool | None:
        try:
            return self.kernel.feature(name, feature, netns)
        except KernelError as exc:
            raise host_error(exc, f"get feature {feature} of", _where(name, netns)) from exc

    def set_feature(self, name: str, feature: str, enabled: bool, netns: Netns = None) -> None:
        try:
            self.kernel.set_feature(name, feature, enabled, netns)
        except KernelError as exc:
            raise host_error(exc, f"set feature {feature} {'on' if enabled else 'off'} on", _where(name, netns)) \
                from exc


def _where(name: str, netns: Netns) -> str:
    return name if netns is None else f"{name} (netns {netns})"
