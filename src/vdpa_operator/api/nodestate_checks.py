"""Which values of a SriovNetworkNodeState spec the node daemon can act on, checked as a whole before anything
is planned: a value it cannot act on is refused with the field's path, instead of failing halfway through an
apply (a negative `numVfs`), crashing the planner (`vdpaType: evil`) or reconfiguring the node on every pass
(the same PF twice).

Only values the daemon cannot act on are refused, not every combination admission refuses: the operator
renders stored policies without admission, as upstream does, so a spec may ask for a vDPA type on a legacy PF
or on a vfio-pci group, which the daemon takes as upstream's does (it creates no vDPA device there).
`sriov_totalvfs` comes from the node, so the caller passes what it observed; without it, `numVfs` is only
checked for being negative.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from vdpa_operator.api.decoding import FieldIssue, Loc, json_path
from vdpa_operator.api.models import Interface, SriovNetworkNodeStateSpec, VfGroup
from vdpa_operator.api.nodestate import DEVICE_TYPE_NETDEVICE, DPDK_DRIVERS, ESWITCH_MODES

PCI_ADDRESS = re.compile(r"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]")
"""The kernel's canonical form, as the node reports `pciAddress` (lower case, with the domain)."""
LINK_TYPES = ("eth", "ib")
"""Compared without case, as upstream does."""
VDPA_TYPES = ("virtio", "vhost")
DEVICE_TYPES = (DEVICE_TYPE_NETDEVICE, *DPDK_DRIVERS)
MIN_MTU, MAX_MTU = 68, 65535
"""ETH_MIN_MTU and ETH_MAX_MTU: no netdev takes an MTU outside them."""
IFNAMSIZ = 16
"""A netdev name is at most IFNAMSIZ - 1 bytes (the kernel's `dev_valid_name`)."""


def spec_problems(spec: SriovNetworkNodeStateSpec, total_vfs: Mapping[str, int] | None = None) -> list[FieldIssue]:
    """Every value in `spec` the daemon cannot act on, each naming its field (`spec.interfaces[1].numVfs`).
    `total_vfs` maps the PCI addresses of PFs found on the node to their `sriov_totalvfs`."""
    issues: list[FieldIssue] = []
    seen: dict[str, int] = {}
    for index, iface in enumerate(spec.interfaces):
        at: Loc = ("spec", "interfaces", index)
        issues += _interface_problems(iface, at, total_vfs or {})
        first = seen.setdefault(iface.pci_address, index)
        if first != index:
            issues.append(FieldIssue((*at, "pciAddress"), f"{iface.pci_address} is also "
                                     f"{json_path(('spec', 'interfaces', first))}: give each PF one entry "
                                     "(merge their vfGroups)"))
    return issues


def _interface_problems(iface: Interface, at: Loc, total_vfs: Mapping[str, int]) -> list[FieldIssue]:
    issues = []
    if not PCI_ADDRESS.fullmatch(iface.pci_address):
        issues.append(FieldIssue((*at, "pciAddress"), f"{iface.pci_address!r} is not a PCI address; write it as "
                                 "the node reports it, DDDD:BB:DD.F in lower case (e.g. 0000:65:00.0)"))
    if iface.name and (problem := netdev_name_problem(iface.name)):
        issues.append(FieldIssue((*at, "name"), f"{iface.name!r} {problem}"))
    total = total_vfs.get(iface.pci_address)
    if iface.num_vfs < 0:
        issues.append(FieldIssue((*at, "numVfs"), f"{iface.num_vfs} is negative; use 0 (no VFs) or more"))
    elif total is not None and iface.num_vfs > total:
        issues.append(FieldIssue((*at, "numVfs"), f"{iface.num_vfs} is more than the {total} VFs "
                                 f"{iface.pci_address} supports (sriov_totalvfs); lower numVfs in the policy or "
                                 "enable more VFs in the NIC firmware"))
    if problem := _mtu_problem(iface.mtu):
        issues.append(FieldIssue((*at, "mtu"), problem))
    if iface.link_type and iface.link_type.lower() not in LINK_TYPES:
        issues.append(FieldIssue((*at, "linkType"), f"{iface.link_type!r} is not a link type; use eth or ib, or "
                                 "leave it out"))
    if iface.eswitch_mode and iface.eswitch_mode not in ESWITCH_MODES:
        issues.append(FieldIssue((*at, "eSwitchMode"), f"{iface.eswitch_mode!r} is not an eswitch mode; use "
                                 f"{' or '.join(ESWITCH_MODES)}, or leave it out (legacy)"))
    ranges: list[tuple[int, int, int]] = []
    for index, group in enumerate(iface.vf_groups):
        group_at: Loc = (*at, "vfGroups", index)
        issues += _group_problems(group, group_at)
        issues += _range_problems(group, index, at, iface, ranges)
    return issues


def _group_problems(group: VfGroup, at: Loc) -> list[FieldIssue]:
    issues = []
    if group.device_type and group.device_type not in DEVICE_TYPES:
        issues.append(FieldIssue((*at, "deviceType"), f"{group.device_type!r} is not a device type; use "
                                 f"{', '.join(DEVICE_TYPES)}, or leave it out (netdevice)"))
    if group.vdpa_type and group.vdpa_type not in VDPA_TYPES:
        issues.append(FieldIssue((*at, "vdpaType"), f"{group.vdpa_type!r} is not a vDPA type; use "
                                 f"{' or '.join(VDPA_TYPES)}, or leave it out"))
    if problem := _mtu_problem(group.mtu):
        issues.append(FieldIssue((*at, "mtu"), problem))
    return issues


def _range_problems(group: VfGroup, index: int, at: Loc, iface: Interface,
                    seen: list[tuple[int, int, int]]) -> list[FieldIssue]:
    """`vfRange` of the group at `index` of the interface at `at` is `first-last`, inside the PF's VFs, and
    shares no VF with an earlier group (`seen`: (first, last, index) of the valid ranges so far, extended here)."""
    where = (*at, "vfGroups", index, "vfRange")
    match = re.fullmatch(r"(\d+)-(\d+)", group.vf_range)
    if match is None:
        return [FieldIssue(where, f"{group.vf_range!r} is not a VF range; write first-last, e.g. 0-3")]
    first, last = int(match[1]), int(match[2])
    if first > last:
        return [FieldIssue(where, f"{group.vf_range} starts after it ends")]
    if last >= max(iface.num_vfs, 0):
        vfs = f"VFs 0-{iface.num_vfs - 1}" if iface.num_vfs > 1 else ("VF 0" if iface.num_vfs == 1 else "no VFs")
        return [FieldIssue(where, f"{group.vf_range} is outside the PF's {vfs} (numVfs {iface.num_vfs})")]
    for other_first, other_last, other in seen:
        if max(first, other_first) <= min(last, other_last):
            other_at = json_path((*at, "vfGroups", other, "vfRange"))
            return [FieldIssue(where, f"{group.vf_range} overlaps {other_at} ({other_first}-{other_last}): a VF "
                               "belongs to one group")]
    seen.append((first, last, index))
    return []


def _mtu_problem(mtu: int) -> str | None:
    if mtu == 0 or MIN_MTU <= mtu <= MAX_MTU:
        return None
    return f"{mtu} is not an MTU; use {MIN_MTU}-{MAX_MTU}, or 0 to leave the MTU as it is"


def netdev_name_problem(name: str) -> str | None:
    """Why the kernel would refuse `name` for a netdev (`dev_valid_name`), or None."""
    if len(name.encode()) >= IFNAMSIZ:
        return f"is longer than {IFNAMSIZ - 1} bytes, the longest netdev name"
    if name in (".", ".."):
        return "is not a netdev name"
    if any(c in "/:" or c.isspace() for c in name):
        return "is not a netdev name: it contains / or : or white space"
    return None
