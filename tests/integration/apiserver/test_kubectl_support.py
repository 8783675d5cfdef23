"""What kubectl relies on, checked over HTTP without kubectl: Table and PartialObjectMetadata views, the OpenAPI v3
documents, protobuf request bodies, and the AGE and JSONPath rules behind printer columns."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from vdpa_operator.sim.apiserver import ServerHandle, serve_in_thread
from vdpa_operator.sim.apiserver.protobuf import MAGIC
from vdpa_operator.sim.apiserver.tables import JsonPath, human_duration

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
CONFIGMAPS = "/api/v1/namespaces/default/configmaps"


@pytest.fixture
def http(tmp_path: Path) -> Iterator[httpx.Client]:
    api: ServerHandle = serve_in_thread(tmp_path / "kubeconfig")
    with httpx.Client(base_url=api.url, headers=api.headers, verify=api.verify, timeout=5) as client:
        yield client
    api.stop()


def test_tables_carry_columns_rows_and_the_metadata_kubectl_asks_for(http: httpx.Client) -> None:
    http.post(CONFIGMAPS, json={"metadata": {"name": "a", "labels": {"x": "y"}}, "data": {"k": "v", "l": "w"}})
    listed = http.get(CONFIGMAPS, headers={"Accept": f"{TABLE},application/json"}).json()
    assert listed["kind"] == "Table" and listed["apiVersion"] == "meta.k8s.io/v1"
    assert [c["name"] for c in listed["columnDefinitions"]] == ["Name", "Data", "Age"]
    [row] = listed["rows"]
    assert row["cells"][:2] == ["a", 2]
    assert row["object"]["kind"] == "PartialObjectMetadata" and row["object"]["metadata"]["labels"] == {"x": "y"}

    bare = http.get(CONFIGMAPS, params={"includeObject": "None"}, headers={"Accept": TABLE}).json()
    assert "object" not in bare["rows"][0]
    whole = http.get(f"{CONFIGMAPS}/a", params={"includeObject": "Object"}, headers={"Accept": TABLE}).json()
    assert whole["rows"][0]["object"]["data"] == {"k": "v", "l": "w"}

    metadata = http.get(CONFIGMAPS, headers={
        "Accept": "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"}).json()
    assert metadata["kind"] == "PartialObjectMetadataList" and "data" not in metadata["items"][0]

    refused = http.get(CONFIGMAPS, headers={"Accept": "application/json;as=Nonsense;v=v1;g=meta.k8s.io"})
    assert refused.status_code == 406 and refused.json()["reason"] == "NotAcceptable"
    assert http.get(CONFIGMAPS, headers={"Accept": "application/json"}).json()["kind"] == "ConfigMapList"


def test_openapi_v3_lets_kubectl_ask_the_server_to_validate(http: httpx.Client) -> None:
    paths = http.get("/openapi/v3").json()["paths"]
    assert {"api/v1", "apis/sriovnetwork.openshift.io/v1"} <= set(paths)
    document = http.get(paths["apis/sriovnetwork.openshift.io/v1"]["serverRelativeURL"]).json()
    item = "/apis/sriovnetwork.openshift.io/v1/namespaces/{namespace}/sriovnetworknodepolicies/{name}"
    patch = document["paths"][item]["patch"]
    assert patch["x-kubernetes-group-version-kind"]["kind"] == "SriovNetworkNodePolicy"
    assert "fieldValidation" in [p["name"] for p in patch["parameters"]]
    assert "application/strategic-merge-patch+json" not in patch["requestBody"]["content"]
    schema = document["components"]["schemas"]["io.openshift.sriovnetwork.v1.SriovNetworkNodePolicy"]
    assert "numVfs" in schema["properties"]["spec"]["properties"]
    assert http.get("/openapi/v3/apis/nosuch.example.com/v1").status_code == 404


def _field(number: int, payload: bytes) -> bytes:
    return bytes([number << 3 | 2, len(payload)]) + payload


def test_protobuf_bodies_of_kinds_not_modelled_are_415(http: httpx.Client) -> None:
    type_meta = _field(1, _field(1, b"apps/v1") + _field(2, b"Deployment"))
    body = MAGIC + type_meta + _field(2, b"")
    refused = http.post("/apis/apps/v1/namespaces/default/deployments", content=body,
                        headers={"Content-Type": "application/vnd.kubernetes.protobuf"})
    assert refused.status_code == 415
    assert "send application/json instead" in refused.json()["message"]

    config_map = _field(1, _field(1, b"v1") + _field(2, b"ConfigMap")) + _field(2, (
        _field(1, _field(1, b"pb") + _field(11, _field(1, b"app") + _field(2, b"x")))  # metadata: name, labels
        + _field(2, _field(1, b"k") + _field(2, b"v"))))  # data
    created = http.post(CONFIGMAPS, content=MAGIC + config_map,
                        headers={"Content-Type": "application/vnd.kubernetes.protobuf"})
    assert created.status_code == 201, created.text
    assert (created.json()["metadata"]["labels"], created.json()["data"]) == ({"app": "x"}, {"k": "v"})


@pytest.mark.parametrize(("seconds", "shown"), [
    (-5, "<invalid>"), (-1, "0s"), (0, "0s"), (119, "119s"), (120, "2m"), (125, "2m5s"), (599, "9m59s"),
    (600, "10m"), (3 * 3600 - 1, "179m"), (3 * 3600, "3h"), (3 * 3600 + 300, "3h5m"), (8 * 3600, "8h"),
    (47 * 3600 + 3599, "47h"), (50 * 3600, "2d2h"), (8 * 86400, "8d"), (3 * 365 * 86400 + 86400, "3y1d"),
    (9 * 365 * 86400, "9y"),
])
def test_age_is_apimachinerys_human_duration(seconds: int, shown: str) -> None:
    assert human_duration(seconds) == shown


def test_printer_column_jsonpaths() -> None:
    obj = {"metadata": {"annotations": {"example.com/state": "Idle"}},
           "status": {"conditions": [{"type": "Synced", "status": "False"}, {"type": "Ready", "status": "True"}],
                      "list": [1, 2]}}
    assert JsonPath(".metadata.annotations.example\\.com/state").find(obj) == ["Idle"]
    assert JsonPath('.status.conditions[?(@.type=="Ready")].status').find(obj) == ["True"]
    assert JsonPath(".status.list[*]").find(obj) == [1, 2]
    assert JsonPath(".status.list[1]").find(obj) == [2]
    assert JsonPath(".status.missing.deeper").find(obj) == []
    with pytest.raises(ValueError, match="not supported"):
        JsonPath(".status.list[1:2]")
