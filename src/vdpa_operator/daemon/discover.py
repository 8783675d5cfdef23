"""Discovery (upstream-operator.md §4.2, `DiscoverSriovDevices`): the node's PFs of supported NICs as
`status.interfaces`, in upstream's JSON, plus the host facts the plan compares against. Reads only."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TypeVar

from vdpa_operator.api.models import InterfaceExt, VirtualFunction
from vdpa_operator.api.nics import SupportedNics
from vdpa_operator.daemon.observed import Observation, PfFacts
from vdpa_operator.daemon.plan import MANAGED_MODULES
from vdpa_operator.daemon.steps import FLOW_STEERING_PARAM, HW_TC_OFFLOAD, OVS_HW_OFFLOAD_KEY
from vdpa_operator.daemon.store import DaemonStore
from vdpa_operator.host.errors import HostError
from vdpa_operator.host.port import Host
from vdpa_operator.host.switchdev import eswitch_mode, pf_netdevs
from vdpa_operator.host.types import DevlinkHandle, EswitchMode, Link, PciFunction, VdpaBinding, Vf, vdpa_name

T = TypeVar("T")

logger = logging.getLogger(__name__)

_LINK_TYPE = {"ether": "ETH", "infiniband": "IB"}


def discover(host: Host, nics: SupportedNics, store: DaemonStore, *, dev_mode: bool = False) -> Observation:
    """Everything the plan needs, read once."""
    records = store.records()
    bindings = _vdpa_bindings(host)
    interfaces: list[InterfaceExt] = []
    facts: dict[str, PfFacts] = {}
    for fn in host.pci.list_functions():
        if fn.physfn is not None:
            continue
        if not dev_mode and not nics.is_supported_model(fn.vendor, fn.device):
            continue
        iface, pf_facts = _discover_pf(host, fn, bindings)
        record = records.get(fn.address)
        iface.externally_managed = record.externally_managed if record is not None else False
        interfaces.append(iface)
        facts[fn.address] = pf_facts
    ovs_present, hw_offload, problem = _ovs(host)
    return Observation(
        interfaces=tuple(interfaces),
        pfs=facts,
        udev_rules=dict(host.udev.rules()),
        loaded_modules=frozenset(m for m in MANAGED_MODULES if host.modules.is_loaded(m)),
        ovs_present=ovs_present,
        ovs_hw_offload=hw_offload,
        ovs_problem=problem,
        ovs_offload_owned=store.owns_ovs_offload(),
        records=records,
        initial=store.initial_state(),
    )


def _discover_pf(host: Host, fn: PciFunction, bindings: dict[str, VdpaBinding]) -> tuple[InterfaceExt, PfFacts]:
    sriov = host.pci.sriov(fn.address)
    mode = eswitch_mode(host, fn.address) if sriov is not None else str(EswitchMode.LEGACY)
    netdevs = pf_netdevs(host, fn, mode=mode)
    name = netdevs.uplink
    link = host.links.find(name) if name else None
    iface = InterfaceExt(
        pci_address=fn.address, vendor=fn.vendor, device_id=fn.device, driver=fn.driver or "", name=name,
    )
    if link is not None:
        _fill_link(iface, link)
        speed = host.links.speed(name)
        iface.link_speed = f"{speed} Mb/s" if speed is not None else ""
    if sriov is None:
        return iface, PfFacts(switch_port=netdevs.uplink_port)
    iface.total_vfs = sriov.totalvfs
    iface.num_vfs = sriov.numvfs
    iface.eswitch_mode = mode
    vdpa: dict[str, str | None] = {}
    for vf in host.pci.list_vfs(fn.address):
        iface.vfs.append(_discover_vf(host, vf, netdevs.representors, bindings))
        binding = bindings.get(vdpa_name(vf.address))
        if binding is not None:
            vdpa[vf.address] = binding.driver
    facts = PfFacts(
        switch_port=netdevs.uplink_port,
        hw_tc_offload=_optional(lambda: host.ethtool.feature(name, HW_TC_OFFLOAD)) if name else None,
        flow_steering=_optional(lambda: host.devlink.param(DevlinkHandle.pci(fn.address), FLOW_STEERING_PARAM)),
        admin_macs=(_optional(lambda: host.links.vf_macs(name)) or {}) if name and sriov.numvfs else {},
        vdpa=vdpa,
    )
    return iface, facts


def _fill_link(iface: InterfaceExt, link: Link) -> None:
    iface.mtu = link.mtu
    iface.mac = link.mac
    iface.link_type = _LINK_TYPE.get(link.link_type, link.link_type)
    iface.link_admin_state = "up" if link.admin_up else "down"
    iface.alt_names = list(link.altnames)


def _discover_vf(host: Host, vf: Vf, representors: Mapping[int, str],
                 vdpa: dict[str, VdpaBinding]) -> VirtualFunction:
    fn = host.pci.get_function(vf.address)
    result = VirtualFunction(
        pci_address=vf.address, vf_id=vf.index, driver=fn.driver or "", vendor=fn.vendor, device_id=fn.device,
        representor_name=representors.get(vf.index, ""),
    )
    if fn.netdevs:
        link = host.links.find(fn.netdevs[0])
        if link is not None:
            result.name, result.mac, result.mtu = link.name, link.mac, link.mtu
    binding = vdpa.get(vdpa_name(vf.address))
    if binding is not None:
        result.vdpa_type = binding.vdpa_type
    return result


def _vdpa_bindings(host: Host) -> dict[str, VdpaBinding]:
    """Every vdpa device on the node, by name, with its bus driver (upstream `DiscoverVDPAType` reads it)."""
    return {d.name: host.vdpa.binding(d.name) for d in host.vdpa.devices()}


def _ovs(host: Host) -> tuple[bool, str | None, str]:
    if host.ovs is None:
        return False, None, "no OVSDB socket configured"
    try:
        return True, host.ovs.other_config().get(OVS_HW_OFFLOAD_KEY), ""
    except HostError as exc:
        return False, None, str(exc)


def _optional(read: Callable[[], T]) -> T | None:
    """A fact the plan can do without: a failure reads as "unknown" and is logged."""
    try:
        return read()
    except HostError as exc:
        logger.debug("unreadable, treated as unknown: %s", exc)
        return None
