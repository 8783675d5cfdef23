"""The VF a pod was given, as the kernel shows it: its vDPA device and binding, its PF, its representor, and the
moves of a virtio netdev into a pod's netns and back. Every read and change goes through the Host port.

The vDPA device is found by its parent (management device `pci/<VF>`, govdpa's lookup); its name is free-form
(ours is `vdpa:<VF>`), which is also tried, for devices with no PCI parent such as vdpa_sim_net's. Which
driver it is bound to decides virtio or vhost; a device-info file that says otherwise is an error, not a hint
to follow (OVN-Kubernetes follows the file and then moves the wrong netdev: dataplane.md §5.3).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from vdpa_operator.cni.errors import DEVICE_MISMATCH, HOST_FAILURE, INVALID_CONFIG, CniError
from vdpa_operator.host.errors import HostError
from vdpa_operator.host.port import Host
from vdpa_operator.host.switchdev import pf_netdevs
from vdpa_operator.host.types import VdpaDevice, pci_address, vdpa_name

logger = logging.getLogger(__name__)

VIRTIO_NET = "virtio_net"


@dataclass(frozen=True)
class VdpaVf:
    """What ADD needs to know about the device before it changes anything."""

    device_id: str
    vdpa: str
    """The vDPA device's name."""
    kind: str
    """`virtio` or `vhost`, from the bound driver."""
    netdev: str | None = None
    """virtio: its virtio_net netdev in the host netns (None once moved away)."""
    chardev: str | None = None
    """vhost: `/dev/vhost-vdpa-N`."""
    pf: str = ""
    uplink: str = ""
    vf_index: int = -1
    representor: str = ""


def check_device_id(device_id: str) -> str:
    """The canonical PCI address; CniError 7 for anything else (no path tricks reach sysfs)."""
    if not device_id:
        raise CniError(INVALID_CONFIG, "deviceID missing",
                       "the config needs the VF's PCI address in `deviceID` (Multus injects it from the "
                       "NetworkAttachmentDefinition's k8s.v1.cni.cncf.io/resourceName) or runtimeConfig.deviceID")
    try:
        return pci_address(device_id)
    except ValueError as exc:
        raise CniError(INVALID_CONFIG, "deviceID is not a PCI address", str(exc)) from None


def find_vdpa(host: Host, device_id: str) -> VdpaDevice | None:
    """The vDPA device whose management device is `pci/<device_id>`, else the one named `vdpa:<device_id>`."""
    devices = host.vdpa.devices()
    for device in devices:
        if (device.mgmtdev.bus, device.mgmtdev.name) == ("pci", device_id):
            return device
    return next((d for d in devices if d.name == vdpa_name(device_id)), None)  # type: ignore[arg-type]


def resolve(host: Host, device_id: str, device_info: dict[str, Any] | None, *, need_vf: bool = True) -> VdpaVf:
    """Everything about the VF, read and checked; CniError naming what does not fit. `need_vf=False` skips the
    PF and representor (a vDPA device with no VF parent, such as vdpa_sim_net's)."""
    device_id = check_device_id(device_id)
    device = find_vdpa(host, device_id)
    if device is None:
        raise CniError(DEVICE_MISMATCH, f"{device_id} has no vDPA device",
                       f"no vDPA device has management device pci/{device_id} or is named vdpa:{device_id}; "
                       "is the node's SriovNetworkNodeState applied (vdpaType in the policy)?")
    binding = host_step(lambda: host.vdpa.binding(device.name), f"read the binding of {device.name}")
    kind = binding.vdpa_type
    if not kind:
        raise CniError(DEVICE_MISMATCH, f"{device.name} is bound to {binding.driver or 'no driver'}",
                       "a pod's vDPA device must be bound to virtio_vdpa or vhost_vdpa")
    _cross_check(device.name, kind, device_info)
    vf = VdpaVf(device_id, device.name, kind, netdev=binding.virtio_netdev, chardev=binding.vhost_chardev)
    return _with_representor(host, vf) if need_vf else vf


def _cross_check(name: str, kind: str, device_info: dict[str, Any] | None) -> None:
    """The device plugin's device-info file describes what the pod was given; it must agree with the kernel."""
    if not device_info or device_info.get("type") != "vdpa":
        return
    said = (device_info.get("vdpa") or {}).get("driver")
    if said and said != kind:
        raise CniError(DEVICE_MISMATCH, f"{name} is a {kind} device, the device-info file says {said}",
                       "the VF was rebound after the device plugin allocated it; recreate the pod")


def _with_representor(host: Host, vf: VdpaVf) -> VdpaVf:
    address = pci_address(vf.device_id)
    fn = host_step(lambda: host.pci.get_function(address), f"read PCI function {address}")
    if fn.physfn is None:
        raise CniError(DEVICE_MISMATCH, f"{address} is not a VF", "deviceID must be the PCI address of a VF")
    physfn = fn.physfn
    pf = host_step(lambda: host.pci.get_function(physfn), f"read PF {physfn}")
    index = next((v.index for v in host_step(lambda: host.pci.list_vfs(pf.address), f"list VFs of {pf.address}")
                  if v.address == address), -1)
    netdevs = host_step(lambda: pf_netdevs(host, pf), f"read the netdevs of PF {pf.address}")
    representor = netdevs.representors.get(index, "")
    if not representor:
        raise CniError(DEVICE_MISMATCH, f"{address} (VF {index} of {netdevs.uplink or pf.address}) has no "
                       "representor", "the PF's eswitch must be in switchdev mode (eSwitchMode in the policy)")
    return VdpaVf(vf.device_id, vf.vdpa, vf.kind, vf.netdev, vf.chardev, pf=pf.address, uplink=netdevs.uplink,
                  vf_index=index, representor=representor)


def confirm_virtio_netdev(host: Host, vf: VdpaVf) -> str:
    """The virtio netdev of the device, confirmed by `ethtool -i` (driver virtio_net, bus-info = the vDPA
    device's name): the kernel's own account of which netdev it is."""
    if vf.netdev is None:
        raise CniError(HOST_FAILURE, f"{vf.vdpa} has no virtio netdev in the node's netns",
                       "it is in use by another pod, or virtio_net is not loaded")
    info = host_step(lambda: host.ethtool.driver_info(vf.netdev or ""), f"read driver info of {vf.netdev}")
    if info.driver != VIRTIO_NET or info.bus_info != vf.vdpa:
        raise CniError(DEVICE_MISMATCH, f"{vf.netdev} is not the virtio netdev of {vf.vdpa}",
                       f"ethtool -i says driver {info.driver}, bus-info {info.bus_info}")
    return vf.netdev


def move_into(host: Host, netdev: str, netns: str, ifname: str) -> None:
    """Into the pod's netns as `ifname`, in one request: the kernel takes the new name there, so the netdev's
    current name may be taken in the pod (what OVN-K's `safeMoveIfToNetns` renames around)."""
    host_step(lambda: host.links.move_to_netns(netdev, netns, new_name=ifname), f"move {netdev} into {netns} as "
              f"{ifname}")


def temporary_name(container_id: str, name: str) -> str:
    """A name no other netdev has: `vdpa` and a hash of the container and the netdev (15 characters)."""
    return "vdpa" + hashlib.sha256(f"{container_id}/{name}".encode()).hexdigest()[:11]


def host_step(call: Any, what: str) -> Any:
    """A Host call whose failure is a CNI error 100 naming it (the HostError says operation, object, errno)."""
    try:
        return call()
    except HostError as exc:
        raise CniError(HOST_FAILURE, f"{what} failed", str(exc)) from exc
