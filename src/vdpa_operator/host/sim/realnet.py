"""Real links behind the simulated netdevs, for privileged runs: a veth pair per virtio vDPA netdev.

A vDPA device bound to virtio_vdpa gives a virtio_net netdev whose traffic reaches the wire through the VF's
representor. In privileged mode the sim makes that path real: the virtio netdev and the representor are the
two ends of one veth pair in the simulated node's network namespace (a real netns the factory was given),
so a pod that receives the virtio end can ping through the representor, and OVS can own the representor.

Link changes go through the Linux adapter's `RtnlLinks` (one place for rtnetlink), which this class extends
with the two things the Links port deliberately lacks: creating the pair and deleting it. Also here: creating
and removing named network namespaces for beds and the simulated cluster. pyroute2 appears in `host.sim`
only in this module.
"""

from __future__ import annotations

import errno
import logging
from typing import Any

from pyroute2 import netns  # type: ignore[import-untyped]
from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]

from vdpa_operator.host.errors import error_from_errno
from vdpa_operator.host.linux.netns import netns_path
from vdpa_operator.host.linux.rtnl import RtnlLinks
from vdpa_operator.host.linux.sysfs import Sysfs
from vdpa_operator.host.sim.state import Netdev

logger = logging.getLogger(__name__)


class RealNet(RtnlLinks):
    """`RtnlLinks` plus veth pair creation and deletion."""

    def __init__(self) -> None:
        super().__init__(Sysfs("/sys"))

    def create_pair(self, node_netns: str, virtio: Netdev, rep: Netdev, *, replace_peer: bool = False) -> None:
        """`virtio` and `rep` become the two ends of one veth in `node_netns`, with the model's MAC, MTU and
        admin state. `replace_peer`: remove a leftover link with the representor's name first."""
        try:
            with self._ipr(node_netns) as ipr:
                if replace_peer:
                    _delete(ipr, rep.name)
                ipr.link("add", ifname=virtio.name, kind="veth",
                         peer={"ifname": rep.name, "address": rep.mac, "mtu": rep.mtu})
                for end in (virtio, rep):
                    (index,) = ipr.link_lookup(ifname=end.name)
                    ipr.link("set", index=index, address=end.mac, mtu=end.mtu, state="up" if end.up else "down")
        except NetlinkError as exc:
            raise error_from_errno(exc.code, "create veth pair", f"{virtio.name}/{rep.name} in {node_netns}") from exc
        logger.info("sim: real veth %s <-> %s in %s", virtio.name, rep.name, node_netns)

    def delete(self, name: str, where: str | None) -> None:
        """Delete `name` (and so its veth peer); nothing to do when it is already gone."""
        try:
            with self._ipr(where) as ipr:
                _delete(ipr, name)
        except NetlinkError as exc:
            raise error_from_errno(exc.code, "delete link", f"{name} in {where}") from exc


def _delete(ipr: Any, name: str) -> None:
    try:
        for index in ipr.link_lookup(ifname=name):
            ipr.link("del", index=index)
    except NetlinkError as exc:
        if exc.code != errno.ENODEV:
            raise


def create_netns(name: str) -> str:
    """A new named netns (`ip netns add`); its path."""
    netns.create(name)
    return netns_path(name)


def remove_netns(name: str) -> None:
    """`ip netns del`; nothing to do when it is gone."""
    try:
        netns.remove(name)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise
