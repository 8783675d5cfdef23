"""Addresses and routes (net/ipv4, net/ipv6: devinet.c, addrconf.c, fib): what `ip address` and `ip route`
show per netns, derived from the links' state on every query.

23. Operstate: down when admin down; VF and virtio netdevs in switchdev follow their representor's admin
    state (vport state); lo shows `unknown` (both computed in `state.py`). Connected routes for addresses of
    up links; IPv6 link-local (EUI-64) address and fe80::/64 route once a link is up with carrier; static
    routes: dev down → ENETDOWN, unreachable gateway → ENETUNREACH, duplicate → EEXIST; flushed when their
    link goes down. Sim only: the contract tests add an address on the kernel bed
    (`test_contract_vdpa.py::test_a_pod_netdev_goes_back_to_the_host_netns`) but assert none of this.
"""

from __future__ import annotations

import errno as E
import ipaddress

from vdpa_operator.host.sim.kernel import netdev
from vdpa_operator.host.sim.kernel.errors import KernelError
from vdpa_operator.host.sim.kernel.txn import Txn
from vdpa_operator.host.sim.state import Netdev, RouteEntry, State, carrier
from vdpa_operator.host.types import Address, Route


def eui64_link_local(mac: str) -> str:
    raw = bytearray(int(b, 16) for b in mac.split(":"))
    raw[0] ^= 0x02
    iid = bytes(raw[:3]) + b"\xff\xfe" + bytes(raw[3:])
    return str(ipaddress.IPv6Address(b"\xfe\x80" + bytes(6) + iid))


def all_addresses(state: State, nd: Netdev) -> list[str]:
    """Configured addresses, plus what the kernel adds itself: lo's when up, IPv6 link-local with carrier."""
    v4 = [a for a in nd.addresses if ":" not in a]
    v6 = [a for a in nd.addresses if ":" in a]
    if nd.kind == "loopback":
        return (["127.0.0.1/8", *v4, "::1/128", *v6]) if nd.up else [*v4, *v6]
    if carrier(state, nd):
        v6.append(f"{eui64_link_local(nd.mac)}/64")
    return [*v4, *v6]


def routes_in(state: State, ns: str | None) -> list[Route]:
    """Main-table routes as `ip route` / `ip -6 route` list them: connected prefixes of up links, the
    link-local prefix, ::1 on lo, and static routes."""
    names = {n.ifindex: n.name for n in state.netdevs if n.netns == ns}
    found: list[tuple[int, ipaddress.IPv4Network | ipaddress.IPv6Network, Route]] = []
    for nd in (n for n in state.netdevs if n.netns == ns and n.up):
        for text in all_addresses(state, nd):
            net = ipaddress.ip_interface(text).network
            if nd.kind == "loopback" and net.version == 4:
                continue  # 127.0.0.0/8 lives in the local table
            if net.is_link_local and net.version == 6:
                net = ipaddress.ip_network("fe80::/64")
            route = Route(dst=str(net), gateway=None, dev=nd.name)
            if all(existing != route for _, _, existing in found):
                found.append((net.version, net, route))
    for entry in (r for r in state.routes if r.netns == ns):
        net = ipaddress.ip_network(entry.dst)
        found.append((net.version, net, Route(dst=entry.dst, gateway=entry.gateway, dev=names.get(entry.ifindex or 0))))
    found.sort(key=lambda item: (item[0], int(item[1].network_address), item[1].prefixlen))
    return [route for _, _, route in found]


def _route_lookup(state: State, ns: str | None, gateway: ipaddress.IPv4Address | ipaddress.IPv6Address,
                  dev: Netdev | None) -> Netdev | None:
    """The up link whose connected prefix holds `gateway` (restricted to `dev` when given)."""
    for nd in state.netdevs:
        if nd.netns != ns or not nd.up or (dev is not None and nd is not dev):
            continue
        for text in all_addresses(state, nd):
            if gateway in ipaddress.ip_interface(text).network:
                return nd
    return None


# --- reading ------------------------------------------------------------------------------------------------


def addresses(state: State, name: str, netns: str | None = None) -> list[Address]:
    nd = netdev.get(state, name, netns)
    return [Address(a.split("/")[0], int(a.split("/")[1])) for a in all_addresses(state, nd)]


def routes(state: State, netns: str | None = None) -> list[Route]:
    return routes_in(state, netdev.ns(state, netns))


# --- changing -----------------------------------------------------------------------------------------------


def add_address(t: Txn, name: str, address: Address, netns: str | None = None) -> None:
    t.fault("link_set", name)
    nd = netdev.get(t.state, name, netns, change=True)
    try:
        iface = ipaddress.ip_interface(f"{address.address}/{address.prefixlen}")
    except ValueError as exc:
        raise KernelError(E.EINVAL, str(exc)) from exc
    text = f"{iface.ip}/{iface.network.prefixlen}"
    if text in nd.addresses:
        raise KernelError(E.EEXIST, f"{text} already on {name}")
    if nd.real:
        t.real().add_address(nd.name, address, netns=t.real_ns(nd.netns))
    nd.addresses.append(text)


def add_route(t: Txn, route: Route, netns: str | None = None) -> None:
    state = t.state
    t.fault("link_set", route.dev or route.dst)
    ns = netdev.ns(state, netns)
    try:
        dst = ipaddress.ip_network(route.dst, strict=True)
        gateway = ipaddress.ip_address(route.gateway) if route.gateway else None
    except ValueError as exc:
        raise KernelError(E.EINVAL, f"Invalid prefix for given prefix length: {exc}") from exc
    dev = netdev.get(state, route.dev, netns, change=True) if route.dev else None
    if gateway is not None:
        via = _route_lookup(state, ns, gateway, dev)
        if via is None:
            raise KernelError(E.ENETUNREACH, f"Nexthop has invalid gateway {gateway}")
        dev = via
    if dev is None:
        raise KernelError(E.EINVAL, "a route needs a device or a gateway")
    if not dev.up:
        raise KernelError(E.ENETDOWN, "Nexthop device is not up")
    if any(r.netns == ns and ipaddress.ip_network(r.dst) == dst for r in state.routes) or any(
            ipaddress.ip_network(r.dst) == dst for r in routes_in(state, ns)):
        raise KernelError(E.EEXIST, f"route {dst} exists")
    if dev.real:
        real_route = Route(dst=str(dst), gateway=route.gateway, dev=dev.name)
        t.real().add_route(real_route, netns=t.real_ns(ns))
    state.routes.append(RouteEntry(ns, str(dst), str(gateway) if gateway else None, dev.ifindex))
