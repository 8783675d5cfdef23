"""Read what verify needs from the API (pods, nodes, NodeStates, config-daemon pods) and turn it into targets and
node views. Every failure to read is a `ClusterError` (the CLI's exit 2)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lightkube import AsyncClient

from vdpa_operator.kubeclient import (
    ClusterError,
    NodeResource,
    NodeStateResource,
    PodResource,
    api_errors,
    get_or_none,
    what,
)
from vdpa_operator.verify.targets import (
    CONFIG_DAEMON_LABEL,
    NodeView,
    PodTarget,
    node_view,
    select_pods,
    vdpa_resources,
)


@dataclass(frozen=True, slots=True)
class Plan:
    targets: list[PodTarget]
    nodes: dict[str, NodeView]
    vdpa_resources: set[str]


async def read_plan(client: AsyncClient, *, operator_namespace: str, resource_prefix: str,
                    namespace: str | None = None, names: Sequence[str] = ()) -> Plan:
    """The pods to check (`names` in `namespace`, or every pod holding a vDPA resource) and their nodes."""
    with api_errors("list", f"SriovNetworkNodeStates in {operator_namespace}"):
        states = [_plain(s) async for s in client.list(NodeStateResource, namespace=operator_namespace)]
    vdpa = vdpa_resources(states, resource_prefix)
    pods = await _pods(client, namespace, names)
    targets = select_pods(pods, vdpa, names)
    with api_errors("list", f"config-daemon pods in {operator_namespace}"):
        daemons = [_plain(p) async for p in client.list(PodResource, namespace=operator_namespace,
                                                        labels={CONFIG_DAEMON_LABEL[0]: CONFIG_DAEMON_LABEL[1]})]
    by_state = {s["metadata"]["name"]: s for s in states}
    nodes = {}
    for name in sorted({t.node for t in targets if t.node}):
        node = await get_or_none(client, NodeResource, name)
        nodes[name] = node_view(name, None if node is None else _plain(node), by_state.get(name), daemons)
    return Plan(targets, nodes, vdpa)


async def _pods(client: AsyncClient, namespace: str | None, names: Sequence[str]) -> list[dict[str, Any]]:
    if not names:
        with api_errors("list", f"pods in {namespace or 'all namespaces'}"):
            return [_plain(p) async for p in client.list(PodResource, namespace=namespace or "*")]
    pods = []
    for name in names:
        pod = await get_or_none(client, PodResource, name, namespace=namespace)
        if pod is None:
            raise ClusterError(f"{what('Pod', name, namespace)} not found; check the name and -n NAMESPACE")
        pods.append(_plain(pod))
    return pods


def _plain(obj: Any) -> dict[str, Any]:
    return dict(obj)
