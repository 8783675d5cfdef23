"""Netdevs through rtnetlink (pyroute2), plus the two switchdev attributes that only sysfs shows.

Each call opens its own `IPRoute` and closes it before returning. pyroute2's synchronous sockets belong to
the thread that created them and run a private asyncio loop, so they cannot be created inside a running
event loop; services call this adapter from their one host thread (house style H8), and a per-call socket
keeps that rule trivially true. A socket for another netns is created inside it by `netns.socket_in_netns`
(a thread that enters it, no fork) and handed to `IPRoute(use_socket=…)`; a missing netns is an error, never
created.

What is left out: link creation and deletion (the CNI and the simulated host own those), VLAN/rate/trust
settings of VFs (the vDPA path sets only the administrative MAC), and IPv4/IPv6 policy routing.

Every failure is a HostError from `error_from_errno`, named like `set mtu 9000 on ens1f0`.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from pyroute2 import IPRoute  # type: ignore[import-untyped]
from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]

from vdpa_operator.host.errors import (
    DeviceNotFound,
    HostError,
    error_from_errno,
    error_from_os_error,
    netdev_target,
)
from vdpa_operator.host.linux.netns import OWN_NETNS, is_net_namespace, netns_path, socket_in_netns
from vdpa_operator.host.linux.sysfs import Sysfs
from vdpa_operator.host.types import Address, Link, Netns, Route, SwitchPort

logger = logging.getLogger(__name__)

NETLINK_ROUTE = 0
"""The netlink protocol of rtnetlink (socket(AF_NETLINK, SOCK_DGRAM, NETLINK_ROUTE))."""
IFNAMSIZ = 16
"""IFLA_IFNAME holds at most 15 bytes; longer names can only be alternative names (IFLA_ALT_IFNAME, 128)."""
IFF_UP = 0x1
RT_TABLE_MAIN = 254
LINK_TYPES = {1: "ether", 32: "infiniband", 772: "loopback", 65534: "none"}
"""ARPHRD_* → the word `ip link` prints after `link/`; others print as their number."""


def _ns(netns: Netns) -> str:
    return "the host netns" if netns is None else f"netns {netns}"


@contextmanager
def _errors(op: str, target: str) -> Iterator[None]:
    """The one place where NetlinkError and OSError become the HostError family."""
    try:
        yield
    except NetlinkError as exc:
        raise error_from_errno(exc.code, op, target, detail=_netlink_detail(exc)) from exc
    except OSError as exc:
        raise error_from_os_error(exc, op, target) from exc


def _netlink_detail(exc: Any) -> str:
    """The kernel's extended ack message, when it sent one and it says more than strerror."""
    message = str(exc.args[1]) if len(exc.args) > 1 else ""
    return "" if message == os.strerror(abs(exc.code)) else message


def _name_key(name: str) -> dict[str, str]:
    """How to ask the kernel for a link by name: IFLA_IFNAME for short names (the kernel also matches alt
    names there), IFLA_ALT_IFNAME for names that only an alt name can have."""
    return {"ifname": name} if len(name.encode()) < IFNAMSIZ else {"altname": name}


class RtnlLinks:
    """The `Links` port. `sysfs` serves `switch_port`, which sysfs alone provides."""

    def __init__(self, sysfs: Sysfs) -> None:
        self.sysfs = sysfs

    @contextmanager
    def _ipr(self, netns: Netns) -> Iterator[Any]:
        if netns is None:
            ipr = IPRoute()
        else:
            path = netns_path(netns)
            if not os.path.exists(path):
                raise DeviceNotFound("open netns", netns, errno.ENOENT, detail=f"no {path}")
            ipr = IPRoute(use_socket=socket_in_netns(path, socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_ROUTE,
                                                     op="open netns"))
        try:
            yield ipr
        finally:
            ipr.close()

    def _get(self, ipr: Any, name: str, netns: Netns, op: str = "get link") -> Any:
        with _errors(op, netdev_target(name, netns)):
            (msg,) = ipr.link("get", **_name_key(name))
        return msg

    def _index(self, ipr: Any, name: str, netns: Netns, op: str) -> int:
        return int(self._get(ipr, name, netns, op)["index"])

    # --- reading -----------------------------------------------------------------------------------------------

    def list(self, netns: Netns = None) -> Sequence[Link]:
        with self._ipr(netns) as ipr, _errors("list links in", _ns(netns)):
            return sorted((_link(msg) for msg in ipr.link("dump")), key=lambda link: link.index)

    def get(self, name: str, netns: Netns = None) -> Link:
        with self._ipr(netns) as ipr:
            return _link(self._get(ipr, name, netns))

    def find(self, name: str, netns: Netns = None) -> Link | None:
        try:
            return self.get(name, netns)
        except DeviceNotFound:
            return None

    def addresses(self, name: str, netns: Netns = None) -> Sequence[Address]:
        with self._ipr(netns) as ipr:
            index = self._index(ipr, name, netns, "list addresses of")
            with _errors("list addresses of", netdev_target(name, netns)):
                messages = ipr.addr("dump", index=index)
        return [
            Address(msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS"), int(msg["prefixlen"]))
            for msg in messages
            if msg["index"] == index
        ]

    def routes(self, netns: Netns = None) -> Sequence[Route]:
        """IPv4 and IPv6 routes of the main table (what `ip route` and `ip -6 route` print)."""
        with self._ipr(netns) as ipr, _errors("list routes in", _ns(netns)):
            names = {int(msg["index"]): msg.get_attr("IFLA_IFNAME") for msg in ipr.link("dump")}
            messages = ipr.route("dump", family=socket.AF_UNSPEC)
        routes = []
        for msg in messages:
            if (msg.get_attr("RTA_TABLE") or msg["table"]) != RT_TABLE_MAIN:
                continue
            default = "::" if msg["family"] == socket.AF_INET6 else "0.0.0.0"
            oif = msg.get_attr("RTA_OIF")
            routes.append(Route(
                dst=f"{msg.get_attr('RTA_DST') or default}/{msg['dst_len']}",
                gateway=msg.get_attr("RTA_GATEWAY"),
                dev=names.get(oif) if oif is not None else None,
            ))
        return routes

    def switch_port(self, name: str) -> SwitchPort | None:
        """NOTE: sysfs shows the netdevs of the netns that mounted it (the host's, for the daemon), so this
        answers for host netdevs only; a netdev moved into a pod is no longer visible here."""
        port = self.sysfs.read_optional(f"class/net/{name}/phys_port_name")
        switch = self.sysfs.read_optional(f"class/net/{name}/phys_switch_id")
        if not port or not switch or not port.strip() or not switch.strip():
            return None
        return SwitchPort(port_name=port.strip(), switch_id=switch.strip())

    def speed(self, name: str) -> int | None:
        """Host netdevs only, like `switch_port`. The kernel answers EINVAL without carrier and -1 when unknown."""
        text = self.sysfs.read_optional(f"class/net/{name}/speed")
        try:
            value = int(text) if text else -1
        except ValueError:
            return None
        return value if value > 0 else None

    def vf_macs(self, pf: str, netns: Netns = None) -> Mapping[int, str]:
        with self._ipr(netns) as ipr, _errors("list VFs of", netdev_target(pf, netns)):
            (msg,) = ipr.link("get", ext_mask=1, **_name_key(pf))  # RTEXT_FILTER_VF
        vflist = msg.get_attr("IFLA_VFINFO_LIST")
        if vflist is None:
            return {}
        macs = {}
        for info in vflist.get_attrs("IFLA_VF_INFO"):
            vf_mac = info.get_attr("IFLA_VF_MAC")
            if vf_mac is not None:
                macs[int(vf_mac["vf"])] = str(vf_mac["mac"]).lower()
        return dict(sorted(macs.items()))

    # --- changing ----------------------------------------------------------------------------------------------

    def set_up(self, name: str, up: bool = True, netns: Netns = None) -> None:
        state = "up" if up else "down"
        self._set(name, netns, f"set {state}", state=state)

    def set_mtu(self, name: str, mtu: int, netns: Netns = None) -> None:
        self._set(name, netns, f"set mtu {mtu} on", mtu=mtu)

    def set_mac(self, name: str, mac: str, netns: Netns = None) -> None:
        self._set(name, netns, f"set mac {mac} on", address=mac.lower())

    def set_vf_mac(self, pf: str, vf: int, mac: str, netns: Netns = None) -> None:
        self._set(pf, netns, f"set mac {mac} of VF {vf} on", vf={"vf": vf, "mac": mac.lower()})

    def _set(self, name: str, netns: Netns, op: str, **changes: Any) -> None:
        with self._ipr(netns) as ipr:
            index = self._index(ipr, name, netns, op)
            with _errors(op, netdev_target(name, netns)):
                ipr.link("set", index=index, **changes)
        logger.info("%s %s", op, netdev_target(name, netns))

    def rename(self, name: str, new_name: str, netns: Netns = None) -> None:
        op = f"rename to {new_name}"
        with self._ipr(netns) as ipr:
            msg = self._get(ipr, name, netns, op)
            index, was_up = int(msg["index"]), bool(msg["flags"] & IFF_UP)
            with _errors(op, netdev_target(name, netns)):
                if was_up:
                    ipr.link("set", index=index, state="down")
                try:
                    ipr.link("set", index=index, ifname=new_name)
                finally:
                    if was_up:
                        ipr.link("set", index=index, state="up")
        logger.info("renamed %s to %s", netdev_target(name, netns), new_name)

    def move_to_netns(self, name: str, target: Netns, netns: Netns = None, *, new_name: str | None = None) -> None:
        """`target` None: this process's own netns, opened here, before the socket for `netns` is made
        (IFLA_NET_NS_FD is resolved in the sender's file table, and this process sends)."""
        renamed = new_name is not None and new_name != name
        op = f"move to {_ns(target)}" + (f" as {new_name}" if renamed else "")
        path = OWN_NETNS if target is None else netns_path(target)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise error_from_os_error(exc, "open netns", target or path) from exc
        try:
            with self._ipr(netns) as ipr:
                index = self._index(ipr, name, netns, op)
                changes: dict[str, Any] = {"net_ns_fd": fd}
                if renamed:
                    changes["ifname"] = new_name
                try:
                    with _errors(op, netdev_target(name, netns)):
                        ipr.link("set", index=index, **changes)
                except HostError as exc:
                    if renamed and exc.errno == errno.EEXIST:
                        self._move_back(name, target, netns)
                    raise
        finally:
            os.close(fd)
        logger.info("moved %s to %s%s", netdev_target(name, netns), _ns(target), f" as {new_name}" if renamed
                    else "")

    def _move_back(self, name: str, moved_to: Netns, origin: Netns) -> None:
        """After EEXIST on a move with a new name: the kernel moved the link before its rename failed when only
        the new name was taken; put it back (best effort: the EEXIST is what the caller hears)."""
        try:
            if self.find(name, moved_to) is not None:
                self.move_to_netns(name, origin, moved_to)
        except HostError as exc:
            logger.warning("could not return %s from %s after a failed rename: %s", name, _ns(moved_to), exc)

    def netns_exists(self, netns: str) -> bool:
        return is_net_namespace(netns_path(netns))

    def add_address(self, name: str, address: Address, netns: Netns = None) -> None:
        op = f"add address {address} to"
        with self._ipr(netns) as ipr:
            index = self._index(ipr, name, netns, op)
            with _errors(op, netdev_target(name, netns)):
                ipr.addr("add", index=index, address=address.address, prefixlen=address.prefixlen)
        logger.info("added address %s to %s", address, netdev_target(name, netns))

    def add_route(self, route: Route, netns: Netns = None) -> None:
        op = f"add route {route.dst}" + (f" via {route.gateway}" if route.gateway else "")
        op, target = (f"{op} on", netdev_target(route.dev, netns)) if route.dev else (f"{op} in", _ns(netns))
        spec: dict[str, Any] = {"dst": route.dst}
        if route.gateway:
            spec["gateway"] = route.gateway
        with self._ipr(netns) as ipr:
            if route.dev:
                spec["oif"] = self._index(ipr, route.dev, netns, op)
            with _errors(op, target):
                ipr.route("add", **spec)
        logger.info("%s %s", op, target)


def _link(msg: Any) -> Link:
    linkinfo = msg.get_attr("IFLA_LINKINFO")
    props = msg.get_attr("IFLA_PROP_LIST")
    ifi_type = int(msg["ifi_type"])
    return Link(
        index=int(msg["index"]),
        name=msg.get_attr("IFLA_IFNAME"),
        mtu=int(msg.get_attr("IFLA_MTU") or 0),
        mac=(msg.get_attr("IFLA_ADDRESS") or "").lower(),
        admin_up=bool(msg["flags"] & IFF_UP),
        oper_state=str(msg.get_attr("IFLA_OPERSTATE") or "unknown").lower(),
        kind=(linkinfo.get_attr("IFLA_INFO_KIND") or "") if linkinfo is not None else "",
        altnames=tuple(props.get_attrs("IFLA_ALT_IFNAME")) if props is not None else (),
        link_type=LINK_TYPES.get(ifi_type, str(ifi_type)),
    )

