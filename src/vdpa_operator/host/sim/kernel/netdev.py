"""Netdevs (net/core/dev.c, rtnetlink.c, mlx5 en_rep.c): the table of links per netns, their names, admin
state, MTU and MAC, moves between namespaces, the VFs' administrative MACs on the PF, and privileged mode's
real veth pairs. Addresses and routes are `routes.py`.

22. Lookup by name or altname per netns; rename: invalid name → EINVAL, taken → EEXIST, running link →
    brought down and up again around it (as RtnlLinks does); representors and the switchdev uplink cannot
    change netns (NETIF_F_NETNS_LOCAL → EINVAL); a move takes the link down and flushes its addresses and
    routes; name taken in the target → EEXIST; MTU outside [min, max] → EINVAL (mlx5 max 9978);
    representors have no ndo_set_mac_address → EOPNOTSUPP; invalid MAC → EADDRNOTAVAIL.
    Proven on kernel (a virtio netdev of vdpa_sim_net): the move, the rename in the pod, and the way back,
    arriving down and without addresses (test_contract_vdpa.py:
    `test_virtio_binding_gives_a_virtio_net_netdev_that_moves_into_a_pod`,
    `test_a_pod_netdev_goes_back_to_the_host_netns`). The errno cases: sim only.
24. IFLA_VF_MAC on the PF: VF index beyond numvfs → EINVAL, multicast/zero MAC → EINVAL; cleared with the VFs.
    Proven on kernel (netdevsim): the MAC set is read back in IFLA_VFINFO_LIST
    (`test_contract_switchdev.py::test_vf_admin_mac_is_kept_on_the_pf`); the errno cases: sim only.
25. Privileged mode: each virtio netdev and its representor are the two ends of a real veth pair in the node
    netns, so traffic is real; link changes are applied to the real links (RtnlLinks) and mirrored here.
    Not a kernel behaviour: how the sim stands in for mlx5's datapath (tests/unit/host/test_sim_real.py).
26. A pod netns that disappears (`netns_deleted`): its physical netdevs (VF, virtio) return to the node
    netns, renamed `dev<k>` when their name is taken (`default_device_exit_net`). Sim only.
31. A netns is a string: a name and `/var/run/netns/<name>` are one netns; `/proc/1/ns/net` and
    `/proc/self/ns/net` are the node's own (the adapter runs in the node's init netns, as a hostNetwork pod
    does). `netns_exists`: the node's own is there; model only, so is any name or `/var/run/netns/` path (the
    model can move links into any of them), and another path must be an nsfs file of type net, as on Linux;
    privileged, the real kernel answers for everything but the node's own. Proven on kernel
    (`test_contract_netns.py::test_a_fresh_netns_exists`, `::test_files_that_are_not_network_namespaces`).
"""

from __future__ import annotations

import errno as E
import hashlib
import os
import re

from vdpa_operator.host.linux.netns import NETNS_RUN_DIR, is_net_namespace, netns_path
from vdpa_operator.host.sim.kernel.errors import KernelError
from vdpa_operator.host.sim.kernel.txn import Txn
from vdpa_operator.host.sim.state import (
    Netdev,
    Representors,
    State,
    carrier,
    link_speed,
    oper_state,
    rep_of,
    representors,
    switch_port,
)
from vdpa_operator.host.types import Link, SwitchPort

ZERO_MAC = "00:00:00:00:00:00"
MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_IFNAME_BAD = re.compile(r"[/:\s]")
NODE_NETNS_PATHS = ("/proc/1/ns/net", "/proc/self/ns/net")
"""Paths that name the node's own netns from the adapter's point of view (rule 31)."""


# --- names and addresses a driver picks ---------------------------------------------------------------------


def _digest(*parts: object) -> bytes:
    return hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()


def prefixed_mac(prefix: bytes, *parts: object) -> str:
    """A deterministic MAC under a vendor prefix (what the NIC's firmware burns in)."""
    raw = prefix + _digest(*parts)[: 6 - len(prefix)]
    return ":".join(f"{b:02x}" for b in raw)


def local_mac(*parts: object) -> str:
    """A deterministic locally administered unicast MAC (what mlx5/virtio_net would pick at random)."""
    raw = bytearray(_digest(*parts)[:6])
    raw[0] = (raw[0] & 0xFC) | 0x02
    return ":".join(f"{b:02x}" for b in raw)


def valid_unicast(mac: str) -> bool:
    return bool(MAC_RE.fullmatch(mac)) and mac != ZERO_MAC and not int(mac[:2], 16) & 1


def ifname_ok(name: str) -> bool:
    """`dev_valid_name`: 1–15 bytes, not `.`/`..`, no `/`, `:` or whitespace."""
    return 0 < len(name.encode()) < 16 and name not in (".", "..") and not _IFNAME_BAD.search(name)


def canonical_netns(netns: str | None, node: str | None) -> str | None:
    """None for the node's own netns; a name becomes `/var/run/netns/<name>` (as `ip netns` resolves it)."""
    if netns is None:
        return None
    path = os.path.normpath(netns_path(netns))
    if path in NODE_NETNS_PATHS or (node is not None and path == os.path.normpath(netns_path(node))):
        return None
    return path


# --- the table ----------------------------------------------------------------------------------------------


def ns(state: State, netns: str | None) -> str | None:
    return canonical_netns(netns, state.config.node_netns)


def add_netdev(state: State, nd: Netdev) -> None:
    nd.ifindex = state.next_ifindex
    state.next_ifindex += 1
    state.netdevs.append(nd)


def remove_netdev(t: Txn, nd: Netdev) -> None:
    if nd.real and nd.kind == "virtio":
        real_pair_delete(t, nd)
    flush_routes(t.state, nd)
    t.state.netdevs.remove(nd)


def flush_routes(state: State, nd: Netdev) -> None:
    """IPv4/IPv6 static routes through a link go with it when it goes down, moves or disappears."""
    state.routes = [r for r in state.routes if not (r.netns == nd.netns and r.ifindex == nd.ifindex)]


def loopback(ns: str | None) -> Netdev:
    return Netdev(ifindex=1, name="lo", kind="loopback", netns=ns, mtu=65536, max_mtu=65536)


def find(state: State, ns: str | None, name: str) -> Netdev | None:
    return next((n for n in state.netdevs if n.netns == ns and (n.name == name or name in n.altnames)), None)


def free_name(state: State, ns: str | None, prefix: str) -> str:
    """`dev_alloc_name` with `<prefix>%d`: the lowest free number."""
    k = 0
    while find(state, ns, f"{prefix}{k}") is not None:
        k += 1
    return f"{prefix}{k}"


def get(state: State, name: str, netns: str | None, *, change: bool = False) -> Netdev:
    """The netdev `name` in `netns`. Every netns has its lo: a pod's is stored once something changes it
    (`change`); a read gets a transient one, so reading never rewrites the state."""
    where_ns = ns(state, netns)
    nd = find(state, where_ns, name)
    if nd is None and name == "lo" and where_ns is not None:
        nd = loopback(where_ns)
        if change:
            state.netdevs.append(nd)
    if nd is None:
        where = f" in netns {netns}" if netns else ""
        raise KernelError(E.ENODEV, f"no netdev {name}{where}")
    return nd


def _link_value(state: State, nd: Netdev, reps: Representors | None = None) -> Link:
    lo = nd.kind == "loopback"
    return Link(index=nd.ifindex, name=nd.name, mtu=nd.mtu, mac=ZERO_MAC if lo else nd.mac, admin_up=nd.up,
                oper_state=oper_state(state, nd, carrier(state, nd, reps)), altnames=tuple(nd.altnames),
                link_type="loopback" if lo else "ether")


# --- reading ------------------------------------------------------------------------------------------------


def netns_exists(real: bool, netns: str | None) -> bool:
    """Rule 31, for a netns as `ns` gives it (None: the node's own)."""
    if netns is None:
        return True
    if not real and os.path.dirname(netns) == NETNS_RUN_DIR:
        return True
    return is_net_namespace(netns)


def links(state: State, netns: str | None = None) -> list[Link]:
    where = ns(state, netns)
    reps = representors(state)
    found = [_link_value(state, n, reps) for n in state.netdevs if n.netns == where]
    if not any(n.kind == "loopback" and n.netns == where for n in state.netdevs):
        found.append(_link_value(state, loopback(where)))
    return sorted(found, key=lambda link: link.index)


def link(state: State, name: str, netns: str | None = None) -> Link:
    return _link_value(state, get(state, name, netns))


def node_switch_port(state: State, name: str) -> SwitchPort | None:
    """What `phys_port_name`/`phys_switch_id` in the node's sysfs show (node netns only)."""
    nd = find(state, None, name)
    return switch_port(state, nd) if nd is not None else None


def node_link_speed(state: State, name: str) -> int | None:
    """What `speed` in the node's sysfs shows (node netns only)."""
    nd = find(state, None, name)
    return link_speed(state, nd) if nd is not None else None


def vf_macs(state: State, pf_name: str, netns: str | None = None) -> dict[int, str]:
    nd = get(state, pf_name, netns)
    if nd.kind != "pf" or nd.pci is None:
        return {}
    pf = state.pfs[nd.pci]
    return {int(k): v for k, v in sorted(pf.vf_macs.items(), key=lambda kv: int(kv[0]))}


# --- changing -----------------------------------------------------------------------------------------------


def set_link_up(t: Txn, name: str, up: bool, netns: str | None = None) -> None:
    t.fault("link_set", name)
    nd = get(t.state, name, netns, change=True)
    if nd.up == up:
        return
    if nd.real:
        t.real().set_up(nd.name, up, netns=t.real_ns(nd.netns))
    nd.up = up
    if not up:
        flush_routes(t.state, nd)


def set_link_mtu(t: Txn, name: str, mtu: int, netns: str | None = None) -> None:
    t.fault("link_set", name)
    nd = get(t.state, name, netns, change=True)
    if not nd.min_mtu <= mtu <= nd.max_mtu:
        raise KernelError(E.EINVAL, f"mtu {mtu} outside [{nd.min_mtu}, {nd.max_mtu}]")
    if nd.real:
        t.real().set_mtu(nd.name, mtu, netns=t.real_ns(nd.netns))
    nd.mtu = mtu


def set_link_mac(t: Txn, name: str, mac: str, netns: str | None = None) -> None:
    t.fault("link_set", name)
    nd = get(t.state, name, netns, change=True)
    mac = mac.lower()
    if nd.kind in ("rep", "loopback"):
        raise KernelError(E.EOPNOTSUPP, f"{name} cannot change its MAC address")
    if not valid_unicast(mac):
        raise KernelError(E.EADDRNOTAVAIL, f"{mac} is not a unicast MAC address")
    if nd.real:
        t.real().set_mac(nd.name, mac, netns=t.real_ns(nd.netns))
    nd.mac = mac


def rename_link(t: Txn, name: str, new_name: str, netns: str | None = None) -> None:
    t.fault("link_set", name)
    nd = get(t.state, name, netns, change=True)
    if new_name == nd.name:
        return
    if not ifname_ok(new_name):
        raise KernelError(E.EINVAL, f"{new_name!r} is not a valid interface name")
    if find(t.state, nd.netns, new_name) is not None:
        raise KernelError(E.EEXIST, f"{new_name} exists")
    if nd.real:
        t.real().rename(nd.name, new_name, netns=t.real_ns(nd.netns))
    if nd.up:
        flush_routes(t.state, nd)  # the down/up around a rename of a running link drops its routes
    nd.name = new_name


def move_link(t: Txn, name: str, target: str | None, netns: str | None = None, *,
              new_name: str | None = None) -> None:
    """Into `target`; None (or a path of rule 31) is the node's own netns. With `new_name`, called that
    there (the kernel's move-then-rename in one request: the current name may be taken in `target`)."""
    state = t.state
    t.fault("link_set", name)
    nd = get(state, name, netns, change=True)
    dest = ns(state, target)
    final = new_name if new_name is not None else nd.name
    if dest == nd.netns:  # the kernel's "nothing to do" for the move; the rename still happens
        rename_link(t, nd.name, final, netns)
        return
    if nd.kind in ("rep", "loopback") or (nd.kind == "pf" and nd.pci is not None
                                           and state.pfs[nd.pci].eswitch == "switchdev"):
        raise KernelError(E.EINVAL, f"{name} cannot change network namespace (NETIF_F_NETNS_LOCAL)")
    if not ifname_ok(final):
        raise KernelError(E.EINVAL, f"{final!r} is not a valid interface name")
    if find(state, dest, final) is not None:
        where = "the node netns" if dest is None else f"netns {target}"
        raise KernelError(E.EEXIST, f"{final} exists in {where}")
    if nd.real:
        t.real().move_to_netns(nd.name, t.real_ns(dest) or "", netns=t.real_ns(nd.netns), new_name=final)
    flush_routes(state, nd)
    nd.netns, nd.up, nd.addresses, nd.name = dest, False, [], final


def set_vf_mac(t: Txn, pf_name: str, vf: int, mac: str, netns: str | None = None) -> None:
    t.fault("vf_mac_set", pf_name)
    nd = get(t.state, pf_name, netns, change=True)
    if nd.kind != "pf" or nd.pci is None:
        raise KernelError(E.EOPNOTSUPP, f"{pf_name} has no VFs (not an SR-IOV PF netdev)")
    pf = t.state.pfs[nd.pci]
    if not 0 <= vf < pf.numvfs:
        raise KernelError(E.EINVAL, f"VF {vf} does not exist ({pf.numvfs} VFs)")
    mac = mac.lower()
    if not MAC_RE.fullmatch(mac) or int(mac[:2], 16) & 1:
        raise KernelError(E.EINVAL, f"{mac} is not a unicast MAC address")
    pf.vf_macs[str(vf)] = mac


def netns_deleted(t: Txn, netns: str) -> None:
    """A pod netns went away: physical netdevs return to the node (`default_device_exit_net`), renamed
    `dev<k>` when their name is taken; everything else there is gone."""
    state = t.state
    gone = ns(state, netns)
    if gone is None:
        raise ValueError("the node's own netns cannot be deleted")
    for nd in [n for n in state.netdevs if n.netns == gone]:
        if nd.kind == "loopback":
            state.netdevs.remove(nd)
            continue
        flush_routes(state, nd)
        nd.netns, nd.up, nd.addresses = None, False, []
        if find(state, None, nd.name) not in (None, nd):
            nd.name = free_name(state, None, "dev")
        if nd.real:
            real_pair_create(t, nd, recreate=True)
    state.routes = [r for r in state.routes if r.netns != gone]


# --- privileged mode: real veth pairs (rule 25) -------------------------------------------------------------


def real_pair_create(t: Txn, virtio: Netdev, *, recreate: bool = False) -> None:
    """The virtio netdev and its VF's representor become the two ends of one veth in the node netns."""
    rep = rep_of(t.state, virtio)
    if rep is None or rep.netns is not None:
        return
    node = t.state.config.node_netns or ""
    t.real().create_pair(node, virtio, rep, replace_peer=recreate)
    virtio.real = rep.real = True


def real_pair_delete(t: Txn, virtio: Netdev) -> None:
    rep = rep_of(t.state, virtio)
    t.real().delete(virtio.name, t.real_ns(virtio.netns))
    if rep is not None:
        rep.real = False
