"""A ConnectX-6 Dx host as the kernel shows it: the state, the rules, and the errno (the simulated kernel).

`SimKernel.create(root, nics=…)` makes a host under `root`; `SimKernel.open(root)` attaches another process or
a restarted one to it. State is `<root>/state.json`, rewritten atomically after each change under an fcntl
lock held around load-mutate-save; the sysfs tree under `<root>/sys` (kernel layout, `tree.py`) and the char
devices under `<root>/dev` are rendered from it after every change. The adapters in this package (`sysfs`,
`devlink`, `vdpa`, `rtnl`, `ethtool`, `modules`, `devnodes`) are thin: every rule lives here.

Sources are Debian's linux-source-6.1 (6.1.192); "inference" marks what the sources do not show.
Each behaviour below should be marked "proven on kernel" (tests/kernel) or "kernel cannot show":

PCI / SR-IOV (drivers/pci/iov.c, drivers/base/{bus,dd}.c, drivers/pci/pci-driver.c)
 1. VF addresses by routing-ID arithmetic: PF devfn + First VF Offset + i × VF Stride, carrying into the bus
    number (`pci_iov_virtfn_bus/devfn`). Stride 1; PF k's offset puts its VFs right after PF k-1's (PF0 of a
    two-port card: offset 2 → 0000:65:00.2…0000:65:01.1; PF1: offset 9 → 0000:65:01.2…). Generic SR-IOV
    packing; inference for the exact CX-6 Dx firmware values. `sriov_offset`/`sriov_stride` shown.
    `numa_node` is the NIC's (`NicSpec.numa_node`; -1 without NUMA): VFs show their PF's, as
    `pci_device_add` takes it from the bus (the PF's, or a virtual bus under the same host bridge).
 2. `sriov_numvfs` (`sriov_numvfs_store`): unparsable → EINVAL; > sriov_totalvfs → ERANGE; == current →
    nothing; PF without driver → ENOENT; 0 → VFs removed (with their netdevs, representors, vdpa devices);
    N while N' ≠ 0 exist → EBUSY.
 3. New VFs are probed (`sriov_drivers_autoprobe` 1) and bind to mlx5_core (id table 15b3:101e); each bound
    VF gets a netdev `<pf>v<n>` (systemd's SR-IOV naming; the kernel first calls it ethN).
 4. `vf_create_delay`: `sriov_numvfs` reads N at once, the VFs (virtfn/physfn links, dirs) appear later (the
    window of upstream #1015). Inference: on real hardware the write itself is synchronous.
 5. bind (`bind_store`): unknown device or no match (driver_override names another driver, or not in the id
    table) → ENODEV; already bound → EBUSY (`__driver_probe_device`). unbind (`unbind_store`): not bound to
    that driver → ENODEV. `drivers_probe`: unknown → ENODEV, bound → nothing, else first matching driver.
    `driver_override` (`driver_set_override`): newline/empty clears; reads `(null)` when unset.
 6. Unbinding a PF from mlx5_core disables SR-IOV (mlx5 main.c `remove_one` → `mlx5_sriov_disable`) and
    removes its netdev and devlink instance; unbinding a VF removes its netdev and its vdpa management
    device, hence its vdpa device (auxiliary device removal).
 7. Other writes to read-only attributes → EACCES; writing `class/net/<if>/mtu` changes the MTU.
eswitch / devlink (mlx5 eswitch_offloads.c `mlx5_devlink_eswitch_mode_set`, esw/devlink_port.c, en/devlink.c,
devlink.c; net/devlink/leftover.c)
 8. Unknown devlink handle → ENODEV (`devlink_get_from_attrs`); eswitch on a VF → EOPNOTSUPP
    (`mlx5_eswitch_check`: not an eswitch manager); same mode → nothing.
 9. switchdev is refused with EBUSY while any VF is bound to a driver (`switchdev_requires_unbound_vfs`).
    NOTE: mlx5 6.1's mode_set has no such check; the requirement is NVIDIA's documented procedure, which
    upstream follows (§4.5: unbind VFs, switchdev, rebind). EBUSY is mlx5's "E-Switch is busy" errno.
10. switchdev: one representor per VF, named `<pf>_<vf>` (what upstream's 20-switchdev udev rule makes of
    the kernel's name), parent = the PF PCI device so it is listed under the PF's `net/` (kernel ≥ 5.8),
    phys_port_name `pf<pfnum>vf<n>`, the NIC's phys_switch_id (system image GUID, shared by both ports),
    devlink port flavour pcivf (index vhca_id<<16 | vf+1, pfnum, vfnum); the PF netdev stays, as the uplink
    (flavour physical, index vhca_id<<16 | 0xffff, phys_port_name `p<pfnum>`, same in legacy); VFs created
    while in switchdev get representors at once.
11. legacy: representors go; vdpa devices and management devices of the PF's VFs go (upstream's observation,
    pkg/host/internal/vdpa; inference for the mechanism: the VFs lose the vnet capability until re-probed).
12. A bound VF has its own devlink instance `pci/<VF>` with one port of flavour virtual; its netdev has no
    phys_port_name (EOPNOTSUPP in the kernel; the sim omits the file) and no phys_switch_id.
13. `flow_steering_mode` (string, cmode runtime, default dmfs) on every mlx5 devlink instance: unknown
    parameter → EINVAL; not dmfs/smfs → EINVAL; smfs while switchdev → EOPNOTSUPP
    (`mlx5_devlink_fs_mode_validate`); smfs without the capability → EOPNOTSUPP; another cmode → EOPNOTSUPP
    (`__devlink_nl_cmd_param_set_doit`). dmfs is accepted in switchdev, as in the kernel.
ethtool (net/ethtool/ioctl.c `ethtool_get_drvinfo`, mlx5 en_ethtool.c, en_rep.c, en_main.c, virtio_net.c)
14. PF/VF netdevs: driver mlx5_core, version = kernel release (mlx5 sets none), bus-info = PCI address;
    representors: driver mlx5e_rep, empty bus-info; virtio netdevs: virtio_net 1.0.0, bus-info = vdpa name;
    lo: EOPNOTSUPP.
15. hw-tc-offload: present on PF, VF and representor netdevs; off on the PF in legacy, on once it is the
    switchdev uplink (`wanted_features |= NETIF_F_HW_TC`) and on representors; absent (None) on virtio.
vdpa (drivers/vdpa/vdpa.c `vdpa_nl_cmd_dev_add_set_doit`, mlx5/net/mlx5_vnet.c, drivers/base/bus.c)
16. `vdpa` family present iff module vdpa is loaded; a management device `pci/<VF>` per VF that mlx5_core
    probed while its PF was in switchdev, while mlx5_vdpa is loaded (supported_classes net, max_supported_vqs
    = max_num_virtio_queues + 1).
17. DEV_NEW, in the kernel's order: max_vqp 0 → EINVAL; unknown mgmtdev (or bus mismatch) → ENODEV; config
    attributes beyond the mgmtdev's mask → EOPNOTSUPP (mask configurable: MAC only for old kernels);
    a device already on that VF → ENOSPC (checked before the name, so the same name twice on one VF is
    ENOSPC); max_vqp > max_vqs/2 → EINVAL; duplicate name → EEXIST (`__vdpa_register_device`).
    max_vqs = 2 × max_vqp (default 1 pair) + 1 control queue; vendor 0x15b3; max_vq_size 256.
    MAC: the given one, else the VF's vport (administrative) MAC; none → virtio_net picks one.
18. After DEV_NEW the bus probes (drivers_autoprobe 1): the first loaded of virtio_vdpa/vhost_vdpa binds;
    loading a bus driver later binds unbound devices (`driver_attach`).
19. virtio_vdpa: `virtio<N>` (lowest free index) under the VF PCI dir (mlx5: parent is the DMA device) with a
    virtio_net netdev `eth<k>` (lowest free); MTU limit = the device MTU (VIRTIO_NET_F_MTU).
    vhost_vdpa: `vhost-vdpa-<minor>` under the vdpa device, minor from its own IDA, `/dev/vhost-vdpa-<minor>`.
20. DEV_DEL: missing → ENODEV; unbinds first (netdev / char device go away).
21. vdpa bus bind/unbind/driver_override/drivers_probe as in 5.
netdevs (net/core/dev.c, rtnetlink.c, mlx5 en_rep.c)
22. Lookup by name or altname per netns; rename: invalid name → EINVAL, taken → EEXIST, running link →
    brought down and up again around it (as RtnlLinks does); representors and the switchdev uplink cannot
    change netns (NETIF_F_NETNS_LOCAL → EINVAL); a move takes the link down and flushes its addresses and
    routes; name taken in the target → EEXIST; MTU outside [min, max] → EINVAL (mlx5 max 9978);
    representors have no ndo_set_mac_address → EOPNOTSUPP; invalid MAC → EADDRNOTAVAIL.
23. Operstate: down when admin down; VF and virtio netdevs in switchdev follow their representor's admin
    state (vport state); lo shows `unknown`. Connected routes for addresses of up links; IPv6 link-local
    (EUI-64) address and fe80::/64 route once a link is up with carrier; static routes: dev down → ENETDOWN,
    unreachable gateway → ENETUNREACH, duplicate → EEXIST; flushed when their link goes down.
24. IFLA_VF_MAC on the PF: VF index beyond numvfs → EINVAL, multicast/zero MAC → EINVAL; cleared with the VFs.
25. Privileged mode: each virtio netdev and its representor are the two ends of a real veth pair in the node
    netns, so traffic is real; link changes are applied to the real links (RtnlLinks) and mirrored here.
26. A pod netns that disappears (`netns_deleted`): its physical netdevs (VF, virtio) return to the node
    netns, renamed `dev<k>` when their name is taken (`default_device_exit_net`).
modules
27. Loading resolves dependencies (vhost_vdpa → vdpa, vhost, vhost_iotlb); unknown → ENOENT; unloading a
    module in use → EAGAIN (EWOULDBLOCK, `delete_module`).
device nodes (drivers/char/misc.c, kmod `static-nodes`)
28. `/dev/vhost-net` (10:238) and `/dev/net/tun` (10:200) always exist, loaded module or not: systemd-tmpfiles
    creates them at boot from the `devname:` aliases of vhost_net and tun (opening one loads its module).
    Inference for nodes without systemd (the kernel bed's guest has neither until the module is loaded).
vdpa net config (drivers/vdpa/vdpa.c: 6.12's `vdpa_nl_cmd_dev_attr_set_doit`, 6.1's `vdpa_dev_net_config_fill`;
mlx5/net/mlx5_vnet.c)
29. DEV_ATTR_SET (MAC), in the kernel's order: a kernel without the command (`vdpa_attr_set` False, i.e. before
    ≈6.12) → EOPNOTSUPP whatever the request (genl rejects an unknown cmd first; proven on kernel, 6.1); MAC
    not 6 bytes → EINVAL (attribute policy); unknown device → ENODEV. It changes the config-space MAC only: a
    bound virtio_net netdev keeps the MAC it read at probe and shows the new one after a rebind (inference:
    virtio_net reads it once). mlx5's MPFS update is not modelled. The ≥6.12 half: kernel cannot show.
30. DEV_CONFIG_GET: unknown device → ENODEV; the MAC and MTU given to DEV_NEW read back (proven on kernel with
    vdpa_sim_net). mlx5 offers VIRTIO_NET_F_MAC only when the device has a MAC (the given one or the VF's
    administrative one at DEV_NEW), and F_MTU, MQ and F_STATUS always (inference from mlx5_vnet.c): MAC absent
    without one; MTU, max_vqp (1 unless DEV_NEW asked for more) and the link status always there, the link up
    while the VF's vport is, i.e. while its representor is admin up (rule 23).
network namespaces
31. A netns is a string: a name and `/var/run/netns/<name>` are one netns; `/proc/1/ns/net` and
    `/proc/self/ns/net` are the node's own (the adapter runs in the node's init netns, as a hostNetwork pod
    does). `netns_exists`: the node's own is there; model only, so is any name or `/var/run/netns/` path (the
    model can move links into any of them), and another path must be an nsfs file of type net, as on Linux;
    privileged, the real kernel answers for everything but the node's own (proven on kernel).
"""

from __future__ import annotations

import errno as E
import fcntl
import hashlib
import ipaddress
import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vdpa_operator.host.errors import HostError, KernelModuleMissing, error_from_errno
from vdpa_operator.host.linux.netns import NETNS_RUN_DIR, is_net_namespace, netns_path
from vdpa_operator.host.port import NO_CONFIG
from vdpa_operator.host.sim import tree
from vdpa_operator.host.sim.faults import Faults, take
from vdpa_operator.host.sim.state import (
    CX6DX_PF,
    CX6DX_VF,
    DEFAULT_NICS,
    MELLANOX,
    PCI_DRIVER_MODULES,
    VDPA_BUS_DRIVERS,
    Config,
    Netdev,
    NicSpec,
    PciFn,
    PfState,
    RouteEntry,
    State,
    VdpaDev,
    carrier,
    from_json,
    link_speed,
    oper_state,
    rep_of,
    switch_port,
    to_json,
)
from vdpa_operator.host.types import (
    Address,
    DevlinkHandle,
    DevlinkParam,
    DevlinkPort,
    DriverInfo,
    Link,
    PciAddress,
    PortFlavour,
    Route,
    SwitchPort,
    VdpaConfig,
    VdpaDevice,
    VdpaMgmtDev,
    VdpaNetConfig,
)

if TYPE_CHECKING:
    from vdpa_operator.host.sim.realnet import RealNet

logger = logging.getLogger(__name__)

STATE_FILE = "state.json"
LOCK_FILE = ".lock"
PENDING_MARKER = ".pending"

MODULE_DEPS: dict[str, tuple[str, ...]] = {
    "mlx5_core": (), "vdpa": (), "mlx5_vdpa": ("vdpa", "mlx5_core"), "virtio_vdpa": ("vdpa",),
    "vhost_vdpa": ("vdpa", "vhost", "vhost_iotlb"), "vhost": (), "vhost_iotlb": (), "virtio_net": (),
    "vfio_pci": ("vfio",), "vfio": (), "openvswitch": (), "veth": (),
}
DEFAULT_MODULES = ("mlx5_core", "vdpa", "mlx5_vdpa", "virtio_net")
"""Loaded at boot on a CX-6 Dx node (mlx5_vdpa auto-loads through its auxiliary alias); the operator loads
virtio_vdpa/vhost_vdpa itself (upstream §4.5)."""
CONFIG_ATTRS = ("mac", "mtu", "max_vqp")
MLX5_MAX_MTU = 9978
VIRTIO_NET_ID = 1
VDPA_MAX_VQ_SIZE = 256
UPLINK_VPORT = 0xFFFF
ZERO_MAC = "00:00:00:00:00:00"
_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_IFNAME_BAD = re.compile(r"[/:\s]")


class KernelError(OSError):
    """What the simulated kernel answers: an errno plus the extack-like detail. An OSError, so sysfs writes
    surface it exactly as a failing write(2) would."""

    def __init__(self, errno: int, detail: str = "") -> None:
        super().__init__(errno, os.strerror(errno))
        self.detail = detail


class FamilyMissing(KernelError):
    """A generic netlink family that is not registered (its module is not loaded)."""


# --- pure helpers ----------------------------------------------------------------------------------------------


def split_address(address: str) -> tuple[int, int, int]:
    """`0000:65:00.2` → (domain, bus, devfn)."""
    domain, bus, rest = address.split(":")
    dev, fn = rest.split(".")
    return int(domain, 16), int(bus, 16), int(dev, 16) << 3 | int(fn)


def join_address(domain: int, bus: int, devfn: int) -> str:
    return f"{domain:04x}:{bus:02x}:{devfn >> 3:02x}.{devfn & 7}"


def vf_address(pf: str, index: int, offset: int, stride: int) -> str:
    """The VF's address as the PCI core computes it (`pci_iov_virtfn_bus`/`_devfn`)."""
    domain, bus, devfn = split_address(pf)
    rid = devfn + offset + stride * index
    return join_address(domain, bus + (rid >> 8), rid & 0xFF)


def _digest(*parts: object) -> bytes:
    return hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()


def _mac(prefix: bytes, *parts: object) -> str:
    raw = prefix + _digest(*parts)[: 6 - len(prefix)]
    return ":".join(f"{b:02x}" for b in raw)


def local_mac(*parts: object) -> str:
    """A deterministic locally administered unicast MAC (what mlx5/virtio_net would pick at random)."""
    raw = bytearray(_digest(*parts)[:6])
    raw[0] = (raw[0] & 0xFC) | 0x02
    return ":".join(f"{b:02x}" for b in raw)


def valid_unicast(mac: str) -> bool:
    return bool(_MAC_RE.fullmatch(mac)) and mac != ZERO_MAC and not int(mac[:2], 16) & 1


def ifname_ok(name: str) -> bool:
    """`dev_valid_name`: 1–15 bytes, not `.`/`..`, no `/`, `:` or whitespace."""
    return 0 < len(name.encode()) < 16 and name not in (".", "..") and not _IFNAME_BAD.search(name)


def eui64_link_local(mac: str) -> str:
    raw = bytearray(int(b, 16) for b in mac.split(":"))
    raw[0] ^= 0x02
    iid = bytes(raw[:3]) + b"\xff\xfe" + bytes(raw[3:])
    return str(ipaddress.IPv6Address(b"\xfe\x80" + bytes(6) + iid))


NODE_NETNS_PATHS = ("/proc/1/ns/net", "/proc/self/ns/net")
"""Paths that name the node's own netns from the adapter's point of view (rule 31)."""


def canonical_netns(netns: str | None, node: str | None) -> str | None:
    """None for the node's own netns; a name becomes `/var/run/netns/<name>` (as `ip netns` resolves it)."""
    if netns is None:
        return None
    path = os.path.normpath(netns_path(netns))
    if path in NODE_NETNS_PATHS or (node is not None and path == os.path.normpath(netns_path(node))):
        return None
    return path


# --- the kernel ---------------------------------------------------------------------------------------------------


class SimKernel:
    """One simulated host rooted at a directory. Thread-safe; several processes may attach to one root."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.sys_root = self.root / "sys"
        self.dev_root = self.root / "dev"
        self._lock = threading.RLock()
        self._state: State | None = None
        self._loaded: State | None = None
        self._parsed: tuple[str, dict[str, Any], State] | None = None
        self._rendered: tuple[State, dict[str, tree.Entry]] | None = None
        """The tree rendered for a state this process wrote (the next commit's `before`)."""
        self._real: RealNet | None = None
        self.faults = Faults(self._transaction)

    # --- lifecycle -----------------------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        root: str | os.PathLike[str],
        nics: Sequence[NicSpec] = DEFAULT_NICS,
        *,
        modules: Sequence[str] = DEFAULT_MODULES,
        vdpa_config_attrs: Sequence[str] = CONFIG_ATTRS,
        vdpa_attr_set: bool = True,
        switchdev_requires_unbound_vfs: bool = True,
        vf_create_delay: float = 0.0,
        node_netns: str | None = None,
        real_netdevs: bool | None = None,
        kernel_release: str = "6.1.0-sim",
        smfs_supported: bool = True,
        max_virtio_queues: int = 256,
    ) -> SimKernel:
        """A fresh host: NICs with their PFs bound to mlx5_core, legacy, no VFs. `real_netdevs` (default: root
        and a `node_netns` given) backs virtio netdevs and their representors with real veth pairs there."""
        root = Path(root)
        if (root / STATE_FILE).exists():
            raise FileExistsError(f"{root / STATE_FILE} exists: attach with SimKernel.open()")
        unknown = set(vdpa_config_attrs) - set(CONFIG_ATTRS)
        if unknown:
            raise ValueError(f"unknown vdpa config attributes {sorted(unknown)}; known: {', '.join(CONFIG_ATTRS)}")
        if real_netdevs is None:
            real_netdevs = os.geteuid() == 0 and node_netns is not None
        if real_netdevs and node_netns is None:
            raise ValueError("real_netdevs needs node_netns: the real netns that stands for the node")
        config = Config(
            nics=list(nics), kernel_release=kernel_release, vdpa_config_attrs=list(vdpa_config_attrs),
            vdpa_attr_set=vdpa_attr_set, switchdev_requires_unbound_vfs=switchdev_requires_unbound_vfs,
            vf_create_delay=vf_create_delay, max_virtio_queues=max_virtio_queues, smfs_supported=smfs_supported,
            node_netns=node_netns, real_netdevs=real_netdevs,
        )
        state = State(config=config)
        lo = _loopback(None)
        lo.up = True
        state.netdevs.append(lo)
        for module in modules:
            _load_module(state, module)
        for nic_index, nic in enumerate(config.nics):
            _add_nic(state, nic_index, nic)
        root.mkdir(parents=True, exist_ok=True)
        kernel = cls(root)
        kernel._write_state(state)
        tree.sync(root, state)
        return kernel

    @classmethod
    def open(cls, root: str | os.PathLike[str]) -> SimKernel:
        """Attach to an existing simulated host (another process's, or one this process made before kill -9)."""
        root = Path(root)
        if not (root / STATE_FILE).exists():
            raise FileNotFoundError(f"no simulated host at {root} (no {STATE_FILE}); create it first")
        kernel = cls(root)
        with kernel._transaction() as state:
            tree.sync(root, state)  # a crash between saving the state and rendering it left the tree behind
        return kernel

    def snapshot(self) -> State:
        """A copy of the current state (for tests and for rendering)."""
        with self._transaction() as state:
            return from_json(to_json(state))

    @property
    def config(self) -> Config:
        return self.snapshot().config

    # --- transactions --------------------------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[State]:
        """Load, let the caller read or change, save when changed. Reentrant within a thread; exclusive across
        threads (RLock) and processes (flock). A KernelError still commits (faults were consumed) — rules
        raise before they change anything."""
        with self._lock:
            if self._state is not None:
                yield self._state
                return
            fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                state = self._read_state()
                self._state = state
                try:
                    self._tick(state)
                    yield state
                except KernelError:
                    self._commit(state)
                    raise
                else:
                    self._commit(state)
                finally:
                    self._state = None
            finally:
                os.close(fd)

    @contextmanager
    def _reading(self) -> Iterator[State]:
        """For queries, which change nothing: the state as the file shows it, shared, without the working copy
        and the commit of `_transaction` (a device plugin asks several every 50 ms). Inside a
        transaction, its state; while delayed VFs are pending, a transaction (time passing is a change)."""
        with self._lock:
            if self._state is not None:
                yield self._state
                return
            if (self.root / PENDING_MARKER).exists():
                with self._transaction() as state:
                    yield state
                return
            fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_SH)
                self._read_state(copy=False)
                assert self._loaded is not None
                yield self._loaded
            finally:
                os.close(fd)

    def _read_state(self, *, copy: bool = True) -> State:
        """A fresh working copy of the state (`copy`), or the shared untouched one. The text is parsed again only
        when it changed."""
        text = (self.root / STATE_FILE).read_text()
        if self._parsed is None or self._parsed[0] != text:
            data = json.loads(text)
            self._parsed = (text, data, from_json(data))
        _, data, self._loaded = self._parsed  # _loaded is never changed: what the file and the tree show
        return from_json(data) if copy else self._loaded

    def _commit(self, state: State) -> None:
        previous = self._loaded
        if state == previous:  # the generation only moves here, so equal means unchanged
            return
        state.generation += 1
        data, text = self._write_state(state)
        before = self._rendered[1] if self._rendered is not None and self._rendered[0] is previous else None
        self._rendered = (state, tree.sync(self.root, state, previous, before=before))
        # what the file now shows is this state: the next transaction reads it without parsing it again
        self._parsed = (text, data, state)
        self._loaded = state

    def _write_state(self, state: State) -> tuple[dict[str, Any], str]:
        data = to_json(state)
        text = json.dumps(data, sort_keys=True, separators=(",", ":"))  # compact: the C encoder
        tmp = self.root / f".{STATE_FILE}.{os.getpid()}.{threading.get_ident()}"
        tmp.write_text(text)
        os.replace(tmp, self.root / STATE_FILE)
        marker = self.root / PENDING_MARKER
        if any(pf.pending_numvfs for pf in state.pfs.values()):
            marker.touch()
        else:
            marker.unlink(missing_ok=True)
        return data, text

    def tick(self) -> None:
        """Let time pass: VFs whose creation was delayed appear once due. Cheap when nothing is pending."""
        if (self.root / PENDING_MARKER).exists():
            with self._transaction():
                pass

    def _tick(self, state: State) -> None:
        now = time.time()
        for pf in state.pfs.values():
            if pf.pending_numvfs and pf.pending_at <= now:
                count, pf.pending_numvfs, pf.pending_at = pf.pending_numvfs, 0, 0.0
                self._materialise_vfs(state, pf, count)

    def _fault(self, state: State, op: str, target: str) -> None:
        code = take(state, op, target)
        if code is not None:
            raise KernelError(code, f"injected fault ({op})")

    # --- modules ---------------------------------------------------------------------------------------------

    def is_loaded(self, module: str) -> bool:
        with self._reading() as state:
            return module in state.modules

    def load_module(self, module: str) -> None:
        with self._transaction() as state:
            if module in state.modules:
                return
            self._fault(state, "module_load", module)
            if module not in MODULE_DEPS:
                raise KernelError(E.ENOENT, f"module {module} not found in directory /lib/modules")
            for name in _load_module(state, module):
                self._module_loaded(state, name)

    def unload_module(self, module: str) -> None:
        """`rmmod` (not on the Host port: the operator never unloads; tests use it to model absent modules)."""
        module = module.replace("-", "_")
        with self._transaction() as state:
            if module not in state.modules:
                raise KernelError(E.ENOENT, f"module {module} is not currently loaded")
            users = [m for m in state.modules if module in MODULE_DEPS.get(m, ())]
            if users:
                raise KernelError(E.EAGAIN, f"module {module} is in use by: {' '.join(users)}")
            if module == "vdpa" and state.vdpa:
                raise KernelError(E.EAGAIN, "module vdpa is in use")
            self._module_unloading(state, module)
            state.modules.remove(module)

    def _module_loaded(self, state: State, module: str) -> None:
        """Driver registration: a new driver attaches to unbound devices it matches (`driver_attach`)."""
        pci_driver = next((d for d, m in PCI_DRIVER_MODULES.items() if m == module), None)
        if pci_driver is not None and state.pci_autoprobe:
            for fn in sorted(state.pci.values(), key=lambda f: f.address):
                if fn.driver is None and _pci_matches(fn, pci_driver):
                    self._pci_attach(state, fn, pci_driver)
        if module in VDPA_BUS_DRIVERS and state.vdpa_autoprobe:
            for dev in sorted(state.vdpa.values(), key=lambda d: d.name):
                if dev.driver is None and dev.driver_override in (None, module):
                    self._vdpa_attach(state, dev, module, autoprobe=True)

    def _module_unloading(self, state: State, module: str) -> None:
        pci_driver = next((d for d, m in PCI_DRIVER_MODULES.items() if m == module), None)
        if pci_driver is not None:
            for fn in sorted(state.pci.values(), key=lambda f: f.address):
                if fn.driver == pci_driver and fn.address in state.pci:
                    self._pci_detach(state, fn)
        if module in VDPA_BUS_DRIVERS:
            for dev in state.vdpa.values():
                if dev.driver == module:
                    self._vdpa_detach(state, dev)
        if module == "mlx5_vdpa":
            for dev in list(state.vdpa.values()):
                self._vdpa_remove(state, dev)

    # --- PCI: sysfs writes -----------------------------------------------------------------------------------

    def write_sriov_numvfs(self, pf_address: str, text: str) -> None:
        with self._transaction() as state:
            self._fault(state, "sriov_numvfs", pf_address)
            pf = state.pfs.get(pf_address)
            if pf is None:
                raise KernelError(E.EACCES)
            count = _kstrtou16(text)
            if count is None:
                raise KernelError(E.EINVAL, f"not a number: {text!r}")
            if count > pf.totalvfs:
                raise KernelError(E.ERANGE, f"{count} > sriov_totalvfs {pf.totalvfs}")
            if count == pf.numvfs:
                return
            if state.pci[pf_address].driver is None:
                raise KernelError(E.ENOENT, "no driver bound to device; cannot configure SR-IOV")
            if count == 0:
                self._disable_vfs(state, pf)
                return
            if pf.numvfs:
                raise KernelError(E.EBUSY, f"{pf.numvfs} VFs already enabled. Disable before enabling {count} VFs")
            self._enable_vfs(state, pf, count)

    def write_sriov_autoprobe(self, pf_address: str, text: str) -> None:
        with self._transaction() as state:
            value = _kstrtobool(text)
            if value is None or pf_address not in state.pfs:
                raise KernelError(E.EINVAL)
            state.pfs[pf_address].drivers_autoprobe = value

    # --- the driver core, one for both buses (drivers/base/{bus,dd}.c; rules 5 and 21) ----------------------

    def write_bind(self, bus: str, driver: str, name: str) -> None:
        """`bus/<bus>/drivers/<driver>/bind`."""
        with self._transaction() as state:
            self._fault(state, f"{bus}_bind", name)
            dev = _bus_devices(state, bus).get(name)
            if dev is None or not _matches(state, dev, driver):
                raise KernelError(E.ENODEV)
            if dev.driver is not None:
                raise KernelError(E.EBUSY, f"{name} is bound to {dev.driver}")
            if isinstance(dev, PciFn):
                self._pci_attach(state, dev, driver)
            else:
                self._vdpa_attach(state, dev, driver)

    def write_unbind(self, bus: str, driver: str, name: str) -> None:
        """`bus/<bus>/drivers/<driver>/unbind`."""
        with self._transaction() as state:
            self._fault(state, _UNBIND_FAULT[bus], name)
            dev = _bus_devices(state, bus).get(name)
            if dev is None or dev.driver != driver:
                raise KernelError(E.ENODEV)
            if isinstance(dev, PciFn):
                self._pci_detach(state, dev)
            else:
                self._vdpa_detach(state, dev)

    def write_driver_override(self, bus: str, name: str, text: str) -> None:
        """`<device>/driver_override` of a PCI function or a vdpa device."""
        with self._transaction() as state:
            dev = _bus_devices(state, bus).get(name)
            if dev is None:
                raise KernelError(E.ENODEV)
            dev.driver_override = _override(text)

    def write_probe(self, bus: str, name: str) -> None:
        """`bus/<bus>/drivers_probe`: unknown → ENODEV, bound → nothing, else the first matching driver."""
        with self._transaction() as state:
            if bus == "pci":
                self._fault(state, "pci_bind", name)
            dev = _bus_devices(state, bus).get(name)
            if dev is None:
                raise KernelError(E.ENODEV)
            if dev.driver is None:
                if isinstance(dev, PciFn):
                    self._pci_probe(state, dev)
                else:
                    self._vdpa_probe(state, dev)

    def write_autoprobe(self, bus: str, text: str) -> None:
        """`bus/<bus>/drivers_autoprobe` (`drivers_autoprobe_store`: only a leading 0 disables)."""
        with self._transaction() as state:
            enabled = not text.startswith("0")
            if bus == "pci":
                state.pci_autoprobe = enabled
            else:
                state.vdpa_autoprobe = enabled

    # --- PCI: driver core ------------------------------------------------------------------------------------

    def _pci_probe(self, state: State, fn: PciFn) -> None:
        """First loaded driver that matches, in load order; a failed probe (injected) leaves it unbound."""
        for driver, module in PCI_DRIVER_MODULES.items():
            if module in state.modules and _pci_matches(fn, driver):
                if take(state, "pci_bind", fn.address) is not None:
                    logger.debug("sim: probe of %s by %s failed (injected)", fn.address, driver)
                    return
                self._pci_attach(state, fn, driver)
                return

    def _pci_attach(self, state: State, fn: PciFn, driver: str) -> None:
        fn.driver = driver
        if driver != "mlx5_core":
            return
        fn.flow_steering = "dmfs"
        if fn.pf is None:
            pf = state.pfs[fn.address]
            pf.eswitch = "legacy"
            if _netdev_of(state, "pf", fn.address) is None:
                _add_netdev(state, Netdev(ifindex=0, name=pf.netdev, kind="pf", mac=pf.mac, up=True,
                                          pci=fn.address, hw_tc=False, max_mtu=MLX5_MAX_MTU))
            return
        pf = state.pfs[fn.pf]
        fn.vnet = pf.eswitch == "switchdev"
        name = f"{_pf_name(state, pf)}v{fn.vf_index}"
        if _find(state, None, name) is not None:
            name = _free_name(state, None, "eth")
        admin = pf.vf_macs.get(str(fn.vf_index), ZERO_MAC)
        mac = admin if admin != ZERO_MAC else local_mac("vf", fn.address)
        _add_netdev(state, Netdev(ifindex=0, name=name, kind="vf", mac=mac, pci=fn.address, vf=fn.vf_index,
                                  hw_tc=False, max_mtu=MLX5_MAX_MTU))

    def _pci_detach(self, state: State, fn: PciFn) -> None:
        if fn.driver == "mlx5_core":
            if fn.pf is None:
                pf = state.pfs[fn.address]
                self._disable_vfs(state, pf)
                if pf.eswitch == "switchdev":
                    self._to_legacy(state, pf)
                nd = _netdev_of(state, "pf", fn.address)
                if nd is not None:
                    self._remove_netdev(state, nd)
            else:
                for dev in [d for d in state.vdpa.values() if d.vf == fn.address]:
                    self._vdpa_remove(state, dev)
                nd = _netdev_of(state, "vf", fn.address)
                if nd is not None:
                    self._remove_netdev(state, nd)
                fn.vnet = False
        fn.driver = None

    # --- SR-IOV ----------------------------------------------------------------------------------------------

    def _enable_vfs(self, state: State, pf: PfState, count: int) -> None:
        pf.numvfs = count
        pf.vf_macs = {str(i): ZERO_MAC for i in range(count)}
        delay = state.config.vf_create_delay
        if delay > 0:
            pf.pending_numvfs, pf.pending_at = count, time.time() + delay
            timer = threading.Timer(delay + 0.01, self.tick)
            timer.daemon = True
            timer.start()
            return
        self._materialise_vfs(state, pf, count)

    def _materialise_vfs(self, state: State, pf: PfState, count: int) -> None:
        parent = state.pci[pf.address].parent
        for index in range(count):
            address = vf_address(pf.address, index, pf.offset, pf.stride)
            fn = PciFn(address=address, parent=parent, device=CX6DX_VF, pf=pf.address, vf_index=index)
            state.pci[address] = fn
            if pf.eswitch == "switchdev":
                self._add_rep(state, pf, index)
            if pf.drivers_autoprobe and state.pci_autoprobe:
                self._pci_probe(state, fn)

    def _disable_vfs(self, state: State, pf: PfState) -> None:
        for fn in _vfs(state, pf.address):
            if fn.driver is not None:
                self._pci_detach(state, fn)
            del state.pci[fn.address]
        for rep in _reps(state, pf.address):
            self._remove_netdev(state, rep)
        pf.numvfs, pf.pending_numvfs, pf.pending_at, pf.vf_macs = 0, 0, 0.0, {}

    # --- devlink ---------------------------------------------------------------------------------------------

    def _devlink_fn(self, state: State, handle: DevlinkHandle) -> PciFn:
        fn = state.pci.get(handle.name) if handle.bus == "pci" else None
        if fn is None or fn.driver != "mlx5_core":
            raise KernelError(E.ENODEV, "devlink device not found")
        return fn

    def eswitch_mode(self, handle: DevlinkHandle) -> str:
        with self._reading() as state:
            fn = self._devlink_fn(state, handle)
            if fn.pf is not None:
                raise KernelError(E.EOPNOTSUPP, "not an eswitch manager (VF)")
            return state.pfs[fn.address].eswitch

    def set_eswitch_mode(self, handle: DevlinkHandle, mode: str) -> None:
        with self._transaction() as state:
            self._fault(state, "eswitch_set", str(handle))
            fn = self._devlink_fn(state, handle)
            if fn.pf is not None:
                raise KernelError(E.EOPNOTSUPP, "not an eswitch manager (VF)")
            if mode not in ("legacy", "switchdev"):
                raise KernelError(E.EINVAL, f"unknown eswitch mode {mode!r}")
            pf = state.pfs[fn.address]
            if pf.eswitch == mode:
                return
            if mode == "switchdev":
                bound = [vf.address for vf in _vfs(state, pf.address) if vf.driver is not None]
                if bound and state.config.switchdev_requires_unbound_vfs:
                    raise KernelError(E.EBUSY, f"Can't change mode, E-Switch is busy: VFs {', '.join(bound)} "
                                      "are bound to a driver")
                self._to_switchdev(state, pf)
            else:
                self._to_legacy(state, pf)

    def _to_switchdev(self, state: State, pf: PfState) -> None:
        pf.eswitch = "switchdev"
        for fn in _vfs(state, pf.address):
            self._add_rep(state, pf, fn.vf_index or 0)
        uplink = _netdev_of(state, "pf", pf.address)
        if uplink is not None:
            uplink.hw_tc = True

    def _to_legacy(self, state: State, pf: PfState) -> None:
        pf.eswitch = "legacy"
        for fn in _vfs(state, pf.address):
            for dev in [d for d in state.vdpa.values() if d.vf == fn.address]:
                self._vdpa_remove(state, dev)
            fn.vnet = False
        for rep in _reps(state, pf.address):
            self._remove_netdev(state, rep)
        uplink = _netdev_of(state, "pf", pf.address)
        if uplink is not None:
            uplink.hw_tc = False

    def _add_rep(self, state: State, pf: PfState, index: int) -> None:
        if any(rep.vf == index for rep in _reps(state, pf.address)):
            return
        name = f"{_pf_name(state, pf)}_{index}"
        if _find(state, None, name) is not None:
            name = _free_name(state, None, "eth")
        _add_netdev(state, Netdev(ifindex=0, name=name, kind="rep", mac=local_mac("rep", pf.address, index),
                                  pci=pf.address, vf=index, hw_tc=True, max_mtu=MLX5_MAX_MTU))

    def devlink_ports(self, handle: DevlinkHandle | None = None) -> list[DevlinkPort]:
        with self._transaction() as state:
            ports: list[DevlinkPort] = []
            for fn in state.pci.values():
                if fn.driver != "mlx5_core":
                    continue
                dl = DevlinkHandle.pci(PciAddress(fn.address))
                if handle is not None and dl != handle:
                    continue
                if fn.pf is None:
                    pf = state.pfs[fn.address]
                    uplink = _netdev_of(state, "pf", fn.address)
                    ports.append(DevlinkPort(dl, pf.vhca_id << 16 | UPLINK_VPORT, PortFlavour.PHYSICAL,
                                             netdev=_visible_name(uplink), number=pf.pfnum))
                    if pf.eswitch == "switchdev":
                        for rep in sorted(_reps(state, fn.address), key=lambda n: n.vf or 0):
                            vf = rep.vf or 0
                            ports.append(DevlinkPort(dl, pf.vhca_id << 16 | (vf + 1), PortFlavour.PCI_VF,
                                                     netdev=_visible_name(rep), pfnum=pf.pfnum, vfnum=vf))
                else:
                    pf = state.pfs[fn.pf]
                    ports.append(DevlinkPort(dl, _vf_vhca(state, pf, fn) << 16, PortFlavour.VIRTUAL,
                                             netdev=_visible_name(_netdev_of(state, "vf", fn.address))))
            return sorted(ports, key=lambda p: (str(p.handle), p.index))

    def devlink_param(self, handle: DevlinkHandle, name: str) -> DevlinkParam:
        with self._transaction() as state:
            fn = self._devlink_fn(state, handle)
            if name != "flow_steering_mode":
                raise KernelError(E.EINVAL, f"no parameter {name}")
            return DevlinkParam(name=name, value=fn.flow_steering, cmode="runtime")

    def set_devlink_param(self, handle: DevlinkHandle, name: str, value: str | int | bool, cmode: str) -> None:
        with self._transaction() as state:
            self._fault(state, "param_set", str(handle))
            fn = self._devlink_fn(state, handle)
            if name != "flow_steering_mode":
                raise KernelError(E.EINVAL, f"no parameter {name}")
            if not isinstance(value, str):
                raise KernelError(E.EINVAL, "flow_steering_mode is a string parameter")
            if value == "smfs":
                pf = state.pfs[fn.pf or fn.address]
                if not state.config.smfs_supported:
                    raise KernelError(E.EOPNOTSUPP, "Software managed steering is not supported by current device")
                if fn.pf is None and pf.eswitch == "switchdev":
                    raise KernelError(E.EOPNOTSUPP, "Software managed steering is not supported when eswitch "
                                      "offloads enabled.")
            elif value != "dmfs":
                raise KernelError(E.EINVAL, 'Bad parameter: supported values are ["dmfs", "smfs"]')
            if cmode != "runtime":
                raise KernelError(E.EOPNOTSUPP, f"cmode {cmode} not supported")
            fn.flow_steering = value

    # --- vdpa: genl --------------------------------------------------------------------------------------------

    def _vdpa_family(self, state: State) -> None:
        if "vdpa" not in state.modules:
            raise FamilyMissing(E.ENOENT, "generic netlink family vdpa not registered (module vdpa not loaded)")

    def _mgmtdev_vfs(self, state: State) -> list[PciFn]:
        if "mlx5_vdpa" not in state.modules or "vdpa" not in state.modules:
            return []
        return sorted((fn for fn in state.pci.values()
                       if fn.pf is not None and fn.driver == "mlx5_core" and fn.vnet
                       and state.pfs[fn.pf].eswitch == "switchdev"), key=lambda f: f.address)

    def vdpa_mgmtdevs(self) -> list[VdpaMgmtDev]:
        with self._reading() as state:
            self._vdpa_family(state)
            return [VdpaMgmtDev("pci", fn.address, supported_classes=1 << VIRTIO_NET_ID,
                                max_vqs=state.config.max_virtio_queues + 1) for fn in self._mgmtdev_vfs(state)]

    def vdpa_devices(self) -> list[VdpaDevice]:
        with self._reading() as state:
            self._vdpa_family(state)
            return [_vdpa_value(dev) for dev in sorted(state.vdpa.values(), key=lambda d: d.name)]

    def vdpa_device(self, name: str) -> VdpaDevice:
        with self._reading() as state:
            self._vdpa_family(state)
            dev = state.vdpa.get(name)
            if dev is None:
                raise KernelError(E.ENODEV, "device not found")
            return _vdpa_value(dev)

    def vdpa_dev_new(self, name: str, mgmtdev: VdpaMgmtDev, config: VdpaConfig = NO_CONFIG) -> None:
        with self._transaction() as state:
            self._vdpa_family(state)
            self._fault(state, "vdpa_dev_new", name)
            if not name:
                raise KernelError(E.EINVAL, "device name is required")
            if config.mac is not None and not _MAC_RE.fullmatch(config.mac.lower()):
                raise KernelError(E.EINVAL, f"invalid MAC {config.mac}")  # the attribute policy: 6 bytes
            if config.max_vqp is not None and config.max_vqp == 0:
                raise KernelError(E.EINVAL, "At least one pair of VQs is required")
            vf = next((fn for fn in self._mgmtdev_vfs(state)
                       if mgmtdev.bus == "pci" and fn.address == mgmtdev.name), None)
            if vf is None:
                raise KernelError(E.ENODEV, "Fail to find the specified management device")
            asked = {attr for attr in CONFIG_ATTRS if getattr(config, attr) is not None}
            if asked - set(state.config.vdpa_config_attrs):
                raise KernelError(E.EOPNOTSUPP, "All provided attributes are not supported")
            if any(dev.vf == vf.address for dev in state.vdpa.values()):
                raise KernelError(E.ENOSPC, f"{vf.address} already has a vdpa device (mlx5: one per VF)")
            max_vqs = state.config.max_virtio_queues
            if config.max_vqp is not None and config.max_vqp > max_vqs // 2:
                raise KernelError(E.EINVAL, f"max_vqp {config.max_vqp} > {max_vqs // 2}")
            if name in state.vdpa:
                raise KernelError(E.EEXIST, f"vdpa device {name} exists")
            pf = state.pfs[vf.pf or ""]
            vport_mac = pf.vf_macs.get(str(vf.vf_index), ZERO_MAC)
            mac = config.mac.lower() if config.mac else (vport_mac if vport_mac != ZERO_MAC else None)
            pairs = config.max_vqp or 1
            dev = VdpaDev(name=name, vf=vf.address, mac=mac, mtu=config.mtu or 1500, max_vqp=config.max_vqp,
                          nvqs=2 * pairs + 1)
            state.vdpa[name] = dev
            if state.vdpa_autoprobe:
                self._vdpa_probe(state, dev)

    def vdpa_dev_del(self, name: str) -> None:
        with self._transaction() as state:
            self._vdpa_family(state)
            self._fault(state, "vdpa_dev_del", name)
            dev = state.vdpa.get(name)
            if dev is None:
                raise KernelError(E.ENODEV, "device not found")
            self._vdpa_remove(state, dev)

    def vdpa_dev_attr_set(self, name: str, mac: str) -> None:
        with self._transaction() as state:
            self._vdpa_family(state)
            if not state.config.vdpa_attr_set:
                raise KernelError(E.EOPNOTSUPP, "no such command (VDPA_CMD_DEV_ATTR_SET needs Linux 6.12)")
            self._fault(state, "vdpa_attr_set", name)
            mac = mac.lower()
            if not _MAC_RE.fullmatch(mac):
                raise KernelError(E.EINVAL, f"invalid MAC {mac}")  # the attribute policy: 6 bytes
            dev = state.vdpa.get(name)
            if dev is None:
                raise KernelError(E.ENODEV, "device not found")
            dev.mac = mac

    def vdpa_dev_config(self, name: str) -> VdpaNetConfig:
        with self._reading() as state:
            self._vdpa_family(state)
            dev = state.vdpa.get(name)
            if dev is None:
                raise KernelError(E.ENODEV, "device not found")
            fn = state.pci[dev.vf]
            rep = next((n for n in _reps(state, fn.pf or "") if n.vf == fn.vf_index), None)
            return VdpaNetConfig(mac=dev.mac, mtu=dev.mtu, max_vqp=dev.max_vqp or 1,
                                 link_up=rep is not None and rep.up)

    def _vdpa_remove(self, state: State, dev: VdpaDev) -> None:
        if dev.driver is not None:
            self._vdpa_detach(state, dev)
        state.vdpa.pop(dev.name, None)

    # --- vdpa: bus -----------------------------------------------------------------------------------------------

    def _vdpa_probe(self, state: State, dev: VdpaDev) -> None:
        """The first loaded bus driver that matches (load order = registration order)."""
        for driver in [m for m in state.modules if m in VDPA_BUS_DRIVERS]:
            if dev.driver_override in (None, driver):
                self._vdpa_attach(state, dev, driver, autoprobe=True)
                return

    def _vdpa_attach(self, state: State, dev: VdpaDev, driver: str, *, autoprobe: bool = False) -> None:
        if autoprobe and take(state, "vdpa_bind", dev.name) is not None:
            logger.debug("sim: probe of vdpa %s by %s failed (injected); left unbound", dev.name, driver)
            return
        if driver == "virtio_vdpa":
            dev.virtio = _lowest_free(d.virtio for d in state.vdpa.values())
            netdev = Netdev(ifindex=0, name=_free_name(state, None, "eth"), kind="virtio",
                            mac=dev.mac or local_mac("virtio", dev.name), mtu=dev.mtu, max_mtu=dev.mtu,
                            pci=dev.vf, vdpa=dev.name)
            _add_netdev(state, netdev)
            if state.config.real_netdevs:
                self._real_pair_create(state, netdev)
        else:
            dev.vhost_minor = _lowest_free(d.vhost_minor for d in state.vdpa.values())
        dev.driver = driver

    def _vdpa_detach(self, state: State, dev: VdpaDev) -> None:
        if dev.driver == "virtio_vdpa":
            netdev = next((n for n in state.netdevs if n.kind == "virtio" and n.vdpa == dev.name), None)
            if netdev is not None:
                self._remove_netdev(state, netdev)
        dev.driver, dev.virtio, dev.vhost_minor = None, None, None

    # --- netdevs: reading --------------------------------------------------------------------------------------

    def _ns(self, state: State, netns: str | None) -> str | None:
        return canonical_netns(netns, state.config.node_netns)

    def netns_exists(self, netns: str) -> bool:
        """Rule 31."""
        with self._reading() as state:
            real, ns = state.config.real_netdevs, self._ns(state, netns)
        if ns is None:
            return True
        if not real and os.path.dirname(ns) == NETNS_RUN_DIR:
            return True
        return is_net_namespace(ns)

    def _get(self, state: State, name: str, netns: str | None, *, change: bool = False) -> Netdev:
        """The netdev `name` in `netns`. Every netns has its lo: a pod's is stored once something changes it
        (`change`); a read gets a transient one, so reading never rewrites the state."""
        ns = self._ns(state, netns)
        nd = _find(state, ns, name)
        if nd is None and name == "lo" and ns is not None:
            nd = _loopback(ns)
            if change:
                state.netdevs.append(nd)
        if nd is None:
            where = f" in netns {netns}" if netns else ""
            raise KernelError(E.ENODEV, f"no netdev {name}{where}")
        return nd

    def links(self, netns: str | None = None) -> list[Link]:
        with self._reading() as state:
            ns = self._ns(state, netns)
            found = [_link_value(state, n) for n in state.netdevs if n.netns == ns]
            if not any(n.kind == "loopback" and n.netns == ns for n in state.netdevs):
                found.append(_link_value(state, _loopback(ns)))
            return sorted(found, key=lambda link: link.index)

    def link(self, name: str, netns: str | None = None) -> Link:
        with self._reading() as state:
            return _link_value(state, self._get(state, name, netns))

    def addresses(self, name: str, netns: str | None = None) -> list[Address]:
        with self._reading() as state:
            nd = self._get(state, name, netns)
            return [Address(a.split("/")[0], int(a.split("/")[1])) for a in _all_addresses(state, nd)]

    def routes(self, netns: str | None = None) -> list[Route]:
        with self._reading() as state:
            return _routes(state, self._ns(state, netns))

    def switch_port(self, name: str) -> SwitchPort | None:
        """What `phys_port_name`/`phys_switch_id` in the node's sysfs show (node netns only)."""
        with self._reading() as state:
            nd = _find(state, None, name)
            return switch_port(state, nd) if nd is not None else None

    def link_speed(self, name: str) -> int | None:
        """What `speed` in the node's sysfs shows (node netns only)."""
        with self._reading() as state:
            nd = _find(state, None, name)
            return link_speed(state, nd) if nd is not None else None

    def vf_macs(self, pf_name: str, netns: str | None = None) -> dict[int, str]:
        with self._reading() as state:
            nd = self._get(state, pf_name, netns)
            if nd.kind != "pf" or nd.pci is None:
                return {}
            pf = state.pfs[nd.pci]
            return {int(k): v for k, v in sorted(pf.vf_macs.items(), key=lambda kv: int(kv[0]))}

    def driver_info(self, name: str, netns: str | None = None) -> DriverInfo:
        with self._reading() as state:
            nd = self._get(state, name, netns)
            release, fw = state.config.kernel_release, state.config.fw_version
            if nd.kind in ("pf", "vf"):
                return DriverInfo("mlx5_core", release, fw, nd.pci or "")
            if nd.kind == "rep":
                return DriverInfo("mlx5e_rep", release, fw, "")
            if nd.kind == "virtio":
                return DriverInfo("virtio_net", "1.0.0", "", nd.vdpa or "")
            raise KernelError(E.EOPNOTSUPP, f"{name} has no driver information")

    def feature(self, name: str, feature: str, netns: str | None = None) -> bool | None:
        with self._reading() as state:
            nd = self._get(state, name, netns)
            return nd.hw_tc if feature == "hw-tc-offload" else None

    def set_feature(self, name: str, feature: str, enabled: bool, netns: str | None = None) -> None:
        with self._transaction() as state:
            self._fault(state, "feature_set", name)
            nd = self._get(state, name, netns, change=True)
            if feature != "hw-tc-offload" or nd.hw_tc is None:
                raise KernelError(E.EOPNOTSUPP, f"{name} has no changeable feature {feature}")
            nd.hw_tc = enabled

    # --- netdevs: changing -------------------------------------------------------------------------------------

    def set_link_up(self, name: str, up: bool, netns: str | None = None) -> None:
        with self._transaction() as state:
            self._fault(state, "link_set", name)
            nd = self._get(state, name, netns, change=True)
            if nd.up == up:
                return
            if nd.real:
                self._real_links().set_up(nd.name, up, netns=self._real_ns(state, nd.netns))
            nd.up = up
            if not up:
                _flush_routes(state, nd)

    def set_link_mtu(self, name: str, mtu: int, netns: str | None = None) -> None:
        with self._transaction() as state:
            self._fault(state, "link_set", name)
            nd = self._get(state, name, netns, change=True)
            if not nd.min_mtu <= mtu <= nd.max_mtu:
                raise KernelError(E.EINVAL, f"mtu {mtu} outside [{nd.min_mtu}, {nd.max_mtu}]")
            if nd.real:
                self._real_links().set_mtu(nd.name, mtu, netns=self._real_ns(state, nd.netns))
            nd.mtu = mtu

    def set_link_mac(self, name: str, mac: str, netns: str | None = None) -> None:
        with self._transaction() as state:
            self._fault(state, "link_set", name)
            nd = self._get(state, name, netns, change=True)
            mac = mac.lower()
            if nd.kind in ("rep", "loopback"):
                raise KernelError(E.EOPNOTSUPP, f"{name} cannot change its MAC address")
            if not valid_unicast(mac):
                raise KernelError(E.EADDRNOTAVAIL, f"{mac} is not a unicast MAC address")
            if nd.real:
                self._real_links().set_mac(nd.name, mac, netns=self._real_ns(state, nd.netns))
            nd.mac = mac

    def rename_link(self, name: str, new_name: str, netns: str | None = None) -> None:
        with self._transaction() as state:
            self._fault(state, "link_set", name)
            nd = self._get(state, name, netns, change=True)
            if new_name == nd.name:
                return
            if not ifname_ok(new_name):
                raise KernelError(E.EINVAL, f"{new_name!r} is not a valid interface name")
            if _find(state, nd.netns, new_name) is not None:
                raise KernelError(E.EEXIST, f"{new_name} exists")
            if nd.real:
                self._real_links().rename(nd.name, new_name, netns=self._real_ns(state, nd.netns))
            if nd.up:
                _flush_routes(state, nd)  # the down/up around a rename of a running link drops its routes
            nd.name = new_name

    def move_link(self, name: str, target: str | None, netns: str | None = None, *,
                  new_name: str | None = None) -> None:
        """Into `target`; None (or a path of rule 31) is the node's own netns. With `new_name`, called that
        there (the kernel's move-then-rename in one request: the current name may be taken in `target`)."""
        with self._transaction() as state:
            self._fault(state, "link_set", name)
            nd = self._get(state, name, netns, change=True)
            dest = self._ns(state, target)
            final = new_name if new_name is not None else nd.name
            if dest == nd.netns:  # the kernel's "nothing to do" for the move; the rename still happens
                self.rename_link(nd.name, final, netns)
                return
            if nd.kind in ("rep", "loopback") or (nd.kind == "pf" and nd.pci is not None
                                                   and state.pfs[nd.pci].eswitch == "switchdev"):
                raise KernelError(E.EINVAL, f"{name} cannot change network namespace (NETIF_F_NETNS_LOCAL)")
            if not ifname_ok(final):
                raise KernelError(E.EINVAL, f"{final!r} is not a valid interface name")
            if _find(state, dest, final) is not None:
                where = "the node netns" if dest is None else f"netns {target}"
                raise KernelError(E.EEXIST, f"{final} exists in {where}")
            if nd.real:
                self._real_links().move_to_netns(nd.name, self._real_ns(state, dest) or "",
                                                 netns=self._real_ns(state, nd.netns), new_name=final)
            _flush_routes(state, nd)
            nd.netns, nd.up, nd.addresses, nd.name = dest, False, [], final

    def add_address(self, name: str, address: Address, netns: str | None = None) -> None:
        with self._transaction() as state:
            self._fault(state, "link_set", name)
            nd = self._get(state, name, netns, change=True)
            try:
                iface = ipaddress.ip_interface(f"{address.address}/{address.prefixlen}")
            except ValueError as exc:
                raise KernelError(E.EINVAL, str(exc)) from exc
            text = f"{iface.ip}/{iface.network.prefixlen}"
            if text in nd.addresses:
                raise KernelError(E.EEXIST, f"{text} already on {name}")
            if nd.real:
                self._real_links().add_address(nd.name, address, netns=self._real_ns(state, nd.netns))
            nd.addresses.append(text)

    def add_route(self, route: Route, netns: str | None = None) -> None:
        with self._transaction() as state:
            self._fault(state, "link_set", route.dev or route.dst)
            ns = self._ns(state, netns)
            try:
                dst = ipaddress.ip_network(route.dst, strict=True)
                gateway = ipaddress.ip_address(route.gateway) if route.gateway else None
            except ValueError as exc:
                raise KernelError(E.EINVAL, f"Invalid prefix for given prefix length: {exc}") from exc
            dev = self._get(state, route.dev, netns, change=True) if route.dev else None
            if gateway is not None:
                via = _route_lookup(state, ns, gateway, dev)
                if via is None:
                    raise KernelError(E.ENETUNREACH, f"Nexthop has invalid gateway {gateway}")
                dev = via
            if dev is None:
                raise KernelError(E.EINVAL, "a route needs a device or a gateway")
            if not dev.up:
                raise KernelError(E.ENETDOWN, "Nexthop device is not up")
            if any(r.netns == ns and ipaddress.ip_network(r.dst) == dst for r in state.routes) or any(
                    ipaddress.ip_network(r.dst) == dst for r in _routes(state, ns)):
                raise KernelError(E.EEXIST, f"route {dst} exists")
            if dev.real:
                real_route = Route(dst=str(dst), gateway=route.gateway, dev=dev.name)
                self._real_links().add_route(real_route, netns=self._real_ns(state, ns))
            state.routes.append(RouteEntry(ns, str(dst), str(gateway) if gateway else None, dev.ifindex))

    def set_vf_mac(self, pf_name: str, vf: int, mac: str, netns: str | None = None) -> None:
        with self._transaction() as state:
            self._fault(state, "vf_mac_set", pf_name)
            nd = self._get(state, pf_name, netns, change=True)
            if nd.kind != "pf" or nd.pci is None:
                raise KernelError(E.EOPNOTSUPP, f"{pf_name} has no VFs (not an SR-IOV PF netdev)")
            pf = state.pfs[nd.pci]
            if not 0 <= vf < pf.numvfs:
                raise KernelError(E.EINVAL, f"VF {vf} does not exist ({pf.numvfs} VFs)")
            mac = mac.lower()
            if not _MAC_RE.fullmatch(mac) or int(mac[:2], 16) & 1:
                raise KernelError(E.EINVAL, f"{mac} is not a unicast MAC address")
            pf.vf_macs[str(vf)] = mac

    def netns_deleted(self, netns: str) -> None:
        """A pod netns went away: physical netdevs return to the node (`default_device_exit_net`), renamed
        `dev<k>` when their name is taken; everything else there is gone."""
        with self._transaction() as state:
            ns = self._ns(state, netns)
            if ns is None:
                raise ValueError("the node's own netns cannot be deleted")
            for nd in [n for n in state.netdevs if n.netns == ns]:
                if nd.kind == "loopback":
                    state.netdevs.remove(nd)
                    continue
                _flush_routes(state, nd)
                nd.netns, nd.up, nd.addresses = None, False, []
                if _find(state, None, nd.name) not in (None, nd):
                    nd.name = _free_name(state, None, "dev")
                if nd.real:
                    self._real_pair_create(state, nd, recreate=True)
            state.routes = [r for r in state.routes if r.netns != ns]

    def _remove_netdev(self, state: State, nd: Netdev) -> None:
        if nd.real and nd.kind == "virtio":
            self._real_pair_delete(state, nd)
        _flush_routes(state, nd)
        state.netdevs.remove(nd)

    # --- privileged mode: real veth pairs ----------------------------------------------------------------------

    def _real_links(self) -> RealNet:
        if self._real is None:
            from vdpa_operator.host.sim.realnet import RealNet

            self._real = RealNet()
        return self._real

    def _real_ns(self, state: State, ns: str | None) -> str | None:
        return state.config.node_netns if ns is None else ns

    def _real_pair_create(self, state: State, virtio: Netdev, *, recreate: bool = False) -> None:
        """The virtio netdev and its VF's representor become the two ends of one veth in the node netns."""
        rep = rep_of(state, virtio)
        if rep is None or rep.netns is not None:
            return
        node = state.config.node_netns or ""
        self._real_links().create_pair(node, virtio, rep, replace_peer=recreate)
        virtio.real = rep.real = True

    def _real_pair_delete(self, state: State, virtio: Netdev) -> None:
        rep = rep_of(state, virtio)
        self._real_links().delete(virtio.name, self._real_ns(state, virtio.netns))
        if rep is not None:
            rep.real = False


# --- state helpers (no kernel object needed) ----------------------------------------------------------------------


_U16_RE = re.compile(r"^\+?(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$")


def _kstrtou16(text: str) -> int | None:
    """`kstrtou16(buf, 0, …)`: decimal, 0x hex or 0 octal, one trailing newline allowed; None when invalid."""
    value = text[:-1] if text.endswith("\n") else text
    if not _U16_RE.fullmatch(value):
        return None
    number = int(value.lstrip("+"), 0) if not re.fullmatch(r"\+?0[0-7]+", value) else int(value.lstrip("+"), 8)
    return number if number <= 0xFFFF else None


def _kstrtobool(text: str) -> bool | None:
    """`kstrtobool` (6.1): decided by the first character (1/y/Y, 0/n/N) or `on`/`off`; None when invalid."""
    if text[:1] in ("1", "y", "Y"):
        return True
    if text[:1] in ("0", "n", "N"):
        return False
    if text[:2].lower() == "on":
        return True
    if text[:2].lower() == "of":
        return False
    return None


def _override(text: str) -> str | None:
    """`driver_set_override`: up to the first newline; empty clears. Too long → EINVAL."""
    if len(text) >= 4095:
        raise KernelError(E.EINVAL, "driver_override too long")
    value = text.split("\n", 1)[0]
    return value or None


def _pci_matches(fn: PciFn, driver: str) -> bool:
    """`pci_match_device`: driver_override decides alone when set; else the id table (mlx5_core: 15b3:101d/e)."""
    if fn.driver_override is not None:
        return fn.driver_override == driver
    return driver == "mlx5_core" and fn.vendor == MELLANOX and fn.device in (CX6DX_PF, CX6DX_VF)


_UNBIND_FAULT = {"pci": "pci_unbind", "vdpa": "vdpa_bind"}
"""The fault op an unbind consumes (see `faults.py`)."""


def _bus_devices(state: State, bus: str) -> dict[str, PciFn] | dict[str, VdpaDev]:
    if bus == "pci":
        return state.pci
    if bus == "vdpa":
        return state.vdpa
    raise KernelError(E.ENOENT, f"no bus {bus}")


def _matches(state: State, dev: PciFn | VdpaDev, driver: str) -> bool:
    """Whether `driver` may bind `dev`: `driver_override` decides alone when set; else the PCI id table, or on
    the vdpa bus any loaded bus driver."""
    if isinstance(dev, PciFn):
        return _pci_matches(dev, driver)
    return driver in state.modules and dev.driver_override in (None, driver)


def _load_module(state: State, module: str) -> list[str]:
    """Load `module` and its dependencies; the names newly loaded, in order."""
    loaded: list[str] = []
    for dep in MODULE_DEPS.get(module, ()):
        if dep not in state.modules:
            loaded += _load_module(state, dep)
    if module not in state.modules:
        state.modules.append(module)
        loaded.append(module)
    return loaded


def _add_nic(state: State, nic_index: int, nic: NicSpec) -> None:
    first = split_address(nic.pfs[0].address)
    first_vf_rid = first[2] + len(nic.pfs)
    for k, spec in enumerate(nic.pfs):
        domain, bus, devfn = split_address(spec.address)
        if (domain, bus) != first[:2] or devfn != first[2] + k:
            raise ValueError(f"PFs of one NIC must be consecutive functions of one device: {spec.address}")
        offset = first_vf_rid - devfn
        first_vf_rid += spec.totalvfs
        mac = _mac(b"\xb8\xce\xf6", "pf", spec.address)
        guid_mac = _mac(b"\xb8\xce\xf6", "pf", nic.pfs[0].address).replace(":", "")
        fn = PciFn(address=spec.address, parent=nic.parent, device=CX6DX_PF)
        state.pci[spec.address] = fn
        state.pfs[spec.address] = PfState(
            address=spec.address, netdev=spec.netdev, totalvfs=spec.totalvfs, offset=offset, stride=1,
            pfnum=devfn & 7, vhca_id=k, nic=nic_index, mac=mac, switch_id=guid_mac[:6] + "0300" + guid_mac[6:],
        )
        if "mlx5_core" in state.modules:
            fn.driver = "mlx5_core"
            _add_netdev(state, Netdev(ifindex=0, name=spec.netdev, kind="pf", mac=mac, up=True, pci=spec.address,
                                      hw_tc=False, max_mtu=MLX5_MAX_MTU))


def _add_netdev(state: State, nd: Netdev) -> None:
    nd.ifindex = state.next_ifindex
    state.next_ifindex += 1
    state.netdevs.append(nd)


def _vfs(state: State, pf: str) -> list[PciFn]:
    return sorted((fn for fn in state.pci.values() if fn.pf == pf), key=lambda f: f.vf_index or 0)


def _vf_vhca(state: State, pf: PfState, fn: PciFn) -> int:
    """VF vhca_ids are firmware-assigned; the sim numbers them after the NIC's PFs."""
    nic = state.config.nics[pf.nic]
    before = sum(p.totalvfs for p in nic.pfs[: pf.vhca_id])
    return len(nic.pfs) + before + (fn.vf_index or 0)


def _pf_name(state: State, pf: PfState) -> str:
    nd = _netdev_of(state, "pf", pf.address)
    return nd.name if nd is not None else pf.netdev


def _reps(state: State, pf: str) -> list[Netdev]:
    return [n for n in state.netdevs if n.kind == "rep" and n.pci == pf]


def _netdev_of(state: State, kind: str, pci: str) -> Netdev | None:
    return next((n for n in state.netdevs if n.kind == kind and n.pci == pci), None)


def _lowest_free(used: Iterable[int | None]) -> int:
    """The lowest index not in `used` (an IDA's `ida_alloc`)."""
    taken = {i for i in used if i is not None}
    return min(set(range(len(taken) + 1)) - taken)


def _loopback(ns: str | None) -> Netdev:
    return Netdev(ifindex=1, name="lo", kind="loopback", netns=ns, mtu=65536, max_mtu=65536)


def _visible_name(nd: Netdev | None) -> str | None:
    """devlink reports a port's netdev only when it is in devlink's own netns."""
    return nd.name if nd is not None and nd.netns is None else None


def _find(state: State, ns: str | None, name: str) -> Netdev | None:
    return next((n for n in state.netdevs if n.netns == ns and (n.name == name or name in n.altnames)), None)


def _free_name(state: State, ns: str | None, prefix: str) -> str:
    """`dev_alloc_name` with `<prefix>%d`: the lowest free number."""
    k = 0
    while _find(state, ns, f"{prefix}{k}") is not None:
        k += 1
    return f"{prefix}{k}"


def _link_value(state: State, nd: Netdev) -> Link:
    loopback = nd.kind == "loopback"
    return Link(index=nd.ifindex, name=nd.name, mtu=nd.mtu, mac=ZERO_MAC if loopback else nd.mac, admin_up=nd.up,
                oper_state=oper_state(state, nd), altnames=tuple(nd.altnames),
                link_type="loopback" if loopback else "ether")


def _all_addresses(state: State, nd: Netdev) -> list[str]:
    """Configured addresses, plus what the kernel adds itself: lo's when up, IPv6 link-local with carrier."""
    v4 = [a for a in nd.addresses if ":" not in a]
    v6 = [a for a in nd.addresses if ":" in a]
    if nd.kind == "loopback":
        return (["127.0.0.1/8", *v4, "::1/128", *v6]) if nd.up else [*v4, *v6]
    if carrier(state, nd):
        v6.append(f"{eui64_link_local(nd.mac)}/64")
    return [*v4, *v6]


def _routes(state: State, ns: str | None) -> list[Route]:
    """Main-table routes as `ip route` / `ip -6 route` list them: connected prefixes of up links, the
    link-local prefix, ::1 on lo, and static routes."""
    names = {n.ifindex: n.name for n in state.netdevs if n.netns == ns}
    found: list[tuple[int, ipaddress.IPv4Network | ipaddress.IPv6Network, Route]] = []
    for nd in (n for n in state.netdevs if n.netns == ns and n.up):
        for text in _all_addresses(state, nd):
            net = ipaddress.ip_interface(text).network
            if nd.kind == "loopback" and net.version == 4:
                continue  # 127.0.0.0/8 lives in the local table
            if net.is_link_local and net.version == 6:
                net = ipaddress.ip_network("fe80::/64")
            route = Route(dst=str(net), gateway=None, dev=nd.name)
            if all(existing != route for _, _, existing in found):
                found.append((net.version, net, route))
    for entry in (r for r in state.routes if r.netns == ns):
        net = ipaddress.ip_network(entry.dst)
        found.append((net.version, net, Route(dst=entry.dst, gateway=entry.gateway, dev=names.get(entry.ifindex or 0))))
    found.sort(key=lambda item: (item[0], int(item[1].network_address), item[1].prefixlen))
    return [route for _, _, route in found]


def _route_lookup(state: State, ns: str | None, gateway: ipaddress.IPv4Address | ipaddress.IPv6Address,
                  dev: Netdev | None) -> Netdev | None:
    """The up link whose connected prefix holds `gateway` (restricted to `dev` when given)."""
    for nd in state.netdevs:
        if nd.netns != ns or not nd.up or (dev is not None and nd is not dev):
            continue
        for text in _all_addresses(state, nd):
            if gateway in ipaddress.ip_interface(text).network:
                return nd
    return None


def _flush_routes(state: State, nd: Netdev) -> None:
    """IPv4/IPv6 static routes through a link go with it when it goes down, moves or disappears."""
    state.routes = [r for r in state.routes if not (r.netns == nd.netns and r.ifindex == nd.ifindex)]


def _vdpa_value(dev: VdpaDev) -> VdpaDevice:
    return VdpaDevice(name=dev.name, mgmtdev=VdpaMgmtDev("pci", dev.vf), device_id=VIRTIO_NET_ID,
                      vendor_id=int(MELLANOX, 16), max_vqs=dev.nvqs, max_vq_size=VDPA_MAX_VQ_SIZE)


def host_error(exc: KernelError, op: str, target: str, hint: str = "") -> HostError:
    """The sim adapters' one translation from the model's answer to the HostError family: the same classes
    the Linux adapter raises for the same errno, with the model's extack-like text as detail."""
    if isinstance(exc, FamilyMissing):
        return KernelModuleMissing(op, target, hint=hint, detail=exc.detail)
    return error_from_errno(exc.errno, op, target, hint=hint, detail=exc.detail)


@contextmanager
def host_errors(op: str, target: str, hint: str = "") -> Iterator[None]:
    """`host_error` around a call into the model: what the sim adapters wrap each operation in."""
    try:
        yield
    except KernelError as exc:
        raise host_error(exc, op, target, hint) from exc


