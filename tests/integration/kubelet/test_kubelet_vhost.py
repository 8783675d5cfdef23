"""A vhost-vDPA device through the kubelet: the partition policy's `openshift.io/vhostvdpa` (no network: a vhost
device has no netdev to move), the device plugin as a process; the container gets the plugin's variables and
its character device, and the device is free again once the pod is gone."""

from __future__ import annotations

import json
import os
from contextlib import ExitStack
from pathlib import Path

import pytest

from integration.host.linux_netns import private_netns
from integration.kubelet.kubelet_rig import VDPACTL, Api, kubelet, pod, process, wait_for
from vdpa_operator.api.models import SriovNetworkNodeStateSpec
from vdpa_operator.api.nics import DEFAULT_SUPPORTED_NICS
from vdpa_operator.daemon.node import NodeAgent
from vdpa_operator.daemon.store import DaemonStore
from vdpa_operator.host.sim import SimKernel, sim_host
from vdpa_operator.sim.apiserver import ServerHandle

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network and mount namespaces)")

GOLDEN = Path(__file__).parents[2] / "golden"
PARTITION_SPEC = json.loads((GOLDEN / "vdpa-partition-node-state-spec.json").read_text())
PARTITION_CONFIG = json.loads((GOLDEN / "device-plugin-configmaps.json").read_text())["partition"]["data"]["worker-0"]
VHOST = "openshift.io/vhostvdpa"


def test_a_vhost_device_reaches_the_container(server: ServerHandle, short_tmp: Path) -> None:
    kubeconfig = short_tmp / "kubeconfig"
    kubeconfig.write_text(Path(server.kubeconfig_path).read_text())
    api = Api(kubeconfig)
    api.create("/api/v1/namespaces", {"metadata": {"name": "vdpa"}})
    root, host_root = short_tmp / "node", short_tmp / "host"
    kernel = SimKernel.create(host_root, real_netdevs=False)
    agent = NodeAgent(sim_host(kernel), DaemonStore(short_tmp / "store"), DEFAULT_SUPPORTED_NICS)
    observed = agent.observe()
    applied = agent.apply(agent.plan(SriovNetworkNodeStateSpec.model_validate(PARTITION_SPEC), observed), observed)
    assert applied.ok, applied.error_message()
    (root / "etc").mkdir(parents=True)
    (root / "etc/worker-0").write_text(PARTITION_CONFIG)
    with private_netns() as netns, ExitStack() as stack:
        log = stack.enter_context(kubelet(kubeconfig, root, netns))
        stack.enter_context(process([VDPACTL, "device-plugin", "--node-name", "worker-0", "--host", "sim",
                                     "--sim-root", str(host_root), "--config-file", str(root / "etc/worker-0"),
                                     "--device-plugin-path", str(root / "var/lib/kubelet/device-plugins"),
                                     "--plugins-registry", str(root / "var/lib/kubelet/plugins_registry"),
                                     "--devinfo-dir", str(root / "var/run/k8s.cni.cncf.io/devinfo/dp")],
                                    short_tmp / "dp.log"))
        wait_for("vhost devices allocatable", lambda: ((api.get("/api/v1/nodes/worker-0") or {}).get("status") or {})
                 .get("allocatable", {}).get(VHOST) == "2", log=log)
        api.create("/api/v1/namespaces/vdpa/pods", pod("vhost", ["sh", "-c", "env; sleep 3600"],
                                                       limits={VHOST: "1"}))
        wait_for("the pod running", lambda: (api.get("/api/v1/namespaces/vdpa/pods/vhost") or {})
                 .get("status", {}).get("phase") == "Running", log=log)
        status_file = root / "var/lib/kubelet/sim-status.json"
        described = json.loads(status_file.read_text())["pods"]["vdpa/vhost"]
        [device] = described["devices"]["vhost"][VHOST]
        environ = Path(f"/proc/{described['containers']['vhost']['pid']}/environ").read_bytes().split(b"\0")
        info = json.loads(next(e for e in environ if e.startswith(b"PCIDEVICE_OPENSHIFT_IO_VHOSTVDPA_INFO="))
                          .split(b"=", 1)[1])
        chardev = info[device]["vdpa"]["mount"]
        root_of_pod = f"/proc/{described['containers']['vhost']['pid']}/root"
        assert Path(root_of_pod + chardev).exists(), f"{chardev} is not visible in the container"
        api.delete("/api/v1/namespaces/vdpa/pods/vhost")
        wait_for("pod gone", lambda: not json.loads(status_file.read_text())["pods"], log=log)
        checkpoint = json.loads((root / "var/lib/kubelet/sim_kubelet_checkpoint.json").read_text())
        assert checkpoint == {}
