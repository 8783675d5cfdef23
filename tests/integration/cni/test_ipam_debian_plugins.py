"""DelegatedIpam with Debian's own IPAM plugins (containernetworking-plugins 1.1.1: host-local and static, which
support CNI versions up to 1.0.0): ADD, CHECK and DEL with 0.3.1, 1.0.0 and 1.1.0 configs (1.1.0 through the
version fallback), the spec's environment with CNI_ARGS, host-local's store in a tmp dir."""

from __future__ import annotations

import json
from ipaddress import ip_address, ip_interface, ip_network
from pathlib import Path
from typing import Any

import pytest

from vdpa_operator.cni.errors import CniError
from vdpa_operator.cni.ipam import DelegatedIpam, DnsConfig, IpamResult, IpConfig, RouteConfig
from vdpa_operator.cni.ipam_result import version_key

CNI_DIR = Path("/usr/lib/cni")
pytestmark = pytest.mark.skipif(not (CNI_DIR / "host-local").is_file(),
                                reason="Debian's CNI plugins are not installed (/usr/lib/cni/host-local is absent): "
                                       "apt-get install containernetworking-plugins, or run `make test` as root")
VERSIONS = ["0.3.1", "1.0.0", "1.1.0"]
CNI_PATH = f"/nonexistent:{CNI_DIR}"


def env(container: str, cni_args: str = "") -> dict[str, str]:
    args = "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod-a;K8S_POD_INFRA_CONTAINER_ID=" + container
    return {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": container, "CNI_NETNS": f"/var/run/netns/{container}",
            "CNI_IFNAME": "net1", "CNI_ARGS": f"{args};{cni_args}" if cni_args else args, "CNI_PATH": CNI_PATH}


def host_local(version: str, data_dir: Path, **extra: Any) -> dict[str, Any]:
    return {"cniVersion": version, "name": "vdpa-net", "type": "vdpa-cni", "resourceName": "openshift.io/mlxnics",
            "ipam": {"type": "host-local", "dataDir": str(data_dir),
                     "ranges": [[{"subnet": "10.56.0.0/16", "rangeStart": "10.56.1.2", "rangeEnd": "10.56.1.254",
                                  "gateway": "10.56.0.1"}]],
                     "routes": [{"dst": "192.168.0.0/16", "gw": "10.56.0.254"}]},
            **extra}


def encoded(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def prev_result(version: str, result: IpamResult) -> dict[str, Any]:
    """What the runtime would pass as prevResult: our result, with the interface, in the config's version."""
    legacy = version_key(version) < (1, 0, 0)
    ips = [{**({"version": str(ip.address.version)} if legacy else {}), "address": str(ip.address),
            "gateway": str(ip.gateway), "interface": 0} for ip in result.ips]
    return {"cniVersion": version, "interfaces": [{"name": "net1", "sandbox": "/var/run/netns/c1"}], "ips": ips,
            "routes": [{"dst": str(route.dst), "gw": str(route.gw)} for route in result.routes]}


@pytest.mark.parametrize("version", VERSIONS)
def test_host_local_add_check_del(tmp_path: Path, version: str) -> None:
    ipam = DelegatedIpam("host-local", CNI_PATH)
    leases = tmp_path / "vdpa-net"
    result = ipam.add(env("c1"), encoded(host_local(version, tmp_path)))
    assert result == IpamResult(ips=(IpConfig(ip_interface("10.56.1.2/16"), ip_address("10.56.0.1")),),
                                routes=(RouteConfig(ip_network("192.168.0.0/16"), ip_address("10.56.0.254")),))
    assert (leases / "10.56.1.2").read_text().split() == ["c1", "net1"]
    assert ipam.add(env("c2"), encoded(host_local(version, tmp_path))).ips[0].address == ip_interface("10.56.1.3/16")

    checked = encoded(host_local(version, tmp_path, prevResult=prev_result(version, result)))
    ipam.check(env("c1"), checked)
    if version != "0.3.1":  # a 0.3.1 config has no CHECK, so none runs (and none can fail)
        with pytest.raises(CniError, match="Failed to find address added by container c3") as unknown:
            ipam.check(env("c3"), checked)
        assert unknown.value.code == 999  # host-local's own code, passed on
        assert unknown.value.msg.startswith("IPAM plugin host-local CHECK: ")

    ipam.delete(env("c1"), checked)
    assert not (leases / "10.56.1.2").exists()
    ipam.delete(env("c1"), checked)  # DEL twice is no error
    assert (leases / "10.56.1.3").exists()
    if version == "1.1.0":
        assert ipam.versions.get(str(CNI_DIR / "host-local")) == ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0")


def test_cni_args_reach_the_plugin(tmp_path: Path) -> None:
    ipam = DelegatedIpam("host-local", CNI_PATH)
    result = ipam.add(env("c1", "IP=10.56.1.77"), encoded(host_local("1.0.0", tmp_path)))
    assert result.ips[0].address == ip_interface("10.56.1.77/16")
    with pytest.raises(CniError) as taken:
        ipam.add(env("c2", "IP=10.56.1.77"), encoded(host_local("1.0.0", tmp_path)))
    assert taken.value.code == 999
    assert "requested IP address 10.56.1.77 is not available" in taken.value.msg


def test_host_locals_own_config_error_is_passed_on(tmp_path: Path) -> None:
    body = host_local("1.0.0", tmp_path)
    body["ipam"]["ranges"] = [[{"subnet": "10.0.0.0/31"}]]
    with pytest.raises(CniError) as caught:
        DelegatedIpam("host-local", CNI_PATH).add(env("c1"), encoded(body))
    assert (caught.value.code, caught.value.msg) == (
        999, "IPAM plugin host-local ADD: invalid range set 0: Network 10.0.0.0/31 too small to allocate from")


@pytest.mark.parametrize("version", ["1.0.0", "1.1.0"])
def test_status_and_gc_do_not_run_on_host_local_1_1_1(tmp_path: Path, version: str) -> None:
    ipam = DelegatedIpam("host-local", CNI_PATH)
    ipam.add(env("c1"), encoded(host_local(version, tmp_path)))
    gc = host_local(version, tmp_path, **{"cni.dev/valid-attachments": []})
    ipam.status({"CNI_PATH": CNI_PATH}, encoded(host_local(version, tmp_path)))
    ipam.gc({"CNI_PATH": CNI_PATH}, encoded(gc))
    assert (tmp_path / "vdpa-net" / "10.56.1.2").exists()  # host-local of CNI 1.1.1 has no GC: nothing was run


def static(version: str) -> dict[str, Any]:
    return {"cniVersion": version, "name": "vdpa-net", "type": "vdpa-cni",
            "ipam": {"type": "static",
                     "addresses": [{"address": "10.10.0.1/24", "gateway": "10.10.0.254"},
                                   {"address": "3ffe:ffff:0:01ff::1/64", "gateway": "3ffe:ffff:0::1"}],
                     "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.10.5.1"}],
                     "dns": {"nameservers": ["8.8.8.8"], "domain": "example.com", "search": ["example.com"],
                             "options": ["ndots:2"]}}}


@pytest.mark.parametrize("version", VERSIONS)
def test_static_add_check_del(version: str) -> None:
    ipam = DelegatedIpam("static", CNI_PATH)
    result = ipam.add(env("c1", "IP=10.10.0.7/24"), encoded(static(version)))
    assert result == IpamResult(
        ips=(IpConfig(ip_interface("10.10.0.1/24"), ip_address("10.10.0.254")),
             IpConfig(ip_interface("3ffe:ffff:0:1ff::1/64"), ip_address("3ffe:ffff::1")),
             IpConfig(ip_interface("10.10.0.7/24"))),  # from CNI_ARGS
        routes=(RouteConfig(ip_network("0.0.0.0/0")), RouteConfig(ip_network("192.168.0.0/16"),
                                                                  ip_address("10.10.5.1"))),
        dns=DnsConfig(("8.8.8.8",), "example.com", ("example.com",), ("ndots:2",)))
    if version != "0.3.1":
        with pytest.raises(CniError, match="Required prevResult missing"):
            ipam.check(env("c1"), encoded(static(version)))
    prev = prev_result(version, IpamResult(ips=result.ips[:1]))
    ipam.check(env("c1"), encoded({**static(version), "prevResult": prev}))
    ipam.delete(env("c1"), encoded(static(version)))
