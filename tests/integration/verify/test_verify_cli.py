"""`vdpactl verify` as a user runs it: exit 2 and one line when the cluster cannot be read, exit 1 naming the
check when one fails or when there is nothing to verify. (Exit 0 with exec through the API server needs
kubeexec and the simulated kubelet's exec; the checks' own exit code is tested in test_verify_checks.py.)"""

from __future__ import annotations

import json
import socket
from pathlib import Path

from click.testing import CliRunner
from lightkube import Client
from lightkube.config.kubeconfig import KubeConfig
from lightkube.types import PatchType

from vdpa_operator.cli import main
from vdpa_operator.kubeclient import NodeStateResource, PodResource
from vdpa_operator.sim.apiserver import ServerHandle
from vdpa_operator.sim.apiserver.kubeconfigs import write_kubeconfig

NS = "openshift-sriov-network-operator"


def vdpactl(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["verify", *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_api_server_is_exit_2_and_one_line(tmp_path: Path) -> None:
    url = f"https://127.0.0.1:{closed_port()}"
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", {
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": url, "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]})
    code, out, err = vdpactl("--kubeconfig", str(kubeconfig))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: cannot verify: ") and "cannot reach the API server" in err
    assert "will retry" not in err


def test_a_named_pod_that_does_not_exist_is_exit_2_naming_it(server: ServerHandle) -> None:
    code, _, err = vdpactl("--kubeconfig", str(server.kubeconfig_path), "-n", "default", "nope")
    assert code == 2 and "Pod default/nope not found" in err


def test_nothing_to_verify_is_a_failure_not_a_pass(server: ServerHandle) -> None:
    code, out, err = vdpactl("--kubeconfig", str(server.kubeconfig_path), "-o", "json")
    assert code == 1 and json.loads(out) == []
    assert "no pod to verify" in err and "no NodeState has a virtio vfGroup" in err


def test_a_vdpa_pod_that_is_not_running_fails_its_check_by_name(server: ServerHandle) -> None:
    client = Client(KubeConfig.from_file(server.kubeconfig_path))
    try:
        client.create(NodeStateResource(metadata={"name": "worker-0", "namespace": NS}, spec={"interfaces": [
            {"pciAddress": "0000:65:00.0", "numVfs": 2, "vfGroups": [
                {"resourceName": "mlxnics", "vfRange": "0-1", "vdpaType": "virtio"}]}]}))
        client.create(PodResource(metadata={"name": "vdpa-pod1", "namespace": "default"}, spec={
            "nodeName": "worker-0", "containers": [{"name": "c", "image": "i", "resources": {
                "limits": {"openshift.io/mlxnics": "1"}, "requests": {"openshift.io/mlxnics": "1"}}}]}))
        client.patch(PodResource.Status, "vdpa-pod1", {"status": {"phase": "Pending"}}, namespace="default",
                     patch_type=PatchType.MERGE)
    finally:
        client.close()
    code, out, err = vdpactl("--kubeconfig", str(server.kubeconfig_path))
    assert code == 1
    assert out.splitlines()[1].split()[:4] == ["driver", "default/vdpa-pod1", "worker-0", "FAIL"]
    assert err == ("verify: driver check failed for pod default/vdpa-pod1 on node worker-0: pod is Pending, "
                   "not Running\n")
    code, out, _ = vdpactl("--kubeconfig", str(server.kubeconfig_path), "-o", "json")
    [record] = json.loads(out)
    assert code == 1 and {k: record[k] for k in ("check", "pod", "node", "status", "model")} == {
        "check": "driver", "pod": "default/vdpa-pod1", "node": "worker-0", "status": "fail", "model": None}
    assert record["observed"] == "pod is Pending"
