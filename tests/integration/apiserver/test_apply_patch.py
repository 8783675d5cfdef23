"""Server-side apply as our clients use it: lightkube's `apply` (PATCH application/apply-patch+yaml with a
fieldManager) creates a missing object and otherwise merges the applied configuration into it."""

from __future__ import annotations

from pathlib import Path

from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ConfigMap

from integration.apiserver.storage_support import NS, POLICIES, Policy, http, lightkube, policy, running

APPLY = {"Content-Type": "application/apply-patch+yaml"}


def test_apply_creates_then_merges(tmp_path: Path) -> None:
    with running(tmp_path) as api:
        client = lightkube(api)
        created = client.apply(Policy.from_dict(policy("p", deviceType=None)))
        assert created["metadata"]["generation"] == 1 and created["spec"]["deviceType"] == "netdevice"

        changed = client.apply(Policy.from_dict(policy("p", numVfs=8)), force=True)
        assert changed["spec"]["numVfs"] == 8 and changed["metadata"]["generation"] == 2
        assert changed["metadata"]["uid"] == created["metadata"]["uid"]
        unchanged = client.apply(Policy.from_dict(policy("p", numVfs=8)))
        assert unchanged["metadata"]["resourceVersion"] == changed["metadata"]["resourceVersion"]

        config = client.apply(ConfigMap(metadata=ObjectMeta(name="settings", namespace=NS), data={"a": "1"}))
        merged = client.apply(ConfigMap(metadata=ObjectMeta(name="settings", namespace=NS), data={"b": "2"}))
        assert config.data == {"a": "1"} and merged.data == {"a": "1", "b": "2"}


def test_apply_takes_yaml_and_answers_like_kube_apiserver(tmp_path: Path) -> None:
    with running(tmp_path) as api, http(api) as client:
        yaml_body = (f"apiVersion: sriovnetwork.openshift.io/v1\nkind: SriovNetworkNodePolicy\n"
                     f"metadata:\n  name: p\n  namespace: {NS}\nspec:\n  resourceName: vdpa\n  numVfs: 2\n"
                     "  nodeSelector: {}\n  nicSelector:\n    vendor: '15b3'\n")
        created = client.patch(f"{POLICIES}/p", content=yaml_body, headers=APPLY, params={"fieldManager": "me"})
        assert created.status_code == 201 and created.json()["spec"]["nicSelector"] == {"vendor": "15b3"}
        again = client.patch(f"{POLICIES}/p", content=yaml_body.replace("numVfs: 2", "numVfs: 3"), headers=APPLY,
                             params={"fieldManager": "me", "force": "true"})
        assert again.status_code == 200 and again.json()["spec"]["numVfs"] == 3

        anonymous = client.patch(f"{POLICIES}/p", content=yaml_body, headers=APPLY)
        assert anonymous.status_code == 422
        assert anonymous.json()["message"] == ('PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required '
                                               "value: is required for apply patch")
        forced_merge = client.patch(f"{POLICIES}/p", json={"spec": {}}, params={"force": "true"},
                                    headers={"Content-Type": "application/merge-patch+json"})
        assert forced_merge.status_code == 422
        assert forced_merge.json()["details"]["causes"][0]["field"] == "force"

        other_name = client.patch(f"{POLICIES}/q", content=yaml_body, headers=APPLY, params={"fieldManager": "me"})
        assert other_name.status_code == 400
        no_status = client.patch(f"{POLICIES}/missing/status", content=yaml_body.replace("name: p", "name: missing"),
                                 headers=APPLY, params={"fieldManager": "me"})
        assert no_status.status_code == 404
        invalid = client.patch(f"{POLICIES}/p", content=yaml_body.replace("numVfs: 2", "numVfs: -2"),
                               headers=APPLY, params={"fieldManager": "me"})
        assert invalid.status_code == 422
