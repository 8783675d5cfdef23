"""A NodeState spec the node daemon cannot act on never gets stored: the CRD carries an enum or a minimum for
every value the daemon acts on, and the embedded API server enforces the CRD's schema on every write path
(create, update, merge and JSON patch, server-side apply) with kube-apiserver's 422 `Invalid` Status, one cause
per field. The policy's bounds are upstream's kubebuilder markers, checked the same way."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from integration.apiserver.storage_support import MERGE, NS, POLICIES, STATES, http, policy, running

GROUP_KIND = {"NodeState": "SriovNetworkNodeState.sriovnetwork.openshift.io",
              "Policy": "SriovNetworkNodePolicy.sriovnetwork.openshift.io"}
BEYOND_INT64 = 2**70


def node_state(name: str = "worker-0") -> dict[str, Any]:
    """What the operator renders for a vDPA policy on one PF."""
    return {"apiVersion": "sriovnetwork.openshift.io/v1", "kind": "SriovNetworkNodeState",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"interfaces": [{
                "pciAddress": "0000:65:00.0", "numVfs": 4, "mtu": 1500, "name": "ens1f0", "linkType": "eth",
                "eSwitchMode": "switchdev",
                "vfGroups": [{"resourceName": "mlxnics", "deviceType": "netdevice", "vfRange": "0-3",
                              "policyName": "vdpa-policy", "mtu": 1500, "vdpaType": "virtio"}]}]}}


def with_value(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """`body` with the field at `path` ("spec.interfaces[0].numVfs") set to `value`."""
    out = copy.deepcopy(body)
    *parents, last = path.replace("[", ".").replace("]", "").split(".")
    node: Any = out
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[last] = value
    return out


def not_supported(path: str, value: str, allowed: list[str]) -> dict[str, str]:
    listed = ", ".join(json.dumps(a) for a in allowed)
    return {"reason": "FieldValueNotSupported", "field": path,
            "message": f"Unsupported value: {json.dumps(value)}: supported values: {listed}"}


def below(path: str, value: int, minimum: int) -> dict[str, str]:
    return {"reason": "FieldValueInvalid", "field": path,
            "message": f"Invalid value: {value}: {path} in body should be greater than or equal to {minimum}"}


def above(path: str, value: int, maximum: int) -> dict[str, str]:
    return {"reason": "FieldValueInvalid", "field": path,
            "message": f"Invalid value: {value}: {path} in body should be less than or equal to {maximum}"}


def not_an_integer(path: str) -> dict[str, str]:
    return {"reason": "FieldValueTypeInvalid", "field": path,
            "message": f'Invalid value: "number": {path} in body must be of type integer: "number"'}


PF = "spec.interfaces[0]"
GROUP = f"{PF}.vfGroups[0]"
NODE_STATE_CASES = [
    (f"{PF}.numVfs", -1, below(f"{PF}.numVfs", -1, 0)),
    (f"{PF}.numVfs", BEYOND_INT64, not_an_integer(f"{PF}.numVfs")),
    (f"{PF}.mtu", -1500, below(f"{PF}.mtu", -1500, 0)),
    (f"{PF}.linkType", "ethernet", not_supported(f"{PF}.linkType", "ethernet", ["", "eth", "ETH", "ib", "IB"])),
    (f"{PF}.eSwitchMode", "Switchdev", not_supported(f"{PF}.eSwitchMode", "Switchdev", ["", "legacy", "switchdev"])),
    (f"{GROUP}.vdpaType", "evil", not_supported(f"{GROUP}.vdpaType", "evil", ["", "virtio", "vhost"])),
    (f"{GROUP}.deviceType", "gpu", not_supported(f"{GROUP}.deviceType", "gpu", ["", "netdevice", "vfio-pci"])),
    (f"{GROUP}.mtu", -1, below(f"{GROUP}.mtu", -1, 0)),
]
POLICY_CASES = [  # upstream's markers on SriovNetworkNodePolicySpec
    ("spec.numVfs", -1, below("spec.numVfs", -1, 0)),
    ("spec.mtu", 0, below("spec.mtu", 0, 1)),
    ("spec.priority", -1, below("spec.priority", -1, 0)),
    ("spec.priority", 100, above("spec.priority", 100, 99)),
    ("spec.deviceType", "virtio", not_supported("spec.deviceType", "virtio", ["netdevice", "vfio-pci"])),
    ("spec.vdpaType", "evil", not_supported("spec.vdpaType", "evil", ["virtio", "vhost"])),
    ("spec.eSwitchMode", "offload", not_supported("spec.eSwitchMode", "offload", ["legacy", "switchdev"])),
    ("spec.linkType", "ethernet", not_supported("spec.linkType", "ethernet", ["eth", "ETH", "ib", "IB"])),
]


def assert_invalid(answer: Any, kind: str, name: str, causes: list[dict[str, str]]) -> None:
    assert answer.status_code == 422, answer.text
    status = answer.json()
    assert (status["kind"], status["reason"], status["code"]) == ("Status", "Invalid", 422)
    assert status["details"]["causes"] == causes
    listed = ", ".join(f"{c['field']}: {c['message']}" for c in causes)
    assert status["message"] == f'{GROUP_KIND[kind]} "{name}" is invalid: ' + (
        listed if len(causes) == 1 else f"[{listed}]")


@pytest.mark.parametrize(("path", "value", "cause"), NODE_STATE_CASES, ids=[f"{c[0]}={c[1]}" for c in NODE_STATE_CASES])
def test_a_node_state_value_the_daemon_cannot_act_on_is_refused_on_create(tmp_path: Path, path: str, value: Any,
                                                                          cause: dict[str, str]) -> None:
    with running(tmp_path) as api, http(api) as client:
        assert_invalid(client.post(STATES, json=with_value(node_state(), path, value)), "NodeState", "worker-0",
                       [cause])
        assert client.get(f"{STATES}/worker-0").status_code == 404


def test_every_bad_field_is_a_cause_of_its_own(tmp_path: Path) -> None:
    body = node_state()
    for path, value, _ in NODE_STATE_CASES[:1] + NODE_STATE_CASES[2:]:
        body = with_value(body, path, value)
    with running(tmp_path) as api, http(api) as client:
        expected = sorted((c for p, _, c in NODE_STATE_CASES[:1] + NODE_STATE_CASES[2:]), key=lambda c: c["field"])
        assert_invalid(client.post(STATES, json=body), "NodeState", "worker-0", expected)


def test_every_write_path_enforces_the_schema_and_changes_nothing(tmp_path: Path) -> None:
    path, value, cause = NODE_STATE_CASES[5]  # vdpaType: evil
    with running(tmp_path) as api, http(api) as client:
        stored = client.post(STATES, json=node_state())
        assert stored.status_code == 201, stored.text
        current = stored.json()
        url = f"{STATES}/worker-0"
        bad = with_value(current, path, value)
        attempts = {
            "PUT": client.put(url, json=bad),
            "merge patch": client.patch(url, headers=MERGE, json={"spec": bad["spec"]}),
            "JSON patch": client.patch(url, headers={"Content-Type": "application/json-patch+json"},
                                       json=[{"op": "replace", "path": "/spec/interfaces/0/vfGroups/0/vdpaType",
                                              "value": value}]),
            "apply": client.patch(url, headers={"Content-Type": "application/apply-patch+yaml"},
                                  params={"fieldManager": "tests", "force": "true"},
                                  content=json.dumps(with_value(node_state(), path, value))),
        }
        for how, answer in attempts.items():
            assert answer.status_code == 422, f"{how}: {answer.status_code} {answer.text}"
            assert_invalid(answer, "NodeState", "worker-0", [cause])
        assert client.get(url).json() == current


@pytest.mark.parametrize(("path", "value", "cause"), POLICY_CASES, ids=[f"{c[0]}={c[1]}" for c in POLICY_CASES])
def test_upstreams_policy_markers_are_enforced(tmp_path: Path, path: str, value: Any,
                                               cause: dict[str, str]) -> None:
    with running(tmp_path) as api, http(api) as client:
        assert_invalid(client.post(POLICIES, json=with_value(policy("p"), path, value)), "Policy", "p", [cause])


def test_values_the_daemon_acts_on_are_stored_as_sent(tmp_path: Path) -> None:
    """The bounds refuse nothing a policy renders, nor Go's empty value (the same as absent)."""
    body = with_value(with_value(node_state(), f"{GROUP}.vdpaType", ""), f"{PF}.numVfs", 0)
    with running(tmp_path) as api, http(api) as client:
        created = client.post(STATES, json=body)
        assert created.status_code == 201, created.text
        assert created.json()["spec"] == body["spec"]
