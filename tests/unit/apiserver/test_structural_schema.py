"""`sim.apiserver.schema`: structural pruning, defaulting and validation, worded as kube-apiserver words them.

Schemas here are small hand-written ones (each test shows the keyword it is about); the project's own CRD schema
is used where the real defaults matter (a policy's deviceType)."""

from __future__ import annotations

from typing import Any

import pytest

from vdpa_operator.api.crd import all_crds
from vdpa_operator.sim.apiserver.schema import Cause, SchemaError, compile_schema, go_value, normalize, validate


def root(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": {"metadata": {"type": "object"}, **properties}}


def messages(schema: dict[str, Any], obj: Any) -> list[str]:
    return [str(cause) for cause in validate(compile_schema(schema), obj)]


def test_the_policy_crd_defaults_device_type_and_leaves_absent_parents_absent() -> None:
    crd = all_crds()["sriovnetwork.openshift.io_sriovnetworknodepolicies.yaml"]
    node = compile_schema(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    bare = {"apiVersion": "sriovnetwork.openshift.io/v1", "kind": "SriovNetworkNodePolicy", "metadata": {"name": "p"}}
    assert normalize(node, bare) == bare  # no spec: nothing is defaulted inside it
    policy = {**bare, "spec": {"resourceName": "r", "numVfs": 2, "nodeSelector": {}, "nicSelector": {}}}
    stored = normalize(node, policy)
    assert stored["spec"]["deviceType"] == "netdevice"
    assert "deviceType" not in policy["spec"]  # the input is left as it was
    assert validate(node, stored) == []


def test_defaults_recurse_into_defaulted_values_and_replace_disallowed_nulls() -> None:
    node = compile_schema(root(spec={
        "type": "object",
        "properties": {
            "mode": {"type": "string", "default": "a"},
            "limits": {"type": "object", "default": {},
                       "properties": {"max": {"type": "integer", "default": 10}}},
            "list": {"type": "array", "items": {"type": "object",
                                                "properties": {"x": {"type": "string", "default": "d"}}}},
            "maybe": {"type": "string", "nullable": True},
            "gone": {"type": "string"},
        },
    }))
    out = normalize(node, {"spec": {"mode": None, "list": [{}, {"x": "y"}], "maybe": None, "gone": None}})
    assert out == {"spec": {"mode": "a", "limits": {"max": 10}, "list": [{"x": "d"}, {"x": "y"}], "maybe": None}}


def test_unknown_fields_are_pruned_and_reported_unless_preserved() -> None:
    node = compile_schema(root(
        spec={"type": "object", "properties": {
            "known": {"type": "string"},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "items": {"type": "array", "items": {"type": "object", "properties": {"a": {"type": "string"}}}},
        }},
    ))
    pruned: list[str] = []
    body = {"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "n", "labels": {"k": "v"}},
            "spec": {"known": "k", "extra": 1, "free": {"any": {"thing": [1]}}, "labels": {"a": "b"},
                     "items": [{"a": "1", "b": "2"}]},
            "stray": True}
    out = normalize(node, body, pruned)
    assert out == {"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "n", "labels": {"k": "v"}},
                   "spec": {"known": "k", "free": {"any": {"thing": [1]}}, "labels": {"a": "b"},
                            "items": [{"a": "1"}]}}
    assert pruned == ["spec.extra", "spec.items[0].b", "stray"]


def test_enum_type_and_required_errors_read_like_kube_apiserver() -> None:
    schema = root(spec={"type": "object", "required": ["numVfs"], "properties": {
        "deviceType": {"type": "string", "enum": ["netdevice", "vfio-pci"]},
        "mtu": {"type": "integer"},
    }})
    assert messages(schema, {"spec": {"deviceType": "foo", "numVfs": 1}}) == [
        'spec.deviceType: Unsupported value: "foo": supported values: "netdevice", "vfio-pci"']
    assert messages(schema, {"spec": {"mtu": "big"}}) == [
        'spec.mtu: Invalid value: "string": spec.mtu in body must be of type integer: "string"',
        "spec.numVfs: Required value",
    ]
    cause = validate(compile_schema(schema), {"spec": {"numVfs": 1, "mtu": None}})[0]
    assert cause == Cause("FieldValueTypeInvalid", "spec.mtu",
                          'Invalid value: "null": spec.mtu in body must be of type integer: "null"')
    assert messages(schema, {"spec": {"numVfs": 1, "mtu": 9000.0}}) == []  # an integral float is an integer


@pytest.mark.parametrize(("keyword", "value", "error"), [
    ({"type": "integer", "minimum": 0}, -1,
     "spec.v: Invalid value: -1: spec.v in body should be greater than or equal to 0"),
    ({"type": "integer", "maximum": 99}, 100,
     "spec.v: Invalid value: 100: spec.v in body should be less than or equal to 99"),
    ({"type": "number", "maximum": 1e6, "exclusiveMaximum": True}, 1e6,
     "spec.v: Invalid value: 1e+06: spec.v in body should be less than 1e+06"),
    ({"type": "string", "maxLength": 3}, "abcd", "spec.v: Too long: may not be longer than 3"),
    ({"type": "string", "minLength": 3}, "ab",
     'spec.v: Invalid value: "ab": spec.v in body should be at least 3 chars long'),
    ({"type": "string", "pattern": "^[a-z]+$"}, "A1",
     "spec.v: Invalid value: \"A1\": spec.v in body should match '^[a-z]+$'"),
    ({"type": "array", "maxItems": 1, "items": {"type": "string"}}, ["a", "b"],
     "spec.v: Too many: 2: must have at most 1 items"),
    ({"x-kubernetes-int-or-string": True}, True,
     'spec.v: Invalid value: "boolean": spec.v in body must be of type integer,string: "boolean"'),
    ({"type": "object", "additionalProperties": {"type": "integer"}}, {"a": "x"},
     'spec.v.a: Invalid value: "string": spec.v.a in body must be of type integer: "string"'),
])
def test_value_constraints(keyword: dict[str, Any], value: Any, error: str) -> None:
    schema = root(spec={"type": "object", "properties": {"v": keyword}})
    assert messages(schema, {"spec": {"v": value}}) == [error]


def test_int_or_string_takes_both_and_nested_items_name_their_index() -> None:
    schema = root(spec={"type": "object", "properties": {
        "port": {"x-kubernetes-int-or-string": True},
        "pfs": {"type": "array", "items": {"type": "object", "properties": {"mtu": {"type": "integer", "minimum": 1}}}},
    }})
    assert messages(schema, {"spec": {"port": 80}}) == messages(schema, {"spec": {"port": "http"}}) == []
    assert messages(schema, {"spec": {"pfs": [{"mtu": 1}, {"mtu": 0}]}}) == [
        "spec.pfs[1].mtu: Invalid value: 0: spec.pfs[1].mtu in body should be greater than or equal to 1"]


def test_root_metadata_is_the_servers_business() -> None:
    node = compile_schema(root(spec={"type": "object"}))
    obj = {"metadata": {"name": "n", "anything": {"x": 1}}, "spec": {}}
    assert normalize(node, obj) == obj
    assert validate(node, obj) == []


def test_schemas_that_cannot_be_compiled_name_the_node() -> None:
    with pytest.raises(SchemaError, match=r"properties\[spec\]\.pattern"):
        compile_schema(root(spec={"type": "string", "pattern": "("}))
    with pytest.raises(SchemaError, match=r"\.type: Unsupported value: \"thing\""):
        compile_schema({"type": "thing"})


def test_bad_values_print_as_go_prints_them() -> None:
    assert [go_value(v) for v in (None, True, 3, 2.5, 1e21, 0.00001, "a\"b", {"k": 1})] == [
        "null", "true", "3", "2.5", "1e+21", "1e-05", '"a\\"b"', '{"k": 1}']
