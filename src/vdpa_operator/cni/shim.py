#!/usr/bin/env -S python3 -I -S
"""`vdpa-cni`: the CNI executable. It forwards each request to the node's CNI server and prints the answer.

The runtime (Multus, containerd, CRI-O, cnitool) runs this once per ADD/DEL/CHECK/STATUS/GC, so it does
nothing itself: it reads the CNI environment, stdin and the device-info file the config points at (it runs
where the runtime put that file), sends them over the server's unix socket as one HTTP request (config key
`serverSocket`, default /var/run/vdpa-cni/server.sock) and prints the server's stdout with its exit code.
VERSION is answered here.

Written to start fast and to work copied alone into a host's CNI bin directory (the node DaemonSet's init
container does that; the shebang runs the host's python3 without site packages): it imports only `os`, `sys`
and the C modules behind `socket` and `json` (`_socket`, `_json`): the pure-Python `json`, `socket` and
`http.client` would cost 40-50 ms of a start that is under 15 ms without them. When no server listens at the
default socket and none was configured, the request is served in this process against the Linux host if the
`vdpa_operator` package is importable; a configured server that does not answer is CNI error 11, try again.
"""

from __future__ import annotations

import _json
import _socket
import os
import sys

DEFAULT_SOCKET = "/var/run/vdpa-cni/server.sock"
SUPPORTED_VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
TRY_AGAIN_LATER = 11
IO_FAILURE = 5
CONNECT_TIMEOUT = 5.0
REQUEST_TIMEOUT = 600.0
"""An ADD may wait for OVN (bounded by the server's own setting); the runtime's own timeout is the real limit."""


# --- JSON with the C accelerator alone ---------------------------------------------------------------------------


class _Context:
    """What `_json.make_scanner` reads from a `json.JSONDecoder`: the defaults of `json.loads`."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict[str, str] = {}  # noqa: RUF012 - the scanner's own cache, as JSONDecoder's

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}[name]


_scan = _json.make_scanner(_Context())  # type: ignore[arg-type]  # it reads the attributes, as from JSONDecoder


def loads(text: str) -> object:
    """`json.loads` for a document: one value, surrounded by whitespace only; ValueError otherwise. Input the
    fast scanner refuses is parsed again by the `json` module (its import is paid only then): `_json` alone
    reports some errors as SystemError until `json.decoder` has been imported."""
    start = len(text) - len(text.lstrip())
    try:
        value: object
        end: int
        value, end = _scan(text, start)
    except (ValueError, StopIteration, SystemError):
        import json

        parsed: object = json.loads(text)
        return parsed
    if text[end:].strip():
        raise ValueError("extra data after the JSON value")
    return value


def dumps(value: object) -> str:
    """`json.dumps` for what this file writes: None, bools, ints, strings, dicts and lists of those."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        text: str = _json.encode_basestring_ascii(value)
        return text
    if isinstance(value, dict):
        return "{" + ", ".join(f"{dumps(str(k))}: {dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(dumps(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


# --- the request -------------------------------------------------------------------------------------------------


def _error(version: str, code: int, msg: str, details: str = "") -> tuple[int, str]:
    body: dict[str, object] = {"cniVersion": version, "code": code, "msg": msg}
    if details:
        body["details"] = details
    return 1, dumps(body)


def _string(obj: object, key: str) -> str:
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, str) else ""


def _object(obj: object, key: str) -> dict[str, object]:
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, dict) else {}


def _forward(path: str, request: dict[str, object]) -> tuple[int, str]:
    """(exit code, stdout) from the server; OSError when nobody answers at `path`, ValueError when what
    answers does not speak this protocol."""
    body = dumps(request).encode()
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(CONNECT_TIMEOUT)
        sock.connect(path)
        sock.settimeout(REQUEST_TIMEOUT)
        sock.sendall(b"POST /cni HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                     b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    finally:
        sock.close()
    head, _, payload = b"".join(chunks).partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].split()
    if len(status) < 2 or status[1] != b"200":
        raise ValueError(f"the server answered {head[:80]!r}")
    answer = loads(payload.decode())
    if not isinstance(answer, dict) or not isinstance(answer.get("exitCode"), int):
        raise ValueError(f"the server answered {payload[:80]!r}")
    return answer["exitCode"], str(answer.get("stdout", ""))


def run(env: dict[str, str], stdin: bytes) -> tuple[int, str]:
    try:
        config = loads(stdin.decode() or "{}")
    except (ValueError, UnicodeDecodeError, RecursionError):
        config = {}  # the server says what is wrong with it
    version = _string(config, "cniVersion") or "1.1.0"
    if env.get("CNI_COMMAND") == "VERSION":
        return 0, dumps({"cniVersion": version, "supportedVersions": SUPPORTED_VERSIONS})
    device_info = None
    info_path = _string(_object(config, "runtimeConfig"), "CNIDeviceInfoFile")
    if info_path:
        try:
            with open(info_path, encoding="utf-8") as f:
                device_info = f.read()
        except FileNotFoundError:
            device_info = None
        except OSError as exc:
            return _error(version, IO_FAILURE, "cannot read the device-info file", f"{info_path}: {exc.strerror}")
    configured = _string(config, "serverSocket")
    path = configured or DEFAULT_SOCKET
    request: dict[str, object] = {"env": {k: v for k, v in env.items() if k.startswith("CNI_")},
               "config": stdin.decode("utf-8", "replace"), "deviceInfo": device_info}
    try:
        return _forward(path, request)
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        if configured:
            return _error(version, TRY_AGAIN_LATER, "the vdpa-cni server does not answer",
                          f"{path}: {exc.strerror}; is `vdpactl cni-server` running on this node?")
        return _in_process(request, version, path)
    except (OSError, ValueError) as exc:
        return _error(version, TRY_AGAIN_LATER, "the vdpa-cni server failed to answer", f"{path}: {exc}")


def _in_process(request: dict[str, object], version: str, path: str) -> tuple[int, str]:
    """No server at the default socket: serve the request here, against this machine's kernel."""
    try:
        from vdpa_operator.cni.local import serve_locally
    except ImportError:
        return _error(version, TRY_AGAIN_LATER, "the vdpa-cni server does not answer",
                      f"nothing listens at {path}, and this copy of vdpa-cni cannot do the work itself; "
                      "start `vdpactl cni-server` on this node")
    code, out = serve_locally(request)
    return int(code), str(out)


def main() -> None:
    try:
        stdin = sys.stdin.buffer.read()
    except OSError as exc:
        code, out = _error("1.1.0", IO_FAILURE, f"error reading from stdin: {exc}")
    else:
        code, out = run(dict(os.environ), stdin)
    sys.stdout.write(out + ("\n" if out and not out.endswith("\n") else ""))
    sys.stdout.flush()
    sys.exit(code)


if __name__ == "__main__":
    main()
