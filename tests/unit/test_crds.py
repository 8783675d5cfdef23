"""The committed CRDs are current, schemas structural, upstream's constraints kept; defaulting."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import Field

from project_scripts import gen_crds
from vdpa_operator.api import crd, kube, models
from vdpa_operator.api.kinds import OPERATOR_KINDS
from vdpa_operator.api.meta import KubeModel, ObjectMeta
from vdpa_operator.api.models import CRD_DEFAULT

ROOT = Path(__file__).resolve().parents[2]
GROUP = models.GROUP
CRDS = crd.all_crds()
POLICY = crd.openapi_schema(models.SriovNetworkNodePolicy)
STATE = crd.openapi_schema(models.SriovNetworkNodeState)


def _nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for name, prop in schema.get("properties", {}).items():
        yield from _nodes(prop, f"{path}.{name}")
    if "items" in schema:
        yield from _nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _nodes(schema["additionalProperties"], f"{path}{{}}")


def _schema(file_name: str) -> dict[str, Any]:
    schema: dict[str, Any] = CRDS[file_name]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _spec(plural: str) -> dict[str, Any]:
    """The spec properties of a kind's CRD."""
    props: dict[str, Any] = _schema(f"{GROUP}_{plural}.yaml")["properties"]["spec"]["properties"]
    return props


# --- The committed files ---------------------------------------------------------------------------------


def test_committed_crds_are_what_the_models_generate() -> None:
    gen = gen_crds()
    changes = gen.plan(gen.DEFAULT_DIR)
    assert not changes, f"deploy/crds is out of date ({', '.join(changes)}): run `make crds` and commit it"


def test_one_crd_per_operator_kind_named_like_controller_gen() -> None:
    assert sorted(CRDS) == sorted(f"{GROUP}_{k.PLURAL}.yaml" for k in OPERATOR_KINDS)
    policy = CRDS[f"{GROUP}_sriovnetworknodepolicies.yaml"]
    assert policy["apiVersion"] == "apiextensions.k8s.io/v1"
    assert policy["kind"] == "CustomResourceDefinition"
    assert policy["metadata"] == {"name": "sriovnetworknodepolicies.sriovnetwork.openshift.io"}
    assert policy["spec"]["group"] == "sriovnetwork.openshift.io"
    assert policy["spec"]["names"] == {
        "kind": "SriovNetworkNodePolicy",
        "listKind": "SriovNetworkNodePolicyList",
        "plural": "sriovnetworknodepolicies",
        "singular": "sriovnetworknodepolicy",
    }
    assert policy["spec"]["scope"] == "Namespaced"
    for doc in CRDS.values():
        [version] = doc["spec"]["versions"]
        assert (version["name"], version["served"], version["storage"]) == ("v1", True, True)
        assert version["subresources"] == {"status": {}}


# --- Structural schemas ------------------------------------------------------------------------------------


@pytest.mark.parametrize("file_name", sorted(CRDS))
def test_schema_is_structural(file_name: str) -> None:
    for path, node in _nodes(_schema(file_name)):
        assert not {"$ref", "$defs", "anyOf", "allOf", "oneOf", "title", "const"} & node.keys(), path
        untyped = ("x-kubernetes-int-or-string", "x-kubernetes-preserve-unknown-fields")
        assert "type" in node or any(node.get(marker) for marker in untyped), f"{path} has no type"
        if node.get("type") == "object" and "properties" in node:
            assert list(node["properties"]) == sorted(node["properties"]), f"{path}: properties not sorted"
            assert node.get("required", []) == sorted(node.get("required", [])), path
            assert set(node.get("required", [])) <= node["properties"].keys(), path
        assert list(node) == sorted(node), f"{path}: keys not sorted"


@pytest.mark.parametrize("file_name", sorted(CRDS))
def test_type_meta_and_metadata_as_controller_gen_writes_them(file_name: str) -> None:
    props = _schema(file_name)["properties"]
    assert props["metadata"] == {"type": "object"}
    assert props["apiVersion"]["type"] == props["kind"]["type"] == "string"
    assert props["apiVersion"]["description"].startswith("APIVersion defines the versioned schema")


def test_only_crd_defaults_are_defaults() -> None:
    """Go zero values are not CRD defaults: only fields marked CRD_DEFAULT carry `default`."""
    defaulted = {
        (name, path) for name in CRDS for path, node in _nodes(_schema(name)) if "default" in node
    }
    assert defaulted == {
        (f"{GROUP}_sriovnetworknodepolicies.yaml", ".spec.deviceType"),
        (f"{GROUP}_sriovnetworks.yaml", ".spec.logLevel"),
    }


# --- Upstream's constraints (compared by hand with upstream's config/crd/bases) ---------------------------


def test_policy_spec_matches_upstream() -> None:
    spec = POLICY["properties"]["spec"]
    assert spec["required"] == ["nicSelector", "nodeSelector", "numVfs", "resourceName"]
    assert set(spec["properties"]) == {
        "bridge", "deviceType", "eSwitchMode", "excludeTopology", "externallyManaged", "isRdma",
        "linkType", "mtu", "needVhostNet", "nicSelector", "nodeSelector", "numVfs", "priority",
        "resourceName", "vdpaType",
    }
    props = spec["properties"]
    assert props["deviceType"]["enum"] == ["netdevice", "vfio-pci"]
    assert props["deviceType"]["default"] == "netdevice"
    assert (props["priority"]["minimum"], props["priority"]["maximum"]) == (0, 99)
    assert props["mtu"]["minimum"] == 1
    assert "maximum" not in props["mtu"]
    assert props["numVfs"]["minimum"] == 0
    assert props["eSwitchMode"]["enum"] == ["legacy", "switchdev"]
    assert props["linkType"]["enum"] == ["eth", "ETH", "ib", "IB"]
    assert props["vdpaType"]["enum"] == ["virtio", "vhost"]
    assert props["nodeSelector"]["type"] == "object"
    assert props["nodeSelector"]["additionalProperties"] == {"type": "string"}
    bridge = props["bridge"]["properties"]["ovs"]["properties"]["bridge"]["properties"]
    assert bridge["failMode"]["enum"] == ["secure", "standalone"]
    assert bridge["externalIDs"]["additionalProperties"] == {"type": "string"}


def test_node_state_matches_upstream() -> None:
    status = STATE["properties"]["status"]["properties"]
    assert set(status) == {"bridges", "interfaces", "lastSyncError", "syncStatus", "system"}
    pf = status["interfaces"]["items"]
    assert pf["required"] == ["pciAddress"]
    assert {"totalvfs", "Vfs", "altNames", "linkAdminState", "netFilter"} <= pf["properties"].keys()
    assert pf["properties"]["totalvfs"]["type"] == "integer"
    vf = pf["properties"]["Vfs"]["items"]
    assert vf["required"] == ["pciAddress", "vfID"]
    assert set(vf["properties"]) == {
        "Vlan", "assigned", "deviceID", "driver", "guid", "mac", "mtu", "name", "pciAddress",
        "representorName", "vdpaType", "vendor", "vfID",
    }
    assert vf["properties"]["Vlan"]["type"] == "integer"
    spec = STATE["properties"]["spec"]["properties"]
    assert spec["interfaces"]["items"]["required"] == ["pciAddress"]
    ovs = spec["bridges"]["properties"]["ovs"]["items"]
    assert ovs["required"] == ["name"]
    assert ovs["properties"]["uplinks"]["items"]["required"] == ["pciAddress"]
    assert spec["system"]["properties"]["rdmaMode"]["enum"] == ["shared", "exclusive"]


def test_network_constraints_match_upstream() -> None:
    assert _schema(f"{GROUP}_sriovnetworks.yaml")["properties"]["spec"]["required"] == ["resourceName"]
    props = _spec("sriovnetworks")
    assert props["logLevel"]["default"] == "info"
    assert props["logLevel"]["enum"] == ["panic", "error", "warning", "info", "debug", ""]
    assert (props["vlan"]["minimum"], props["vlan"]["maximum"]) == (0, 4094)
    assert (props["vlanQoS"]["minimum"], props["vlanQoS"]["maximum"]) == (0, 7)
    assert props["vlanProto"]["enum"] == ["802.1q", "802.1Q", "802.1ad", "802.1AD"]
    assert props["spoofChk"]["enum"] == props["trust"]["enum"] == ["on", "off"]
    assert props["minTxRate"]["minimum"] == props["maxTxRate"]["minimum"] == 0
    ovs = _spec("ovsnetworks")
    assert (ovs["vlan"]["minimum"], ovs["vlan"]["maximum"]) == (0, 4095)
    for bound in ("id", "minID", "maxID"):
        assert (ovs["trunk"]["items"]["properties"][bound]["maximum"]) == 4095
    config = _spec("sriovoperatorconfigs")
    assert (config["logLevel"]["minimum"], config["logLevel"]["maximum"]) == (0, 2)
    assert config["disablePlugins"]["items"] == {"enum": ["mellanox"], "type": "string"}
    assert config["featureGates"]["additionalProperties"] == {"type": "boolean"}


def test_int_or_string_has_no_type() -> None:
    pool = _spec("sriovnetworkpoolconfigs")
    assert {k: v for k, v in pool["maxUnavailable"].items() if k != "description"} == {
        "x-kubernetes-int-or-string": True
    }


def test_free_form_values_keep_unknown_fields() -> None:
    node = crd.openapi_schema(kube.Node)
    assert node["properties"]["status"] == {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    assert node["x-kubernetes-preserve-unknown-fields"] is True  # extra="allow"
    meta = crd.openapi_schema(ObjectMeta)
    assert meta["properties"]["managedFields"]["items"] == {
        "type": "object", "x-kubernetes-preserve-unknown-fields": True
    }


_READY = {"jsonPath": '.status.conditions[?(@.type=="Ready")].status', "name": "Ready", "type": "string"}
_AGE = {"jsonPath": ".metadata.creationTimestamp", "name": "Age", "type": "date"}


def test_printer_columns_as_upstream() -> None:
    columns = {
        doc["spec"]["names"]["kind"]: doc["spec"]["versions"][0].get("additionalPrinterColumns")
        for doc in CRDS.values()
    }
    assert columns == {
        "SriovNetworkNodePolicy": None,
        "SriovNetworkPoolConfig": None,
        "SriovNetwork": [_READY, _AGE],
        "SriovIBNetwork": [_READY, _AGE],
        "OVSNetwork": [_READY, _AGE],
        "SriovOperatorConfig": [_READY, _AGE],
        "SriovNetworkNodeState": [
            {"jsonPath": ".status.syncStatus", "name": "Sync Status", "type": "string"},
            {"jsonPath": r".metadata.annotations.sriovnetwork\.openshift\.io/desired-state",
             "name": "Desired Sync State", "type": "string"},
            {"jsonPath": r".metadata.annotations.sriovnetwork\.openshift\.io/current-state",
             "name": "Current Sync State", "type": "string"},
            _AGE,
        ],
    }


# --- Markers and models the generator must handle ----------------------------------------------------------


class _Item(KubeModel):
    """An item."""

    key: str
    mode: Literal["a", "b"] | None = Field(None, json_schema_extra={CRD_DEFAULT: "a"})
    reason: str = Field("", min_length=1, max_length=1024, pattern="^[A-Za-z]+$")


class _Holder(KubeModel):
    items: list[_Item] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["key"]},
    )
    """The items."""
    by_name: dict[str, _Item] = Field(default_factory=dict, alias="byName")
    single: _Item | None = None


def test_markers_and_string_constraints_pass_through() -> None:
    schema = crd.openapi_schema(_Holder)
    items = schema["properties"]["items"]
    assert items["x-kubernetes-list-type"] == "map"
    assert items["x-kubernetes-list-map-keys"] == ["key"]
    assert items["description"] == "The items."
    assert items["items"]["description"] == "An item."  # the type's doc when the field has none
    reason = items["items"]["properties"]["reason"]
    assert reason == {"maxLength": 1024, "minLength": 1, "pattern": "^[A-Za-z]+$", "type": "string"}
    assert schema["properties"]["single"]["required"] == ["key"]
    assert "required" not in schema


def test_unions_and_keywords_without_a_crd_form_are_refused() -> None:
    class Union(KubeModel):
        value: int | bool = 0

    class Exclusive(KubeModel):
        value: int = Field(0, gt=0)

    with pytest.raises(ValueError, match="not a structural schema"):
        crd.openapi_schema(Union)
    with pytest.raises(ValueError, match="exclusiveMinimum"):
        crd.openapi_schema(Exclusive)


# --- Defaulting --------------------------------------------------------------------------------------------


def _policy(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": models.API_VERSION,
        "kind": "SriovNetworkNodePolicy",
        "metadata": {"name": "p", "namespace": "sriov-network-operator"},
        "spec": {"resourceName": "r", "nodeSelector": {}, "numVfs": 4, "nicSelector": {"vendor": "15b3"},
                 **spec},
    }


def test_device_type_defaults_to_netdevice_when_absent() -> None:
    raw = _policy()
    out = crd.crd_defaults(models.SriovNetworkNodePolicy, raw)
    assert out["spec"]["deviceType"] == "netdevice"
    assert "deviceType" not in raw["spec"], "the input must not change"
    assert out["spec"]["nicSelector"] == {"vendor": "15b3"}
    assert "bridge" not in out["spec"], "objects without defaults inside are not created"


def test_device_type_kept_when_present_and_null_takes_the_default() -> None:
    kept = crd.crd_defaults(models.SriovNetworkNodePolicy, _policy(deviceType="vfio-pci"))
    assert kept["spec"]["deviceType"] == "vfio-pci"
    null = crd.crd_defaults(models.SriovNetworkNodePolicy, _policy(deviceType=None))
    assert null["spec"]["deviceType"] == "netdevice"


def test_sriov_network_log_level_defaults_to_info() -> None:
    raw: dict[str, Any] = {
        "apiVersion": models.API_VERSION, "kind": "SriovNetwork", "metadata": {"name": "n"},
        "spec": {"resourceName": "r"},
    }
    assert crd.crd_defaults(models.SriovNetwork, raw)["spec"]["logLevel"] == "info"
    raw["spec"]["logLevel"] = ""
    assert crd.crd_defaults(models.SriovNetwork, raw)["spec"]["logLevel"] == ""


def test_no_spec_no_defaults() -> None:
    """Defaults live inside spec; an absent spec is not invented (the API server does not either)."""
    assert crd.crd_defaults(models.SriovNetwork, {"kind": "SriovNetwork"}) == {"kind": "SriovNetwork"}


def test_nested_defaults_inside_arrays_and_maps() -> None:
    schema = crd.openapi_schema(_Holder)
    raw: dict[str, Any] = {
        "items": [{"key": "x"}, {"key": "y", "mode": "b"}, None],
        "byName": {"n": {"key": "z"}},
        "single": {"key": "s", "mode": None},
    }
    out = crd.apply_defaults(schema, raw)
    assert out["items"] == [{"key": "x", "mode": "a"}, {"key": "y", "mode": "b"}, None]
    assert out["byName"] == {"n": {"key": "z", "mode": "a"}}
    assert out["single"] == {"key": "s", "mode": "a"}
    assert raw["items"][0] == {"key": "x"}


def test_defaults_apply_inside_a_default() -> None:
    schema = {
        "type": "object",
        "properties": {
            "outer": {"type": "object", "default": {},
                      "properties": {"inner": {"type": "string", "default": "v"}}},
            "free": {"type": "string", "nullable": True, "default": "d"},
        },
    }
    assert crd.apply_defaults(schema, {"free": None}) == {"outer": {"inner": "v"}, "free": None}
    assert crd.apply_defaults(schema, "scalar") == "scalar"
