"""Policies × one node's observed NICs → that node's `SriovNetworkNodeState.spec`, as upstream renders it.

Upstream (`api/v1/helper.go` Apply/mergeConfigs/ApplyBridgeConfig, driven by `syncSriovNetworkNodeState`) is
reproduced rule for rule, including its quirks, because existing clusters depend on the exact result:

- policies are applied from the highest priority number down (ties by name), so the last applied one — lowest
  number, alphabetically last name — wins a conflict;
- a PF entry is *replaced* by the newest policy's entry; older VF groups survive only when their resource name
  differs and their VF range does not overlap; PF `mtu`/`numVfs` become the maximum only when groups were kept
  or the two policies had the same priority;
- a `pfNames` range applies only to the PF whose real name is written there (an alt name selects the PF but
  its range is ignored: the group spans `0-(numVfs-1)`);
- policies with `numVfs: 0` or an empty nicSelector add nothing.

The merge runs on small frozen dataclasses; pydantic models are built once per node at the end.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vdpa_operator.api import golang
from vdpa_operator.api.kube import Node
from vdpa_operator.api.models import (
    DEFAULT_NAME,
    Interface,
    InterfaceExt,
    OVSConfigExt,
    OVSUplinkConfigExt,
    SriovNetworkNodePolicy,
    SriovNetworkNodePolicySpec,
    SriovNetworkNodeState,
    SriovNetworkNodeStateSpec,
    VfGroup,
)
from vdpa_operator.api.nodestate import ESWITCH_SWITCHDEV
from vdpa_operator.api.selection import (
    PfName,
    VfRangeError,
    nic_selected,
    node_selected,
    parse_pf_name,
    ranges_overlap,
)
from vdpa_operator.errors import VdpaOperatorError

NO_PREVIOUS_PRIORITY = 100
"""Upstream's initial `ppp`: above the highest allowed priority (99), so the first policy is never "equal"."""


class RenderError(VdpaOperatorError, ValueError):
    """What upstream's sync stops on (a policy it cannot apply, a netFilter without NICs, a node in two pools),
    naming the policy and node when known."""

    def __init__(self, reason: str, *, policy: str = "", node: str = "") -> None:
        self.reason = reason
        self.policy = policy
        self.node = node
        where = [f"policy {policy}"] if policy else []
        where += [f"on node {node}"] if node else []
        super().__init__(f"{' '.join(where)}: {reason}" if where else reason)

    def on_node(self, node: str) -> RenderError:
        """The same error, naming the node it happened on."""
        return self if self.node else RenderError(self.reason, policy=self.policy, node=node)


def sort_by_priority(policies: Iterable[SriovNetworkNodePolicy]) -> list[SriovNetworkNodePolicy]:
    """Upstream `ByPriority`: numeric priority descending, then name ascending; applied in this order."""
    return sorted(policies, key=lambda p: (-p.spec.priority, p.name))


def policies_for_node(
    sorted_policies: Iterable[SriovNetworkNodePolicy], node_labels: Mapping[str, str]
) -> list[SriovNetworkNodePolicy]:
    """The policies upstream applies to a node, in order: `default` skipped, nodeSelector matched."""
    return [
        p for p in sorted_policies
        if p.name != DEFAULT_NAME and node_selected(p.spec.node_selector, node_labels)
    ]


def bridge_name(pci_address: str) -> str:
    """The managed OVS bridge of a PF: `0000:d8:00.0` → `br-0000_d8_00.0` (upstream `GenerateBridgeName`)."""
    return "br-" + pci_address.replace(":", "_")


# --- the merge, on plain values ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _VfGroup:
    resource_name: str
    device_type: str
    vf_range: str
    policy_name: str
    mtu: int
    is_rdma: bool
    vdpa_type: str

    @classmethod
    def of(cls, group: VfGroup) -> _VfGroup:
        return cls(group.resource_name, group.device_type, group.vf_range, group.policy_name, group.mtu,
                   group.is_rdma, group.vdpa_type)

    def to_json(self) -> dict[str, Any]:
        """Upstream's JSON: every field is `omitempty`."""
        return golang.omit_empty({
            "resourceName": self.resource_name, "deviceType": self.device_type, "vfRange": self.vf_range,
            "policyName": self.policy_name, "mtu": self.mtu, "isRdma": self.is_rdma, "vdpaType": self.vdpa_type,
        })


@dataclass(frozen=True, slots=True)
class _PfConfig:
    pci_address: str
    num_vfs: int
    mtu: int
    name: str
    link_type: str
    eswitch_mode: str
    vf_groups: tuple[_VfGroup, ...]
    externally_managed: bool

    @classmethod
    def of(cls, iface: Interface) -> _PfConfig:
        return cls(iface.pci_address, iface.num_vfs, iface.mtu, iface.name, iface.link_type, iface.eswitch_mode,
                   tuple(_VfGroup.of(g) for g in iface.vf_groups), iface.externally_managed)

    def to_json(self) -> dict[str, Any]:
        """Upstream's JSON: `pciAddress` always, the rest `omitempty`."""
        return golang.omit_empty({
            "pciAddress": self.pci_address, "numVfs": self.num_vfs, "mtu": self.mtu, "name": self.name,
            "linkType": self.link_type, "eSwitchMode": self.eswitch_mode,
            "vfGroups": [g.to_json() for g in self.vf_groups], "externallyManaged": self.externally_managed,
        }, always=("pciAddress",))


@dataclass(frozen=True, slots=True)
class PolicyPlan:
    """What Apply needs from one policy, worked out once instead of once per node and PF."""

    policy: SriovNetworkNodePolicy
    name: str
    priority: int
    adds_nothing: bool
    pf_names: tuple[tuple[str, PfName | VfRangeError], ...]
    whole_range: str
    spec: SriovNetworkNodePolicySpec
    _entries: dict[tuple[str, str], _PfConfig] = field(default_factory=dict, compare=False, repr=False)
    """`pf_entry` results: PCI addresses and PF names repeat across the nodes of a cluster."""

    @classmethod
    def of(cls, policy: SriovNetworkNodePolicy) -> PolicyPlan:
        spec = policy.spec
        pf_names: list[tuple[str, PfName | VfRangeError]] = []
        for entry in spec.nic_selector.pf_names:
            try:
                pf_names.append((entry, parse_pf_name(entry)))
            except VfRangeError as err:
                pf_names.append((entry, err))
        return cls(
            policy=policy,
            name=policy.name,
            priority=spec.priority,
            adds_nothing=spec.num_vfs <= 0 or spec.nic_selector.is_empty(),
            pf_names=tuple(pf_names),
            whole_range=f"0-{spec.num_vfs - 1}",
            spec=spec,
        )

    def vf_range(self, pf_name: str) -> str:
        """Upstream `generatePfNameVfGroup`: the range written for this PF's *real* name, else all VFs.

        Entries are parsed in order up to the matching one, so a malformed range before it is an error."""
        for entry, parsed in self.pf_names:
            if isinstance(parsed, VfRangeError):
                raise RenderError(f"nicSelector.pfNames entry {entry!r} has a bad VF range: {parsed}; "
                                  "write it as <pf>#<first>-<last>", policy=self.name)
            if parsed.name == pf_name:
                return f"{parsed.start}-{parsed.end}" if parsed.has_range else self.whole_range
        return self.whole_range

    def pf_entry(self, pci_address: str, pf_name: str) -> _PfConfig:
        """The PF entry this policy alone wants for one selected PF (one VF group)."""
        entry = self._entries.get((pci_address, pf_name))
        if entry is None:
            spec = self.spec
            group = _VfGroup(spec.resource_name, spec.device_type or "", self.vf_range(pf_name), self.name,
                             spec.mtu, spec.is_rdma, spec.vdpa_type or "")
            entry = _PfConfig(pci_address, spec.num_vfs, spec.mtu, pf_name, spec.link_type or "",
                              spec.eswitch_mode or "", (group,), spec.externally_managed)
            self._entries[(pci_address, pf_name)] = entry
        return entry


_overlapping = functools.lru_cache(maxsize=4096)(ranges_overlap)
"""`ranges_overlap` remembered: a cluster has few distinct VF ranges and the merge asks about them constantly."""


def _merge(current: _PfConfig, wanted: _PfConfig, equal_priority: bool) -> _PfConfig:
    """Upstream `mergeConfigs`: the new entry wins; older non-conflicting groups are appended after its own."""
    new_group = wanted.vf_groups[0]
    kept = tuple(
        g for g in current.vf_groups
        if g.resource_name != new_group.resource_name and not _overlapping(g.vf_range, new_group.vf_range)
    )
    if not equal_priority and not kept:
        return wanted
    return _PfConfig(wanted.pci_address, max(wanted.num_vfs, current.num_vfs), max(wanted.mtu, current.mtu),
                     wanted.name, wanted.link_type, wanted.eswitch_mode, wanted.vf_groups + kept,
                     wanted.externally_managed)


def _apply(pfs: list[_PfConfig], plan: PolicyPlan, observed: Sequence[InterfaceExt], equal_priority: bool) -> None:
    """Upstream `Apply` on a list of PF entries, in place."""
    if plan.adds_nothing:
        return
    selector = plan.policy.spec.nic_selector
    for iface in observed:
        if not nic_selected(selector, iface):
            continue
        wanted = plan.pf_entry(iface.pci_address, iface.name)
        for index, current in enumerate(pfs):
            if current.pci_address == wanted.pci_address:
                pfs[index] = _merge(current, wanted, equal_priority)
                break
        else:
            pfs.append(wanted)


def _apply_bridges(bridges: list[OVSConfigExt], policy: SriovNetworkNodePolicy,
                   observed: Sequence[InterfaceExt]) -> None:
    """Upstream `ApplyBridgeConfig` on a list kept sorted by bridge name, in place."""
    spec = policy.spec
    if spec.nic_selector.is_empty():
        return
    if not spec.bridge.is_empty():
        if spec.eswitch_mode != ESWITCH_SWITCHDEV:
            raise RenderError("eSwitchMode must be switchdev to use software bridge management", policy=policy.name)
        if spec.link_type and spec.link_type.lower() != "eth":
            raise RenderError("linkType must be eth or ETH to use software bridge management", policy=policy.name)
        if spec.externally_managed:
            raise RenderError("software bridge management can't be used when link is externally managed",
                              policy=policy.name)
    for iface in observed:
        if not nic_selected(spec.nic_selector, iface):
            continue
        ovs = spec.bridge.ovs
        if ovs is None:
            # No bridge wanted: drop the bridge whose uplink is this PF (PF to bridge is 1:1 upstream).
            bridges[:] = [b for b in bridges if all(u.pci_address != iface.pci_address for u in b.uplinks)]
            continue
        interface = ovs.uplink.interface.model_copy(deep=True)
        if spec.mtu > 0:
            interface = interface.model_copy(update={"mtu_request": spec.mtu})
        wanted = OVSConfigExt(
            name=bridge_name(iface.pci_address),
            bridge=ovs.bridge.model_copy(deep=True),
            uplinks=[OVSUplinkConfigExt(pci_address=iface.pci_address, name=iface.name, interface=interface)],
        )
        position = bisect.bisect_left([b.name for b in bridges], wanted.name)
        if position < len(bridges) and bridges[position].name == wanted.name:
            bridges[position] = wanted
        else:
            bridges.insert(position, wanted)


# --- public entry points --------------------------------------------------------------------------------------


def apply_policy(state: SriovNetworkNodeState, policy: SriovNetworkNodePolicy, equal_priority: bool) -> None:
    """Upstream `policy.Apply(state, equalPriority)`: merge one policy into `state.spec.interfaces`.

    On error the state is left as it was (upstream would leave the PFs before the bad one applied)."""
    pfs = [_PfConfig.of(i) for i in state.spec.interfaces]
    _apply(pfs, PolicyPlan.of(policy), state.status.interfaces, equal_priority)
    state.spec.interfaces = [Interface.model_validate(pf.to_json()) for pf in pfs]


def apply_bridge_config(state: SriovNetworkNodeState, policy: SriovNetworkNodePolicy) -> None:
    """Upstream `policy.ApplyBridgeConfig(state)`: upsert or drop the managed OVS bridge of each matching PF."""
    _apply_bridges(state.spec.bridges.ovs, policy, state.status.interfaces)


def render_node_state_spec(
    sorted_policies: Sequence[SriovNetworkNodePolicy],
    node: Node,
    state: SriovNetworkNodeState,
    *,
    rdma_mode: str | None = None,
    manage_software_bridges: bool = False,
) -> SriovNetworkNodeStateSpec | None:
    """The spec upstream writes for `node`, or None when its daemon has not reported NICs yet (spec untouched).

    `sorted_policies` come from `sort_by_priority`; `rdma_mode` is the node's pool's."""
    plans = [PolicyPlan.of(p) for p in policies_for_node(sorted_policies, node.labels)]
    spec = spec_json_for_plans(plans, node.name, state.status.interfaces, rdma_mode, manage_software_bridges)
    return None if spec is None else SriovNetworkNodeStateSpec.model_validate(spec)


def spec_json_for_plans(
    plans: Sequence[PolicyPlan],
    node_name: str,
    observed: Sequence[InterfaceExt],
    rdma_mode: str | None,
    manage_software_bridges: bool,
) -> dict[str, Any] | None:
    """The rendered spec as upstream's JSON, from planned policies (the cluster renderer reuses plans and
    results); it depends on `observed` only through `observed_key`."""
    if not observed:
        return None
    pfs: list[_PfConfig] = []
    bridges: list[OVSConfigExt] = []
    previous_priority = NO_PREVIOUS_PRIORITY
    try:
        for plan in plans:
            _apply(pfs, plan, observed, previous_priority == plan.priority)
            if manage_software_bridges:
                _apply_bridges(bridges, plan.policy, observed)
            previous_priority = plan.priority
    except RenderError as err:
        raise err.on_node(node_name) from None
    spec: dict[str, Any] = {}
    if pfs:
        spec["interfaces"] = [pf.to_json() for pf in pfs]
    spec["bridges"] = {"ovs": [b.to_dict() for b in bridges]} if bridges else {}
    spec["system"] = {"rdmaMode": rdma_mode} if rdma_mode else {}
    return spec


def observed_key(observed: Sequence[InterfaceExt]) -> Hashable:
    """Every observed-PF field that spec rendering reads (nicSelector matching, PF name and address): nodes
    with equal keys and equal policies get equal specs."""
    return tuple((i.name, tuple(i.alt_names), i.pci_address, i.vendor, i.device_id, i.net_filter) for i in observed)
