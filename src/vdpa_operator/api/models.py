"""Models of the `sriovnetwork.openshift.io/v1` kinds with upstream's exact JSON names and markers.

Fields default to Go's zero value so that "absent" and "zero" mean the same thing they mean upstream; a field
that is required in upstream's CRD has no default. Enums and bounds are the CRD's (`+kubebuilder` markers).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import ConfigDict, Field

from vdpa_operator.api.meta import ConditionStatus, KubeModel, Resource

GROUP = "sriovnetwork.openshift.io"
API_VERSION = f"{GROUP}/v1"

DeviceType = Literal["netdevice", "vfio-pci"]
LinkType = Literal["eth", "ETH", "ib", "IB"]
EswitchMode = Literal["legacy", "switchdev"]
VdpaType = Literal["virtio", "vhost"]
RdmaMode = Literal["shared", "exclusive"]

DEFAULT_NAME = "default"
"""Upstream's fixed name: the only SriovOperatorConfig that counts, and the deprecated policy that is skipped."""

# The CRD applies this default before any webhook sees the object (`+kubebuilder:default=netdevice`).
CRD_DEFAULT = "x-crd-default"


class EmptyStatus(KubeModel):
    """Not used: this kind reports nothing."""


# --- SriovNetworkNodePolicy -----------------------------------------------------------------------------------


class SriovNetworkNicSelector(KubeModel):
    vendor: str = ""
    """The vendor hex code of the SR-IOV device, e.g. "15b3"."""
    device_id: str = Field("", alias="deviceID")
    """The PF device hex code, e.g. "101d" (ConnectX-6 Dx)."""
    root_devices: list[str] = Field(default_factory=list, alias="rootDevices")
    """PCI addresses of the PFs."""
    pf_names: list[str] = Field(default_factory=list, alias="pfNames")
    """PF netdev names (or alternative names), each optionally with a VF range: `ens1f0#0-3`."""
    net_filter: str = Field("", alias="netFilter")
    """Infrastructure network filter (virtual platforms): `openstack/NetworkID:<uuid>` or `aws/NetworkID:<id>`."""

    def is_empty(self) -> bool:
        """An empty selector selects nothing (upstream `IsEmpty`)."""
        return not (self.vendor or self.device_id or self.root_devices or self.pf_names or self.net_filter)


class OVSBridgeConfig(KubeModel):
    datapath_type: str = Field("", alias="datapathType")
    """datapath_type of the Bridge row in OVSDB."""
    external_ids: dict[str, str] = Field(default_factory=dict, alias="externalIDs")
    """external_ids of the Bridge row."""
    other_config: dict[str, str] = Field(default_factory=dict, alias="otherConfig")
    """other_config of the Bridge row."""
    fail_mode: Literal["secure", "standalone"] | None = Field(None, alias="failMode")
    """fail_mode of the Bridge row: 'secure' or 'standalone'."""


class OVSInterfaceConfig(KubeModel):
    type: str = ""
    """type of the Interface row in OVSDB."""
    options: dict[str, str] = Field(default_factory=dict)
    """options of the Interface row."""
    external_ids: dict[str, str] = Field(default_factory=dict, alias="externalIDs")
    """external_ids of the Interface row."""
    other_config: dict[str, str] = Field(default_factory=dict, alias="otherConfig")
    """other_config of the Interface row."""
    mtu_request: int | None = Field(None, alias="mtuRequest")
    """mtu_request of the Interface row."""


class OVSUplinkConfig(KubeModel):
    interface: OVSInterfaceConfig = Field(default_factory=OVSInterfaceConfig)
    """Settings of the PF interface in the OVS bridge."""


class OVSConfig(KubeModel):
    bridge: OVSBridgeConfig = Field(default_factory=OVSBridgeConfig)
    """Bridge-level settings."""
    uplink: OVSUplinkConfig = Field(default_factory=OVSUplinkConfig)
    """Uplink (PF) settings."""


class Bridge(KubeModel):
    ovs: OVSConfig | None = None
    """OVS bridge for the matching PFs; `{}` means an OVS bridge with defaults."""

    def is_empty(self) -> bool:
        return self.ovs is None


class SriovNetworkNodePolicySpec(KubeModel):
    """The desired state of a SriovNetworkNodePolicy."""

    resource_name: str = Field(alias="resourceName")
    """Device-plugin resource name (the operator adds the resource prefix)."""
    node_selector: dict[str, str] = Field(alias="nodeSelector")
    """Exact-match node labels; an empty map selects every node."""
    priority: Annotated[int, Field(ge=0, le=99)] = 0
    """Lower number wins. The webhook sets 99 when absent."""
    mtu: Annotated[int, Field(ge=1)] = 0
    """MTU of the VFs; the PF MTU is only ever raised to it."""
    num_vfs: Annotated[int, Field(ge=0)] = Field(alias="numVfs")
    """Number of VFs on each selected PF."""
    nic_selector: SriovNetworkNicSelector = Field(alias="nicSelector")
    """Which PFs to configure."""
    device_type: DeviceType | None = Field(None, alias="deviceType", json_schema_extra={CRD_DEFAULT: "netdevice"})
    """VF driver type: "netdevice" (default) or "vfio-pci"."""
    is_rdma: bool = Field(False, alias="isRdma")
    """RDMA mode. The webhook sets false when absent."""
    need_vhost_net: bool = Field(False, alias="needVhostNet")
    """Also mount /dev/vhost-net into pods."""
    link_type: LinkType | None = Field(None, alias="linkType")
    """NIC link type: eth or ib."""
    eswitch_mode: EswitchMode | None = Field(None, alias="eSwitchMode")
    """NIC eswitch mode: legacy (default) or switchdev. vDPA needs switchdev."""
    vdpa_type: VdpaType | None = Field(None, alias="vdpaType")
    """Create a vDPA device per VF, bound to virtio_vdpa ("virtio") or vhost_vdpa ("vhost")."""
    exclude_topology: bool = Field(False, alias="excludeTopology")
    """Do not advertise the NUMA node of the devices."""
    externally_managed: bool = Field(False, alias="externallyManaged")
    """The VFs are created by someone else; the operator only allocates them."""
    bridge: Bridge = Field(default_factory=Bridge)
    """Managed OVS bridge for the matching PFs (switchdev only)."""


class SriovNetworkNodePolicy(Resource):
    """Which VFs to create on which nodes' NICs, and how to expose them to pods."""

    API_VERSION: ClassVar[str] = API_VERSION
    KIND: ClassVar[str] = "SriovNetworkNodePolicy"
    PLURAL: ClassVar[str] = "sriovnetworknodepolicies"

    spec: SriovNetworkNodePolicySpec
    status: EmptyStatus = Field(default_factory=lambda: EmptyStatus())


# --- SriovNetworkNodeState ------------------------------------------------------------------------------------


# The NodeState spec's values are what the daemon acts on, so its CRD refuses what no policy could render (an
# unknown vdpaType, a negative numVfs), though upstream's Go types carry no markers here. "" is Go's omitempty:
# the same as absent.
class VfGroup(KubeModel):
    resource_name: str = Field("", alias="resourceName")
    device_type: Literal["", DeviceType] = Field("", alias="deviceType")
    vf_range: str = Field("", alias="vfRange")
    """"start-end", inclusive."""
    policy_name: str = Field("", alias="policyName")
    mtu: Annotated[int, Field(ge=0)] = 0
    is_rdma: bool = Field(False, alias="isRdma")
    vdpa_type: Literal["", VdpaType] = Field("", alias="vdpaType")


class Interface(KubeModel):
    """Desired configuration of one PF."""

    pci_address: str = Field(alias="pciAddress")
    num_vfs: Annotated[int, Field(ge=0)] = Field(0, alias="numVfs")
    mtu: Annotated[int, Field(ge=0)] = 0
    name: str = ""
    link_type: Literal["", LinkType] = Field("", alias="linkType")
    eswitch_mode: Literal["", EswitchMode] = Field("", alias="eSwitchMode")
    vf_groups: list[VfGroup] = Field(default_factory=list, alias="vfGroups")
    externally_managed: bool = Field(False, alias="externallyManaged")


class OVSUplinkConfigExt(KubeModel):
    pci_address: str = Field(alias="pciAddress")
    name: str = ""
    interface: OVSInterfaceConfig = Field(default_factory=OVSInterfaceConfig)


class OVSConfigExt(KubeModel):
    name: str
    bridge: OVSBridgeConfig = Field(default_factory=OVSBridgeConfig)
    uplinks: list[OVSUplinkConfigExt] = Field(default_factory=list)
    """Currently exactly one uplink (the PF)."""


class Bridges(KubeModel):
    ovs: list[OVSConfigExt] = Field(default_factory=list)


class System(KubeModel):
    rdma_mode: RdmaMode | None = Field(None, alias="rdmaMode")
    """RDMA subsystem mode: shared or exclusive."""


class SriovNetworkNodeStateSpec(KubeModel):
    """The desired state of a node's NICs, rendered by the operator from policies."""

    interfaces: list[Interface] = Field(default_factory=list)
    bridges: Bridges = Field(default_factory=Bridges)
    system: System = Field(default_factory=System)


class VirtualFunction(KubeModel):
    """Observed VF. Note the upstream JSON keys `Vlan` and the always-present `vfID`."""

    name: str = ""
    mac: str = ""
    assigned: str = ""
    driver: str = ""
    pci_address: str = Field(alias="pciAddress")
    vendor: str = ""
    device_id: str = Field("", alias="deviceID")
    vlan: int = Field(0, alias="Vlan")
    mtu: int = 0
    vf_id: int = Field(alias="vfID")
    vdpa_type: str = Field("", alias="vdpaType")
    representor_name: str = Field("", alias="representorName")
    guid: str = ""


class InterfaceExt(KubeModel):
    """Observed PF. Note the upstream JSON keys `totalvfs` and `Vfs`."""

    name: str = ""
    mac: str = ""
    driver: str = ""
    pci_address: str = Field(alias="pciAddress")
    vendor: str = ""
    device_id: str = Field("", alias="deviceID")
    net_filter: str = Field("", alias="netFilter")
    mtu: int = 0
    num_vfs: int = Field(0, alias="numVfs")
    link_speed: str = Field("", alias="linkSpeed")
    link_type: str = Field("", alias="linkType")
    link_admin_state: str = Field("", alias="linkAdminState")
    eswitch_mode: str = Field("", alias="eSwitchMode")
    externally_managed: bool = Field(False, alias="externallyManaged")
    total_vfs: int = Field(0, alias="totalvfs")
    vfs: list[VirtualFunction] = Field(default_factory=list, alias="Vfs")
    alt_names: list[str] = Field(default_factory=list, alias="altNames")


class SriovNetworkNodeStateStatus(KubeModel):
    """What the node's config daemon observed and how its last sync went."""

    interfaces: list[InterfaceExt] = Field(default_factory=list)
    bridges: Bridges = Field(default_factory=Bridges)
    system: System = Field(default_factory=System)
    sync_status: str = Field("", alias="syncStatus")
    """Succeeded, Failed or InProgress."""
    last_sync_error: str = Field("", alias="lastSyncError")


class SriovNetworkNodeState(Resource):
    """One per node: the NICs as the operator wants them (spec) and as the node's daemon found them (status)."""

    API_VERSION: ClassVar[str] = API_VERSION
    KIND: ClassVar[str] = "SriovNetworkNodeState"
    PLURAL: ClassVar[str] = "sriovnetworknodestates"

    spec: SriovNetworkNodeStateSpec = Field(default_factory=SriovNetworkNodeStateSpec)
    status: SriovNetworkNodeStateStatus = Field(default_factory=SriovNetworkNodeStateStatus)


# The drain handshake between a node's daemon and the operator's drain controller (upstream §4.4), and the
# NodeState's sync status values.
ANNOTATION_PREFIX = f"{GROUP}/"
DESIRED_STATE = ANNOTATION_PREFIX + "desired-state"
"""NodeState annotation the daemon writes: what it needs from the drain controller."""
CURRENT_STATE = ANNOTATION_PREFIX + "current-state"
"""NodeState annotation the drain controller writes: where the drain is."""
NODE_STATE = ANNOTATION_PREFIX + "state"
"""Node annotation mirroring `desired-state` (upstream still writes both)."""

DRAIN_IDLE = "Idle"
DRAIN_REQUIRED = "Drain_Required"
REBOOT_REQUIRED = "Reboot_Required"
DRAINING = "Draining"
DRAIN_COMPLETE = "DrainComplete"

SYNC_SUCCEEDED = "Succeeded"
SYNC_FAILED = "Failed"
SYNC_IN_PROGRESS = "InProgress"


# --- Networks -------------------------------------------------------------------------------------------------


class SriovNetworkSpec(KubeModel):
    """The desired state of a SriovNetwork."""

    network_namespace: str = Field("", alias="networkNamespace")
    """Namespace of the NetworkAttachmentDefinition (only from the operator namespace)."""
    resource_name: str = Field(alias="resourceName")
    """Device-plugin resource name."""
    capabilities: str = ""
    """Capabilities as a JSON string, e.g. '{"mac": true}'."""
    ipam: str = ""
    """IPAM configuration as a JSON string."""
    vlan: Annotated[int, Field(ge=0, le=4094)] = 0
    vlan_qos: Annotated[int, Field(ge=0, le=7)] = Field(0, alias="vlanQoS")
    vlan_proto: Literal["802.1q", "802.1Q", "802.1ad", "802.1AD"] | None = Field(None, alias="vlanProto")
    spoof_chk: Literal["on", "off"] | None = Field(None, alias="spoofChk")
    trust: Literal["on", "off"] | None = None
    link_state: Literal["auto", "enable", "disable"] | None = Field(None, alias="linkState")
    min_tx_rate: Annotated[int, Field(ge=0)] | None = Field(None, alias="minTxRate")
    max_tx_rate: Annotated[int, Field(ge=0)] | None = Field(None, alias="maxTxRate")
    meta_plugins: str = Field("", alias="metaPlugins")
    """CNI meta plugins to chain, as JSON."""
    log_level: Literal["panic", "error", "warning", "info", "debug", ""] | None = Field(
        None, alias="logLevel", json_schema_extra={CRD_DEFAULT: "info"}
    )
    log_file: str = Field("", alias="logFile")


class SriovNetworkStatus(ConditionStatus):
    """Conditions of the rendered NetworkAttachmentDefinition."""



class SriovNetwork(Resource):
    """A network over SR-IOV VFs, rendered into a NetworkAttachmentDefinition."""

    API_VERSION: ClassVar[str] = API_VERSION
    KIND: ClassVar[str] = "SriovNetwork"
    PLURAL: ClassVar[str] = "sriovnetworks"

    spec: SriovNetworkSpec
    status: SriovNetworkStatus = Field(default_factory=SriovNetworkStatus)


class SriovIBNetworkSpec(KubeModel):
    """The desired state of a SriovIBNetwork."""

    network_namespace: str = Field("", alias="networkNamespace")
    resource_name: str = Field(alias="resourceName")
    capabilities: str = ""
    ipam: str = ""
    link_state: Literal["auto", "enable", "disable"] | None = Field(None, alias="linkState")
    meta_plugins: str = Field("", alias="metaPlugins")


class SriovIBNetwork(Resource):
    """An InfiniBand network over SR-IOV VFs, rendered into a NetworkAttachmentDefinition."""

    API_VERSION: ClassVar[str] = API_VERSION
    KIND: ClassVar[str] = "SriovIBNetwork"
    PLURAL: ClassVar[str] = "sriovibnetworks"

    spec: SriovIBNetworkSpec
    status: SriovNetworkStatus = Field(default_factory=SriovNetworkStatus)


class TrunkConfig(KubeModel):
    min_id: Annotated[int, Field(ge=0, le=4095)] | None = Field(None, alias="minID")
    max_id: Annotated[int, Field(ge=0, le=4095)] | None = Field(None, alias="maxID")
    id: Annotated[int, Field(ge=0, le=4095)] | None = None


class OVSNetworkSpec(KubeModel):
    """The desired state of an OVSNetwork."""

    network_namespace: str = Field("", alias="networkNamespace")
    resource_name: str = Field(alias="resourceName")
    capabilities: str = ""
    ipam: str = ""
    meta_plugins: str = Field("", alias="metaPlugins")
    bridge: str = ""
    """Name of the OVS bridge; the device plugin's bridge is used when empty."""
    vlan: Annotated[int, Field(ge=0, le=4095)] = 0
    mtu: Annotated[int, Field(ge=0)] = 0
    trunk: list[TrunkConfig] = Field(default_factory=list)
    interface_type: str = Field("", alias="interfaceType")


class OVSNetwork(Resource):
    """A network attached to an OVS bridge, rendered into a NetworkAttachmentDefinition."""

    API_VERSION: ClassVar[str] = API_VERSION
    KIND: ClassVar[str] = "OVSNetwork"
    PLURAL: ClassVar[str] = "ovsnetworks"

    spec: OVSNetworkSpec
    status: SriovNetworkStatus = Field(default_factory=SriovNetworkStatus)


# --- Operator and pool configuration --------------------------------------------------------------------------


class SriovOperatorConfigSpec(KubeModel):
    """The desired state of the operator."""

    config_daemon_node_selector: dict[str, str] = Field(default_factory=dict, alias="configDaemonNodeSelector")
    """Nodes that run the config daemon (default: worker + linux)."""
    enable_injector: bool = Field(False, alias="enableInjector")
    enable_operator_webhook: bool = Field(False, alias="enableOperatorWebhook")
    log_level: Annotated[int, Field(ge=0, le=2)] = Field(0, alias="logLevel")
    disable_drain: bool = Field(False, alias="disableDrain")
    enable_ovs_offload: bool = Field(False, alias="enableOvsOffload")
    configuration_mode: Literal["daemon", "systemd"] | None = Field(None, alias="configurationMode")
    use_cdi: bool = Field(False, alias="useCDI")
    disable_plugins: list[Literal["mellanox"]] = Field(default_factory=list, alias="disablePlugins")
    feature_gates: dict[str, bool] = Field(default_factory=dict, alias="featureGates")
    config_daemon_env_vars: dict[str, str] = Field(default_factory=dict, alias="configDaemonEnvVars")


class SriovOperatorConfigStatus(ConditionStatus):
    """Conditions and component status of the operator."""

    injector: str = ""
    operator_webhook: str = Field("", alias="operatorWebhook")


class SriovOperatorConfig(Resource):
    """The operator's configuration; only the one named `default` in the operator namespace counts."""

    API_VERSION: ClassVar[str] = API_VERSION
    KIND: ClassVar[str] = "SriovOperatorConfig"
    PLURAL: ClassVar[str] = "sriovoperatorconfigs"

    spec: SriovOperatorConfigSpec = Field(default_factory=SriovOperatorConfigSpec)
    status: SriovOperatorConfigStatus = Field(default_factory=SriovOperatorConfigStatus)


class LabelSelectorRequirement(KubeModel):
    key: str
    """The label key the selector applies to."""
    operator: str
    """In, NotIn, Exists or DoesNotExist."""
    values: list[str] = Field(default_factory=list, json_schema_extra={"x-kubernetes-list-type": "atomic"})
    """Values for In and NotIn; empty for Exists and DoesNotExist."""


class LabelSelector(KubeModel):
    """`metav1.LabelSelector`: matchLabels and matchExpressions, all of which must hold."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-map-type": "atomic"})

    match_labels: dict[str, str] = Field(default_factory=dict, alias="matchLabels")
    """Labels that must be present with these values."""
    match_expressions: list[LabelSelectorRequirement] = Field(
        default_factory=list, alias="matchExpressions", json_schema_extra={"x-kubernetes-list-type": "atomic"}
    )
    """Set-based requirements."""


class OvsHardwareOffloadConfig(KubeModel):
    name: str = ""
    """On OpenShift: the MachineConfigPool to enable OVS hardware offload on."""


class SriovNetworkPoolConfigSpec(KubeModel):
    """The desired state of a SriovNetworkPoolConfig."""

    ovs_hardware_offload_config: OvsHardwareOffloadConfig = Field(
        default_factory=OvsHardwareOffloadConfig, alias="ovsHardwareOffloadConfig"
    )
    node_selector: LabelSelector | None = Field(None, alias="nodeSelector")
    """Nodes of the pool."""
    max_unavailable: int | str | None = Field(None, alias="maxUnavailable")
    """How many nodes of the pool may drain at once: an integer or "N%"."""
    rdma_mode: RdmaMode | None = Field(None, alias="rdmaMode")


class SriovNetworkPoolConfig(Resource):
    """A pool of nodes: how many may drain at once, and their RDMA mode."""

    API_VERSION: ClassVar[str] = API_VERSION
    KIND: ClassVar[str] = "SriovNetworkPoolConfig"
    PLURAL: ClassVar[str] = "sriovnetworkpoolconfigs"

    spec: SriovNetworkPoolConfigSpec = Field(default_factory=SriovNetworkPoolConfigSpec)
    status: EmptyStatus = Field(default_factory=lambda: EmptyStatus())
