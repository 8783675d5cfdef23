"""A minimal scheduler: binds each pending pod without a node (and for this scheduler: `schedulerName` empty or
`default-scheduler`) to a Ready, schedulable node it fits, through the `pods/binding` subresource, as
kube-scheduler does. It fits when the node's labels match the pod's nodeSelector and required node affinity
(`matchExpressions` In/NotIn/Exists/DoesNotExist, `matchFields` on metadata.name), and every extended resource
the pod requests is allocatable on the node beyond what the pods already bound there request. cpu and memory
are not counted: a simulated node has the machine's. Of the nodes that fit, the one with the fewest pods wins,
by name on a tie. Several kubelets may run it: the holder of the kube-scheduler Lease schedules, the others
wait (and a binding made twice would be a 409 anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError

from vdpa_operator.kubeclient import ClusterError, api_errors, http_code, new_event, record_event
from vdpa_operator.sim.kubelet.quantity import extended_requests, quantity

logger = logging.getLogger(__name__)

SCHEDULER_NAME = "default-scheduler"
LEASE = "kube-scheduler"
"""kube-scheduler's leader-election Lease, in kube-system: with several kubelets running this scheduler, only
its holder binds, so two never hand out the same devices from caches that lag."""
DONE = ("Succeeded", "Failed")


def _ready(node: Mapping[str, Any]) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _expression(labels: Mapping[str, str], expr: Mapping[str, Any]) -> bool:
    key, op, values = expr.get("key", ""), expr.get("operator", ""), expr.get("values") or []
    if op == "In":
        return key in labels and labels[key] in values
    if op == "NotIn":
        return labels.get(key) not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    return False


def _affinity(pod: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    required = (((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution") or {}
    terms = required.get("nodeSelectorTerms") or []
    if not terms:
        return True
    meta = node.get("metadata") or {}
    labels, fields = meta.get("labels") or {}, {"metadata.name": meta.get("name", "")}
    return any(all(_expression(labels, e) for e in term.get("matchExpressions") or [])
               and all(_expression(fields, e) for e in term.get("matchFields") or []) for term in terms)


def why_not(pod: Mapping[str, Any], node: Mapping[str, Any], bound: Iterable[Mapping[str, Any]]) -> str | None:
    """None when `pod` fits `node` beside the pods `bound` to it, else why not (as the scheduler's event says)."""
    meta, spec = node.get("metadata") or {}, node.get("spec") or {}
    if spec.get("unschedulable"):
        return "node is unschedulable"
    if not _ready(node):
        return "node is not Ready"
    labels = meta.get("labels") or {}
    selector = (pod.get("spec") or {}).get("nodeSelector") or {}
    if any(labels.get(k) != v for k, v in selector.items()) or not _affinity(pod, node):
        return "node didn't match Pod's node affinity/selector"
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    wanted = extended_requests(pod)
    for resource, count in wanted.items():
        used = sum(extended_requests(p).get(resource, 0) for p in bound)
        have = quantity(allocatable.get(resource, "0"))
        if used + count > have:
            return f"Insufficient {resource}"
    return None


def pick(pod: Mapping[str, Any], nodes: Iterable[Mapping[str, Any]],
         pods: Iterable[Mapping[str, Any]]) -> tuple[str | None, dict[str, str]]:
    """(the node to bind to or None, node → why not)."""
    on: dict[str, list[Mapping[str, Any]]] = {}
    for other in pods:
        name = (other.get("spec") or {}).get("nodeName")
        if name and (other.get("status") or {}).get("phase") not in DONE:
            on.setdefault(name, []).append(other)
    fitting, reasons = [], {}
    for node in nodes:
        name = (node.get("metadata") or {}).get("name", "")
        reason = why_not(pod, node, on.get(name, []))
        if reason is None:
            fitting.append((len(on.get(name, [])), name))
        else:
            reasons[name] = reason
    return (min(fitting)[1] if fitting else None), reasons


def pending(pod: Mapping[str, Any]) -> bool:
    spec, meta = pod.get("spec") or {}, pod.get("metadata") or {}
    return (not spec.get("nodeName") and spec.get("schedulerName", SCHEDULER_NAME) in ("", SCHEDULER_NAME)
            and not meta.get("deletionTimestamp") and (pod.get("status") or {}).get("phase") not in DONE)


async def bind(client: AsyncClient, pod: Mapping[str, Any], node: str) -> bool:
    """POST pods/<name>/binding; False when another scheduler bound it first (409) or the pod is gone."""
    from lightkube.models.core_v1 import ObjectReference
    from lightkube.models.meta_v1 import ObjectMeta
    from lightkube.resources.core_v1 import Pod

    meta = pod["metadata"]
    binding = Pod.Binding(metadata=ObjectMeta(name=meta["name"], namespace=meta["namespace"]),
                          target=ObjectReference(kind="Node", name=node, apiVersion="v1"))
    try:
        with api_errors("bind", f"Pod {meta['namespace']}/{meta['name']} to {node}"):
            await client.create(binding, meta["name"], namespace=meta["namespace"])
    except ClusterError as exc:
        if http_code(exc) in (404, 409):
            return False
        if isinstance(exc.__cause__, ApiError) or "unexpected answer" not in str(exc):
            raise
        # 2xx: kube-apiserver answers a binding with a Status, which lightkube cannot read as a Binding.
    return True


def assume(pods: list[dict[str, Any]], assumed: dict[str, str]) -> None:
    """kube-scheduler's assume cache: a pod this scheduler bound counts on its node until the informer shows the
    binding (else the next round, on a cache that lags, would hand its devices out again). Entries the informer
    has caught up with, or whose pod is gone, are dropped."""
    present = set()
    for pod in pods:
        uid = pod["metadata"].get("uid", "")
        present.add(uid)
        if uid in assumed:
            if pod["spec"].get("nodeName"):
                del assumed[uid]
            else:
                pod["spec"]["nodeName"] = assumed[uid]
    for uid in set(assumed) - present:
        del assumed[uid]


async def schedule_once(client: AsyncClient, pods: list[dict[str, Any]], nodes: list[dict[str, Any]],
                        unschedulable: dict[str, str], assumed: dict[str, str]) -> None:
    """Bind what fits now; `unschedulable` (pod key → why) is updated so each reason is logged once, `assumed`
    (pod uid → node) with each binding made."""
    assume(pods, assumed)
    for pod in sorted((p for p in pods if pending(p)), key=lambda p: p["metadata"].get("creationTimestamp", "")):
        key = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
        node, reasons = pick(pod, nodes, pods)
        if node is None:
            reason = "; ".join(f"{n}: {r}" for n, r in sorted(reasons.items())) or "no nodes"
            if unschedulable.get(key) != reason:
                unschedulable[key] = reason
                logger.info("pod %s is unschedulable: %s", key, reason)
                await record_event(client, new_event(_involved(pod), "FailedScheduling", f"0/{len(nodes)} nodes are "
                                                     f"available: {reason}", component=SCHEDULER_NAME, warning=True))
            continue
        unschedulable.pop(key, None)
        if await bind(client, pod, node):
            pod["spec"]["nodeName"] = assumed[pod["metadata"].get("uid", "")] = node
            logger.info("bound pod %s to node %s", key, node)
            await record_event(client, new_event(_involved(pod), "Scheduled",
                                                 f"Successfully assigned {key} to {node}", component=SCHEDULER_NAME))


def _involved(pod: Mapping[str, Any]) -> dict[str, str]:
    meta = pod["metadata"]
    return {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "namespace": meta["namespace"],
            "uid": meta.get("uid", "")}


async def run(client: AsyncClient, pods: Any, nodes: Any, changed: asyncio.Event, interval: float,
              leading: asyncio.Event) -> None:
    """Forever: after each change (or every `interval`), bind what fits, while `leading` is set (one scheduler
    at a time: the holder of the kube-system/kube-scheduler Lease, as kube-scheduler elects one). `pods` and
    `nodes` are Informers."""
    unschedulable: dict[str, str] = {}
    assumed: dict[str, str] = {}
    await pods.synced.wait()
    await nodes.synced.wait()
    while True:
        changed.clear()
        try:
            if leading.is_set():
                await schedule_once(client, [dict(p, spec=dict(p.get("spec") or {})) for p in pods.objects()],
                                    nodes.objects(), unschedulable, assumed)
        except ClusterError as exc:
            logger.warning("scheduling: %s", exc)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(interval):  # not wait_for: on 3.11 it can lose a cancellation
                await changed.wait()
