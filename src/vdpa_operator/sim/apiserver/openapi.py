"""The OpenAPI v3 documents kubectl reads before it writes: `/openapi/v3` and one document per group/version.

What kubectl 1.37 needs from them (k8s.io/cli-runtime `queryParamVerifierV3`, kubectl `apply/patcher.go`):
each kind's PATCH operation, tagged with `x-kubernetes-group-version-kind`, listing the `fieldValidation` query
parameter. With that, `--validate=strict` (the default) sends `fieldValidation=Strict` and leaves the checking to
the server instead of downloading `/openapi/v2` (protobuf) for client-side validation. The PATCH request body
never offers strategic merge patch, so `kubectl apply` falls back to its built-in types for core kinds and to a
JSON merge patch for custom resources, as it does against a real server for CRDs.

Custom resources also get their CRD schema under `components.schemas` (named as kube-apiserver names them,
e.g. `io.openshift.sriovnetwork.v1.SriovNetworkNodePolicy`), which is what `kubectl explain` reads. Core kinds
have no schema here. `/openapi/v2` is not served.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from vdpa_operator.sim.apiserver.resources import Registry, ResourceType

OPENAPI_VERSION = "3.0.0"
_PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml")


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def schema_name(rtype: ResourceType) -> str:
    """kube-apiserver's definition name for a CRD kind: the group reversed, then version and kind."""
    return ".".join(reversed(rtype.group.split("."))) + f".{rtype.version}.{rtype.kind}"


def _query(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "description": description, "schema": {"type": "string",
                                                                                "uniqueItems": True}}


def _operation(rtype: ResourceType, action: str, verb: str, *, body: tuple[str, ...] = ()) -> dict[str, Any]:
    gvk = {"group": rtype.group, "version": rtype.version, "kind": rtype.kind}
    schema: dict[str, Any] = (
        {"$ref": f"#/components/schemas/{schema_name(rtype)}"} if rtype.crd is not None else {"type": "object"})
    operation: dict[str, Any] = {
        "description": f"{action} {rtype.kind}",
        "operationId": f"{verb}{rtype.kind}",
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": schema}}}},
        "x-kubernetes-action": verb,
        "x-kubernetes-group-version-kind": gvk,
    }
    if verb in ("post", "put", "patch"):
        operation["parameters"] = [
            _query("dryRun", "When present, indicates that modifications should not be persisted."),
            _query("fieldManager", "fieldManager is a name associated with the actor or entity that is making "
                                   "these changes."),
            _query("fieldValidation", "fieldValidation instructs the server on how to handle objects in the "
                                      "request containing unknown or duplicate fields: Ignore, Warn or Strict."),
        ]
        if verb == "patch":
            operation["parameters"].append(_query("force", "Force is going to \"force\" Apply requests."))
        types = body or ("application/json",)
        operation["requestBody"] = {"content": {t: {"schema": schema} for t in types}, "required": True}
    return operation


def _paths(rtype: ResourceType) -> dict[str, Any]:
    prefix = "/" + _gv_path(rtype.group, rtype.version)
    collection = (f"{prefix}/namespaces/{{namespace}}/{rtype.plural}" if rtype.namespaced
                  else f"{prefix}/{rtype.plural}")
    item_params = [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}]
    if rtype.namespaced:
        item_params.append({"name": "namespace", "in": "path", "required": True, "schema": {"type": "string"}})
    paths: dict[str, Any] = {
        collection: {
            "get": _operation(rtype, "list or watch objects of kind", "list"),
            "post": _operation(rtype, "create a", "post"),
            "parameters": item_params[1:],
        },
        f"{collection}/{{name}}": {
            "get": _operation(rtype, "read the specified", "get"),
            "put": _operation(rtype, "replace the specified", "put"),
            "patch": _operation(rtype, "partially update the specified", "patch", body=_PATCH_TYPES),
            "delete": _operation(rtype, "delete a", "delete"),
            "parameters": item_params,
        },
    }
    if rtype.status_subresource:
        paths[f"{collection}/{{name}}/status"] = {
            "get": _operation(rtype, "read status of the specified", "get"),
            "put": _operation(rtype, "replace status of the specified", "put"),
            "patch": _operation(rtype, "partially update status of the specified", "patch", body=_PATCH_TYPES),
            "parameters": item_params,
        }
    return paths


def _crd_schema(rtype: ResourceType) -> dict[str, Any] | None:
    crd = rtype.crd or {}
    for version in (crd.get("spec") or {}).get("versions") or []:
        if version.get("name") == rtype.version:
            schema = (version.get("schema") or {}).get("openAPIV3Schema")
            if isinstance(schema, dict):
                out = copy.deepcopy(schema)
                out["x-kubernetes-group-version-kind"] = [
                    {"group": rtype.group, "kind": rtype.kind, "version": rtype.version}]
                return out
    return None


def group_version_document(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    """The OpenAPI v3 document of one served group/version; None if nothing is served there."""
    types = registry.in_group_version(group, version)
    if not types:
        return None
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for rtype in types:
        paths.update(_paths(rtype))
        if (schema := _crd_schema(rtype)) is not None:
            schemas[schema_name(rtype)] = schema
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def document_hash(document: dict[str, Any]) -> str:
    """What the discovery document pins each document with (kube-apiserver: upper-case hex SHA-512)."""
    return hashlib.sha512(json.dumps(document, sort_keys=True).encode()).hexdigest().upper()


def discovery(registry: Registry) -> dict[str, Any]:
    """`/openapi/v3`: where each group/version's document is, with its hash so clients may cache it."""
    paths: dict[str, Any] = {}
    for group, versions in registry.group_versions().items():
        for version in versions:
            document = group_version_document(registry, group, version)
            if document is not None:
                path = _gv_path(group, version)
                paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={document_hash(document)}"}
    return {"paths": paths}
