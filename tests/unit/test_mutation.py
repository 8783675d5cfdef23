"""The policy mutation (upstream `pkg/webhook/mutate.go`, cases of `mutate_test.go`) and its JSON patch."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from vdpa_operator.api.admission import (
    DEFAULT_NAMESPACE,
    Operation,
    admit,
    mutate_policy,
)
from vdpa_operator.api.jsonpatch import JsonPatchError, apply_json_patch
from vdpa_operator.api.models import SriovNetworkNodePolicy

PRIORITY_99 = {"op": "add", "path": "/spec/priority", "value": 99}
IS_RDMA_FALSE = {"op": "add", "path": "/spec/isRdma", "value": False}
IS_RDMA_TRUE = {"op": "add", "path": "/spec/isRdma", "value": True}


def policy_map(name: str, spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": spec}


# --- upstream mutate_test.go --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "present", "absent"),
    [
        pytest.param(
            policy_map("default", {}), [], [PRIORITY_99, IS_RDMA_FALSE, IS_RDMA_TRUE], id="DefaultPolicy"
        ),
        pytest.param(
            policy_map("test-policy", {}), [PRIORITY_99, IS_RDMA_FALSE], [IS_RDMA_TRUE], id="DefaultValues"
        ),
        pytest.param(
            policy_map("ib-policy", {"linkType": "IB"}), [IS_RDMA_TRUE], [], id="InfiniBandSetsIsRdma"
        ),
        pytest.param(
            policy_map("ib-netdevice-policy", {"linkType": "IB", "deviceType": "netdevice"}),
            [IS_RDMA_TRUE], [], id="InfiniBandNetdeviceSetsIsRdma",
        ),
        pytest.param(
            policy_map("ib-vfio-policy", {"linkType": "IB", "deviceType": "vfio-pci"}),
            [IS_RDMA_FALSE], [IS_RDMA_TRUE], id="InfiniBandVfioPciDoesNotSetIsRdma",
        ),
        pytest.param(
            policy_map("eth-policy", {"linkType": "ETH"}), [IS_RDMA_FALSE], [IS_RDMA_TRUE],
            id="EthernetDoesNotSetIsRdma",
        ),
        pytest.param(
            policy_map("existing-rdma-policy", {"isRdma": True}), [], [IS_RDMA_FALSE],
            id="ExistingIsRdmaNotOverridden",
        ),
        pytest.param(
            {"metadata": {"name": "no-spec-policy"}}, [], [PRIORITY_99], id="MissingSpecDoesNotPanic"
        ),
        pytest.param(policy_map("nil-spec-policy", None), [], [PRIORITY_99], id="NilSpecDoesNotPanic"),
        pytest.param(
            policy_map("existing-priority-policy", {"priority": 10}), [IS_RDMA_FALSE], [PRIORITY_99],
            id="ExistingPriorityNotOverridden",
        ),
    ],
)
def test_upstream_mutation_cases(
    raw: dict[str, Any], present: list[dict[str, Any]], absent: list[dict[str, Any]]
) -> None:
    patch = mutate_policy(raw)
    for op in present:
        assert op in patch
    for op in absent:
        assert op not in patch


def test_default_policy_gets_no_patch_at_all() -> None:
    assert mutate_policy(policy_map("default", {})) == []


# --- details of the mutation --------------------------------------------------------------------------------


def test_presence_not_value_decides() -> None:
    """An explicit zero priority or false isRdma is the user's choice and is kept."""
    assert mutate_policy(policy_map("p", {"priority": 0, "isRdma": False})) == []


def test_patch_order_is_upstreams() -> None:
    assert mutate_policy(policy_map("p", {"linkType": "ib"})) == [PRIORITY_99, IS_RDMA_FALSE, IS_RDMA_TRUE]


@pytest.mark.parametrize("link_type", ["ib", "IB", "Ib", "iB"])
def test_infiniband_is_case_insensitive(link_type: str) -> None:
    assert IS_RDMA_TRUE in mutate_policy(policy_map("p", {"linkType": link_type}))


@pytest.mark.parametrize("device_type", ["vfio-pci", "VFIO-PCI", "Vfio-Pci"])
def test_vfio_pci_is_case_insensitive(device_type: str) -> None:
    assert IS_RDMA_TRUE not in mutate_policy(policy_map("p", {"linkType": "ib", "deviceType": device_type}))


def test_infiniband_overrides_an_explicit_is_rdma_false() -> None:
    """Upstream adds isRdma: true for IB even when the user wrote isRdma: false."""
    patch = mutate_policy(policy_map("p", {"linkType": "ib", "isRdma": False, "priority": 1}))
    assert patch == [IS_RDMA_TRUE]
    patched = apply_json_patch(policy_map("p", {"linkType": "ib", "isRdma": False}), patch)
    assert patched["spec"]["isRdma"] is True


@pytest.mark.parametrize("link_type", [None, 7, ["ib"]])
def test_non_string_link_type_is_not_infiniband(link_type: Any) -> None:
    assert IS_RDMA_TRUE not in mutate_policy(policy_map("p", {"linkType": link_type}))


@pytest.mark.parametrize("raw", [{"spec": {}}, {"metadata": None, "spec": {}}, {"metadata": "x", "spec": {}}])
def test_odd_metadata_does_not_crash(raw: dict[str, Any]) -> None:
    assert mutate_policy(raw) == [PRIORITY_99, IS_RDMA_FALSE]


def test_patches_are_fresh_objects() -> None:
    first = mutate_policy(policy_map("p", {}))
    first[0]["value"] = 1
    assert mutate_policy(policy_map("p", {}))[0]["value"] == 99


# --- apply_json_patch ---------------------------------------------------------------------------------------


def test_apply_adds_and_leaves_the_input_untouched() -> None:
    raw = policy_map("p", {"numVfs": 2})
    before = copy.deepcopy(raw)
    patched = apply_json_patch(raw, mutate_policy(raw))
    assert raw == before
    assert patched["spec"] == {"numVfs": 2, "priority": 99, "isRdma": False}


def test_apply_add_on_existing_member_replaces_it() -> None:
    """RFC 6902: `add` of an existing object member replaces its value (IB after the isRdma default)."""
    patched = apply_json_patch(policy_map("p", {"linkType": "ib"}), [IS_RDMA_FALSE, IS_RDMA_TRUE])
    assert patched["spec"]["isRdma"] is True


@pytest.mark.parametrize(
    ("ops", "expected"),
    [
        ([{"op": "replace", "path": "/a", "value": 2}], {"a": 2, "b": {"c/d": 1, "e~f": [1, 2]}}),
        ([{"op": "remove", "path": "/a"}], {"b": {"c/d": 1, "e~f": [1, 2]}}),
        ([{"op": "add", "path": "/b/c~1d", "value": 5}], {"a": 1, "b": {"c/d": 5, "e~f": [1, 2]}}),
        ([{"op": "remove", "path": "/b/c~1d"}], {"a": 1, "b": {"e~f": [1, 2]}}),
        ([{"op": "add", "path": "/b/e~0f/0", "value": 0}], {"a": 1, "b": {"c/d": 1, "e~f": [0, 1, 2]}}),
        ([{"op": "add", "path": "/b/e~0f/-", "value": 3}], {"a": 1, "b": {"c/d": 1, "e~f": [1, 2, 3]}}),
        ([{"op": "replace", "path": "/b/e~0f/1", "value": 9}], {"a": 1, "b": {"c/d": 1, "e~f": [1, 9]}}),
        ([{"op": "remove", "path": "/b/e~0f/0"}], {"a": 1, "b": {"c/d": 1, "e~f": [2]}}),
        ([{"op": "replace", "path": "", "value": {"z": 1}}], {"z": 1}),
        ([], {"a": 1, "b": {"c/d": 1, "e~f": [1, 2]}}),
    ],
)
def test_apply_operations(ops: list[dict[str, Any]], expected: dict[str, Any]) -> None:
    assert apply_json_patch({"a": 1, "b": {"c/d": 1, "e~f": [1, 2]}}, ops) == expected


@pytest.mark.parametrize(
    "op",
    [
        {"op": "replace", "path": "/missing", "value": 1},
        {"op": "remove", "path": "/missing"},
        {"op": "add", "path": "/missing/child", "value": 1},
        {"op": "add", "path": "/list/5", "value": 1},
        {"op": "replace", "path": "/list/2", "value": 1},
        {"op": "add", "path": "/list/01", "value": 1},
        {"op": "add", "path": "/a/b", "value": 1},
        {"op": "add", "path": "no-slash", "value": 1},
        {"op": "move", "path": "/a", "from": "/missing"},
        {"op": "remove", "path": ""},
    ],
)
def test_apply_rejects_impossible_operations(op: dict[str, Any]) -> None:
    with pytest.raises(JsonPatchError):
        apply_json_patch({"a": 1, "list": [1, 2]}, [op])


# --- admit: mutation feeds validation -----------------------------------------------------------------------


def seed_raw(**spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "nodeSelector": {"feature.node.kubernetes.io/network-sriov.capable": "true"},
        "resourceName": "mlxnics",
        "numVfs": 2,
        "nicSelector": {"vendor": "15b3", "deviceID": "101d"},
        "deviceType": "netdevice",
    }
    body.update(spec)
    return {
        "apiVersion": "sriovnetwork.openshift.io/v1",
        "kind": "SriovNetworkNodePolicy",
        "metadata": {"name": "p", "namespace": DEFAULT_NAMESPACE},
        "spec": body,
    }


def read(raw: dict[str, Any]) -> SriovNetworkNodePolicy:
    return SriovNetworkNodePolicy.model_validate(raw, by_name=False)


def test_admit_attaches_the_patch() -> None:
    raw = seed_raw()
    verdict, _ = admit(raw, read(raw), Operation.CREATE, None)
    assert verdict.allowed
    assert list(verdict.patch) == [PRIORITY_99, IS_RDMA_FALSE]


def test_admit_infiniband_vfio_pci_is_not_made_rdma() -> None:
    """The mutation never sets isRdma for vfio-pci, so it cannot cause the vfio-pci/isRdma conflict."""
    raw = seed_raw(linkType="ib", deviceType="vfio-pci")
    verdict, _ = admit(raw, read(raw), Operation.CREATE, None)
    assert verdict.allowed
    assert list(verdict.patch) == [PRIORITY_99, IS_RDMA_FALSE]


def test_admit_explicit_rdma_with_vfio_pci_is_rejected() -> None:
    raw = seed_raw(linkType="ib", deviceType="vfio-pci", isRdma=True)
    verdict, _ = admit(raw, read(raw), Operation.CREATE, None)
    assert not verdict.allowed
    assert "'deviceType: vfio-pci' conflicts with 'isRdma: true'" in str(verdict.errors[0])


def test_admit_on_update_patches_too() -> None:
    raw = seed_raw(priority=5)
    assert list(admit(raw, read(raw), Operation.UPDATE, None)[0].patch) == [IS_RDMA_FALSE]


def test_admit_on_delete_has_no_patch() -> None:
    """Upstream's mutating webhook is registered for CREATE and UPDATE only."""
    raw = seed_raw()
    verdict, _ = admit(raw, read(raw), Operation.DELETE, None)
    assert verdict.allowed and verdict.patch == ()


def test_admit_rejection_still_carries_the_patch() -> None:
    raw = seed_raw(vdpaType="virtio")
    verdict, _ = admit(raw, read(raw), Operation.CREATE, None)
    assert not verdict.allowed
    assert list(verdict.patch) == [PRIORITY_99, IS_RDMA_FALSE]
    assert "vdpa requires the device to be configured in switchdev mode" in str(verdict.errors[0])


def test_json_patch_move_copy_and_test() -> None:
    """The rest of RFC 6902, which the embedded API server serves to clients (kubectl patch --type json)."""
    doc = {"a": {"b": 1}, "list": [1, 2]}
    ops = [{"op": "test", "path": "/a/b", "value": 1}, {"op": "copy", "from": "/a", "path": "/c"},
           {"op": "move", "from": "/list/0", "path": "/list/-"}]
    assert apply_json_patch(doc, ops) == {"a": {"b": 1}, "c": {"b": 1}, "list": [2, 1]}
    assert doc == {"a": {"b": 1}, "list": [1, 2]}  # the input is left alone
    with pytest.raises(JsonPatchError, match="testing value at /a/b failed"):
        apply_json_patch(doc, [{"op": "test", "path": "/a/b", "value": 2}])
