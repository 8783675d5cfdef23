"""What pods the cluster's workloads want, as the DaemonSet and Deployment controllers of kube-controller-manager
decide it, reduced to what deploy/ needs: a DaemonSet wants one pod on every Node its template's nodeSelector
matches (bound to it: `spec.nodeName`), a Deployment `replicas` pods for the scheduler to bind. Pure: objects
in, pods out; `controllermanager` reconciles the cluster towards them.

Pod names are stable (a hash of the owner's uid and, for a DaemonSet, the node; for a Deployment, the replica
index), so wanting the same pod twice is creating it once. Each pod carries its template's hash in the label
`pod-template-hash`: a pod of an older template is replaced (upstream's rolling update, one step).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]
TEMPLATE_HASH = "pod-template-hash"
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
"""k8s.io/apimachinery's rand.SafeEncodeString alphabet: no vowels, no look-alikes."""


def _suffix(*parts: str, length: int = 5) -> str:
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    return "".join(_ALPHABET[b % len(_ALPHABET)] for b in digest[:length])


def template_hash(workload: Mapping[str, Any]) -> str:
    template = workload.get("spec", {}).get("template", {})
    return _suffix(json.dumps(template, sort_keys=True), length=10)


def selects(node: Mapping[str, Any], template: Mapping[str, Any]) -> bool:
    """The template's nodeSelector matches the Node's labels (every key, exact value)."""
    wanted = (template.get("spec") or {}).get("nodeSelector") or {}
    labels = (node.get("metadata") or {}).get("labels") or {}
    return all(labels.get(key) == value for key, value in wanted.items())


@dataclass(frozen=True)
class WantedPod:
    namespace: str
    name: str
    owner_uid: str
    template_hash: str
    body: Obj


def _pod(workload: Mapping[str, Any], kind: str, name: str, node: str | None) -> WantedPod:
    meta, template = workload["metadata"], workload.get("spec", {}).get("template", {})
    digest = template_hash(workload)
    pod_meta = copy.deepcopy(template.get("metadata") or {})
    pod_meta.update(name=name, namespace=meta["namespace"])
    pod_meta["labels"] = {**(pod_meta.get("labels") or {}), TEMPLATE_HASH: digest}
    pod_meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": kind, "name": meta["name"], "uid": meta["uid"],
                                    "controller": True, "blockOwnerDeletion": True}]
    spec = copy.deepcopy(template.get("spec") or {})
    if node is not None:
        spec["nodeName"] = node
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": spec}
    return WantedPod(meta["namespace"], name, meta["uid"], digest, body)


def daemonset_pods(daemonset: Mapping[str, Any], nodes: Iterable[Mapping[str, Any]]) -> list[WantedPod]:
    template = daemonset.get("spec", {}).get("template", {})
    meta = daemonset["metadata"]
    return [_pod(daemonset, "DaemonSet", f"{meta['name']}-{_suffix(meta['uid'], node['metadata']['name'])}",
                 node["metadata"]["name"])
            for node in nodes if selects(node, template)]


def deployment_pods(deployment: Mapping[str, Any]) -> list[WantedPod]:
    meta = deployment["metadata"]
    replicas = deployment.get("spec", {}).get("replicas", 1)
    digest = template_hash(deployment)
    return [_pod(deployment, "Deployment", f"{meta['name']}-{digest}-{_suffix(meta['uid'], str(i))}", None)
            for i in range(replicas)]


def owner_uid(pod: Mapping[str, Any]) -> str | None:
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") in ("DaemonSet", "Deployment"):
            return str(ref.get("uid"))
    return None


@dataclass(frozen=True)
class Changes:
    create: list[WantedPod]
    delete: list[tuple[str, str]]
    """(namespace, name) of pods no workload wants any more, or of an older template."""


def reconcile(wanted: Iterable[WantedPod], pods: Iterable[Mapping[str, Any]], owners: set[str]) -> Changes:
    """What to create and delete so that the pods owned by `owners` are exactly `wanted`."""
    wanted_by_key = {(w.namespace, w.name): w for w in wanted}
    existing: dict[tuple[str, str], Mapping[str, Any]] = {}
    delete = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        key = (meta.get("namespace", ""), meta.get("name", ""))
        if owner_uid(pod) not in owners:
            continue
        want = wanted_by_key.get(key)
        if want is None or (meta.get("labels") or {}).get(TEMPLATE_HASH) != want.template_hash:
            if not meta.get("deletionTimestamp"):
                delete.append(key)
        else:
            existing[key] = pod
    create = [w for key, w in wanted_by_key.items() if key not in existing and key not in delete]
    return Changes(create, delete)


def running(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running"


def ready(pod: Mapping[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
