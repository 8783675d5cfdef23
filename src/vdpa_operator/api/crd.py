"""CustomResourceDefinitions generated from the models, and the API server's structural defaulting.

The models are the single source of truth: the CRD schema is derived from pydantic's JSON schema and reshaped
into what controller-gen emits for upstream's Go types (a structural OpenAPI v3 schema: no `$ref`, no unions,
`type` on every node, keys sorted). Defaulting reads the same schema, so a default declared once on a model
field (`CRD_DEFAULT`) is both published in the CRD and applied to objects before admission, as in a cluster.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from typing import Any

from vdpa_operator.api.kinds import OPERATOR_KINDS
from vdpa_operator.api.meta import KubeModel, Resource
from vdpa_operator.api.models import CRD_DEFAULT, CURRENT_STATE, DESIRED_STATE

Schema = dict[str, Any]

# Schema keywords that mean the same in pydantic's JSON Schema and in a CRD's OpenAPI v3 schema.
_KEPT = frozenset({
    "description", "type", "enum", "minimum", "maximum", "minLength", "maxLength", "pattern", "format",
    "minItems", "maxItems", "nullable",
})
# pydantic bookkeeping that has no place in a CRD. Go zero values are not CRD defaults, so `default` goes too.
_DROPPED = frozenset({"title", "default", "$defs"})

_TYPE_META: dict[str, Schema] = {
    "apiVersion": {
        "description": (
            "APIVersion defines the versioned schema of this representation of an object.\n"
            "Servers should convert recognized schemas to the latest internal value, and\n"
            "may reject unrecognized values.\n"
            "More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md"
            "#resources"
        ),
        "type": "string",
    },
    "kind": {
        "description": (
            "Kind is a string value representing the REST resource this object represents.\n"
            "Servers may infer this from the endpoint the client submits requests to.\n"
            "Cannot be updated.\n"
            "In CamelCase.\n"
            "More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md"
            "#types-kinds"
        ),
        "type": "string",
    },
    # The API server validates metadata itself; CRDs only say it is an object.
    "metadata": {"type": "object"},
}

_AGE: Schema = {"jsonPath": ".metadata.creationTimestamp", "name": "Age", "type": "date"}
_READY: Schema = {
    "jsonPath": '.status.conditions[?(@.type=="Ready")].status', "name": "Ready", "type": "string",
}


def _annotation_path(key: str) -> str:
    """A JSONPath to one annotation: the dots of the key escaped."""
    return ".metadata.annotations." + key.replace(".", "\\.")


# Upstream's `+kubebuilder:printcolumn` markers, per kind.
_PRINTER_COLUMNS: dict[str, list[Schema]] = {
    "SriovNetworkNodeState": [
        {"jsonPath": ".status.syncStatus", "name": "Sync Status", "type": "string"},
        {"jsonPath": _annotation_path(DESIRED_STATE), "name": "Desired Sync State", "type": "string"},
        {"jsonPath": _annotation_path(CURRENT_STATE), "name": "Current Sync State", "type": "string"},
        _AGE,
    ],
    "SriovNetwork": [_READY, _AGE],
    "SriovIBNetwork": [_READY, _AGE],
    "OVSNetwork": [_READY, _AGE],
    "SriovOperatorConfig": [_READY, _AGE],
}


def openapi_schema(model: type[KubeModel]) -> Schema:
    """The structural OpenAPI v3 schema of a model, as a CRD's `openAPIV3Schema` carries it."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    schema = _structural(raw, raw.get("$defs", {}), model.__name__)
    if issubclass(model, Resource):
        schema["properties"].update(copy.deepcopy(_TYPE_META))
        # Upstream's Go types make `spec` optional at the top level; our models still require it when decoding.
        schema.pop("required", None)
    return schema


def _structural(node: Schema, defs: Mapping[str, Schema], where: str) -> Schema:
    """One pydantic schema node rewritten the way controller-gen would write it for the Go type."""
    if "$ref" in node:
        # The field's own keys (its description) win over the referenced model's.
        rest = {k: v for k, v in node.items() if k != "$ref"}
        return _structural({**defs[node["$ref"].rsplit("/", 1)[-1]], **rest}, defs, where)
    if "anyOf" in node:
        return _union(node, defs, where)

    out: Schema = {}
    for key, value in node.items():
        if key in _KEPT or key.startswith("x-kubernetes-"):
            out[key] = value
        elif key == CRD_DEFAULT:
            out["default"] = value
        elif key == "const":
            out["enum"] = [value]
        elif key == "properties":
            if value:
                out["properties"] = {
                    name: _structural(prop, defs, f"{where}.{name}") for name, prop in sorted(value.items())
                }
        elif key == "required":
            out["required"] = sorted(value)
        elif key == "items":
            out["items"] = _structural(value, defs, f"{where}[]")
        elif key == "additionalProperties":
            if value is True:  # dict[str, Any], or a model that keeps unknown fields
                out["x-kubernetes-preserve-unknown-fields"] = True
            elif isinstance(value, dict):  # dict[str, X]; False (extra="forbid") is what pruning does anyway
                out["additionalProperties"] = _structural(value, defs, f"{where}{{}}")
        elif key not in _DROPPED:
            raise ValueError(f"{where}: JSON schema keyword {key!r} has no CRD equivalent here")
    if not out.get("type") and not out.get("x-kubernetes-int-or-string"):
        out["x-kubernetes-preserve-unknown-fields"] = True  # `Any`: any JSON value is kept as it is
    return dict(sorted(out.items()))


def _union(node: Schema, defs: Mapping[str, Schema], where: str) -> Schema:
    """`X | None` is just X (absent and null are the same to the API server); `int | str` is IntOrString."""
    rest = {k: v for k, v in node.items() if k != "anyOf"}
    branches = [b for b in node["anyOf"] if b != {"type": "null"}]
    if len(branches) == 1:
        return _structural({**branches[0], **rest}, defs, where)
    if sorted(branches, key=str) == [{"type": "integer"}, {"type": "string"}]:
        return _structural({**rest, "x-kubernetes-int-or-string": True}, defs, where)
    raise ValueError(f"{where}: a union of {branches} is not a structural schema")


def crd_for(kind: type[Resource]) -> Schema:
    """The `apiextensions.k8s.io/v1` CustomResourceDefinition of one kind, as upstream ships it."""
    group, version = kind.API_VERSION.split("/")
    served: Schema = {}
    if kind.KIND in _PRINTER_COLUMNS:
        served["additionalPrinterColumns"] = copy.deepcopy(_PRINTER_COLUMNS[kind.KIND])
    served |= {"name": version, "schema": {"openAPIV3Schema": openapi_schema(kind)}, "served": True,
               "storage": True}
    if "status" in kind.model_fields:
        served["subresources"] = {"status": {}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{kind.PLURAL}.{group}"},
        "spec": {
            "group": group,
            "names": {
                "kind": kind.KIND,
                "listKind": f"{kind.KIND}List",
                "plural": kind.PLURAL,
                "singular": kind.KIND.lower(),
            },
            "scope": "Namespaced" if kind.NAMESPACED else "Cluster",
            "versions": [served],
        },
    }


def crd_file_name(kind: type[Resource]) -> str:
    """`<group>_<plural>.yaml`, controller-gen's naming."""
    return f"{kind.API_VERSION.split('/')[0]}_{kind.PLURAL}.yaml"


def all_crds() -> dict[str, Schema]:
    """File name → CRD for every kind this project defines."""
    return {crd_file_name(kind): crd_for(kind) for kind in OPERATOR_KINDS}


# --- Structural defaulting ----------------------------------------------------------------------------------


def apply_defaults(schema: Schema, value: Any) -> Any:
    """`value` with the schema's defaults filled in, as kube-apiserver does on every read and write.

    An absent property, or a null one (our schemas have no nullable fields), takes its default; then every
    present value is defaulted by its own schema, defaults included. The input is left as it was.
    """
    out = copy.deepcopy(value)
    _default_in_place(schema, out)
    return out


def _default_in_place(schema: Schema, value: Any) -> None:
    """apiextensions-apiserver's `structuraldefaulting.Default`, step for step."""
    if isinstance(value, dict):
        properties: dict[str, Schema] = schema.get("properties", {})
        for name, prop in properties.items():
            if "default" in prop and (name not in value or _null_to_default(value[name], prop)):
                value[name] = copy.deepcopy(prop["default"])
        extra = schema.get("additionalProperties")
        for name in value:
            if name in properties:
                _default_in_place(properties[name], value[name])
            elif isinstance(extra, dict):
                if _null_to_default(value[name], extra):
                    value[name] = copy.deepcopy(extra.get("default"))
                _default_in_place(extra, value[name])
    elif isinstance(value, list) and "items" in schema:
        items: Schema = schema["items"]
        for index, item in enumerate(value):
            if _null_to_default(item, items):
                value[index] = copy.deepcopy(items.get("default"))
            _default_in_place(items, value[index])


def _null_to_default(value: Any, schema: Schema) -> bool:
    """A null where the schema does not allow null is replaced by the default (or stays null without one)."""
    return value is None and not schema.get("nullable")


@functools.cache
def _schema_of(kind: type[Resource]) -> Schema:
    """Schemas are built once per kind: defaulting runs for every object read."""
    return openapi_schema(kind)


def crd_defaults(kind: type[Resource], raw: Mapping[str, Any]) -> dict[str, Any]:
    """A raw object of `kind` as the API server would store it: its CRD schema's defaults applied."""
    out: dict[str, Any] = apply_defaults(_schema_of(kind), dict(raw))
    return out
