"""The kubelet alone (no device plugin, no CNI): its Node, the scheduler's binding, a container run as a host
process in the pod's network namespace, restarted per restartPolicy, and everything gone on deletion."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import httpx2
import pytest

from integration.host.linux_netns import private_netns
from integration.kubelet.kubelet_rig import VDPACTL, Api, kubelet, pod, wait_for
from vdpa_operator.sim.apiserver import ServerHandle

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network and mount namespaces)")


def _container(api: Api, name: str) -> dict | None:  # type: ignore[type-arg]
    obj = api.get(f"/api/v1/namespaces/vdpa/pods/{name}")
    statuses = ((obj or {}).get("status") or {}).get("containerStatuses") or []
    return statuses[0] if statuses else None


SA = "/var/run/secrets/kubernetes.io/serviceaccount"
ONCE = (f"echo $KUBERNETES_SERVICE_HOST; cat {SA}/namespace; echo; test -s {SA}/token && echo token; "
        f"grep -q 'BEGIN CERTIFICATE' {SA}/ca.crt && echo ca; echo by the pod > /mnt/written; "
        "python -c \"$ASK\"")
ASK = f"""
import os, ssl, urllib.error, urllib.request
request = urllib.request.Request(
    f"https://{{os.environ['KUBERNETES_SERVICE_HOST']}}:{{os.environ['KUBERNETES_SERVICE_PORT']}}"
    "/api/v1/namespaces/vdpa/pods/once", headers={{"Authorization": "Bearer " + open("{SA}/token").read()}})
try:
    print(urllib.request.urlopen(request, context=ssl.create_default_context(cafile="{SA}/ca.crt")).status)
except urllib.error.HTTPError as err:
    print(err.code)
"""
"""The API server from inside the pod's own network namespace, as a pod's client reaches it (python: the
virtualenv's, on the container's PATH)."""


def _netns() -> list[str]:
    return [line.split()[0] for line in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                                                        check=True).stdout.splitlines()]


def _sleeper(api: Api, log: Path) -> dict:  # type: ignore[type-arg]
    """The sleeper's running container as the kubelet's status file describes it."""
    def running() -> dict | None:  # type: ignore[type-arg]
        path = log.parent / "var/lib/kubelet/sim-status.json"
        if not path.exists():
            return None
        status = json.loads(path.read_text())
        container = status["pods"].get("vdpa/sleeper", {}).get("containers", {}).get("sleeper")
        return container if container and container["pid"] else None
    return wait_for("sleeper running", running, log=log)


def test_node_ready_and_a_crashing_container_is_restarted(server: ServerHandle, short_tmp: Path) -> None:
    kubeconfig = short_tmp / "kubeconfig"
    kubeconfig.write_text(Path(server.kubeconfig_path).read_text())
    api = Api(kubeconfig)
    api.create("/api/v1/namespaces", {"metadata": {"name": "vdpa"}})
    with private_netns() as netns, kubelet(kubeconfig, short_tmp / "node", netns, "--pod-cidr",
                                           "10.56.1.0/24") as log:
        wait_for("node Ready", lambda: any(c["type"] == "Ready" and c["status"] == "True" for c in
                                          ((api.get("/api/v1/nodes/worker-0") or {}).get("status") or {})
                                          .get("conditions") or []), log=log)
        node = api.get("/api/v1/nodes/worker-0")
        assert node["metadata"]["labels"]["feature.node.kubernetes.io/network-sriov.capable"] == "true"
        assert node["spec"]["podCIDR"] == "10.56.1.0/24"
        port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        # the exec/log server listens there, and answers no one but the API server
        assert httpx2.get(f"http://127.0.0.1:{port}/containerLogs/vdpa/x/y").status_code == 401
        assert api.get("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/worker-0")
        api.create("/api/v1/namespaces/vdpa/pods", pod("crasher", ["sh", "-c", "cat /proc/self/net/dev; exit 3"]))
        once = pod("once", ["sh", "-c", ONCE], restart="OnFailure")
        once["spec"]["containers"][0]["env"] = [{"name": "ASK", "value": ASK}]
        once["spec"]["volumes"] = [{"name": "state", "hostPath": {"path": "/etc/vdpa-sim-test",
                                                                  "type": "DirectoryOrCreate"}}]
        once["spec"]["containers"][0]["volumeMounts"] = [{"name": "state", "mountPath": "/mnt"}]
        api.create("/api/v1/namespaces/vdpa/pods", once)
        api.create("/api/v1/namespaces/vdpa/pods", pod("sleeper", ["sleep", "3600"]))
        crashed = wait_for("crasher restarted twice", lambda: (s := _container(api, "crasher")) and
                           s["restartCount"] >= 2 and s, log=log)
        assert (crashed.get("lastState") or crashed["state"])["terminated"]["exitCode"] == 3
        events = api.get("/api/v1/namespaces/vdpa/events")["items"]
        reasons = {e["reason"] for e in events if e["involvedObject"]["name"] == "crasher"}
        assert {"Scheduled", "Started", "BackOff"} <= reasons, reasons
        done = wait_for("once Succeeded", lambda: (p := api.get("/api/v1/namespaces/vdpa/pods/once")) and
                        p["status"].get("phase") == "Succeeded" and p, log=log)
        assert done["spec"]["nodeName"] == "worker-0"
        assert done["status"]["containerStatuses"][0]["restartCount"] == 0
        [log_file] = (short_tmp / "node/var/log/pods").glob("vdpa_crasher_*/crasher.log")
        devices = {line.split(":")[0].strip() for line in log_file.read_text().splitlines() if ":" in line
                   and "|" not in line}
        assert devices == {"lo"}  # a network namespace of its own, not the machine's
        [once_log] = (short_tmp / "node/var/log/pods").glob("vdpa_once_*/once.log")
        # KUBERNETES_SERVICE_HOST is the API server's host; the token, CA and namespace where pods expect them
        assert once_log.read_text().split()[:4] == ["127.0.0.1", "vdpa", "token", "ca"]
        # reached and authenticated as the pod's ServiceAccount (403: RBAC gives `default` no pod reads)
        assert once_log.read_text().split()[4:] == ["403"]
        assert (short_tmp / "node/etc/vdpa-sim-test/written").read_text() == "by the pod\n"  # hostPath: the node's
        assert not Path("/etc/vdpa-sim-test").exists()
        assert api.get("/api/v1/namespaces/vdpa/serviceaccounts/default")  # made for the pods' tokens
        sleeper = _sleeper(api, log)
        os.kill(sleeper["pid"], signal.SIGKILL)  # a daemon killed: the kubelet starts it again
        again = wait_for("sleeper restarted", lambda: (s := _container(api, "sleeper")) and s["restartCount"] == 1
                         and s.get("state", {}).get("running") and s, log=log)
        assert again["lastState"]["terminated"]["exitCode"] == 137
        restarted = _sleeper(api, log)["pid"]
        assert restarted != sleeper["pid"]
        uid = api.get("/api/v1/namespaces/vdpa/pods/crasher")["metadata"]["uid"]
        assert f"{netns}-{uid[:13]}" in _netns()
        api.delete("/api/v1/namespaces/vdpa/pods/crasher")
        api.delete("/api/v1/namespaces/vdpa/pods/once")
        wait_for("crasher's netns removed", lambda: f"{netns}-{uid[:13]}" not in _netns(), log=log)
        sleeper_uid = api.get("/api/v1/namespaces/vdpa/pods/sleeper")["metadata"]["uid"]
    # The kubelet stopped (SIGTERM) with the sleeper running: its process and namespace went with it.
    assert not Path(f"/proc/{restarted}").exists()
    assert f"{netns}-{sleeper_uid[:13]}" not in _netns()
    assert not any((short_tmp / "node/var/lib/kubelet/pods").iterdir())


def test_a_kubelet_killed_is_cleaned_up_after_by_the_next(server: ServerHandle, short_tmp: Path) -> None:
    kubeconfig = short_tmp / "kubeconfig"
    kubeconfig.write_text(Path(server.kubeconfig_path).read_text())
    api = Api(kubeconfig)
    api.create("/api/v1/namespaces", {"metadata": {"name": "vdpa"}})
    root = short_tmp / "node"
    with private_netns() as netns:
        argv = [VDPACTL, "sim", "kubelet", "--node-name", "worker-0", "--kubeconfig", str(kubeconfig), "--root",
                str(root), "--node-netns", netns]
        root.mkdir()
        first = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            api.create("/api/v1/namespaces/vdpa/pods", pod("sleeper", ["sleep", "3600"]))
            old = _sleeper(api, root / "kubelet.log")["pid"]
        finally:
            first.kill()  # SIGKILL: no cleanup
            first.wait()
        uid = api.get("/api/v1/namespaces/vdpa/pods/sleeper")["metadata"]["uid"]
        assert Path(f"/proc/{old}").exists() and f"{netns}-{uid[:13]}" in _netns()  # what it left behind
        with kubelet(kubeconfig, root, netns) as log:
            wait_for("the old container killed", lambda: not Path(f"/proc/{old}").exists(), log=log)
            new = _sleeper(api, log)["pid"]
            assert new != old
            assert "left by an earlier kubelet" in log.read_text()
        assert not Path(f"/proc/{new}").exists()
    assert f"{netns}-{uid[:13]}" not in _netns()


def test_a_terminating_pod_is_stopped_then_its_deletion_confirmed(server: ServerHandle, short_tmp: Path) -> None:
    """A pod kept by a finalizer: DELETE only marks it (deletionTimestamp); the kubelet stops it all the same."""
    kubeconfig = short_tmp / "kubeconfig"
    kubeconfig.write_text(Path(server.kubeconfig_path).read_text())
    api = Api(kubeconfig)
    api.create("/api/v1/namespaces", {"metadata": {"name": "vdpa"}})
    kept = pod("sleeper", ["sleep", "3600"])
    kept["metadata"]["finalizers"] = ["example.com/keep"]
    with private_netns() as netns, kubelet(kubeconfig, short_tmp / "node", netns) as log:
        api.create("/api/v1/namespaces/vdpa/pods", kept)
        pid = _sleeper(api, log)["pid"]
        uid = api.get("/api/v1/namespaces/vdpa/pods/sleeper")["metadata"]["uid"]
        api.delete("/api/v1/namespaces/vdpa/pods/sleeper")
        wait_for("the container stopped", lambda: not Path(f"/proc/{pid}").exists(), log=log)
        wait_for("its netns removed", lambda: f"{netns}-{uid[:13]}" not in _netns(), log=log)
        assert api.get("/api/v1/namespaces/vdpa/pods/sleeper")["metadata"]["deletionTimestamp"]
        api.client.patch("/api/v1/namespaces/vdpa/pods/sleeper", json={"metadata": {"finalizers": None}},
                         headers={"Content-Type": "application/merge-patch+json"}).raise_for_status()
        wait_for("the pod gone", lambda: api.get("/api/v1/namespaces/vdpa/pods/sleeper") is None, log=log)


def test_two_nodes_on_one_machine_each_run_their_own(server: ServerHandle, short_tmp: Path) -> None:
    """Two kubelets, each with its scheduler: every pod is bound once, they spread, and each node's files stay
    under its own root."""
    kubeconfig = short_tmp / "kubeconfig"
    kubeconfig.write_text(Path(server.kubeconfig_path).read_text())
    api = Api(kubeconfig)
    api.create("/api/v1/namespaces", {"metadata": {"name": "vdpa"}})
    with (private_netns() as netns0, private_netns() as netns1,
          kubelet(kubeconfig, short_tmp / "n0", netns0, node="worker-0") as log0,
          kubelet(kubeconfig, short_tmp / "n1", netns1, node="worker-1")):
        for name in ("worker-0", "worker-1"):
            wait_for(f"{name} Ready", lambda n=name: any(  # type: ignore[misc]
                c["type"] == "Ready" and c["status"] == "True"
                for c in ((api.get(f"/api/v1/nodes/{n}") or {}).get("status") or {}).get("conditions") or []),
                log=log0)
        for index in range(4):
            api.create("/api/v1/namespaces/vdpa/pods", pod(f"p{index}", ["sleep", "3600"]))

        def placed() -> dict[str, str] | None:
            pods = {p["metadata"]["name"]: p for p in api.get("/api/v1/namespaces/vdpa/pods")["items"]}
            if not all((p.get("status") or {}).get("phase") == "Running" for p in pods.values()):
                return None
            return {name: p["spec"]["nodeName"] for name, p in pods.items()}

        nodes = wait_for("four pods running", placed, log=log0)
        assert sorted(nodes.values()) == ["worker-0", "worker-0", "worker-1", "worker-1"]
        for root, node in ((short_tmp / "n0", "worker-0"), (short_tmp / "n1", "worker-1")):
            status = json.loads((root / "var/lib/kubelet/sim-status.json").read_text())
            assert sorted(status["pods"]) == sorted(f"vdpa/{n}" for n, on in nodes.items() if on == node)
