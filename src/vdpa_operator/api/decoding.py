"""Turning a decoded manifest (a JSON-like dict) into a model, the way the API server judges it.

Two kinds of failure are kept apart because they mean different things to a user:
- a *decoding* error (unknown kind, unknown field, wrong JSON type): the object cannot even be read, as with
  `kubectl apply --validate=strict`; the input is wrong and nothing should be applied;
- a *schema* violation (enum, bounds, required field): the object is read but the CRD schema rejects it,
  as the API server does with 422 Invalid; it is one more reason for an object to be rejected.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from pydantic import ValidationError

from vdpa_operator.api import kinds
from vdpa_operator.api.meta import Resource
from vdpa_operator.errors import VdpaOperatorError

Loc = tuple[str | int, ...]

_SCHEMA_ERROR_TYPES = frozenset(
    {"literal_error", "greater_than_equal", "less_than_equal", "greater_than", "less_than", "missing"}
)


@dataclass(frozen=True, slots=True)
class FieldIssue:
    """One problem with one field: where it is (as a path into the object) and what is wrong."""

    loc: Loc
    message: str

    @property
    def field(self) -> str:
        return json_path(self.loc)

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.loc else self.message


class DecodeError(VdpaOperatorError, ValueError):
    """The object cannot be read as any known kind; `issues` say which fields and why."""

    def __init__(self, kind: str, name: str, issues: list[FieldIssue]) -> None:
        what = f'{kind} "{name}"' if name else (kind or "object")
        super().__init__(f"{what}: " + "; ".join(str(i) for i in issues))
        self.kind = kind
        self.name = name
        self.issues = issues


@dataclass(frozen=True)
class Decoded:
    """A manifest read as its kind. `obj` is None when the CRD schema rejected it (see `schema_issues`)."""

    raw: dict[str, Any]
    model: type[Resource]
    obj: Resource | None
    schema_issues: tuple[FieldIssue, ...] = ()
    ignored: tuple[str, ...] = ()
    """Unknown fields dropped by a lenient decode (objects read back from a cluster of another version)."""

    @property
    def kind(self) -> str:
        return self.model.KIND

    @property
    def name(self) -> str:
        return _metadata_str(self.raw, "name")

    @property
    def namespace(self) -> str:
        return _metadata_str(self.raw, "namespace")


def json_path(loc: Loc) -> str:
    """("spec", "pfNames", 0) → "spec.pfNames[0]"."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _metadata_str(raw: Mapping[str, Any], key: str) -> str:
    meta = raw.get("metadata")
    value = meta.get(key) if isinstance(meta, Mapping) else None
    return value if isinstance(value, str) else ""


_JSON_TYPE = {str: "string", bool: "boolean", int: "integer", float: "number", list: "array", dict: "object"}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return _JSON_TYPE.get(type(value), type(value).__name__)


def _describe(err: Mapping[str, Any]) -> str:
    kind = err["type"]
    value = err.get("input")
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "Required value"
    if kind == "literal_error":
        expected = str(err.get("ctx", {}).get("expected", "")).replace("'", '"').replace(" or ", ", ")
        return f"Unsupported value: {_short(value)}: supported values: {expected}"
    if kind in ("greater_than_equal", "greater_than"):
        bound = err["ctx"].get("ge", err["ctx"].get("gt"))
        return f"Invalid value: {_short(value)}: must be greater than or equal to {bound}"
    if kind in ("less_than_equal", "less_than"):
        bound = err["ctx"].get("le", err["ctx"].get("lt"))
        return f"Invalid value: {_short(value)}: must be less than or equal to {bound}"
    wanted = {
        "string_type": "string", "int_type": "integer", "bool_type": "boolean", "float_type": "number",
        "dict_type": "object", "model_type": "object", "model_attributes_type": "object", "list_type": "array",
    }.get(kind)
    if wanted:
        return f"expected {wanted}, got {_json_type(value)} {_short(value)}"
    return str(err.get("msg", kind))


def _short(value: Any) -> str:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _clean_loc(loc: tuple[Any, ...]) -> Loc:
    """Drop pydantic's union-branch markers ("int", "str", "function-after[...]") from a location."""
    return tuple(p for p in loc if isinstance(p, int) or not (p in {"int", "str"} or "[" in p))


def decode(raw: Any, *, lenient: bool = False) -> Decoded:
    """Read one manifest object as its kind. Raises DecodeError when it cannot be read at all.

    `lenient` drops unknown fields instead of refusing them: for objects that come out of a cluster (node states
    written by another operator version), where an extra field is not a user's typo.
    """
    if not isinstance(raw, dict):
        raise DecodeError("", "", [FieldIssue((), f"expected an object (a YAML mapping), got {_json_type(raw)}")])
    api_version, kind = raw.get("apiVersion"), raw.get("kind")
    name = _metadata_str(raw, "name")
    missing = [FieldIssue((k,), "Required value") for k, v in (("apiVersion", api_version), ("kind", kind))
               if not isinstance(v, str) or not v]
    if missing:
        raise DecodeError("", name, missing)
    assert isinstance(api_version, str) and isinstance(kind, str)
    model = kinds.lookup(api_version, kind)
    if model is None:
        known = ", ".join(kinds.known_kinds())
        issue = FieldIssue(("kind",), f'unknown kind "{api_version}/{kind}"; known kinds: {known}')
        raise DecodeError(kind, name, [issue])
    try:
        obj = model.model_validate(raw, by_name=False)
    except ValidationError as err:
        decode_issues: list[FieldIssue] = []
        schema_issues: list[FieldIssue] = []
        for e in err.errors():
            issue = FieldIssue(_clean_loc(e["loc"]), _describe(e))
            (schema_issues if e["type"] in _SCHEMA_ERROR_TYPES else decode_issues).append(issue)
        unknown = [i for i in decode_issues if i.message == "unknown field"]
        if lenient and unknown and len(unknown) == len(decode_issues):
            trimmed = _without(raw, [i.loc for i in unknown])
            return replace(decode(trimmed), ignored=tuple(i.field for i in unknown))
        if decode_issues:
            raise DecodeError(kind, name, decode_issues) from None
        return Decoded(raw, model, None, tuple(schema_issues))
    return Decoded(raw, model, obj)


R = TypeVar("R", bound=Resource)


def decode_from_cluster(raw: Mapping[str, Any], model: type[R]) -> R:
    """An object read back from a cluster, as `model`: decoded leniently (a server adds metadata and a newer
    operator may add fields this project does not know), with apiVersion and kind filled in when a list left them
    out (the real API server does for built-in kinds) and top-level nulls ignored.

    Raises DecodeError (a ValueError) naming the fields when it is not a valid `model`."""
    typed = {"apiVersion": model.API_VERSION, "kind": model.KIND,
             **{k: v for k, v in raw.items() if v is not None}}
    decoded = decode(typed, lenient=True)
    if isinstance(decoded.obj, model):
        return decoded.obj
    issues = list(decoded.schema_issues) or [FieldIssue(("kind",), f"decoded as {decoded.kind}, not {model.KIND}")]
    raise DecodeError(model.KIND, decoded.name, issues)


def _without(raw: dict[str, Any], locs: list[Loc]) -> dict[str, Any]:
    """A deep copy of `raw` with the fields at `locs` removed."""
    trimmed = copy.deepcopy(raw)
    for loc in locs:
        parent: Any = trimmed
        for part in loc[:-1]:
            parent = parent[part]
        del parent[loc[-1]]
    return trimmed
