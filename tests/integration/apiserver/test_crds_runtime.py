"""CRDs registered at run time through `apiextensions.k8s.io/v1`: discovery follows at once, the new resource
is served with its schema, an updated schema defaults stored objects as they are read, and deleting the CRD
takes its objects away. The project's CRDs and multus's NAD CRD are there from the start, as CRD objects."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from integration.apiserver.storage_support import CRDS, GROUP, MERGE, WIDGETS, http, running, widget_crd


def test_a_new_crd_is_served_at_once_and_validates_its_objects(tmp_path: Path) -> None:
    with running(tmp_path) as api, http(api) as client:
        assert client.get("/apis/example.com/v1").status_code == 404
        created = client.post(CRDS, json=widget_crd())
        assert created.status_code == 201
        conditions = {c["type"]: c["status"] for c in created.json()["status"]["conditions"]}
        assert conditions == {"NamesAccepted": "True", "Established": "True"}
        assert created.json()["status"]["acceptedNames"]["listKind"] == "WidgetList"

        groups = {g["name"] for g in client.get("/apis").json()["groups"]}
        assert "example.com" in groups
        resources = {r["name"]: r for r in client.get("/apis/example.com/v1").json()["resources"]}
        assert resources["widgets"]["shortNames"] == ["wd"] and resources["widgets"]["categories"] == ["all"]
        assert resources["widgets"]["kind"] == "Widget" and "widgets/status" in resources

        assert client.post(WIDGETS, json={"metadata": {"name": "w"}, "spec": {"color": "green"}}).status_code == 422
        widget = client.post(WIDGETS, json={"metadata": {"name": "w"}, "spec": {"color": "red", "extra": 1},
                                            "status": {"x": 1}})
        assert widget.status_code == 201
        assert widget.json()["spec"] == {"color": "red"} and "status" not in widget.json()
        assert widget.json()["apiVersion"] == "example.com/v1" and widget.json()["metadata"]["generation"] == 1
        status = client.patch(f"{WIDGETS}/w/status", json={"status": {"seen": True}}, headers=MERGE)
        assert status.json()["status"] == {"seen": True}
        assert [i["metadata"]["name"] for i in client.get("/apis/example.com/v1/widgets").json()["items"]] == ["w"]


def test_an_updated_schema_defaults_stored_objects_and_a_deleted_crd_takes_them_away(tmp_path: Path) -> None:
    with running(tmp_path) as api, http(api) as client:
        client.post(CRDS, json=widget_crd())
        client.post(WIDGETS, json={"metadata": {"name": "w"}, "spec": {"color": "blue"}})

        current = client.get(f"{CRDS}/widgets.example.com").json()
        updated = copy.deepcopy(current)
        updated["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["size"][
            "default"] = 3
        assert client.put(f"{CRDS}/widgets.example.com", json=updated).status_code == 200
        assert client.get(f"{WIDGETS}/w").json()["spec"] == {"color": "blue", "size": 3}

        listed = client.get(WIDGETS).json()["metadata"]["resourceVersion"]
        with client.stream("GET", WIDGETS, params={"watch": "1", "resourceVersion": listed}) as watch:
            lines = watch.iter_lines()
            deleted = client.delete(f"{CRDS}/widgets.example.com")
            assert deleted.status_code == 200
            event = json.loads(next(lines))
        assert (event["type"], event["object"]["metadata"]["name"]) == ("DELETED", "w")
        assert client.get(WIDGETS).status_code == 404
        assert client.get("/apis/example.com/v1").status_code == 404
        assert "example.com" not in {g["name"] for g in client.get("/apis").json()["groups"]}

        # Registered again, it starts empty.
        client.post(CRDS, json=widget_crd())
        assert client.get(WIDGETS).json()["items"] == []


def test_crds_the_api_server_would_refuse(tmp_path: Path) -> None:
    with running(tmp_path) as api, http(api) as client:
        misnamed = widget_crd()
        misnamed["metadata"]["name"] = "gadgets.example.com"
        refused = client.post(CRDS, json=misnamed)
        assert refused.status_code == 422
        assert refused.json()["details"]["causes"] == [{
            "reason": "FieldValueInvalid", "field": "metadata.name",
            "message": 'Invalid value: "gadgets.example.com": must be spec.names.plural+"."+spec.group'}]
        bad_pattern = client.post(CRDS, json=widget_crd(pattern="("))
        assert bad_pattern.status_code == 422 and "pattern" in bad_pattern.json()["message"]
        takeover = widget_crd()
        takeover["metadata"]["name"] = "leases.coordination.k8s.io"
        takeover["spec"].update(group="coordination.k8s.io", names={"plural": "leases", "kind": "Lease"})
        assert client.post(CRDS, json=takeover).status_code == 422  # a built-in resource stays built in
        assert client.get("/apis/example.com/v1").status_code == 404


def test_the_project_crds_and_the_nad_crd_are_installed_from_the_start(tmp_path: Path) -> None:
    with running(tmp_path) as api, http(api) as client:
        names = {c["metadata"]["name"] for c in client.get(CRDS).json()["items"]}
        assert f"sriovnetworknodepolicies.{GROUP}" in names
        assert "network-attachment-definitions.k8s.cni.cncf.io" in names
        nads = "/apis/k8s.cni.cncf.io/v1/namespaces/default/network-attachment-definitions"
        created = client.post(nads, json={"metadata": {"name": "net"}, "spec": {"config": "{}"}})
        assert created.status_code == 201 and created.json()["spec"] == {"config": "{}"}
        refused = client.post(nads, json={"metadata": {"name": "net2"}, "spec": {"config": {"cniVersion": "1"}}})
        assert refused.status_code == 422
        assert refused.json()["details"]["causes"][0]["field"] == "spec.config"
