"""The CNI on a node, as root: the simulated host's vDPA netdevs and representors are real veth pairs, OVS is a
private userspace ovs-vswitchd, pods are network namespaces. Two pods ping each other through their
representors and br-int; CHECK, DEL (twice), ADD again; vhost; delegated and node IPAM; bad input; an ADD that
fails at any step leaves the node as it was."""

from __future__ import annotations

import errno
import subprocess
from pathlib import Path
from typing import Any

import pytest

from contract.wait import wait_until
from integration.cni.cni_rig import PARTITION_SPEC, Node, config, node
from integration.host.linux_netns import ip_json, needs_root
from vdpa_operator.cni.errors import DEVICE_MISMATCH, HOST_FAILURE, INVALID_CONFIG, INVALID_ENVIRONMENT

pytestmark = needs_root
VF_A, VF_B = "0000:65:00.2", "0000:65:00.3"


def links_of(rig: Node) -> dict[str, tuple[str, int, bool]]:
    """The node netns's links the simulated host made: name → (MAC, MTU, up)."""
    return {link["ifname"]: (link["address"], link["mtu"], "UP" in link["flags"])
            for link in ip_json("link", "show", netns=rig.netns) if link["ifname"].startswith(("eth", "ens"))}


def in_pod(netns: str, *args: str) -> Any:
    """`ip -j ARGS` parsed, in the pod netns at path `netns`."""
    return ip_json(*args, netns=Path(netns).name)


def pod_links(netns: str) -> list[str]:
    return [link["ifname"] for link in in_pod(netns, "link", "show")]


def address_of(result: dict[str, Any]) -> str:
    return str(result["ips"][0]["address"]).split("/")[0]


def ping(rig: Node, netns: str, address: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", Path(netns).name, "ping", "-c", "2", "-W", "2", address],
                          capture_output=True, text=True, check=False)


def test_two_pods_ping_through_their_representors_and_ovs(tmp_path: Path) -> None:
    with node(tmp_path) as rig:
        before = links_of(rig)
        a, b = rig.pod(), rig.pod()
        code, first = rig.cni("ADD", config(deviceID=VF_A), container="ca", netns=a, uid="uid-a")
        assert code == 0, first
        code, second = rig.cni("ADD", config(deviceID=VF_B), container="cb", netns=b, pod=("vdpa", "vdpa-pod2"))
        assert code == 0, second
        # 1.0.0 result: the representor on the host, the pod's eth0 with its sandbox, the IP on interface 1
        assert [i["name"] for i in first["interfaces"]] == ["ens1f0_0", "eth0"]
        assert first["interfaces"][1]["sandbox"] == a and "mtu" not in first["interfaces"][1]
        assert first["ips"] == [{"address": "10.56.1.2/16", "gateway": "10.56.0.1", "interface": 1}]
        assert pod_links(a) == ["lo", "eth0"]
        [pod_eth0] = in_pod(a, "addr", "show", "eth0")
        assert pod_eth0["address"] == first["interfaces"][1]["mac"] and "UP" in pod_eth0["flags"]
        # OVN-Kubernetes' MAC for 10.56.1.2 (0a:58 and the address), the VF's own kept to put back at DEL
        assert pod_eth0["address"] == "0a:58:0a:38:01:02"
        ports = rig.ports()
        assert ports["ens1f0_0"] == {
            "iface-id": "vdpa_vdpa-pod1", "iface-id-ver": "uid-a", "attached_mac": pod_eth0["address"],
            "ip_addresses": "10.56.1.2/16", "sandbox": "ca", "pod-if-name": "eth0", "vf-netdev-name": "eth0",
            "vdpa-cni-network": "ovn-kubernetes-a", "vdpa-cni-device": VF_A, "vdpa-cni-ipam": "node",
            "vdpa-cni-saved-mac": ports["ens1f0_0"]["vdpa-cni-saved-mac"]}
        assert ports["ens1f0_0"]["vdpa-cni-saved-mac"] != pod_eth0["address"]
        # no MTU saved to restore: this ADD did not change it
        assert rig.ovs.vsctl("get", "Port", "ens1f0_0", "other_config").strip() == '{transient="true"}'
        assert links_of(rig)["ens1f0_0"][2], "the representor is up"
        result = ping(rig, a, address_of(second))
        assert result.returncode == 0, result.stdout + result.stderr

        code, _ = rig.cni("CHECK", config(deviceID=VF_A, prevResult=first), container="ca", netns=a)
        assert code == 0
        rig.host.links.rename("eth0", "net9", a)  # through the Host: the simulated kernel sees it
        code, failed = rig.cni("CHECK", config(deviceID=VF_A, prevResult=first), container="ca", netns=a)
        assert (code, failed["code"]) == (1, HOST_FAILURE) and f"eth0 is missing from {a}" in failed["msg"]
        rig.host.links.rename("net9", "eth0", a)

        for _ in range(2):  # DEL is idempotent
            code, out = rig.cni("DEL", config(deviceID=VF_A, prevResult=first), container="ca", netns=a)
            assert (code, out) == (0, {})
        assert pod_links(a) == ["lo"]
        assert "ens1f0_0" not in rig.ports()
        assert links_of(rig)["eth0"] == before["eth0"], "back under its own name, with its MAC and MTU, down"
        code, again = rig.cni("ADD", config(deviceID=VF_A), container="ca2", netns=a)
        assert code == 0 and address_of(again) == "10.56.1.2", "the released address is handed out again"
        assert ping(rig, a, address_of(second)).returncode == 0


def test_mac_and_mtu_are_set_and_del_puts_back_what_add_changed(tmp_path: Path) -> None:
    with node(tmp_path) as rig:
        before = links_of(rig)
        a = rig.pod()
        code, out = rig.cni("ADD", config(deviceID=VF_A, mac="02:00:00:aa:00:01", mtu=1400), container="cm",
                            netns=a)
        assert code == 0, out
        [pod_eth0] = in_pod(a, "link", "show", "eth0")
        assert (pod_eth0["address"], pod_eth0["mtu"]) == ("02:00:00:aa:00:01", 1400)
        assert links_of(rig)["ens1f0_0"][1] == 1400, "the representor carries the pod's MTU"
        ids = rig.ports()["ens1f0_0"]
        assert (ids["vdpa-cni-saved-mac"], ids["vdpa-cni-saved-mtu"], ids["vdpa-cni-saved-rep-mtu"]) == (
            before["eth0"][0], str(before["eth0"][1]), str(before["ens1f0_0"][1]))
        code, _ = rig.cni("DEL", config(deviceID=VF_A, mac="02:00:00:aa:00:01", mtu=1400), container="cm", netns=a)
        assert code == 0
        after = links_of(rig)
        assert after["eth0"] == before["eth0"], "its own MAC and MTU again, down"
        assert after["ens1f0_0"][1] == before["ens1f0_0"][1]


def test_del_without_prevresult_netns_or_port_succeeds(tmp_path: Path) -> None:
    with node(tmp_path) as rig:
        code, out = rig.cni("DEL", config(version="0.3.1"), container="never-added")
        assert (code, out) == (0, {})
        a = rig.pod()
        assert rig.cni("ADD", config(deviceID=VF_A), container="ca", netns=a)[0] == 0
        subprocess.run(["ip", "netns", "del", Path(a).name], check=True)
        rig.pods.remove(Path(a).name)
        code, _ = rig.cni("DEL", config(deviceID=VF_A), container="ca", netns=a)
        assert code == 0 and "ens1f0_0" not in rig.ports()


def test_vhost_nothing_moves_the_mac_goes_to_the_vdpa_device(tmp_path: Path) -> None:
    with node(tmp_path, PARTITION_SPEC) as rig:
        a = rig.pod()
        before = links_of(rig)
        code, out = rig.cni("ADD", config(deviceID=VF_A, mac="02:00:00:aa:bb:01"), container="cv", netns=a)
        assert code == 0, out
        assert out["interfaces"][1] == {"name": "eth0", "mac": "02:00:00:aa:bb:01", "sandbox": a}
        assert pod_links(a) == ["lo"], "nothing enters the pod's netns for vhost"
        assert rig.host.vdpa.net_config(f"vdpa:{VF_A}").mac == "02:00:00:aa:bb:01"
        assert rig.ports()["ens1f0_0"]["attached_mac"] == "02:00:00:aa:bb:01"
        assert "vf-netdev-name" not in rig.ports()["ens1f0_0"]
        assert rig.cni("DEL", config(deviceID=VF_A), container="cv", netns=a)[0] == 0
        assert links_of(rig) == before and rig.ports() == {}


def test_vhost_on_a_kernel_without_attr_set_sets_the_vf_admin_mac(tmp_path: Path) -> None:
    with node(tmp_path, PARTITION_SPEC) as rig:
        rig.kernel.faults.inject("vdpa_attr_set", errno=errno.EOPNOTSUPP, target=f"vdpa:{VF_A}")
        code, out = rig.cni("ADD", config(deviceID=VF_A, mac="02:00:00:aa:bb:02"), container="cv", netns=rig.pod())
        assert code == 0, out
        assert rig.host.links.vf_macs("ens1f0")[0] == "02:00:00:aa:bb:02"


@pytest.mark.parametrize("version", ["0.3.1", "1.0.0", "1.1.0"])
def test_static_and_host_local_ipam_and_the_result_shape_of_each_version(tmp_path: Path, version: str) -> None:
    with node(tmp_path) as rig:
        a, b = rig.pod(), rig.pod()
        static = config(version=version, deviceID=VF_A, mtu=1400, ipam={
            "type": "static", "addresses": [{"address": "192.168.7.10/24", "gateway": "192.168.7.1"}],
            "routes": [{"dst": "10.99.0.0/16", "gw": "192.168.7.1"}]})
        code, out = rig.cni("ADD", static, container="cs", netns=a)
        assert code == 0, out
        ip = {"address": "192.168.7.10/24", "gateway": "192.168.7.1", "interface": 1}
        assert out["ips"] == [{"version": "4", **ip} if version == "0.3.1" else ip]
        assert out["routes"] == [{"dst": "10.99.0.0/16", "gw": "192.168.7.1"}]
        assert ("mtu" in out["interfaces"][1]) == (version == "1.1.0")
        assert out["interfaces"][1].get("pciID") == (VF_A if version == "1.1.0" else None)
        assert "10.99.0.0/16 via 192.168.7.1" in rig.ip(a, "ip", "route")
        assert "mtu 1400" in rig.ip(a, "ip", "link", "show", "eth0")
        local = config(version=version, name="hl", deviceID=VF_B, ipam={
            "type": "host-local", "subnet": "192.168.8.0/24", "dataDir": str(tmp_path / "host-local")})
        leases = tmp_path / "host-local" / "hl"  # host-local keeps one file per address under dataDir/<network>
        code, out = rig.cni("ADD", local, container="ch", netns=b)
        assert code == 0 and out["ips"][0]["address"] == "192.168.8.2/24"
        assert [p.name for p in leases.glob("192.168.8.*")] == ["192.168.8.2"], "host-local leased it there"
        if version != "0.3.1":
            assert rig.cni("CHECK", {**local, "prevResult": out}, container="ch", netns=b)[0] == 0
        assert rig.cni("DEL", local, container="ch", netns=b)[0] == 0
        assert not list(leases.glob("192.168.8.*")), "host-local released it"


def test_check_is_refused_below_0_4_0(tmp_path: Path) -> None:
    with node(tmp_path) as rig:
        code, out = rig.cni("CHECK", config(version="0.3.1", prevResult={}), container="c", netns=rig.pod())
        assert (code, out["code"], out["msg"]) == (1, 1, "config version does not allow CHECK")


@pytest.mark.parametrize(("device", "ifname", "netns", "code", "message"), [
    ("../../sys/bus/pci/devices/0000:65:00.2", "eth0", "", INVALID_CONFIG, "deviceID is not a PCI address"),
    ("0000:65:00.0", "eth0", "", DEVICE_MISMATCH, "0000:65:00.0 has no vDPA device"),
    (None, "eth0", "", INVALID_CONFIG, "deviceID missing"),
    (VF_A, "eth0/../x", "", INVALID_ENVIRONMENT, "interface name contains / or : or whitespace characters"),
    (VF_A, "a-very-long-ifname", "", INVALID_ENVIRONMENT, "interface name is too long"),
    (VF_A, "eth0", "/tmp", INVALID_ENVIRONMENT, "CNI_NETNS is not a network namespace"),
])
def test_bad_input_is_a_cni_error_and_changes_nothing(tmp_path: Path, device: str | None, ifname: str, netns: str,
                                                      code: int, message: str) -> None:
    with node(tmp_path) as rig:
        before = (links_of(rig), rig.ports())
        conf = config(**({"deviceID": device} if device is not None else {}))
        exit_code, out = rig.cni("ADD", conf, container="cbad", netns=netns or rig.pod(), ifname=ifname)
        assert (exit_code, out["code"]) == (1, code), out
        assert message in out["msg"] + out.get("details", "")
        assert (links_of(rig), rig.ports()) == before
        assert not list((tmp_path / "ipam").rglob("10.*")), "no address was leased"


def _clean_state(rig: Node) -> tuple[Any, ...]:
    return links_of(rig), rig.ports(), sorted(p.name for p in (rig.root / "ipam").rglob("10.*"))


def _steps(rig: Node, op: str, conf: dict[str, Any], netns: str) -> int:
    """How many `op` operations a clean ADD makes (a fault that never comes counts them), undone by DEL."""
    rig.kernel.faults.inject(op, errno=errno.EIO, after=1000)
    assert rig.cni("ADD", conf, container="probe", netns=netns)[0] == 0
    [probe] = rig.kernel.faults.list()
    rig.kernel.faults.clear()
    assert rig.cni("DEL", conf, container="probe", netns=netns)[0] == 0
    return 1000 - probe.after


@pytest.mark.parametrize(("kind", "ops"), [("virtio", {"link_set": 7}), ("vhost", {"link_set": 2, "vdpa_attr_set": 1})])
def test_an_add_failing_at_any_step_leaves_the_node_as_it_was(tmp_path: Path, kind: str, ops: dict[str, int]) -> None:
    """Each kernel change an ADD makes fails once in turn (the sim's fault injection, `after` = the step); then
    OVN is waited for in vain after everything is plugged. Every time the node ends as it began."""
    spec = [PARTITION_SPEC] if kind == "vhost" else []
    conf = config(deviceID=VF_A, mtu=1450, mac="02:00:00:aa:bb:03")
    with node(tmp_path, *spec) as rig:
        clean = _clean_state(rig)
        netns = rig.pod()
        for op, at_least in ops.items():
            steps = _steps(rig, op, conf, netns)
            assert _clean_state(rig) == clean
            assert steps >= at_least, f"{op}: {steps}"
            for step in range(steps):
                rig.kernel.faults.inject(op, errno=errno.EIO, after=step)
                code, out = rig.cni("ADD", conf, container=f"fail{step}", netns=netns)
                assert (code, out.get("code")) == (1, HOST_FAILURE), (op, step, out)
                assert "EIO" in out["msg"] + out.get("details", ""), out
                rig.kernel.faults.clear()
                assert _clean_state(rig) == clean, f"{op} step {step}: {out}"
                assert pod_links(netns) == ["lo"]
    with node(tmp_path / "ovn", *spec, ovn=True, ovn_timeout=0.3) as rig:
        clean = _clean_state(rig)
        code, out = rig.cni("ADD", conf, container="novn", netns=rig.pod())
        assert (code, out["code"]) == (1, 11) and "OVN did not install flows" in out["msg"]
        assert _clean_state(rig) == clean


def test_gc_removes_attachments_the_runtime_no_longer_lists(tmp_path: Path) -> None:
    with node(tmp_path) as rig:
        a, b = rig.pod(), rig.pod()
        assert rig.cni("ADD", config(version="1.1.0", deviceID=VF_A), container="keep", netns=a)[0] == 0
        assert rig.cni("ADD", config(version="1.1.0", deviceID=VF_B), container="stale", netns=b,
                       pod=("vdpa", "gone"))[0] == 0
        gc = config(version="1.1.0", **{"cni.dev/valid-attachments": [{"containerID": "keep", "ifname": "eth0"}]})
        code, out = rig.cni("GC", gc)
        assert (code, out) == (0, {})
        assert list(rig.ports()) == ["ens1f0_0"]
        assert [p.name for p in (tmp_path / "ipam").rglob("10.*")] == ["10.56.1.2"]
        assert rig.cni("GC", config(version="1.0.0"))[1]["msg"] == "config version does not allow GC"


def test_status(tmp_path: Path) -> None:
    with node(tmp_path) as rig:
        assert rig.cni("STATUS", config(version="1.1.0")) == (0, {})
        rig.ovs.vsctl("del-br", "br-int")
        # the server's OVSDB view learns of another client's change a moment later
        wait_until(lambda: rig.cni("STATUS", config(version="1.1.0"))[0] != 0, timeout=5, interval=0.02,
                   what="STATUS to fail once br-int is gone")
        code, out = rig.cni("STATUS", config(version="1.1.0"))
        assert (code, out["code"], out["msg"]) == (1, 50, "OVS bridge br-int does not exist")


def test_an_interface_name_taken_in_the_pod_is_refused(tmp_path: Path) -> None:
    with node(tmp_path) as rig:
        a = rig.pod()
        assert rig.cni("ADD", config(deviceID=VF_A), container="c1", netns=a)[0] == 0
        before = (links_of(rig), rig.ports())
        code, out = rig.cni("ADD", config(deviceID=VF_B), container="c2", netns=a, pod=("vdpa", "other"))
        assert (code, out["code"]) == (1, INVALID_CONFIG) and f"eth0 already exists in {a}" in out["msg"]
        assert (links_of(rig), rig.ports()) == before
