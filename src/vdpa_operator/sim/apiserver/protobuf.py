"""Request bodies in Kubernetes protobuf (`application/vnd.kubernetes.protobuf`), decoded to the JSON form.

client-go's generated clients always write built-in kinds as protobuf and never fall back to JSON, so
`kubectl create namespace` / `create configmap` / `create secret` / `create serviceaccount` / `create token`
send nothing else. Responses stay JSON: those clients accept it. Only the kinds those commands create are
described here (fields from k8s.io/api `generated.proto`); anything else is 415 Unsupported Media Type naming
JSON as the way out.

Wire format: the 4 bytes `k8s\\0`, then a `runtime.Unknown` whose `raw` is the object's own message. Like Go's
`omitempty`, empty strings, zero numbers, false and empty maps or lists are left out of the JSON.
"""

from __future__ import annotations

import base64
import datetime
from collections.abc import Mapping
from typing import Any

from vdpa_operator.sim.apiserver.errors import StatusError, bad_request

CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"

# field number → (JSON name, type). Types: str, bytes, int, bool, time, map:str, map:bytes, [T] (repeated),
# or the name of another message below.
Schema = Mapping[int, tuple[str, str]]
_MESSAGES: dict[str, Schema] = {
    "Unknown": {1: ("typeMeta", "TypeMeta"), 2: ("raw", "rawbytes"), 3: ("contentEncoding", "str"),
                4: ("contentType", "str")},
    "TypeMeta": {1: ("apiVersion", "str"), 2: ("kind", "str")},
    "ObjectMeta": {
        1: ("name", "str"), 2: ("generateName", "str"), 3: ("namespace", "str"), 4: ("selfLink", "str"),
        5: ("uid", "str"), 6: ("resourceVersion", "str"), 7: ("generation", "int"),
        8: ("creationTimestamp", "time"), 9: ("deletionTimestamp", "time"),
        10: ("deletionGracePeriodSeconds", "int"), 11: ("labels", "map:str"), 12: ("annotations", "map:str"),
        13: ("ownerReferences", "[OwnerReference]"), 14: ("finalizers", "[str]"),
    },
    "OwnerReference": {5: ("apiVersion", "str"), 1: ("kind", "str"), 3: ("name", "str"), 4: ("uid", "str"),
                       6: ("controller", "bool"), 7: ("blockOwnerDeletion", "bool")},
    "ObjectReference": {1: ("kind", "str"), 2: ("namespace", "str"), 3: ("name", "str"), 4: ("uid", "str"),
                        5: ("apiVersion", "str"), 6: ("resourceVersion", "str"), 7: ("fieldPath", "str")},
    "LocalObjectReference": {1: ("name", "str")},
    "Time": {1: ("seconds", "int"), 2: ("nanos", "int")},
    "Namespace": {1: ("metadata", "ObjectMeta"), 2: ("spec", "NamespaceSpec"), 3: ("status", "NamespaceStatus")},
    "NamespaceSpec": {1: ("finalizers", "[str]")},
    "NamespaceStatus": {1: ("phase", "str")},
    "ConfigMap": {1: ("metadata", "ObjectMeta"), 2: ("data", "map:str"), 3: ("binaryData", "map:bytes"),
                  4: ("immutable", "bool")},
    "Secret": {1: ("metadata", "ObjectMeta"), 2: ("data", "map:bytes"), 3: ("type", "str"),
               4: ("stringData", "map:str"), 5: ("immutable", "bool")},
    "ServiceAccount": {1: ("metadata", "ObjectMeta"), 2: ("secrets", "[ObjectReference]"),
                       3: ("imagePullSecrets", "[LocalObjectReference]"),
                       4: ("automountServiceAccountToken", "bool")},
    "TokenRequest": {1: ("metadata", "ObjectMeta"), 2: ("spec", "TokenRequestSpec")},
    "TokenRequestSpec": {1: ("audiences", "[str]"), 3: ("boundObjectRef", "BoundObjectReference"),
                         4: ("expirationSeconds", "int")},
    "BoundObjectReference": {1: ("kind", "str"), 2: ("apiVersion", "str"), 3: ("name", "str"), 4: ("uid", "str")},
}
KINDS = {("v1", "Namespace"), ("v1", "ConfigMap"), ("v1", "Secret"), ("v1", "ServiceAccount"),
         ("authentication.k8s.io/v1", "TokenRequest")}
"""The (apiVersion, kind) whose protobuf bodies this server reads: what those kubectl commands and `kubectl
create token` send."""


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def varint(self) -> int:
        result = shift = 0
        while True:
            if self.pos >= len(self.data):
                raise ValueError("truncated varint")
            byte = self.data[self.pos]
            self.pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7

    def take(self, size: int) -> bytes:
        if self.pos + size > len(self.data):
            raise ValueError("truncated field")
        out = self.data[self.pos:self.pos + size]
        self.pos += size
        return out

    def fields(self) -> list[tuple[int, int, int | bytes]]:
        """(field number, wire type, value) in order; unknown fields included, groups refused."""
        out: list[tuple[int, int, int | bytes]] = []
        while self.pos < len(self.data):
            key = self.varint()
            number, wire = key >> 3, key & 7
            if wire == 0:
                out.append((number, wire, self.varint()))
            elif wire == 1:
                out.append((number, wire, int.from_bytes(self.take(8), "little")))
            elif wire == 2:
                out.append((number, wire, self.take(self.varint())))
            elif wire == 5:
                out.append((number, wire, int.from_bytes(self.take(4), "little")))
            else:
                raise ValueError(f"unsupported wire type {wire}")
        return out


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _message(data: bytes, name: str) -> dict[str, Any]:
    schema = _MESSAGES[name]
    out: dict[str, Any] = {}
    for number, wire, value in _Reader(data).fields():
        if number not in schema:
            continue  # a field this server does not model (managedFields, conditions, ...)
        key, kind = schema[number]
        if kind.startswith("["):
            out.setdefault(key, []).append(_scalar(kind[1:-1], wire, value))
        elif kind.startswith("map:"):
            if not isinstance(value, bytes):
                raise ValueError(f"{name}.{key}: a map entry must be length-delimited")
            entry = {n: v for n, _, v in _Reader(value).fields()}
            raw_key, raw_value = entry.get(1, b""), entry.get(2, b"")
            if not isinstance(raw_key, bytes) or not isinstance(raw_value, bytes):
                raise ValueError(f"{name}.{key}: a map entry must hold strings")
            out.setdefault(key, {})[raw_key.decode()] = _scalar(kind[4:], 2, raw_value)
        else:
            out[key] = _scalar(kind, wire, value)
    return {k: v for k, v in out.items() if v not in ("", 0, False, None, {}, [])}


def _scalar(kind: str, wire: int, value: int | bytes) -> Any:
    if kind in ("str", "bytes", "rawbytes", "time") or kind in _MESSAGES:
        if not isinstance(value, bytes):
            raise ValueError(f"a {kind} field must be length-delimited")
        if kind == "str":
            return value.decode()
        if kind == "bytes":
            return base64.b64encode(value).decode()
        if kind == "rawbytes":
            return value
        if kind == "time":
            parts = _message(value, "Time")
            if not parts:
                return None
            moment = datetime.datetime.fromtimestamp(parts.get("seconds", 0), datetime.UTC)
            return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        return _message(value, kind)
    if not isinstance(value, int):
        raise ValueError(f"a {kind} field must be a number")
    if kind == "bool":
        return bool(value)
    return _signed(value)


def decode(body: bytes) -> dict[str, Any]:
    """A protobuf request body as the JSON object it stands for (apiVersion and kind included)."""
    if not body.startswith(MAGIC):
        raise bad_request("the protobuf body does not start with the Kubernetes magic number k8s\\x00")
    try:
        unknown = _message(body[len(MAGIC):], "Unknown")
        type_meta = unknown.get("typeMeta") or {}
        kind, api_version = type_meta.get("kind", ""), type_meta.get("apiVersion", "")
        if (api_version, kind) not in KINDS:
            readable = ", ".join(f"{v} {k}" for v, k in sorted(KINDS))
            raise StatusError(
                415, "UnsupportedMediaType",
                f"this server reads {CONTENT_TYPE} only for {readable} (got {api_version or 'no apiVersion'} "
                f"{kind or 'no kind'}): send application/json instead")
        obj = _message(unknown.get("raw", b""), kind)
    except (ValueError, UnicodeDecodeError) as err:
        raise bad_request(f"the protobuf body could not be decoded: {err}") from None
    return {"apiVersion": api_version, "kind": kind, **obj}
