"""Custom resources are decoded by their CRD schema over HTTP, as in a cluster: defaults filled in, unknown
fields pruned (with a warning, or refused under fieldValidation=Strict), invalid values refused with 422."""

from __future__ import annotations

from pathlib import Path

import pytest
from lightkube.core.exceptions import ApiError
from lightkube.types import PatchType

from integration.apiserver.storage_support import MERGE, NS, POLICIES, Policy, http, lightkube, policy, running


def test_a_policy_without_device_type_is_stored_with_the_crd_default(tmp_path: Path) -> None:
    with running(tmp_path) as api:
        client = lightkube(api)
        created = client.create(Policy.from_dict(policy("p", deviceType=None)))
        assert created["spec"]["deviceType"] == "netdevice"
        assert client.get(Policy, "p")["spec"]["deviceType"] == "netdevice"
        # A null where the schema has a default brings the default back (structural defaulting).
        patched = client.patch(Policy, "p", {"spec": {"deviceType": None}}, patch_type=PatchType.MERGE)
        assert patched["spec"]["deviceType"] == "netdevice"


def test_invalid_values_are_422_with_one_cause_per_field(tmp_path: Path) -> None:
    with running(tmp_path) as api:
        client = lightkube(api)
        with pytest.raises(ApiError) as one:
            client.create(Policy.from_dict(policy("p", deviceType="foo")))
        status = one.value.status
        assert (status.code, status.reason) == (422, "Invalid")
        assert status.message == ('SriovNetworkNodePolicy.sriovnetwork.openshift.io "p" is invalid: spec.deviceType: '
                                  'Unsupported value: "foo": supported values: "netdevice", "vfio-pci"')
        assert [(c.reason, c.field) for c in status.details.causes] == [("FieldValueNotSupported", "spec.deviceType")]

        with pytest.raises(ApiError) as several:
            client.create(Policy.from_dict(policy("p", numVfs=-1, priority=100, resourceName=None)))
        assert several.value.status.message == (
            'SriovNetworkNodePolicy.sriovnetwork.openshift.io "p" is invalid: ['
            "spec.numVfs: Invalid value: -1: spec.numVfs in body should be greater than or equal to 0, "
            "spec.priority: Invalid value: 100: spec.priority in body should be less than or equal to 99, "
            "spec.resourceName: Required value]")
        assert [c.reason for c in several.value.status.details.causes] == [
            "FieldValueInvalid", "FieldValueInvalid", "FieldValueRequired"]
        assert list(client.list(Policy)) == []

        client.create(Policy.from_dict(policy("p")))
        with pytest.raises(ApiError) as on_update:
            client.patch(Policy, "p", {"spec": {"mtu": "jumbo"}}, patch_type=PatchType.MERGE)
        assert on_update.value.status.details.causes[0].message == (
            'Invalid value: "string": spec.mtu in body must be of type integer: "string"')


def test_unknown_fields_are_pruned_with_a_warning_or_refused_when_strict(tmp_path: Path) -> None:
    with running(tmp_path) as api, http(api) as client:
        body = policy("p", bogus=1)
        body["spec"]["nicSelector"]["stray"] = "x"
        warned = client.post(POLICIES, json=body)
        assert warned.status_code == 201
        assert "bogus" not in warned.json()["spec"] and "stray" not in warned.json()["spec"]["nicSelector"]
        assert warned.headers.get_list("Warning") == [
            '299 - "unknown field \\"spec.bogus\\""', '299 - "unknown field \\"spec.nicSelector.stray\\""']

        strict = client.post(POLICIES, json=policy("q", bogus=1), params={"fieldValidation": "Strict"})
        assert strict.status_code == 400
        assert strict.json()["message"] == ('SriovNetworkNodePolicy in version "v1" cannot be handled as a '
                                            'SriovNetworkNodePolicy: strict decoding error: unknown field "spec.bogus"')
        ignored = client.patch(f"{POLICIES}/p", json={"spec": {"bogus": 2}}, headers=MERGE,
                               params={"fieldValidation": "Ignore"})
        assert ignored.status_code == 200 and "Warning" not in ignored.headers


def test_dry_run_validates_and_defaults_but_stores_nothing(tmp_path: Path) -> None:
    with running(tmp_path) as api, http(api) as client:
        before = client.get(POLICIES).json()["metadata"]["resourceVersion"]
        dry = client.post(POLICIES, json=policy("p", deviceType=None), params={"dryRun": "All"})
        assert dry.status_code == 201 and dry.json()["spec"]["deviceType"] == "netdevice"
        assert client.get(f"{POLICIES}/p").status_code == 404
        refused = client.post(POLICIES, json=policy("p", deviceType="foo"), params={"dryRun": "All"})
        assert refused.status_code == 422

        client.post(POLICIES, json=policy("p"))
        dry_patch = client.patch(f"{POLICIES}/p", json={"spec": {"numVfs": 8}}, headers=MERGE,
                                 params={"dryRun": "All"})
        assert dry_patch.json()["spec"]["numVfs"] == 8
        assert client.get(f"{POLICIES}/p").json()["spec"]["numVfs"] == 4
        assert client.delete(f"{POLICIES}/p", params={"dryRun": "All"}).status_code == 200
        assert client.get(f"{POLICIES}/p").status_code == 200
        assert int(client.get(POLICIES).json()["metadata"]["resourceVersion"]) == int(before) + 1
        assert client.post(POLICIES, json=policy("q"), params={"dryRun": "Some"}).status_code == 400


def test_names_must_be_dns_subdomains(tmp_path: Path) -> None:
    with running(tmp_path) as api, http(api) as client:
        refused = client.post(POLICIES, json=policy("Bad_Name"))
        assert refused.status_code == 422
        assert refused.json()["details"]["causes"][0]["field"] == "metadata.name"
        assert "a lowercase RFC 1123 subdomain" in refused.json()["message"]
        assert client.post(f"/api/v1/namespaces/{NS}/configmaps", json={"metadata": {"name": "ok.name-1"}}
                           ).status_code == 201
