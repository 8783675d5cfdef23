"""A node's own Open vSwitch: ovsdb-server and a userspace-datapath ovs-vswitchd, with `br-int`.

Private: database, sockets, pidfiles and logs live in the node's var/run/openvswitch (where components started
with the node's root as their host find db.sock), and `OVS_RUNDIR`/`OVS_DBDIR`/`OVS_LOGDIR` point there for every
OVS tool run against it. ovs-vswitchd runs in the node's network namespace: the userspace datapath opens its
ports as netdevs of the namespace it runs in (the representors the simulated host makes there, the wire), and
its `br-int` tap appears there. There is no openvswitch kernel module; bridges use `datapath_type=netdev`
(research/ecosystem.md §4.1). Both daemons run in the foreground under our own PID (no --detach), so they are
recorded the moment they start. ovs-vswitchd's pidfile and control socket keep OVS's default names
(`ovs-vswitchd.pid`, `ovs-vswitchd.<pid>.ctl` in OVS_RUNDIR), so a plain `ovs-appctl` in a pod that mounts the
node's /var/run/openvswitch reaches this node's switch.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from vdpa_operator.errors import VdpaOperatorError
from vdpa_operator.sim.cluster.layout import BRIDGE, NodeLayout
from vdpa_operator.sim.cluster.processes import alive, spawn
from vdpa_operator.sim.cluster.record import Process, Record

SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")
BINARIES = ("ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl")


class OvsError(VdpaOperatorError):
    pass


def missing() -> str | None:
    """Why a node's OVS cannot start here, or None."""
    absent = [name for name in BINARIES if shutil.which(name) is None]
    if absent:
        return f"Open vSwitch is not installed ({', '.join(absent)} not found): apt-get install openvswitch-switch"
    if not SCHEMA.exists():
        return f"{SCHEMA} not found: apt-get install openvswitch-common"
    return None


def env(node: NodeLayout) -> dict[str, str]:
    d = str(node.ovs_dir)
    return {**os.environ, "OVS_RUNDIR": d, "OVS_DBDIR": d, "OVS_LOGDIR": d}


def vsctl(node: NodeLayout, *args: str, wait: bool = False, timeout: int = 10) -> str:
    """`ovs-vsctl` against the node's database (`--no-wait` unless `wait`)."""
    flags = [f"--db={node.ovsdb_remote}", f"--timeout={timeout}"] + ([] if wait else ["--no-wait"])
    return run(["ovs-vsctl", *flags, *args], env(node))


def run(argv: list[str], environ: dict[str, str] | None = None) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, env=environ, check=False, timeout=60)
    if result.returncode != 0:
        raise OvsError(f"{' '.join(argv)} exited {result.returncode}: {result.stderr.strip()}")
    return result.stdout


def start(record: Record, node: NodeLayout, logs: Path) -> tuple[Process, Process]:
    """ovsdb-server (this netns: it only serves a unix socket), ovs-vswitchd (the node's netns), `br-int`."""
    d = node.ovs_dir
    d.mkdir(parents=True, exist_ok=True)
    run(["ovsdb-tool", "create", str(d / "conf.db"), str(SCHEMA)])
    db = spawn(record, "ovsdb-server", node.name,
               ["ovsdb-server", str(d / "conf.db"), f"--remote=punix:{d / 'db.sock'}",
                f"--pidfile={d / 'ovsdb-server.pid'}", f"--unixctl={d / 'ovsdb-server.ctl'}",
                f"--log-file={d / 'ovsdb-server.log'}", "--no-chdir", "-vconsole:off"],
               logs / f"{node.name}-ovsdb-server.log", env(node))
    _until(lambda: (d / "db.sock").exists(), db, f"ovsdb-server of {node.name} to serve {d / 'db.sock'}")
    vsctl(node, "init")
    switch = spawn(record, "ovs-vswitchd", node.name,
                   ["ip", "netns", "exec", node.netns, "ovs-vswitchd", node.ovsdb_remote,
                    f"--pidfile={d / 'ovs-vswitchd.pid'}",
                    f"--log-file={d / 'ovs-vswitchd.log'}", "--no-chdir", "-vconsole:off"],
                   logs / f"{node.name}-ovs-vswitchd.log", env(node))
    vsctl(node, "add-br", BRIDGE, "--", "set", "bridge", BRIDGE, "datapath_type=netdev", wait=True, timeout=30)
    return db, switch


def bridge_ports(node: NodeLayout) -> list[str]:
    return vsctl(node, "list-ports", BRIDGE).split()


def _until(ready: Callable[[], bool], process: Process, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if not alive(process):
            raise OvsError(f"{process.describe()} exited before {what}; see {process.log}")
        if time.monotonic() > deadline:
            raise OvsError(f"waited {timeout:g} s for {what}; see {process.log}")
        time.sleep(0.02)
