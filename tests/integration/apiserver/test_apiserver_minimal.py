"""The embedded API server over real HTTP: what clients rely on from kube-apiserver (CRUD, conflicts, generation,
the status subresource, patch types, watch order, 410 after compaction, discovery)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from vdpa_operator.sim.apiserver import ServerHandle, default_store, serve_in_thread
from vdpa_operator.sim.apiserver.resources import BUILTIN_NAMESPACES

NS = "openshift-sriov-network-operator"
STATES = f"/apis/sriovnetwork.openshift.io/v1/namespaces/{NS}/sriovnetworknodestates"
CONFIGMAPS = "/api/v1/namespaces/default/configmaps"
MERGE = {"Content-Type": "application/merge-patch+json"}
JSON_PATCH = {"Content-Type": "application/json-patch+json"}
STRATEGIC = {"Content-Type": "application/strategic-merge-patch+json"}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ServerHandle]:
    # The operator namespace exists, as deploy/namespace.yaml makes it in a cluster.
    handle = serve_in_thread(tmp_path / "kubeconfig", store=default_store(namespaces=(*BUILTIN_NAMESPACES, NS)))
    yield handle
    handle.stop()


@pytest.fixture
def http(api: ServerHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.url, headers=api.headers, verify=api.verify, timeout=5) as client:
        yield client


def node_state(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "sriovnetwork.openshift.io/v1",
        "kind": "SriovNetworkNodeState",
        "metadata": {"name": name},
        "spec": {"interfaces": [{"pciAddress": "0000:65:00.0", "numVfs": 2}]},
        **extra,
    }


def rv(obj: dict[str, Any]) -> int:
    return int(obj["metadata"]["resourceVersion"])


def watch_lines(http: httpx.Client, path: str, count: int, **params: str) -> list[dict[str, Any]]:
    """The first `count` events of a watch (the stream is then dropped by the client)."""
    events: list[dict[str, Any]] = []
    with http.stream("GET", path, params={"watch": "true", "timeoutSeconds": "5", **params}) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            events.append(json.loads(line))
            if len(events) == count:
                break
    return events


def test_discovery_lists_core_kinds_and_the_project_crds_with_status(http: httpx.Client, api: ServerHandle) -> None:
    assert http.get("/version").json()["major"] == "1"
    assert http.get("/api").json()["versions"] == ["v1"]
    core = {r["name"]: r for r in http.get("/api/v1").json()["resources"]}
    assert core["nodes"]["namespaced"] is False and core["configmaps"]["namespaced"] is True
    assert {"namespaces", "events", "nodes/status"} <= set(core)
    groups = {g["name"]: g for g in http.get("/apis").json()["groups"]}
    assert groups["sriovnetwork.openshift.io"]["preferredVersion"]["groupVersion"] == "sriovnetwork.openshift.io/v1"
    sriov = {r["name"]: r for r in http.get("/apis/sriovnetwork.openshift.io/v1").json()["resources"]}
    assert sriov["sriovnetworknodestates"]["kind"] == "SriovNetworkNodeState"
    assert sriov["sriovnetworknodestates/status"]["verbs"] == ["get", "patch", "update"]
    assert "sriovoperatorconfigs" in sriov and "sriovnetworknodepolicies" in sriov
    kubeconfig = api.kubeconfig_path.read_text()
    assert api.url in kubeconfig


def test_crud_and_kubernetes_status_errors(http: httpx.Client) -> None:
    cm = {"metadata": {"name": "a", "labels": {"app": "x"}}, "data": {"k": "v"}}
    created = http.post(CONFIGMAPS, json=cm)
    assert created.status_code == 201
    body = created.json()
    assert body["apiVersion"] == "v1" and body["kind"] == "ConfigMap"
    assert body["metadata"]["namespace"] == "default" and body["metadata"]["uid"]
    assert "generation" not in body["metadata"]  # core kinds here do not track generation

    again = http.post(CONFIGMAPS, json=cm)
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/json"
    assert again.json() | {"details": None} == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'configmaps "a" already exists', "reason": "AlreadyExists", "code": 409, "details": None,
    }

    http.post(CONFIGMAPS, json={"metadata": {"name": "b", "labels": {"app": "y"}}})
    names = [i["metadata"]["name"] for i in http.get(CONFIGMAPS).json()["items"]]
    assert names == ["a", "b"]
    by_field = http.get(CONFIGMAPS, params={"fieldSelector": "metadata.name=b"}).json()
    assert [i["metadata"]["name"] for i in by_field["items"]] == ["b"]
    by_label = http.get(CONFIGMAPS, params={"labelSelector": "app=x"}).json()
    assert [i["metadata"]["name"] for i in by_label["items"]] == ["a"]
    assert http.get(CONFIGMAPS, params={"labelSelector": "app!=x"}).json()["items"][0]["metadata"]["name"] == "b"
    bad_field = http.get(CONFIGMAPS, params={"fieldSelector": "data.k=v"})
    assert bad_field.status_code == 400 and bad_field.json()["reason"] == "BadRequest"
    assert http.get("/api/v1/configmaps").json()["kind"] == "ConfigMapList"  # all namespaces

    current = http.get(f"{CONFIGMAPS}/a").json()
    current["data"] = {"k": "w"}
    replaced = http.put(f"{CONFIGMAPS}/a", json=current)
    assert replaced.status_code == 200 and replaced.json()["data"] == {"k": "w"}
    assert rv(replaced.json()) > rv(current)

    deleted = http.delete(f"{CONFIGMAPS}/a")
    assert deleted.status_code == 200 and deleted.json()["metadata"]["name"] == "a"
    missing = http.get(f"{CONFIGMAPS}/a")
    assert missing.status_code == 404
    assert (missing.json()["reason"], missing.json()["message"]) == ("NotFound", 'configmaps "a" not found')
    assert http.get("/apis/nosuch.example.com/v1/things").status_code == 404


def test_put_with_a_stale_resource_version_is_a_conflict(http: httpx.Client) -> None:
    first = http.post(STATES, json=node_state("n1")).json()
    fresh = http.patch(f"{STATES}/n1", json={"metadata": {"labels": {"a": "b"}}}, headers=MERGE).json()
    assert rv(fresh) > rv(first)

    stale = http.put(f"{STATES}/n1", json=first)
    assert stale.status_code == 409 and stale.json()["reason"] == "Conflict"
    assert "the object has been modified" in stale.json()["message"]
    assert http.put(f"{STATES}/n1", json=fresh).status_code == 200

    unconditional = {**fresh, "metadata": {k: v for k, v in fresh["metadata"].items() if k != "resourceVersion"}}
    refused = http.put(f"{STATES}/n1", json=unconditional)  # custom resources need a resourceVersion
    assert refused.status_code == 422 and refused.json()["reason"] == "Invalid"

    stale_patch = http.patch(
        f"{STATES}/n1", json={"metadata": {"resourceVersion": str(rv(first))}, "spec": {}}, headers=MERGE
    )
    assert stale_patch.status_code == 409


def test_generation_counts_spec_changes_only(http: httpx.Client) -> None:
    created = http.post(STATES, json=node_state("n1")).json()
    assert created["metadata"]["generation"] == 1

    annotated = http.patch(f"{STATES}/n1", json={"metadata": {"annotations": {"x": "y"}}}, headers=MERGE).json()
    assert annotated["metadata"]["generation"] == 1 and rv(annotated) > rv(created)

    status = http.patch(f"{STATES}/n1/status", json={"status": {"syncStatus": "Succeeded"}}, headers=MERGE).json()
    assert status["metadata"]["generation"] == 1

    respec = http.patch(f"{STATES}/n1", json={"spec": {"interfaces": []}}, headers=MERGE).json()
    assert respec["metadata"]["generation"] == 2

    same = http.patch(f"{STATES}/n1", json={"spec": {"interfaces": []}}, headers=MERGE).json()
    assert same["metadata"]["generation"] == 2
    assert rv(same) == rv(respec)  # a write that changes nothing is no write


def test_status_subresource_is_the_only_way_to_write_status(http: httpx.Client) -> None:
    created = http.post(STATES, json=node_state("n1", status={"syncStatus": "Failed"})).json()
    assert "status" not in created  # dropped on create, as for any CRD with the status subresource

    main = http.patch(f"{STATES}/n1", json={"status": {"syncStatus": "Failed"}}, headers=MERGE).json()
    assert "status" not in main

    patched = http.patch(
        f"{STATES}/n1/status",
        json={"status": {"syncStatus": "Succeeded"}, "spec": {"interfaces": []}, "metadata": {"labels": {"a": "b"}}},
        headers=MERGE,
    ).json()
    assert patched["status"] == {"syncStatus": "Succeeded"}
    assert patched["spec"] == created["spec"]  # spec and metadata changes through /status are ignored
    assert "labels" not in patched["metadata"]

    current = http.get(f"{STATES}/n1/status").json()
    current["status"]["lastSyncError"] = "boom"
    put = http.put(f"{STATES}/n1/status", json=current)
    assert put.status_code == 200 and put.json()["status"]["lastSyncError"] == "boom"

    replaced = put.json()
    replaced["status"] = {"syncStatus": "InProgress"}
    after_main_put = http.put(f"{STATES}/n1", json=replaced).json()
    assert after_main_put["status"]["syncStatus"] == "Succeeded"
    assert http.get("/api/v1/namespaces/default/configmaps/x/status").status_code == 404


def test_node_status_is_kept_on_create_and_then_written_only_through_status(http: httpx.Client) -> None:
    capacity = {"capacity": {"openshift.io/mlxnics": "2"}}
    created = http.post("/api/v1/nodes", json={"metadata": {"name": "w1"}, "status": capacity}).json()
    assert created["status"] == capacity and "namespace" not in created["metadata"]
    ignored = http.patch("/api/v1/nodes/w1", json={"status": {"capacity": {}}}, headers=MERGE).json()
    assert ignored["status"] == capacity
    changed = http.patch("/api/v1/nodes/w1/status", json={"status": {"capacity": None}}, headers=STRATEGIC).json()
    assert changed["status"] == {}


def test_patch_content_types(http: httpx.Client) -> None:
    http.post(CONFIGMAPS, json={"metadata": {"name": "a"}, "data": {"k": "v", "gone": "x"}})
    merged = http.patch(f"{CONFIGMAPS}/a", json={"data": {"k2": "v2", "gone": None}}, headers=MERGE).json()
    assert merged["data"] == {"k": "v", "k2": "v2"}

    ops = [{"op": "replace", "path": "/data/k", "value": "w"}, {"op": "add", "path": "/metadata/labels", "value": {}}]
    patched = http.patch(f"{CONFIGMAPS}/a", json=ops, headers=JSON_PATCH).json()
    assert patched["data"]["k"] == "w" and patched["metadata"]["labels"] == {}
    not_a_list = http.patch(f"{CONFIGMAPS}/a", json={"data": {}}, headers=JSON_PATCH)
    assert not_a_list.status_code == 400 and not_a_list.json()["reason"] == "BadRequest"
    failed_test = http.patch(f"{CONFIGMAPS}/a", json=[{"op": "test", "path": "/data/k", "value": "v"}],
                             headers=JSON_PATCH)
    assert failed_test.status_code == 422

    strategic = http.patch(f"{CONFIGMAPS}/a", json={"data": {"k3": "v3"}}, headers=STRATEGIC)
    assert strategic.status_code == 200 and strategic.json()["data"]["k3"] == "v3"

    http.post(STATES, json=node_state("n1"))
    on_crd = http.patch(f"{STATES}/n1", json={"spec": {}}, headers=STRATEGIC)
    assert on_crd.status_code == 415  # as kube-apiserver: custom resources take no strategic merge patch
    assert on_crd.json()["reason"] == "UnsupportedMediaType"


def test_watch_replays_then_streams_in_resource_version_order(http: httpx.Client) -> None:
    start = rv(http.post(CONFIGMAPS, json={"metadata": {"name": "before"}}).json())
    http.post(STATES, json=node_state("n1"))
    http.patch(f"{STATES}/n1", json={"metadata": {"labels": {"a": "b"}}}, headers=MERGE)

    with http.stream("GET", STATES, params={"watch": "True", "resourceVersion": str(start)}) as resp:
        lines = resp.iter_lines()
        replayed = [json.loads(next(lines)) for _ in range(2)]
        http.post(STATES, json=node_state("n2"))
        http.delete(f"{STATES}/n1")
        live = [json.loads(next(lines)) for _ in range(2)]
    events = replayed + live
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "n1"), ("MODIFIED", "n1"), ("ADDED", "n2"), ("DELETED", "n1"),
    ]
    versions = [rv(e["object"]) for e in events]
    assert versions == sorted(versions) and len(set(versions)) == 4

    # No version: the current objects as synthetic ADDED events; a field selector narrows to one object.
    assert [e["object"]["metadata"]["name"] for e in watch_lines(http, STATES, 1)] == ["n2"]
    http.post(STATES, json=node_state("n3"))
    named = watch_lines(http, STATES, 1, resourceVersion=str(start), fieldSelector="metadata.name=n3")
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in named] == [("ADDED", "n3")]


def test_watch_from_a_compacted_version_gets_410_and_the_current_version_works(
    http: httpx.Client, api: ServerHandle
) -> None:
    old = rv(http.post(STATES, json=node_state("n1")).json())
    http.patch(f"{STATES}/n1", json={"metadata": {"labels": {"a": "b"}}}, headers=MERGE)
    api.compact(keep_last=0)

    [event] = watch_lines(http, STATES, 1, resourceVersion=str(old))
    assert event["type"] == "ERROR"
    assert event["object"]["kind"] == "Status" and event["object"]["code"] == 410
    assert event["object"]["reason"] == "Expired"  # what kube-apiserver says for a compacted version

    listing = http.get(STATES).json()
    with http.stream("GET", STATES, params={"watch": "1", "resourceVersion": listing["metadata"]["resourceVersion"]}
                     ) as resp:
        http.post(STATES, json=node_state("n2"))
        first = json.loads(next(resp.iter_lines()))
    assert (first["type"], first["object"]["metadata"]["name"]) == ("ADDED", "n2")


def test_watch_ends_at_timeout_and_at_shutdown(http: httpx.Client, api: ServerHandle) -> None:
    began = time.monotonic()
    with http.stream("GET", STATES, params={"watch": "true", "timeoutSeconds": "0.2"}) as resp:
        assert list(resp.iter_lines()) == []
    assert time.monotonic() - began < 2

    with http.stream("GET", STATES, params={"watch": "true"}) as resp:
        began = time.monotonic()
        api.stop()
        assert list(resp.iter_lines()) == []
    assert time.monotonic() - began < 2
