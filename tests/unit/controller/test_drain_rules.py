"""The drain controller's two rules: how many nodes of a pool may drain at once (upstream `findNodePoolConfig`,
`SriovNetworkPoolConfig.MaxUnavailable`, `tryDrainNode`) and which pods a drain evicts (upstream
`createDrainHelper` on kubectl's drain filters). Pool cases port `controllers/drain_controller_test.go`."""

from __future__ import annotations

from typing import Any

import pytest

from vdpa_operator.api.kube import Node
from vdpa_operator.api.models import (
    CURRENT_STATE,
    DRAIN_COMPLETE,
    DRAIN_IDLE,
    DRAIN_REQUIRED,
    DRAINING,
    SriovNetworkNodeState,
    SriovNetworkPoolConfig,
)
from vdpa_operator.controller.drain import DrainError, PoolSlots, pods_to_evict, pool_slots

NS = "openshift-sriov-network-operator"
PREFIX = "openshift.io"


def node(name: str, **labels: str) -> Node:
    return Node.model_validate({"metadata": {"name": name, "labels": labels}})


def pool(name: str, max_unavailable: int | str | None = None, selector: dict[str, Any] | None = None,
         **spec: Any) -> SriovNetworkPoolConfig:
    body: dict[str, Any] = dict(spec)
    if max_unavailable is not None:
        body["maxUnavailable"] = max_unavailable
    if selector is not None:
        body["nodeSelector"] = selector
    return SriovNetworkPoolConfig.model_validate({"metadata": {"name": name, "namespace": NS}, "spec": body},
                                                 by_name=False)


def states(**current: str | None) -> dict[str, SriovNetworkNodeState]:
    """NodeStates by node name with the given `current-state` (None: a state without the annotation)."""
    out = {}
    for name, value in current.items():
        annotations = {CURRENT_STATE: value} if value is not None else {}
        out[name] = SriovNetworkNodeState.model_validate(
            {"metadata": {"name": name, "namespace": NS, "annotations": annotations}}, by_name=False)
    return out


THREE = [node("node1"), node("node2"), node("node3")]
"""Upstream's test cluster: three nodes without labels."""
TEST_POOL = {"matchLabels": {"test": ""}}


# --- pool slots ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("nodes", "pools", "busy", "expected"), [
    # "should drain nodes serially with default pool selector"
    (THREE, [], {}, PoolSlots("default", 1, 0)),
    (THREE, [], {"node2": DRAINING}, PoolSlots("default", 1, 1)),
    (THREE, [], {"node2": DRAIN_COMPLETE}, PoolSlots("default", 1, 1)),
    (THREE, [], {"node2": DRAIN_IDLE, "node3": None}, PoolSlots("default", 1, 0)),
    (THREE, [], {"node2": DRAIN_REQUIRED}, PoolSlots("default", 1, 0)),
    (THREE, [], {"node2": DRAINING, "node3": DRAIN_COMPLETE}, PoolSlots("default", 1, 2)),
    # "should drain nodes in parallel with a custom pool selector (and honor MaxUnavailable)"
    ([node(n, test="") for n in ("node1", "node2", "node3")], [pool("test-workers", 2, TEST_POOL)],
     {"node2": DRAINING}, PoolSlots("test-workers", 2, 1)),
    ([node(n, test="") for n in ("node1", "node2", "node3")], [pool("test-workers", 2, TEST_POOL)],
     {"node2": DRAINING, "node3": DRAIN_COMPLETE}, PoolSlots("test-workers", 2, 2)),
    # "should drain all nodes in parallel with a custom pool using nil in max unavailable"
    ([node(n, test="") for n in ("node1", "node2", "node3")], [pool("test-workers", None, TEST_POOL)],
     {"node2": DRAINING, "node3": DRAINING}, PoolSlots("test-workers", -1, 2)),
    # "should select all the nodes to drain in parallel when the selector is empty"
    ([node("node1"), node("node2", pool="")], [pool("test-workers", 10)], {"node2": DRAINING},
     PoolSlots("test-workers", 10, 1)),
    ([node("node1"), node("node2", pool="")], [pool("test-workers", 10, {})], {"node2": DRAINING},
     PoolSlots("test-workers", 10, 1)),
    # percentages scale with the pool's node count, rounded down; 30% of one node is 0 (nothing drains)
    ([node(f"n{i}", test="") for i in range(4)] + [node(f"other{i}") for i in range(6)],
     [pool("test-workers", "50%", TEST_POOL)], {}, PoolSlots("test-workers", 2, 0)),
    ([node("node1", test=""), node("node2")], [pool("test-workers", "30%", TEST_POOL)], {},
     PoolSlots("test-workers", 0, 0)),
    ([node("node1", test=""), node("node2")], [pool("test-workers", 0, TEST_POOL)], {},
     PoolSlots("test-workers", 0, 0)),
], ids=["default-idle", "default-draining", "default-drain-complete", "idle-and-unannotated-not-busy",
        "request-is-not-busy", "default-two-busy", "pool-int-room", "pool-int-full",
        "pool-unset-unlimited", "pool-no-selector-takes-all", "pool-empty-selector-takes-all", "pool-percent",
        "pool-percent-rounds-to-zero", "pool-zero"])
def test_pool_slots(nodes: list[Node], pools: list[SriovNetworkPoolConfig], busy: dict[str, str | None],
                    expected: PoolSlots) -> None:
    """The slots seen by the first node when it asks to drain."""
    assert pool_slots(nodes[0], nodes, pools, states(**busy)) == expected


@pytest.mark.parametrize(("limit", "busy", "full"), [
    (1, 0, False), (1, 1, True), (2, 1, False), (2, 2, True), (2, 3, True), (0, 0, True), (-1, 0, False),
    (-1, 100, False),
])
def test_a_pool_is_full_when_busy_reaches_its_limit(limit: int, busy: int, full: bool) -> None:
    """Upstream: `maxUnv == -1` drains all in parallel, else wait while `current >= maxUnv`."""
    assert PoolSlots("p", limit, busy).full is full


def test_nodes_in_a_pool_leave_the_default_pool() -> None:
    """"should drain in parallel nodes from two different pools, one custom and one default": node2 draining in
    its pool takes no slot from node1 in the default pool, and the default pool counts only nodes in no pool."""
    nodes = [node("node1"), node("node2", pool=""), node("node3", pool="")]
    pools = [pool("test-workers", 1, {"matchLabels": {"pool": ""}})]
    busy = states(node2=DRAINING, node3=DRAIN_COMPLETE)
    assert pool_slots(nodes[0], nodes, pools, busy) == PoolSlots("default", 1, 0)
    assert pool_slots(nodes[1], nodes, pools, busy) == PoolSlots("test-workers", 1, 2)


def test_busy_counts_only_members_of_the_pool() -> None:
    nodes = [node("a", test=""), node("b", test=""), node("c"), node("d")]
    pools = [pool("test-workers", 2, TEST_POOL)]
    busy = states(a=DRAIN_IDLE, b=DRAIN_IDLE, c=DRAINING, d=DRAIN_COMPLETE, stranger=DRAINING)
    assert pool_slots(nodes[0], nodes, pools, busy) == PoolSlots("test-workers", 2, 0)
    assert pool_slots(nodes[2], nodes, pools, busy) == PoolSlots("default", 1, 2)


def test_ovs_hardware_offload_pools_are_not_drain_pools() -> None:
    """Upstream skips pools with `ovsHardwareOffloadConfig.name`: their nodes stay in the default pool."""
    nodes = [node("node1", offload=""), node("node2", offload="")]
    pools = [pool("offload", 5, {"matchLabels": {"offload": ""}}, ovsHardwareOffloadConfig={"name": "worker"})]
    assert pool_slots(nodes[0], nodes, pools, states(node2=DRAINING)) == PoolSlots("default", 1, 1)


def test_match_expressions_select_pool_members() -> None:
    nodes = [node("node1", zone="a"), node("node2", zone="b"), node("node3", zone="c")]
    pools = [pool("ab", "100%", {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]})]
    assert pool_slots(nodes[1], nodes, pools, states(node1=DRAINING)) == PoolSlots("ab", 2, 1)
    assert pool_slots(nodes[2], nodes, pools, states(node1=DRAINING)) == PoolSlots("default", 1, 0)


def test_node_in_two_pools_cannot_drain() -> None:
    nodes = [node("node1", a="", b="")]
    pools = [pool("pool-a", 1, {"matchLabels": {"a": ""}}), pool("pool-b", 1, {"matchLabels": {"b": ""}})]
    with pytest.raises(DrainError, match=r"node1 .*more than one SriovNetworkPoolConfig.*pool-a, pool-b"):
        pool_slots(nodes[0], nodes, pools, {})


@pytest.mark.parametrize(("value", "why"), [
    ("bla", "strings needs to be a percentage"),
    ("2", "strings needs to be a percentage"),  # JSON "2" is a string; upstream's test used intstr.Parse (int)
    ("10000%", "percentage needs to be between 1 and 100"),
    (-1, "negative number is not allowed"),
])
def test_invalid_max_unavailable_stops_the_drain_naming_the_pool(value: int | str, why: str) -> None:
    nodes = [node("node1", test="")]
    with pytest.raises(DrainError, match=rf"SriovNetworkPoolConfig test-workers: maxUnavailable: .*{why}"):
        pool_slots(nodes[0], nodes, [pool("test-workers", value, TEST_POOL)], {})


# --- pods to evict ------------------------------------------------------------------------------------------------


def pod(name: str, *, requests: dict[str, str] | None = None, limits: dict[str, str] | None = None,
        init_requests: dict[str, str] | None = None, owner: str = "", controller: bool = True,
        mirror: bool = False, phase: str = "Running", more_containers: int = 0) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "default"}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": owner, "name": "x", "uid": "u",
                                    "controller": controller}]
    if mirror:
        meta["annotations"] = {"kubernetes.io/config.mirror": "hash"}
    resources: dict[str, Any] = {}
    if requests is not None:
        resources["requests"] = requests
    if limits is not None:
        resources["limits"] = limits
    containers = [{"name": f"side{i}", "image": "busybox", "resources": {"requests": {"cpu": "1"}}}
                  for i in range(more_containers)]
    containers.append({"name": "app", "image": "busybox", "resources": resources})
    spec: dict[str, Any] = {"nodeName": "node1", "containers": containers}
    if init_requests is not None:
        spec["initContainers"] = [{"name": "init", "image": "busybox", "resources": {"requests": init_requests}}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": {"phase": phase}}


VF = {f"{PREFIX}/mlxnics": "1"}


@pytest.mark.parametrize(("case", "partial", "full"), [
    (pod("vf-user", requests=VF), True, True),
    (pod("vf-user-second-container", requests=VF, more_containers=2), True, True),
    (pod("vf-and-cpu", requests={"cpu": "1", **VF}), True, True),
    (pod("cpu-only", requests={"cpu": "1"}), False, True),
    (pod("no-resources"), False, True),
    (pod("limits-only", limits=VF), False, True),
    (pod("init-container-only", init_requests=VF), False, True),
    (pod("other-prefix", requests={"example.com/mlxnics": "1"}), False, True),
    (pod("prefix-without-slash", requests={f"{PREFIX}x/nic": "1"}), True, True),
    (pod("replicaset", requests=VF, owner="ReplicaSet"), True, True),
    (pod("daemonset", requests=VF, owner="DaemonSet"), False, False),
    (pod("daemonset-plain", owner="DaemonSet"), False, False),
    (pod("mirror", requests=VF, mirror=True), False, False),
    (pod("mirror-plain", mirror=True), False, False),
], ids=lambda v: v["metadata"]["name"] if isinstance(v, dict) else None)
def test_pods_to_evict(case: dict[str, Any], partial: bool, full: bool) -> None:
    """Partial drain (`Drain_Required`): pods whose containers *request* a resource starting with the prefix
    (upstream's `strings.HasPrefix` on `Requests` of `Spec.Containers`); full drain (`Reboot_Required`): every
    pod. Both keep DaemonSet pods and mirror pods, as kubectl's `--ignore-daemonsets` drain does."""
    assert (pods_to_evict([case], full=False, resource_prefix=PREFIX) == [case]) is partial
    assert (pods_to_evict([case], full=True, resource_prefix=PREFIX) == [case]) is full


def test_pods_to_evict_keeps_order_and_uses_the_configured_prefix() -> None:
    pods = [pod("a", requests={"example.com/vdpa": "1"}), pod("b", requests=VF), pod("c"),
            pod("d", requests={"example.com/vdpa": "2"}), pod("e", owner="DaemonSet", requests=VF)]
    assert [p["metadata"]["name"] for p in pods_to_evict(pods, full=False, resource_prefix="example.com")] == \
        ["a", "d"]
    assert [p["metadata"]["name"] for p in pods_to_evict(pods, full=True, resource_prefix="example.com")] == \
        ["a", "b", "c", "d"]
    assert pods_to_evict([], full=True, resource_prefix=PREFIX) == []


def test_daemonset_owner_that_is_not_the_controller_does_not_protect_the_pod() -> None:
    owned = pod("owned-not-controlled", requests=VF, owner="DaemonSet", controller=False)
    assert pods_to_evict([owned], full=True, resource_prefix=PREFIX) == [owned]


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
def test_finished_daemonset_pods_are_removed_on_a_full_drain(phase: str) -> None:
    finished = pod("finished", owner="DaemonSet", phase=phase)
    assert pods_to_evict([finished], full=True, resource_prefix=PREFIX) == [finished]
