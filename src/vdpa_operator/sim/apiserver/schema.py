"""A CRD's structural OpenAPI v3 schema, compiled once, applied the way apiextensions-apiserver applies it.

`compile_schema(openAPIV3Schema)` gives a tree of `Node`s; two pure functions use it:

- `normalize(node, obj)`: what decoding does to a custom resource before anything else sees it. Unknown fields
  are pruned (unless `x-kubernetes-preserve-unknown-fields`), a null the schema does not allow is dropped, and
  `default`s fill in absent fields, recursively, only inside objects that exist. At the root (and in
  `x-kubernetes-embedded-resource` objects) apiVersion, kind and metadata are kept as they are: the API server
  handles metadata itself. The input is not modified; untouched subtrees may be shared with it.
- `validate(node, obj)`: the schema checks, as `Cause`s worded like kube-openapi errors turned into field
  errors (`spec.deviceType: Unsupported value: "foo": supported values: "netdevice", "vfio-pci"`).

Keywords checked: type (with `nullable` and `x-kubernetes-int-or-string`), enum, minimum/maximum (and their
exclusive forms), multipleOf, minLength/maxLength, pattern, minItems/maxItems, minProperties/maxProperties,
required, properties, additionalProperties, items. Not checked: `format`, `uniqueItems`,
`x-kubernetes-list-type`/`-map-keys` uniqueness, allOf/anyOf/oneOf/not, and CEL `x-kubernetes-validations`.
"""

from __future__ import annotations

import copy
import decimal
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vdpa_operator.errors import VdpaOperatorError

ROOT_META = ("apiVersion", "kind", "metadata")
"""Kept at the root of every object (and in embedded resources) whatever the schema says."""


class SchemaError(VdpaOperatorError, ValueError):
    """A schema this server cannot compile (not structural, or a bad regular expression)."""


@dataclass(frozen=True)
class Cause:
    """One field error: `reason` is the metav1 CauseType, `message` the error without the field."""

    reason: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"

    def as_status_cause(self) -> dict[str, str]:
        return {"reason": self.reason, "message": self.message, "field": self.field}


@dataclass
class Node:
    """One compiled schema node. `types` is empty when any JSON value is accepted."""

    types: tuple[str, ...] = ()
    nullable: bool = False
    preserve_unknown: bool = False
    embedded: bool = False
    properties: dict[str, Node] = field(default_factory=dict)
    additional: Node | None = None
    items: Node | None = None
    required: tuple[str, ...] = ()
    enum: tuple[Any, ...] | None = None
    has_default: bool = False
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    exclusive_maximum: bool = False
    multiple_of: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: re.Pattern[str] | None = None
    pattern_text: str = ""
    min_items: int | None = None
    max_items: int | None = None
    min_properties: int | None = None
    max_properties: int | None = None

    @property
    def prunes(self) -> bool:
        """Whether unknown keys of an object here are dropped."""
        return not self.preserve_unknown and self.additional is None


def compile_schema(raw: Mapping[str, Any], where: str = "openAPIV3Schema") -> Node:
    """Compile one schema node (and its children). Raises `SchemaError` naming the offending node."""
    if not isinstance(raw, Mapping):
        raise SchemaError(f"{where}: a schema must be an object")
    node = Node()
    declared = raw.get("type")
    if raw.get("x-kubernetes-int-or-string"):
        node.types = ("integer", "string")
    elif declared:
        if declared not in ("object", "array", "string", "integer", "number", "boolean"):
            raise SchemaError(f'{where}.type: Unsupported value: "{declared}"')
        node.types = (declared,)
    node.nullable = bool(raw.get("nullable"))
    node.preserve_unknown = bool(raw.get("x-kubernetes-preserve-unknown-fields"))
    node.embedded = bool(raw.get("x-kubernetes-embedded-resource"))
    node.properties = {
        name: compile_schema(sub, f"{where}.properties[{name}]") for name, sub in (raw.get("properties") or {}).items()
    }
    extra = raw.get("additionalProperties")
    if isinstance(extra, Mapping):
        node.additional = compile_schema(extra, f"{where}.additionalProperties")
    elif extra is True:
        node.preserve_unknown = True
    if "items" in raw:
        if not isinstance(raw["items"], Mapping):
            raise SchemaError(f"{where}.items: must be a single schema (a structural schema has no tuple items)")
        node.items = compile_schema(raw["items"], f"{where}.items")
    node.required = tuple(raw.get("required") or ())
    if "enum" in raw:
        node.enum = tuple(raw["enum"])
    if "default" in raw:
        node.has_default, node.default = True, raw["default"]
    node.minimum, node.maximum = raw.get("minimum"), raw.get("maximum")
    node.exclusive_minimum = bool(raw.get("exclusiveMinimum"))
    node.exclusive_maximum = bool(raw.get("exclusiveMaximum"))
    node.multiple_of = raw.get("multipleOf")
    node.min_length, node.max_length = raw.get("minLength"), raw.get("maxLength")
    if "pattern" in raw:
        node.pattern_text = raw["pattern"]
        try:
            node.pattern = re.compile(node.pattern_text)
        except re.error as err:
            raise SchemaError(f'{where}.pattern: Invalid value: "{node.pattern_text}": {err}') from None
    node.min_items, node.max_items = raw.get("minItems"), raw.get("maxItems")
    node.min_properties, node.max_properties = raw.get("minProperties"), raw.get("maxProperties")
    return node


# --- decoding: prune, drop disallowed nulls, default ----------------------------------------------------------


def normalize(node: Node, obj: Any, pruned: list[str] | None = None) -> Any:
    """`obj` (a whole object: the root keeps apiVersion/kind/metadata) as the API server decodes it. The paths
    of pruned unknown fields (`spec.foo`, `spec.items[0].bar`) are appended to `pruned` when given: what
    `fieldValidation=Warn` warns about and `Strict` refuses."""
    return _normalize(node, obj, "", pruned, root=True)


def _normalize(node: Node | None, value: Any, path: str, pruned: list[str] | None, *, root: bool = False) -> Any:
    if node is None:
        return value
    if isinstance(value, dict):
        return _normalize_object(node, value, path, pruned, keep_meta=root or node.embedded)
    if isinstance(value, list) and node.items is not None:
        items = node.items
        return [_default_of(items) if v is None and items.has_default and not items.nullable
                else _normalize(items, v, f"{path}[{i}]" if pruned is not None else "", pruned)
                for i, v in enumerate(value)]
    return value


def _normalize_object(node: Node, value: dict[str, Any], path: str, pruned: list[str] | None, *,
                      keep_meta: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, sub in value.items():
        if keep_meta and key in ROOT_META:
            out[key] = sub  # the API server's own business (ObjectMeta is validated apart)
            continue
        child = node.properties.get(key, node.additional)
        if child is None:
            if node.preserve_unknown:
                out[key] = sub
            elif pruned is not None:
                pruned.append(f"{path}.{key}" if path else key)
            continue
        if sub is None and not child.nullable:
            if child.has_default:
                out[key] = _default_of(child)
            continue  # a null the schema does not allow, and no default: dropped
        out[key] = _normalize(child, sub, (f"{path}.{key}" if path else key) if pruned is not None else "", pruned)
    for key, child in node.properties.items():
        if child.has_default and key not in out:
            out[key] = _default_of(child)
    return out


def _default_of(node: Node) -> Any:
    """A fresh copy of the node's default, itself defaulted (as structural defaulting recurses into it)."""
    return _normalize(node, copy.deepcopy(node.default), "", None)


# --- validation -----------------------------------------------------------------------------------------------


def validate(node: Node, obj: Any) -> list[Cause]:
    """Every schema violation in `obj`, the root's metadata aside (the API server validates that itself)."""
    causes: list[Cause] = []
    if isinstance(obj, dict):
        rest = {k: v for k, v in obj.items() if k != "metadata"}
        _check(node, rest, "", causes)
    else:
        _check(node, obj, "", causes)
    return causes


_INT64 = range(-(2**63), 2**63)
_JSON_INTEGER = 2.0**53
"""kube-openapi takes a float as an integer only up to 2^53 (swag.IsFloat64AJSONInteger)."""


def _json_type(value: Any) -> str:
    """The value's type as the API server sees it: an integer beyond int64 decodes as a float64 there."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer" if value in _INT64 else "number"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_ok(types: tuple[str, ...], actual: str, value: Any) -> bool:
    if actual in types:
        return True
    if actual == "integer" and "number" in types:
        return True
    return (actual == "number" and "integer" in types and float(value).is_integer()
            and abs(float(value)) <= _JSON_INTEGER)


def _check(node: Node, value: Any, path: str, causes: list[Cause]) -> None:
    """kube-openapi's validator chain for one value: type, string, number, array, enum, object."""
    actual = _json_type(value)
    if value is None:
        if node.types and not node.nullable:
            causes.append(_type_error(path, node.types, "null"))
        if node.enum is not None and None not in node.enum:
            causes.append(_not_supported(path, value, node.enum))
        return
    if node.types and not _type_ok(node.types, actual, value):
        causes.append(_type_error(path, node.types, actual))
    if actual == "string":
        _check_string(node, value, path, causes)
    elif actual in ("integer", "number"):
        _check_number(node, value, path, causes)
    elif actual == "array":
        _check_array(node, value, path, causes)
    if node.enum is not None and not any(_json_equal(value, allowed) for allowed in node.enum):
        causes.append(_not_supported(path, value, node.enum))
    if actual == "object":
        _check_object(node, value, path, causes)


def _check_string(node: Node, value: str, path: str, causes: list[Cause]) -> None:
    """First failure only, as go-openapi's string validator returns on the first."""
    if node.max_length is not None and len(value) > node.max_length:
        causes.append(Cause("FieldValueTooLong", path, f"Too long: may not be longer than {node.max_length}"))
    elif node.min_length is not None and len(value) < node.min_length:
        causes.append(_invalid(path, value, f"{path} in body should be at least {node.min_length} chars long"))
    elif node.pattern is not None and not node.pattern.search(value):
        causes.append(_invalid(path, value, f"{path} in body should match '{node.pattern_text}'"))


def _check_number(node: Node, value: float, path: str, causes: list[Cause]) -> None:
    if node.multiple_of and (value / node.multiple_of) % 1 != 0:
        causes.append(_invalid(path, value, f"{path} in body should be a multiple of {_go_v(node.multiple_of)}"))
    if node.minimum is not None:
        low = node.minimum
        if value < low or (node.exclusive_minimum and value == low):
            word = "greater than" if node.exclusive_minimum else "greater than or equal to"
            causes.append(_invalid(path, value, f"{path} in body should be {word} {_bound(low, value)}"))
    if node.maximum is not None:
        high = node.maximum
        if value > high or (node.exclusive_maximum and value == high):
            word = "less than" if node.exclusive_maximum else "less than or equal to"
            causes.append(_invalid(path, value, f"{path} in body should be {word} {_bound(high, value)}"))


def _check_array(node: Node, value: list[Any], path: str, causes: list[Cause]) -> None:
    if node.min_items is not None and len(value) < node.min_items:
        causes.append(_invalid(path, len(value), f"{path} in body should have at least {node.min_items} items"))
    if node.max_items is not None and len(value) > node.max_items:
        causes.append(Cause("FieldValueTooMany", path,
                            f"Too many: {len(value)}: must have at most {node.max_items} items"))
    if node.items is not None:
        for index, item in enumerate(value):
            _check(node.items, item, f"{path}[{index}]", causes)


def _check_object(node: Node, value: dict[str, Any], path: str, causes: list[Cause]) -> None:
    count = len(value)
    if node.min_properties is not None and count < node.min_properties:
        causes.append(_invalid(path, count, f"{path} in body should have at least {node.min_properties} properties"))
        return
    if node.max_properties is not None and count > node.max_properties:
        causes.append(Cause("FieldValueTooMany", path,
                            f"Too many: {count}: must have at most {node.max_properties} items"))
        return
    prefix = f"{path}." if path else ""
    if node.additional is not None:
        for key in sorted(value):
            if key not in node.properties:
                _check(node.additional, value[key], prefix + key, causes)
    for key in sorted(node.properties):
        if key in value:
            _check(node.properties[key], value[key], prefix + key, causes)
    for key in node.required:
        if key not in value:
            causes.append(Cause("FieldValueRequired", prefix + key, "Required value"))


# --- wording, as Go prints it ---------------------------------------------------------------------------------


def _type_error(path: str, types: tuple[str, ...], actual: str) -> Cause:
    expected = ",".join(types)
    return Cause("FieldValueTypeInvalid", path,
                 f'Invalid value: "{actual}": {path} in body must be of type {expected}: "{actual}"')


def _not_supported(path: str, value: Any, allowed: tuple[Any, ...]) -> Cause:
    listed = ", ".join(go_quote(a if isinstance(a, str) else json.dumps(a)) for a in allowed)
    return Cause("FieldValueNotSupported", path, f"Unsupported value: {go_value(value)}: supported values: {listed}")


def _invalid(path: str, value: Any, detail: str) -> Cause:
    return Cause("FieldValueInvalid", path, f"Invalid value: {go_value(value)}: {detail}")


def go_quote(text: str) -> str:
    """Go's %q for a string (close enough: JSON escaping, non-ASCII kept)."""
    return json.dumps(text, ensure_ascii=False)


def go_value(value: Any) -> str:
    """A bad value the way field.Error prints it: strings quoted, numbers and booleans bare, null as null."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_v(value)
    if isinstance(value, str):
        return go_quote(value)
    return json.dumps(value, sort_keys=True)


def _bound(bound: float, value: float) -> str:
    """An integer value is compared with an integral bound as an integer (kube-openapi's native-type path)."""
    if isinstance(value, int) and float(bound).is_integer():
        return str(int(bound))
    return _go_v(float(bound))


def _go_v(number: float) -> str:
    """Go's %v for a float64: the shortest digits, exponent form below 1e-4 and from 1e6 on (strconv 'g', -1)."""
    if isinstance(number, int):
        number = float(number)
    if number != number or number in (float("inf"), float("-inf")):
        return {"nan": "NaN", "inf": "+Inf", "-inf": "-Inf"}[repr(number)]
    sign, digits, exponent = decimal.Decimal(repr(number)).normalize().as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits))
    point = len(text) + exponent  # position of the decimal point within `text`
    exp = point - 1
    if exp < -4 or exp >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        out = f"{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    elif point <= 0:
        out = "0." + "0" * -point + text
    elif point >= len(text):
        out = text + "0" * (point - len(text))
    else:
        out = text[:point] + "." + text[point:]
    return ("-" if sign else "") + out


def _json_equal(a: Any, b: Any) -> bool:
    """JSON equality: true is not 1, 1 is 1.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return bool(a == b)
