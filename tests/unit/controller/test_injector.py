"""The injector's decision: a pod's network annotations and the NADs they name → the JSON patch (applied here, so
the table states the pod that results) or the refusal, against upstream network-resources-injector's rules."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from vdpa_operator.api.jsonpatch import apply_json_patch
from vdpa_operator.controller.injector import (
    DEFAULT_NETWORK_ANNOTATION,
    NETWORKS_ANNOTATION,
    PODNETINFO_MOUNT_PATH,
    PODNETINFO_VOLUME,
    InjectionRefused,
    NadAnnotations,
    NadMissing,
    NetworkSelection,
    injection,
    not_found,
    pod_networks,
    pointer_key,
)

MLX = "openshift.io/mlxnics"
INTEL = "intel.com/sriov"
RESOURCE = "k8s.v1.cni.cncf.io/resourceName"
NADS: dict[tuple[str, str], NadAnnotations] = {
    ("kube-system", "ovn-kubernetes-a"): {RESOURCE: MLX},
    ("vdpa", "ovn-kubernetes-a"): {RESOURCE: MLX},
    ("vdpa", "net-b"): {RESOURCE: MLX},
    ("vdpa", "intel-net"): {RESOURCE: INTEL},
    ("other", "net-c"): {RESOURCE: INTEL},
    ("vdpa", "plain"): {},
    ("vdpa", "pinned"): {RESOURCE: MLX, "k8s.v1.cni.cncf.io/nodeSelector": "vdpa=yes"},
    ("vdpa", "bad-selector"): {"k8s.v1.cni.cncf.io/nodeSelector": "a=b=c"},
}


def pod(annotations: dict[str, str] | None = None, *, namespace: str = "vdpa",
        containers: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The seed's pod (no resources) with other annotations."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "vdpa-pod1", "namespace": namespace, "annotations": annotations or {}},
        "spec": {"containers": containers if containers is not None else [
            {"name": "vdpa-pod", "image": "networkstatic/iperf3", "command": ["sleep", "3600"]}]},
    }


def decide(subject: dict[str, Any], nads: dict[tuple[str, str], NadAnnotations] = NADS,
           namespace: str = "") -> dict[str, Any]:
    """The pod after the webhook's patch (the patch must apply to the pod as sent)."""
    networks = pod_networks(subject, namespace)
    found: dict[tuple[str, str], NadAnnotations | NadMissing] = {
        n.key: nads[n.key] if n.key in nads else not_found(n.name) for n in networks}
    decided = injection(subject, networks, found)
    return apply_json_patch(copy.deepcopy(subject), decided.patch)


def resources(result: dict[str, Any], index: int = 0) -> tuple[dict[str, str], dict[str, str]]:
    got = result["spec"]["containers"][index].get("resources") or {}
    return dict(got.get("requests") or {}), dict(got.get("limits") or {})


@dataclass(frozen=True)
class Case:
    annotations: dict[str, str]
    requests: dict[str, str]
    namespace: str = "vdpa"
    containers: list[dict[str, Any]] | None = None
    limits: dict[str, str] | None = field(default=None)
    """None: same as requests."""


CASES = {
    "seed: default network in kube-system": Case({DEFAULT_NETWORK_ANNOTATION: "kube-system/ovn-kubernetes-a"},
                                                 {MLX: "1"}),
    "default network without namespace: the pod's": Case({DEFAULT_NETWORK_ANNOTATION: "ovn-kubernetes-a"},
                                                         {MLX: "1"}),
    "comma list with spaces and an interface": Case({NETWORKS_ANNOTATION: "net-b@net1, other/net-c"},
                                                    {MLX: "1", INTEL: "1"}),
    "JSON list": Case({NETWORKS_ANNOTATION: json.dumps([
        {"name": "net-b", "interface": "net1"}, {"name": "net-c", "namespace": "other"}])}, {MLX: "1", INTEL: "1"}),
    "same resource from the default and an extra network": Case({
        DEFAULT_NETWORK_ANNOTATION: "kube-system/ovn-kubernetes-a", NETWORKS_ANNOTATION: "net-b"}, {MLX: "2"}),
    "same network twice counts twice": Case({NETWORKS_ANNOTATION: "net-b,net-b@net2"}, {MLX: "2"}),
    "NAD without resourceName adds nothing": Case({NETWORKS_ANNOTATION: "plain,intel-net"}, {INTEL: "1"}),
    "only NADs without resourceName": Case({NETWORKS_ANNOTATION: "plain"}, {}),
    "no network annotations": Case({"other": "x"}, {}),
    "empty annotations are skipped": Case({NETWORKS_ANNOTATION: "", DEFAULT_NETWORK_ANNOTATION: ""}, {}),
    "a request already there is honoured (left as is)": Case(
        {NETWORKS_ANNOTATION: "net-b,intel-net"}, {MLX: "3", INTEL: "1", "cpu": "1"},
        containers=[{"name": "a", "resources": {"requests": {MLX: "3", "cpu": "1"}}}],
        limits={INTEL: "1"}),
    "a limit in another container counts too": Case(
        {NETWORKS_ANNOTATION: "net-b"}, {},
        containers=[{"name": "a"}, {"name": "b", "resources": {"limits": {MLX: "1"}}}]),
    "the first container gets it, next to its own": Case(
        {NETWORKS_ANNOTATION: "net-b"}, {"memory": "1Gi", MLX: "1"},
        containers=[{"name": "a", "resources": {"requests": {"memory": "1Gi"}, "limits": {"memory": "1Gi"}}},
                    {"name": "b"}],
        limits={"memory": "1Gi", MLX: "1"}),
}


@pytest.mark.parametrize("name", CASES)
def test_resources_injected(name: str) -> None:
    case = CASES[name]
    result = decide(pod(case.annotations, namespace=case.namespace, containers=case.containers))
    requests, limits = resources(result)
    assert requests == case.requests
    assert limits == (case.requests if case.limits is None else case.limits)
    for other in range(1, len(result["spec"]["containers"])):
        original = (case.containers or [])[other].get("resources") or {}
        assert result["spec"]["containers"][other].get("resources", {}) == original


REFUSALS = {
    "missing NAD": ({DEFAULT_NETWORK_ANNOTATION: "kube-system/absent"},
                    "could not find network attachment definition 'kube-system/absent': could not get Network "
                    'Attachment Definition kube-system/absent: network-attachment-definitions.k8s.cni.cncf.io '
                    '"absent" not found'),
    "NAD in another namespace than the pod's": ({NETWORKS_ANNOTATION: "net-c"},
                                                "could not find network attachment definition 'vdpa/net-c'"),
    "two slashes": ({NETWORKS_ANNOTATION: "a/b/c"},
                    "pod annotation \"k8s.v1.cni.cncf.io/networks\": error parsing network selection element: "
                    "invalid network selection element - more than one '/' rune in: 'a/b/c'"),
    "two ats": ({NETWORKS_ANNOTATION: "net-b@x@y"}, "more than one '@' rune in: 'net-b@x@y'"),
    "upper case": ({NETWORKS_ANNOTATION: "Net-B"},
                   "at least one of the network selection units is invalid: error found at 'Net-B'"),
    "stray comma": ({NETWORKS_ANNOTATION: "net-b,"}, "an empty element"),
    "bad JSON is read as a comma list": ({NETWORKS_ANNOTATION: '[{"name": "net-b"'},
                                         "at least one of the network selection units is invalid"),
    "JSON element without a name": ({NETWORKS_ANNOTATION: '[{"namespace": "vdpa"}]'},
                                    'item 0: a network selection element needs a "name" string'),
    "JSON namespace not a string": ({NETWORKS_ANNOTATION: '[{"name": "net-b", "namespace": 3}]'},
                                    '"namespace" must be a string'),
    "two default networks": ({DEFAULT_NETWORK_ANNOTATION: "net-b,plain"},
                             "more than one default network is specified: net-b,plain"),
    "NAD node selector with two labels": ({NETWORKS_ANNOTATION: "bad-selector"},
                                          "node selector in net-attach-def bad-selector has more than one label"),
}


@pytest.mark.parametrize("name", REFUSALS)
def test_refusals(name: str) -> None:
    annotations, message = REFUSALS[name]
    with pytest.raises(InjectionRefused) as refused:
        decide(pod(annotations))
    assert message in str(refused.value)


def test_a_pod_with_no_container_is_refused_only_when_it_needs_a_resource() -> None:
    with pytest.raises(InjectionRefused, match="no container"):
        decide(pod({NETWORKS_ANNOTATION: "net-b"}, containers=[]))
    assert decide(pod({NETWORKS_ANNOTATION: "plain"}, containers=[]))["spec"]["containers"] == []


def test_lookup_failures_other_than_404_are_refusals_with_the_apis_answer() -> None:
    subject = pod({NETWORKS_ANNOTATION: "net-b"})
    networks = pod_networks(subject)
    with pytest.raises(InjectionRefused, match="vdpa/net-b: get failed: 403 Forbidden"):
        injection(subject, networks, {("vdpa", "net-b"): NadMissing("get failed: 403 Forbidden")})


def test_namespace_comes_from_the_request_when_the_pod_has_none() -> None:
    subject = pod({NETWORKS_ANNOTATION: "net-b"})
    del subject["metadata"]["namespace"]
    assert pod_networks(subject, "vdpa") == (NetworkSelection("vdpa", "net-b"),)
    assert resources(decide(subject, namespace="vdpa"))[0] == {MLX: "1"}
    # Nowhere to look: upstream lets such a pod be (it may not be a SR-IOV pod at all).
    assert pod_networks(subject, "") == ()


def test_default_network_first_then_the_others_with_their_interfaces() -> None:
    subject = pod({NETWORKS_ANNOTATION: "other/net-c@net2", DEFAULT_NETWORK_ANNOTATION: "kube-system/ovn-kubernetes-a"})
    assert pod_networks(subject) == (NetworkSelection("kube-system", "ovn-kubernetes-a"),
                                     NetworkSelection("other", "net-c", "net2"))


def test_podnetinfo_volume_as_upstream_mounted_in_every_container_once() -> None:
    containers = [{"name": "a"}, {"name": "b", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]
    result = decide(pod({NETWORKS_ANNOTATION: "net-b"}, containers=containers))
    mount = {"name": PODNETINFO_VOLUME, "readOnly": True, "mountPath": PODNETINFO_MOUNT_PATH}
    assert [c["volumeMounts"][-1] for c in result["spec"]["containers"]] == [mount, mount]
    assert result["spec"]["containers"][1]["volumeMounts"][0]["name"] == "data"
    assert result["spec"]["volumes"] == [{"name": PODNETINFO_VOLUME, "downwardAPI": {"items": [
        {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}}]}}]
    again = decide(result)  # the pod as admitted, admitted again: nothing more is added
    assert again == result
    with_labels = pod({NETWORKS_ANNOTATION: "net-b"})
    with_labels["metadata"]["labels"] = {"app": "x"}
    items = decide(with_labels)["spec"]["volumes"][0]["downwardAPI"]["items"]
    assert [i["path"] for i in items] == ["labels", "annotations"]
    assert "volumes" not in decide(pod({NETWORKS_ANNOTATION: "plain"}))["spec"]


def test_nad_node_selector_joins_the_pods() -> None:
    subject = pod({NETWORKS_ANNOTATION: "pinned"})
    subject["spec"]["nodeSelector"] = {"zone": "a"}
    assert decide(subject)["spec"]["nodeSelector"] == {"zone": "a", "vdpa": "yes"}


def test_resource_names_are_escaped_as_json_pointer_tokens() -> None:
    assert pointer_key("openshift.io/mlxnics") == "openshift.io~1mlxnics"
    assert pointer_key("a~b/c") == "a~0b~1c"
    patch = injection(pod(), [NetworkSelection("vdpa", "net-b")], NADS).patch
    assert {"op": "add", "path": "/spec/containers/0/resources/requests/openshift.io~1mlxnics", "value": "1"} in patch
