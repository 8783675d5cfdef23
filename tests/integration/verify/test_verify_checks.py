"""verify's checks on pods that are real network namespaces behind a real userspace OVS, read through the embedded
API server: `simulated` exactly where the node declares a model and the kernel shows what it models, `fail`
where it does not, never a made-up virtio_net or offloaded:yes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from integration.host.linux_netns import run
from integration.verify.conftest import (
    DAEMON_POD,
    NODE,
    OPERATOR_NS,
    POD_NS,
    PODS,
    VerifyCluster,
    ethtool_driver,
    vf_status,
)
from vdpa_operator.verify.ethtool import parse_driver_info
from vdpa_operator.verify.flows import parse_dump_flows
from vdpa_operator.verify.model import SIM_MODEL_ANNOTATION, SimModel
from vdpa_operator.verify.report import Record, exit_code, failures, to_json
from vdpa_operator.verify.run import Outcome, run_verify

MODEL = SimModel("ConnectX-6 Dx", "veth", "ovs")
VFS = [vf_status(p.vf, i) for i, p in enumerate(PODS)]


@pytest.fixture
def cluster(verify_cluster: VerifyCluster) -> Iterator[VerifyCluster]:
    verify_cluster.set_node_annotations({SIM_MODEL_ANNOTATION: MODEL.annotation()})
    verify_cluster.set_vf_status(VFS)
    verify_cluster.exec.calls.clear()
    yield verify_cluster


def verify(cluster: VerifyCluster, *names: str) -> Outcome:
    return asyncio.run(run_verify(cluster.kubeconfig, cluster.exec, operator_namespace=OPERATOR_NS,
                                  resource_prefix="openshift.io", namespace=POD_NS if names else None, names=names))


def by_check(records: list[Record], check: str) -> dict[str, Record]:
    return {r.pod: r for r in records if r.check == check}


def test_on_a_simulated_node_what_hardware_alone_shows_is_simulated_and_the_rest_passes(
        cluster: VerifyCluster) -> None:
    outcome = verify(cluster)
    records = outcome.records
    assert sorted(r.pod for r in records if r.check == "driver") == [f"{POD_NS}/{p.name}" for p in PODS]
    for pod in PODS:
        driver = by_check(records, "driver")[f"{POD_NS}/{pod.name}"]
        assert driver.status == "simulated", driver
        # What the kernel says, not what hardware would: the oracle is ethtool itself.
        assert driver.observed.startswith(f"driver {ethtool_driver(cluster.pod_netns[pod.name])},")
        assert "virtio_net" not in driver.observed
        assert driver.model and f"vdpa:{pod.vf}" in driver.model and "virtio_vdpa" in driver.model
        assert driver.detail["allocated"] == [pod.vf]
    pings = [r for r in records if r.check == "ping"]
    assert len(pings) == 2 and all(r.status == "pass" for r in pings), pings
    flows = by_check(records, "flows")
    for pod in PODS:
        record = flows[f"{POD_NS}/{pod.name}"]
        assert record.status == "simulated", record
        assert record.detail["flows"] and all(not f["offloaded"] and f["dp"] == "ovs" for f in record.detail["flows"])
        assert "offloaded:yes" not in record.observed.replace("0 offloaded:yes", "")
        assert record.model == MODEL.flows_view()
    assert exit_code(records) == 0


def test_the_vf_comes_from_the_annotation_else_from_the_pods_env(cluster: VerifyCluster) -> None:
    verify(cluster)
    ran = {(pod, command[0]) for _, pod, command, _ in cluster.exec.calls}
    annotated, from_env = PODS
    assert (annotated.name, "env") not in ran and (from_env.name, "env") in ran
    assert (from_env.name, "cat") in ran  # its MAC, for the flows, from its sysfs
    daemon_calls = [c for c in cluster.exec.calls if c[1] == DAEMON_POD]
    assert daemon_calls == [(OPERATOR_NS, DAEMON_POD, ("ovs-appctl", "dpctl/dump-flows", "-m"), "config-daemon")]


def test_on_a_real_node_the_same_kernel_answers_are_failures_that_say_why(cluster: VerifyCluster) -> None:
    cluster.set_node_annotations({SIM_MODEL_ANNOTATION: None})
    records = verify(cluster, PODS[0].name).records
    statuses = {r.check: r.status for r in records}
    assert statuses == {"driver": "fail", "flows": "fail"}  # one pod named: nobody to ping
    assert all(r.model is None for r in records)
    assert exit_code(records) == 1
    lines = failures(records)
    assert lines[0].startswith(f"driver check failed for pod {POD_NS}/{PODS[0].name} on node {NODE}: ethtool -i eth0 "
                               f"shows driver veth, bus-info (empty), expected driver virtio_net, bus-info vdpa:")
    assert "none of the pod's" in lines[1] and "offloaded" in lines[1]


def test_a_simulated_node_still_fails_a_vf_its_nodestate_does_not_report_as_vdpa(cluster: VerifyCluster) -> None:
    cluster.set_vf_status([vf_status(PODS[0].vf, 0, vdpa_type=""), VFS[1]])
    records = verify(cluster).records
    driver = by_check(records, "driver")
    assert driver[f"{POD_NS}/{PODS[0].name}"].status == "fail"
    assert f"NodeState {NODE} status does not list" in driver[f"{POD_NS}/{PODS[0].name}"].reason
    assert driver[f"{POD_NS}/{PODS[1].name}"].status == "simulated"
    assert exit_code(records) == 1


def test_json_records_carry_check_pod_node_status_observed_and_model(cluster: VerifyCluster) -> None:
    records = json.loads(to_json(verify(cluster).records))
    assert {r["check"] for r in records} == {"driver", "ping", "flows"}
    for record in records:
        assert record["node"] == NODE and record["status"] in {"pass", "simulated"}
        assert record["observed"] and (record["model"] is not None) == (record["status"] == "simulated")


def test_the_parsers_read_what_a_real_veth_and_a_real_userspace_ovs_print(cluster: VerifyCluster) -> None:
    netns = cluster.pod_netns[PODS[0].name]
    info = parse_driver_info(run("ethtool", "-i", "eth0", netns=netns))
    assert (info.driver, info.bus_info) == ("veth", "")
    run("ping", "-c", "1", "-W", "2", PODS[1].ip, netns=netns)
    text = cluster.ovs.run("ovs-appctl", "-t", str(cluster.ovs.directory / "ovs-vswitchd.ctl"), "dpctl/dump-flows",
                           "-m")
    flows = parse_dump_flows(text)
    assert len(flows) == sum(1 for line in text.splitlines() if line.startswith("ufid:")) > 0
    mac = run("cat", "/sys/class/net/eth0/address", netns=netns).strip()
    mine = [f for f in flows if f.touches([mac])]
    assert mine and all(f.dp == "ovs" and not f.is_offloaded and f.ufid for f in mine)
    assert any(f.fields("eth").get("src") == mac and f.packets > 0 for f in mine)
