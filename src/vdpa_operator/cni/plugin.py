"""The CNI verbs for a VF with a vDPA device, as OVN-Kubernetes' CNI serves vDPA pods (dataplane.md §5), over
the Host port. Synchronous: the server runs one request at a time on its worker thread.

ADD, after checking everything it can without changing anything: IPAM (delegated to `ipam.type`, else the
pod's `k8s.ovn.org/pod-networks` annotation, else the node's own allocator); for virtio, the virtio netdev moved
into the pod's netns as `CNI_IFNAME` with MAC, MTU, addresses and routes; for vhost, the MAC set on the vDPA
device (the VF's admin MAC where the kernel cannot); then the VF's representor added to the bridge in one OVSDB
transaction with OVN's external_ids, its MTU set, brought up, and (when OVN runs) `ovn-installed` awaited.
Every step registers its undo: an ADD that fails leaves nothing behind.

The OVS Interface row is the attachment's record (as in OVN-K): DEL and GC find the representor, the netdev's
original name and the network through its external_ids, so they need nothing else to undo an ADD.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vdpa_operator.cni import device as dev
from vdpa_operator.cni.errors import (
    HOST_FAILURE,
    INVALID_CONFIG,
    INVALID_ENVIRONMENT,
    LIMITED_CONNECTIVITY,
    NOT_AVAILABLE,
    TRY_AGAIN_LATER,
    CniError,
)
from vdpa_operator.cni.ipam import DelegatedIpam, IpamResult, NodeIpam, from_pod_networks, ovn_mac
from vdpa_operator.cni.spec import CniRequest, Interface, Result, parse_result, version_result
from vdpa_operator.host.errors import HostError, NotSupported
from vdpa_operator.host.port import Host, Ovs
from vdpa_operator.host.types import Address, OvsPort, Route

logger = logging.getLogger(__name__)

# external_ids of the representor's Interface row: OVN-Kubernetes' keys, then ours
IFACE_ID = "iface-id"
IFACE_ID_VER = "iface-id-ver"
ATTACHED_MAC = "attached_mac"
IP_ADDRESSES = "ip_addresses"
SANDBOX = "sandbox"
POD_IF_NAME = "pod-if-name"
VF_NETDEV_NAME = "vf-netdev-name"
OVN_INSTALLED = "ovn-installed"
NETWORK = "vdpa-cni-network"
"""The CNI network name (GC only touches its own network's attachments)."""
DEVICE_ID = "vdpa-cni-device"
"""The VF's PCI address."""
IPAM_KIND = "vdpa-cni-ipam"
"""Where the address came from: `delegated`, `annotation` or `node` (DEL releases it the same way)."""
SAVED_MAC = "vdpa-cni-saved-mac"
SAVED_MTU = "vdpa-cni-saved-mtu"
SAVED_REP_MTU = "vdpa-cni-saved-rep-mtu"
MAC_ON = "vdpa-cni-mac-on"
"""vhost: where ADD set the MAC, `vdpa` (the device) or `vf` (the VF's admin MAC), so DEL restores it there."""


@dataclass(frozen=True)
class Saved:
    """What ADD changed on the node and DEL puts back, kept in the port's external_ids."""

    mac: str = ""
    mtu: int | None = None
    rep_mtu: int | None = None
    mac_on: str = ""

    def to_ids(self) -> dict[str, str]:
        ids = {SAVED_MAC: self.mac, MAC_ON: self.mac_on}
        ids.update({key: str(value) for key, value in ((SAVED_MTU, self.mtu), (SAVED_REP_MTU, self.rep_mtu))
                    if value is not None})
        return {k: v for k, v in ids.items() if v}

    @classmethod
    def from_ids(cls, ids: Mapping[str, str]) -> Saved:
        def number(key: str) -> int | None:
            return int(ids[key]) if ids.get(key, "").isdigit() else None

        return cls(ids.get(SAVED_MAC, ""), number(SAVED_MTU), number(SAVED_REP_MTU), ids.get(MAC_ON, ""))


@dataclass(frozen=True)
class CniSettings:
    bridge: str = "br-int"
    ovn: bool | None = None
    """Wait for `ovn-installed`: True/False, or None to decide by `external_ids:ovn-remote` being set."""
    ovn_timeout: float = 60.0
    poll_interval: float = 0.2
    state_dir: Path = Path("/var/lib/vdpa-cni")
    """The node allocator's leases."""


@dataclass
class _Undo:
    """Steps to take back, newest first, when an ADD fails half way."""

    steps: list[tuple[str, Callable[[], Any]]] = field(default_factory=list)

    def push(self, what: str, step: Callable[[], Any]) -> None:
        self.steps.append((what, step))

    def run(self) -> None:
        for what, step in reversed(self.steps):
            try:
                step()
            except (HostError, CniError) as exc:
                logger.warning("undo %s failed: %s", what, exc)
        self.steps.clear()


class VdpaCni:
    def __init__(self, host: Host, settings: CniSettings, *, node_ipam: NodeIpam | None = None) -> None:
        self.host = host
        self.settings = settings
        self.node_ipam = node_ipam

    # --- dispatch ----------------------------------------------------------------------------------------------

    def run(self, request: CniRequest, *, pod_networks: str | None = None) -> dict[str, Any] | None:
        """The result to print (None: print nothing); CniError for a failure."""
        verb = request.command
        if verb == "VERSION":
            return version_result(request.config.cni_version)
        if verb == "ADD":
            return self.add(request, pod_networks).to_json(request.config.cni_version)
        if verb == "DEL":
            self.delete(request)
            return None
        if verb == "CHECK":
            self.check(request)
            return None
        if verb == "STATUS":
            self.status(request)
            return None
        self.gc(request)
        return None

    # --- ADD ---------------------------------------------------------------------------------------------------

    def add(self, request: CniRequest, pod_networks: str | None = None) -> Result:
        ovs = self._ovs()
        if not self.host.links.netns_exists(request.netns):
            raise CniError(INVALID_ENVIRONMENT, "CNI_NETNS is not a network namespace", request.netns)
        vf = dev.resolve(self.host, request.config.device_id, dict(request.device_info or {}) or None)
        if vf.kind == "virtio":
            dev.confirm_virtio_netdev(self.host, vf)
            if self.host.links.find(request.ifname, request.netns) is not None:
                raise CniError(INVALID_CONFIG, f"{request.ifname} already exists in {request.netns}",
                               "an interface of the requested name exists in the container")
        self._check_port_free(ovs, vf, request)
        undo = _Undo()
        try:
            ipam, mac, ipam_kind = self._ipam_add(request, pod_networks, undo)
            mac = mac or request.config.mac
            if vf.kind == "virtio":
                pod_iface, saved = self._plug_virtio(request, vf, ipam, mac, undo)
            else:
                pod_iface, saved = self._plug_vhost(request, vf, mac, undo)
            self._plug_representor(ovs, request, vf, pod_iface, ipam, ipam_kind, saved, undo)
        except BaseException:
            undo.run()
            raise
        rep_mac = self._mac_of(vf.representor)
        interfaces = [Interface(vf.representor, rep_mac), pod_iface]
        logger.info("ADD %s/%s %s: %s %s as %s, representor %s on %s", *request.pod, request.container_id[:12],
                    vf.kind, vf.vdpa, request.ifname, vf.representor, self.settings.bridge)
        return Result.of(interfaces, ipam, 1)

    def _ovs(self) -> Ovs:
        if self.host.ovs is None:
            raise CniError(TRY_AGAIN_LATER, "no OVSDB connection", "start Open vSwitch on this node (the CNI "
                           "server's --ovsdb names its socket)")
        return self.host.ovs

    def _check_port_free(self, ovs: Ovs, vf: dev.VdpaVf, request: CniRequest) -> None:
        """OVN-K refuses a representor that is already some other pod's port."""
        port = self._port(ovs, lambda p: p.name == vf.representor)
        if port is not None and port.external_ids.get(SANDBOX) != request.container_id:
            raise CniError(HOST_FAILURE, f"{vf.representor} is already attached",
                           f"its port on {port.bridge} belongs to sandbox {port.external_ids.get(SANDBOX, '?')}; "
                           "the earlier pod's DEL has not run")

    def _ipam_add(self, request: CniRequest, pod_networks: str | None,
                  undo: _Undo) -> tuple[IpamResult | None, str, str]:
        """(addresses, MAC from the pod annotation or "", which IPAM) — with its undo registered."""
        if request.config.ipam.get("type"):
            ipam = self._delegate(request)
            result = ipam.add(request.env, request.config_bytes)
            undo.push("IPAM ADD", lambda: ipam.delete(request.env, request.config_bytes))
            return result, "", "delegated"
        if pod_networks is not None:
            result, mac = from_pod_networks(pod_networks)
            return result, mac or "", "annotation"
        if self.node_ipam is None:
            raise CniError(INVALID_CONFIG, "no IPAM for this network",
                           "the config's ipam is empty, the pod has no k8s.ovn.org/pod-networks annotation and "
                           "the CNI server knows no pod subnet (--pod-cidr, or the node's "
                           "k8s.ovn.org/node-subnets annotation); set ipam.type in the NetworkAttachmentDefinition")
        node_ipam = self.node_ipam
        result = node_ipam.allocate(request.config.name, request.container_id, request.ifname)
        undo.push("address lease", lambda: node_ipam.release(request.config.name, request.container_id,
                                                               request.ifname))
        return result, request.config.mac or (ovn_mac(result.ips[0].address.ip) if result.ips else ""), "node"

    def _delegate(self, request: CniRequest) -> DelegatedIpam:
        return DelegatedIpam(str(request.config.ipam["type"]), request.env.get("CNI_PATH", ""))

    def _plug_virtio(self, request: CniRequest, vf: dev.VdpaVf, ipam: IpamResult | None, mac: str,
                     undo: _Undo) -> tuple[Interface, Saved]:
        links, netns, ifname = self.host.links, request.netns, request.ifname
        original = vf.netdev or ""
        step = dev.host_step
        before = step(lambda: links.get(original), f"read {original}")
        mac = mac.lower() if mac and mac.lower() != before.mac.lower() else ""
        mtu = request.config.mtu if request.config.mtu and request.config.mtu != before.mtu else None
        saved = Saved(mac=before.mac if mac else "", mtu=before.mtu if mtu else None)  # what DEL puts back
        dev.move_into(self.host, original, netns, ifname)
        undo.push(f"move {ifname} out of {netns}", lambda: self._move_out(ifname, netns, original, saved))
        if mac:
            step(lambda: links.set_mac(ifname, mac, netns), f"set MAC {mac} on {ifname}")
        if mtu:
            step(lambda: links.set_mtu(ifname, mtu, netns), f"set MTU {mtu} on {ifname}")
        step(lambda: links.set_up(ifname, True, netns), f"bring {ifname} up")
        for ip in ipam.ips if ipam else ():
            address = Address(str(ip.address.ip), ip.address.network.prefixlen)
            step(lambda a=address: links.add_address(ifname, a, netns), f"add {address} to {ifname}")
        for route in ipam.routes if ipam else ():
            gateway = str(route.gw) if route.gw is not None else None
            step(lambda r=route, g=gateway: links.add_route(Route(str(r.dst), g, ifname), netns),
                 f"add route {route.dst} to {ifname}")
        link = step(lambda: links.get(ifname, netns), f"read {ifname}")
        return Interface(ifname, link.mac, netns, link.mtu, vf.device_id), saved

    def _plug_vhost(self, request: CniRequest, vf: dev.VdpaVf, mac: str, undo: _Undo) -> tuple[Interface, Saved]:
        """Nothing enters the pod's netns (its `/dev/vhost-vdpa-N` came from the device plugin); the MAC goes to
        the vDPA device, or where the kernel cannot change that, to the VF's admin MAC on the PF."""
        current = self._vdpa_mac(vf.vdpa)
        if not mac:
            return Interface(request.ifname, current, request.netns, None, vf.device_id), Saved()
        try:
            self.host.vdpa.set_mac(vf.vdpa, mac)
            saved = Saved(mac=current, mac_on="vdpa")
        except NotSupported:
            logger.info("%s: the kernel cannot change a vDPA device's MAC; setting VF %d's on %s", vf.vdpa,
                        vf.vf_index, vf.uplink)
            admin = dev.host_step(lambda: self.host.links.vf_macs(vf.uplink), f"read VF MACs of {vf.uplink}")
            dev.host_step(lambda: self.host.links.set_vf_mac(vf.uplink, vf.vf_index, mac),
                          f"set the MAC of VF {vf.vf_index} on {vf.uplink}")
            saved = Saved(mac=admin.get(vf.vf_index, ""), mac_on="vf")
        except HostError as exc:
            raise CniError(HOST_FAILURE, f"set MAC {mac} on {vf.vdpa} failed", str(exc)) from exc
        undo.push(f"restore the MAC of {vf.vdpa}", lambda: self._restore_vhost_mac(vf.vdpa, vf.uplink, vf.vf_index,
                                                                                   saved))
        return Interface(request.ifname, mac, request.netns, None, vf.device_id), saved

    def _restore_vhost_mac(self, vdpa: str, uplink: str, vf_index: int, saved: Saved) -> None:
        if not saved.mac or saved.mac == "00:00:00:00:00:00":
            return  # nothing to go back to (the kernel refuses a zero MAC); the next ADD sets its own
        if saved.mac_on == "vdpa":
            self.host.vdpa.set_mac(vdpa, saved.mac)
        elif saved.mac_on == "vf" and uplink:
            self.host.links.set_vf_mac(uplink, vf_index, saved.mac)

    def _vdpa_mac(self, name: str) -> str:
        try:
            return self.host.vdpa.net_config(name).mac or ""
        except HostError:
            return ""

    def _plug_representor(self, ovs: Ovs, request: CniRequest, vf: dev.VdpaVf, pod_iface: Interface,
                          ipam: IpamResult | None, ipam_kind: str, saved: Saved, undo: _Undo) -> None:
        namespace, pod = request.pod
        external_ids = {
            IFACE_ID: f"{namespace}_{pod}", ATTACHED_MAC: pod_iface.mac, SANDBOX: request.container_id,
            POD_IF_NAME: request.ifname, NETWORK: request.config.name, DEVICE_ID: vf.device_id, IPAM_KIND: ipam_kind,
        }
        if request.args.get("K8S_POD_UID"):
            external_ids[IFACE_ID_VER] = request.args["K8S_POD_UID"]
        if ipam and ipam.ips:
            external_ids[IP_ADDRESSES] = ",".join(str(ip.address) for ip in ipam.ips)
        if vf.kind == "virtio" and vf.netdev:
            external_ids[VF_NETDEV_NAME] = vf.netdev
        bridge, rep = self.settings.bridge, vf.representor
        if request.config.mtu:
            rep_link = dev.host_step(lambda: self.host.links.get(rep), f"read {rep}")
            if rep_link.mtu != request.config.mtu:
                saved = dataclasses.replace(saved, rep_mtu=rep_link.mtu)
        external_ids.update(saved.to_ids())
        if bridge not in dev.host_step(ovs.bridges, "list OVS bridges"):
            raise CniError(HOST_FAILURE, f"OVS bridge {bridge} does not exist",
                           "create it (OVN does, or `ovs-vsctl add-br`), or pass --bridge to the CNI server")
        self._remove_stale_ports(ovs, external_ids[IFACE_ID], rep)
        dev.host_step(lambda: ovs.add_port(bridge, rep, external_ids=external_ids,
                                           port_other_config={"transient": "true"},
                                           mtu_request=request.config.mtu),
                      f"add {rep} to {bridge}")
        undo.push(f"remove port {rep}", lambda: self._unplug(rep, saved))
        if saved.rep_mtu:
            dev.host_step(lambda: self.host.links.set_mtu(rep, request.config.mtu or 0), f"set MTU on {rep}")
        dev.host_step(lambda: self.host.links.set_up(rep), f"bring {rep} up")
        if self._ovn(ovs):
            self._wait_ovn_installed(ovs, rep, external_ids[IFACE_ID])

    def _remove_stale_ports(self, ovs: Ovs, iface_id: str, rep: str) -> None:
        """Ports of an earlier sandbox of the same pod, under another name (OVN-K does the same)."""
        for port in dev.host_step(lambda: ovs.ports(self.settings.bridge), "list OVS ports"):
            if port.name != rep and port.external_ids.get(IFACE_ID) == iface_id and NETWORK in port.external_ids:
                logger.info("removing stale port %s of %s", port.name, iface_id)
                self._unplug(port.name)

    def _ovn(self, ovs: Ovs) -> bool:
        if self.settings.ovn is not None:
            return self.settings.ovn
        return bool(dev.host_step(ovs.external_ids, "read Open_vSwitch external_ids").get("ovn-remote"))

    def _wait_ovn_installed(self, ovs: Ovs, rep: str, iface_id: str) -> None:
        deadline = time.monotonic() + self.settings.ovn_timeout
        while True:
            ids = dev.host_step(lambda: ovs.interface_external_ids(rep), f"read {rep}'s external_ids") or {}
            if ids.get(IFACE_ID) != iface_id:
                raise CniError(TRY_AGAIN_LATER, f"{rep} was taken over while waiting for OVN",
                               f"its iface-id is now {ids.get(IFACE_ID)!r}")
            if ids.get(OVN_INSTALLED) == "true":
                return
            if time.monotonic() >= deadline:
                raise CniError(TRY_AGAIN_LATER, f"OVN did not install flows for {iface_id} in time",
                               f"{rep} has no external_ids:ovn-installed after {self.settings.ovn_timeout:g}s; "
                               "is ovn-controller running?")
            time.sleep(self.settings.poll_interval)

    def _mac_of(self, name: str, netns: str | None = None) -> str:
        link = self.host.links.find(name, netns)
        return link.mac if link is not None else ""

    # --- DEL ---------------------------------------------------------------------------------------------------

    def delete(self, request: CniRequest) -> None:
        """Best effort and idempotent: whatever is missing is already undone."""
        ovs = self.host.ovs
        port = self._attachment(ovs, request.container_id, request.ifname) if ovs is not None else None
        ids = dict(port.external_ids) if port is not None else {}
        saved = Saved.from_ids(ids)
        if request.netns and self._netns_exists(request.netns):
            self._move_out(request.ifname, request.netns, ids.get(VF_NETDEV_NAME, ""), saved, only_ours=True)
        if port is not None:
            self._unplug(port.name, saved)
            if saved.mac_on and ids.get(DEVICE_ID):
                self._restore_vhost_mac_of(ids[DEVICE_ID], saved)
        self._ipam_delete(request, ids.get(IPAM_KIND))
        logger.info("DEL %s/%s %s: done", *request.pod, request.container_id[:12])

    def _attachment(self, ovs: Ovs, container_id: str, ifname: str) -> OvsPort | None:
        try:
            return self._port(ovs, lambda p: p.external_ids.get(SANDBOX) == container_id
                              and p.external_ids.get(POD_IF_NAME) == ifname)
        except CniError as exc:
            logger.warning("cannot read OVS ports: %s", exc)
            return None

    def _port(self, ovs: Ovs, match: Callable[[OvsPort], bool]) -> OvsPort | None:
        ports = dev.host_step(lambda: ovs.ports(), "list OVS ports")
        return next((p for p in ports if match(p)), None)

    def _netns_exists(self, netns: str) -> bool:
        try:
            return self.host.links.netns_exists(netns)
        except HostError:
            return False

    def _restore_vhost_mac_of(self, device_id: str, saved: Saved) -> None:
        try:
            vf = dev.resolve(self.host, device_id, None)
            self._restore_vhost_mac(vf.vdpa, vf.uplink, vf.vf_index, saved)
        except (CniError, HostError) as exc:
            logger.warning("restore the MAC of %s: %s", device_id, exc)

    def _move_out(self, ifname: str, netns: str, name: str, saved: Saved, *, only_ours: bool = False) -> None:
        """Back to the node's netns under its original name (a generated one when that is taken), with the MAC
        and MTU it had before the ADD."""
        links = self.host.links
        if links.find(ifname, netns) is None:
            return
        if only_ours:
            info = self.host.ethtool.driver_info(ifname, netns)
            if info.driver != dev.VIRTIO_NET or not info.bus_info:
                logger.info("%s in %s is not a vDPA netdev (%s); left alone", ifname, netns, info.driver)
                return
        target = name or dev.temporary_name(netns, ifname)
        if links.find(target) is not None:
            target = dev.temporary_name(netns, ifname)
        links.move_to_netns(ifname, None, netns, new_name=target)  # None: the node's own netns; the move downs it
        if saved.mac:
            links.set_mac(target, saved.mac)
        if saved.mtu:
            links.set_mtu(target, saved.mtu)

    def _unplug(self, rep: str, saved: Saved | None = None) -> None:
        """The representor down first, then its port (OVN-K's order: no traffic to a half-gone port), then its
        MTU as it was."""
        try:
            if self.host.links.find(rep) is not None:
                self.host.links.set_up(rep, False)
        except HostError as exc:
            logger.warning("bring %s down: %s", rep, exc)
        if self.host.ovs is not None:
            self.host.ovs.delete_port(rep)
        if saved is not None and saved.rep_mtu:
            self.host.links.set_mtu(rep, saved.rep_mtu)

    def _ipam_delete(self, request: CniRequest, kind: str | None) -> None:
        if request.config.ipam.get("type"):
            self._delegate(request).delete(request.env, request.config_bytes)
        elif self.node_ipam is not None and kind in (None, "node"):
            self.node_ipam.release(request.config.name, request.container_id, request.ifname)

    # --- CHECK -------------------------------------------------------------------------------------------------

    def check(self, request: CniRequest) -> None:
        if request.config.prev_result is None:
            raise CniError(INVALID_CONFIG, "CHECK needs prevResult", "the runtime passes the ADD's result")
        expected = parse_result(request.config.prev_result)
        ovs = self._ovs()
        port = self._attachment(ovs, request.container_id, request.ifname)
        if port is None:
            raise CniError(HOST_FAILURE, "the attachment's OVS port is gone",
                           f"no port on {self.settings.bridge} has sandbox {request.container_id} and "
                           f"pod-if-name {request.ifname}")
        rep = self.host.links.find(port.name)
        if rep is None or not rep.admin_up:
            raise CniError(HOST_FAILURE, f"representor {port.name} is missing or down")
        pod_iface = next((i for i in expected.interfaces if i.name == request.ifname and i.sandbox), None)
        if port.external_ids.get(VF_NETDEV_NAME):
            self._check_netdev(request, expected, pod_iface)
        if request.config.ipam.get("type"):
            self._delegate(request).check(request.env, request.config_bytes)
        elif self.node_ipam is not None and port.external_ids.get(IPAM_KIND) == "node" \
                and self.node_ipam.lease_of(request.config.name, request.container_id, request.ifname) is None:
            raise CniError(HOST_FAILURE, "the attachment's address lease is gone")

    def _check_netdev(self, request: CniRequest, expected: Result, pod_iface: Interface | None) -> None:
        links, netns, ifname = self.host.links, request.netns, request.ifname
        link = links.find(ifname, netns)
        if link is None:
            raise CniError(HOST_FAILURE, f"{ifname} is missing from {netns}")
        if pod_iface is not None and pod_iface.mac and pod_iface.mac.lower() != link.mac:
            raise CniError(HOST_FAILURE, f"{ifname} has MAC {link.mac}, prevResult says {pod_iface.mac}")
        have = {str(a) for a in dev.host_step(lambda: links.addresses(ifname, netns), f"list {ifname}'s addresses")}
        for ip, index in expected.ips:
            owner = expected.interfaces[index] if index is not None and index < len(expected.interfaces) else None
            if (owner is None or owner.name == ifname) and str(ip.address) not in have:
                raise CniError(HOST_FAILURE, f"{ifname} lacks {ip.address}", f"it has {sorted(have) or 'none'}")
        routes = dev.host_step(lambda: links.routes(netns), f"list routes in {netns}")
        for route in expected.routes:
            if not any(r.dst == str(route.dst) for r in routes):
                raise CniError(HOST_FAILURE, f"the route to {route.dst} is missing from {netns}")

    # --- STATUS and GC -----------------------------------------------------------------------------------------

    def status(self, request: CniRequest) -> None:
        if self.host.ovs is None:
            raise CniError(NOT_AVAILABLE, "no OVSDB connection", "Open vSwitch is not running on this node")
        try:
            bridges = self.host.ovs.bridges()
        except HostError as exc:
            raise CniError(LIMITED_CONNECTIVITY, "OVSDB does not answer", str(exc)) from exc
        if self.settings.bridge not in bridges:
            raise CniError(NOT_AVAILABLE, f"OVS bridge {self.settings.bridge} does not exist")
        if request.config.ipam.get("type"):
            self._delegate(request).status(request.env, request.config_bytes)

    def gc(self, request: CniRequest) -> None:
        """Attachments of this network that the runtime no longer lists: their ports and leases go (the pod's
        netns is gone, and with it the netdev went back to the node: the kernel returns physical netdevs)."""
        keep = set(request.config.valid_attachments or ())
        errors: list[str] = []
        ovs = self.host.ovs
        for port in (self._ports_of(ovs, request.config.name) if ovs is not None else []):
            attachment = (port.external_ids.get(SANDBOX, ""), port.external_ids.get(POD_IF_NAME, ""))
            if attachment in keep:
                continue
            logger.info("GC: %s %s of %s", port.name, attachment, request.config.name)
            try:
                self._unplug(port.name, Saved.from_ids(port.external_ids))
            except HostError as exc:
                errors.append(str(exc))
        if request.config.ipam.get("type"):
            self._delegate(request).gc(request.env, request.config_bytes)
        elif self.node_ipam is not None:
            self.node_ipam.gc(request.config.name, keep)
        if errors:
            raise CniError(HOST_FAILURE, "GC could not remove every stale port", "; ".join(errors))

    def _ports_of(self, ovs: Ovs, network: str) -> Sequence[OvsPort]:
        ports = dev.host_step(lambda: ovs.ports(self.settings.bridge), "list OVS ports")
        return [p for p in ports if p.external_ids.get(NETWORK) == network]


def pod_ip_networks(mapping: Mapping[str, Any]) -> str | None:
    """The pod's `k8s.ovn.org/pod-networks` annotation from its metadata, if it has one."""
    annotations = (mapping.get("metadata") or {}).get("annotations") or {}
    value = annotations.get("k8s.ovn.org/pod-networks")
    return value if isinstance(value, str) else None
