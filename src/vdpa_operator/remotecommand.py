"""Kubernetes' remote command channel protocol over WebSocket (`v5.channel.k8s.io`, `v4.channel.k8s.io`): the
framing both ends of `exec` share, as k8s.io/apimachinery/pkg/util/remotecommand and client-go's websocket
executor define it.

Every WebSocket message is binary: one byte naming the stream, then that stream's bytes. Streams: 0 stdin,
1 stdout, 2 stderr, 3 error (one JSON `metav1.Status` saying how the command ended), 4 resize (JSON
`{"Width": w, "Height": h}` per terminal size change). v5 adds 255: the two bytes `[255, n]` close stream n (the
client's stdin reached EOF), which v4 cannot say. The server ends the session by closing the WebSocket normally
after the status.

Pure: no I/O, so the kubelet's streaming server, the API server's proxy and the client all read the same rules.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vdpa_operator.errors import VdpaOperatorError

STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
CLOSE = 255
"""v5 only: `[CLOSE, stream]` half-closes `stream`."""

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
PROTOCOLS = (V5, V4)
"""What both ends here speak, newest first (kubectl ≥ 1.30 offers v5 only; older servers answer v4)."""

NON_ZERO_EXIT_CODE = "NonZeroExitCode"
EXIT_CODE_CAUSE = "ExitCode"


class RemoteCommandError(VdpaOperatorError):
    """The stream broke the protocol, or the command could not be run (the message says which and why)."""


def frame(stream: int, data: bytes) -> bytes:
    """The message carrying `data` on `stream`."""
    return bytes((stream,)) + data


def close_frame(stream: int) -> bytes:
    """v5's half-close of `stream`."""
    return bytes((CLOSE, stream))


def parse(message: bytes) -> tuple[int, bytes]:
    """(stream, data) of one message; an empty message is a protocol error."""
    if not message:
        raise RemoteCommandError("protocol error: an empty WebSocket message carries no stream id")
    return message[0], message[1:]


def choose(offered: Iterable[str], supported: Sequence[str] = PROTOCOLS) -> str | None:
    """The first of the client's `offered` subprotocols this end supports (the client's order wins, as gorilla's
    and aiohttp's handshakes do), None when there is none."""
    return next((p for p in offered if p in supported), None)


def offered_protocols(header: str | None) -> list[str]:
    """The subprotocols a `Sec-WebSocket-Protocol` header lists."""
    return [p.strip() for p in (header or "").split(",") if p.strip()]


# --- the error stream: how the command ended ---------------------------------------------------------------------


def success() -> dict[str, Any]:
    return {"metadata": {}, "status": "Success"}


def exited(code: int) -> dict[str, Any]:
    """The status of a command that ended with `code`: Success for 0, else Failure NonZeroExitCode carrying the
    code as an `ExitCode` cause (what kubectl turns into its own exit code)."""
    if code == 0:
        return success()
    return {"metadata": {}, "status": "Failure", "reason": NON_ZERO_EXIT_CODE,
            "message": f"command terminated with non-zero exit code: exit status {code}",
            "details": {"causes": [{"reason": EXIT_CODE_CAUSE, "message": str(code)}]}}


def failure(message: str, *, reason: str = "InternalError", code: int = 500) -> dict[str, Any]:
    """The status of a command that could not be run (not found, no namespace, backend unreachable)."""
    return {"metadata": {}, "status": "Failure", "reason": reason, "code": code, "message": message}


def status_message(status: Mapping[str, Any]) -> bytes:
    """The error stream's message carrying `status`."""
    return frame(ERROR, json.dumps(status, separators=(",", ":")).encode())


def exit_code(raw: bytes) -> int:
    """The exit code the error stream's `raw` status says, as client-go's `errorDecoderV4` reads it: 0 for
    Success, the `ExitCode` cause for NonZeroExitCode; `RemoteCommandError` with the status message otherwise."""
    try:
        status = json.loads(raw)
    except ValueError as err:
        raise RemoteCommandError(f"error stream protocol error: {err} in {raw[:200]!r}") from None
    if not isinstance(status, dict):
        raise RemoteCommandError(f"error stream protocol error: not a Status object: {raw[:200]!r}")
    if status.get("status") == "Success":
        return 0
    if status.get("status") != "Failure":
        raise RemoteCommandError("error stream protocol error: unknown error")
    if status.get("reason") != NON_ZERO_EXIT_CODE:
        raise RemoteCommandError(str(status.get("message") or status.get("reason") or "the command failed"))
    causes = (status.get("details") or {}).get("causes") or []
    for cause in causes:
        if isinstance(cause, dict) and cause.get("reason") == EXIT_CODE_CAUSE:
            text = str(cause.get("message", ""))
            if not text.isdigit() or int(text) > 255:
                raise RemoteCommandError(f"error stream protocol error: invalid exit code value {text!r}")
            return int(text)
    raise RemoteCommandError(f"error stream protocol error: no {EXIT_CODE_CAUSE} cause given")


# --- the resize stream --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TerminalSize:
    width: int
    height: int


class ResizeReader:
    """Terminal sizes out of the resize stream's bytes: client-go writes one JSON object per line, and a
    message may in principle carry part of one, so bytes are kept until a line is whole."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, data: bytes) -> list[TerminalSize]:
        self._pending += data
        *lines, self._pending = self._pending.split(b"\n")
        if self._pending.strip().endswith(b"}"):  # a writer that sends no newline
            lines.append(self._pending)
            self._pending = b""
        return [size for size in map(_size, lines) if size is not None]


def _size(line: bytes) -> TerminalSize | None:
    try:
        raw = json.loads(line)
    except ValueError:
        return None
    if not isinstance(raw, dict):
        return None
    width, height = raw.get("Width"), raw.get("Height")
    if not isinstance(width, int) or not isinstance(height, int) or not 0 <= width < 65536 or not 0 <= height < 65536:
        return None
    return TerminalSize(width, height)
