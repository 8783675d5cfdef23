"""deploy/'s device-plugin DaemonSet as the kubelet runs it: its pod template verbatim (no image: `vdpactl` of the
virtualenv, its args with `$(NODE_NAME)`, its ConfigMap and hostPath volumes under the node's root, host
network), here against this machine's kernel (no VFs): the plugin it starts registers with this kubelet through
the plugin-watcher directory the pod mounts, and the Node lists the resource."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from integration.host.linux_netns import private_netns
from integration.kubelet.kubelet_rig import Api, kubelet, wait_for
from vdpa_operator.sim.apiserver import ServerHandle
from vdpa_operator.yamlio import load_one

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network and mount namespaces)")

DEPLOY = Path(__file__).parents[3] / "deploy"
NAMESPACE = "openshift-sriov-network-operator"
CONFIG = '{"resourceList": [{"resourceName": "mlxnics", "selectors": {"vendors": ["15b3"], "devices": ["101e"], ' \
         '"pfNames": ["nonexistent0"]}}]}'


def test_the_device_plugin_daemonset_pod_registers_with_the_kubelet(server: ServerHandle, short_tmp: Path) -> None:
    kubeconfig = short_tmp / "kubeconfig"
    kubeconfig.write_text(Path(server.kubeconfig_path).read_text())
    api = Api(kubeconfig)
    daemonset = load_one((DEPLOY / "device-plugin.yaml").read_text(), "deploy/device-plugin.yaml")
    api.create(f"/api/v1/namespaces/{NAMESPACE}/configmaps",
               {"metadata": {"name": "device-plugin-config"}, "data": {"worker-0": CONFIG}})
    template = daemonset["spec"]["template"]
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {**template["metadata"], "name": "vdpa-device-plugin-w0", "namespace": NAMESPACE},
           "spec": {**template["spec"], "nodeName": "worker-0"}}
    root = short_tmp / "node"
    with private_netns() as netns, kubelet(kubeconfig, root, netns) as log:
        api.create(f"/api/v1/namespaces/{NAMESPACE}/pods", pod)

        def listed() -> str | None:
            node = api.get("/api/v1/nodes/worker-0") or {}
            return ((node.get("status") or {}).get("capacity") or {}).get("openshift.io/mlxnics")

        assert wait_for("the plugin's resource on the Node", listed, log=log) == "0"
        sockets = [p.name for p in (root / "var/lib/kubelet/plugins_registry").iterdir() if p.is_socket()]
        assert sockets, "the plugin's socket is in the node's directory under --root"
        status = api.get(f"/api/v1/namespaces/{NAMESPACE}/pods/vdpa-device-plugin-w0")["status"]
        assert status["phase"] == "Running" and status["podIP"] == "127.0.0.1"  # hostNetwork
        api.delete(f"/api/v1/namespaces/{NAMESPACE}/pods/vdpa-device-plugin-w0")
        wait_for("the plugin's socket removed", lambda: not any(
            p.is_socket() for p in (root / "var/lib/kubelet/plugins_registry").iterdir()), log=log)
