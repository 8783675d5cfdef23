"""Selection (upstream's filters and their test tables) and pool health across scans."""

from __future__ import annotations

from dataclasses import replace

from unit.deviceplugin.dp_devices import SEED, SEED_VFS, VHOST, VIRTIO, inventory, resource, vf
from vdpa_operator.deviceplugin.config import NetSelector
from vdpa_operator.deviceplugin.devices import NetDevice, VdpaInfo
from vdpa_operator.deviceplugin.pools import HEALTHY, UNHEALTHY, Pool, build_pools, select


def names(devices: list[NetDevice]) -> list[str]:
    return [d.address for d in devices]


def test_the_seed_pool_holds_every_virtio_vf() -> None:
    [pool] = build_pools([SEED], inventory(*SEED_VFS))
    assert pool.listed() == tuple((d.address, HEALTHY, 0) for d in SEED_VFS)


def test_upstream_pfname_table() -> None:
    """pkg/resources/deviceSelectors_test.go "should return devices matching interface PF name"."""
    devices = [NetDevice(address=f"0000:00:00.{i}", vendor="", device="", driver="", pf_name=pf, vf_index=index)
               for i, (pf, index) in enumerate([("ens0", -1), ("eth0", -1), ("ens2f0", 1), *(
                   ("ens2f1", n) for n in range(8))])]
    chosen = select(devices, NetSelector(pf_names=("ens0", "ens2f0#1", "ens2f1#0,3-5,7")))
    assert [(d.pf_name, d.vf_index) for d in chosen] == [("ens0", -1), ("ens2f0", 1), ("ens2f1", 0), ("ens2f1", 3),
                                                         ("ens2f1", 4), ("ens2f1", 5), ("ens2f1", 7)]


def test_upstream_rootdevice_table() -> None:
    pairs = [("0000:86:00.0", -1), ("0000:a0:00.0", -1), ("0000:86:00.1", 1), *(("0000:86:00.2", n) for n in range(8))]
    devices = [NetDevice(address=f"0000:01:00.{i}", vendor="", device="", driver="", pf_address=pf, vf_index=index)
               for i, (pf, index) in enumerate(pairs)]
    chosen = select(devices, NetSelector(root_devices=("0000:86:00.0", "0000:86:00.1#1", "0000:86:00.2#0-2,5,7")))
    assert [(d.pf_address, d.vf_index) for d in chosen] == [
        ("0000:86:00.0", -1), ("0000:86:00.1", 1), ("0000:86:00.2", 0), ("0000:86:00.2", 1), ("0000:86:00.2", 2),
        ("0000:86:00.2", 5), ("0000:86:00.2", 7)]


def test_pf_names_match_ignoring_case_and_devices_without_a_pf_never_match() -> None:
    devices = [vf("0000:65:00.2", pf_name="ENS1F0"), replace(vf("0000:65:00.3"), pf_name="")]
    assert names(select(devices, NetSelector(pf_names=("ens1f0",)))) == ["0000:65:00.2"]


def test_each_list_filters_and_empty_lists_do_not() -> None:
    other = replace(vf("0000:3b:02.0"), vendor="8086", device="154c", driver="iavf", link_type="infiniband")
    devices = [*SEED_VFS, other]
    assert names(select(devices, NetSelector())) == names(devices)
    assert names(select(devices, NetSelector(vendors=("8086",)))) == ["0000:3b:02.0"]
    assert names(select(devices, NetSelector(devices=("101e",), drivers=("mlx5_core",)))) == names(SEED_VFS)
    assert names(select(devices, NetSelector(pci_addresses=("0000:65:01.3",)))) == ["0000:65:01.3"]
    assert names(select(devices, NetSelector(link_types=("infiniband",)))) == ["0000:3b:02.0"]
    assert names(select(devices, NetSelector(acpi_indexes=("101",)))) == []
    # Nothing here reports a DDP profile, a pkey or RDMA devices: upstream's answer on such a node.
    assert select(devices, NetSelector(ddp_profiles=("gtp",))) == []
    assert select(devices, NetSelector(pkeys=("0x7fff",))) == []
    assert select(devices, NetSelector(is_rdma=True)) == []


def test_vdpa_type_needs_the_matching_driver_and_for_vhost_the_char_device() -> None:
    devices = [vf("0000:65:00.2", driver=VIRTIO), vf("0000:65:00.3", index=1, driver=VHOST,
                                                       chardev="/dev/vhost-vdpa-0"),
               vf("0000:65:00.4", index=2, driver=VHOST), vf("0000:65:00.5", index=3, driver=None)]
    [virtio, vhost] = build_pools([resource("v", NetSelector(vdpa_type="virtio")),
                                   resource("h", NetSelector(vdpa_type="vhost"))], inventory(*devices))
    assert list(virtio.members) == ["0000:65:00.2"]
    assert list(vhost.members) == ["0000:65:00.3"]


def test_a_device_taken_by_an_earlier_selector_or_resource_is_not_offered_again() -> None:
    first = resource("first", NetSelector(pf_names=("ens1f0#0",)), NetSelector(root_devices=("0000:65:00.0",)))
    second = resource("second", NetSelector(vendors=("15b3",)))
    pools = build_pools([first, second], inventory(*SEED_VFS))
    assert [list(p.members) for p in pools] == [["0000:65:00.2", "0000:65:00.3"], ["0000:65:01.2", "0000:65:01.3"]]
    assert pools[0].members["0000:65:00.2"].selector == first.selectors[0]


def test_a_member_whose_vdpa_device_goes_stays_unhealthy_until_it_is_back() -> None:
    [before] = build_pools([SEED], inventory(*SEED_VFS))
    gone = replace(SEED_VFS[1], vdpa=None)
    [after] = build_pools([SEED], inventory(SEED_VFS[0], gone, *SEED_VFS[2:]), {before.config.resource_name: before})
    assert after.members["0000:65:00.3"].health == UNHEALTHY
    assert after.members["0000:65:00.3"].problem == "0000:65:00.3 has no vDPA device"
    assert [m.health for i, m in after.members.items() if i != "0000:65:00.3"] == [HEALTHY] * 3
    [again] = build_pools([SEED], inventory(*SEED_VFS), {after.config.resource_name: after})
    assert again.listed() == before.listed()


def test_a_member_rebound_to_the_other_driver_is_unhealthy_here_or_moves_to_a_pool_of_that_type() -> None:
    rebound = replace(SEED_VFS[0], vdpa=VdpaInfo("vdpa:0000:65:00.2", VHOST, "/dev/vhost-vdpa-3"))
    [before] = build_pools([SEED], inventory(*SEED_VFS))
    previous = {before.config.resource_name: before}
    [alone] = build_pools([SEED], inventory(rebound, *SEED_VFS[1:]), previous)
    assert alone.members["0000:65:00.2"].problem == ("vdpa:0000:65:00.2 is bound to vhost_vdpa, the pool serves "
                                                    "virtio (virtio_vdpa)")
    vhost = resource("vhost", NetSelector(vdpa_type="vhost"))
    virtio_pool, vhost_pool = build_pools([SEED, vhost], inventory(rebound, *SEED_VFS[1:]), previous)
    assert "0000:65:00.2" not in virtio_pool.members
    assert vhost_pool.members["0000:65:00.2"].healthy


def test_a_member_whose_function_is_gone_or_no_longer_selected_leaves() -> None:
    [before] = build_pools([SEED], inventory(*SEED_VFS))
    previous: dict[str, Pool] = {before.config.resource_name: before}
    [after] = build_pools([SEED], inventory(*SEED_VFS[:2]), previous)
    assert list(after.members) == ["0000:65:00.2", "0000:65:00.3"]
    narrowed = resource("mlxnics", NetSelector(root_devices=("0000:65:00.1",), vdpa_type="virtio"))
    [after] = build_pools([narrowed], inventory(*(replace(d, vdpa=None) for d in SEED_VFS)), previous)
    assert list(after.members) == ["0000:65:01.2", "0000:65:01.3"]
    assert not any(m.healthy for m in after.members.values())


def test_a_new_device_joins_only_once_healthy() -> None:
    [before] = build_pools([SEED], inventory(*SEED_VFS[:3]))
    late = replace(SEED_VFS[3], vdpa=None)
    [after] = build_pools([SEED], inventory(*SEED_VFS[:3], late), {before.config.resource_name: before})
    assert "0000:65:01.3" not in after.members
    [joined] = build_pools([SEED], inventory(*SEED_VFS), {after.config.resource_name: after})
    assert joined.members["0000:65:01.3"].healthy


def test_topology_is_the_numa_node_unless_excluded_or_unknown() -> None:
    devices = [vf("0000:65:00.2", numa=1), vf("0000:65:00.3", index=1, numa=None)]
    [pool] = build_pools([SEED], inventory(*devices))
    assert pool.listed() == (("0000:65:00.2", HEALTHY, 1), ("0000:65:00.3", HEALTHY, None))
    [excluded] = build_pools([replace(SEED, exclude_topology=True)], inventory(*devices))
    assert excluded.listed() == (("0000:65:00.2", HEALTHY, None), ("0000:65:00.3", HEALTHY, None))
