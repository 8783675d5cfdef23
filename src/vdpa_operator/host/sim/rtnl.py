"""`Links` on the simulated host: the model's netdev table (rules 22–26 and 31 in `kernel/netdev.py` and
`kernel/routes.py`).

`netns` None is the simulated node's own namespace (so are `/proc/1/ns/net` and `/proc/self/ns/net`); any other
netns is identified by the string the caller passes (a name and `/var/run/netns/<name>` are the same netns).
In privileged mode the virtio netdevs and their
representors are real veth ends in the node's real netns, and every change to them is applied to the real
link first (through `RtnlLinks`) and then mirrored in the model, so what this class reports and what the
kernel holds agree; model-only netdevs (PF, VF, other representors) are changed in the model alone.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from vdpa_operator.host.errors import DeviceNotFound, netdev_target
from vdpa_operator.host.sim.kernel import SimKernel, host_errors
from vdpa_operator.host.types import Address, Link, Netns, Route, SwitchPort

logger = logging.getLogger(__name__)


class SimLinks:
    def __init__(self, kernel: SimKernel) -> None:
        self.kernel = kernel

    def list(self, netns: Netns = None) -> Sequence[Link]:
        return self.kernel.links(netns)

    def get(self, name: str, netns: Netns = None) -> Link:
        with host_errors("get link", netdev_target(name, netns)):
            return self.kernel.link(name, netns)

    def find(self, name: str, netns: Netns = None) -> Link | None:
        try:
            return self.get(name, netns)
        except DeviceNotFound:
            return None

    def set_up(self, name: str, up: bool = True, netns: Netns = None) -> None:
        with host_errors(f"set {'up' if up else 'down'}", netdev_target(name, netns)):
            self.kernel.set_link_up(name, up, netns)

    def set_mtu(self, name: str, mtu: int, netns: Netns = None) -> None:
        with host_errors(f"set mtu {mtu} on", netdev_target(name, netns)):
            self.kernel.set_link_mtu(name, mtu, netns)

    def set_mac(self, name: str, mac: str, netns: Netns = None) -> None:
        with host_errors(f"set mac {mac} on", netdev_target(name, netns)):
            self.kernel.set_link_mac(name, mac, netns)

    def rename(self, name: str, new_name: str, netns: Netns = None) -> None:
        with host_errors(f"rename to {new_name}", netdev_target(name, netns)):
            self.kernel.rename_link(name, new_name, netns)
        logger.info("renamed %s to %s", netdev_target(name, netns), new_name)

    def move_to_netns(self, name: str, target: Netns, netns: Netns = None, *, new_name: str | None = None) -> None:
        where = "the host netns" if target is None else f"netns {target}"
        renamed = new_name is not None and new_name != name
        as_name = f" as {new_name}" if renamed else ""
        with host_errors(f"move to {where}{as_name}", netdev_target(name, netns)):
            self.kernel.move_link(name, target, netns, new_name=new_name)
        logger.info("moved %s to %s%s", netdev_target(name, netns), where, as_name)

    def netns_exists(self, netns: str) -> bool:
        with host_errors("check network namespace", netns):
            return self.kernel.netns_exists(netns)

    def add_address(self, name: str, address: Address, netns: Netns = None) -> None:
        with host_errors(f"add address {address} to", netdev_target(name, netns)):
            self.kernel.add_address(name, address, netns)

    def addresses(self, name: str, netns: Netns = None) -> Sequence[Address]:
        with host_errors("list addresses of", netdev_target(name, netns)):
            return self.kernel.addresses(name, netns)

    def add_route(self, route: Route, netns: Netns = None) -> None:
        op = f"add route {route.dst}" + (f" via {route.gateway}" if route.gateway else "")
        with host_errors(op, netdev_target(route.dev, netns) if route.dev else (netns or "the host netns")):
            self.kernel.add_route(route, netns)

    def routes(self, netns: Netns = None) -> Sequence[Route]:
        return self.kernel.routes(netns)

    def switch_port(self, name: str) -> SwitchPort | None:
        return self.kernel.switch_port(name)

    def speed(self, name: str) -> int | None:
        return self.kernel.link_speed(name)

    def set_vf_mac(self, pf: str, vf: int, mac: str, netns: Netns = None) -> None:
        with host_errors(f"set mac {mac} of VF {vf} on", netdev_target(pf, netns)):
            self.kernel.set_vf_mac(pf, vf, mac, netns)

    def vf_macs(self, pf: str, netns: Netns = None) -> Mapping[int, str]:
        with host_errors("list VFs of", netdev_target(pf, netns)):
            return self.kernel.vf_macs(pf, netns)
