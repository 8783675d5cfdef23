"""The built-in kinds the operator, daemon, device plugin and kubectl use are served with their own rules:
pod eviction, per-kind field selectors, Secret stringData, generation on apps kinds, RBAC names."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from lightkube.core.exceptions import ApiError
from lightkube.models.apps_v1 import DeploymentSpec
from lightkube.models.core_v1 import Container, PodSpec, PodTemplateSpec
from lightkube.models.meta_v1 import LabelSelector, ObjectMeta
from lightkube.models.rbac_v1 import PolicyRule
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.coordination_v1 import Lease
from lightkube.resources.core_v1 import Pod, Secret
from lightkube.resources.rbac_authorization_v1 import ClusterRole
from lightkube.types import PatchType

from integration.apiserver.storage_support import NS, http, lightkube, running

SERVED = {
    "/api/v1": {"namespaces": False, "nodes": False, "pods": True, "pods/eviction": True, "configmaps": True,
                "secrets": True, "events": True, "services": True, "serviceaccounts": True},
    "/apis/events.k8s.io/v1": {"events": True},
    "/apis/coordination.k8s.io/v1": {"leases": True},
    "/apis/apps/v1": {"deployments": True, "daemonsets": True, "deployments/status": True},
    "/apis/rbac.authorization.k8s.io/v1": {"clusterroles": False, "clusterrolebindings": False, "roles": True,
                                           "rolebindings": True},
    "/apis/admissionregistration.k8s.io/v1": {"mutatingwebhookconfigurations": False,
                                              "validatingwebhookconfigurations": False},
    "/apis/apiextensions.k8s.io/v1": {"customresourcedefinitions": False},
}


def test_discovery_lists_every_built_in_kind_with_its_scope(tmp_path: Path) -> None:
    with running(tmp_path) as api, http(api) as client:
        for path, expected in SERVED.items():
            listed = {r["name"]: r for r in client.get(path).json()["resources"]}
            assert {name: listed[name]["namespaced"] for name in expected} == expected, path
        eviction = {r["name"]: r for r in client.get("/api/v1").json()["resources"]}["pods/eviction"]
        assert (eviction["group"], eviction["version"], eviction["kind"]) == ("policy", "v1", "Eviction")


def test_eviction_deletes_the_pod_and_pods_are_selected_by_node(tmp_path: Path) -> None:
    with running(tmp_path) as api:
        client = lightkube(api)
        spec = PodSpec(containers=[Container(name="c", image="busybox")], nodeName="worker-0")
        client.create(Pod(metadata=ObjectMeta(name="p1"), spec=spec))
        created = client.create(Pod(metadata=ObjectMeta(name="p2", finalizers=["example.com/hold"]), spec=spec))
        client.create(Pod(metadata=ObjectMeta(name="p3"), spec=PodSpec(containers=spec.containers, nodeName="w1")))
        assert created.status.phase == "Pending"
        on_node = client.list(Pod, namespace=NS, fields={"spec.nodeName": "worker-0"})
        assert sorted(p.metadata.name for p in on_node) == ["p1", "p2"]

        client.create(Pod.Eviction(metadata=ObjectMeta(name="p1", namespace=NS)), "p1", namespace=NS)
        client.create(Pod.Eviction(metadata=ObjectMeta(name="p2", namespace=NS)), "p2", namespace=NS)
        assert sorted(p.metadata.name for p in client.list(Pod, namespace=NS)) == ["p2", "p3"]
        assert client.get(Pod, "p2").metadata.deletionTimestamp is not None  # its finalizer holds it
        with pytest.raises(ApiError) as missing:
            client.create(Pod.Eviction(metadata=ObjectMeta(name="p1", namespace=NS)), "p1", namespace=NS)
        assert missing.value.status.code == 404
        with pytest.raises(ApiError) as unsupported:
            list(client.list(Pod, namespace=NS, fields={"spec.image": "busybox"}))
        assert unsupported.value.status.message == 'field label not supported: "spec.image"'


def test_kind_rules_secret_data_generation_and_rbac_names(tmp_path: Path) -> None:
    with running(tmp_path) as api:
        client = lightkube(api)
        secret = client.create(Secret(metadata=ObjectMeta(name="s"), stringData={"token": "abc"}))
        assert secret.type == "Opaque" and secret.data == {"token": base64.b64encode(b"abc").decode()}
        assert secret.stringData is None

        template = PodTemplateSpec(metadata=ObjectMeta(labels={"app": "a"}),
                                   spec=PodSpec(containers=[Container(name="c", image="i")]))
        deployment = client.create(Deployment(metadata=ObjectMeta(name="d"), spec=DeploymentSpec(
            selector=LabelSelector(matchLabels={"app": "a"}), template=template)))
        assert deployment.metadata.generation == 1
        scaled = client.patch(Deployment, "d", {"spec": {"replicas": 3}}, patch_type=PatchType.MERGE)
        assert scaled.metadata.generation == 2
        status = client.patch(Deployment.Status, "d", {"status": {"replicas": 3}}, patch_type=PatchType.MERGE)
        assert status.metadata.generation == 2 and status.status.replicas == 3

        role = client.create(ClusterRole(metadata=ObjectMeta(name="system:sriov-operator"),
                                         rules=[PolicyRule(verbs=["get"], apiGroups=[""], resources=["nodes"])]))
        assert role.metadata.name == "system:sriov-operator"
        lease = client.create(Lease(metadata=ObjectMeta(name="leader")))
        assert lease.metadata.uid
