"""What a SriovNetworkNodeState's fields mean, beyond their JSON shape: the eswitch modes and VF device types
upstream's daemon knows, and upstream's drift predicate. The renderer and the node daemon both read a NodeState,
so these facts live here rather than in either of them."""

from __future__ import annotations

from vdpa_operator.api.models import Interface, InterfaceExt
from vdpa_operator.api.selection import index_in_range

ESWITCH_LEGACY = "legacy"
ESWITCH_SWITCHDEV = "switchdev"
ESWITCH_MODES = (ESWITCH_LEGACY, ESWITCH_SWITCHDEV)
DEVICE_TYPE_NETDEVICE = "netdevice"
DEVICE_TYPE_VFIO_PCI = "vfio-pci"
DPDK_DRIVERS = ("igb_uio", "vfio-pci", "uio_pci_generic")
"""VF drivers that take the VF away from the kernel's network stack (upstream `DpdkDrivers`)."""
UNINITIALIZED_NODE_GUID = "0000:0000:0000:0000"
LINK_ADMIN_STATE_DOWN = "down"


def effective_eswitch_mode(mode: str) -> str:
    """An unset eSwitch mode means legacy (upstream `GetEswitchModeFromSpec`/`FromStatus`)."""
    return mode or ESWITCH_LEGACY


def need_to_update_sriov(iface_spec: Interface, iface_status: InterfaceExt) -> bool:
    """Whether a PF as observed differs from its spec in a way the daemon must fix (upstream `NeedToUpdateSriov`).

    Only VFs inside some VF group are checked, against the first group containing them."""
    if iface_spec.mtu > 0 and iface_spec.mtu > iface_status.mtu:
        return True
    if effective_eswitch_mode(iface_status.eswitch_mode) != effective_eswitch_mode(iface_spec.eswitch_mode):
        return True
    if iface_spec.num_vfs != iface_status.num_vfs:
        return True
    if iface_status.link_admin_state == LINK_ADMIN_STATE_DOWN:
        return True
    if iface_spec.num_vfs <= 0:
        return False
    link_type = iface_status.link_type.lower()
    for vf in iface_status.vfs:
        group = next((g for g in iface_spec.vf_groups if index_in_range(vf.vf_id, g.vf_range)), None)
        if group is None:
            continue
        if vf.driver == "":
            return True
        if group.device_type not in ("", DEVICE_TYPE_NETDEVICE):
            if group.device_type != vf.driver:
                return True
        else:
            if vf.driver in DPDK_DRIVERS:
                return True
            if vf.mtu != 0 and group.mtu != 0 and vf.mtu != group.mtu:
                return True
            needs_guid = (link_type == "eth" and group.is_rdma) or link_type == "ib"
            if needs_guid and vf.guid == UNINITIALIZED_NODE_GUID:
                return True
            if iface_spec.externally_managed:
                # upstream re-applies to be sure the admin MAC is still set
                return True
        if group.vdpa_type != vf.vdpa_type:
            return True
    return False
