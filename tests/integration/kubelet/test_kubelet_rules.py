"""The kubelet's rules that need no process: the scheduler's fit, Multus's network selection and device
injection, a container's command and environment, and the API server's pods/binding."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from integration.host.linux_netns import private_netns
from integration.kubelet.kubelet_rig import VDPACTL, Api
from vdpa_operator.sim.apiserver import ServerHandle
from vdpa_operator.sim.kubelet import containers, multus, scheduler
from vdpa_operator.sim.kubelet.errors import KubeletError
from vdpa_operator.sim.kubelet.podprocesses import ContainerProcess, PodProcesses
from vdpa_operator.sim.kubelet.quantity import extended_requests

MLXNICS = "openshift.io/mlxnics"


def node(name: str, mlxnics: str = "2", ready: bool = True, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels},
            "status": {"allocatable": {MLXNICS: mlxnics, "cpu": "2"},
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def pod(name: str, wants: int = 0, on: str = "", **spec: Any) -> dict[str, Any]:
    resources = {"limits": {MLXNICS: str(wants)}} if wants else {}
    return {"metadata": {"name": name, "namespace": "vdpa"},
            "spec": {"containers": [{"name": "c", "resources": resources}], "nodeName": on, **spec},
            "status": {"phase": "Running" if on else "Pending"}}


def test_a_pod_goes_where_its_devices_are_free() -> None:
    nodes = [node("worker-0"), node("worker-1")]
    bound = [pod("a", 2, on="worker-0")]
    assert scheduler.pick(pod("b", 1), nodes, bound) == ("worker-1", {"worker-0": f"Insufficient {MLXNICS}"})
    assert scheduler.pick(pod("c", 3), nodes, bound)[0] is None


def test_finished_pods_free_their_devices_and_unready_nodes_take_nothing() -> None:
    done = pod("a", 2, on="worker-0")
    done["status"]["phase"] = "Succeeded"
    assert scheduler.pick(pod("b", 2), [node("worker-0"), node("worker-1", ready=False)], [done])[0] == "worker-0"
    assert scheduler.why_not(pod("b"), node("worker-1", ready=False), []) == "node is not Ready"


def test_node_selector_and_daemonset_affinity() -> None:
    nodes = [node("worker-0", os="linux"), node("worker-1", os="linux")]
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["worker-1"]}]}]}}}
    assert scheduler.pick(pod("ds", affinity=affinity, nodeSelector={"os": "linux"}), nodes, [])[0] == "worker-1"
    assert scheduler.pick(pod("x", nodeSelector={"os": "windows"}), nodes, [])[0] is None


def test_extended_requests_count_init_containers_by_their_largest() -> None:
    spec = {"spec": {"containers": [{"resources": {"limits": {MLXNICS: "1", "cpu": "500m"}}},
                                    {"resources": {"requests": {MLXNICS: "1"}}}],
                     "initContainers": [{"resources": {"limits": {MLXNICS: "3"}}}]}}
    assert extended_requests(spec) == {MLXNICS: 3}


@pytest.mark.parametrize(("annotation", "expected"), [
    ("kube-system/ovn-kubernetes-a", ("kube-system", "ovn-kubernetes-a")),
    ("ovn-kubernetes-a", ("multus-ns", "ovn-kubernetes-a")),
])
def test_default_network_selection(annotation: str, expected: tuple[str, str]) -> None:
    assert multus.default_network({multus.DEFAULT_NETWORK_ANNOTATION: annotation}, "multus-ns") == expected


def test_a_malformed_default_network_is_refused() -> None:
    with pytest.raises(KubeletError, match="NAMESPACE/NAME"):
        multus.default_network({multus.DEFAULT_NETWORK_ANNOTATION: "a/b/c"}, "kube-system")


def test_device_id_at_the_top_and_device_info_only_for_plugins_that_declare_it() -> None:
    seed = {"cniVersion": "0.3.1", "name": "ovn-kubernetes-a", "type": "ovn-k8s-cni-overlay", "ipam": {}}
    plain = multus.with_device(seed, "0000:65:00.2", "/var/run/k8s.cni.cncf.io/devinfo/cni/x")
    assert plain["deviceID"] == "0000:65:00.2" and "runtimeConfig" not in plain
    capable = multus.with_device({**seed, "capabilities": {"CNIDeviceInfoFile": True}}, "0000:65:00.2",
                                 "/var/run/k8s.cni.cncf.io/devinfo/cni/x")
    assert capable["runtimeConfig"] == {"CNIDeviceInfoFile": "/var/run/k8s.cni.cncf.io/devinfo/cni/x"}


def test_a_conflist_gives_each_plugin_its_name_and_version() -> None:
    nad = {"metadata": {"name": "n", "namespace": "ns"}, "spec": {"config": (
        '{"cniVersion": "1.0.0", "name": "net", "plugins": [{"type": "vdpa-cni"}, {"type": "tuning"}]}')}}
    version, plugins = multus.plugins_of(nad)
    assert version == "1.0.0"
    assert plugins == [{"name": "net", "cniVersion": "1.0.0", "type": "vdpa-cni"},
                       {"name": "net", "cniVersion": "1.0.0", "type": "tuning"}]


def test_command_expansion_and_the_image_entrypoint(tmp_path: Path) -> None:
    (tmp_path / "vdpactl").write_text("#!/bin/sh\n")
    (tmp_path / "vdpactl").chmod(0o755)
    the_pod = {"metadata": {"name": "p", "namespace": "ns"}, "spec": {"nodeName": "worker-1"}}
    container = {"name": "cni-server", "image": "quay.io/example/vdpa-operator:0.1.0",
                 "args": ["cni-server", "--node-name=$(NODE_NAME)", "$$(kept)", "$(UNDEFINED)"],
                 "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                         {"name": "WHERE", "value": "on $(NODE_NAME)"}]}
    env = containers.environment(the_pod, container, {"KUBERNETES_SERVICE_HOST": "127.0.0.1"})
    assert env == {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "NODE_NAME": "worker-1", "WHERE": "on worker-1"}
    assert containers.command(container, env, tmp_path) == [
        str(tmp_path / "vdpactl"), "cni-server", "--node-name=worker-1", "$(kept)", "$(UNDEFINED)"]


def test_an_unknown_image_without_a_command_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KubeletError, match="entrypoint of image 'busybox'"):
        containers.command({"name": "c", "image": "busybox"}, {}, tmp_path)


def test_binding_sets_the_node_once(server: ServerHandle, tmp_path: Path) -> None:
    api = Api(Path(server.kubeconfig_path))
    api.create("/api/v1/namespaces", {"metadata": {"name": "vdpa"}})
    api.create("/api/v1/namespaces/vdpa/pods", {"metadata": {"name": "p"},
                                                "spec": {"containers": [{"name": "c", "image": "x"}]}})
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
               "target": {"kind": "Node", "name": "worker-0"}}
    first = api.client.post("/api/v1/namespaces/vdpa/pods/p/binding", json=binding)
    assert first.status_code == 201, first.text
    bound = api.get("/api/v1/namespaces/vdpa/pods/p")
    assert bound["spec"]["nodeName"] == "worker-0"
    assert {"type": "PodScheduled", "status": "True"}.items() <= bound["status"]["conditions"][0].items()
    again = api.client.post("/api/v1/namespaces/vdpa/pods/p/binding",
                            json={**binding, "target": {"kind": "Node", "name": "worker-1"}})
    assert again.status_code == 409 and "already assigned to node" in again.json()["message"]
    assert api.get("/api/v1/namespaces/vdpa/pods/p")["spec"]["nodeName"] == "worker-0"
    missing = api.client.post("/api/v1/namespaces/vdpa/pods/nope/binding",
                              json={**binding, "metadata": {"name": "nope"}})
    assert missing.status_code == 404, missing.text


def test_locate_answers_the_streaming_server_by_container(tmp_path: Path) -> None:
    processes = PodProcesses()
    processes.put(ContainerProcess("vdpa", "vdpa-pod1", "vdpa-pod", "/var/run/netns/pod-1", tmp_path / "log",
                                   {"PATH": "/usr/bin"}, ["/usr/bin/sleep", "3600"], pid=42))
    found = processes.locate("vdpa", "vdpa-pod1", "vdpa-pod")
    assert found is not None and found.running
    assert found.pid == 42  # exec enters the mount namespace of the container's process too
    assert (found.netns_path, found.log_file, found.env) == (Path("/var/run/netns/pod-1"), tmp_path / "log",
                                                             {"PATH": "/usr/bin"})
    assert processes.locate("vdpa", "vdpa-pod1", "other") is None
    processes.containers[("vdpa", "vdpa-pod1", "vdpa-pod")].pid = None  # exited, not yet restarted
    stopped = processes.locate("vdpa", "vdpa-pod1", "vdpa-pod")
    assert stopped is not None and not stopped.running
    processes.drop("vdpa", "vdpa-pod1")
    assert processes.locate("vdpa", "vdpa-pod1", "vdpa-pod") is None


def test_bad_flags_are_one_line_naming_what_to_fix(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("")
    base = [VDPACTL, "sim", "kubelet", "--node-name", "w", "--kubeconfig", str(kubeconfig), "--root", str(tmp_path)]
    missing = subprocess.run([*base, "--node-netns", "vdpa-no-such-netns"], capture_output=True, text=True)
    assert missing.returncode == 2 and "network namespace 'vdpa-no-such-netns' does not exist" in missing.stderr
    if os.geteuid() != 0:
        return
    with private_netns() as netns:
        empty = subprocess.run([*base, "--node-netns", netns], capture_output=True, text=True)
    assert empty.returncode == 2, empty.stderr
    assert empty.stderr.strip().splitlines() == [f"error: --kubeconfig: Kubernetes configuration {kubeconfig}: not a "
                                                 "kubeconfig (it needs clusters, users and a current-context; "
                                                 "`vdpactl sim apiserver --kubeconfig FILE` writes one)"]


def test_a_pod_bound_here_counts_on_its_node_until_the_cache_shows_it() -> None:
    bound_here = pod("a", 2)
    bound_here["metadata"]["uid"] = "uid-a"
    assumed = {"uid-a": "worker-0", "uid-gone": "worker-1"}
    scheduler.assume([bound_here], assumed)
    assert bound_here["spec"]["nodeName"] == "worker-0" and assumed == {"uid-a": "worker-0"}
    # so a round on the lagging cache does not give worker-0's two devices away again
    assert scheduler.pick(pod("b", 1), [node("worker-0")], [bound_here])[0] is None
    seen = pod("a", 2, on="worker-0")
    seen["metadata"]["uid"] = "uid-a"
    scheduler.assume([seen], assumed)
    assert assumed == {}
