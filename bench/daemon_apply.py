"""How much the node daemon itself costs on a big vDPA node: 2 PFs × 64 VFs, each VF with a vDPA device, on the
simulated ConnectX-6 Dx host. Goals: our own time under 0.5 s per apply, peak RSS under 80 MB; and the simulated
host's: the first apply of those 128 VFs under 3 s wall (a change costs what it changes, not what the host holds,
so that several simulated nodes start fast).

Two syncs, each observe → plan → apply, then a fresh observe that must plan nothing:
  1. from nothing (legacy, no VFs) to the seed layout at 64 VFs per PF, vdpaType virtio;
  2. a spec change: vdpaType vhost on every VF (load vhost_vdpa, rebind all 128 devices).

Every Protocol object of the Host (pci, links, ethtool, devlink, vdpa, modules, udev, ovs) is wrapped in a proxy
that times its method calls; their sum is "host", the simulated kernel's work (it keeps its state as a JSON file
rewritten per change, and writes the sysfs entries a change touches, so it is slower than the real kernel's
answers). "ours" is wall − host: planning, the applier, discovery's own logic, the daemon store (journal,
records). The simulated host lives on tmpfs (/dev/shm) when there is one, as sysfs lives in memory: the first
apply creates ~11,000 files, links and directories, and on this machine's ext4 each costs 0.3-0.7 ms (`--dir /tmp`
shows it). Last, attaching to the host as another process does (`SimKernel.open`, which checks the whole tree).

    .venv/bin/python bench/daemon_apply.py [--vfs N] [--dir DIR] [--profile]   (BENCH_SORT=tottime: profile order)
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import os
import pstats
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import verdict

from vdpa_operator.api.models import SriovNetworkNodeStateSpec
from vdpa_operator.api.nics import DEFAULT_SUPPORTED_NICS
from vdpa_operator.daemon.node import NodeAgent
from vdpa_operator.daemon.store import DaemonStore
from vdpa_operator.host.port import Host
from vdpa_operator.host.sim import SimKernel, sim_host
from vdpa_operator.host.sim.state import NicSpec, PfSpec

GOAL_OURS_SECONDS = 0.5
GOAL_RSS_MB = 80.0
GOAL_FIRST_APPLY_SECONDS = 3.0
PFS = (("0000:65:00.0", "ens1f0"), ("0000:65:00.1", "ens1f1"))


class CallClock:
    """Time spent inside the methods of proxied objects. Only the outermost call counts (a proxied method that
    reached another proxied object would otherwise be counted twice)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0
        self._depth = 0

    def proxy(self, obj: Any) -> Any:
        return _Timed(obj, self)

    def wrap(self, host: Host) -> Host:
        """The same Host with every Protocol object behind a timing proxy."""
        fields = {f.name: getattr(host, f.name) for f in dataclasses.fields(host)}
        return Host(**{name: self.proxy(port) if port is not None else None for name, port in fields.items()})

    def timed(self, method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            if self._depth:
                return method(*args, **kwargs)
            self._depth += 1
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started
                self.calls += 1
                self._depth -= 1
        return call


class _Timed:
    """Stands in for one Protocol object: its methods, timed; anything else, as it is."""

    def __init__(self, port: Any, clock: CallClock) -> None:
        self._port = port
        self._clock = clock

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._port, name)
        return self._clock.timed(attribute) if callable(attribute) else attribute


def spec(vfs: int, vdpa_type: str) -> SriovNetworkNodeStateSpec:
    return SriovNetworkNodeStateSpec.model_validate({"interfaces": [{
        "pciAddress": pci, "numVfs": vfs, "name": netdev, "eSwitchMode": "switchdev",
        "vfGroups": [{"resourceName": "mlxnics", "deviceType": "netdevice", "vfRange": f"0-{vfs - 1}",
                      "policyName": "vdpa-policy", "vdpaType": vdpa_type}],
    } for pci, netdev in PFS]})


@dataclasses.dataclass
class Phase:
    wall: float
    host: float
    calls: int
    store: float

    @property
    def ours(self) -> float:
        return self.wall - self.host


@dataclasses.dataclass
class Clocks:
    host: CallClock
    store: CallClock

    def measure(self, run: Callable[[], Any]) -> tuple[Any, Phase]:
        host, calls, store = self.host.seconds, self.host.calls, self.store.seconds
        started = time.perf_counter()
        result = run()
        wall = time.perf_counter() - started
        return result, Phase(wall, self.host.seconds - host, self.host.calls - calls, self.store.seconds - store)


def sync(agent: NodeAgent, clocks: Clocks, wanted: SriovNetworkNodeStateSpec, label: str,
         profiler: cProfile.Profile | None) -> Phase:
    """One observe → plan → apply; prints its figures. Returns the apply's, or exits 1 when a fresh observation
    does not then plan nothing."""
    observed, observe = clocks.measure(agent.observe)
    planned, planning = clocks.measure(lambda: agent.plan(wanted, observed))
    if profiler:
        profiler.enable()
    result, apply = clocks.measure(lambda: agent.apply(planned, observed))
    if profiler:
        profiler.disable()
    after = agent.plan(wanted, agent.observe())
    converged = result.ok and not after.steps
    outcome = "converged" if converged else \
        f"NOT converged ({result.error_message() or f'{len(after.steps)} steps left'})"
    print(f"{label}: {len(planned.steps)} steps, {outcome}")
    print(f"  apply   {apply.wall:6.3f} s wall = {apply.host:6.3f} s host ({apply.calls} port calls) "
          f"+ {apply.ours:5.3f} s ours (goal < {GOAL_OURS_SECONDS:g} s: {verdict(apply.ours < GOAL_OURS_SECONDS)}; "
          f"of it {apply.store:5.3f} s in the daemon store: journal, records)")
    print(f"  observe {observe.wall:6.3f} s wall = {observe.host:6.3f} s host ({observe.calls} port calls) "
          f"+ {observe.ours:5.3f} s ours; plan {planning.wall * 1000:.1f} ms")
    if not converged:
        sys.exit(1)
    return apply


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vfs", type=int, default=64, help="VFs per PF (also sriov_totalvfs)")
    parser.add_argument("--profile", action="store_true", help="print the 25 most expensive functions of the applies")
    parser.add_argument("--dir", default="/dev/shm" if os.path.isdir("/dev/shm") else None,
                        help="where the simulated host goes (default: /dev/shm when there is one, else $TMPDIR)")
    args = parser.parse_args()

    profiler = cProfile.Profile() if args.profile else None
    with tempfile.TemporaryDirectory(prefix="bench-daemon-", dir=args.dir) as tmp:
        nic = NicSpec(tuple(PfSpec(pci, netdev, totalvfs=args.vfs) for pci, netdev in PFS))
        kernel = SimKernel.create(Path(tmp) / "host", [nic], real_netdevs=False)
        clocks = Clocks(host=CallClock(), store=CallClock())
        agent = NodeAgent(clocks.host.wrap(sim_host(kernel)), clocks.store.proxy(DaemonStore(Path(tmp) / "store")),
                          DEFAULT_SUPPORTED_NICS)
        vfs = len(PFS) * args.vfs
        print(f"simulated node: {len(PFS)} ConnectX-6 Dx PFs x {args.vfs} VFs, every VF with a vDPA device "
              f"(host in {tmp}, {_fs_type(tmp)})")
        first = sync(agent, clocks, spec(args.vfs, "virtio"), "first apply (nothing -> switchdev, virtio)", profiler)
        print(f"first apply of {vfs} VFs: {first.wall:.3f} s wall, {first.calls} port calls "
              f"(goal < {GOAL_FIRST_APPLY_SECONDS:g} s: {verdict(first.wall < GOAL_FIRST_APPLY_SECONDS)})")
        sync(agent, clocks, spec(args.vfs, "vhost"), "spec change (virtio -> vhost on every VF)", profiler)
        started = time.perf_counter()
        SimKernel.open(kernel.root)
        print(f"attach to the host of {vfs} VFs (SimKernel.open: the whole tree checked) "
              f"{time.perf_counter() - started:.3f} s")
        devices = {d.name: d for d in kernel.snapshot().vdpa.values()}
        drivers = sorted({d.driver or "unbound" for d in devices.values()})
        print(f"vdpa devices on the node: {len(devices)} ({', '.join(drivers)})")

    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {rss_mb:.1f} MB (goal < {GOAL_RSS_MB:g} MB: {verdict(rss_mb < GOAL_RSS_MB)})")
    if profiler:
        pstats.Stats(profiler).sort_stats(os.environ.get("BENCH_SORT", "cumulative")).print_stats(25)


def _fs_type(path: str) -> str:
    """The file system `path` is on, as /proc/mounts names it (the longest mount point above it)."""
    best = ("", "unknown")
    with open("/proc/mounts") as mounts:
        for line in mounts:
            _, point, kind, *_ = line.split()
            if os.path.realpath(path).startswith(point.rstrip("/") + "/") and len(point) > len(best[0]):
                best = (point, kind)
    return best[1]


if __name__ == "__main__":
    main()
