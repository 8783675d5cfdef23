"""What the cluster holds before any user object: the Nodes' labels and pod subnets, and deploy/ applied as a user
installs it (`kubectl apply -k deploy/`, then the sample SriovOperatorConfig once the operator's webhook admits it).

The labels are those the seed's policy selects (`feature.node.kubernetes.io/network-sriov.capable: "true"`, as
Node Feature Discovery sets them) and `kubernetes.io/os: linux` (the DaemonSets' nodeSelector). The pod subnet is
the Node's `k8s.ovn.org/node-subnets` annotation, what OVN-Kubernetes writes and the CNI server's empty-IPAM path
reads first; the kubelet registers the same /24 as `spec.podCIDR`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import vdpa_operator
from vdpa_operator.errors import VdpaOperatorError
from vdpa_operator.sim.cluster.apiclient import AdminClient
from vdpa_operator.sim.cluster.layout import POD_NETWORK, NodeLayout
from vdpa_operator.verify.model import SIM_MODEL_ANNOTATION, SimModel

NODE_LABELS = {
    "feature.node.kubernetes.io/network-sriov.capable": "true",
    "node-role.kubernetes.io/worker": "",
    "kubernetes.io/os": "linux",
}
NODE_SUBNETS = "k8s.ovn.org/node-subnets"
SAMPLE_CONFIG = "sriovoperatorconfig.yaml"
FACTS_NAMESPACE, FACTS_NAME = "kube-system", "vdpa-sim-cluster"


class ManifestError(VdpaOperatorError):
    pass


def default_deploy_dir() -> Path | None:
    """deploy/ of the source tree this package runs from (an editable install, a checkout), or None."""
    candidate = Path(vdpa_operator.__file__).resolve().parents[2] / "deploy"
    return candidate if (candidate / "kustomization.yaml").exists() else None


def kubectl() -> str:
    """The virtualenv's kubectl (the dev extras install one), else the one on PATH."""
    beside = Path(sys.executable).with_name("kubectl")
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    if found is None:
        raise ManifestError("kubectl not found: install the dev extras (`make setup`) or put kubectl on PATH")
    return found


def run_kubectl(kubeconfig: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    return subprocess.run([kubectl(), *args], capture_output=True, text=True, env=env, check=False, timeout=timeout)


def apply_deploy(kubeconfig: Path, deploy: Path) -> str:
    result = run_kubectl(kubeconfig, "apply", "-k", str(deploy))
    if result.returncode != 0:
        raise ManifestError(f"kubectl apply -k {deploy} exited {result.returncode}: "
                            f"{(result.stderr or result.stdout).strip()}")
    return result.stdout


def apply_sample_config(kubeconfig: Path, deploy: Path) -> subprocess.CompletedProcess[str]:
    """The sample SriovOperatorConfig; refused (failurePolicy Fail) until the operator's webhook serves."""
    return run_kubectl(kubeconfig, "apply", "-f", str(deploy / SAMPLE_CONFIG), timeout=30)


def publish_cluster_facts(client: AdminClient, settings: dict[str, object], members: list[NodeLayout]) -> None:
    """ConfigMap kube-system/vdpa-sim-cluster: what a simulated node's kubelet needs and deploy/ cannot say
    (where the API server calls webhook Services, the pod network, each node's root and OVSDB), readable with
    kubectl too."""
    nodes = {node.name: {"netns": node.netns, "root": str(node.root), "podCIDR": str(node.pod_cidr),
                         "gateway": str(node.gateway), "ovsdb": node.ovsdb_remote} for node in members}
    data = {"apiServer": str(settings.get("apiserver", "")),
            "webhookServices": json.dumps(settings.get("webhook_services", {}), sort_keys=True),
            "podNetwork": str(POD_NETWORK), "nodes": json.dumps(nodes, sort_keys=True)}
    client.create(f"/api/v1/namespaces/{FACTS_NAMESPACE}/configmaps", {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": FACTS_NAME, "namespace": FACTS_NAMESPACE},
        "data": data})


SIM_MODEL = SimModel("ConnectX-6 Dx", "veth", "ovs")
"""What a simulated node really is (its vDPA netdevs are veths, its datapath OVS's userspace one): `vdpactl
verify` reads it from the Node and prints it beside what the kernel shows, rather than pass what it cannot."""


def label_node(client: AdminClient, node: NodeLayout) -> None:
    client.patch_node(node.name, {"metadata": {
        "labels": NODE_LABELS,
        "annotations": {NODE_SUBNETS: json.dumps({"default": str(node.pod_cidr)}),
                        SIM_MODEL_ANNOTATION: SIM_MODEL.annotation()},
    }})


