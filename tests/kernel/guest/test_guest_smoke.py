"""The kernel bed checked against the kernel's own tools, inside the QEMU guest only.

Why: the contract tests trust `KernelBed` to set up netdevsim, vdpa_sim_net, OVS and namespaces. These tests
check the bed with `devlink`, `vdpa`, `ethtool`, `ip` and `ovs-*` as the oracle, not with our adapter, so a
wrong bed shows up as a bed failure rather than as a mysterious adapter failure (and they hold before the
adapter exists). Outside the guest (VDPA_CONTRACT_BED != kernel) every test here skips.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from contract.wait import wait_until

pytestmark = pytest.mark.skipif(
    os.environ.get("VDPA_CONTRACT_BED") != "kernel",
    reason="runs inside the QEMU guest only (tests/kernel/test_guest.py boots it)",
)

VDPA_BUS = Path("/sys/bus/vdpa/devices")


@pytest.fixture
def kbed() -> Iterator[Any]:
    from kernel.guest_bed import kernel_bed  # imported here: this module must import cleanly on any host

    yield from kernel_bed()


def sh(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def sysfs_net(netdev: str, attr: str) -> str:
    return Path(f"/sys/class/net/{netdev}/{attr}").read_text().strip()


def devlink_ports(handle: object, *, flavour: str | None = None, count: int | None = None) -> dict[str, Any]:
    """`devlink -j port show` for one device. Polled: a dump right after VFs appear was once seen empty
    (research note, gotcha 6)."""

    def ports() -> dict[str, Any] | None:
        found = json.loads(sh("devlink", "-j", "port", "show")).get("port", {})
        mine = {k: v for k, v in found.items() if k.startswith(f"{handle}/")}
        if flavour is not None:
            mine = {k: v for k, v in mine.items() if v.get("flavour") == flavour}
        return mine if count is None or len(mine) == count else None

    return wait_until(ports, what=f"{count} {flavour} ports of {handle}") if count else ports() or {}


def test_netdevsim_is_an_sriov_nic_with_switchdev_representors(kbed: Any) -> None:
    sw = kbed.switch
    physical = devlink_ports(sw.handle)
    assert [p["flavour"] for p in physical.values()] == ["physical"]
    assert next(iter(physical.values()))["netdev"] == sw.pf_netdev
    assert sw.numvfs() == 0 and sw.max_vfs >= 3

    sh("devlink", "dev", "eswitch", "set", str(sw.handle), "mode", "switchdev")
    sw.set_numvfs(2)
    assert sw.numvfs() == 2
    reps = devlink_ports(sw.handle, flavour="pcivf", count=2)
    assert sorted(p["vfnum"] for p in reps.values()) == [0, 1]
    switch_id = sysfs_net(sw.pf_netdev, "phys_switch_id")
    for port in reps.values():
        assert sysfs_net(port["netdev"], "phys_port_name") == f"pf0vf{port['vfnum']}"
        assert sysfs_net(port["netdev"], "phys_switch_id") == switch_id

    sw.set_numvfs(3)  # non-zero to non-zero: the bed goes through 0, as the kernel requires
    assert sw.numvfs() == 3
    # netdevsim 6.1 falls back to legacy when its VFs go to 0 (mlx5 keeps switchdev): reps only after re-setting.
    assert "mode legacy" in sh("devlink", "dev", "eswitch", "show", str(sw.handle))
    assert devlink_ports(sw.handle, flavour="pcivf") == {}
    sh("devlink", "dev", "eswitch", "set", str(sw.handle), "mode", "switchdev")
    devlink_ports(sw.handle, flavour="pcivf", count=3)
    sw.set_numvfs(0)
    assert devlink_ports(sw.handle, flavour="pcivf") == {}
    with pytest.raises(OSError):
        (sw.device / "sriov_numvfs").write_text(str(sw.max_vfs + 1))


def test_vdpa_sim_net_device_gives_a_virtio_net_netdev(kbed: Any) -> None:
    kbed.vdpa.prepare()
    name = kbed.vdpa.device_name
    assert "vdpasim_net" in json.loads(sh("vdpa", "-j", "mgmtdev", "show"))["mgmtdev"]
    sh("vdpa", "dev", "add", "name", name, "mgmtdev", str(kbed.vdpa.mgmtdev), "mac", "00:e8:ca:11:22:44")
    assert json.loads(sh("vdpa", "-j", "dev", "show"))["dev"][name]["mgmtdev"] == "vdpasim_net"
    assert (VDPA_BUS / name / "driver").resolve().name == "virtio_vdpa"
    netdev = wait_until(lambda: list((VDPA_BUS / name).glob("virtio*/net/*")), what="the virtio_net netdev")[0].name
    info = dict(line.split(": ", 1) for line in sh("ethtool", "-i", netdev).splitlines() if ": " in line)
    assert info["driver"] == "virtio_net"
    assert info["bus-info"] == name
    assert sysfs_net(netdev, "address") == "00:e8:ca:11:22:44"


def test_ovs_runs_on_the_kernel_datapath(kbed: Any) -> None:
    ovs = kbed.ovs_daemons
    ovs.vsctl("add-br", "br-smoke", wait=True)  # returns once vswitchd has made the bridge
    assert "br-smoke" in ovs.vsctl("list-br").split()
    dpif = sh("ovs-appctl", "-t", str(ovs.directory / "ovs-vswitchd.ctl"), "dpif/show")
    assert "system@ovs-system" in dpif
    assert Path("/sys/module/openvswitch").is_dir()
    assert Path("/sys/class/net/br-smoke").exists()


def test_new_netns_is_a_named_namespace(kbed: Any) -> None:
    path = kbed.new_netns()
    name = Path(path).name
    assert Path(path).exists()
    assert name in sh("ip", "netns", "list")
    assert "lo" in sh("ip", "netns", "exec", name, "ip", "-br", "link")


def test_teardown_leaves_nothing_behind() -> None:
    from kernel.guest_bed import KernelBed

    bed = KernelBed()
    try:
        sh("devlink", "dev", "eswitch", "set", str(bed.switch.handle), "mode", "switchdev")
        bed.switch.set_numvfs(2)
        bed.vdpa.prepare()
        sh("vdpa", "dev", "add", "name", bed.vdpa.device_name, "mgmtdev", "vdpasim_net")
        netns = bed.new_netns()
        bed.ovs_daemons.vsctl("add-br", "br-leak")
        bed.ovs_daemons.vsctl("set", "Open_vSwitch", ".", "other_config:hw-offload=true")
    finally:
        bed.close()
    assert not bed.switch.device.exists()
    assert not (VDPA_BUS / bed.vdpa.device_name).exists()
    assert not Path(netns).exists()
    assert bed.ovs_daemons.vsctl("list-br").split() == []
    assert "hw-offload" not in bed.ovs_daemons.vsctl("get", "Open_vSwitch", ".", "other_config")
