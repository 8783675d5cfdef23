"""One scan of the node through the Host port: the net devices the plugin may offer, with their vDPA devices.

Which functions are candidates is upstream's (`AddTargetDevices`): PCI class 0x02, except a function whose
netdev carries the default route and a PF with VFs configured (its VFs are offered instead). Each VF is read
as upstream's `pciNetDevice` reads it: vendor, device, driver, PF address and name (the uplink in switchdev,
else the PF's netdev), VF index, link type (its netdev's, else its PF's), NUMA node, ACPI index; plus what the
Host shows of its vDPA device (by management device `pci/<VF>`, as govdpa looks it up), its binding and char
device, and its representor.

The node-wide reads are one Host call each (one link list, one vDPA device dump, one route dump); per PF its
VFs and switchdev netdevs, per vDPA device its binding. The service probes only the vDPA devices (`vdpa_devices`:
a dump and each device's driver and char device, a fraction of a scan)
on a short timer, and runs the whole scan when the probe changes and otherwise on a slower one: what makes a VF
healthy or not is seen at once, the rest (new VFs, link types) a little later at worst.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from vdpa_operator.deviceplugin.devices import Inventory, NetDevice, VdpaInfo
from vdpa_operator.host.errors import HostError
from vdpa_operator.host.port import Host
from vdpa_operator.host.switchdev import PfNetdevs, pf_netdevs
from vdpa_operator.host.types import Link, PciFunction

logger = logging.getLogger(__name__)

DEFAULT_ROUTES = ("0.0.0.0/0", "::/0")


def scan(host: Host, vdpa: Mapping[str, VdpaInfo] | None = None) -> Inventory:
    """The whole node; `vdpa` when the caller has just read `vdpa_devices`."""
    functions = host.pci.list_functions()
    links = {link.name: link for link in host.links.list()}
    routed = {route.dev for route in host.links.routes() if route.dst in DEFAULT_ROUTES and route.dev}
    by_address = {fn.address: fn for fn in functions}
    vdpa = vdpa_devices(host) if vdpa is None else vdpa
    pfs: dict[str, tuple[PfNetdevs, dict[str, int]]] = {}
    devices: dict[str, NetDevice] = {}
    for fn in functions:
        if routed.intersection(fn.netdevs):
            logger.debug("%s carries the default route: not offered", fn.address)
            continue
        sriov = None if fn.physfn is not None else host.pci.sriov(fn.address)
        if sriov is not None and sriov.numvfs > 0:
            continue  # a PF with VFs: its VFs are the devices
        pf_fn = by_address.get(fn.physfn) if fn.physfn is not None else None
        if fn.physfn is not None and fn.physfn not in pfs and pf_fn is not None:
            pfs[fn.physfn] = _pf(host, pf_fn)
        pf, indexes = pfs.get(fn.physfn or "", (None, {}))
        devices[fn.address] = _device(fn, pf, indexes.get(fn.address, -1), links, vdpa.get(fn.address))
    return Inventory(devices=devices, vhost_net=host.dev.char_device("vhost-net"),
                     tun=host.dev.char_device("net/tun"))


def _pf(host: Host, pf: PciFunction) -> tuple[PfNetdevs, dict[str, int]]:
    """The PF's uplink and representors, and its VFs' indexes."""
    return pf_netdevs(host, pf), {vf.address: vf.index for vf in host.pci.list_vfs(pf.address)}


def _device(fn: PciFunction, pf: PfNetdevs | None, vf_index: int, links: Mapping[str, Link],
            vdpa: VdpaInfo | None) -> NetDevice:
    pf_name = pf.uplink if pf is not None else ""
    link = next((links[n] for n in fn.netdevs if n in links), None) or links.get(pf_name)
    return NetDevice(
        address=fn.address, vendor=fn.vendor, device=fn.device, driver=fn.driver or "",
        pf_address=fn.physfn or "", pf_name=pf_name, vf_index=vf_index,
        link_type=link.link_type if link is not None else "", numa_node=fn.numa_node, acpi_index=fn.acpi_index,
        representor=pf.representors.get(vf_index, "") if pf is not None else "", vdpa=vdpa,
    )


def vdpa_devices(host: Host) -> dict[str, VdpaInfo]:
    """VF PCI address → its vDPA device (govdpa `GetVdpaDevicesByPciAddress("pci/"+VF)`; the first by name
    when there are several, as upstream takes the first)."""
    found: dict[str, VdpaInfo] = {}
    for device in host.vdpa.devices():
        if device.mgmtdev.bus != "pci" or device.mgmtdev.name in found:
            continue
        try:
            binding = host.vdpa.binding(device.name, virtio_netdev=False)  # a probe runs every 50 ms
        except HostError as exc:  # deleted between the dump and the read, or a half-made char device
            logger.debug("vdpa %s unreadable: %s", device.name, exc)
            continue
        found[device.mgmtdev.name] = VdpaInfo(device.name, binding.driver, binding.vhost_chardev)
    return found
