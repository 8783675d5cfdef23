"""A running pod's configMap volume follows its ConfigMap, as kubelet's does: the device plugin reads its
resource list from one (the operator's device-plugin-config) and serves a changed policy only if the change
reaches its mounted file. Seen from inside the container (its mount namespace), keys changed and keys gone."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from integration.host.linux_netns import private_netns
from integration.kubelet.kubelet_rig import Api, kubelet, pod, wait_for
from vdpa_operator.sim.apiserver import ServerHandle

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network and mount namespaces)")


def test_a_configmap_volume_follows_its_configmap(server: ServerHandle, short_tmp: Path) -> None:
    kubeconfig = short_tmp / "kubeconfig"
    kubeconfig.write_text(Path(server.kubeconfig_path).read_text())
    api = Api(kubeconfig)
    api.create("/api/v1/namespaces", {"metadata": {"name": "vdpa"}})
    config = "/api/v1/namespaces/vdpa/configmaps"
    api.create(config, {"metadata": {"name": "pcidp"}, "data": {"worker-0": "virtio", "old": "gone soon"}})
    reader = pod("reader", ["sleep", "3600"])
    reader["spec"]["volumes"] = [{"name": "config", "configMap": {"name": "pcidp"}}]
    reader["spec"]["containers"][0]["volumeMounts"] = [{"name": "config", "mountPath": "/etc/pcidp"}]
    root = short_tmp / "node"
    with private_netns() as netns, kubelet(kubeconfig, root, netns) as log:
        api.create("/api/v1/namespaces/vdpa/pods", reader)
        status_file = root / "var/lib/kubelet/sim-status.json"

        def container_pid() -> int | None:
            described = json.loads(status_file.read_text())["pods"].get("vdpa/reader", {}) \
                if status_file.exists() else {}
            return described.get("containers", {}).get("reader", {}).get("pid")

        pid = wait_for("the pod running", container_pid, log=log)
        seen = Path(f"/proc/{pid}/root/etc/pcidp")
        assert (seen / "worker-0").read_text() == "virtio"

        api.client.put(f"{config}/pcidp", json={"metadata": {"name": "pcidp", "namespace": "vdpa"},
                                                 "data": {"worker-0": "vhost"}}).raise_for_status()
        wait_for("the changed key in the container", lambda: (seen / "worker-0").read_text() == "vhost", log=log)
        assert sorted(p.name for p in seen.iterdir()) == ["worker-0"]
        api.delete("/api/v1/namespaces/vdpa/pods/reader")
        wait_for("pod gone", lambda: not json.loads(status_file.read_text())["pods"], log=log)
