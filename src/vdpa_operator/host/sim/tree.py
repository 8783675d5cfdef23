"""Render the simulated host's state as a sysfs tree (and `/dev` nodes) on disk, in the kernel's layout.

The tree is rendered in pieces — the buses and modules, each PCI function, vdpa device and netdev — each a pure
function of its key (`keys(state)`: the values it is drawn from), so a change re-renders only the pieces whose
key changed (`Rendering.update`) and costs what it changes, not what the host holds. `sync(root, state,
rendering)` makes `<root>/sys` and `<root>/dev` match, writing only the entries that changed (without a
rendering: after comparing the whole tree on disk), attribute files atomically (temp file + rename) so a
concurrent reader never sees half a value. Creation goes in the
kernel's order — a device directory and its attributes before the links that point at it — and removal in
reverse, so readers polling the tree (the wait-for-physfn loop) see states the kernel could show too.

Layout (what the Linux adapter's `SysfsPci`, `VdpaSysfs` and `RtnlLinks.switch_port` read unchanged):

    sys/devices/pci0000:64/0000:64:00.0/<PF>/{vendor,device,class,driver_override,sriov_*,virtfnN→../<VF>}
    sys/devices/…/<PF>/net/<pf netdev>/, …/<PF>/net/<representor>/      (representors: parent = PF, ≥ 5.8)
    sys/devices/…/<VF>/{physfn→../<PF>,net/<vf netdev>/,<vdpa name>/,virtio<N>/net/<ifname>/}
    sys/devices/…/<VF>/<vdpa name>/{driver→,driver_override,vhost-vdpa-<minor>/dev}
    sys/devices/virtual/net/lo/
    sys/bus/pci/{devices/<addr>→,drivers/<drv>/{bind,unbind,<addr>→},drivers_probe,drivers_autoprobe}
    sys/bus/vdpa/{devices/<name>→,drivers/<drv>/{bind,unbind},drivers_probe,drivers_autoprobe}   (module vdpa)
    sys/bus/virtio/{devices/virtio<N>→,drivers/virtio_net/}
    sys/class/net/<ifname>→  (netdevs of the node's own netns only: sysfs hides other namespaces' netdevs)
    sys/module/<name>/initstate
    dev/vhost-vdpa-<minor>   (a char device when running as root, else a plain file holding major:minor)
    dev/vhost-net, dev/net/tun   (static nodes, always present: rule 28 in kernel/modules.py; same stand-in rule)

Left out: attributes no reader here needs (resource, config, msi_irqs, power/, uevent contents).
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path

from vdpa_operator.host.sim.state import (
    CX6DX_VF,
    PCI_DRIVER_MODULES,
    VDPA_BUS_DRIVERS,
    Netdev,
    PciFn,
    Representors,
    State,
    carrier,
    link_speed,
    oper_state,
    representors,
    switch_port,
)

RO, RW, WO = 0o444, 0o644, 0o200
MANAGED = ("sys", "dev")
MISC_MAJOR = 10
STATIC_NODES = {"dev/vhost-net": (MISC_MAJOR, 238), "dev/net/tun": (MISC_MAJOR, 200)}
"""Misc char devices every node has from boot (VHOST_NET_MINOR, TUN_MINOR in include/linux/miscdevice.h)."""
_STAND_IN = re.compile(r"\d+:\d+\n")


@dataclass(frozen=True)
class Dir:
    pass


@dataclass(frozen=True)
class File:
    content: str
    mode: int = RO


@dataclass(frozen=True)
class Symlink:
    target: str
    """Relative, as the kernel's sysfs links are."""


@dataclass(frozen=True)
class CharDev:
    major: int
    minor: int


Entry = Dir | File | Symlink | CharDev


class _Tree:
    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}

    def dir(self, path: str) -> None:
        if path in self.entries:
            return
        parent = path.rpartition("/")[0]
        if parent:
            self.dir(parent)
        self.entries[path] = Dir()

    def file(self, path: str, content: str, mode: int = RO) -> None:
        self.dir(path.rpartition("/")[0])
        self.entries[path] = File(content, mode)

    def link(self, path: str, target: str) -> None:
        """A symlink at `path` pointing at the tree path `target`, stored relative."""
        parent = path.rpartition("/")[0]
        self.dir(parent)
        self.entries[path] = Symlink(_relative(target, parent))

    def chardev(self, path: str, major: int, minor: int) -> None:
        self.dir(os.path.dirname(path))
        self.entries[path] = CharDev(major, minor)


def _relative(target: str, start: str) -> str:
    """`os.path.relpath` for the tree's normalised relative paths, without its filesystem calls."""
    t, s = target.split("/"), start.split("/")
    common = 0
    while common < min(len(t), len(s)) and t[common] == s[common]:
        common += 1
    return "/".join([".."] * (len(s) - common) + t[common:]) or "."


def function_dir(fn: PciFn) -> str:
    return f"sys/devices/{fn.parent}/{fn.address}"


Key = tuple[Hashable, ...]
"""Everything one piece of the tree is rendered from (its kind first): the piece is a pure function of its key, so
a state change re-renders only the pieces whose key changed (`Rendering.update`)."""


def keys(state: State) -> list[Key]:
    """The pieces `state` shows: one for the buses and modules, one per PCI function, vdpa device and netdev of
    the node's netns. Cheap (no rendering): it runs on every change."""
    found: list[Key] = [("global", state.pci_autoprobe, state.vdpa_autoprobe, tuple(state.modules))]
    for group, address in enumerate(sorted(state.pci)):
        found.append(_pci_key(state, state.pci[address], group))
    if "vdpa" in state.modules:
        virtio_net = "virtio_net" in state.modules
        found.extend((
            "vdpa", dev.name, function_dir(state.pci[dev.vf]), dev.driver_override, dev.driver, dev.vhost_minor,
            state.config.vhost_major, dev.virtio, virtio_net,
        ) for dev in state.vdpa.values())
    reps = representors(state)
    found.extend(_netdev_key(state, nd, reps) for nd in state.netdevs if nd.netns is None)
    return found


def _pci_key(state: State, fn: PciFn, group: int) -> Key:
    pf = state.pfs.get(fn.address)
    sriov = None if pf is None else (pf.totalvfs, pf.numvfs, pf.offset, pf.stride, pf.drivers_autoprobe)
    physfn = None if fn.pf is None else (function_dir(state.pci[fn.pf]), fn.vf_index)
    return ("pci", function_dir(fn), fn.address, fn.vendor, fn.device, fn.class_code, _numa_node(state, fn),
            fn.driver_override, fn.driver, group, sriov, physfn)


def _netdev_key(state: State, nd: Netdev, reps: Representors) -> Key:
    up = carrier(state, nd, reps)
    port = switch_port(state, nd)
    return ("netdev", netdev_dir(state, nd), nd.name, nd.kind == "loopback", nd.mac, nd.mtu, nd.ifindex, nd.up,
            oper_state(state, nd, up), up, link_speed(state, nd, up),
            None if port is None else (port.port_name, port.switch_id))


def render_piece(key: Key) -> dict[str, Entry]:
    """The directories, files, links and char devices of one piece (its parent directories included)."""
    t = _Tree()
    kind, *inputs = key
    _PIECES[str(kind)](t, *inputs)
    return t.entries


def render(state: State) -> dict[str, Entry]:
    """Every entry `state` shows, by path."""
    entries: dict[str, Entry] = {}
    for key in keys(state):
        entries.update(render_piece(key))
    return entries


def _global(t: _Tree, pci_autoprobe: bool, vdpa_autoprobe: bool, modules: tuple[str, ...]) -> None:
    for path in ("sys/bus/pci/devices", "sys/bus/pci/drivers", "sys/class/net", "sys/module",
                 "sys/bus/virtio/devices", "sys/bus/virtio/drivers", "sys/kernel/iommu_groups", "dev"):
        t.dir(path)
    t.file("sys/bus/pci/drivers_probe", "", WO)
    t.file("sys/bus/pci/drivers_autoprobe", f"{int(pci_autoprobe)}\n", RW)
    for module in modules:
        t.file(f"sys/module/{module}/initstate", "live\n")
    for path, (major, minor) in STATIC_NODES.items():
        t.chardev(path, major, minor)
    for driver, module in PCI_DRIVER_MODULES.items():
        if module in modules:
            t.file(f"sys/bus/pci/drivers/{driver}/bind", "", WO)
            t.file(f"sys/bus/pci/drivers/{driver}/unbind", "", WO)
            t.link(f"sys/bus/pci/drivers/{driver}/module", f"sys/module/{module}")
    if "virtio_net" in modules:
        t.file("sys/bus/virtio/drivers/virtio_net/bind", "", WO)
        t.file("sys/bus/virtio/drivers/virtio_net/unbind", "", WO)
    if "vdpa" not in modules:
        return
    t.dir("sys/bus/vdpa/devices")
    t.dir("sys/bus/vdpa/drivers")
    t.file("sys/bus/vdpa/drivers_probe", "", WO)
    t.file("sys/bus/vdpa/drivers_autoprobe", f"{int(vdpa_autoprobe)}\n", RW)
    for driver in VDPA_BUS_DRIVERS:
        if driver in modules:
            t.file(f"sys/bus/vdpa/drivers/{driver}/bind", "", WO)
            t.file(f"sys/bus/vdpa/drivers/{driver}/unbind", "", WO)
            t.link(f"sys/bus/vdpa/drivers/{driver}/module", f"sys/module/{driver}")


def _pci(t: _Tree, d: str, address: str, vendor: str, device: str, class_code: str, numa_node: int,
         driver_override: str | None, driver: str | None, group: int, sriov: tuple[int, int, int, int, bool] | None,
         physfn: tuple[str, int] | None) -> None:
    t.file(f"{d}/vendor", f"0x{vendor}\n")
    t.file(f"{d}/device", f"0x{device}\n")
    t.file(f"{d}/class", f"{class_code}\n")
    t.file(f"{d}/subsystem_vendor", f"0x{vendor}\n")
    t.file(f"{d}/numa_node", f"{numa_node}\n")
    _bus_device(t, d, "pci", address, driver_override, driver)
    t.dir(f"sys/kernel/iommu_groups/{group}/devices")
    t.link(f"sys/kernel/iommu_groups/{group}/devices/{address}", d)
    t.link(f"{d}/iommu_group", f"sys/kernel/iommu_groups/{group}")
    if sriov is not None:
        totalvfs, numvfs, offset, stride, autoprobe = sriov
        t.file(f"{d}/sriov_totalvfs", f"{totalvfs}\n")
        t.file(f"{d}/sriov_numvfs", f"{numvfs}\n", RW)
        t.file(f"{d}/sriov_offset", f"{offset}\n")
        t.file(f"{d}/sriov_stride", f"{stride}\n")
        t.file(f"{d}/sriov_vf_device", f"{CX6DX_VF}\n")
        t.file(f"{d}/sriov_drivers_autoprobe", f"{int(autoprobe)}\n", RW)
    if physfn is not None:
        pf_dir, vf_index = physfn
        t.link(f"{d}/physfn", pf_dir)
        t.link(f"{pf_dir}/virtfn{vf_index}", d)


def _bus_device(t: _Tree, d: str, bus: str, name: str, driver_override: str | None, driver: str | None) -> None:
    """What the driver core shows of a device at `d` on `bus`: its override, its subsystem, its link under the
    bus and, when bound, the links between it and its driver."""
    t.file(f"{d}/driver_override", f"{driver_override or '(null)'}\n", RW)
    t.link(f"{d}/subsystem", f"sys/bus/{bus}")
    t.link(f"sys/bus/{bus}/devices/{name}", d)
    if driver is not None:
        t.link(f"{d}/driver", f"sys/bus/{bus}/drivers/{driver}")
        t.link(f"sys/bus/{bus}/drivers/{driver}/{name}", d)


def _numa_node(state: State, fn: PciFn) -> int:
    """The NIC's node; a VF sits under its PF's root port, so it shows the PF's."""
    pf = state.pfs.get(fn.pf or fn.address)
    return state.config.nics[pf.nic].numa_node if pf is not None else -1


def _vdpa(t: _Tree, name: str, vf_dir: str, driver_override: str | None, driver: str | None,
          vhost_minor: int | None, vhost_major: int, virtio: int | None, virtio_net: bool) -> None:
    d = f"{vf_dir}/{name}"
    _bus_device(t, d, "vdpa", name, driver_override, driver)
    if vhost_minor is not None:
        child = f"vhost-vdpa-{vhost_minor}"
        t.file(f"{d}/{child}/dev", f"{vhost_major}:{vhost_minor}\n")
        t.chardev(f"dev/{child}", vhost_major, vhost_minor)
    if virtio is not None:
        # NOTE: mlx5's vdpa DMA device is the VF, so virtio<N> sits next to the vdpa device (dataplane §2.2).
        v = f"{vf_dir}/virtio{virtio}"
        t.file(f"{v}/device", "0x0001\n")
        t.file(f"{v}/vendor", "0x15b3\n")
        t.file(f"{v}/status", "0x0000000f\n")
        t.link(f"{v}/subsystem", "sys/bus/virtio")
        if virtio_net:
            t.link(f"{v}/driver", "sys/bus/virtio/drivers/virtio_net")
        t.dir(f"{v}/net")
        t.link(f"sys/bus/virtio/devices/virtio{virtio}", v)


def netdev_dir(state: State, nd: Netdev) -> str:
    if nd.kind == "loopback" or nd.pci is None:
        return f"sys/devices/virtual/net/{nd.name}"
    d = function_dir(state.pci[nd.pci])
    if nd.kind == "virtio":
        return f"{d}/virtio{state.vdpa[nd.vdpa or ''].virtio}/net/{nd.name}"
    return f"{d}/net/{nd.name}"


def _netdev(t: _Tree, d: str, name: str, loopback: bool, mac: str, mtu: int, ifindex: int, up: bool,
            operstate: str, carrier: bool, speed: int | None, port: tuple[str, str] | None) -> None:
    t.file(f"{d}/address", f"{'00:00:00:00:00:00' if loopback else mac}\n")
    t.file(f"{d}/broadcast", "00:00:00:00:00:00\n" if loopback else "ff:ff:ff:ff:ff:ff\n")
    t.file(f"{d}/addr_len", "6\n")
    t.file(f"{d}/mtu", f"{mtu}\n", RW)
    t.file(f"{d}/ifindex", f"{ifindex}\n")
    t.file(f"{d}/iflink", f"{ifindex}\n")
    t.file(f"{d}/type", "772\n" if loopback else "1\n")
    t.file(f"{d}/flags", f"0x{(0x8 if loopback else 0x1002) | int(up):x}\n", RW)
    t.file(f"{d}/operstate", f"{operstate}\n")
    if up:
        t.file(f"{d}/carrier", f"{int(carrier)}\n", RW)
    if speed is not None:
        t.file(f"{d}/speed", f"{speed}\n")
    if port is not None:
        port_name, switch_id = port
        t.file(f"{d}/phys_port_name", f"{port_name}\n")
        t.file(f"{d}/phys_switch_id", f"{switch_id}\n")
    t.link(f"{d}/subsystem", "sys/class/net")
    if not loopback:
        t.link(f"{d}/device", os.path.dirname(os.path.dirname(d)))
    t.link(f"sys/class/net/{name}", d)


_PIECES: dict[str, Callable[..., None]] = {"global": _global, "pci": _pci, "vdpa": _vdpa, "netdev": _netdev}
"""How each kind of piece is rendered from its key's inputs."""


# --- applying ---------------------------------------------------------------------------------------------------


def _kind(path: Path) -> Entry | None:
    """What is at `path` now, as an Entry without content (File("") for files), or None."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return Symlink(os.readlink(path))
    if stat.S_ISDIR(st.st_mode):
        return Dir()
    if stat.S_ISCHR(st.st_mode):
        return CharDev(os.major(st.st_rdev), os.minor(st.st_rdev))
    return File("")


def _existing(root: Path) -> set[str]:
    found: set[str] = set()
    for top in MANAGED:
        base = root / top
        if not base.exists():
            continue
        found.add(top)
        for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
            rel = os.path.relpath(dirpath, root)
            found.update(f"{rel}/{name}" for name in dirnames + filenames)
    return found


def _same(path: Path, want: Entry, have: Entry) -> bool:
    if isinstance(want, File):
        if not isinstance(have, File):
            return False
        try:
            return path.read_text() == want.content
        except OSError:
            return False
    if isinstance(want, CharDev) and not _can_mknod():
        return isinstance(have, File) and path.read_text() == _stand_in(want)
    return want == have


def _stand_in(entry: CharDev) -> str:
    """What stands for a char device where mknod is not permitted: a plain file holding `major:minor`."""
    return f"{entry.major}:{entry.minor}\n"


def is_char_device(path: Path) -> bool:
    """Whether `sync` rendered a char device at `path`: the node itself, or its stand-in file where mknod was
    impossible. OSError (ENOENT, …) as stat(2) gives it."""
    st = os.stat(path)
    if stat.S_ISCHR(st.st_mode):
        return True
    return stat.S_ISREG(st.st_mode) and _STAND_IN.fullmatch(path.read_text()) is not None


def _can_mknod() -> bool:
    return os.geteuid() == 0


class Rendering:
    """The tree a state shows, kept by piece so that a change re-renders only what it touched: each key's
    entries, and every path with its entry and how many pieces declare it (a directory is shared by many)."""

    def __init__(self) -> None:
        self.pieces: dict[Key, dict[str, Entry]] = {}
        self.paths: dict[str, tuple[Entry, int]] = {}

    @classmethod
    def of(cls, state: State) -> Rendering:
        rendering = cls()
        rendering.update(state)
        return rendering

    def entries(self) -> dict[str, Entry]:
        return {path: entry for path, (entry, _) in self.paths.items()}

    def update(self, state: State) -> dict[str, Entry | None]:
        """Become the rendering of `state`; return what each path that changed showed before (None: nothing)."""
        wanted = dict.fromkeys(keys(state))
        before: dict[str, Entry | None] = {}
        for key in [k for k in self.pieces if k not in wanted]:
            for path in self.pieces.pop(key):
                entry, count = self.paths[path]
                before.setdefault(path, entry)
                if count == 1:
                    del self.paths[path]
                else:
                    self.paths[path] = (entry, count - 1)
        for key in [k for k in wanted if k not in self.pieces]:
            self.pieces[key] = piece = render_piece(key)
            for path, entry in piece.items():
                had = self.paths.get(path)
                before.setdefault(path, None if had is None else had[0])
                self.paths[path] = (entry, 1 if had is None else had[1] + 1)
        return {path: entry for path, entry in before.items() if entry != self.paths.get(path, (None,))[0]}


def sync(root: Path, state: State, rendering: Rendering | None = None) -> Rendering:
    """Make `<root>/sys` and `<root>/dev` show `state`; return its rendering. With `rendering` (what the tree
    shows now, updated in place), only the pieces that changed are written; without it the tree on disk is
    compared in full (creating a host, attaching after a crash)."""
    if rendering is None:
        rendering = Rendering.of(state)
        _apply_full(root, rendering.entries())
    else:
        _apply_changes(root, rendering.update(state), rendering.paths)
    return rendering


def _apply_changes(root: Path, before: dict[str, Entry | None], now: dict[str, tuple[Entry, int]]) -> None:
    stale = [p for p in before if p not in now]
    changed = [p for p, entry in before.items() if entry is not None and p in now]
    missing = [p for p in before if p in now]
    _apply(root, {p: now[p][0] for p in missing}, stale, changed,
           lambda p: isinstance(before[p], Symlink), lambda p: isinstance(before[p], File))


def _apply_full(root: Path, desired: dict[str, Entry]) -> None:
    existing = _existing(root)
    stale = [p for p in existing if p not in desired]
    changed = [p for p in desired if p in existing and not _same(root / p, desired[p], _kind(root / p) or Dir())]
    missing = [p for p in desired if not os.path.lexists(root / p) or p in changed]
    _apply(root, {p: desired[p] for p in missing}, stale, changed,
           lambda p: isinstance(_kind(root / p), Symlink), lambda p: isinstance(_kind(root / p), File))


def _apply(root: Path, create: dict[str, Entry], stale: list[str], changed: list[str],
           was_link: Callable[[str], bool], was_file: Callable[[str], bool]) -> None:
    # Removal: links first (nothing points into a directory that is going), then the rest deepest first.
    for path in sorted(stale, key=lambda p: (not was_link(p), -p.count("/"))):
        _remove(root / path)
    for path in changed:
        if not isinstance(create[path], File) or not was_file(path):
            _remove(root / path)
    # Creation: directories and attributes before the links that point at them (device_add order).
    for path in sorted(create, key=lambda p: (isinstance(create[p], Symlink), p.count("/"), p)):
        _create(root / path, create[path])


def _remove(path: Path) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        pass


def _create(path: Path, entry: Entry) -> None:
    if isinstance(entry, Dir):
        path.mkdir(exist_ok=True)
    elif isinstance(entry, File):
        # os-level calls: on a disk file system every metadata operation counts (a first apply writes thousands)
        tmp = f"{path.parent}/.{path.name}.tmp{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, entry.mode)
        try:
            os.write(fd, entry.content.encode())
            os.fchmod(fd, entry.mode)  # the umask may have taken bits off
        finally:
            os.close(fd)
        os.replace(tmp, path)
    elif isinstance(entry, Symlink):
        try:
            os.symlink(entry.target, path)
        except FileExistsError:
            path.unlink()
            os.symlink(entry.target, path)
    else:
        if _can_mknod():
            try:
                os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(entry.major, entry.minor))
                return
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.EACCES):
                    raise
        path.write_text(_stand_in(entry))
