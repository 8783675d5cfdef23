"""Resource pools: which devices each resource offers, and whether each is healthy. Pure.

Selection is upstream's (`GetFilteredDevices`): the selectors' lists in upstream's order, each a filter that
keeps a device when its attribute is one of the values (empty list: no filter); `pfNames`/`rootDevices` match
the PF's name (ignoring case) or PCI address with an optional `#first-last,n` VF-index range; `vdpaType`
keeps a VF only while its vDPA device exists and is bound to the matching driver (and, for vhost, its char
device exists); a device an earlier selector or resource took is not offered again.

Beyond upstream, pools are rebuilt on every scan instead of once at start, and membership is remembered: a
device that was in a pool and now fails only the vDPA check (device deleted, rebound, char device gone) stays
in the pool as Unhealthy — kubelet then stops handing it out — until it is healthy again or another pool takes
it; a device whose PCI function is gone leaves the pool.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from vdpa_operator.deviceplugin.config import NetSelector, ResourceConfig, parse_function_range
from vdpa_operator.deviceplugin.devices import Inventory, NetDevice
from vdpa_operator.host.types import VDPA_DRIVER_FOR_TYPE

HEALTHY = "Healthy"
UNHEALTHY = "Unhealthy"


@dataclass(frozen=True, slots=True)
class Member:
    device: NetDevice
    selector: NetSelector
    """The selector that took it: decides what Allocate adds (vDPA char device, vhost-net)."""
    problem: str = ""
    """Why it is Unhealthy; "" when healthy."""

    @property
    def healthy(self) -> bool:
        return not self.problem

    @property
    def health(self) -> str:
        return UNHEALTHY if self.problem else HEALTHY

    @property
    def vhost_chardev(self) -> str | None:
        """`/dev/vhost-vdpa-N` when this member serves a vhost pool (what Allocate mounts), else None."""
        vdpa = self.device.vdpa
        return vdpa.chardev if self.selector.vdpa_type == "vhost" and vdpa is not None else None


@dataclass(frozen=True, slots=True)
class Pool:
    config: ResourceConfig
    members: Mapping[str, Member]
    """By device ID (the VF's PCI address), in address order."""

    def listed(self) -> tuple[tuple[str, str, int | None], ...]:
        """What ListAndWatch sends, as a comparable value: (ID, health, NUMA node or None)."""
        return tuple((m.device.address, m.health, None if self.config.exclude_topology else m.device.numa_node)
                     for m in self.members.values())


def build_pools(resources: Sequence[ResourceConfig], inventory: Inventory,
                previous: Mapping[str, Pool] | None = None) -> list[Pool]:
    """Pools in config order. `previous` (by resource name) is the last scan's: its members that now fail only
    the vDPA check stay as Unhealthy."""
    previous = previous or {}
    taken: set[str] = set()
    healthy: list[dict[str, Member]] = []
    for resource in resources:
        chosen: dict[str, Member] = {}
        for selector in resource.selectors:
            for device in select(inventory.devices.values(), selector):
                if device.address not in taken and not vdpa_problem(device, selector.vdpa_type):
                    taken.add(device.address)
                    chosen[device.address] = Member(device, selector)
        healthy.append(chosen)
    pools = []
    for resource, chosen in zip(resources, healthy, strict=True):
        before = previous.get(resource.resource_name)
        if before is not None:
            chosen.update(_still_members(resource, before, inventory, taken))
        pools.append(Pool(resource, dict(sorted(chosen.items()))))
    return pools


def _still_members(resource: ResourceConfig, before: Pool, inventory: Inventory,
                   taken: set[str]) -> dict[str, Member]:
    """Last scan's members that nobody took healthy now, whose function exists and still matches a selector
    of the resource apart from `vdpaType`: kept, with what is wrong."""
    kept = {}
    for address in before.members:
        device = inventory.devices.get(address)
        if device is None or address in taken:
            continue
        for selector in resource.selectors:
            if select((device,), selector):
                kept[address] = Member(device, selector, vdpa_problem(device, selector.vdpa_type))
                break
    return kept


def vdpa_problem(device: NetDevice, vdpa_type: str) -> str:
    """Why `device` cannot serve a `vdpa_type` pool now; "" when it can (or the pool is not a vDPA pool)."""
    if not vdpa_type:
        return ""
    vdpa = device.vdpa
    want = VDPA_DRIVER_FOR_TYPE.get(vdpa_type, "")
    if vdpa is None:
        return f"{device.address} has no vDPA device"
    if vdpa.driver != want:
        return f"{vdpa.name} is bound to {vdpa.driver or 'no driver'}, the pool serves {vdpa_type} ({want})"
    if vdpa_type == "vhost" and vdpa.chardev is None:
        return f"{vdpa.name} is bound to vhost_vdpa but has no /dev/vhost-vdpa-N"
    return ""


# --- selectors ---------------------------------------------------------------------------------------------------


def _among(values: Sequence[str], attribute: Callable[[NetDevice], str]) -> Callable[[NetDevice], bool]:
    return lambda device: attribute(device) in values


def _function_range(entries: Sequence[str], pf: Callable[[NetDevice], str]) -> Callable[[NetDevice], bool]:
    """`pfNames`/`rootDevices` (upstream `getItem` + `isSelected`): the first entry naming the device's PF
    (ignoring case) decides, by its VF-index range."""
    ranges = [parse_function_range(entry) for entry in entries]

    def matches(device: NetDevice) -> bool:
        name = pf(device)
        if not name:
            return False
        entry = next((r for r in ranges if r.pf.casefold() == name.casefold()), None)
        return entry is not None and entry.selects(device.vf_index)

    return matches


def select(devices: Iterable[NetDevice], selector: NetSelector) -> list[NetDevice]:
    """Upstream's filters, all but `vdpaType` (`vdpa_problem` is that one); an empty list selects by nothing.

    `ddpProfiles` (Intel DDP packages), `pKeys` (InfiniBand partitions) and `isRdma` select nothing here: no
    device of this plugin's reports a DDP profile, a pkey or RDMA devices (upstream's result on a node without
    them)."""
    if selector.ddp_profiles or selector.pkeys or selector.is_rdma:
        return []
    among: list[tuple[Sequence[str], Callable[[NetDevice], str]]] = [
        (selector.vendors, lambda d: d.vendor), (selector.devices, lambda d: d.device),
        (selector.drivers, lambda d: d.driver), (selector.pci_addresses, lambda d: d.address),
        (selector.acpi_indexes, lambda d: d.acpi_index), (selector.link_types, lambda d: d.link_type),
    ]
    active = [_among(values, attribute) for values, attribute in among if values]
    if selector.pf_names:
        active.append(_function_range(selector.pf_names, lambda d: d.pf_name))
    if selector.root_devices:
        active.append(_function_range(selector.root_devices, lambda d: d.pf_address))
    return [d for d in devices if all(keep(d) for keep in active)]
