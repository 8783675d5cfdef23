"""The node's own address allocator, for a network whose `ipam` section is empty: host-local's semantics over a
lease store of our own.

Addresses. The subnet's network and broadcast (for IPv6: all-ones) addresses and the gateway (default: the
subnet's first host) are never handed out. Addresses go from `range_start` (default: the subnet's first host, so
with the default gateway the first address handed out is the one after it) to `range_end` (default: the last
host), lowest free first, each with the subnet's prefix length: nodes that share one flat L2 subnet each allocate
from their own range of it (10.56.1.5/16 from 10.56.1.2-10.56.1.254 of 10.56.0.0/16).

Store. `<store_dir>/<network>/<address>` per lease (like host-local's), holding `<container id>\\n<ifname>\\n`.
A lease file is created with O_CREAT|O_EXCL, so two allocators can never hold one address whatever else happens,
and it is written and fsync'd, file and directory, before `allocate` returns. The scan and the claim also run under
an flock of `<store_dir>/<network>/.lock`, so that an allocator, a release and a GC never see each other's lease
half-written and one attachment asking twice gets one lease.

A lease file that cannot be read as a lease (empty, truncated, not UTF-8, unreadable) is treated as taken and
logged as a warning naming the file and what to do; it is never handed out, never released, and no error. An
empty or cut file is what a crash between the O_EXCL create and the fsync leaves, and then no pod got the address;
but it is also what damage to a live pod's lease looks like, and the store cannot tell the two apart. Handing the
address out again could give two pods one address; failing every ADD would take the node's pod networking down for
one stray file; keeping it costs one address until someone deletes the file.
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import logging
import os
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from vdpa_operator.cni.errors import INVALID_CONFIG, INVALID_ENVIRONMENT, IPAM_FAILURE, CniError
from vdpa_operator.cni.ipam_result import DEFAULT_ROUTES, IpAddress, IpamResult, IpConfig, IpNetwork, RouteConfig
from vdpa_operator.cni.spec import NAME_RULE, ifname_problem

logger = logging.getLogger(__name__)

LOCK_FILE = ".lock"


def ovn_mac(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """The MAC OVN-Kubernetes gives a pod for its address (`util.IPAddrToHWAddr`): 0a:58 and the IPv4 address's
    four bytes (an IPv6 address's last four). Unique on the pod network as the address is: VFs of two nodes'
    identical NICs may well come with one MAC, and pods on one L2 network must not share one."""
    return "0a:58:" + ":".join(f"{b:02x}" for b in address.packed[-4:])


@dataclass(frozen=True, slots=True)
class Lease:
    address: IpAddress
    container_id: str
    ifname: str


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A lease file that does not read as a lease: its address stays taken (see the module docstring)."""

    address: IpAddress
    path: Path
    reason: str


@dataclass(frozen=True, slots=True)
class AddressRange:
    subnet: IpNetwork
    start: IpAddress
    end: IpAddress
    gateway: IpAddress

    def __str__(self) -> str:
        return f"{self.start}-{self.end} of {self.subnet}"

    def __contains__(self, address: object) -> bool:
        return (isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address)
                and address.version == self.start.version and int(self.start) <= int(address) <= int(self.end))

    def usable(self, address: IpAddress) -> bool:
        reserved = (self.subnet.network_address, self.subnet.broadcast_address, self.gateway)
        return address in self and address not in reserved


class NodeIpam:
    """Leases from one address range, kept under `store_dir` per network name."""

    __slots__ = ("range", "store_dir")

    def __init__(self, store_dir: Path, subnet: IpNetwork, *, range_start: IpAddress | None = None,
                 range_end: IpAddress | None = None, gateway: IpAddress | None = None) -> None:
        self.store_dir = Path(store_dir)
        self.range = address_range(subnet, range_start=range_start, range_end=range_end, gateway=gateway)

    def allocate(self, network: str, container_id: str, ifname: str) -> IpamResult:
        """The attachment's lease: the one it already holds in this range, else the lowest free address."""
        directory = self._directory(network, container_id, ifname)
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise _store_error("create the lease directory", directory, error) from None
        with _locked(directory):
            leases, unreadable = _read_leases(directory)
            for bad in unreadable:
                _warn(bad)
            held = self._held(leases, container_id, ifname)
            if held:
                return self._result(held[0])
            taken = {lease.address for lease in leases} | {bad.address for bad in unreadable}
            return self._result(self._claim(directory, taken, container_id, ifname, network))

    def release(self, network: str, container_id: str, ifname: str) -> None:
        """Give back every lease of the attachment; none is nothing to do (DEL may come twice)."""
        directory = self._directory(network, container_id, ifname)
        if not directory.is_dir():
            return
        with _locked(directory):
            leases, _ = _read_leases(directory)
            self._remove(directory, [lease for lease in leases
                                     if (lease.container_id, lease.ifname) == (container_id, ifname)])

    def lease_of(self, network: str, container_id: str, ifname: str) -> IpConfig | None:
        """The address `allocate` gives this attachment now, or None when it holds none in this range (CHECK)."""
        directory = self._directory(network, container_id, ifname)
        if not directory.is_dir():
            return None
        with _locked(directory):
            leases, _ = _read_leases(directory)
        held = self._held(leases, container_id, ifname)
        return self._result(held[0]).ips[0] if held else None

    def gc(self, network: str, valid: Collection[tuple[str, str]]) -> list[str]:
        """Release every lease of `network` whose (container ID, ifname) is not in `valid`, in or out of the
        range; the addresses released, lowest first. Unreadable lease files stay (and are logged)."""
        _check_name(network, "network name", INVALID_CONFIG, "name of the network config")
        directory = self.store_dir / network
        if not directory.is_dir():
            return []
        keep = set(valid)
        with _locked(directory):
            leases, unreadable = _read_leases(directory)
            stale = sorted((lease for lease in leases if (lease.container_id, lease.ifname) not in keep),
                           key=lambda lease: (lease.address.version, int(lease.address)))
            self._remove(directory, stale)
        for bad in unreadable:
            _warn(bad)
        return [str(lease.address) for lease in stale]

    def _held(self, leases: list[Lease], container_id: str, ifname: str) -> list[IpAddress]:
        """The attachment's leases in this range, lowest first."""
        return sorted((lease.address for lease in leases if lease.address in self.range
                       and (lease.container_id, lease.ifname) == (container_id, ifname)), key=int)

    def _directory(self, network: str, container_id: str, ifname: str) -> Path:
        _check_name(network, "network name", INVALID_CONFIG, "name of the network config")
        _check_name(container_id, "CNI_CONTAINERID", INVALID_ENVIRONMENT, "container ID the runtime passes")
        _check_ifname(ifname)
        return self.store_dir / network

    def _claim(self, directory: Path, taken: set[IpAddress], container_id: str, ifname: str,
               network: str) -> IpAddress:
        content = f"{container_id}\n{ifname}\n".encode()
        candidate = self.range.start
        while int(candidate) <= int(self.range.end):
            if candidate in taken or not self.range.usable(candidate):
                candidate += 1
                continue
            if _create_lease(directory / str(candidate), content):
                logger.info("leased %s to container %s, %s (network %s)", candidate, container_id, ifname, network)
                return candidate
            taken.add(candidate)
        leased = sum(1 for address in taken if address in self.range)
        raise CniError(IPAM_FAILURE, f"no free address in {self.range} for network {network}",
                       f"{leased} addresses of it are leased in {directory}; delete pods on this node (their "
                       "leases go with DEL), let the runtime's GC release stale ones, or give the node a wider "
                       "range (range_start/range_end)")

    def _remove(self, directory: Path, leases: list[Lease]) -> None:
        for lease in leases:
            path = directory / str(lease.address)
            try:
                path.unlink(missing_ok=True)
            except OSError as error:
                raise _store_error("remove the lease", path, error) from None
            logger.info("released %s of container %s, %s (network %s)", lease.address, lease.container_id,
                        lease.ifname, directory.name)
        if leases:
            _fsync_directory(directory)

    def _result(self, address: IpAddress) -> IpamResult:
        interface = ipaddress.ip_interface(f"{address}/{self.range.subnet.prefixlen}")
        gateway = self.range.gateway
        default = RouteConfig(DEFAULT_ROUTES[gateway.version], gateway)  # as OVN-K routes a pod: via its node
        return IpamResult(ips=(IpConfig(interface, gateway),), routes=(default,))


def address_range(subnet: IpNetwork, *, range_start: IpAddress | None = None, range_end: IpAddress | None = None,
                  gateway: IpAddress | None = None) -> AddressRange:
    """The range with its defaults filled in; INVALID_CONFIG naming the value that cannot be used."""
    if subnet.num_addresses < 4:
        raise CniError(INVALID_CONFIG, f"subnet {subnet} is too small to allocate from",
                       "its network and broadcast addresses and the gateway are never handed out; use a /30 "
                       "(IPv6: /126) or larger")
    first, last = subnet.network_address + 1, subnet.broadcast_address - 1
    gateway = first if gateway is None else gateway
    start = first if range_start is None else range_start
    end = last if range_end is None else range_end
    for name, value in (("gateway", gateway), ("range_start", start), ("range_end", end)):
        if value not in subnet or value in (subnet.network_address, subnet.broadcast_address):
            raise CniError(INVALID_CONFIG, f"{name} {value} is not a host address of subnet {subnet}",
                           f"use an address from {first} to {last}, or leave {name} unset")
    if int(start) > int(end):
        raise CniError(INVALID_CONFIG, f"range_start {start} is above range_end {end}",
                       "swap them, or leave one unset")
    if start == end == gateway:
        raise CniError(INVALID_CONFIG, f"the range {start}-{end} holds only the gateway",
                       "widen the range or move the gateway")
    return AddressRange(subnet, start, end, gateway)


# --- the store ----------------------------------------------------------------------------------------------------


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    path = directory / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as error:
        raise _store_error("open the lock", path, error) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError as error:
        os.close(fd)
        raise _store_error("lock", path, error) from None
    try:
        yield
    finally:
        os.close(fd)


def _create_lease(path: Path, content: bytes) -> bool:
    """Claim `path` for `content`; False when it exists already (someone else holds the address)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except FileExistsError:
        return False
    except OSError as error:
        raise _store_error("create the lease", path, error) from None
    try:
        written = 0
        while written < len(content):
            written += os.write(fd, content[written:])
        os.fsync(fd)
    except OSError as error:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise _store_error("write the lease", path, error) from None
    os.close(fd)
    _fsync_directory(path.parent)
    return True


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as error:
        raise _store_error("sync the lease directory", directory, error) from None


def _read_leases(directory: Path) -> tuple[list[Lease], list[Unreadable]]:
    leases: list[Lease] = []
    unreadable: list[Unreadable] = []
    try:
        names = os.listdir(directory)
    except OSError as error:
        raise _store_error("list the leases in", directory, error) from None
    for name in names:
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            continue  # the lock, or a file that is no lease of ours
        path = directory / name
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue
        except OSError as error:
            unreadable.append(Unreadable(address, path, f"cannot be read: {error.strerror}"))
            continue
        lease = _parse_lease(address, data)
        if isinstance(lease, Lease):
            leases.append(lease)
        else:
            unreadable.append(Unreadable(address, path, lease))
    return leases, unreadable


def _parse_lease(address: IpAddress, data: bytes) -> Lease | str:
    """The lease, or why the content is none."""
    if not data:
        return "is empty (0 bytes)"
    if not data.endswith(b"\n"):
        return f"is truncated ({len(data)} bytes, no final newline)"
    try:
        lines = data.decode().split("\n")
    except UnicodeDecodeError:
        return "is not UTF-8"
    if len(lines) != 3 or not NAME_RULE.fullmatch(lines[0]) or ifname_problem(lines[1]):
        return f"does not hold '<container id>\\n<ifname>\\n' ({data[:80]!r})"
    return Lease(address, lines[0], lines[1])


def _warn(bad: Unreadable) -> None:
    logger.warning("lease file %s %s: address %s stays taken; once no pod on this node uses %s, delete the file "
                   "to free it", bad.path, bad.reason, bad.address, bad.address)


def _check_name(value: str, what: str, code: int, role: str) -> None:
    if not NAME_RULE.fullmatch(value):
        raise CniError(code, f"{what} {value!r} is not a valid CNI name",
                       f"the {role} must match {NAME_RULE.pattern} (the CNI spec's rule)")


def _check_ifname(ifname: str) -> None:
    problem = ifname_problem(ifname)
    if problem:
        raise CniError(INVALID_ENVIRONMENT, f"CNI_IFNAME {ifname!r}: {problem[0]}",
                       "the runtime must pass a Linux interface name")


def _store_error(action: str, path: Path, error: OSError) -> CniError:
    advice = ("the store is full: free space on its file system" if error.errno == errno.ENOSPC
              else "the lease store must be a writable local directory of this node")
    return CniError(IPAM_FAILURE, f"cannot {action} {path}: {error.strerror or error}", advice)
