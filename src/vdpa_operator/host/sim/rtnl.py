"""`Links` on the simulated host: the model's netdev table (rules 22–26 in `kernel.py`).

`netns` None is the simulated node's own namespace; any other netns is identified by the string the caller
passes (a name and `/var/run/netns/<name>` are the same netns). In privileged mode the virtio netdevs and their
representors are real veth ends in the node's real netns, and every change to them is applied to the real
link first (through `RtnlLinks`) and then mirrored in the model, so what this class reports and what the
kernel holds agree; model-only netdevs (PF, VF, other representors) are changed in the model alone.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from vdpa_operator.host.errors import DeviceNotFound
from vdpa_operator.host.sim.kernel import KernelError, SimKernel, host_error
from vdpa_operator.host.types import Address, Link, Netns, Route, SwitchPort

logger = logging.getLogger(__name__)


def _where(name: str, netns: Netns) -> str:
    return name if netns is None else f"{name} (netns {netns})"


class SimLinks:
    def __init__(self, kernel: SimKernel) -> None:
        self.kernel = kernel

    def list(self, netns: Netns = None) -> Sequence[Link]:
        return self.kernel.links(netns)

    def get(self, name: str, netns: Netns = None) -> Link:
        try:
            return self.kernel.link(name, netns)
        except KernelError as exc:
            raise host_error(exc, "get link", _where(name, netns)) from exc

    def find(self, name: str, netns: Netns = None) -> Link | None:
        try:
            return self.get(name, netns)
        except DeviceNotFound:
            return None

    def set_up(self, name: str, up: bool = True, netns: Netns = None) -> None:
        state = "up" if up else "down"
        try:
            self.kernel.set_link_up(name, up, netns)
        except KernelError as exc:
            raise host_error(exc, f"set {state}", _where(name, netns)) from exc

    def set_mtu(self, name: str, mtu: int, netns: Netns = None) -> None:
        try:
            self.kernel.set_link_mtu(name, mtu, netns)
        except KernelError as exc:
            raise host_error(exc, f"set mtu {mtu} on", _where(name, netns)) from exc

    def set_mac(self, name: str, mac: str, netns: Netns = None) -> None:
        try:
            self.kernel.set_link_mac(name, mac, netns)
        except KernelError as exc:
            raise host_error(exc, f"set mac {mac} on", _where(name, netns)) from exc

    def rename(self, name: str, new_name: str, netns: Netns = None) -> None:
        try:
            self.kernel.rename_link(name, new_name, netns)
        except KernelError as exc:
            raise host_error(exc, f"rename to {new_name}", _where(name, netns)) from exc
        logger.info("renamed %s to %s", _where(name, netns), new_name)

    def move_to_netns(self, name: str, target: str, netns: Netns = None) -> None:
        try:
            self.kernel.move_link(name, target, netns)
        except KernelError as exc:
            raise host_error(exc, f"move to netns {target}", _where(name, netns)) from exc
        logger.info("moved %s to netns %s", _where(name, netns), target)

    def add_address(self, name: str, address: Address, netns: Netns = None) -> None:
        try:
            self.kernel.add_address(name, address, netns)
        except KernelError as exc:
            raise host_error(exc, f"add address {address} to", _where(name, netns)) from exc

    def addresses(self, name: str, netns: Netns = None) -> Sequence[Address]:
        try:
            return self.kernel.addresses(name, netns)
        except KernelError as exc:
            raise host_error(exc, "list addresses of", _where(name, netns)) from exc

    def add_route(self, route: Route, netns: Netns = None) -> None:
        op = f"add route {route.dst}" + (f" via {route.gateway}" if route.gateway else "")
        try:
            self.kernel.add_route(route, netns)
        except KernelError as exc:
            raise host_error(exc, op, _where(route.dev, netns) if route.dev else (netns or "the host netns")) from exc

    def routes(self, netns: Netns = None) -> Sequence[Route]:
        return self.kernel.routes(netns)

    def switch_port(self, name: str) -> SwitchPort | None:
        return self.kernel.switch_port(name)

    def set_vf_mac(self, pf: str, vf: int, mac: str, netns: Netns = None) -> None:
        try:
            self.kernel.set_vf_mac(pf, vf, mac, netns)
        except KernelError as exc:
            raise host_error(exc, f"set mac {mac} of VF {vf} on", _where(pf, netns)) from exc

    def vf_macs(self, pf: str, netns: Netns = None) -> Mapping[int, str]:
        try:
            return self.kernel.vf_macs(pf, netns)
        except KernelError as exc:
            raise host_error(exc, "list VFs of", _where(pf, netns)) from exc
