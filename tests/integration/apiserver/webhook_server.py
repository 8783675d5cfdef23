"""Shared by the API server tests: an HTTPS admission webhook server (`running_webhook`; conftest.py makes
it the `webhook` fixture) and helpers to configure webhooks through the API."""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx2 as httpx

from vdpa_operator.tls import CertificateAuthority

MUTATING = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
VALIDATING = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"


@dataclass
class WebhookServer:
    """An HTTPS admission webhook: /mutate labels the object, /deny refuses objects labelled deny=yes, /slow
    answers after 2 s; every AdmissionReview received is kept in `reviews`."""

    url: str
    ca_bundle: str
    reviews: list[dict[str, Any]] = field(default_factory=list)


def _answer(path: str, review: dict[str, Any]) -> dict[str, Any]:
    request = review["request"]
    response: dict[str, Any] = {"uid": request["uid"], "allowed": True}
    obj = request.get("object") or {}
    if path == "/mutate":
        has_labels = bool(obj.get("metadata", {}).get("labels"))
        ops = [{"op": "add", "path": "/metadata/labels/mutated", "value": "yes"}] if has_labels else [
            {"op": "add", "path": "/metadata/labels", "value": {"mutated": "yes"}}]
        response |= {"patchType": "JSONPatch", "patch": base64.b64encode(json.dumps(ops).encode()).decode(),
                     "warnings": ["labelled by the test webhook"]}
    elif path == "/deny" and obj.get("metadata", {}).get("labels", {}).get("deny") == "yes":
        response |= {"allowed": False, "status": {"code": 403, "reason": "Forbidden", "message": "no thanks"}}
    elif path == "/slow":
        time.sleep(2)
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}


class _QuietServer(ThreadingHTTPServer):
    """Clients that give up mid-handshake (an untrusted certificate) are expected here, not worth a traceback."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


@contextlib.contextmanager
def running_webhook(ca: CertificateAuthority) -> Iterator[WebhookServer]:
    """A webhook server on a free port of 127.0.0.1, with a certificate from `ca` (also for hook.webhooks.svc)."""
    reviews: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            reviews.append({"path": self.path.split("?")[0], **review["request"]})
            body = json.dumps(_answer(self.path.split("?")[0], review)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = _QuietServer(("127.0.0.1", 0), Handler)
    context = ca.issue(["127.0.0.1", "hook.webhooks.svc"]).server_context()
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield WebhookServer(f"https://127.0.0.1:{server.server_address[1]}", ca.bundle, reviews)
    server.shutdown()
    server.server_close()
    thread.join(5)


def hook(name: str, url: str, ca_bundle: str, *, resources: tuple[str, ...] = ("configmaps",),
         operations: tuple[str, ...] = ("CREATE", "UPDATE"), groups: tuple[str, ...] = ("",), **extra: Any
         ) -> dict[str, Any]:
    return {
        "name": name,
        "clientConfig": {"url": url, "caBundle": ca_bundle},
        "rules": [{"apiGroups": list(groups), "apiVersions": ["v1"], "operations": list(operations),
                   "resources": list(resources)}],
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        **extra,
    }


def configure(http: httpx.Client, path: str, name: str, *hooks: dict[str, Any]) -> None:
    kind = "MutatingWebhookConfiguration" if path == MUTATING else "ValidatingWebhookConfiguration"
    created = http.post(path, json={"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
                                    "metadata": {"name": name}, "webhooks": list(hooks)})
    assert created.status_code == 201, created.text


