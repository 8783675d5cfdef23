"""Object lifecycles as kube-apiserver runs them: finalizers hold a deleted object (deletionTimestamp set) until
the last one is removed; namespaced objects need a namespace that exists and is not terminating; deleting a
namespace deletes its content first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lightkube.core.exceptions import ApiError
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ConfigMap, Namespace

from integration.apiserver.storage_support import CONFIGMAPS, MERGE, http, lightkube, running


def test_finalizers_keep_a_deleted_object_until_the_last_one_is_removed(tmp_path: Path) -> None:
    with running(tmp_path) as api, http(api) as client:
        created = client.post(CONFIGMAPS, json={"metadata": {"name": "held", "finalizers": ["a.example/x",
                                                                                         "b.example/y"]}}).json()
        with client.stream("GET", CONFIGMAPS, params={"watch": "1", "resourceVersion": created["metadata"][
                "resourceVersion"]}) as watch:
            lines = watch.iter_lines()
            deleted = client.delete(f"{CONFIGMAPS}/held")
            assert deleted.status_code == 200
            terminating = deleted.json()["metadata"]
            assert terminating["deletionTimestamp"] and terminating["deletionGracePeriodSeconds"] == 0
            assert json.loads(next(lines))["type"] == "MODIFIED"

            again = client.delete(f"{CONFIGMAPS}/held")  # a second delete changes nothing
            assert again.json()["metadata"]["resourceVersion"] == terminating["resourceVersion"]
            assert client.post(CONFIGMAPS, json={"metadata": {"name": "held"}}).status_code == 409
            added = client.patch(f"{CONFIGMAPS}/held", headers=MERGE,
                                 json={"metadata": {"finalizers": ["a.example/x", "b.example/y", "c.example/z"]}})
            assert added.status_code == 422
            assert added.json()["details"]["causes"][0]["field"] == "metadata.finalizers"

            one_left = client.patch(f"{CONFIGMAPS}/held", headers=MERGE,
                                    json={"metadata": {"finalizers": ["b.example/y"]}})
            assert one_left.status_code == 200 and one_left.json()["metadata"]["deletionTimestamp"]
            assert json.loads(next(lines))["type"] == "MODIFIED"
            client.patch(f"{CONFIGMAPS}/held", headers=MERGE, json={"metadata": {"finalizers": None}})
            gone = json.loads(next(lines))
        assert gone["type"] == "DELETED" and gone["object"]["metadata"]["name"] == "held"
        assert client.get(f"{CONFIGMAPS}/held").status_code == 404
        assert client.post(CONFIGMAPS, json={"metadata": {"name": "held"}}).status_code == 201


def test_deletion_timestamp_and_identity_cannot_be_written_by_clients(tmp_path: Path) -> None:
    with running(tmp_path) as api, http(api) as client:
        created = client.post(CONFIGMAPS, json={"metadata": {"name": "c", "uid": "mine", "creationTimestamp":
                                                             "2000-01-01T00:00:00Z"}}).json()["metadata"]
        assert created["uid"] != "mine" and created["creationTimestamp"] != "2000-01-01T00:00:00Z"
        patched = client.patch(f"{CONFIGMAPS}/c", headers=MERGE, json={"metadata": {
            "uid": "other", "deletionTimestamp": "2000-01-01T00:00:00Z", "labels": {"a": "b"}}}).json()["metadata"]
        assert patched["uid"] == created["uid"] and "deletionTimestamp" not in patched
        assert patched["labels"] == {"a": "b"}


def test_namespaced_objects_need_their_namespace(tmp_path: Path) -> None:
    with running(tmp_path) as api:
        client = lightkube(api)
        with pytest.raises(ApiError) as missing:
            client.create(ConfigMap(metadata=ObjectMeta(name="c", namespace="nowhere")))
        assert (missing.value.status.code, missing.value.status.message) == (404, 'namespaces "nowhere" not found')
        namespace = client.create(Namespace(metadata=ObjectMeta(name="nowhere")))
        assert namespace.status.phase == "Active"
        assert namespace.metadata.labels == {"kubernetes.io/metadata.name": "nowhere"}
        assert client.create(ConfigMap(metadata=ObjectMeta(name="c", namespace="nowhere"))).metadata.uid
        assert {ns.metadata.name for ns in client.list(Namespace)} >= {
            "default", "kube-system", "kube-public", "kube-node-lease", "nowhere"}


def test_deleting_a_namespace_deletes_its_content_then_itself(tmp_path: Path) -> None:
    with running(tmp_path) as api, http(api) as client:
        client.post("/api/v1/namespaces", json={"metadata": {"name": "team"}})
        team = "/api/v1/namespaces/team/configmaps"
        client.post(team, json={"metadata": {"name": "plain"}})
        client.post(team, json={"metadata": {"name": "held", "finalizers": ["x.example/y"]}})
        client.post(CONFIGMAPS, json={"metadata": {"name": "elsewhere"}})

        deleted = client.delete("/api/v1/namespaces/team")
        assert deleted.status_code == 200 and deleted.json()["status"]["phase"] == "Terminating"
        assert [i["metadata"]["name"] for i in client.get(team).json()["items"]] == ["held"]
        refused = client.post(team, json={"metadata": {"name": "new"}})
        assert refused.status_code == 403
        assert refused.json()["message"] == ('configmaps "new" is forbidden: unable to create new content in '
                                             "namespace team because it is being terminated")

        client.patch(f"{team}/held", headers=MERGE, json={"metadata": {"finalizers": None}})
        assert client.get("/api/v1/namespaces/team").status_code == 404
        assert client.get(f"{CONFIGMAPS}/elsewhere").status_code == 200
        protected = client.delete("/api/v1/namespaces/default")
        assert protected.status_code == 403 and protected.json()["reason"] == "Forbidden"
