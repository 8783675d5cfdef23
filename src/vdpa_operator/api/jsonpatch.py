"""JSON patch (RFC 6902) and JSON merge patch (RFC 7386) on plain JSON values: pure functions shared by the
admission webhook (its mutations are JSON patches) and the embedded API server (PATCH requests)."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from vdpa_operator.errors import VdpaOperatorError


class JsonPatchError(VdpaOperatorError, ValueError):
    """A patch operation that cannot be applied to the document."""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, null deletes, anything else (lists too) replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def json_patch(target: Any, operations: Sequence[Mapping[str, Any]], *, max_copied: int | None = None) -> Any:
    """A deep copy of `target` with the operations (add, remove, replace, move, copy, test) applied in order.
    `max_copied`: how many JSON values the `copy` operations may copy together (each copy of a copy doubles the
    document, so a short patch could otherwise ask for gigabytes)."""
    doc = copy.deepcopy(target)
    copied = 0
    for index, op in enumerate(operations):
        if not isinstance(op, Mapping) or not isinstance(op.get("op"), str) or not isinstance(op.get("path"), str):
            raise JsonPatchError(f"json patch operation {index}: needs string 'op' and 'path'")
        if max_copied is not None and op["op"] == "copy" and isinstance(op.get("from"), str):
            copied += _count_values(_get(doc, op["from"]), max_copied - copied + 1)
            if copied > max_copied:
                raise JsonPatchError(f"json patch operation {index}: the copy operations copy more than "
                                     f"{max_copied} values")
        doc = _apply_one(doc, op)
    return doc


def _count_values(value: Any, stop: int) -> int:
    """The JSON values in `value` (itself included), counted up to `stop`."""
    count, pending = 0, [value]
    while pending and count < stop:
        item = pending.pop()
        count += 1
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return count


def apply_json_patch(raw: Mapping[str, Any], ops: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """`json_patch` for a whole Kubernetes object: the result must still be an object."""
    doc = json_patch(dict(raw), ops)
    if not isinstance(doc, dict):
        raise JsonPatchError("the patched document is not an object")
    return doc


def pointer(*keys: str) -> str:
    """The JSON pointer (RFC 6901) of a path of keys: `pointer("metadata", "annotations", "a/b")` is
    `/metadata/annotations/a~1b`."""
    return "".join("/" + key.replace("~", "~0").replace("/", "~1") for key in keys)


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise JsonPatchError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _index(container: list[Any], token: str, *, for_add: bool) -> int:
    if for_add and token == "-":
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
        raise JsonPatchError(f"invalid array index {token!r}")
    index = int(token)
    if index > len(container) or (not for_add and index == len(container)):
        raise JsonPatchError(f"array index {index} out of range")
    return index


def _parent(doc: Any, tokens: list[str]) -> Any:
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, for_add=False)]
        else:
            raise JsonPatchError(f"missing path element {token!r}")
    return node


def _get(doc: Any, path: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return doc
    parent, last = _parent(doc, tokens), tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise JsonPatchError(f"missing value at {path}")
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, for_add=False)]
    raise JsonPatchError(f"missing value at {path}")


def _add(doc: Any, path: str, value: Any) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return value
    parent, last = _parent(doc, tokens), tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, for_add=True), value)
    else:
        raise JsonPatchError(f"cannot add at {path}")
    return doc


def _remove(doc: Any, path: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        raise JsonPatchError("cannot remove the whole document")
    parent, last = _parent(doc, tokens), tokens[-1]
    if isinstance(parent, dict) and last in parent:
        del parent[last]
    elif isinstance(parent, list):
        del parent[_index(parent, last, for_add=False)]
    else:
        raise JsonPatchError(f"missing value at {path}")
    return doc


def _apply_one(doc: Any, op: Mapping[str, Any]) -> Any:
    kind, path = op["op"], op["path"]
    if kind in ("add", "replace", "test") and "value" not in op:
        raise JsonPatchError(f"json patch {kind} at {path}: missing 'value'")
    if kind == "add":
        return _add(doc, path, copy.deepcopy(op["value"]))
    if kind == "remove":
        return _remove(doc, path)
    if kind == "replace":
        _get(doc, path)  # must exist
        return _add(_remove(doc, path), path, copy.deepcopy(op["value"])) if _pointer(path) else op["value"]
    if kind in ("move", "copy"):
        source = op.get("from")
        if not isinstance(source, str):
            raise JsonPatchError(f"json patch {kind} to {path}: missing 'from'")
        value = copy.deepcopy(_get(doc, source))
        if kind == "move":
            doc = _remove(doc, source)
        return _add(doc, path, value)
    if kind == "test":
        if _get(doc, path) != op["value"]:
            raise JsonPatchError(f"testing value at {path} failed")
        return doc
    raise JsonPatchError(f"json patch: unknown operation {kind!r}")
