"""Devices and resources the device plugin's unit tests share: the seed's four virtio VFs on two PFs."""

from __future__ import annotations

from vdpa_operator.deviceplugin.config import NetSelector, ResourceConfig
from vdpa_operator.deviceplugin.devices import Inventory, NetDevice, VdpaInfo

VIRTIO, VHOST = "virtio_vdpa", "vhost_vdpa"


def vf(address: str, pf: str = "0000:65:00.0", index: int = 0, *, pf_name: str = "ens1f0",
       driver: str | None = VIRTIO, numa: int | None = 0, chardev: str | None = None) -> NetDevice:
    vdpa = VdpaInfo(f"vdpa:{address}", driver, chardev) if driver is not None else None
    return NetDevice(address=address, vendor="15b3", device="101e", driver="mlx5_core", pf_address=pf,
                     pf_name=pf_name, vf_index=index, link_type="ether", numa_node=numa, vdpa=vdpa)


SEED_VFS = [vf("0000:65:00.2", index=0), vf("0000:65:00.3", index=1),
            vf("0000:65:01.2", "0000:65:00.1", 0, pf_name="ens1f1"),
            vf("0000:65:01.3", "0000:65:00.1", 1, pf_name="ens1f1")]


def inventory(*devices: NetDevice) -> Inventory:
    return Inventory(devices={d.address: d for d in devices})


def resource(name: str, *selectors: NetSelector, exclude_topology: bool = False) -> ResourceConfig:
    return ResourceConfig(name=name, prefix="openshift.io", selectors=selectors, exclude_topology=exclude_topology)


SEED = resource("mlxnics", NetSelector(vendors=("15b3",), devices=("101e",),
                                       root_devices=("0000:65:00.0", "0000:65:00.1"), vdpa_type="virtio"))
