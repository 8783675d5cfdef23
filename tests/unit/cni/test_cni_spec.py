"""The CNI protocol layer: libcni skel's checks on the environment and the config, each version's verbs, and the
result written in the config's version."""

from __future__ import annotations

import ipaddress
import json

import pytest

from vdpa_operator.cni.errors import CniError
from vdpa_operator.cni.ipam import IpamResult, IpConfig, RouteConfig
from vdpa_operator.cni.spec import Interface, Result, parse_request, parse_result, version_result

ADD_ENV = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "abc123", "CNI_NETNS": "/var/run/netns/p", "CNI_IFNAME": "eth0",
           "CNI_PATH": "/opt/cni/bin",
           "CNI_ARGS": "IgnoreUnknown=true;K8S_POD_NAMESPACE=vdpa;K8S_POD_NAME=vdpa-pod1;K8S_POD_UID=u-1"}


def conf(version: str = "1.0.0", **extra: object) -> bytes:
    return json.dumps({"cniVersion": version, "name": "ovn-kubernetes-a", "type": "ovn-k8s-cni-overlay",
                       **extra}).encode()


def error(env: dict[str, str], stdin: bytes) -> tuple[int, str]:
    with pytest.raises(CniError) as failure:
        parse_request(env, stdin)
    return failure.value.code, failure.value.msg


def test_a_multus_delegate_request() -> None:
    request = parse_request(ADD_ENV, conf(deviceID="0000:65:00.4", ipam={}, dns={}, mtu=1400,
                                         runtimeConfig={"mac": "0a:58:00:00:00:01",
                                                        "CNIDeviceInfoFile": "/var/run/x.json"}))
    assert request.pod == ("vdpa", "vdpa-pod1") and request.args["K8S_POD_UID"] == "u-1"
    c = request.config
    assert (c.device_id, c.mac, c.mtu, c.device_info_file, dict(c.ipam)) == (
        "0000:65:00.4", "0a:58:00:00:00:01", 1400, "/var/run/x.json", {})
    assert request.env["CNI_PATH"] == "/opt/cni/bin"


def test_device_id_from_runtime_config_when_not_at_the_top() -> None:
    assert parse_request(ADD_ENV, conf(runtimeConfig={"deviceID": "0000:65:00.5"})).config.device_id == \
        "0000:65:00.5"


@pytest.mark.parametrize(("env", "code", "msg"), [
    ({"CNI_COMMAND": ""}, 4, "required env variables [CNI_COMMAND] missing"),
    ({"CNI_COMMAND": "MOVE"}, 4, "unknown CNI_COMMAND 'MOVE'"),
    ({"CNI_NETNS": "", "CNI_IFNAME": ""}, 4, "required env variables [CNI_NETNS,CNI_IFNAME] missing"),
    ({"CNI_CONTAINERID": "-abc"}, 4, "invalid characters in containerID"),
    ({"CNI_IFNAME": "eth0 1"}, 4, "interface name contains / or : or whitespace characters"),
    ({"CNI_IFNAME": "x" * 16}, 4, "interface name is too long"),
    ({"CNI_IFNAME": "é" * 8}, 4, "interface name is too long"),  # 16 bytes: Go's len, and IFNAMSIZ, count bytes
    ({"CNI_IFNAME": ".."}, 4, "interface name is . or .."),
    ({"CNI_ARGS": "K8S_POD_NAME"}, 4, "invalid CNI_ARGS pair"),
])
def test_the_environment_is_checked_as_skel_checks_it(env: dict[str, str], code: int, msg: str) -> None:
    assert error({**ADD_ENV, **env}, conf()) == (code, msg)


def test_del_needs_no_netns_and_version_no_env_but_the_command() -> None:
    del_env = {**ADD_ENV, "CNI_COMMAND": "DEL", "CNI_NETNS": ""}
    assert parse_request(del_env, conf(version="0.3.1")).netns == ""
    assert parse_request({"CNI_COMMAND": "VERSION"}, b'{"cniVersion":"0.4.0"}').config.cni_version == "0.4.0"


@pytest.mark.parametrize(("command", "version", "msg"), [
    ("CHECK", "0.3.1", "config version does not allow CHECK"),
    ("STATUS", "1.0.0", "config version does not allow STATUS"),
    ("GC", "1.0.0", "config version does not allow GC"),
    ("ADD", "0.2.0", "incompatible CNI versions"),
    ("ADD", "2.0.0", "incompatible CNI versions"),
])
def test_verbs_each_version_has(command: str, version: str, msg: str) -> None:
    env = {**ADD_ENV, "CNI_COMMAND": command}
    assert error(env, conf(version=version)) == (1, msg)


@pytest.mark.parametrize(("stdin", "code", "msg"), [
    (b"not json", 6, "error unmarshall network config"),
    (b"[1]", 6, "error unmarshall network config: expected a JSON object"),
    (b'{"cniVersion": "1.0.0"}', 7, "missing network name"),
    (b'{"cniVersion": "1.0.0", "name": "a b"}', 7, "invalid characters found in network name"),
    (b'{"cniVersion": "x", "name": "n"}', 6, "invalid cniVersion 'x'"),
    (conf(mtu=20), 7, "invalid mtu"),
    (conf(ipam="host-local"), 7, "ipam must be an object"),
    (conf(deviceID=7), 7, "deviceID must be a string"),
])
def test_bad_configs(stdin: bytes, code: int, msg: str) -> None:
    got_code, got_msg = error(ADD_ENV, stdin)
    assert got_code == code and got_msg.startswith(msg)


def test_gc_reads_both_attachment_keys() -> None:
    env = {"CNI_COMMAND": "GC", "CNI_PATH": "/opt/cni/bin"}
    request = parse_request(env, conf(version="1.1.0", **{
        "cni.dev/valid-attachments": [{"containerID": "a", "ifname": "eth0"}],
        "cni.dev/attachments": [{"containerID": "b", "ifname": "net1"}]}))
    assert request.config.valid_attachments == (("a", "eth0"), ("b", "net1"))


RESULT = Result.of(
    [Interface("ens1f0_2", "aa:bb:cc:00:00:01"), Interface("eth0", "0a:58:0a:38:01:05", "/var/run/netns/p", 1400,
                                                         "0000:65:00.4")],
    IpamResult(ips=(IpConfig(ipaddress.ip_interface("10.56.1.5/16"), ipaddress.ip_address("10.56.0.1")),),
               routes=(RouteConfig(ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_address("10.56.0.1"), mtu=1400),)),
    1)


def test_results_in_each_versions_shape() -> None:
    assert RESULT.to_json("0.3.1") == {
        "cniVersion": "0.3.1",
        "interfaces": [{"name": "ens1f0_2", "mac": "aa:bb:cc:00:00:01"},
                       {"name": "eth0", "mac": "0a:58:0a:38:01:05", "sandbox": "/var/run/netns/p"}],
        "ips": [{"version": "4", "address": "10.56.1.5/16", "gateway": "10.56.0.1", "interface": 1}],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.56.0.1"}]}
    assert RESULT.to_json("1.0.0")["ips"] == [{"address": "10.56.1.5/16", "gateway": "10.56.0.1", "interface": 1}]
    assert RESULT.to_json("1.0.0")["dns"] == {}
    new = RESULT.to_json("1.1.0")
    assert new["interfaces"][1] == {"name": "eth0", "mac": "0a:58:0a:38:01:05", "mtu": 1400,
                                    "sandbox": "/var/run/netns/p", "pciID": "0000:65:00.4"}
    assert new["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.56.0.1", "mtu": 1400}]


@pytest.mark.parametrize("version", ["0.3.1", "0.4.0", "1.0.0", "1.1.0"])
def test_a_result_reads_back_as_prev_result(version: str) -> None:
    again = parse_result(RESULT.to_json(version))
    assert [i.name for i in again.interfaces] == ["ens1f0_2", "eth0"]
    assert again.ips == RESULT.ips
    assert [str(r.dst) for r in again.routes] == ["0.0.0.0/0"]


def test_version_answer() -> None:
    assert version_result("0.4.0") == {"cniVersion": "0.4.0",
                                       "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]}
