"""`state.json`'s text, re-encoding only the objects that changed since the last commit.

The text is exactly `json.dumps(to_json(state), sort_keys=True, separators=(",", ":"))`, but the state is
encoded on every commit and most commits change one object of hundreds: each dataclass kept in the state's
lists and dicts (PCI functions, netdevs, vdpa devices, …) is encoded alone, by the C encoder, and its text is
kept with a copy of its fields; the next encode reuses that text while the object's fields still equal the
copy (one C-level dict comparison, nested lists and dicts copied so that changing them in place counts).
"""

from __future__ import annotations

import dataclasses
import json
from json.encoder import encode_basestring_ascii as _key
from typing import Any

from vdpa_operator.host.sim.state import State

_dumps = json.JSONEncoder(default=vars, sort_keys=True, separators=(",", ":")).encode
"""A dataclass is encoded as its `__dict__` (its fields), as `to_json` gives it."""


def _fields(obj: Any) -> dict[str, Any]:
    """A copy of the object's fields deep enough to notice a change in place (a list appended to)."""
    return {name: value.copy() if isinstance(value, (list, dict)) else value for name, value in vars(obj).items()}


class StateEncoder:
    """Encodes one store's states; keeps the text of each object it encoded last time."""

    def __init__(self) -> None:
        self._kept: dict[int, tuple[Any, dict[str, Any], str]] = {}

    def encode(self, state: State) -> str:
        kept, self._kept = self._kept, {}
        parts = []
        for name in sorted(vars(state)):
            value = getattr(state, name)
            if isinstance(value, list) and value and dataclasses.is_dataclass(value[0]):
                text = "[" + ",".join(self._object(item, kept) for item in value) + "]"
            elif isinstance(value, dict) and value and dataclasses.is_dataclass(next(iter(value.values()))):
                text = "{" + ",".join(f"{_key(key)}:{self._object(value[key], kept)}" for key in sorted(value)) + "}"
            elif dataclasses.is_dataclass(value):
                text = self._object(value, kept)
            else:
                text = _dumps(value)
            parts.append(f"{_key(name)}:{text}")
        return "{" + ",".join(parts) + "}"

    def _object(self, obj: Any, kept: dict[int, tuple[Any, dict[str, Any], str]]) -> str:
        entry = kept.get(id(obj))
        if entry is None or entry[0] is not obj or entry[1] != vars(obj):
            entry = (obj, _fields(obj), _dumps(obj))
        self._kept[id(obj)] = entry
        return entry[2]
