"""A private Open vSwitch (ovsdb-server + userspace ovs-vswitchd) for tests, and `ovs-vsctl` as the oracle.

Everything lives in a fresh directory (database, sockets, pidfiles, logs; `OVS_RUNDIR`/`OVS_DBDIR`/`OVS_LOGDIR`
point there too), so it never touches a system OVS. As root, ovs-vswitchd runs inside a private network
namespace: the `ovs-netdev` and bridge tap devices of the userspace datapath, and the veths a test adds as
ports, then live and die with that namespace instead of the host's. Teardown asks each daemon to exit through
its own control socket (`ovs-appctl -t <dir>/ovs-vswitchd.ctl exit --cleanup`) and falls back to SIGKILL of the
PID in its pidfile; nothing is ever stopped by name.

Recipe from research/ecosystem.md §4.1. There is no openvswitch kernel module on the host: ovs-vswitchd logs
that the `ovs_datapath` family is missing and carries on with the userspace (`netdev`) datapath; bridges must
use `datapath_type=netdev`.

    with running_ovs() as ovs:           # or the `ovs_daemons` fixture (tests/integration/host/conftest.py),
        client = OvsdbOvs(ovs.remote)   # or `yield from ovs_daemons(directory)` in a fixture of your own
        ovs.vsctl("list-br")
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

SCHEMA_PATHS = (Path("/usr/share/openvswitch/vswitch.ovsschema"),)
BINARIES = ("ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-appctl")


def unavailable() -> str | None:
    """Why private OVS daemons cannot run here, or None when they can."""
    missing = [name for name in BINARIES if shutil.which(name) is None]
    if missing:
        return f"Open vSwitch is not installed ({', '.join(missing)} not found; apt-get install openvswitch-switch)"
    if schema() is None:
        return "vswitch.ovsschema not found (openvswitch-common)"
    return None


def skip_unless_available() -> None:
    """Skip the calling test, with the reason, when private OVS daemons cannot run here."""
    reason = unavailable()
    if reason:
        import pytest

        pytest.skip(reason)


def schema() -> Path | None:
    override = os.environ.get("OVS_SCHEMA")
    for path in ((Path(override),) if override else ()) + SCHEMA_PATHS:
        if path.exists():
            return path
    return None


@dataclass
class OvsDaemons:
    directory: Path
    netns: str | None = None
    """The network namespace ovs-vswitchd runs in (None: the caller's)."""
    vswitchd: bool = True
    pids: dict[str, int] = field(default_factory=dict)

    @property
    def db_sock(self) -> Path:
        return self.directory / "db.sock"

    @property
    def remote(self) -> str:
        return f"unix:{self.db_sock}"

    def env(self) -> dict[str, str]:
        return {**os.environ, "OVS_RUNDIR": str(self.directory), "OVS_DBDIR": str(self.directory),
                "OVS_LOGDIR": str(self.directory)}

    def run(self, *argv: str, netns: bool = False, check: bool = True) -> str:
        command = ["ip", "netns", "exec", self.netns, *argv] if netns and self.netns else list(argv)
        result = subprocess.run(command, capture_output=True, text=True, env=self.env(), check=False, timeout=60)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} exited {result.returncode}: {result.stderr.strip()}")
        return result.stdout

    def vsctl(self, *args: str, wait: bool = False) -> str:
        """`ovs-vsctl` against this database (the test oracle); `--no-wait` unless `wait`."""
        flags = ["--db", self.remote, "--timeout=10"] + ([] if wait else ["--no-wait"])
        return self.run("ovs-vsctl", *flags, *args).strip()

    def vsctl_map(self, table: str, record: str, column: str) -> dict[str, str]:
        """`ovs-vsctl get TABLE RECORD COLUMN` for a map column, e.g. `{hw-offload="true", x=y}` → dict."""
        text = self.vsctl("get", table, record, column).strip("{}")
        pairs = (item.split("=", 1) for item in text.split(", ") if item)
        return {key.strip('"'): value.strip('"') for key, value in pairs}

    def ip(self, *args: str) -> str:
        """`ip` inside the namespace ovs-vswitchd runs in (where its ports must be)."""
        return self.run("ip", *(["-n", self.netns] if self.netns else []), *args)

    def transactions(self) -> list[str]:
        """The committed transactions as the database file records them (`ovsdb-tool show-log -mm`), one text
        per transaction: the oracle for what one client transaction wrote."""
        text = self.run("ovsdb-tool", "show-log", "-mm", str(self.directory / "conf.db"))
        return [record for record in text.split("\n\n") if record.strip()]

    def log(self, daemon: str = "ovs-vswitchd") -> str:
        path = self.directory / f"{daemon}.log"
        return path.read_text() if path.exists() else ""

    def _pid(self, daemon: str) -> int | None:
        try:
            return int((self.directory / f"{daemon}.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def start(self) -> None:
        d = self.directory
        self.run("ovsdb-tool", "create", str(d / "conf.db"), str(schema()))
        self.run("ovsdb-server", str(d / "conf.db"), f"--remote=punix:{self.db_sock}",
                 f"--pidfile={d / 'ovsdb-server.pid'}", f"--unixctl={d / 'ovsdb-server.ctl'}",
                 f"--log-file={d / 'ovsdb-server.log'}", "--detach", "--no-chdir", "-vconsole:off")
        self.pids["ovsdb-server"] = self._pid("ovsdb-server") or 0
        self.vsctl("init")
        if self.vswitchd:
            self.run("ovs-vswitchd", self.remote, f"--pidfile={d / 'ovs-vswitchd.pid'}",
                     f"--unixctl={d / 'ovs-vswitchd.ctl'}", f"--log-file={d / 'ovs-vswitchd.log'}",
                     "--detach", "--no-chdir", "-vconsole:off", netns=True)
            self.pids["ovs-vswitchd"] = self._pid("ovs-vswitchd") or 0
            self.vsctl("show", wait=True)  # returns once vswitchd has caught up with the database

    def stop(self) -> None:
        for daemon, extra in (("ovs-vswitchd", ["--cleanup"]), ("ovsdb-server", [])):
            pid = self.pids.pop(daemon, None)
            if not pid:
                continue
            self.run("ovs-appctl", "-t", str(self.directory / f"{daemon}.ctl"), "exit", *extra, check=False)
            deadline = time.monotonic() + 10
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie of ours (never, with --detach) or a live process
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@contextmanager
def running_ovs(
    directory: Path | None = None, *, vswitchd: bool = True, own_netns: bool | None = None
) -> Iterator[OvsDaemons]:
    """Start private OVS daemons, yield them, stop them. Files go to `directory` (default: a fresh directory
    under /tmp, removed afterwards). `own_netns` (default: when root) runs ovs-vswitchd in a fresh network
    namespace, removed afterwards with everything in it; ports must then be created in `daemons.netns` for
    vswitchd to open them (the database accepts any name either way)."""
    reason = unavailable()
    if reason:
        raise RuntimeError(reason)
    if own_netns is None:
        own_netns = os.geteuid() == 0
    created = directory is None or len(str(directory / "ovs-vswitchd.ctl")) > 100
    if created:  # unix socket names are limited to 107 bytes: keep the path short
        directory = Path(tempfile.mkdtemp(prefix="vdpa-ovs-", dir="/tmp"))
    assert directory is not None
    directory.mkdir(parents=True, exist_ok=True)
    netns = f"vdpa-ovs-{secrets.token_hex(4)}" if own_netns else None
    daemons = OvsDaemons(directory, netns=netns, vswitchd=vswitchd)
    try:
        if netns:
            daemons.run("ip", "netns", "add", netns)
            daemons.ip("link", "set", "lo", "up")
        daemons.start()
        yield daemons
    finally:
        try:
            daemons.stop()
        finally:
            if netns:
                daemons.run("ip", "netns", "del", netns, check=False)
            if created:
                shutil.rmtree(directory, ignore_errors=True)


def ovs_daemons(directory: Path | None = None, *, vswitchd: bool = True) -> Iterator[str]:
    """For fixtures (`yield from ovs_daemons(tmp_path_factory.mktemp("ovs"))`): private daemons, yielding the
    OVSDB remote; skips the test when Open vSwitch is not installed."""
    skip_unless_available()
    with running_ovs(directory, vswitchd=vswitchd) as daemons:
        yield daemons.remote
