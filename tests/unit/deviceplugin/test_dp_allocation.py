"""What a container gets (env, device specs, device-info files, CDI) and which devices are preferred."""

from __future__ import annotations

import json
from dataclasses import replace

from unit.deviceplugin.dp_devices import SEED, SEED_VFS, VHOST, inventory, resource, vf
from vdpa_operator.deviceplugin.allocation import (
    DeviceSpec,
    allocate,
    cdi_spec,
    cdi_spec_file,
    device_info_file,
    env_key,
    preferred,
)
from vdpa_operator.deviceplugin.config import NetSelector, ResourceConfig
from vdpa_operator.deviceplugin.devices import Inventory
from vdpa_operator.deviceplugin.pools import Pool, build_pools

VHOST_POOL = ResourceConfig(name="vdpa_mlx_vhost", prefix="nvidia.com", selectors=(NetSelector(vdpa_type="vhost"),))
VHOST_VFS = [vf("0000:65:00.2", driver=VHOST, chardev="/dev/vhost-vdpa-0"),
             vf("0000:65:00.3", index=1, driver=VHOST, chardev="/dev/vhost-vdpa-1")]


def pool_of(config: ResourceConfig, inv: Inventory) -> Pool:
    [pool] = build_pools([config], inv)
    return pool


def test_env_keys_are_upstreams() -> None:
    assert env_key("openshift.io", "mlxnics") == "PCIDEVICE_OPENSHIFT_IO_MLXNICS"
    assert env_key("nvidia.com", "vdpa_mlx_vhost") == "PCIDEVICE_NVIDIA_COM_VDPA_MLX_VHOST"


def test_virtio_gets_env_and_a_device_info_file_but_no_device_spec() -> None:
    inv = inventory(*SEED_VFS)
    pool = pool_of(SEED, inv)
    got = allocate(pool, ["0000:65:00.2", "0000:65:01.2"], inv)
    assert got.envs == {
        "PCIDEVICE_OPENSHIFT_IO_MLXNICS": "0000:65:00.2,0000:65:01.2",
        "PCIDEVICE_OPENSHIFT_IO_MLXNICS_INFO": '{"0000:65:00.2":{"generic":{"deviceID":"0000:65:00.2"},"vdpa":{}},'
                                               '"0000:65:01.2":{"generic":{"deviceID":"0000:65:01.2"},"vdpa":{}}}',
    }
    assert got.devices == ()
    assert got.annotations == {}
    assert got.device_info == {
        "openshift.io-mlxnics-0000:65:00.2-device.json":
            '{"type":"vdpa","version":"1.1.0","vdpa":{"parent-device":"vdpa:0000:65:00.2","driver":"virtio",'
            '"pci-address":"0000:65:00.2","pf-pci-address":"0000:65:00.0"}}',
        "openshift.io-mlxnics-0000:65:01.2-device.json":
            '{"type":"vdpa","version":"1.1.0","vdpa":{"parent-device":"vdpa:0000:65:01.2","driver":"virtio",'
            '"pci-address":"0000:65:01.2","pf-pci-address":"0000:65:00.1"}}',
    }


def test_vhost_gets_its_char_device_and_the_mount_in_info_on_the_first_call() -> None:
    """Upstream's first Allocate of a device lacks `mount` (envs are built before the device specs): not here."""
    inv = inventory(*VHOST_VFS)
    pool = pool_of(VHOST_POOL, inv)
    got = allocate(pool, ["0000:65:00.3"], inv)
    assert got.envs["PCIDEVICE_NVIDIA_COM_VDPA_MLX_VHOST"] == "0000:65:00.3"
    assert json.loads(got.envs["PCIDEVICE_NVIDIA_COM_VDPA_MLX_VHOST_INFO"]) == {
        "0000:65:00.3": {"generic": {"deviceID": "0000:65:00.3"}, "vdpa": {"mount": "/dev/vhost-vdpa-1"}}}
    assert got.devices == (DeviceSpec("/dev/vhost-vdpa-1", "/dev/vhost-vdpa-1", "rw"),)
    info = json.loads(got.device_info["nvidia.com-vdpa_mlx_vhost-0000:65:00.3-device.json"])
    assert info == {"type": "vdpa", "version": "1.1.0", "vdpa": {
        "parent-device": "vdpa:0000:65:00.3", "driver": "vhost", "path": "/dev/vhost-vdpa-1",
        "pci-address": "0000:65:00.3", "pf-pci-address": "0000:65:00.0"}}


def test_representor_is_filled_when_known() -> None:
    inv = inventory(replace(SEED_VFS[0], representor="ens1f0_0"))
    pool = pool_of(SEED, inv)
    [text] = allocate(pool, ["0000:65:00.2"], inv).device_info.values()
    assert json.loads(text)["vdpa"]["representor-device"] == "ens1f0_0"


def test_need_vhost_net_adds_vhost_net_and_tun_where_they_exist() -> None:
    config = resource("dpdk", NetSelector(need_vhost_net=True))
    with_nodes = Inventory(devices={d.address: d for d in SEED_VFS[:2]}, vhost_net="/dev/vhost-net",
                           tun="/dev/net/tun")
    got = allocate(pool_of(config, with_nodes), ["0000:65:00.2", "0000:65:00.3"], with_nodes)
    assert got.devices == (DeviceSpec("/dev/vhost-net", "/dev/vhost-net"), DeviceSpec("/dev/net/tun", "/dev/net/tun"))
    assert json.loads(got.envs["PCIDEVICE_OPENSHIFT_IO_DPDK_INFO"])["0000:65:00.2"]["vhost"] == {
        "net-mount": "/dev/vhost-net", "tun-mount": "/dev/net/tun"}
    # A plain net device pool writes a `pci` device-info file.
    assert json.loads(got.device_info["openshift.io-dpdk-0000:65:00.2-device.json"]) == {
        "type": "pci", "version": "1.1.0", "pci": {"pci-address": "0000:65:00.2", "pf-pci-address": "0000:65:00.0"}}
    without = inventory(*SEED_VFS[:2])
    assert allocate(pool_of(config, without), ["0000:65:00.2"], without).devices == ()


def test_additional_info_goes_under_extra_with_per_device_overrides() -> None:
    config = replace(SEED, additional_info={"*": {"a": "1", "b": "2"}, "0000:65:00.2": {"b": "<3>"}})
    inv = inventory(*SEED_VFS)
    text = allocate(pool_of(config, inv), ["0000:65:00.2"], inv).envs["PCIDEVICE_OPENSHIFT_IO_MLXNICS_INFO"]
    assert '"extra":{"a":"1","b":"\\u003c3\\u003e"}' in text  # Go's map order and escaping


def test_cdi_mode_annotates_instead_of_device_specs() -> None:
    inv = inventory(*VHOST_VFS)
    pool = pool_of(VHOST_POOL, inv)
    got = allocate(pool, ["0000:65:00.2", "0000:65:00.3"], inv, cdi=True)
    assert got.devices == ()
    assert got.annotations == {
        "cdi.k8s.io/nvidia.com_net-pci": "nvidia.com/net-pci=0000:65:00.2,nvidia.com/net-pci=0000:65:00.3"}
    assert got.envs["PCIDEVICE_NVIDIA_COM_VDPA_MLX_VHOST"] == "0000:65:00.2,0000:65:00.3"


def test_cdi_spec_one_device_per_vf_with_its_node_or_its_env() -> None:
    inv = inventory(*VHOST_VFS)
    assert cdi_spec_file(pool_of(VHOST_POOL, inv)) == "sriov-dp-nvidia.com-net-pci-vdpa_mlx_vhost.json"
    assert json.loads(cdi_spec(pool_of(VHOST_POOL, inv), inv)) == {
        "cdiVersion": "0.5.0", "kind": "nvidia.com/net-pci", "devices": [
            {"name": "0000:65:00.2", "containerEdits": {"deviceNodes": [
                {"path": "/dev/vhost-vdpa-0", "hostPath": "/dev/vhost-vdpa-0", "permissions": "rw"}]}},
            {"name": "0000:65:00.3", "containerEdits": {"deviceNodes": [
                {"path": "/dev/vhost-vdpa-1", "hostPath": "/dev/vhost-vdpa-1", "permissions": "rw"}]}}]}
    virtio = inventory(SEED_VFS[0])
    [device] = json.loads(cdi_spec(pool_of(SEED, virtio), virtio))["devices"]
    assert device == {"name": "0000:65:00.2", "containerEdits": {
        "env": ["PCIDEVICE_OPENSHIFT_IO_MLXNICS_0000_65_00_2=0000:65:00.2"]}}


def test_device_info_file_names() -> None:
    inv = inventory(*SEED_VFS)
    assert device_info_file(pool_of(SEED, inv), "0000:65:00.2") == "openshift.io-mlxnics-0000:65:00.2-device.json"


# --- GetPreferredAllocation ----------------------------------------------------------------------------------------

PF0 = [vf(f"0000:65:00.{i}", index=i - 2) for i in range(2, 6)]
PF1 = [vf(f"0000:65:01.{i}", "0000:65:00.1", i - 2, pf_name="ens1f1", numa=1) for i in range(2, 4)]
BOTH = inventory(*PF0, *PF1)
ALL = [d.address for d in (*PF1, *PF0)]


def test_preferred_keeps_a_request_on_one_pf_choosing_the_tightest_fit() -> None:
    pool = pool_of(resource("r", NetSelector()), BOTH)
    assert preferred(pool, ALL, [], 2) == ["0000:65:01.2", "0000:65:01.3"]  # PF1 holds exactly 2
    assert preferred(pool, ALL, [], 3) == ["0000:65:00.2", "0000:65:00.3", "0000:65:00.4"]


def test_preferred_follows_must_include() -> None:
    pool = pool_of(resource("r", NetSelector()), BOTH)
    assert preferred(pool, ALL, ["0000:65:00.5"], 2) == ["0000:65:00.5", "0000:65:00.2"]
    assert preferred(pool, ALL, ["0000:65:01.3"], 3) == ["0000:65:01.3", "0000:65:01.2", "0000:65:00.2"]


def test_preferred_spills_to_the_same_numa_node_first() -> None:
    third = [vf(f"0000:66:00.{i}", "0000:66:00.0", i, pf_name="ens2f0", numa=1) for i in range(2)]
    inv = inventory(*PF0, *PF1, *third)
    pool = pool_of(resource("r", NetSelector()), inv)
    chosen = preferred(pool, [d.address for d in (*PF0, *PF1, *third)], ["0000:65:01.2"], 4)
    assert chosen == ["0000:65:01.2", "0000:65:01.3", "0000:66:00.0", "0000:66:00.1"]


def test_preferred_when_nothing_fits_one_pf() -> None:
    pool = pool_of(resource("r", NetSelector()), BOTH)
    assert preferred(pool, ALL, [], 6) == [*(d.address for d in PF0), "0000:65:01.2", "0000:65:01.3"]
    assert preferred(pool, ["0000:65:00.2"], [], 0) == []
