"""Go's own formatting, where upstream's output is compared literally: `json.Marshal`, `strconv.Atoi`, `%q`.

`marshal` is Go's `encoding/json.Marshal`, byte for byte, for the values the operator writes as JSON text.

The device-plugin ConfigMap holds JSON *strings* that the device plugin and upstream's tests compare
literally, so key order, spacing and escaping must be Go's: struct fields in declaration order (the caller
builds dicts in that order), map keys sorted, no spaces, `<`, `>`, `&`, U+2028 and U+2029 escaped, everything
else non-ASCII written as UTF-8, and control characters as Go 1.22+ writes them (`\\n`, `\\b`, `\\u001f`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

GoValue: TypeAlias = str | bool | int | Sequence["GoValue"] | Mapping[str, "GoValue"] | None
"""What this encoder is for. Floats are left out on purpose: Go formats them differently from Python."""

_GO_ONLY_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_GO_ONLY = re.compile("[<>&\u2028\u2029]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def marshal(value: GoValue, *, sort_keys: bool = False) -> str:
    """`json.Marshal(value)`. Dict keys keep their order (a Go struct) unless `sort_keys` (a Go map).

    Python's encoder already escapes exactly what Go escapes in strings except the characters below; those
    can only occur inside string literals, so replacing them in the whole text is safe."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=sort_keys, allow_nan=False)
    if _LONE_SURROGATE.search(text):
        # Go strings are UTF-8: a lone surrogate can only come from a "\ud800" escape, which Go decodes to U+FFFD.
        text = _LONE_SURROGATE.sub("\ufffd", text)
    if _GO_ONLY.search(text):
        text = _GO_ONLY.sub(lambda m: _GO_ONLY_ESCAPES[m.group()], text)
    return text


def omit_empty(fields: Mapping[str, Any], *, always: Sequence[str] = ()) -> dict[str, Any]:
    """Go's `omitempty`: zero values ("", 0, false, empty list, nil) are left out, except the keys in `always`
    (fields without the tag), which Go writes whatever their value."""
    return {key: value for key, value in fields.items() if key in always or value}


_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1
_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def quote(text: str) -> str:
    """Go's `%q` of a string (`strconv.Quote`), so messages quoting user input read exactly as upstream's."""
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif char.isprintable():
            out.append(char)
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'


def atoi(text: str) -> int:
    """`strconv.Atoi` on a 64-bit platform: sign and ASCII digits only; ValueError carries Go's own text."""
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise ValueError(f"strconv.Atoi: parsing {quote(text)}: invalid syntax")
    value = int(text)
    if not _INT_MIN <= value <= _INT_MAX:
        raise ValueError(f"strconv.Atoi: parsing {quote(text)}: value out of range")
    return value


def bool_text(value: bool) -> str:
    """Go's `%t`."""
    return "true" if value else "false"
