"""`VdpaSysfs`: what a vDPA device's binding looks like in sysfs, and rebinding it, on generated trees.

Layouts (research/dataplane.md §2.2, research/kernel-testbed.md §b):
- mlx5: the vdpa device sits under its VF's PCI directory and the `virtioN` device under the VF too (the VF is
  the vdpa device's DMA device);
- vdpa_sim: the vdpa device has no parent (`devices/vdpa0`) and `virtioN` sits under it;
- vhost_vdpa: a `vhost-vdpa-N` child under the vdpa device and `/dev/vhost-vdpa-N`.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from unit.host.sysfs_tree import connectx6dx
from vdpa_operator.host.errors import DeviceNotFound, HostError, KernelModuleMissing
from vdpa_operator.host.linux.sysfs import Sysfs
from vdpa_operator.host.linux.vdpa import GenlVdpa, VdpaSysfs
from vdpa_operator.host.types import VdpaBinding, VdpaDriver


def link(path: Path, target: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(os.path.relpath(target, path.parent))


class VdpaTree:
    """`bus/vdpa`, `bus/virtio` and vdpa device directories under a sysfs root."""

    def __init__(self, root: Path, drivers: tuple[str, ...] = ("virtio_vdpa", "vhost_vdpa")) -> None:
        self.root = root
        for sub in ("bus/vdpa/devices", "bus/virtio/devices", "devices"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        (root / "bus/vdpa/drivers_autoprobe").write_text("1\n")
        for driver in drivers:
            self.add_driver(driver)

    def add_driver(self, name: str) -> Path:
        path = self.root / "bus/vdpa/drivers" / name
        path.mkdir(parents=True, exist_ok=True)
        for attr in ("bind", "unbind"):
            (path / attr).touch()
        return path

    def add_device(self, name: str, parent: Path | None = None, *, driver: str | None = None,
                   override: bool = True) -> Path:
        path = (parent or self.root / "devices") / name
        path.mkdir(parents=True)
        (path / "uevent").write_text(f"DRIVER={driver or ''}\n")
        if override:
            (path / "driver_override").write_text("(null)\n")
        link(self.root / "bus/vdpa/devices" / name, path)
        self.set_driver(name, driver)
        return path

    def device_dir(self, name: str) -> Path:
        return (self.root / "bus/vdpa/devices" / name).resolve()

    def set_driver(self, name: str, driver: str | None) -> None:
        driver_link = self.device_dir(name) / "driver"
        if os.path.lexists(driver_link):
            driver_link.unlink()
        if driver is not None:
            link(driver_link, self.root / "bus/vdpa/drivers" / driver)

    def add_virtio(self, parent: Path, index: int, netdevs: tuple[str, ...] = ()) -> Path:
        path = parent / f"virtio{index}"
        (path / "net").mkdir(parents=True)
        for netdev in netdevs:
            (path / "net" / netdev).mkdir()
        link(self.root / "bus/virtio/devices" / path.name, path)
        return path

    def add_vhost(self, name: str, minor: int) -> Path:
        path = self.device_dir(name) / f"vhost-vdpa-{minor}"
        path.mkdir()
        (path / "dev").write_text(f"246:{minor}\n")
        return path


VF = "0000:65:00.2"
MLX5_NAME = f"vdpa:{VF}"


@pytest.fixture
def mlx5(tmp_path: Path) -> VdpaTree:
    """A ConnectX-6 Dx with 2 VFs; VF0 carries `vdpa:0000:65:00.2` bound to virtio_vdpa, netdev eth5."""
    sys_root = tmp_path / "sys"
    pci = connectx6dx(sys_root, vfs=2)
    tree = VdpaTree(sys_root)
    vf_dir = pci.device_dir(VF)
    tree.add_device(MLX5_NAME, vf_dir, driver="virtio_vdpa")
    tree.add_virtio(vf_dir, 3, ("eth5",))
    return tree


@pytest.fixture
def sim(tmp_path: Path) -> VdpaTree:
    """vdpa_sim_net as the test bed shows it: `devices/vdpa0/virtio2/net/eth0`."""
    tree = VdpaTree(tmp_path / "sys")
    device = tree.add_device("vdpa0", driver="virtio_vdpa")
    tree.add_virtio(device, 2, ("eth0",))
    return tree


def vdpa_sysfs(tree: VdpaTree) -> VdpaSysfs:
    return VdpaSysfs(Sysfs(tree.root), dev_root=tree.root.parent / "dev")


def test_mlx5_layout_virtio_netdev_is_found_under_the_vf(mlx5: VdpaTree) -> None:
    binding = vdpa_sysfs(mlx5).binding(MLX5_NAME)
    assert binding == VdpaBinding(driver="virtio_vdpa", virtio_netdev="eth5")
    assert binding.vdpa_type == "virtio"
    assert (mlx5.device_dir(MLX5_NAME).parent / "virtio3").is_dir()  # the layout under test


def test_vdpa_sim_layout_virtio_netdev_is_found_under_the_device(sim: VdpaTree) -> None:
    assert vdpa_sysfs(sim).binding("vdpa0") == VdpaBinding(driver="virtio_vdpa", virtio_netdev="eth0")
    assert sim.device_dir("vdpa0") == (sim.root / "devices/vdpa0").resolve()


def test_other_vdpa_sim_devices_do_not_confuse_the_search(sim: VdpaTree) -> None:
    other = sim.add_device("vdpa1", driver="virtio_vdpa")
    sim.add_virtio(other, 5, ("eth1",))
    assert vdpa_sysfs(sim).binding("vdpa1").virtio_netdev == "eth1"
    assert vdpa_sysfs(sim).binding("vdpa0").virtio_netdev == "eth0"


def test_netdev_moved_to_another_namespace_is_none(sim: VdpaTree) -> None:
    (sim.root / "devices/vdpa0/virtio2/net/eth0").rmdir()
    assert vdpa_sysfs(sim).binding("vdpa0") == VdpaBinding(driver="virtio_vdpa", virtio_netdev=None)


def test_virtio_device_not_yet_created_is_none(tmp_path: Path) -> None:
    tree = VdpaTree(tmp_path / "sys")
    tree.add_device("vdpa0", driver="virtio_vdpa")
    assert vdpa_sysfs(tree).binding("vdpa0").virtio_netdev is None


def test_two_virtio_devices_next_to_a_vdpa_device_are_an_error(mlx5: VdpaTree) -> None:
    mlx5.add_virtio(mlx5.device_dir(MLX5_NAME).parent, 4, ("eth6",))
    with pytest.raises(HostError, match="several virtio devices next to it: virtio3, virtio4"):
        vdpa_sysfs(mlx5).binding(MLX5_NAME)


def test_vhost_binding_gives_the_char_device(tmp_path: Path) -> None:
    tree = VdpaTree(tmp_path / "sys")
    tree.add_device("vdpa2", driver="vhost_vdpa")
    tree.add_vhost("vdpa2", 0)  # the minor is independent of the vdpa device's name
    dev_root = tmp_path / "dev"
    dev_root.mkdir()
    (dev_root / "vhost-vdpa-0").touch()
    binding = VdpaSysfs(Sysfs(tree.root), dev_root=dev_root).binding("vdpa2")
    assert binding == VdpaBinding(driver="vhost_vdpa", vhost_chardev=str(dev_root / "vhost-vdpa-0"))
    assert binding.vdpa_type == "vhost"


def test_vhost_child_without_dev_node_is_device_not_found(tmp_path: Path) -> None:
    tree = VdpaTree(tmp_path / "sys")
    tree.add_device("vdpa2", driver="vhost_vdpa")
    tree.add_vhost("vdpa2", 1)
    with pytest.raises(DeviceNotFound) as raised:
        VdpaSysfs(Sysfs(tree.root), dev_root=tmp_path / "dev").binding("vdpa2")
    assert raised.value.errno == errno.ENOENT
    assert "vhost-vdpa-1" in raised.value.detail and "devtmpfs" in raised.value.hint


def test_unbound_device(tmp_path: Path) -> None:
    tree = VdpaTree(tmp_path / "sys")
    tree.add_device("vdpa0")
    sysfs = vdpa_sysfs(tree)
    assert sysfs.driver("vdpa0") is None
    binding = sysfs.binding("vdpa0")
    assert binding == VdpaBinding(driver=None)
    assert binding.vdpa_type == ""


def test_device_bound_to_another_driver_has_no_type(tmp_path: Path) -> None:
    tree = VdpaTree(tmp_path / "sys", drivers=("virtio_vdpa", "vhost_vdpa", "vduse_test"))
    tree.add_device("vdpa0", driver="vduse_test")
    assert vdpa_sysfs(tree).binding("vdpa0") == VdpaBinding(driver="vduse_test")
    assert vdpa_sysfs(tree).binding("vdpa0").vdpa_type == ""


def test_missing_device_is_device_not_found(sim: VdpaTree) -> None:
    with pytest.raises(DeviceNotFound, match="vdpa device vdpa9"):
        vdpa_sysfs(sim).binding("vdpa9")
    assert vdpa_sysfs(sim).driver("vdpa9") is None


# --- bind ------------------------------------------------------------------------------------------------------


class RecordingSysfs(Sysfs):
    """Records writes instead of making them; `fail` maps a path to the errno its write fails with."""

    def __init__(self, root: Path, fail: dict[str, int] | None = None) -> None:
        super().__init__(root)
        self.writes: list[tuple[str, str]] = []
        self.fail = fail or {}

    def write(self, rel: str, value: str) -> None:
        self.writes.append((rel, str(value)))
        if rel in self.fail:
            raise HostError(f"write {value!r} to", str(self.path(rel)), self.fail[rel])


def test_bind_rebinds_the_way_upstream_does(sim: VdpaTree) -> None:
    sysfs = RecordingSysfs(sim.root)
    VdpaSysfs(sysfs).bind("vdpa0", VdpaDriver.VHOST)
    assert sysfs.writes == [
        ("bus/vdpa/drivers/virtio_vdpa/unbind", "vdpa0"),
        ("bus/vdpa/devices/vdpa0/driver_override", "vhost_vdpa"),
        ("bus/vdpa/drivers/vhost_vdpa/bind", "vdpa0"),
        ("bus/vdpa/devices/vdpa0/driver_override", "\n"),
    ]


def test_bind_to_the_current_driver_writes_nothing(sim: VdpaTree) -> None:
    sysfs = RecordingSysfs(sim.root)
    VdpaSysfs(sysfs).bind("vdpa0", VdpaDriver.VIRTIO)
    assert sysfs.writes == []


def test_bind_of_an_unbound_device_skips_unbind(tmp_path: Path) -> None:
    tree = VdpaTree(tmp_path / "sys")
    tree.add_device(MLX5_NAME)
    sysfs = RecordingSysfs(tree.root)
    VdpaSysfs(sysfs).bind(MLX5_NAME, VdpaDriver.VIRTIO)
    assert sysfs.writes == [
        (f"bus/vdpa/devices/{MLX5_NAME}/driver_override", "virtio_vdpa"),
        ("bus/vdpa/drivers/virtio_vdpa/bind", MLX5_NAME),
        (f"bus/vdpa/devices/{MLX5_NAME}/driver_override", "\n"),
    ]


def test_bind_without_driver_override_binds_directly(tmp_path: Path) -> None:
    tree = VdpaTree(tmp_path / "sys")
    tree.add_device("vdpa0", driver="virtio_vdpa", override=False)
    sysfs = RecordingSysfs(tree.root)
    VdpaSysfs(sysfs).bind("vdpa0", VdpaDriver.VHOST)
    assert sysfs.writes == [("bus/vdpa/drivers/virtio_vdpa/unbind", "vdpa0"),
                            ("bus/vdpa/drivers/vhost_vdpa/bind", "vdpa0")]


def test_bind_to_a_driver_that_is_not_loaded_names_the_module_and_keeps_the_binding(tmp_path: Path) -> None:
    tree = VdpaTree(tmp_path / "sys", drivers=("virtio_vdpa",))
    tree.add_device("vdpa0", driver="virtio_vdpa")
    sysfs = RecordingSysfs(tree.root)
    with pytest.raises(KernelModuleMissing) as raised:
        VdpaSysfs(sysfs).bind("vdpa0", VdpaDriver.VHOST)
    assert "modprobe vhost_vdpa" in str(raised.value)
    assert sysfs.writes == []


def test_failed_bind_still_clears_the_override(sim: VdpaTree) -> None:
    sysfs = RecordingSysfs(sim.root, fail={"bus/vdpa/drivers/vhost_vdpa/bind": errno.ENODEV})
    with pytest.raises(HostError) as raised:
        VdpaSysfs(sysfs).bind("vdpa0", VdpaDriver.VHOST)
    assert raised.value.errno == errno.ENODEV
    assert sysfs.writes[-1] == ("bus/vdpa/devices/vdpa0/driver_override", "\n")


def test_bind_of_a_missing_device_writes_nothing(sim: VdpaTree) -> None:
    sysfs = RecordingSysfs(sim.root)
    with pytest.raises(DeviceNotFound):
        VdpaSysfs(sysfs).bind("vdpa9", VdpaDriver.VHOST)
    assert sysfs.writes == []


class KernelLikeSysfs(Sysfs):
    """Writes with the vdpa bus's side effects, as the simulated host models them: `unbind` removes the driver
    link (and a vhost child), `bind` honours driver_override, links the driver and creates the vhost child,
    `driver_override` is replaced (a newline alone clears it)."""

    def __init__(self, tree: VdpaTree) -> None:
        super().__init__(tree.root)
        self.tree = tree

    def write(self, rel: str, value: str) -> None:
        parts = rel.split("/")
        if parts[:3] == ["bus", "vdpa", "drivers"] and parts[4] in ("bind", "unbind"):
            driver, name = parts[3], value.strip()
            device = self.tree.device_dir(name)
            if parts[4] == "unbind":
                self.tree.set_driver(name, None)
                for child in device.glob("vhost-vdpa-*"):
                    (child / "dev").unlink()
                    child.rmdir()
                return
            override = (device / "driver_override").read_text().strip()
            if override not in ("(null)", "", driver):
                raise HostError(f"write {value!r} to", rel, errno.EINVAL)
            self.tree.set_driver(name, driver)
            if driver == "vhost_vdpa":
                self.tree.add_vhost(name, 0)
            return
        if parts[-1] == "driver_override":  # a sysfs attribute is replaced, and a bare newline clears it
            self.path(rel).write_text((value.strip() or "(null)") + "\n")
            return
        super().write(rel, value)


def test_binding_reflects_a_rebind_through_a_kernel_like_sysfs(sim: VdpaTree) -> None:
    dev_root = sim.root.parent / "dev"
    dev_root.mkdir()
    (dev_root / "vhost-vdpa-0").touch()
    vdpa = GenlVdpa(KernelLikeSysfs(sim), dev_root=dev_root)
    vdpa.bind("vdpa0", VdpaDriver.VHOST)
    assert vdpa.binding("vdpa0") == VdpaBinding(driver="vhost_vdpa", vhost_chardev=str(dev_root / "vhost-vdpa-0"))
    assert (sim.device_dir("vdpa0") / "driver_override").read_text() == "(null)\n"  # cleared again
    vdpa.bind("vdpa0", VdpaDriver.VIRTIO)
    assert vdpa.binding("vdpa0") == VdpaBinding(driver="virtio_vdpa", virtio_netdev="eth0")
