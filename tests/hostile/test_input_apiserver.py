"""Hostile request bodies to the embedded API server: each is refused with the `Status` kube-apiserver sends
(code and reason), promptly, and the server goes on serving. Before: a 10 MB ConfigMap was stored, 20,000 `[`
were a 500, and a billion-laughs apply patch stalled the server for 17-35 s before a 500."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest

from vdpa_operator.bounded import DEFAULT_LIMITS
from vdpa_operator.sim.apiserver import ServerHandle, serve_in_thread

CONFIGMAPS = "/api/v1/namespaces/default/configmaps"
LIMIT = 3 * 1024 * 1024
DEPTH = DEFAULT_LIMITS.max_depth
JSON = {"Content-Type": "application/json"}
APPLY = {"Content-Type": "application/apply-patch+yaml"}
MERGE = {"Content-Type": "application/merge-patch+json"}
JSON_PATCH = {"Content-Type": "application/json-patch+json"}


def client(api: ServerHandle) -> httpx.Client:
    """A client with the kubeconfig's credentials; the timeout only keeps a stalled server from hanging the test."""
    return httpx.Client(base_url=api.url, headers=api.headers, verify=api.verify, timeout=10)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    handle = serve_in_thread(tmp_path_factory.mktemp("api") / "kubeconfig")
    with client(handle) as c:
        c.post(CONFIGMAPS, json={"metadata": {"name": "target"}, "data": {"a": "1"}}).raise_for_status()
    yield handle
    handle.stop()


def billion_laughs_apply() -> str:
    levels = ['  lol0: &lol0 "lol"'] + [f"  lol{i}: &lol{i} [{', '.join([f'*lol{i - 1}'] * 9)}]" for i in range(1, 10)]
    return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: target\nbinaryData:\n" + "\n".join(levels) + "\n"


def deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def deepening_patch(levels: int) -> list[dict[str, Any]]:
    """JSON patch operations, each adding an object inside the last: nests without any deep value in the body."""
    return [{"op": "add", "path": "/metadata/annotations" + "/x" * i, "value": {}} for i in range(levels)]


def copy_bomb(copies: int) -> list[dict[str, Any]]:
    """Each copy of the map into itself doubles it."""
    return [{"op": "add", "path": "/data", "value": {"k": "v" * 16}}] + [
        {"op": "copy", "from": "/data", "path": f"/data/c{i}"} for i in range(copies)]


def chunked(data: bytes) -> Iterator[bytes]:
    """A body without Content-Length: the server finds its size by reading."""
    for start in range(0, len(data), 1 << 20):
        yield data[start:start + (1 << 20)]


BIG = json.dumps({"metadata": {"name": "big"}, "data": {"a": "x" * (10 << 20)}}).encode()
CASES = [
    # (id, method, path, headers, body, code, reason, message part)
    ("10MB-create", "POST", CONFIGMAPS, JSON, BIG, 413, "RequestEntityTooLarge",
     f"Request entity too large: limit is {LIMIT}"),
    ("10MB-create-chunked", "POST", CONFIGMAPS, JSON, chunked(BIG), 413, "RequestEntityTooLarge",
     f"Request entity too large: limit is {LIMIT}"),
    ("4MB-update", "PUT", f"{CONFIGMAPS}/target", JSON,
     json.dumps({"metadata": {"name": "target"}, "data": {"a": "x" * (4 << 20)}}), 413, "RequestEntityTooLarge",
     f"limit is {LIMIT}"),
    ("4MB-apply", "PATCH", f"{CONFIGMAPS}/target?fieldManager=t", APPLY,
     "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: target}\ndata: {a: " + "x" * (4 << 20) + "}\n",
     413, "RequestEntityTooLarge", f"limit is {LIMIT}"),
    ("deep-create", "POST", CONFIGMAPS, JSON, '{"metadata": {"name": "d"}, "data": ' + deep(20000) + "}",
     400, "BadRequest", f"the request body:1: nested more than {DEPTH} levels deep"),
    ("deep-merge-patch", "PATCH", f"{CONFIGMAPS}/target", MERGE, '{"data": ' + deep(20000) + "}",
     400, "BadRequest", f"nested more than {DEPTH} levels deep"),
    ("billion-laughs-apply", "PATCH", f"{CONFIGMAPS}/target?fieldManager=t", APPLY, billion_laughs_apply(),
     400, "BadRequest", f"the applied configuration:12: YAML aliases expand to more than "
                        f"{DEFAULT_LIMITS.max_alias_nodes} values"),
    ("deep-apply", "PATCH", f"{CONFIGMAPS}/target?fieldManager=t", APPLY,
     "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: target}\ndata: " + deep(20000) + "\n",
     400, "BadRequest", f"the applied configuration:4: nested more than {DEPTH} levels deep"),
    ("deep-json-apply", "PATCH", f"{CONFIGMAPS}/target?fieldManager=t", APPLY,
     '{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "target"}, "data": ' + deep(20000) + "}",
     400, "BadRequest", f"the applied configuration:1: nested more than {DEPTH} levels deep"),
    ("recursive-alias-apply", "PATCH", f"{CONFIGMAPS}/target?fieldManager=t", APPLY,
     "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: target}\ndata: &d {a: *d}\n",
     400, "BadRequest", "the applied configuration:4: an alias inside the value it names"),
    ("10001-json-patch-operations", "PATCH", f"{CONFIGMAPS}/target", JSON_PATCH,
     json.dumps([{"op": "test", "path": "/kind", "value": "ConfigMap"}] * 10001), 413, "RequestEntityTooLarge",
     "The allowed maximum operations in a JSON patch is 10000, got 10001"),
    ("json-patch-copy-bomb", "PATCH", f"{CONFIGMAPS}/target", JSON_PATCH, json.dumps(copy_bomb(40)),
     422, "Invalid", f"the copy operations copy more than {DEFAULT_LIMITS.max_alias_nodes} values"),
    ("json-patch-nesting-past-the-limit", "PATCH", f"{CONFIGMAPS}/target", JSON_PATCH,
     json.dumps(deepening_patch(DEPTH)), 422, "Invalid", f"the patched object nests more than {DEPTH} levels deep"),
]


@pytest.mark.parametrize(("method", "path", "headers", "body", "code", "reason", "message"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_hostile_body_gets_the_status_kube_apiserver_sends(api: ServerHandle, method: str, path: str,
                                                             headers: dict[str, str], body: Any, code: int,
                                                             reason: str, message: str) -> None:
    with client(api) as c:
        answer = c.request(method, path, headers=headers, content=body)
        status = answer.json()
        assert (answer.status_code, status["kind"], status["code"], status["reason"]) == (code, "Status", code,
                                                                                          reason), status
        assert message in status["message"]
        target = c.get(f"{CONFIGMAPS}/target").json()  # nothing changed, and the server still answers
        assert target["data"] == {"a": "1"}
        assert c.get(f"{CONFIGMAPS}/big").status_code == 404


def test_bodies_up_to_the_limit_and_nesting_up_to_the_depth_are_taken(api: ServerHandle) -> None:
    """The limits are where they say: a 3 MiB body and 100 levels pass."""
    with client(api) as c:
        envelope = json.dumps({"metadata": {"name": "at-limit"}, "data": {"a": ""}})
        body = envelope.replace('"a": ""', '"a": "' + "x" * (LIMIT - len(envelope)) + '"')
        assert len(body) == LIMIT
        assert c.post(CONFIGMAPS, content=body, headers=JSON).status_code == 201
        nested = '{"metadata": {"name": "nested"}, "extra": ' + deep(DEPTH - 1) + "}"
        assert c.post(CONFIGMAPS, content=nested, headers=JSON).status_code == 201
