"""Limits on what parsing text we did not write may cost, and JSON read within them.

Every YAML or JSON document a user, a client or a runtime hands us (manifests, `--config-file`s, the CNI's
stdin, the embedded API server's request bodies) is parsed within one set of `Limits`: its size, how deep it
nests, how many values it holds and, for YAML, how many aliases it uses and how many values they copy in (a
1 KB "billion laughs" file otherwise expands to gigabytes). Over a limit, parsing stops at once with a
`LimitExceeded` that names the source, the line and what to do. YAML reads the same limits in `yamlio`;
JSON is read here (no PyYAML import, for the device plugin and the CNI).

Python's JSON decoder has no depth limit of its own (it stops at the interpreter's recursion limit, wherever
the call stack happens to be), so the text's nesting is measured before it is decoded.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass
from typing import Any

from vdpa_operator.errors import VdpaOperatorError

MiB = 1 << 20


@dataclass(frozen=True)
class Limits:
    """What one text may cost to parse. The defaults hold any Kubernetes object (kube-apiserver takes request
    bodies up to 3 MiB and stores objects up to 1.5 MiB; objects rarely nest 30 levels deep)."""

    max_bytes: int = 8 * MiB
    """Size of the text (characters of a str, bytes of bytes)."""
    max_depth: int = 100
    """Nested objects/lists. Our own walkers recurse 2-4 frames a level under Python's 1000-frame limit."""
    max_nodes: int = 250_000
    """YAML values of a stream (scalars, lists, maps, aliases expanded); bounds the parser's time and memory
    (PyYAML keeps ~0.7 KB per value)."""
    max_aliases: int = 100
    """YAML aliases (`*name`) in one document."""
    max_alias_nodes: int = 100_000
    """YAML values copied in by aliases, all aliases of a document together: the expansion budget."""


DEFAULT_LIMITS = Limits()


class ParseError(VdpaOperatorError, ValueError):
    """Text that cannot be read: bad syntax, a repeated key, a wrong shape. Names its source and line."""

    def __init__(self, source: str, line: int | None, message: str) -> None:
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {message}")
        self.source = source
        self.line = line
        self.message = message


class LimitExceeded(ParseError):
    """Text over one of the `Limits`: says which, where it was crossed, and what to do."""


def check_size(size: int, source: str, limits: Limits = DEFAULT_LIMITS) -> None:
    if size > limits.max_bytes:
        raise LimitExceeded(source, None, f"{size} bytes is more than the limit of {limits.max_bytes} bytes; "
                                          "split the input into smaller documents")


def line_at(text: str, offset: int) -> int:
    """The 1-based line of a character offset."""
    return text.count("\n", 0, offset) + 1


def too_deep(source: str, line: int | None, limits: Limits) -> LimitExceeded:
    return LimitExceeded(source, line, f"nested more than {limits.max_depth} levels deep; Kubernetes objects "
                                       "nest far less: flatten the data or remove the excess brackets")


def value_depth(value: Any, stop: int) -> int:
    """How deep a decoded value nests (a scalar is 0), measured without recursion up to `stop` + 1."""
    deepest, pending = 0, [(value, 0)]
    while pending:
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth + 1)
        if deepest > stop:
            break
        pending.extend((child, depth + 1) for child in children)
    return deepest


# --- JSON ----------------------------------------------------------------------------------------------------------

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r'[^\[\]{}]+')
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')
_DEPTH_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def json_depth(text: str) -> int:
    """How deep JSON text nests (brackets outside strings), measured by the regex engine and `accumulate`
    rather than a Python loop over characters: about 25 ms per MiB."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(itertools.accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0)


def _first_too_deep(text: str, limit: int) -> int:
    """The offset where JSON text first nests deeper than `limit` (the slow walk, only once it does)."""
    depth = 0
    for match in _TOKEN.finditer(text):
        depth += _DEPTH_STEP.get(match.group(), 0)
        if depth > limit:
            return match.start()
    return len(text)


def loads_json(text: str | bytes, source: str, limits: Limits = DEFAULT_LIMITS) -> Any:
    """One JSON value, within `limits`; `ParseError` (a `LimitExceeded` over a limit) naming `source` and the
    line. Bytes must be UTF-8."""
    check_size(len(text), source, limits)
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ParseError(source, None, f"not valid JSON: not UTF-8 text (byte {err.start})") from None
    if text.count("[") + text.count("{") > limits.max_depth and json_depth(text) > limits.max_depth:
        raise too_deep(source, line_at(text, _first_too_deep(text, limits.max_depth)), limits)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        error = ParseError(source, None, f"not valid JSON: {err.msg} at line {err.lineno} column {err.colno}")
        error.line = err.lineno
        raise error from None
    except (ValueError, RecursionError) as err:  # e.g. an integer of more than 4300 digits
        raise ParseError(source, None, f"not valid JSON: {err}") from None
