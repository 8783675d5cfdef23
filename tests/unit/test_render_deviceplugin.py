"""Device-plugin config rendering: the exact JSON upstream writes (conformance strings, the seed, upstream's
`sriovnetworknodepolicy_controller_test.go` cases) and the Go-compatible JSON encoder under it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from vdpa_operator.api.golang import marshal
from vdpa_operator.api.kube import Node
from vdpa_operator.api.models import SriovNetworkNodePolicy, SriovNetworkNodeState
from vdpa_operator.api.nics import DEFAULT_SUPPORTED_NICS, SupportedNics
from vdpa_operator.render.deviceplugin import (
    CONFIGMAP_NAME,
    DEVICE_PLUGIN_LABEL,
    NetDeviceSelectors,
    ResourceConfig,
    device_plugin_label,
    render_resource_list,
    resolve_pf_names,
    resource_list_json,
)
from vdpa_operator.render.nodestate import RenderError

NO_NICS = SupportedNics(())
"""Upstream's controller tests run with an empty NicIDMap: no VF device id is known."""
WORKER = {"node-role.kubernetes.io/worker": ""}


def policy(name: str, **spec: Any) -> SriovNetworkNodePolicy:
    body: dict[str, Any] = {"resourceName": "resourceName", "nodeSelector": {}, "numVfs": 0, "nicSelector": {}}
    body.update(spec)
    return SriovNetworkNodePolicy.model_validate({"metadata": {"name": name}, "spec": body}, by_name=False)


def node(name: str = "node1", labels: dict[str, str] | None = None) -> Node:
    return Node.model_validate({"metadata": {"name": name, "labels": labels or {}}})


def state(name: str = "node1", interfaces: list[dict[str, Any]] | None = None) -> SriovNetworkNodeState:
    return SriovNetworkNodeState.model_validate(
        {"metadata": {"name": name}, "status": {"interfaces": interfaces or []}}, by_name=False
    )


def selectors_json(resource: ResourceConfig) -> str:
    assert resource.selectors is not None
    return marshal(resource.selectors.to_go())


# --- exact strings ----------------------------------------------------------------------------------------------


def test_conformance_exact_resource_string() -> None:
    """upstream test/conformance/tests/test_policy_configuration.go compares this text literally."""
    p = policy("test-policy", resourceName="resourceXXX", numVfs=4, excludeTopology=True,
               nicSelector={"pfNames": ["ens1#0-3"]}, deviceType="netdevice")
    [resource] = render_resource_list([p], node(), state(), DEFAULT_SUPPORTED_NICS)
    assert marshal(resource.to_go()) == (
        '{"resourceName":"resourceXXX","excludeTopology":true,'
        '"selectors":{"pfNames":["ens1#0-3"],"IsRdma":false,"NeedVhostNet":false},"SelectorObj":null}'
    )


SEED_NODE = node("worker-0", {"feature.node.kubernetes.io/network-sriov.capable": "true",
                              "node-role.kubernetes.io/worker": "", "kubernetes.io/os": "linux"})
SEED_STATE = state("worker-0", [
    {"pciAddress": "0000:65:00.0", "name": "ens1f0", "vendor": "15b3", "deviceID": "101d", "driver": "mlx5_core",
     "totalvfs": 8, "mtu": 1500, "linkType": "ETH", "linkAdminState": "up", "eSwitchMode": "legacy",
     "mac": "0c:42:a1:5a:10:e0"},
    {"pciAddress": "0000:65:00.1", "name": "ens1f1", "vendor": "15b3", "deviceID": "101d", "driver": "mlx5_core",
     "totalvfs": 8, "mtu": 1500, "linkType": "ETH", "linkAdminState": "up", "eSwitchMode": "legacy",
     "mac": "0c:42:a1:5a:10:e1"},
])
SEED_POLICY = policy(
    "vdpa-policy", resourceName="mlxnics", priority=10, numVfs=2, deviceType="netdevice", eSwitchMode="switchdev",
    vdpaType="virtio", isRdma=False, nodeSelector={"feature.node.kubernetes.io/network-sriov.capable": "true"},
    nicSelector={"vendor": "15b3", "deviceID": "101d", "rootDevices": ["0000:65:00.0", "0000:65:00.1"]},
)


def test_seed_policy_on_the_example_node() -> None:
    """VF device id 101e (numVfs > 0), no linkTypes (linkType unset), IsRdma false as the webhook sets it."""
    resources = render_resource_list([SEED_POLICY], SEED_NODE, SEED_STATE, DEFAULT_SUPPORTED_NICS)
    assert resource_list_json(resources) == (
        '{"resourceList":[{"resourceName":"mlxnics","selectors":{"vendors":["15b3"],"devices":["101e"],'
        '"rootDevices":["0000:65:00.0","0000:65:00.1"],"IsRdma":false,"NeedVhostNet":false,"vdpaType":"virtio"},'
        '"SelectorObj":null}]}'
    )
    assert device_plugin_label(resources) == "Enabled"


def test_no_resources_is_a_null_list() -> None:
    assert resource_list_json([]) == '{"resourceList":null}'
    assert device_plugin_label([]) == "Disabled"
    assert render_resource_list([SEED_POLICY], node("other"), None, DEFAULT_SUPPORTED_NICS) == []


def test_constants() -> None:
    assert DEVICE_PLUGIN_LABEL == "sriovnetwork.openshift.io/device-plugin"
    assert CONFIGMAP_NAME == "device-plugin-config"


def test_all_resource_fields_in_go_order() -> None:
    full = ResourceConfig(
        resource_prefix="example.com", resource_name="r", device_type="netDevice", exclude_topology=True,
        selectors=NetDeviceSelectors(("v",), ("d",), ("drv",), ("pci",), ("pf",), ("root",), ("ether",), ("ddp",),
                                     True, True, "vhost"),
    )
    assert marshal(full.to_go()) == (
        '{"resourcePrefix":"example.com","resourceName":"r","deviceType":"netDevice","excludeTopology":true,'
        '"selectors":{"vendors":["v"],"devices":["d"],"drivers":["drv"],"pciAddresses":["pci"],"pfNames":["pf"],'
        '"rootDevices":["root"],"linkTypes":["ether"],"ddpProfiles":["ddp"],"IsRdma":true,"NeedVhostNet":true,'
        '"vdpaType":"vhost"},"SelectorObj":null}'
    )
    assert marshal(ResourceConfig(resource_name="bare").to_go()) == '{"resourceName":"bare","SelectorObj":null}'


# --- TestRenderDevicePluginConfigData ---------------------------------------------------------------------------

RENDER_CASES = [
    ("testVirtioVdpaVirtio", policy("", deviceType="netdevice", vdpaType="virtio"),
     '{"IsRdma":false,"NeedVhostNet":false,"vdpaType":"virtio"}', False),
    ("testVhostVdpaVirtio", policy("", deviceType="netdevice", vdpaType="vhost"),
     '{"IsRdma":false,"NeedVhostNet":false,"vdpaType":"vhost"}', False),
    ("testExcludeTopology", policy("", excludeTopology=True), '{"IsRdma":false,"NeedVhostNet":false}', True),
]


@pytest.mark.parametrize(("p", "selectors", "exclude_topology"), [c[1:] for c in RENDER_CASES],
                         ids=[c[0] for c in RENDER_CASES])
def test_render_device_plugin_config_data(p: SriovNetworkNodePolicy, selectors: str, exclude_topology: bool) -> None:
    [resource] = render_resource_list([p], node(), state(), NO_NICS)
    assert resource.resource_name == "resourceName"
    assert resource.exclude_topology is exclude_topology
    assert selectors_json(resource) == selectors


# --- TestResolvePfNames -----------------------------------------------------------------------------------------

TWO_PFS = [{"pciAddress": "a", "name": "ens803f0", "altNames": ["alt1", "alt2"]},
           {"pciAddress": "b", "name": "ens803f1", "altNames": ["alt3"]}]
RESOLVE_CASES: list[tuple[str, list[str], SriovNetworkNodeState | None, list[str]]] = [
    ("empty pfNames returns empty slice", [], state(), []),
    ("nil nodeState returns pfNames as-is", ["eth0", "eth1"], None, ["eth0", "eth1"]),
    ("pfNames with actual interface names", ["ens803f0", "ens803f1"], state(interfaces=TWO_PFS),
     ["ens803f0", "ens803f1"]),
    ("pfNames with alternative names resolve to actual names", ["alt1", "alt3"], state(interfaces=TWO_PFS),
     ["ens803f0", "ens803f1"]),
    ("mixed pfNames with actual and alternative names", ["ens803f0", "alt3", "alt2"], state(interfaces=TWO_PFS),
     ["ens803f0", "ens803f1", "ens803f0"]),
    ("pfName not found in nodeState returns unchanged", ["notfound", "ens803f0"],
     state(interfaces=[{"pciAddress": "a", "name": "ens803f0", "altNames": ["alt1"]}]), ["notfound", "ens803f0"]),
    ("pfNames with ranges preserved", ["ens803f0#0-9", "alt1#10-19"],
     state(interfaces=[{"pciAddress": "a", "name": "ens803f0", "altNames": ["alt1"]}]),
     ["ens803f0#0-9", "ens803f0#10-19"]),
]


@pytest.mark.parametrize(("pf_names", "node_state", "expected"), [c[1:] for c in RESOLVE_CASES],
                         ids=[c[0] for c in RESOLVE_CASES])
def test_resolve_pf_names(pf_names: list[str], node_state: SriovNetworkNodeState | None, expected: list[str]) -> None:
    assert resolve_pf_names(pf_names, node_state) == expected


def test_resolved_alt_names_are_deduplicated_in_the_selector() -> None:
    p = policy("p", numVfs=4, nicSelector={"pfNames": ["alt1", "ens803f0", "alt3#0-1"]})
    [resource] = render_resource_list([p], node(), state(interfaces=TWO_PFS), NO_NICS)
    assert resource.selectors is not None
    assert resource.selectors.pf_names == ("ens803f0", "ens803f1#0-1")


# --- renderDevicePluginConfigData (Ginkgo cases) ----------------------------------------------------------------


def test_same_resource_name_on_different_devices() -> None:
    intel = policy("intel-vfio-pci", resourceName="resource1", deviceType="vfio-pci", numVfs=128, nodeSelector=WORKER,
                   nicSelector={"vendor": "8086", "deviceID": "159b", "rootDevices": ["0000:31:00.0"]})
    mellanox = policy("mellanox-rdma", resourceName="resource1", deviceType="netdevice", isRdma=True, numVfs=128,
                      nodeSelector=WORKER,
                      nicSelector={"vendor": "15b3", "deviceID": "101d", "rootDevices": ["0000:ca:00.0"]})
    mlx_state = state("mlxNode", [{"driver": "mlx5_core", "deviceID": "101d", "vendor": "15b3",
                                   "pciAddress": "0000:ca:00.0"}])
    [resource] = render_resource_list([intel, mellanox], node("mlxNode", WORKER), mlx_state, NO_NICS)
    assert resource.resource_name == "resource1"
    assert resource.selectors is not None
    assert set(resource.selectors.vendors) >= {"8086", "15b3"}
    assert set(resource.selectors.root_devices) >= {"0000:31:00.0", "0000:ca:00.0"}
    # drivers in the selector would stop the device plugin from finding the Mellanox VFs on this node
    assert resource.selectors.drivers == ()


def test_vfio_pci_and_netdevice_partitions_of_one_pf() -> None:
    vfio = policy("intel-vfio-pci", resourceName="resvfiopci", deviceType="vfio-pci", numVfs=128, nodeSelector=WORKER,
                  nicSelector={"vendor": "8086", "deviceID": "159b", "pfNames": ["ens0#0-9"]})
    netdev = policy("mellanox-rdma", resourceName="resnetdevice", deviceType="netdevice", numVfs=128,
                    nodeSelector=WORKER, nicSelector={"vendor": "8086", "deviceID": "159b", "pfNames": ["ens0#10-19"]})
    node_state = state("node1", [{"driver": "ice", "deviceID": "159b", "vendor": "8086", "pciAddress": "0000:31:00.0",
                                  "name": "ens0"}])
    resources = render_resource_list([vfio, netdev], node("node1", WORKER), node_state, NO_NICS)
    assert {r.resource_name: selectors_json(r) for r in resources} == {
        "resvfiopci": '{"vendors":["8086"],"pfNames":["ens0#0-9"],"IsRdma":false,"NeedVhostNet":false}',
        "resnetdevice": '{"vendors":["8086"],"pfNames":["ens0#10-19"],"IsRdma":false,"NeedVhostNet":false}',
    }


# --- create vs. update asymmetries --------------------------------------------------------------------------------


def test_first_policy_fixes_flags_later_one_sets_exclude_topology() -> None:
    first = policy("a", resourceName="r", isRdma=True, needVhostNet=True, vdpaType="vhost", excludeTopology=True,
                   nicSelector={"vendor": "15b3"})
    second = policy("b", resourceName="r", vdpaType="virtio", excludeTopology=False, nicSelector={"vendor": "8086"})
    [resource] = render_resource_list([first, second], node(), state(), NO_NICS)
    assert marshal(resource.to_go()) == (
        '{"resourceName":"r","selectors":{"vendors":["15b3","8086"],"IsRdma":true,"NeedVhostNet":true,'
        '"vdpaType":"vhost"},"SelectorObj":null}'
    )


def test_root_devices_duplicates_kept_on_create_merged_on_update() -> None:
    first = policy("a", resourceName="r", nicSelector={"rootDevices": ["0000:01:00.0", "0000:01:00.0"]})
    [created] = render_resource_list([first], node(), state(), NO_NICS)
    assert created.selectors is not None and created.selectors.root_devices == ("0000:01:00.0", "0000:01:00.0")
    second = policy("b", resourceName="r",
                    nicSelector={"rootDevices": ["0000:01:00.1", "0000:01:00.0", "0000:01:00.1"]})
    [updated] = render_resource_list([first, second], node(), state(), NO_NICS)
    assert updated.selectors is not None
    assert updated.selectors.root_devices == ("0000:01:00.0", "0000:01:00.0", "0000:01:00.1")


LINK_TYPE_CASES: list[tuple[str, str | None, tuple[str, ...]]] = [
    ("netdevice", "eth", ("ether",)),
    ("netdevice", "ETH", ("ether",)),
    ("netdevice", "ib", ("infiniband",)),
    ("netdevice", "IB", ("infiniband",)),
    ("vfio-pci", "ib", ()),
    ("netdevice", None, ()),
]


@pytest.mark.parametrize(("device_type", "link_type", "expected"), LINK_TYPE_CASES)
def test_link_types(device_type: str, link_type: str | None, expected: tuple[str, ...]) -> None:
    spec: dict[str, Any] = {"deviceType": device_type, "nicSelector": {"vendor": "15b3"}}
    if link_type:
        spec["linkType"] = link_type
    [resource] = render_resource_list([policy("p", **spec)], node(), state(), NO_NICS)
    assert resource.selectors is not None and resource.selectors.link_types == expected


DEVICE_CASES: list[tuple[int, str, tuple[str, ...]]] = [
    (0, "101d", ("101d",)),  # no VFs: the PF itself is the device
    (4, "101d", ("101e",)),  # VFs: the VF device id from the supported-NIC table
    (4, "ffff", ()),  # unknown PF: no device id at all
]


@pytest.mark.parametrize(("num_vfs", "device_id", "expected"), DEVICE_CASES)
def test_devices(num_vfs: int, device_id: str, expected: tuple[str, ...]) -> None:
    p = policy("p", numVfs=num_vfs, nicSelector={"vendor": "15b3", "deviceID": device_id})
    [resource] = render_resource_list([p], node(), state(), DEFAULT_SUPPORTED_NICS)
    assert resource.selectors is not None and resource.selectors.devices == expected


NET_FILTER_STATE = state("vm-1", [
    {"pciAddress": "0000:00:04.0", "netFilter": "openstack/NetworkID:aaaa"},
    {"pciAddress": "0000:00:05.0", "netFilter": "openstack/NetworkID:bbbb"},
    {"pciAddress": "0000:00:06.0", "netFilter": "openstack/NetworkID:aaaa"},
])


def test_net_filter_selects_pci_addresses() -> None:
    first = policy("a", resourceName="r", nicSelector={"netFilter": "openstack/NetworkID:aaaa"})
    second = policy("b", resourceName="r", nicSelector={"netFilter": "openstack/NetworkID:bbbb"})
    [resource] = render_resource_list([first, second], node("vm-1"), NET_FILTER_STATE, NO_NICS)
    assert resource.selectors is not None
    assert resource.selectors.pci_addresses == ("0000:00:04.0", "0000:00:06.0", "0000:00:05.0")


def test_net_filter_without_reported_nics_is_an_error_only_for_the_first_policy() -> None:
    first = policy("a", resourceName="r", nicSelector={"netFilter": "openstack/NetworkID:aaaa"})
    with pytest.raises(RenderError) as caught:
        render_resource_list([first], node("vm-1"), state("vm-1"), NO_NICS)
    assert (caught.value.policy, caught.value.node) == ("a", "vm-1")
    assert "doesn't contain interfaces data" in str(caught.value)
    plain = policy("0", resourceName="r", nicSelector={"vendor": "1af4"})
    [resource] = render_resource_list([plain, first], node("vm-1"), state("vm-1"), NO_NICS)
    assert resource.selectors is not None and resource.selectors.pci_addresses == ()


def test_default_policy_and_unselected_policies_are_skipped() -> None:
    policies = [policy("default"), policy("elsewhere", nodeSelector={"rack": "r9"}), policy("here", resourceName="x")]
    assert [r.resource_name for r in render_resource_list(policies, node(), state(), NO_NICS)] == ["x"]


def test_resources_keep_first_policy_order() -> None:
    policies = [policy("a", resourceName="zeta"), policy("b", resourceName="alpha"), policy("c", resourceName="zeta")]
    assert [r.resource_name for r in render_resource_list(policies, node(), state(), NO_NICS)] == ["zeta", "alpha"]


# --- the Go JSON encoder ------------------------------------------------------------------------------------------

GO_STRINGS = [
    ("a<b>&c", '"a\\u003cb\\u003e\\u0026c"'),
    ("line\u2028para\u2029", '"line\\u2028para\\u2029"'),
    ('quote" back\\', '"quote\\" back\\\\"'),
    ("\n\r\t\b\f", '"\\n\\r\\t\\b\\f"'),
    ("\x00\x1f\x7f", '"\\u0000\\u001f\x7f"'),
    ("émoji 🎉 ü", '"émoji 🎉 ü"'),
    ("lone \ud800 surrogate", '"lone \ufffd surrogate"'),
]


@pytest.mark.parametrize(("text", "expected"), GO_STRINGS, ids=[repr(t) for t, _ in GO_STRINGS])
def test_go_string_escaping(text: str, expected: str) -> None:
    assert marshal(text) == expected
    if "\ud800" not in text:
        assert json.loads(marshal(text)) == text


def test_marshal_structs_keep_order_maps_sort() -> None:
    value = {"b": 1, "a": [True, None, "x"], "c": {}}
    assert marshal(value) == '{"b":1,"a":[true,null,"x"],"c":{}}'
    assert marshal(value, sort_keys=True) == '{"a":[true,null,"x"],"b":1,"c":{}}'
    assert marshal([]) == "[]" and marshal(()) == "[]"
