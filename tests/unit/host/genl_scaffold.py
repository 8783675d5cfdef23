"""Scaffolding shared by the generic netlink adapter tests (`test_linux_genl_*.py`): an independent nlattr
encoder, a uapi enum reader, a scripted stand-in for a family's socket, and whether this host registers a family."""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from vdpa_operator.host.linux.genl import FamilyNotFound, decode, encode


def nla(kind: int, payload: bytes) -> bytes:
    return struct.pack("=HH", 4 + len(payload), kind) + payload + b"\0" * (-len(payload) % 4)


def strz(kind: int, text: str) -> bytes:
    return nla(kind, text.encode() + b"\0")


def u8(kind: int, value: int) -> bytes:
    return nla(kind, struct.pack("=B", value))


def u16(kind: int, value: int) -> bytes:
    return nla(kind, struct.pack("=H", value))


def u32(kind: int, value: int) -> bytes:
    return nla(kind, struct.pack("=I", value))


def uapi_enum(header: str, name: str) -> dict[str, int]:
    """Values of `enum name` in a uapi header (implicit numbering, `= OTHER` aliases, `#define`s skipped)."""
    body_match = re.search(r"enum " + name + r" \{(.*?)\n\};", header, re.S)
    assert body_match, f"enum {name} not found"
    body = re.sub(r"/\*.*?\*/", "", body_match.group(1), flags=re.S)
    body = re.sub(r"#define[^\n]*", "", body.replace("\\\n", " "))
    values: dict[str, int] = {}
    value = 0
    for item in (part.strip() for part in body.split(",")):
        if not item:
            continue
        key, _, expr = (part.strip() for part in item.partition("="))
        if expr:
            value = eval(re.sub(r"[A-Za-z_]\w*", lambda m: str(values[m.group(0)]), expr), {})
        values[key] = value
        value += 1
    return values


class ScriptedSocket:
    """Stands in for a family's socket class (`VdpaSocket`, `DevlinkSocket`): records requests, answers from a
    script of replies or errors. `scripted_socket` sets the message class and family id."""

    script: ClassVar[list[Any]] = []
    requests: ClassVar[list[tuple[bytes, bool]]] = []
    message_class: ClassVar[type[Any]]
    family_id: ClassVar[int]

    def __enter__(self) -> ScriptedSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def request(self, msg: Any, *, dump: bool = False) -> list[Any]:
        self.requests.append((encode(msg, family_id=self.family_id), dump))
        answer = self.script.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return list(decode(self.message_class, answer)) if answer else []


def scripted_socket(monkeypatch: pytest.MonkeyPatch, proto: Any, socket_name: str,
                    family_id: int) -> Iterator[type[ScriptedSocket]]:
    """The body of a `scripted` fixture: replace `proto.<socket_name>` with `ScriptedSocket` speaking that
    socket's message class, and check afterwards that every scripted answer was used."""
    ScriptedSocket.script = []
    ScriptedSocket.requests = []
    ScriptedSocket.message_class = getattr(proto, socket_name).message_class
    ScriptedSocket.family_id = family_id
    monkeypatch.setattr(proto, socket_name, ScriptedSocket)
    yield ScriptedSocket
    assert ScriptedSocket.script == [], "not every scripted answer was used"


def family_registered(socket_class: Any) -> bool:
    """Whether this host's kernel registers the family `socket_class` binds to."""
    try:
        with socket_class():
            return True
    except FamilyNotFound:
        return False
