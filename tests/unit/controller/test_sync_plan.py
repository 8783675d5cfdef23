"""`plan_node_state_writes`: which NodeState and node-label writes one policy sync makes, and when it must run
again to delete a stale NodeState (upstream `syncAllSriovNetworkNodeStates`, `syncSriovNetworkNodeState`,
`handleStaleNodeState`; the stale-state cases port `sriovnetworknodepolicy_controller_test.go`).

Inputs go through the real renderer, and every planned write is applied to an in-memory copy of the cluster with
the project's JSON patch and merge patch (as the API server applies them), so the tests check what the writes do,
not how they are spelled.
"""

from __future__ import annotations

import copy
import datetime
import re
from dataclasses import dataclass, field
from typing import Any

import pytest

import scenario
from vdpa_operator.api.jsonpatch import apply_json_patch, merge_patch
from vdpa_operator.api.kube import Node
from vdpa_operator.api.models import (
    CURRENT_STATE,
    DESIRED_STATE,
    DRAIN_IDLE,
    SriovNetworkNodePolicy,
    SriovNetworkNodeState,
    SriovNetworkPoolConfig,
    SriovOperatorConfig,
)
from vdpa_operator.api.nics import DEFAULT_SUPPORTED_NICS
from vdpa_operator.controller.sync import Write, owner_reference, plan_node_state_writes
from vdpa_operator.render.policy_sync import DEVICE_PLUGIN_LABEL, KEEP_UNTIL_ANNOTATION, render_cluster

NS = "openshift-sriov-network-operator"
SRIOV_CAPABLE = "feature.node.kubernetes.io/network-sriov.capable"
WORKER_LABELS = {SRIOV_CAPABLE: "true", "node-role.kubernetes.io/worker": "", "kubernetes.io/os": "linux"}
NOW = datetime.datetime(2025, 3, 1, 12, 0, 0, 250_000, tzinfo=datetime.UTC)
RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
"""What Go's `t.UTC().Format(time.RFC3339)` prints: whole seconds, `Z`."""

CONFIG = SriovOperatorConfig.model_validate(
    {"metadata": {"name": "default", "namespace": NS, "uid": "config-uid"}, "spec": {}}, by_name=False)
OWNER = owner_reference(CONFIG)
OLD_OWNER = {"apiVersion": "sriovnetwork.openshift.io/v1", "kind": "SriovNetworkNodePolicy", "name": "default",
             "uid": "policy-uid", "controller": True, "blockOwnerDeletion": True}
"""Old operators made the `default` policy own the NodeStates; upstream moves them to the operator config."""


def seed_policy(**spec: Any) -> SriovNetworkNodePolicy:
    raw = scenario.seed_policy_raw()
    raw["spec"].update(spec)
    return SriovNetworkNodePolicy.model_validate(raw, by_name=False)


def cx6dx(port: int) -> dict[str, Any]:
    return {"pciAddress": f"0000:65:00.{port}", "name": f"ens1f{port}", "vendor": "15b3", "deviceID": "101d",
            "driver": "mlx5_core", "totalvfs": 8, "mtu": 1500, "linkType": "ETH", "linkAdminState": "up",
            "eSwitchMode": "legacy", "mac": f"0c:42:a1:5a:10:e{port}"}


def node_raw(name: str, **labels: str | None) -> dict[str, Any]:
    """A worker node; a label given as None is left out."""
    merged = {**WORKER_LABELS, **labels}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {k: v for k, v in merged.items() if v is not None}}}


def state_raw(name: str, *, interfaces: bool = True, annotations: dict[str, str] | None = None,
              owners: list[dict[str, Any]] | None = None, spec: dict[str, Any] | None = None) -> dict[str, Any]:
    """A NodeState as stored: the daemon's status (two ConnectX-6 Dx PFs) and what the server adds."""
    metadata: dict[str, Any] = {"name": name, "namespace": NS, "uid": f"{name}-uid", "resourceVersion": "7"}
    if annotations:
        metadata["annotations"] = dict(annotations)
    if owners is not None:
        metadata["ownerReferences"] = owners
    return {"apiVersion": "sriovnetwork.openshift.io/v1", "kind": "SriovNetworkNodeState", "metadata": metadata,
            "spec": spec or {},
            "status": {"syncStatus": "Succeeded", "interfaces": [cx6dx(0), cx6dx(1)] if interfaces else []}}


def rfc3339(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> datetime.datetime:
    assert RFC3339_UTC.fullmatch(text), f"{text!r} is not an RFC 3339 UTC time as Go formats it"
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)


@dataclass
class Cluster:
    """The objects the sync reads, as the API server stores them; `apply` performs a plan on them."""

    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    policies: list[SriovNetworkNodePolicy] = field(default_factory=list)
    pools: list[SriovNetworkPoolConfig] = field(default_factory=list)

    @classmethod
    def of(cls, nodes: list[dict[str, Any]], states: list[dict[str, Any]], policies: list[SriovNetworkNodePolicy],
           pools: list[SriovNetworkPoolConfig] | None = None) -> Cluster:
        return cls({n["metadata"]["name"]: n for n in nodes}, {s["metadata"]["name"]: s for s in states},
                   policies, pools or [])

    def plan(self, *, now: datetime.datetime = NOW, delay: int = 30) -> tuple[list[Write], datetime.datetime | None]:
        nodes = {name: Node.model_validate(raw) for name, raw in self.nodes.items()}
        live = {name: SriovNetworkNodeState.model_validate(raw, by_name=False) for name, raw in self.states.items()}
        rendered = render_cluster(self.policies, nodes.values(), live.values(), namespace=NS,
                                  nics=DEFAULT_SUPPORTED_NICS, pool_configs=self.pools)
        return plan_node_state_writes(rendered, live, self.states.get, nodes, OWNER, now=now,
                                      stale_delay_minutes=delay)

    def apply(self, writes: list[Write]) -> None:
        for write in writes:
            if write.action == "create":
                assert write.name not in self.states, f"create of existing {write.name}"
                self.states[write.name] = copy.deepcopy(write.body)
            elif write.action == "update":
                self.states[write.name] = apply_json_patch(self.states[write.name], write.body)
            elif write.action == "mark-stale":
                self.states[write.name] = merge_patch(self.states[write.name], write.body)
            elif write.action == "delete":
                del self.states[write.name]
            elif write.action in ("label", "unlabel"):
                self.nodes[write.name] = merge_patch(self.nodes[write.name], write.body)
            else:
                raise AssertionError(f"unknown write {write.describe()}")

    def rendered_spec(self, name: str) -> dict[str, Any]:
        nodes = [Node.model_validate(raw) for raw in self.nodes.values()]
        live = [SriovNetworkNodeState.model_validate(raw, by_name=False) for raw in self.states.values()]
        rendered = render_cluster(self.policies, nodes, live, namespace=NS, nics=DEFAULT_SUPPORTED_NICS,
                                  pool_configs=self.pools)
        [state] = [s for s in rendered.node_states if s.name == name]
        return state.spec.to_go_dict()

    def label(self, name: str) -> str | None:
        value = self.nodes[name]["metadata"].get("labels", {}).get(DEVICE_PLUGIN_LABEL)
        return None if value is None else str(value)

    def annotations(self, name: str) -> dict[str, str]:
        return dict(self.states[name]["metadata"].get("annotations") or {})


def actions(writes: list[Write]) -> list[tuple[str, str]]:
    return [(w.action, w.name) for w in writes]


def pool(name: str, **spec: Any) -> SriovNetworkPoolConfig:
    return SriovNetworkPoolConfig.model_validate({"metadata": {"name": name, "namespace": NS}, "spec": spec},
                                                 by_name=False)


# --- selected nodes -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("pools", "spec"), [
    ([], {}),
    ([pool("rdma", nodeSelector={}, rdmaMode="exclusive")], {"system": {"rdmaMode": "exclusive"}}),
], ids=["no-pool", "pool-rdma-mode"])
def test_new_node_gets_a_node_state_owned_by_the_operator_config(pools: list[SriovNetworkPoolConfig],
                                                                 spec: dict[str, Any]) -> None:
    cluster = Cluster.of([node_raw("worker-0")], [], [seed_policy()], pools)
    writes, next_deletion = cluster.plan()
    [create] = [w for w in writes if w.action == "create"]
    assert create.name == "worker-0"
    assert create.body["metadata"] == {"name": "worker-0", "namespace": NS, "ownerReferences": [OWNER]}
    assert create.body["spec"] == spec
    assert (create.body["apiVersion"], create.body["kind"]) == ("sriovnetwork.openshift.io/v1",
                                                                "SriovNetworkNodeState")
    assert next_deletion is None


def test_owner_reference_is_the_default_config_as_controller() -> None:
    assert OWNER == {"apiVersion": "sriovnetwork.openshift.io/v1", "kind": "SriovOperatorConfig", "name": "default",
                     "uid": "config-uid", "controller": True, "blockOwnerDeletion": True}


@pytest.mark.parametrize("cluster", [
    pytest.param(lambda: Cluster.of([node_raw("worker-0")], [], [seed_policy()]), id="new-node"),
    pytest.param(lambda: Cluster.of([node_raw("worker-0")], [state_raw("worker-0")], [seed_policy()]),
                 id="reported-node"),
    pytest.param(lambda: Cluster.of([node_raw("worker-0"), node_raw("worker-1", **{SRIOV_CAPABLE: None})],
                                    [state_raw("worker-0"), state_raw("worker-1")], [seed_policy()]),
                 id="policy-on-one-of-two"),
    pytest.param(lambda: Cluster.of([node_raw("worker-0")], [state_raw("worker-0", owners=[OLD_OWNER])], []),
                 id="old-owner-no-policy"),
    pytest.param(lambda: Cluster.of([node_raw("worker-0")], [state_raw(
        "worker-0", interfaces=False, annotations={KEEP_UNTIL_ANNOTATION: rfc3339(NOW)})], [seed_policy()]),
        id="marked-node-back-without-nics"),
])
def test_a_second_pass_over_the_written_cluster_writes_nothing(cluster: Any) -> None:
    """Unchanged input → no write: the sync converges after one pass."""
    live: Cluster = cluster()
    first, _ = live.plan()
    assert first, "the first pass has something to do"
    live.apply(first)
    second, next_deletion = live.plan()
    assert second == []
    assert next_deletion is None


def test_spec_change_is_one_json_patch_that_replaces_the_spec_only() -> None:
    cluster = Cluster.of([node_raw("worker-0")], [state_raw("worker-0")], [seed_policy()])
    cluster.apply(cluster.plan()[0])
    # The daemon and the drain controller write annotations and status meanwhile; the update must keep them.
    cluster.states["worker-0"]["metadata"]["annotations"] = {DESIRED_STATE: DRAIN_IDLE, CURRENT_STATE: DRAIN_IDLE}
    before = copy.deepcopy(cluster.states["worker-0"])
    cluster.policies = [seed_policy(numVfs=4)]

    writes, _ = cluster.plan()
    [update] = writes
    assert (update.action, update.name) == ("update", "worker-0")
    assert [op["path"] for op in update.body] == ["/spec"]
    cluster.apply(writes)
    after = cluster.states["worker-0"]
    assert after["spec"] == cluster.rendered_spec("worker-0")
    assert [i["numVfs"] for i in after["spec"]["interfaces"]] == [4, 4]
    assert {k: v for k, v in after.items() if k != "spec"} == {k: v for k, v in before.items() if k != "spec"}


def test_policy_removed_empties_the_spec() -> None:
    cluster = Cluster.of([node_raw("worker-0")], [state_raw("worker-0")], [seed_policy()])
    cluster.apply(cluster.plan()[0])
    assert cluster.states["worker-0"]["spec"]["interfaces"]
    cluster.policies = []
    writes, _ = cluster.plan()
    assert actions(writes) == [("update", "worker-0"), ("label", "worker-0")]
    cluster.apply(writes)
    assert cluster.states["worker-0"]["spec"] == {}
    assert cluster.label("worker-0") == "Disabled"


@pytest.mark.parametrize("owners", [[OLD_OWNER], None, [OWNER, OLD_OWNER]],
                         ids=["old-policy-owner", "no-owner", "extra-owner"])
def test_owner_references_are_set_to_exactly_the_config(owners: list[dict[str, Any]] | None) -> None:
    """Upstream's update copies the rendered state's ownerReferences (only the config) over the stored ones."""
    cluster = Cluster.of([node_raw("worker-0", **{DEVICE_PLUGIN_LABEL: "Disabled"})],
                         [state_raw("worker-0", owners=owners)], [])
    writes, _ = cluster.plan()
    [update] = writes
    assert [op["path"] for op in update.body] == ["/metadata/ownerReferences"]
    cluster.apply(writes)
    assert cluster.states["worker-0"]["metadata"]["ownerReferences"] == [OWNER]


@pytest.mark.parametrize("interfaces", [True, False], ids=["nics-reported", "no-nics-yet"])
def test_keep_until_mark_is_removed_when_the_node_is_selected_again(interfaces: bool) -> None:
    """Upstream `ResetKeepUntilTime` + Update, also when the daemon has not reported NICs (spec left alone)."""
    cluster = Cluster.of([node_raw("worker-0")], [state_raw("worker-0", interfaces=interfaces)], [seed_policy()])
    cluster.apply(cluster.plan()[0])
    spec = copy.deepcopy(cluster.states["worker-0"]["spec"])
    cluster.states["worker-0"]["metadata"]["annotations"] = {
        KEEP_UNTIL_ANNOTATION: rfc3339(NOW + datetime.timedelta(minutes=5)), CURRENT_STATE: DRAIN_IDLE}

    writes, next_deletion = cluster.plan()
    [update] = writes
    assert (update.action, update.name) == ("update", "worker-0")
    assert [op["op"] for op in update.body] == ["remove"]
    assert next_deletion is None
    cluster.apply(writes)
    assert cluster.annotations("worker-0") == {CURRENT_STATE: DRAIN_IDLE}
    assert cluster.states["worker-0"]["spec"] == spec


# --- device-plugin label ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("policies", "current", "expected"), [
    ([seed_policy()], None, "Enabled"),
    ([seed_policy()], "Disabled", "Enabled"),
    ([], None, "Disabled"),
    ([], "Enabled", "Disabled"),
    ([seed_policy()], "Enabled", None),
    ([], "Disabled", None),
], ids=["policy-new", "policy-was-disabled", "none-new", "none-was-enabled", "policy-same", "none-same"])
def test_device_plugin_label_follows_the_policies(policies: list[SriovNetworkNodePolicy], current: str | None,
                                                  expected: str | None) -> None:
    cluster = Cluster.of([node_raw("worker-0", **{DEVICE_PLUGIN_LABEL: current})],
                         [state_raw("worker-0", owners=[OWNER])], policies)
    cluster.states["worker-0"]["spec"] = cluster.rendered_spec("worker-0")
    writes, _ = cluster.plan()
    labels = [w for w in writes if w.action == "label"]
    if expected is None:
        assert writes == []
        return
    assert actions(writes) == [("label", "worker-0")]
    assert labels[0].body == {"metadata": {"labels": {DEVICE_PLUGIN_LABEL: expected}}}
    cluster.apply(writes)
    assert cluster.label("worker-0") == expected
    assert cluster.nodes["worker-0"]["metadata"]["labels"][SRIOV_CAPABLE] == "true"


@pytest.mark.parametrize(("node_left", "label", "unlabelled"), [
    ("unselected", "Enabled", True),
    ("unselected", "Disabled", True),
    ("unselected", None, False),
    ("gone", None, False),
], ids=["unselected-enabled", "unselected-disabled", "unselected-unlabelled", "node-gone"])
def test_device_plugin_label_is_removed_from_a_node_that_lost_its_state(node_left: str, label: str | None,
                                                                        unlabelled: bool) -> None:
    nodes = [node_raw("worker-0")]
    if node_left == "unselected":
        nodes.append(node_raw("worker-1", **{"node-role.kubernetes.io/worker": None, DEVICE_PLUGIN_LABEL: label}))
    cluster = Cluster.of(nodes, [state_raw("worker-0"), state_raw("worker-1")], [seed_policy()])
    writes, _ = cluster.plan()
    unlabels = [w for w in writes if w.action == "unlabel"]
    assert [w.name for w in unlabels] == (["worker-1"] if unlabelled else [])
    assert all(w.name != "worker-1" for w in writes if w.action == "label")
    cluster.apply(writes)
    if node_left == "unselected":
        assert DEVICE_PLUGIN_LABEL not in cluster.nodes["worker-1"]["metadata"]["labels"]
        assert "kubernetes.io/os" in cluster.nodes["worker-1"]["metadata"]["labels"]


# --- stale NodeStates ---------------------------------------------------------------------------------------------


MINUTE = datetime.timedelta(minutes=1)


@pytest.mark.parametrize(("mark", "delay", "expected", "next_deletion"), [
    (None, 30, "mark", NOW + 30 * MINUTE),
    (None, 60, "mark", NOW + 60 * MINUTE),
    (rfc3339(NOW + MINUTE), 30, None, NOW.replace(microsecond=0) + MINUTE),
    (rfc3339(NOW + MINUTE), 60, None, NOW.replace(microsecond=0) + MINUTE),
    (rfc3339(NOW - MINUTE), 30, "delete", None),
    (rfc3339(NOW), 30, "delete", None),
    ("2025-03-01T14:05:00+02:00", 30, None, datetime.datetime(2025, 3, 1, 12, 5, tzinfo=datetime.UTC)),
    ("next tuesday", 30, "mark", NOW + 30 * MINUTE),
    (None, 0, "delete", None),
    (rfc3339(NOW + MINUTE), 0, "delete", None),
], ids=["unmarked", "unmarked-longer-delay", "marked-future", "marked-keeps-its-time", "marked-past",
        "marked-now", "marked-with-offset", "unparsable-mark", "zero-delay", "zero-delay-ignores-mark"])
def test_stale_node_state_is_marked_then_deleted_when_its_time_passes(
        mark: str | None, delay: int, expected: str | None, next_deletion: datetime.datetime | None) -> None:
    annotations = {KEEP_UNTIL_ANNOTATION: mark} if mark is not None else None
    cluster = Cluster.of([], [state_raw("gone", annotations=annotations, owners=[OWNER])], [])

    writes, next_time = cluster.plan(delay=delay)
    assert next_time == next_deletion
    if expected is None:
        assert writes == []
        return
    [write] = writes
    if expected == "delete":
        assert write.action == "delete"
        cluster.apply(writes)
        assert "gone" not in cluster.states
        return
    assert write.action == "mark-stale"
    cluster.apply(writes)
    kept_until = parse_rfc3339(cluster.annotations("gone")[KEEP_UNTIL_ANNOTATION])
    assert kept_until == (NOW + delay * MINUTE).replace(microsecond=0)
    assert cluster.states["gone"]["spec"] == {} and cluster.states["gone"]["status"]["interfaces"]


def test_stale_node_state_lifecycle_over_time() -> None:
    """Upstream's order over successive passes: mark, nothing before expiry, delete after."""
    cluster = Cluster.of([node_raw("worker-0")], [state_raw("worker-0"), state_raw("gone")], [seed_policy()])
    cluster.apply(cluster.plan()[0])
    assert KEEP_UNTIL_ANNOTATION in cluster.annotations("gone")

    kept_until = (NOW + 30 * MINUTE).replace(microsecond=0)
    for before in (NOW + MINUTE, kept_until - datetime.timedelta(seconds=1)):
        writes, next_time = cluster.plan(now=before)
        assert writes == []
        assert next_time == kept_until

    writes, next_time = cluster.plan(now=kept_until)  # upstream deletes unless now.Before(keepUntil)
    assert actions(writes) == [("delete", "gone")]
    assert next_time is None
    cluster.apply(writes)
    assert cluster.plan(now=NOW + 31 * MINUTE) == ([], None)


def test_next_deletion_is_the_earliest_of_the_stale_states() -> None:
    cluster = Cluster.of([node_raw("worker-0")], [
        state_raw("worker-0"),
        state_raw("gone-late", annotations={KEEP_UNTIL_ANNOTATION: rfc3339(NOW + 20 * MINUTE)}),
        state_raw("gone-soon", annotations={KEEP_UNTIL_ANNOTATION: rfc3339(NOW + 5 * MINUTE)}),
        state_raw("gone-unmarked"),
        state_raw("gone-expired", annotations={KEEP_UNTIL_ANNOTATION: rfc3339(NOW - MINUTE)}),
    ], [])
    writes, next_time = cluster.plan(delay=10)
    assert {(w.action, w.name) for w in writes if w.name.startswith("gone")} == {
        ("mark-stale", "gone-unmarked"), ("delete", "gone-expired")}
    assert next_time == (NOW + 5 * MINUTE).replace(microsecond=0)


def test_node_back_before_expiry_keeps_its_state() -> None:
    cluster = Cluster.of([node_raw("worker-0"), node_raw("worker-1", **{"kubernetes.io/os": "windows"})],
                         [state_raw("worker-0"), state_raw("worker-1")], [seed_policy()])
    cluster.apply(cluster.plan()[0])
    assert KEEP_UNTIL_ANNOTATION in cluster.annotations("worker-1")
    cluster.nodes["worker-1"]["metadata"]["labels"]["kubernetes.io/os"] = "linux"
    writes, next_time = cluster.plan(now=NOW + 10 * MINUTE)
    assert ("delete", "worker-1") not in actions(writes)
    assert next_time is None
    cluster.apply(writes)
    assert KEEP_UNTIL_ANNOTATION not in cluster.annotations("worker-1")
    assert cluster.states["worker-1"]["spec"] == cluster.rendered_spec("worker-1")


def test_keep_until_mark_without_time_zone_is_replaced_like_any_unparsable_mark() -> None:
    cluster = Cluster.of([node_raw("worker-0")], [
        state_raw("worker-0"), state_raw("gone", annotations={KEEP_UNTIL_ANNOTATION: "2025-03-01T11:00:00"})], [])
    writes, next_time = cluster.plan()
    assert [(w.action, w.name) for w in writes if w.name == "gone"] == [("mark-stale", "gone")]
    assert next_time == NOW + 30 * MINUTE
