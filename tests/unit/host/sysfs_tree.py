"""Build sysfs trees in the kernel's layout under a temporary root, for tests of sysfs-reading code.

The tree has what `/sys` has for a ConnectX-6 Dx: function directories under `devices/pci0000:64/…`,
`bus/pci/devices/<addr>` symlinks into them, `virtfnN`/`physfn` links between PF and VFs, `driver` links into
`bus/pci/drivers/<name>`, and `net/<ifname>/` directories. Files are plain files (no side effects); tests that
need the kernel's reaction to a write subclass `Sysfs`.
"""

from __future__ import annotations

import os
from pathlib import Path

PARENT = "pci0000:64/0000:64:00.0"
"""Root port above the NIC, as on a typical Xeon: the PF sits at `devices/pci0000:64/0000:64:00.0/0000:65:00.0`."""


def vf_address(pf: str, index: int, *, offset: int = 2, stride: int = 1) -> str:
    """The VF address the PCI core computes: PF devfn + First VF Offset + index × VF Stride (mlx5: 2 and 1)."""
    domain, bus, devfn_text = pf.split(":")
    dev, fn = devfn_text.split(".")
    devfn = (int(dev, 16) << 3 | int(fn)) + offset + index * stride
    return f"{domain}:{int(bus, 16) + (devfn >> 8):02x}:{(devfn & 0xFF) >> 3:02x}.{devfn & 7}"


class SysfsTree:
    """A writable model of `/sys` rooted at `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "bus/pci/devices").mkdir(parents=True, exist_ok=True)
        (root / "bus/pci/drivers").mkdir(parents=True, exist_ok=True)
        (root / "bus/pci/drivers_probe").write_text("")

    def device_dir(self, address: str) -> Path:
        return (self.root / "bus/pci/devices" / address).resolve()

    def add_driver(self, name: str) -> Path:
        path = self.root / "bus/pci/drivers" / name
        path.mkdir(parents=True, exist_ok=True)
        for attr in ("bind", "unbind", "new_id", "remove_id"):
            (path / attr).touch()
        return path

    def add_function(
        self,
        address: str,
        *,
        vendor: str = "15b3",
        device: str = "101d",
        class_code: str = "0x020000",
        driver: str | None = "mlx5_core",
        netdevs: tuple[str, ...] = (),
        totalvfs: int | None = None,
        sriov_offset: int = 2,
        parent: str = PARENT,
        numa_node: int | None = -1,
        acpi_index: int | None = None,
    ) -> Path:
        """A PCI function; `totalvfs` makes it an SR-IOV PF (with `sriov_numvfs` 0). `numa_node` None leaves the
        attribute out (a kernel without CONFIG_NUMA), `acpi_index` None too (firmware without one)."""
        path = self.root / "devices" / parent / address
        path.mkdir(parents=True)
        (path / "vendor").write_text(f"0x{vendor}\n")
        (path / "device").write_text(f"0x{device}\n")
        (path / "class").write_text(f"{class_code}\n")
        if numa_node is not None:
            (path / "numa_node").write_text(f"{numa_node}\n")
        if acpi_index is not None:
            (path / "acpi_index").write_text(f"{acpi_index}\n")
        (path / "driver_override").write_text("(null)\n")
        (path / "iommu_group").mkdir()
        if totalvfs is not None:
            (path / "sriov_totalvfs").write_text(f"{totalvfs}\n")
            (path / "sriov_numvfs").write_text("0\n")
            (path / "sriov_offset").write_text(f"{sriov_offset}\n")
            (path / "sriov_stride").write_text("1\n")
        link = self.root / "bus/pci/devices" / address
        link.symlink_to(os.path.relpath(path, link.parent))
        for name in netdevs:
            self.add_netdev(address, name)
        if driver is not None:
            self.set_driver(address, driver)
        return path

    def add_netdev(self, address: str, name: str) -> Path:
        path = self.device_dir(address) / "net" / name
        path.mkdir(parents=True)
        (path / "mtu").write_text("1500\n")
        return path

    def set_driver(self, address: str, driver: str | None) -> None:
        """Point (or with None remove) the function's `driver` link, as the driver core does on (un)bind."""
        link = self.device_dir(address) / "driver"
        if os.path.lexists(link):
            link.unlink()
        if driver is not None:
            target = self.add_driver(driver)
            link.symlink_to(os.path.relpath(target, link.parent))

    def add_vf(
        self, pf: str, index: int, *, driver: str | None = "mlx5_core", device: str = "101e", physfn: bool = True
    ) -> str:
        """VF `index` of `pf`: a sibling function directory, the PF's `virtfnN` link and the VF's `physfn` link
        (left out with physfn=False, to model the window upstream #1015 is about)."""
        pf_dir = self.device_dir(pf)
        address = vf_address(pf, index, offset=int((pf_dir / "sriov_offset").read_text()))
        numa_node = pf_dir / "numa_node"
        self.add_function(address, device=device, driver=driver, parent=str(pf_dir.parent.relative_to(
            (self.root / "devices").resolve())), numa_node=int(numa_node.read_text()) if numa_node.exists() else None)
        (pf_dir / f"virtfn{index}").symlink_to(f"../{address}")
        if physfn:
            self.add_physfn(pf, address)
        return address

    def add_physfn(self, pf: str, vf: str) -> None:
        (self.device_dir(vf) / "physfn").symlink_to(f"../{pf}")

    def remove_vfs(self, pf: str) -> None:
        """What `sriov_numvfs` = 0 does: every VF function and link disappears."""
        pf_dir = self.device_dir(pf)
        for entry in sorted(pf_dir.iterdir()):
            if entry.name.startswith("virtfn"):
                vf_dir = self.device_dir(os.readlink(entry).rsplit("/", 1)[-1])
                (self.root / "bus/pci/devices" / vf_dir.name).unlink()
                _rmtree(vf_dir)
                entry.unlink()

    def write_attr(self, address: str, name: str, value: str) -> None:
        (self.device_dir(address) / name).write_text(value)

    def read_attr(self, address: str, name: str) -> str:
        return (self.device_dir(address) / name).read_text()


def _rmtree(path: Path) -> None:
    """Remove a function directory; its links are removed, never followed."""
    for entry in path.iterdir():
        if entry.is_symlink() or entry.is_file():
            entry.unlink()
        else:
            _rmtree(entry)
    path.rmdir()


def connectx6dx(root: Path, *, vfs: int = 0, totalvfs: int = 8) -> SysfsTree:
    """Two ConnectX-6 Dx PFs (`0000:65:00.0` ens1f0np0, `0000:65:00.1` ens1f1np1) on NUMA node 1 with `vfs` VFs
    on the first, an Intel management NIC on another bus (node 0, ACPI index 1: `eno1`), and a non-network
    function (an NVMe drive). The second PF's VFs start at `0000:65:08.2` (First VF Offset 65), so the two PFs'
    VF ranges do not overlap."""
    tree = SysfsTree(root)
    tree.add_function("0000:65:00.0", netdevs=("ens1f0np0",), totalvfs=totalvfs, numa_node=1)
    tree.add_function("0000:65:00.1", netdevs=("ens1f1np1",), totalvfs=totalvfs, sriov_offset=65, numa_node=1)
    tree.add_function("0000:17:00.0", vendor="8086", device="1521", driver="igb", netdevs=("eno1",),
                      parent="pci0000:16/0000:16:02.0", numa_node=0, acpi_index=1)
    tree.add_function("0000:b1:00.0", vendor="144d", device="a80a", class_code="0x010802", driver="nvme",
                      parent="pci0000:b0/0000:b0:02.0")
    for index in range(vfs):
        vf = tree.add_vf("0000:65:00.0", index)
        tree.add_netdev(vf, f"ens1f0v{index}")
    if vfs:
        tree.write_attr("0000:65:00.0", "sriov_numvfs", f"{vfs}\n")
    return tree
