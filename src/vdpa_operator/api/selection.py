"""Which nodes and PFs a policy selects, and VF range arithmetic — upstream's `api/v1/helper.go` semantics.

Shared by admission and rendering so both read a selector the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from vdpa_operator.api import golang
from vdpa_operator.api.models import InterfaceExt, SriovNetworkNicSelector, SriovNetworkNodeState
from vdpa_operator.errors import VdpaOperatorError

NO_RANGE = -1
"""Upstream's `invalidVfIndex`: a pfNames entry without `#a-b` parses to (-1, -1)."""


class VfRangeError(VdpaOperatorError, ValueError):
    """A `#a-b` suffix (or a "a-b" vfRange) whose bounds are not integers."""


@dataclass(frozen=True, slots=True)
class PfName:
    """One `pfNames` entry split into the name and its optional VF range."""

    name: str
    start: int = NO_RANGE
    end: int = NO_RANGE

    @property
    def has_range(self) -> bool:
        return not (self.start == NO_RANGE and self.end == NO_RANGE)


def parse_range(text: str) -> tuple[int, int]:
    """"a-b" → (a, b), as upstream `parseRange` (which reads only the first two '-' fields)."""
    parts = text.split("-")
    if len(parts) < 2:
        raise VfRangeError(f"{text!r} is not a range 'start-end'")
    try:
        return golang.atoi(parts[0]), golang.atoi(parts[1])
    except ValueError as err:
        raise VfRangeError(str(err)) from None


def parse_pf_name(entry: str) -> PfName:
    """`ens1f0#0-3` → PfName("ens1f0", 0, 3); `ens1f0` → PfName("ens1f0") (upstream `ParseVfRange`)."""
    if "#" in entry:
        fields = entry.split("#")
        start, end = parse_range(fields[1])
        return PfName(fields[0], start, end)
    return PfName(entry)


def pf_base_name(entry: str) -> str:
    """The name part of a pfNames entry, before any `#`."""
    return entry.split("#")[0]


def index_in_range(index: int, vf_range: str) -> bool:
    """Whether a VF index lies in "start-end"; an unparsable range contains nothing (upstream `IndexInRange`)."""
    try:
        start, end = parse_range(vf_range)
    except VfRangeError:
        return False
    return start <= index <= end


def ranges_overlap(a: str, b: str) -> bool:
    """Upstream `isVFRangeOverlapping` on two "start-end" strings; unparsable ranges never overlap."""
    try:
        a_start, a_end = parse_range(a)
        b_start, b_end = parse_range(b)
    except VfRangeError:
        return False
    if a_start < b_start:
        return index_in_range(b_start, a) or index_in_range(b_end, a)
    return index_in_range(a_start, b) or index_in_range(a_end, b)


_NET_FILTER = re.compile(r"^\s*([^\s]+)\s*:\s*([^\s]+)", re.MULTILINE)


def net_filter_match(net_filter: str, net_value: str) -> bool:
    """Compare the first `key:value` pair of a netFilter with an interface's netFilter (upstream `NetFilterMatch`)."""
    want = _NET_FILTER.search(net_filter)
    have = _NET_FILTER.search(net_value)
    if want is None or have is None:
        return False
    return want.group(1) == have.group(1) and want.group(2) == have.group(2)


def name_or_alt_name_matches(name: str, alt_names: Iterable[str], pf_names: Iterable[str]) -> bool:
    wanted = set(pf_names)
    return name in wanted or any(alt in wanted for alt in alt_names)


def nic_mismatch(selector: SriovNetworkNicSelector, iface: InterfaceExt) -> str | None:
    """Why a PF fails the selector's hardware criteria (vendor, deviceID, rootDevices, pfNames), or None.

    netFilter is left to the caller: rendering matches it here (`nic_selected`), admission only on virtual
    platforms. The texts are the reasons upstream's webhook logs for a PF it does not select.
    """
    if selector.vendor and selector.vendor != iface.vendor:
        return f"selector vendor: {selector.vendor} is not equal to the interface vendor: {iface.vendor}"
    if selector.device_id and selector.device_id != iface.device_id:
        return (
            f"selector device ID: {selector.device_id} is not equal to the interface device ID: {iface.device_id}"
        )
    if selector.root_devices and iface.pci_address not in selector.root_devices:
        return f"interface PCI address: {iface.pci_address} not found in root devices"
    if selector.pf_names and not name_or_alt_name_matches(
        iface.name, iface.alt_names, (pf_base_name(p) for p in selector.pf_names)
    ):
        return f"interface name: {iface.name} (and alternative names) not found in physical function names"
    return None


def nic_selected(selector: SriovNetworkNicSelector, iface: InterfaceExt) -> bool:
    """Whether a nicSelector matches an observed PF: every non-empty criterion must match (upstream `Selected`).

    An empty selector matches every PF here, as upstream's `Selected` does; callers that must treat an empty
    selector as "nothing" check `selector.is_empty()` first, as upstream's `Apply` does.
    """
    if nic_mismatch(selector, iface) is not None:
        return False
    return not (selector.net_filter and not net_filter_match(selector.net_filter, iface.net_filter))


def node_selected(node_selector: Mapping[str, str], node_labels: Mapping[str, str]) -> bool:
    """Exact match of every selector label; an empty selector selects every node."""
    return all(node_labels.get(key) == value for key, value in node_selector.items())


def resolve_interface_name(name: str, state: SriovNetworkNodeState | None) -> str:
    """An alternative interface name → the PF's real name, via the node state (upstream `ResolveInterfaceName`)."""
    if state is None:
        return name
    for iface in state.status.interfaces:
        if iface.name == name:
            return name
        if name in iface.alt_names:
            return iface.name
    return name
