"""The whole policy sync: which nodes, which policies, pools, NodeState lifecycle, the ConfigMap and labels.

Golden files live in tests/golden/; regenerate them with `UPDATE_GOLDEN=1 pytest tests/unit/test_render_policy_sync.py`
and review the diff against upstream's behaviour before committing.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest

import scenario
from vdpa_operator.api.kube import Node
from vdpa_operator.api.models import (
    LabelSelector,
    SriovNetworkNodePolicy,
    SriovNetworkNodeState,
    SriovNetworkPoolConfig,
)
from vdpa_operator.api.nics import DEFAULT_SUPPORTED_NICS
from vdpa_operator.render.deviceplugin import render_resource_list, resource_list_json
from vdpa_operator.render.nodestate import render_node_state_spec, sort_by_priority
from vdpa_operator.render.policy_sync import (
    KEEP_UNTIL_ANNOTATION,
    ClusterRender,
    RenderError,
    find_node_pool,
    label_selector_matches,
    render_cluster,
)

NS = "openshift-sriov-network-operator"
GOLDEN = Path(__file__).resolve().parents[1] / "golden"
SRIOV_CAPABLE = "feature.node.kubernetes.io/network-sriov.capable"
WORKER_LABELS = {SRIOV_CAPABLE: "true", "node-role.kubernetes.io/worker": "", "kubernetes.io/os": "linux"}


def assert_golden(name: str, value: Any) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
        return
    assert path.exists(), f"{path} is missing: run with UPDATE_GOLDEN=1 and review it"
    assert json.loads(path.read_text()) == value


def node(name: str = "worker-0", **labels: str) -> Node:
    return Node.model_validate({"metadata": {"name": name, "labels": {**WORKER_LABELS, **labels}}})


def cx6dx(port: int, **extra: Any) -> dict[str, Any]:
    return {"pciAddress": f"0000:65:00.{port}", "name": f"ens1f{port}", "vendor": "15b3", "deviceID": "101d",
            "driver": "mlx5_core", "totalvfs": 8, "mtu": 1500, "linkType": "ETH", "linkAdminState": "up",
            "eSwitchMode": "legacy", "mac": f"0c:42:a1:5a:10:e{port}", **extra}


def node_state(name: str = "worker-0", interfaces: list[dict[str, Any]] | None = None, **metadata: Any
               ) -> SriovNetworkNodeState:
    """The example node's state: two ConnectX-6 Dx PFs in legacy mode, as the daemon reports them."""
    return SriovNetworkNodeState.model_validate({
        "apiVersion": "sriovnetwork.openshift.io/v1",
        "kind": "SriovNetworkNodeState",
        "metadata": {"name": name, "namespace": NS, **metadata},
        "status": {"syncStatus": "Succeeded", "interfaces": [cx6dx(0), cx6dx(1)] if interfaces is None else interfaces},
    }, by_name=False)


def policy(name: str, namespace: str = NS, **spec: Any) -> SriovNetworkNodePolicy:
    body: dict[str, Any] = {**scenario.seed_policy_raw()["spec"], "isRdma": False}
    body.update(spec)
    return SriovNetworkNodePolicy.model_validate(
        {"metadata": {"name": name, "namespace": namespace}, "spec": body}, by_name=False
    )


SEED_POLICY = policy("vdpa-policy")
"""The seed page's policy as stored: the webhook added isRdma: false."""


def pool(name: str, selector: dict[str, Any] | None, **spec: Any) -> SriovNetworkPoolConfig:
    body: dict[str, Any] = {**spec}
    if selector is not None:
        body["nodeSelector"] = selector
    return SriovNetworkPoolConfig.model_validate({"metadata": {"name": name, "namespace": NS}, "spec": body},
                                                 by_name=False)


def render(policies: list[SriovNetworkNodePolicy], nodes: list[Node] | None = None,
           states: list[SriovNetworkNodeState] | None = None, **options: Any) -> ClusterRender:
    return render_cluster(policies, [node()] if nodes is None else nodes, [node_state()] if states is None else states,
                          namespace=NS, nics=DEFAULT_SUPPORTED_NICS, **options)


# --- goldens ------------------------------------------------------------------------------------------------------


def test_seed_policy_on_the_example_node() -> None:
    result = render([SEED_POLICY])
    [state] = result.node_states
    assert (state.name, state.namespace) == ("worker-0", NS)
    assert_golden("seed-node-state-spec.json", state.spec.to_go_dict())
    assert result.config_map.data == {"worker-0": (
        '{"resourceList":[{"resourceName":"mlxnics","selectors":{"vendors":["15b3"],"devices":["101e"],'
        '"rootDevices":["0000:65:00.0","0000:65:00.1"],"IsRdma":false,"NeedVhostNet":false,"vdpaType":"virtio"},'
        '"SelectorObj":null}]}'
    )}
    assert result.node_labels == {"worker-0": "Enabled"}
    assert result.skipped == ()


def partition_policies() -> list[SriovNetworkNodePolicy]:
    """VFs 0-1 of ens1f0 as vhost-vdpa, 2-3 as virtio-vdpa: same priority, so both groups stay on the PF."""
    return [
        policy("vhost-policy", resourceName="vhostvdpa", vdpaType="vhost", numVfs=4,
               nicSelector={"pfNames": ["ens1f0#0-1"]}),
        policy("virtio-policy", resourceName="virtiovdpa", vdpaType="virtio", numVfs=4,
               nicSelector={"pfNames": ["ens1f0#2-3"]}),
    ]


def test_vhost_and_virtio_partitions_of_one_pf() -> None:
    result = render(partition_policies())
    [state] = result.node_states
    assert_golden("vdpa-partition-node-state-spec.json", state.spec.to_go_dict())
    groups = [(g.vf_range, g.vdpa_type) for g in state.spec.interfaces[0].vf_groups]
    assert groups == [("2-3", "virtio"), ("0-1", "vhost")]


def test_device_plugin_configmaps() -> None:
    configmaps = {"seed": render([SEED_POLICY]).config_map.to_dict(),
                  "partition": render(partition_policies()).config_map.to_dict()}
    assert_golden("device-plugin-configmaps.json", configmaps)
    assert configmaps["seed"]["metadata"] == {"name": "device-plugin-config", "namespace": NS}


# --- which nodes and policies ------------------------------------------------------------------------------------


def test_default_nodes_are_linux_workers() -> None:
    control_plane = Node.model_validate({"metadata": {"name": "cp-0", "labels": {"kubernetes.io/os": "linux"}}})
    windows = node("win-0", **{"kubernetes.io/os": "windows"})
    result = render([SEED_POLICY], [node(), control_plane, windows], [node_state()])
    assert [s.name for s in result.node_states] == ["worker-0"]
    assert set(result.config_map.data) == set(result.node_labels) == {"worker-0"}


def test_config_daemon_node_selector_replaces_the_default() -> None:
    edge = Node.model_validate({"metadata": {"name": "edge-0", "labels": {"edge": "yes", SRIOV_CAPABLE: "true"}}})
    result = render([SEED_POLICY], [node(), edge], [node_state(), node_state("edge-0")],
                    config_daemon_node_selector={"edge": "yes"})
    assert [s.name for s in result.node_states] == ["edge-0"]
    assert [i.name for i in result.node_states[0].spec.interfaces] == ["ens1f0", "ens1f1"]
    assert any("worker-0" in note and "not selected" in note for note in result.skipped)


def test_only_policies_in_the_operator_namespace_count() -> None:
    result = render([policy("elsewhere", namespace="default"), policy("default")])
    assert result.node_states[0].spec.interfaces == []
    assert result.config_map.data == {"worker-0": '{"resourceList":null}'}
    assert result.node_labels == {"worker-0": "Disabled"}
    assert any("default/elsewhere: ignored" in note for note in result.skipped)
    assert any("default policy is deprecated" in note for note in result.skipped)


def test_node_states_sorted_by_node_name() -> None:
    names = ["worker-2", "worker-0", "worker-1"]
    result = render([SEED_POLICY], [node(n) for n in names], [node_state(n) for n in names])
    assert [s.name for s in result.node_states] == sorted(names)
    assert list(result.config_map.data) == sorted(names)


# --- NodeState lifecycle ------------------------------------------------------------------------------------------


def test_state_without_interfaces_keeps_its_spec() -> None:
    waiting = node_state(interfaces=[])
    waiting.spec.system.rdma_mode = "shared"
    result = render([SEED_POLICY], states=[waiting], pool_configs=[pool("p", {}, rdmaMode="exclusive")])
    [state] = result.node_states
    assert state.spec.to_go_dict() == {"system": {"rdmaMode": "shared"}}
    assert any("status.interfaces is empty" in note for note in result.skipped)
    # the device plugin config does not need the NICs for this policy
    assert result.node_labels == {"worker-0": "Enabled"}


def test_node_without_state_gets_a_new_one_with_spec_only() -> None:
    result = render([SEED_POLICY], states=[], pool_configs=[pool("p", {}, rdmaMode="exclusive")])
    [state] = result.node_states
    assert state.to_dict() == {
        "apiVersion": "sriovnetwork.openshift.io/v1",
        "kind": "SriovNetworkNodeState",
        "metadata": {"name": "worker-0", "namespace": NS},
        "spec": {"system": {"rdmaMode": "exclusive"}},
    }
    assert any("created with an empty spec" in note for note in result.skipped)
    assert json.loads(result.config_map.data["worker-0"])["resourceList"][0]["resourceName"] == "mlxnics"


def test_net_filter_policy_on_a_node_without_nics_fails_the_sync() -> None:
    with pytest.raises(RenderError) as caught:
        render([policy("vm", nicSelector={"netFilter": "openstack/NetworkID:x"})], states=[])
    assert (caught.value.policy, caught.value.node) == ("vm", "worker-0")


def test_stale_state_is_reported_not_rendered() -> None:
    result = render([SEED_POLICY], states=[node_state(), node_state("gone-1")])
    assert [s.name for s in result.node_states] == ["worker-0"]
    assert any("gone-1" in note and KEEP_UNTIL_ANNOTATION in note for note in result.skipped)


def test_states_outside_the_namespace_are_ignored() -> None:
    foreign = node_state().model_copy(update={"metadata": node_state().metadata.model_copy(update={"namespace": "x"})})
    result = render([SEED_POLICY], states=[foreign])
    assert result.node_states[0].status.interfaces == []
    assert any("x/worker-0: ignored" in note for note in result.skipped)


def test_keep_until_annotation_is_removed_and_status_kept() -> None:
    marked = node_state(annotations={KEEP_UNTIL_ANNOTATION: "2030-01-01T00:00:00Z", "other": "kept"})
    result = render([SEED_POLICY], states=[marked])
    [state] = result.node_states
    assert state.metadata.annotations == {"other": "kept"}
    assert state.status == marked.status
    assert marked.metadata.annotations[KEEP_UNTIL_ANNOTATION]  # the input is not changed


def test_inputs_are_not_changed() -> None:
    state = node_state()
    before = copy.deepcopy(state)
    render([SEED_POLICY], states=[state])
    assert state == before


def test_render_error_fails_the_whole_sync() -> None:
    bad = policy("bad", nicSelector={"pfNames": ["ens1f0#x-1"]})
    with pytest.raises(RenderError) as caught:
        render([SEED_POLICY, bad])
    assert (caught.value.policy, caught.value.node) == ("bad", "worker-0")


def test_software_bridges_only_with_the_feature_gate() -> None:
    bridged = policy("br", bridge={"ovs": {"bridge": {"datapathType": "netdev"}}}, mtu=9000)
    assert render([bridged]).node_states[0].spec.bridges.ovs == []
    spec = render([bridged], manage_software_bridges=True).node_states[0].spec
    assert [b.name for b in spec.bridges.ovs] == ["br-0000_65_00.0", "br-0000_65_00.1"]
    assert spec.bridges.ovs[0].to_go_dict() == {
        "name": "br-0000_65_00.0",
        "bridge": {"datapathType": "netdev"},
        "uplinks": [{"pciAddress": "0000:65:00.0", "name": "ens1f0", "interface": {"mtuRequest": 9000}}],
    }


# --- pools --------------------------------------------------------------------------------------------------------


def test_pool_rdma_mode_goes_into_the_spec() -> None:
    pools = [pool("test-workers", {"matchLabels": {"test": ""}}, rdmaMode="exclusive")]
    result = render([SEED_POLICY], [node(test=""), node("worker-1")], [node_state(), node_state("worker-1")],
                    pool_configs=pools)
    modes = {s.name: s.spec.system.rdma_mode for s in result.node_states}
    assert modes == {"worker-0": "exclusive", "worker-1": None}


def test_node_in_two_pools_renders_without_a_pool_as_upstream() -> None:
    """Upstream logs findNodePoolConfig's error and carries on with an empty rdmaMode."""
    pools = [pool("a", {}, rdmaMode="exclusive"),
             pool("b", {"matchLabels": {SRIOV_CAPABLE: "true"}}, rdmaMode="shared")]
    result = render([SEED_POLICY], pool_configs=pools)
    assert result.node_states[0].spec.system.rdma_mode is None
    assert result.node_states[0].spec.interfaces != []
    assert any("more than one SriovNetworkPoolConfig (a, b)" in note for note in result.skipped)
    with pytest.raises(RenderError, match="more than one"):
        find_node_pool(node(), pools)


def test_hardware_offload_pools_are_not_pools() -> None:
    offload = pool("offload", {}, ovsHardwareOffloadConfig={"name": "worker"}, rdmaMode="shared")
    assert find_node_pool(node(), [offload]) is None
    assert find_node_pool(node(), [offload, pool("real", None, rdmaMode="exclusive")]) is not None


LABELS = {"zone": "a", "gpu": ""}
SELECTOR_CASES: list[tuple[str, dict[str, Any] | None, bool]] = [
    ("missing selector matches all", None, True),
    ("empty selector matches all", {}, True),
    ("matchLabels equal", {"matchLabels": {"zone": "a", "gpu": ""}}, True),
    ("matchLabels differ", {"matchLabels": {"zone": "b"}}, False),
    ("matchLabels absent key", {"matchLabels": {"rack": ""}}, False),
    ("In", {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}, True),
    ("In, absent key", {"matchExpressions": [{"key": "rack", "operator": "In", "values": ["a"]}]}, False),
    ("NotIn", {"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}, False),
    ("NotIn, absent key", {"matchExpressions": [{"key": "rack", "operator": "NotIn", "values": ["a"]}]}, True),
    ("Exists", {"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}, True),
    ("DoesNotExist", {"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]}, False),
    ("labels and expressions all hold", {"matchLabels": {"zone": "a"},
                                         "matchExpressions": [{"key": "rack", "operator": "DoesNotExist"}]}, True),
]


@pytest.mark.parametrize(("selector", "expected"), [c[1:] for c in SELECTOR_CASES], ids=[c[0] for c in SELECTOR_CASES])
def test_label_selector_matches(selector: dict[str, Any] | None, expected: bool) -> None:
    parsed = None if selector is None else LabelSelector.model_validate(selector, by_name=False)
    assert label_selector_matches(parsed, LABELS) is expected


@pytest.mark.parametrize("requirement", [
    {"key": "zone", "operator": "In", "values": []},
    {"key": "zone", "operator": "Exists", "values": ["a"]},
    {"key": "zone", "operator": "in", "values": ["a"]},
], ids=["In without values", "Exists with values", "unknown operator"])
def test_invalid_label_selector(requirement: dict[str, Any]) -> None:
    selector = LabelSelector.model_validate({"matchExpressions": [requirement]}, by_name=False)
    with pytest.raises(RenderError):
        label_selector_matches(selector, LABELS)


# --- reuse across nodes is invisible ------------------------------------------------------------------------------


def test_cluster_render_equals_per_node_render() -> None:
    """Nodes share rendering work when they look alike; each must still get exactly its own result."""
    policies = [
        SEED_POLICY,
        policy("rack-a", priority=5, resourceName="racka", numVfs=4, nodeSelector={"rack": "a"},
               nicSelector={"pfNames": ["uplink0#0-1"]}),
        policy("rack-a-2", priority=5, resourceName="racka2", numVfs=4, nodeSelector={"rack": "a"},
               nicSelector={"pfNames": ["ens1f0#2-3"]}),
        policy("by-alt", priority=20, resourceName="alt", nicSelector={"pfNames": ["uplink1"]}),
    ]
    variants = [
        [cx6dx(0), cx6dx(1)],
        [cx6dx(0, altNames=["uplink0"]), cx6dx(1, altNames=["uplink1"])],
        [cx6dx(0, altNames=["uplink1"]), cx6dx(1)],
        [cx6dx(1)],
        [],
    ]
    nodes, states = [], []
    for index in range(20):
        name = f"worker-{index:02d}"
        nodes.append(node(name, rack="a" if index % 3 == 0 else "b"))
        states.append(node_state(name, variants[index % len(variants)]))
    result = render(policies, nodes, states)
    ordered = sort_by_priority(policies)
    for n, original, rendered in zip(nodes, states, result.node_states, strict=True):
        expected_spec = render_node_state_spec(ordered, n, original)
        assert rendered.spec == (original.spec if expected_spec is None else expected_spec)
        resources = render_resource_list(ordered, n, original, DEFAULT_SUPPORTED_NICS)
        assert result.config_map.data[n.name] == resource_list_json(resources)
