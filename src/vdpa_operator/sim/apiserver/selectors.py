"""Label and field selectors from a request's query string, compiled to predicates over stored objects.

Labels: `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`. Fields: `metadata.name` and
`metadata.namespace` with `=`, `==`, `!=` (what kube-apiserver supports for every kind), plus the field labels a
kind declares (a Pod's `spec.nodeName`, ...); any other field is the real server's 400 `field label not supported`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from vdpa_operator.sim.apiserver.errors import bad_request

Predicate = Callable[[dict[str, Any]], bool]

_SET = re.compile(r"^\s*([^\s!=(),]+)\s+(in|notin)\s+\(([^()]*)\)\s*$")
_EQ = re.compile(r"^\s*([^\s!=(),]+)\s*(==|=|!=)\s*([^\s!=(),]*)\s*$")
_EXISTS = re.compile(r"^\s*(!?)\s*([^\s!=(),]+)\s*$")
_FIELDS = {"metadata.name": ("metadata", "name"), "metadata.namespace": ("metadata", "namespace")}


def _split(text: str) -> list[str]:
    """Requirements are comma-separated, but `in (a,b)` has commas of its own."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p for p in parts if p.strip()]


def _labels(obj: dict[str, Any]) -> dict[str, str]:
    labels = obj.get("metadata", {}).get("labels") or {}
    return labels if isinstance(labels, dict) else {}


def _label_requirement(text: str) -> Predicate:
    if m := _SET.match(text):
        key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",") if v.strip()}
        if op == "in":
            return lambda obj: _labels(obj).get(key) in values
        return lambda obj: _labels(obj).get(key) not in values
    if m := _EQ.match(text):
        key, op, value = m.groups()
        if op == "!=":
            return lambda obj: _labels(obj).get(key) != value
        return lambda obj: _labels(obj).get(key) == value
    if m := _EXISTS.match(text):
        negate, key = m.group(1) == "!", m.group(2)
        return lambda obj: (key in _labels(obj)) != negate
    raise bad_request(f"unable to parse requirement: {text.strip()!r}")


def label_selector(text: str | None) -> Predicate:
    """All requirements must hold; an empty selector matches everything."""
    requirements = [_label_requirement(part) for part in _split(text or "")]
    return lambda obj: all(req(obj) for req in requirements)


def _field_text(value: Any) -> str:
    """A field's value as a field selector compares it: absent is "", booleans are true/false."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _field_requirement(text: str, supported: Iterable[str]) -> Predicate:
    m = _EQ.match(text)
    if not m:
        raise bad_request(f"invalid field selector: {text.strip()!r}")
    field, op, value = m.groups()
    if field not in _FIELDS and field not in supported:
        raise bad_request(f'field label not supported: "{field}"')
    path = _FIELDS.get(field) or tuple(field.split("."))

    def current(obj: dict[str, Any]) -> str:
        node: Any = obj
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        return _field_text(node)

    if op == "!=":
        return lambda obj: current(obj) != value
    return lambda obj: current(obj) == value


def field_selector(text: str | None, supported: Iterable[str] = ()) -> Predicate:
    """`supported`: the field labels the kind has beyond metadata.name and metadata.namespace."""
    requirements = [_field_requirement(part, tuple(supported)) for part in _split(text or "")]
    return lambda obj: all(req(obj) for req in requirements)


def both(first: Predicate, second: Predicate) -> Predicate:
    return lambda obj: first(obj) and second(obj)


def selected_name(text: str | None) -> str:
    """The one object name a field selector requires (`metadata.name=x`), or "" when it allows several."""
    for part in _split(text or ""):
        m = _EQ.match(part)
        if m and m.group(1) == "metadata.name" and m.group(2) in ("=", "==") and m.group(3):
            return m.group(3)
    return ""
