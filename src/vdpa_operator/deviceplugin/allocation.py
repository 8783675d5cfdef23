"""What a container gets for the devices kubelet allocates it, and which devices to prefer. Pure: values in,
values out; the server writes the files and speaks gRPC.

Per container, as upstream's `Allocate` (pkg/resources/server.go, netResourcePool.go, info providers):
- env `PCIDEVICE_<PREFIX>_<RESOURCE>` (upper case, `.` → `_`) = the IDs, comma-separated, and
  `…_INFO` = Go's JSON of `{<ID>: {<provider>: {…}}}` with providers `generic` (`deviceID`), `vdpa` (`mount`
  for vhost — always present here, where upstream's first allocation of a device lacks it — `{}` for virtio),
  `extra` (`additionalInfo`) and `vhost` (`needVhostNet`);
- DeviceSpecs: `/dev/vhost-vdpa-N` (rw) for a vhost device; `/dev/vhost-net` and `/dev/net/tun` for
  `needVhostNet` where they exist; none for virtio (the CNI moves its netdev);
- one device-info file per device (device-info spec 1.1.0) at `<prefix>-<resource>-<ID>-device.json`, with
  `pf-pci-address` and `representor-device` filled (upstream leaves them empty);
- with CDI: the `cdi.k8s.io/<prefix>_net-pci` annotation instead of DeviceSpecs, and a spec of kind
  `<prefix>/net-pci` with one device per VF.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from vdpa_operator.api.golang import GoValue, marshal, omit_empty
from vdpa_operator.deviceplugin.devices import Inventory
from vdpa_operator.deviceplugin.pools import Member, Pool

DEVICE_INFO_VERSION = "1.1.0"
CDI_CLASS = "net-pci"
"""Upstream's CDI device class (`poolType`)."""
CDI_VERSION = "0.5.0"
"""The CDI spec version upstream's library (container-device-interface 0.5.x) writes; runtimes read it."""
CDI_ANNOTATION_PREFIX = "cdi.k8s.io/"
CDI_SPEC_PREFIX = "sriov-dp-"
"""Upstream's spec file prefix: specs it (or we) wrote are found and removed by it."""
VHOST_NET = "/dev/vhost-net"
TUN = "/dev/net/tun"


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    container_path: str
    host_path: str
    permissions: str = "rw"


@dataclass(frozen=True, slots=True)
class ContainerAllocation:
    envs: Mapping[str, str]
    devices: tuple[DeviceSpec, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=dict)
    device_info: Mapping[str, str] = field(default_factory=dict)
    """Device-info file name → its JSON text, one per device."""


def env_key(prefix: str, name: str) -> str:
    """`PCIDEVICE_OPENSHIFT_IO_MLXNICS` (upstream: upper case, `.` → `_`; `/` too, should a prefix hold one)."""
    return f"PCIDEVICE_{prefix}_{name}".replace(".", "_").replace("/", "_").upper()


def device_info_file(pool: Pool, device_id: str) -> str:
    """Upstream `getDPDeviceInfoPath`'s file name: `openshift.io-mlxnics-0000:65:00.2-device.json`."""
    return f"{pool.config.resource_name.replace('/', '-')}-{device_id.replace('/', '-')}-device.json"


def allocate(pool: Pool, device_ids: Sequence[str], inventory: Inventory, *, cdi: bool = False
             ) -> ContainerAllocation:
    """The response for one container; every ID must be a healthy member (the caller checks)."""
    members = [pool.members[i] for i in device_ids]
    key = env_key(pool.config.prefix, pool.config.name)
    info = {m.device.address: _info(pool, m, inventory) for m in members}
    envs = {key: ",".join(m.device.address for m in members), f"{key}_INFO": marshal(info, sort_keys=True)}
    files = {device_info_file(pool, m.device.address): device_info(m) for m in members}
    if cdi:
        return ContainerAllocation(envs, annotations=cdi_annotations(pool, device_ids), device_info=files)
    specs: dict[str, DeviceSpec] = {}
    for member in members:
        for spec in device_specs(member, inventory):
            specs.setdefault(spec.host_path, spec)  # upstream `DeviceSpecExist`: one spec per host path
    return ContainerAllocation(envs, tuple(specs.values()), device_info=files)


def device_specs(member: Member, inventory: Inventory) -> list[DeviceSpec]:
    specs = []
    chardev = member.vhost_chardev
    if chardev:
        specs.append(DeviceSpec(chardev, chardev))
    if member.selector.need_vhost_net and inventory.vhost_net and inventory.tun:
        specs += [DeviceSpec(VHOST_NET, inventory.vhost_net), DeviceSpec(TUN, inventory.tun)]
    return specs


def _info(pool: Pool, member: Member, inventory: Inventory) -> dict[str, GoValue]:
    """One device's `_INFO` entry: provider name → its key/values."""
    address = member.device.address
    info: dict[str, GoValue] = {"generic": {"deviceID": address}}
    if member.selector.vdpa_type:
        info["vdpa"] = {"mount": member.vhost_chardev} if member.vhost_chardev else {}
    extra = {**pool.config.additional_info.get("*", {}), **pool.config.additional_info.get(address, {})}
    if pool.config.additional_info:
        info["extra"] = extra
    if member.selector.need_vhost_net and inventory.vhost_net:
        info["vhost"] = {"net-mount": VHOST_NET, "tun-mount": TUN}
    return info


def device_info(member: Member) -> str:
    """The device-info file (device-info spec 1.1.0), as Go's `json.Marshal(DeviceInfo)` writes it."""
    device = member.device
    vdpa = device.vdpa
    located = {"pci-address": device.address, "pf-pci-address": device.pf_address,
               "representor-device": device.representor}
    if member.selector.vdpa_type and vdpa is not None:
        body: dict[str, GoValue] = {
            "parent-device": vdpa.name, "driver": member.selector.vdpa_type,
            "path": member.vhost_chardev, **located,
        }
        return marshal({"type": "vdpa", "version": DEVICE_INFO_VERSION, "vdpa": omit_empty(body)})
    return marshal({"type": "pci", "version": DEVICE_INFO_VERSION, "pci": omit_empty(located)})


# --- CDI -----------------------------------------------------------------------------------------------------------


def cdi_kind(pool: Pool) -> str:
    return f"{pool.config.prefix}/{CDI_CLASS}"


def cdi_annotations(pool: Pool, device_ids: Sequence[str]) -> dict[str, str]:
    """Upstream `CreateContainerAnnotations`: `cdi.k8s.io/openshift.io_net-pci: openshift.io/net-pci=<ID>,…`."""
    key = f"{CDI_ANNOTATION_PREFIX}{pool.config.prefix}_{CDI_CLASS}"
    return {key: ",".join(f"{cdi_kind(pool)}={device_id}" for device_id in device_ids)}


def cdi_spec_file(pool: Pool) -> str:
    """Upstream's name (`sriov-dp-<vendor>-<class>-<resource>`), written as JSON."""
    return f"{CDI_SPEC_PREFIX}{pool.config.prefix}-{CDI_CLASS}-{pool.config.name}.json"


def cdi_spec(pool: Pool, inventory: Inventory) -> str:
    """The pool's CDI spec: one device per VF. A device with no device node (virtio) gets one environment
    variable naming it as its edit, because a CDI device without edits is invalid."""
    devices: list[GoValue] = []
    for member in pool.members.values():
        specs = device_specs(member, inventory)
        edits: dict[str, GoValue]
        if specs:
            edits = {"deviceNodes": [{"path": s.container_path, "hostPath": s.host_path,
                                      "permissions": s.permissions} for s in specs]}
        else:
            edits = {"env": [f"{cdi_device_env(pool, member.device.address)}={member.device.address}"]}
        devices.append({"name": member.device.address, "containerEdits": edits})
    return marshal({"cdiVersion": CDI_VERSION, "kind": cdi_kind(pool), "devices": devices})


def cdi_device_env(pool: Pool, device_id: str) -> str:
    """`PCIDEVICE_OPENSHIFT_IO_MLXNICS_0000_65_00_2`: one variable per device, so two devices never clash."""
    return f"{env_key(pool.config.prefix, pool.config.name)}_{re.sub(r'[^0-9A-Za-z]', '_', device_id).upper()}"


# --- GetPreferredAllocation ------------------------------------------------------------------------------------


def preferred(pool: Pool, available: Sequence[str], must_include: Sequence[str], size: int) -> list[str]:
    """Which `size` of `available` to give one container: `must_include` first, then devices on the same PF
    as those (else on the one PF that can hold the whole request, the fullest-fitting first), then on the same
    NUMA node, then the rest; ties by PCI address, so the answer is stable."""
    chosen = list(dict.fromkeys(must_include))
    rest = sorted((i for i in dict.fromkeys(available) if i not in chosen), key=_address_key)
    wanted = size - len(chosen)
    if wanted <= 0:
        return chosen
    anchor = pool.members.get(chosen[0]) if chosen else _best_fit(pool, rest, wanted)
    if anchor is None:
        return chosen + rest[:wanted]
    pf, numa = anchor.device.pf_address, anchor.device.numa_node

    def distance(device_id: str) -> tuple[bool, bool, tuple[int, ...]]:
        member = pool.members.get(device_id)
        if member is None:
            return True, True, _address_key(device_id)
        return member.device.pf_address != pf, member.device.numa_node != numa, _address_key(device_id)

    return chosen + sorted(rest, key=distance)[:wanted]


def _best_fit(pool: Pool, candidates: Sequence[str], wanted: int) -> Member | None:
    """A member on the PF with the fewest candidates that still holds `wanted` (keeping fuller PFs for bigger
    requests); the PF with the most candidates when none can hold it all."""
    by_pf: dict[str, list[Member]] = {}
    for device_id in candidates:
        member = pool.members.get(device_id)
        if member is not None:
            by_pf.setdefault(member.device.pf_address, []).append(member)
    if not by_pf:
        return None
    fitting = [group for group in by_pf.values() if len(group) >= wanted]
    group = min(fitting, key=len) if fitting else max(by_pf.values(), key=len)
    return group[0]


def _address_key(device_id: str) -> tuple[int, ...]:
    """PCI addresses in numeric order; anything else after them, by text."""
    parts = re.split(r"[:.]", device_id)
    try:
        return (0, *(int(p, 16) for p in parts))
    except ValueError:
        return (1, *(ord(c) for c in device_id))
