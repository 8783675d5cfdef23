"""One whole policy sync as a pure function: what upstream's `SriovNetworkNodePolicyReconciler` would write.

Inputs are what the operator lists (policies, nodes, node states, pool configs); outputs are the NodeStates,
the device-plugin ConfigMap and each node's device-plugin label. Side effects that depend on time or on the
API server (owner references, stale-state deletion timers) are reported in `skipped` instead of performed.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from vdpa_operator.api.kube import ConfigMap, Node
from vdpa_operator.api.models import (
    DEFAULT_NAME,
    LabelSelector,
    SriovNetworkNodePolicy,
    SriovNetworkNodeState,
    SriovNetworkNodeStateSpec,
    SriovNetworkPoolConfig,
    SriovOperatorConfig,
)
from vdpa_operator.api.nics import SupportedNics
from vdpa_operator.api.selection import node_selected
from vdpa_operator.render import deviceplugin, nodestate
from vdpa_operator.render.deviceplugin import CONFIGMAP_NAME, DEVICE_PLUGIN_LABEL, ResourcePlan
from vdpa_operator.render.nodestate import PolicyPlan, RenderError, sort_by_priority

__all__ = [
    "CONFIGMAP_NAME",
    "DEFAULT_CONFIG_DAEMON_NODE_SELECTOR",
    "DEVICE_PLUGIN_LABEL",
    "KEEP_UNTIL_ANNOTATION",
    "ClusterRender",
    "RenderError",
    "find_node_pool",
    "label_selector_matches",
    "render_cluster",
    "render_for_config",
]

DEFAULT_CONFIG_DAEMON_NODE_SELECTOR: Mapping[str, str] = {
    "node-role.kubernetes.io/worker": "",
    "kubernetes.io/os": "linux",
}
"""The nodes upstream renders for when `SriovOperatorConfig.spec.configDaemonNodeSelector` is empty."""
KEEP_UNTIL_ANNOTATION = "sriovnetwork.openshift.io/keep-state-until"
"""Set on a NodeState whose node went away; removed again when the node is back."""
MANAGE_SOFTWARE_BRIDGES = "manageSoftwareBridges"
"""The SriovOperatorConfig feature gate that lets policies configure OVS bridges."""

_Namespaced = TypeVar("_Namespaced", SriovNetworkNodeState, SriovNetworkPoolConfig)


@dataclass(frozen=True)
class ClusterRender:
    """Everything one sync writes."""

    node_states: tuple[SriovNetworkNodeState, ...]
    """One per selected node, sorted by name; status as given (it belongs to the node's daemon)."""
    config_map: ConfigMap
    """`device-plugin-config`: node name → the device plugin's JSON config for that node."""
    node_labels: dict[str, str] = field(default_factory=dict)
    """Node name → value of the `sriovnetwork.openshift.io/device-plugin` label (Enabled/Disabled)."""
    skipped: tuple[str, ...] = ()
    """What was ignored or left for later, one readable sentence each."""


def label_selector_matches(selector: LabelSelector | None, labels: Mapping[str, str], *, owner: str = "") -> bool:
    """`metav1.LabelSelectorAsSelector(selector).Matches(labels)`; a missing or empty selector matches all.

    Raises RenderError for requirements the API machinery refuses to turn into a selector."""
    if selector is None:
        return True
    if any(labels.get(key) != value for key, value in selector.match_labels.items()):
        return False
    for requirement in selector.match_expressions:
        key, operator, values = requirement.key, requirement.operator, requirement.values
        if operator in ("In", "NotIn"):
            if not values:
                raise RenderError(f"{owner}: nodeSelector operator {operator} on {key!r} needs values")
            if (operator == "In") != (key in labels and labels[key] in values):
                return False
        elif operator in ("Exists", "DoesNotExist"):
            if values:
                raise RenderError(f"{owner}: nodeSelector operator {operator} on {key!r} takes no values")
            if (operator == "Exists") != (key in labels):
                return False
        else:
            raise RenderError(f"{owner}: {operator!r} is not a valid label selector operator "
                              "(use In, NotIn, Exists or DoesNotExist)")
    return True


def find_node_pool(node: Node, pools: Iterable[SriovNetworkPoolConfig]) -> SriovNetworkPoolConfig | None:
    """The node's SriovNetworkPoolConfig (upstream `findNodePoolConfig`); OVS hw-offload pools are not pools.

    Raises RenderError when the node is in more than one pool or a pool's selector is invalid."""
    matching = []
    for pool in pools:
        if pool.spec.ovs_hardware_offload_config.name:
            continue
        owner = f"SriovNetworkPoolConfig {pool.name}"
        if label_selector_matches(pool.spec.node_selector, node.labels, owner=owner):
            matching.append(pool)
    if len(matching) > 1:
        names = ", ".join(p.name for p in matching)
        raise RenderError(f"node is part of more than one SriovNetworkPoolConfig ({names}); "
                          "make the pools' nodeSelectors disjoint", node=node.name)
    return matching[0] if matching else None


def render_cluster(
    policies: Iterable[SriovNetworkNodePolicy],
    nodes: Iterable[Node],
    node_states: Iterable[SriovNetworkNodeState],
    *,
    namespace: str,
    nics: SupportedNics,
    config_daemon_node_selector: Mapping[str, str] | None = None,
    pool_configs: Sequence[SriovNetworkPoolConfig] = (),
    manage_software_bridges: bool = False,
) -> ClusterRender:
    """Upstream's policy sync: NodeStates, the device-plugin ConfigMap and labels, for the selected nodes.

    Raises RenderError where upstream's reconcile fails (a bad pfNames range, netFilter without NICs, a bad
    bridge policy with `manage_software_bridges`); nothing is written in that case upstream either."""
    skipped: list[str] = []
    watched = []
    for policy in policies:
        if policy.namespace == namespace:
            watched.append(policy)
        else:
            skipped.append(f"SriovNetworkNodePolicy {policy.namespace or '(no namespace)'}/{policy.name}: ignored; "
                           f"the operator only reads policies in {namespace}")
        if policy.name == DEFAULT_NAME and policy.namespace == namespace:
            skipped.append(f"SriovNetworkNodePolicy {namespace}/{DEFAULT_NAME}: ignored; the default "
                           "policy is deprecated")
    sorted_policies = sort_by_priority(watched)
    states = _in_namespace(node_states, namespace, "SriovNetworkNodeState", skipped)
    pools = _in_namespace(pool_configs, namespace, "SriovNetworkPoolConfig", skipped)
    states_by_name = {s.name: s for s in states}

    daemon_selector = config_daemon_node_selector or DEFAULT_CONFIG_DAEMON_NODE_SELECTOR
    selected_nodes = sorted((n for n in nodes if node_selected(daemon_selector, n.labels)), key=lambda n: n.name)
    plans = _NodePlans(sorted_policies, nics)

    rendered_states: list[SriovNetworkNodeState] = []
    config_data: dict[str, str] = {}
    node_labels: dict[str, str] = {}
    # Nodes with the same policies and the same NICs render the same; large clusters are mostly alike.
    # Nodes with the same policies and NICs share one spec object: rendered states are read, never mutated, and
    # a thousand copies of the same spec would be most of the operator's memory.
    spec_cache: dict[Hashable, SriovNetworkNodeStateSpec | None] = {}
    device_plugin_cache: dict[Hashable, tuple[str, str]] = {}
    for node in selected_nodes:
        try:
            pool = find_node_pool(node, pools)
        except RenderError as err:
            skipped.append(f"{err}; rendered without a pool (no rdmaMode), as upstream does")
            pool = None
        rdma_mode = pool.spec.rdma_mode if pool is not None else None
        policy_plans, resource_plans, plans_key = plans.for_node(node.labels)

        existing = states_by_name.get(node.name)
        if existing is None:
            state = _new_state(node.name, namespace, rdma_mode)
            skipped.append(f"SriovNetworkNodeState {namespace}/{node.name}: created with an empty spec; policies "
                           "apply once the node's config daemon reports its NICs")
        else:
            observed = existing.status.interfaces
            spec_key = (plans_key, rdma_mode, nodestate.observed_key(observed))
            if spec_key in spec_cache:
                spec = spec_cache[spec_key]
            else:
                spec_json = nodestate.spec_json_for_plans(
                    policy_plans, node.name, observed, rdma_mode, manage_software_bridges)
                spec = spec_cache[spec_key] = (
                    None if spec_json is None else SriovNetworkNodeStateSpec.model_validate(spec_json))
            if spec is None:
                skipped.append(f"SriovNetworkNodeState {namespace}/{node.name}: status.interfaces is empty (the "
                               "config daemon has not reported NICs yet); spec left as it is")
            state = _updated_state(existing, spec)
        rendered_states.append(state)

        resources_key = (plans_key, deviceplugin.state_key(resource_plans, state))
        cached = device_plugin_cache.get(resources_key)
        if cached is None:
            resources = deviceplugin.render_resources_for_plans(resource_plans, node.name, state)
            cached = (deviceplugin.resource_list_json(resources), deviceplugin.device_plugin_label(resources))
            device_plugin_cache[resources_key] = cached
        config_data[node.name], node_labels[node.name] = cached

    selected_names = {n.name for n in selected_nodes}
    for state_name in sorted(set(states_by_name) - selected_names):
        skipped.append(f"SriovNetworkNodeState {namespace}/{state_name}: its node is not selected; upstream removes "
                       f"the {DEVICE_PLUGIN_LABEL} label from that node, marks the state with "
                       f"{KEEP_UNTIL_ANNOTATION} and deletes it when that time has passed")

    config_map = ConfigMap.model_validate({
        "apiVersion": ConfigMap.API_VERSION,
        "kind": ConfigMap.KIND,
        "metadata": {"name": CONFIGMAP_NAME, "namespace": namespace},
        "data": config_data,
    })
    return ClusterRender(tuple(rendered_states), config_map, node_labels, tuple(skipped))


def render_for_config(
    config: SriovOperatorConfig | None,
    policies: Iterable[SriovNetworkNodePolicy],
    nodes: Iterable[Node],
    node_states: Iterable[SriovNetworkNodeState],
    *,
    namespace: str,
    nics: SupportedNics,
    pool_configs: Sequence[SriovNetworkPoolConfig] = (),
) -> ClusterRender:
    """One pass of the operator's policy sync under `SriovOperatorConfig/default` (None: one with an empty
    spec): what the operator writes for the objects it has stored, and what `vdpactl render` prints. The
    config's `configDaemonNodeSelector` picks the nodes and its `manageSoftwareBridges` feature gate lets
    policies configure bridges."""
    spec = config.spec if config is not None else None
    return render_cluster(
        policies,
        nodes,
        node_states,
        namespace=namespace,
        nics=nics,
        config_daemon_node_selector=spec.config_daemon_node_selector if spec is not None else None,
        pool_configs=pool_configs,
        manage_software_bridges=spec is not None and spec.feature_gates.get(MANAGE_SOFTWARE_BRIDGES, False),
    )


class _NodePlans:
    """Per-policy plans, and which of them apply to a node, computed once per distinct set of relevant labels."""

    def __init__(self, sorted_policies: Sequence[SriovNetworkNodePolicy], nics: SupportedNics) -> None:
        usable = [p for p in sorted_policies if p.name != DEFAULT_NAME]
        self._policies = [(p.spec.node_selector, PolicyPlan.of(p), ResourcePlan.of(p, nics)) for p in usable]
        self._keys = sorted({key for p in usable for key in p.spec.node_selector})
        self._by_labels: dict[tuple[str | None, ...], tuple[tuple[PolicyPlan, ...], tuple[ResourcePlan, ...]]] = {}

    def for_node(
        self, labels: Mapping[str, str]
    ) -> tuple[tuple[PolicyPlan, ...], tuple[ResourcePlan, ...], tuple[str | None, ...]]:
        """The node's plans in apply order, and a key equal for every node that gets the same policies."""
        key = tuple(labels.get(k) for k in self._keys)
        found = self._by_labels.get(key)
        if found is None:
            applying = [(pp, rp) for selector, pp, rp in self._policies if node_selected(selector, labels)]
            found = self._by_labels[key] = (tuple(pp for pp, _ in applying), tuple(rp for _, rp in applying))
        return found[0], found[1], key


def _in_namespace(objects: Iterable[_Namespaced], namespace: str, kind: str, skipped: list[str]) -> list[_Namespaced]:
    """Upstream's cache sees only the operator namespace; an object without a namespace counts as in it."""
    kept = []
    for obj in objects:
        if (obj.namespace or namespace) == namespace:
            kept.append(obj)
        else:
            skipped.append(f"{kind} {obj.namespace}/{obj.name}: ignored; the operator only reads {namespace}")
    return kept


def _new_state(name: str, namespace: str, rdma_mode: str | None) -> SriovNetworkNodeState:
    """What upstream creates for a node without a NodeState: metadata and spec only."""
    return SriovNetworkNodeState.model_validate({
        "apiVersion": SriovNetworkNodeState.API_VERSION,
        "kind": SriovNetworkNodeState.KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"system": {"rdmaMode": rdma_mode}} if rdma_mode else {},
    })


def _updated_state(existing: SriovNetworkNodeState, spec: SriovNetworkNodeStateSpec | None) -> SriovNetworkNodeState:
    """The existing state with the new spec (None: unchanged) and without a pending deletion mark."""
    update: dict[str, object] = {}
    if spec is not None:
        update["spec"] = spec
    annotations = existing.metadata.annotations
    if KEEP_UNTIL_ANNOTATION in annotations:
        kept = {k: v for k, v in annotations.items() if k != KEEP_UNTIL_ANNOTATION}
        update["metadata"] = existing.metadata.model_copy(update={"annotations": kept})
    return existing.model_copy(update=update) if update else existing.model_copy()
