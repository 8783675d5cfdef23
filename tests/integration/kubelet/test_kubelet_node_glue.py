"""What a simulated node gives its pods beyond the pod spec: the node's own variables over the pod's
(`--container-env`: deploy/'s components then act on the node's simulated host, never on this machine), a
webhook Service the API server calls on this machine relayed into the pod serving it (`--webhook-service`), and
a pod's status that forgets why it waited once it runs."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import httpx2
import pytest

from integration.host.linux_netns import private_netns
from integration.kubelet.kubelet_rig import Api, kubelet, pod, wait_for
from vdpa_operator.sim.apiserver import ServerHandle

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network and mount namespaces)")

SERVE = """
import http.server, os
class Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = os.environ.get("VDPA_HOST", "").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.HTTPServer(("127.0.0.1", 8443), Answer).serve_forever()
"""
"""A webhook stand-in: listens on the pod's own loopback (reachable only through the pod's netns) and answers
with the VDPA_HOST it was given."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_node_env_wins_webhook_service_is_relayed_and_a_waiting_reason_is_cleared(
        server: ServerHandle, short_tmp: Path) -> None:
    kubeconfig = short_tmp / "kubeconfig"
    kubeconfig.write_text(Path(server.kubeconfig_path).read_text())
    api = Api(kubeconfig)
    api.create("/api/v1/namespaces", {"metadata": {"name": "vdpa"}})
    webhook = f"127.0.0.1:{_free_port()}"
    hook = pod("hook", [sys.executable, "-c", SERVE])
    hook["metadata"]["labels"] = {"app": "hook"}
    container = hook["spec"]["containers"][0]
    container["env"] = [{"name": "VDPA_HOST", "value": "linux"}]  # deploy/'s default; the node's must win
    container["ports"] = [{"name": "webhook", "containerPort": 8443}]
    api.create("/api/v1/namespaces/vdpa/services", {"metadata": {"name": "hook"}, "spec": {
        "selector": {"app": "hook"}, "ports": [{"port": 443, "targetPort": "webhook"}]}})
    late = pod("late", ["sleep", "3600"])
    late["spec"]["volumes"] = [{"name": "config", "configMap": {"name": "later"}}]
    late["spec"]["containers"][0]["volumeMounts"] = [{"name": "config", "mountPath": "/etc/later"}]
    with private_netns() as netns, kubelet(kubeconfig, short_tmp / "node", netns, "--container-env", "VDPA_HOST=sim",
                                           "--webhook-service", f"vdpa/hook={webhook}") as log:
        api.create("/api/v1/namespaces/vdpa/pods", hook)
        api.create("/api/v1/namespaces/vdpa/pods", late)

        def answer() -> str | None:
            try:
                return httpx2.get(f"http://{webhook}/", timeout=2).text
            except httpx2.HTTPError:
                return None

        assert wait_for("the webhook Service relayed into the pod", answer, log=log) == "sim"

        waiting = wait_for("late waits for its ConfigMap", lambda: (p := api.get("/api/v1/namespaces/vdpa/pods/late"))
                           and p["status"].get("message") and p["status"], log=log)
        assert "configmap vdpa/later not found" in waiting["message"]
        api.create("/api/v1/namespaces/vdpa/configmaps", {"metadata": {"name": "later"}, "data": {"k": "v"}})
        running = wait_for("late Running", lambda: (p := api.get("/api/v1/namespaces/vdpa/pods/late"))
                           and p["status"].get("phase") == "Running" and p["status"], timeout=30, log=log)
        assert "message" not in running and "reason" not in running, running
    with pytest.raises(httpx2.HTTPError):  # the relay went with the kubelet
        httpx2.get(f"http://{webhook}/", timeout=2)
