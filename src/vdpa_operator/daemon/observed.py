"""What discovery found on a node: the NodeState status upstream reports, plus the few host facts the plan
needs to tell "already so" from "must change", and what the daemon's own files say (no I/O here;
`daemon.discover` and `daemon.node` fill it in)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from vdpa_operator.api.models import Interface, InterfaceExt
from vdpa_operator.host.types import DevlinkParam, SwitchPort


@dataclass(frozen=True)
class PfFacts:
    """Per PF, beyond `InterfaceExt`."""

    switch_port: SwitchPort | None = None
    """The uplink's `phys_port_name`/`phys_switch_id` (what the representor udev rule needs)."""
    hw_tc_offload: bool | None = None
    """ethtool `hw-tc-offload`; None when the netdev has no such feature."""
    flow_steering: DevlinkParam | None = None
    """devlink `flow_steering_mode`; None when the device has no such parameter or devlink failed."""
    admin_macs: Mapping[int, str] = field(default_factory=dict)
    """VF index → administrative MAC set on the PF (IFLA_VF_MAC)."""
    vdpa: Mapping[str, str | None] = field(default_factory=dict)
    """VF address → bound vdpa bus driver of its `vdpa:<VF>` device (None: exists, unbound); absent: none."""


@dataclass(frozen=True)
class Observation:
    interfaces: tuple[InterfaceExt, ...]
    """`status.interfaces`, upstream's JSON."""
    pfs: Mapping[str, PfFacts] = field(default_factory=dict)
    udev_rules: Mapping[str, str] = field(default_factory=dict)
    """File name → content of the rule files in the udev rules directory."""
    loaded_modules: frozenset[str] = frozenset()
    """Of the modules the daemon may load, those already loaded."""
    ovs_present: bool = False
    ovs_hw_offload: str | None = None
    """`other_config:hw-offload` of the Open_vSwitch row; None when unset (or OVS absent)."""
    ovs_problem: str = ""
    """Why OVS could not be read, when `ovs_present` is False."""
    ovs_offload_owned: bool = False
    """This daemon set hw-offload (so it may remove it)."""
    records: Mapping[str, Interface] = field(default_factory=dict)
    """PF records: the PFs this operator configured (§4.12)."""
    initial: Mapping[str, InterfaceExt] = field(default_factory=dict)
    """The first status ever seen, per PF: what a reset returns to."""
    interrupted: tuple[str, ...] = ()
    """PFs an interrupted apply touched (its journal): configured again whatever drift says."""
    notes: tuple[str, ...] = ()
    """Files of the daemon's own found damaged and moved aside while reading them, one line each."""

    def interface(self, pci_address: str) -> InterfaceExt | None:
        return next((i for i in self.interfaces if i.pci_address == pci_address), None)

    def facts(self, pci_address: str) -> PfFacts:
        return self.pfs.get(pci_address) or PfFacts()
