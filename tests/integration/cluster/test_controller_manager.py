"""The simulated cluster's controller manager against the embedded API server: DaemonSets and Deployments become
the pods upstream's controllers would make (one per matching node, bound; `replicas`, for the scheduler), a
deleted pod comes back, a node that stops matching loses its pod, a new template replaces the pods, and the
workloads' status counts ready pods the way `kubectl rollout status` reads it."""

from __future__ import annotations

from typing import Any

from vdpa_operator.sim.apiserver import ServerHandle
from vdpa_operator.sim.cluster.apiclient import AdminClient
from vdpa_operator.sim.cluster.controllermanager import sync

NS = "openshift-sriov-network-operator"


def _node(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}}


def _template(args: list[str], selector: dict[str, str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "main", "image": "vdpa-operator:0.1.0", "args": args}]}
    if selector:
        spec["nodeSelector"] = selector
    return {"metadata": {"labels": {"app": "x"}}, "spec": spec}


def _daemonset(args: list[str]) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "plugin", "namespace": NS},
            "spec": {"selector": {"matchLabels": {"app": "x"}},
                     "template": _template(args, {"sriovnetwork.openshift.io/device-plugin": "Enabled"})}}


def _pods(client: AdminClient) -> dict[str, dict[str, Any]]:
    return {p["metadata"]["name"]: p for p in client.items(f"/api/v1/namespaces/{NS}/pods")}


def _by_node(client: AdminClient) -> dict[str | None, list[str]]:
    found: dict[str | None, list[str]] = {}
    for name, pod in sorted(_pods(client).items()):
        found.setdefault(pod["spec"].get("nodeName"), []).append(name)
    return found


def test_workloads_become_pods_and_stay_so(server: ServerHandle) -> None:
    with AdminClient(server.kubeconfig_path) as client:
        for name, labels in (("worker-0", {"sriovnetwork.openshift.io/device-plugin": "Enabled"}), ("worker-1", {})):
            assert client.create("/api/v1/nodes", _node(name, labels))
        assert client.create(f"/apis/apps/v1/namespaces/{NS}/daemonsets", _daemonset(["device-plugin"]))
        deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "op", "namespace": NS},
                      "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "x"}},
                               "template": _template(["operator"])}}
        assert client.create(f"/apis/apps/v1/namespaces/{NS}/deployments", deployment)

        sync(client)
        placed = _by_node(client)
        assert len(placed["worker-0"]) == 1 and "worker-1" not in placed, placed
        assert len(placed[None]) == 2, "a Deployment's pods are left to the scheduler"
        [plugin] = placed["worker-0"]
        pod = _pods(client)[plugin]
        assert pod["spec"]["containers"][0]["args"] == ["device-plugin"]
        assert pod["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet"
        sync(client)
        assert _by_node(client) == placed, "a second round changes nothing"

        client.delete(f"/api/v1/namespaces/{NS}/pods/{plugin}")
        sync(client)
        assert _by_node(client)["worker-0"] == [plugin], "a deleted pod comes back, under its name"

        client.patch(f"/apis/apps/v1/namespaces/{NS}/daemonsets/plugin",
                     {"spec": {"template": _template(["device-plugin", "-v"],
                                                     {"sriovnetwork.openshift.io/device-plugin": "Enabled"})}})
        sync(client)  # the old template's pod goes
        sync(client)  # and the new one comes
        [replaced] = _by_node(client)["worker-0"]
        assert _pods(client)[replaced]["spec"]["containers"][0]["args"] == ["device-plugin", "-v"]

        client.patch("/api/v1/nodes/worker-0", {"metadata": {"labels": {
            "sriovnetwork.openshift.io/device-plugin": None}}})
        sync(client)
        assert "worker-0" not in _by_node(client), "a node the selector no longer matches loses its pod"

        ds = client.get(f"/apis/apps/v1/namespaces/{NS}/daemonsets/plugin")
        assert ds["status"]["desiredNumberScheduled"] == 0
        op = client.get(f"/apis/apps/v1/namespaces/{NS}/deployments/op")
        assert op["status"]["replicas"] == 2 and op["status"]["readyReplicas"] == 0
