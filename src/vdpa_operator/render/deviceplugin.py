"""Policies × one node → the SR-IOV device plugin's resource list for that node, as upstream renders it.

Upstream (`renderDevicePluginConfigData`, `createDevicePluginResource`, `updateDevicePluginResource`) builds one
resource per `resourceName`, in policy order, and widens it with each later policy of the same name. Its
asymmetries are kept on purpose because the ConfigMap text is compared byte for byte:

- the first policy of a resource fixes `IsRdma`, `NeedVhostNet` and `vdpaType`; later ones never change them,
  but each later policy does overwrite `excludeTopology`;
- `rootDevices` of the first policy are copied as written (duplicates kept), later ones are de-duplicated;
- a netFilter on the first policy needs observed NICs (an error otherwise), on later ones it does not.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field

from vdpa_operator.api.golang import GoValue, marshal, omit_empty
from vdpa_operator.api.kube import Node
from vdpa_operator.api.models import InterfaceExt, SriovNetworkNodePolicy, SriovNetworkNodeState
from vdpa_operator.api.nics import SupportedNics
from vdpa_operator.api.nodestate import DEVICE_TYPE_VFIO_PCI
from vdpa_operator.api.selection import net_filter_match, resolve_interface_name
from vdpa_operator.render.nodestate import RenderError, policies_for_node

DEVICE_PLUGIN_LABEL = "sriovnetwork.openshift.io/device-plugin"
"""Node label the device-plugin DaemonSet selects on."""
DEVICE_PLUGIN_ENABLED = "Enabled"
DEVICE_PLUGIN_DISABLED = "Disabled"
CONFIGMAP_NAME = "device-plugin-config"
"""The ConfigMap in the operator namespace with one key per node name."""
LINK_TYPE_ETHERNET = "ether"
LINK_TYPE_INFINIBAND = "infiniband"


@dataclass(frozen=True, slots=True)
class NetDeviceSelectors:
    """The device plugin's `NetDeviceSelectors`, fields in its declaration order (= JSON key order)."""

    vendors: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    drivers: tuple[str, ...] = ()
    pci_addresses: tuple[str, ...] = ()
    pf_names: tuple[str, ...] = ()
    root_devices: tuple[str, ...] = ()
    link_types: tuple[str, ...] = ()
    ddp_profiles: tuple[str, ...] = ()
    is_rdma: bool = False
    need_vhost_net: bool = False
    vdpa_type: str = ""

    def to_go(self) -> dict[str, GoValue]:
        """Lists are `omitempty`; `IsRdma`/`NeedVhostNet` have no JSON tag, so Go writes them capitalised, always."""
        return omit_empty({
            "vendors": list(self.vendors), "devices": list(self.devices), "drivers": list(self.drivers),
            "pciAddresses": list(self.pci_addresses), "pfNames": list(self.pf_names),
            "rootDevices": list(self.root_devices), "linkTypes": list(self.link_types),
            "ddpProfiles": list(self.ddp_profiles), "IsRdma": self.is_rdma, "NeedVhostNet": self.need_vhost_net,
            "vdpaType": self.vdpa_type,
        }, always=("IsRdma", "NeedVhostNet"))


@dataclass(frozen=True, slots=True, kw_only=True)
class ResourceConfig:
    """The device plugin's `ResourceConfig`, fields in its declaration order (= JSON key order)."""

    resource_prefix: str = ""
    resource_name: str
    device_type: str = ""
    exclude_topology: bool = False
    selectors: NetDeviceSelectors | None = None

    def to_go(self) -> dict[str, GoValue]:
        """`SelectorObj` is an untagged `interface{}` that is never set, hence always `null`."""
        return omit_empty({
            "resourcePrefix": self.resource_prefix, "resourceName": self.resource_name,
            "deviceType": self.device_type, "excludeTopology": self.exclude_topology,
            "selectors": None if self.selectors is None else self.selectors.to_go(), "SelectorObj": None,
        }, always=("resourceName", "SelectorObj"))


def resource_list_json(resources: Sequence[ResourceConfig]) -> str:
    """The exact ConfigMap value: Go's `json.Marshal(ResourceConfList)`; no resources is a nil slice → null."""
    return marshal({"resourceList": [r.to_go() for r in resources] if resources else None})


def device_plugin_label(resources: Sequence[ResourceConfig]) -> str:
    """The node's device-plugin label value: the plugin runs only where it has something to advertise."""
    return DEVICE_PLUGIN_ENABLED if resources else DEVICE_PLUGIN_DISABLED


@dataclass(frozen=True, slots=True)
class ResourcePlan:
    """What one policy contributes to a node's resource list, worked out once (the VF device id lookup)."""

    policy_name: str
    resource_name: str
    vendor: str
    device: str
    """PF device id when numVfs is 0, else the VF device id from the supported-NIC table ("" = none)."""
    pf_names: tuple[str, ...]
    root_devices: tuple[str, ...]
    link_type: str
    """"ether"/"infiniband", or "" when none is set or the VFs are vfio-pci (link type not detectable)."""
    net_filter: str
    is_rdma: bool
    need_vhost_net: bool
    vdpa_type: str
    exclude_topology: bool

    @classmethod
    def of(cls, policy: SriovNetworkNodePolicy, nics: SupportedNics) -> ResourcePlan:
        spec = policy.spec
        selector = spec.nic_selector
        device = ""
        if selector.device_id:
            device = selector.device_id if spec.num_vfs == 0 else nics.vf_device_id(selector.device_id)
        link_type = ""
        if spec.device_type != DEVICE_TYPE_VFIO_PCI and spec.link_type:
            link_type = LINK_TYPE_INFINIBAND if spec.link_type.lower() == "ib" else LINK_TYPE_ETHERNET
        return cls(
            policy_name=policy.name,
            resource_name=spec.resource_name,
            vendor=selector.vendor,
            device=device,
            pf_names=tuple(selector.pf_names),
            root_devices=tuple(selector.root_devices),
            link_type=link_type,
            net_filter=selector.net_filter,
            is_rdma=spec.is_rdma,
            need_vhost_net=spec.need_vhost_net,
            vdpa_type=spec.vdpa_type or "",
            exclude_topology=spec.exclude_topology,
        )


def _unique_append(target: list[str], values: Iterable[str]) -> None:
    """Upstream `UniqueAppend`: append each value not already present (including ones just appended)."""
    for value in values:
        if value not in target:
            target.append(value)


def resolve_pf_names(pf_names: Iterable[str], state: SriovNetworkNodeState | None) -> list[str]:
    """Alt names → real PF names via the node state, keeping any `#first-last` suffix (upstream `resolvePfNames`)."""
    resolved = []
    for entry in pf_names:
        name, hash_sign, vf_range = entry.partition("#")
        resolved.append(resolve_interface_name(name, state) + hash_sign + vf_range)
    return resolved


def state_key(plans: Sequence[ResourcePlan], state: SriovNetworkNodeState | None) -> Hashable:
    """Everything the resource list for `plans` reads from the node state: what the pfNames resolve to, what
    the netFilters match, whether NICs were reported. Nodes with equal keys and plans get equal lists."""
    observed = state.status.interfaces if state is not None else []
    names = dict.fromkeys(entry.partition("#")[0] for plan in plans for entry in plan.pf_names)
    filters = dict.fromkeys(plan.net_filter for plan in plans if plan.net_filter)
    return (
        bool(observed),
        tuple(resolve_interface_name(name, state) for name in names),
        tuple(tuple(_net_filter_matches(f, observed)) for f in filters),
    )


def _net_filter_matches(net_filter: str, observed: Sequence[InterfaceExt]) -> list[str]:
    return [i.pci_address for i in observed if net_filter_match(net_filter, i.net_filter)]


@dataclass
class _ResourceBuilder:
    """One resource while policies are folded into it; frozen into a `ResourceConfig` at the end."""

    resource_name: str
    exclude_topology: bool
    is_rdma: bool
    need_vhost_net: bool
    vdpa_type: str
    vendors: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)
    pci_addresses: list[str] = field(default_factory=list)
    pf_names: list[str] = field(default_factory=list)
    root_devices: list[str] = field(default_factory=list)
    link_types: list[str] = field(default_factory=list)

    @classmethod
    def create(cls, plan: ResourcePlan, state: SriovNetworkNodeState | None, node_name: str) -> _ResourceBuilder:
        """Upstream `createDevicePluginResource`."""
        built = cls(plan.resource_name, plan.exclude_topology, plan.is_rdma, plan.need_vhost_net, plan.vdpa_type)
        if plan.vendor:
            built.vendors.append(plan.vendor)
        if plan.device:
            built.devices.append(plan.device)
        if plan.pf_names:
            _unique_append(built.pf_names, resolve_pf_names(plan.pf_names, state))
        if plan.link_type:
            built.link_types.append(plan.link_type)
        built.root_devices.extend(plan.root_devices)
        if plan.net_filter:
            if state is None or not state.status.interfaces:
                raise RenderError(f"node state {node_name} doesn't contain interfaces data, which netFilter "
                                  "needs; wait for the node's config daemon to report its NICs",
                                  policy=plan.policy_name, node=node_name)
            _unique_append(built.pci_addresses, _net_filter_matches(plan.net_filter, state.status.interfaces))
        return built

    def update(self, plan: ResourcePlan, state: SriovNetworkNodeState | None) -> None:
        """Upstream `updateDevicePluginResource`: widen the selectors; only excludeTopology is overwritten."""
        if plan.vendor:
            _unique_append(self.vendors, (plan.vendor,))
        if plan.device:
            _unique_append(self.devices, (plan.device,))
        if plan.pf_names:
            _unique_append(self.pf_names, resolve_pf_names(plan.pf_names, state))
        if plan.link_type:
            _unique_append(self.link_types, (plan.link_type,))
        _unique_append(self.root_devices, plan.root_devices)
        if plan.net_filter and state is not None:
            _unique_append(self.pci_addresses, _net_filter_matches(plan.net_filter, state.status.interfaces))
        self.exclude_topology = plan.exclude_topology

    def freeze(self) -> ResourceConfig:
        selectors = NetDeviceSelectors(
            vendors=tuple(self.vendors),
            devices=tuple(self.devices),
            pci_addresses=tuple(self.pci_addresses),
            pf_names=tuple(self.pf_names),
            root_devices=tuple(self.root_devices),
            link_types=tuple(self.link_types),
            is_rdma=self.is_rdma,
            need_vhost_net=self.need_vhost_net,
            vdpa_type=self.vdpa_type,
        )
        return ResourceConfig(resource_name=self.resource_name, exclude_topology=self.exclude_topology,
                              selectors=selectors)


def render_resources_for_plans(
    plans: Sequence[ResourcePlan], node_name: str, state: SriovNetworkNodeState | None
) -> list[ResourceConfig]:
    """`render_resource_list` with the node's policies already planned (the cluster renderer reuses plans)."""
    builders: dict[str, _ResourceBuilder] = {}
    for plan in plans:
        existing = builders.get(plan.resource_name)
        if existing is None:
            builders[plan.resource_name] = _ResourceBuilder.create(plan, state, node_name)
        else:
            existing.update(plan, state)
    return [b.freeze() for b in builders.values()]


def render_resource_list(
    sorted_policies: Sequence[SriovNetworkNodePolicy],
    node: Node,
    state: SriovNetworkNodeState | None,
    nics: SupportedNics,
) -> list[ResourceConfig]:
    """The node's device-plugin resources (upstream `renderDevicePluginConfigData`); `state` is the node's own."""
    plans = [ResourcePlan.of(p, nics) for p in policies_for_node(sorted_policies, node.labels)]
    return render_resources_for_plans(plans, node.name, state)
