"""Which pods verify checks and which VF each was given, from API objects as the cluster holds them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from vdpa_operator.verify.checks import allocated_from_env
from vdpa_operator.verify.targets import (
    CONFIG_DAEMON_CONTAINER,
    CONFIG_DAEMON_LABEL,
    NETWORK_STATUS_ANNOTATION,
    node_view,
    pod_target,
    select_pods,
    vdpa_resources,
)

RESOURCE = "openshift.io/mlxnics"


def state(vdpa_type: str, resource: str = "mlxnics") -> dict[str, Any]:
    group = {"resourceName": resource, "vfRange": "0-1", **({"vdpaType": vdpa_type} if vdpa_type else {})}
    return {"metadata": {"name": "worker-0"},
            "spec": {"interfaces": [{"pciAddress": "0000:65:00.0", "vfGroups": [group]}]},
            "status": {"interfaces": [{"pciAddress": "0000:65:00.0", "Vfs": [
                {"pciAddress": "0000:65:00.2", "vfID": 0, "vdpaType": vdpa_type}]}]}}


def pod(name: str, *, requests: dict[str, str] | None = None, phase: str = "Running",
        annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "vdpa", "annotations": annotations or {}},
            "spec": {"nodeName": "worker-0", "containers": [{"name": "c", "resources": {"limits": requests or {}}}]},
            "status": {"phase": phase, "podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}, {"ip": "fd00::5"}]}}


def status_annotation(*entries: dict[str, Any]) -> dict[str, str]:
    return {NETWORK_STATUS_ANNOTATION: json.dumps(list(entries))}


def test_only_virtio_groups_are_vdpa_resources_for_the_seeds_checks() -> None:
    assert vdpa_resources([state("virtio"), state("vhost", "dpdk"), state("", "plain")], "openshift.io") == {RESOURCE}


def test_pods_holding_a_vdpa_resource_that_have_not_finished_are_checked() -> None:
    pods = [pod("b", requests={RESOURCE: "1"}), pod("a", requests={RESOURCE: "1"}, phase="Pending"),
            pod("plain"), pod("done", requests={RESOURCE: "1"}, phase="Succeeded")]
    assert [t.name for t in select_pods(pods, {RESOURCE})] == ["a", "b"]
    assert [t.name for t in select_pods(pods, {RESOURCE}, ["plain", "b"])] == ["plain", "b"]


def test_the_vf_comes_from_eth0s_device_info_in_network_status() -> None:
    eth0 = {"name": "kube-system/ovn-kubernetes-a", "interface": "eth0", "mac": "0a:58:0a:00:00:05", "default": True,
            "device-info": {"type": "vdpa", "version": "1.1.0",
                            "vdpa": {"parent-device": "vdpa:0000:65:00.4", "driver": "virtio",
                                     "pci-address": "0000:65:00.4"}}}
    net1 = {"interface": "net1", "device-info": {"type": "pci", "pci": {"pci-address": "0000:65:00.9"}}}
    target = pod_target(pod("p", requests={RESOURCE: "1"}, annotations=status_annotation(net1, eth0)), {RESOURCE})
    assert (target.allocated, target.mac, target.ips) == (("0000:65:00.4",), "0a:58:0a:00:00:05",
                                                          ("10.0.0.5", "fd00::5"))


def test_without_device_info_or_with_a_broken_annotation_the_vf_is_left_to_the_env() -> None:
    for given in (status_annotation({"interface": "eth0", "mac": "x"}), {NETWORK_STATUS_ANNOTATION: "[{"}, {}):
        assert pod_target(pod("p", annotations=given), {RESOURCE}).allocated == ()


def test_the_env_names_the_devices_as_the_device_plugin_sets_them() -> None:
    env = ("PATH=/bin\nPCIDEVICE_OPENSHIFT_IO_MLXNICS=0000:65:00.2,0000:65:00.3\n"
           "PCIDEVICE_OPENSHIFT_IO_MLXNICS_INFO={}\n")
    assert allocated_from_env(env, [RESOURCE]) == ("0000:65:00.2", "0000:65:00.3")
    assert allocated_from_env(env, ["openshift.io/other"]) == ()


def test_a_node_view_has_its_vfs_and_its_running_config_daemon() -> None:
    daemons = [{"metadata": {"name": f"d-{n}-{p}", "labels": dict([CONFIG_DAEMON_LABEL])},
                "spec": {"nodeName": n}, "status": {"phase": p}}
               for n, p in (("worker-1", "Running"), ("worker-0", "Pending"), ("worker-0", "Running"))]
    view = node_view("worker-0", {"metadata": {"name": "worker-0"}}, state("virtio"), daemons)
    assert (view.daemon_pod, view.model, list(view.vfs)) == ("d-worker-0-Running", None, ["0000:65:00.2"])


def test_the_config_daemon_label_and_container_are_those_deploy_gives_it() -> None:
    daemonset = yaml.safe_load((Path(__file__).resolve().parents[3] / "deploy" / "config-daemon.yaml").read_text())
    template = daemonset["spec"]["template"]
    assert template["metadata"]["labels"][CONFIG_DAEMON_LABEL[0]] == CONFIG_DAEMON_LABEL[1]
    assert daemonset["spec"]["selector"]["matchLabels"] == dict([CONFIG_DAEMON_LABEL])
    assert CONFIG_DAEMON_CONTAINER in [c["name"] for c in template["spec"]["containers"]]
