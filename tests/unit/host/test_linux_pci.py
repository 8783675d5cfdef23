"""SysfsPci reads the kernel's PCI/SR-IOV sysfs layout and writes to it in the order the kernel needs.

Trees are generated in tmp_path by `sysfs_tree`; writes that have side effects in the kernel (sriov_numvfs,
bind/unbind, drivers_probe) go through `KernelishSysfs`, a small Sysfs subclass that reacts the way the PCI
core does, including refusing a direct N→M change of sriov_numvfs with EBUSY. Waits run on a fake clock.
"""

from __future__ import annotations

import errno
import re
from pathlib import Path

import pytest

from unit.host.sysfs_tree import SysfsTree, connectx6dx, vf_address
from vdpa_operator.host.errors import (
    DeviceBusy,
    DeviceNotFound,
    HostTimeout,
    InvalidArgument,
    KernelModuleMissing,
    NotSupported,
    error_from_errno,
)
from vdpa_operator.host.linux.pci import SysfsPci
from vdpa_operator.host.linux.sysfs import Sysfs
from vdpa_operator.host.types import PciAddress, PciFunction, SriovCapability, Vf

PF = PciAddress("0000:65:00.0")
PF1 = PciAddress("0000:65:00.1")
IGB = PciAddress("0000:17:00.0")
NVME = PciAddress("0000:b1:00.0")


class FakeClock:
    """Virtual time: `sleep` advances it and runs whatever the test scheduled for that moment."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps = 0
        self.on_sleep: list[tuple[int, object]] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.sleeps += 1
        for when, action in list(self.on_sleep):
            if self.sleeps == when:
                action()  # type: ignore[operator]


class KernelishSysfs(Sysfs):
    """Plain files plus the PCI core's reaction to writes. `vf_mode`: `now` (VFs complete when the write
    returns), `late_physfn` (virtfn links at once, physfn links only after 3 polls), `never` (nothing appears)."""

    def __init__(self, tree: SysfsTree, clock: FakeClock, vf_mode: str = "now") -> None:
        super().__init__(tree.root)
        self.tree = tree
        self.clock = clock
        self.vf_mode = vf_mode
        self.writes: list[tuple[str, str]] = []
        self.empty_reads: dict[str, int] = {}

    def read(self, rel: str) -> str:
        if self.empty_reads.get(rel, 0) > 0:
            self.empty_reads[rel] -= 1
            return ""
        return super().read(rel)

    def write(self, rel: str, value: str) -> None:
        self.writes.append((rel, value))
        if m := re.fullmatch(r"bus/pci/devices/([^/]+)/sriov_numvfs", rel):
            self._numvfs(m.group(1), int(value))
        elif m := re.fullmatch(r"bus/pci/drivers/([^/]+)/bind", rel):
            self._bind(value, m.group(1))
        elif m := re.fullmatch(r"bus/pci/(?:drivers/[^/]+|devices/([^/]+)/driver)/unbind", rel):
            self.tree.set_driver(value, None)
        elif rel == "bus/pci/drivers_probe":
            override = self.tree.read_attr(value, "driver_override").strip()
            self.tree.set_driver(value, "mlx5_core" if override == "(null)" else override)
        elif m := re.fullmatch(r"bus/pci/devices/([^/]+)/driver_override", rel):
            self.tree.write_attr(m.group(1), "driver_override", (value.strip() or "(null)") + "\n")
        else:
            super().write(rel, value)

    def _numvfs(self, pf: str, count: int) -> None:
        current = int(self.tree.read_attr(pf, "sriov_numvfs"))
        if current and count:
            raise error_from_errno(errno.EBUSY, f"write {count!r} to", f"{pf}/sriov_numvfs")
        if count == 0:
            self.tree.remove_vfs(pf)
        elif self.vf_mode == "now":
            for index in range(count):
                self.tree.add_vf(pf, index)
        elif self.vf_mode == "late_physfn":
            vfs = [self.tree.add_vf(pf, index, physfn=False) for index in range(count)]

            def finish() -> None:
                for vf in vfs:
                    self.tree.add_physfn(pf, vf)

            self.clock.on_sleep.append((self.clock.sleeps + 3, finish))
        self.tree.write_attr(pf, "sriov_numvfs", f"{count}\n")

    def _bind(self, address: str, driver: str) -> None:
        if self.tree.device_dir(address).joinpath("driver").is_symlink():
            raise error_from_errno(errno.EBUSY, f"write {address!r} to", f"{driver}/bind")
        self.tree.set_driver(address, driver)


@pytest.fixture
def tree(tmp_path: Path) -> SysfsTree:
    return connectx6dx(tmp_path / "sys", vfs=2)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def pci_on(tree: SysfsTree, clock: FakeClock, vf_mode: str = "now") -> tuple[SysfsPci, KernelishSysfs]:
    sysfs = KernelishSysfs(tree, clock, vf_mode)
    return SysfsPci(sysfs, poll_interval=0.5, sleep=clock.sleep, clock=clock.clock), sysfs


# --- discovery ------------------------------------------------------------------------------------------------


def test_list_functions_returns_network_functions_sorted_with_vfs(tree: SysfsTree) -> None:
    pci = SysfsPci(Sysfs(tree.root))
    addresses = [f.address for f in pci.list_functions()]
    assert addresses == [IGB, PF, PF1, "0000:65:00.2", "0000:65:00.3"]


def test_list_functions_can_include_other_classes(tree: SysfsTree) -> None:
    pci = SysfsPci(Sysfs(tree.root))
    functions = {f.address: f for f in pci.list_functions(network_only=False)}
    assert functions[NVME].class_code == "0x010802"
    assert functions[NVME].driver == "nvme"


def test_get_function_of_a_pf(tree: SysfsTree) -> None:
    pci = SysfsPci(Sysfs(tree.root))
    assert pci.get_function(PF) == PciFunction(
        address=PF, vendor="15b3", device="101d", class_code="0x020000", driver="mlx5_core", physfn=None,
        netdevs=("ens1f0np0",), numa_node=1, acpi_index="",
    )


def test_get_function_of_a_vf_names_its_pf(tree: SysfsTree) -> None:
    pci = SysfsPci(Sysfs(tree.root))
    vf = pci.get_function(PciAddress("0000:65:00.3"))
    assert (vf.device, vf.physfn, vf.netdevs) == ("101e", PF, ("ens1f0v1",))


def test_list_functions_reads_numa_node_and_acpi_index(tree: SysfsTree) -> None:
    functions = {f.address: f for f in SysfsPci(Sysfs(tree.root)).list_functions()}
    assert [functions[a].numa_node for a in (PF, PciAddress("0000:65:00.2"), PciAddress("0000:65:00.3"))] == [1, 1, 1]
    assert (functions[IGB].numa_node, functions[IGB].acpi_index) == (0, "1")
    assert functions[PF].acpi_index == ""


@pytest.mark.parametrize(
    ("numa_node", "expected"),
    [
        ("0\n", 0),
        ("3\n", 3),
        ("-1\n", None),  # CONFIG_NUMA without topology information (upstream `GetDevNode` < 0)
        (None, None),  # a kernel without CONFIG_NUMA has no attribute
        ("\n", None),  # unreadable as a number: upstream reads -1
    ],
)
def test_numa_node(tmp_path: Path, numa_node: str | None, expected: int | None) -> None:
    tree = SysfsTree(tmp_path)
    tree.add_function(PF, numa_node=None)
    if numa_node is not None:
        tree.write_attr(PF, "numa_node", numa_node)
    assert SysfsPci(Sysfs(tmp_path)).get_function(PF).numa_node == expected


@pytest.mark.parametrize(("acpi_index", "expected"), [(7, "7"), (None, "")])
def test_acpi_index_as_upstream_reads_it(tmp_path: Path, acpi_index: int | None, expected: str) -> None:
    SysfsTree(tmp_path).add_function(PF, acpi_index=acpi_index)
    assert SysfsPci(Sysfs(tmp_path)).get_function(PF).acpi_index == expected


def test_get_function_of_an_unbound_function_has_no_driver(tree: SysfsTree) -> None:
    tree.set_driver("0000:65:00.2", None)
    assert SysfsPci(Sysfs(tree.root)).get_function(PciAddress("0000:65:00.2")).driver is None


def test_missing_function_is_device_not_found(tree: SysfsTree) -> None:
    pci = SysfsPci(Sysfs(tree.root))
    with pytest.raises(DeviceNotFound) as info:
        pci.get_function(PciAddress("0000:66:00.0"))
    assert info.value.errno == errno.ENODEV
    assert "0000:66:00.0" in str(info.value)


def test_sriov_capability_of_a_pf_and_none_for_other_functions(tree: SysfsTree) -> None:
    pci = SysfsPci(Sysfs(tree.root))
    assert pci.sriov(PF) == SriovCapability(totalvfs=8, numvfs=2)
    assert pci.sriov(PF1) == SriovCapability(totalvfs=8, numvfs=0)
    assert pci.sriov(IGB) is None


def test_sriov_retries_an_empty_numvfs_read(tree: SysfsTree, clock: FakeClock) -> None:
    pci, sysfs = pci_on(tree, clock)
    sysfs.empty_reads["bus/pci/devices/0000:65:00.0/sriov_numvfs"] = 2
    assert pci.sriov(PF) == SriovCapability(totalvfs=8, numvfs=2)


def test_list_vfs_orders_by_index_not_by_name(tmp_path: Path) -> None:
    connectx6dx(tmp_path, vfs=12, totalvfs=16)
    vfs = SysfsPci(Sysfs(tmp_path)).list_vfs(PF)
    assert [vf.index for vf in vfs] == list(range(12))
    assert vfs[6] == Vf(index=6, address=PciAddress("0000:65:01.0"), driver="mlx5_core")
    assert vfs[11].address == vf_address(PF, 11) == "0000:65:01.5"


def test_list_vfs_of_a_pf_without_vfs_is_empty(tree: SysfsTree) -> None:
    assert SysfsPci(Sysfs(tree.root)).list_vfs(PF1) == []


# --- set_numvfs -----------------------------------------------------------------------------------------------


def numvfs_writes(sysfs: KernelishSysfs) -> list[str]:
    return [value for rel, value in sysfs.writes if rel.endswith("sriov_numvfs")]


def test_set_numvfs_from_zero_writes_once_and_waits_for_the_vfs(tree: SysfsTree, clock: FakeClock) -> None:
    pci, sysfs = pci_on(tree, clock)
    pci.set_numvfs(PF1, 4)
    assert numvfs_writes(sysfs) == ["4"]
    assert [vf.address for vf in pci.list_vfs(PF1)] == ["0000:65:08.2", "0000:65:08.3", "0000:65:08.4",
                                                         "0000:65:08.5"]
    assert pci.sriov(PF1) == SriovCapability(totalvfs=8, numvfs=4)
    assert clock.sleeps == 0


def test_set_numvfs_between_non_zero_counts_writes_zero_first(tree: SysfsTree, clock: FakeClock) -> None:
    pci, sysfs = pci_on(tree, clock)
    pci.set_numvfs(PF, 3)
    assert numvfs_writes(sysfs) == ["0", "3"]
    assert len(pci.list_vfs(PF)) == 3


def test_set_numvfs_to_zero_writes_zero_once(tree: SysfsTree, clock: FakeClock) -> None:
    pci, sysfs = pci_on(tree, clock)
    pci.set_numvfs(PF, 0)
    assert numvfs_writes(sysfs) == ["0"]
    assert pci.list_vfs(PF) == []


def test_set_numvfs_to_the_current_count_writes_nothing(tree: SysfsTree, clock: FakeClock) -> None:
    pci, sysfs = pci_on(tree, clock)
    pci.set_numvfs(PF, 2)
    assert sysfs.writes == []


def test_set_numvfs_above_totalvfs_is_rejected_before_writing(tree: SysfsTree, clock: FakeClock) -> None:
    pci, sysfs = pci_on(tree, clock)
    with pytest.raises(InvalidArgument) as info:
        pci.set_numvfs(PF, 9)
    assert sysfs.writes == []
    assert info.value.errno == errno.EINVAL
    assert "sriov_totalvfs is 8" in str(info.value)


def test_set_numvfs_on_a_function_without_sriov(tree: SysfsTree, clock: FakeClock) -> None:
    pci, sysfs = pci_on(tree, clock)
    pci.set_numvfs(IGB, 0)
    with pytest.raises(NotSupported):
        pci.set_numvfs(IGB, 2)
    assert sysfs.writes == []


def test_set_numvfs_waits_for_late_physfn_links(tree: SysfsTree, clock: FakeClock) -> None:
    pci, _ = pci_on(tree, clock, vf_mode="late_physfn")
    pci.set_numvfs(PF1, 2, timeout=10)
    assert clock.sleeps == 3
    assert all(pci.get_function(vf.address).physfn == PF1 for vf in pci.list_vfs(PF1))


def test_set_numvfs_times_out_naming_the_pf(tree: SysfsTree, clock: FakeClock) -> None:
    pci, _ = pci_on(tree, clock, vf_mode="never")
    with pytest.raises(HostTimeout) as info:
        pci.set_numvfs(PF1, 2, timeout=5)
    assert info.value.target == PF1
    assert info.value.errno == errno.ETIMEDOUT
    assert info.value.temporary
    assert "virtfn0" in str(info.value)
    assert 1005.0 <= clock.now <= 1005.5


def test_set_numvfs_times_out_when_physfn_links_never_appear(tree: SysfsTree, clock: FakeClock) -> None:
    pci, _ = pci_on(tree, clock, vf_mode="late_physfn")
    clock.on_sleep.clear()
    with pytest.raises(HostTimeout, match=re.escape("physfn link of 0000:65:08.2, 0000:65:08.3")):
        pci.set_numvfs(PF1, 2, timeout=1)


def test_the_kernel_model_refuses_a_direct_change(tree: SysfsTree, clock: FakeClock) -> None:
    """Guard for the test double itself: without the "0" write first, the change would fail."""
    _, sysfs = pci_on(tree, clock)
    with pytest.raises(DeviceBusy):
        sysfs.write("bus/pci/devices/0000:65:00.0/sriov_numvfs", "3")


# --- drivers --------------------------------------------------------------------------------------------------

VF0 = PciAddress("0000:65:00.2")


def test_bind_moves_a_vf_to_another_driver_and_clears_the_override(tree: SysfsTree, clock: FakeClock) -> None:
    tree.add_driver("vfio-pci")
    pci, sysfs = pci_on(tree, clock)
    pci.bind(VF0, "vfio-pci")
    assert sysfs.writes == [
        (f"bus/pci/devices/{VF0}/driver/unbind", VF0),
        (f"bus/pci/devices/{VF0}/driver_override", "vfio-pci"),
        ("bus/pci/drivers/vfio-pci/bind", VF0),
        (f"bus/pci/devices/{VF0}/driver_override", "\n"),
    ]
    assert pci.get_function(VF0).driver == "vfio-pci"
    assert tree.read_attr(VF0, "driver_override") == "(null)\n"


def test_bind_of_an_unbound_function_does_not_unbind(tree: SysfsTree, clock: FakeClock) -> None:
    tree.add_driver("vfio-pci")
    tree.set_driver(VF0, None)
    pci, sysfs = pci_on(tree, clock)
    pci.bind(VF0, "vfio-pci")
    assert [rel for rel, _ in sysfs.writes if rel.endswith("unbind")] == []
    assert pci.get_function(VF0).driver == "vfio-pci"


def test_bind_to_the_current_driver_writes_nothing(tree: SysfsTree, clock: FakeClock) -> None:
    pci, sysfs = pci_on(tree, clock)
    pci.bind(VF0, "mlx5_core")
    assert sysfs.writes == []


def test_bind_tolerates_losing_a_race_to_the_same_driver(tree: SysfsTree, clock: FakeClock) -> None:
    tree.add_driver("vfio-pci")
    tree.set_driver(VF0, None)
    pci, sysfs = pci_on(tree, clock)
    original = sysfs.write

    def racing_write(rel: str, value: str) -> None:
        if rel.endswith("vfio-pci/bind"):
            tree.set_driver(value, "vfio-pci")  # someone else bound it first: the kernel answers EBUSY
        original(rel, value)

    sysfs.write = racing_write  # type: ignore[method-assign]
    pci.bind(VF0, "vfio-pci")
    assert pci.get_function(VF0).driver == "vfio-pci"
    assert tree.read_attr(VF0, "driver_override") == "(null)\n"


def test_vfio_bind_failure_without_an_iommu_group_says_what_to_do(tree: SysfsTree, clock: FakeClock) -> None:
    tree.add_driver("vfio-pci")
    (tree.device_dir(VF0) / "iommu_group").rmdir()
    pci, sysfs = pci_on(tree, clock)
    original = sysfs.write

    def refusing_write(rel: str, value: str) -> None:
        if rel.endswith("vfio-pci/bind"):
            raise error_from_errno(errno.EINVAL, f"write {value!r} to", rel)
        original(rel, value)

    sysfs.write = refusing_write  # type: ignore[method-assign]
    with pytest.raises(InvalidArgument, match="enable the IOMMU"):
        pci.bind(VF0, "vfio-pci")
    assert tree.read_attr(VF0, "driver_override") == "(null)\n"


def test_bind_to_a_driver_that_is_not_loaded(tree: SysfsTree, clock: FakeClock) -> None:
    pci, sysfs = pci_on(tree, clock)
    with pytest.raises(KernelModuleMissing) as info:
        pci.bind(VF0, "vfio-pci")
    assert info.value.target == "vfio-pci"
    assert sysfs.writes == []


def test_bind_default_replaces_a_userspace_driver(tree: SysfsTree, clock: FakeClock) -> None:
    tree.set_driver(VF0, "vfio-pci")
    tree.write_attr(VF0, "driver_override", "vfio-pci\n")
    pci, sysfs = pci_on(tree, clock)
    pci.bind_default(VF0)
    assert sysfs.writes == [
        (f"bus/pci/devices/{VF0}/driver/unbind", VF0),
        (f"bus/pci/devices/{VF0}/driver_override", "\n"),
        ("bus/pci/drivers_probe", VF0),
    ]
    assert pci.get_function(VF0).driver == "mlx5_core"


def test_bind_default_probes_an_unbound_function(tree: SysfsTree, clock: FakeClock) -> None:
    tree.set_driver(VF0, None)
    pci, sysfs = pci_on(tree, clock)
    pci.bind_default(VF0)
    assert ("bus/pci/drivers_probe", VF0) in sysfs.writes
    assert pci.get_function(VF0).driver == "mlx5_core"


def test_bind_default_leaves_a_kernel_driver_alone(tree: SysfsTree, clock: FakeClock) -> None:
    pci, sysfs = pci_on(tree, clock)
    pci.bind_default(VF0)
    assert sysfs.writes == []


def test_unbind(tree: SysfsTree, clock: FakeClock) -> None:
    pci, sysfs = pci_on(tree, clock)
    pci.unbind(VF0)
    assert sysfs.writes == [(f"bus/pci/devices/{VF0}/driver/unbind", VF0)]
    assert pci.get_function(VF0).driver is None
    pci.unbind(VF0)
    assert len(sysfs.writes) == 1


def test_unbind_on_a_plain_tree_writes_through_the_driver_link(tree: SysfsTree) -> None:
    """Without a kernel behind it the write lands in the driver's own `unbind` file, as on /sys."""
    SysfsPci(Sysfs(tree.root)).unbind(VF0)
    assert (tree.root / "bus/pci/drivers/mlx5_core/unbind").read_text() == VF0
