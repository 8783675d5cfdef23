"""What the storage-semantics tests share: a server with the operator namespace, clients for it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2 as httpx
from lightkube import Client
from lightkube.config.kubeconfig import KubeConfig
from lightkube.generic_resource import create_namespaced_resource

from vdpa_operator.sim.apiserver import ServerHandle, default_store, serve_in_thread
from vdpa_operator.sim.apiserver.resources import BUILTIN_NAMESPACES

NS = "openshift-sriov-network-operator"
GROUP = "sriovnetwork.openshift.io"
POLICIES = f"/apis/{GROUP}/v1/namespaces/{NS}/sriovnetworknodepolicies"
STATES = f"/apis/{GROUP}/v1/namespaces/{NS}/sriovnetworknodestates"
CONFIGMAPS = "/api/v1/namespaces/default/configmaps"
MERGE = {"Content-Type": "application/merge-patch+json"}
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
WIDGETS = "/apis/example.com/v1/namespaces/default/widgets"

Policy = create_namespaced_resource(GROUP, "v1", "SriovNetworkNodePolicy", "sriovnetworknodepolicies")
NodeState = create_namespaced_resource(GROUP, "v1", "SriovNetworkNodeState", "sriovnetworknodestates")


@contextmanager
def running(tmp_path: Path, **store_kwargs: Any) -> Iterator[ServerHandle]:
    """A server whose store has the operator namespace (as deploy/namespace.yaml makes it); kwargs go to Store."""
    store = default_store(namespaces=(*BUILTIN_NAMESPACES, NS), **store_kwargs)
    handle = serve_in_thread(tmp_path / "kubeconfig", store=store)
    try:
        yield handle
    finally:
        handle.stop()


def lightkube(api: ServerHandle) -> Client:
    return Client(KubeConfig.from_file(api.kubeconfig_path), namespace=NS, field_manager="tests")


def http(api: ServerHandle) -> httpx.Client:
    return httpx.Client(base_url=api.url, headers=api.headers, verify=api.verify, timeout=5)


def policy(name: str, **spec: Any) -> dict[str, Any]:
    """A valid policy; `spec` overrides (None removes a field)."""
    body = {"resourceName": "vdpa", "numVfs": 4, "nodeSelector": {}, "nicSelector": {"vendor": "15b3"}, **spec}
    return {"apiVersion": f"{GROUP}/v1", "kind": "SriovNetworkNodePolicy", "metadata": {"name": name, "namespace": NS},
            "spec": {k: v for k, v in body.items() if v is not None}}


def watch_events(client: httpx.Client, path: str, count: int, **params: str) -> list[dict[str, Any]]:
    """The first `count` events of a watch (fewer if the server ends it first)."""
    events: list[dict[str, Any]] = []
    with client.stream("GET", path, params={"watch": "true", "timeoutSeconds": "5", **params}) as resp:
        assert resp.status_code == 200, resp.read()
        for line in resp.iter_lines():
            events.append(json.loads(line))
            if len(events) == count:
                break
    return events


def widget_crd(**size: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"],
                      "categories": ["all"]},
            "versions": [{
                "name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                "additionalPrinterColumns": [{"name": "Color", "type": "string", "jsonPath": ".spec.color"}],
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {
                        "color": {"type": "string", "enum": ["red", "blue"]},
                        "size": {"type": "integer", **size},
                    }},
                    "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                }}},
            }],
        },
    }
