"""Run `vdpactl sim up|status|down` as a user does (a subprocess of this virtualenv's Python), and look at the
machine the way an administrator would to see what is left: `ip netns`, `ip link`, the processes the cluster's
record named (and their descendants), the files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from vdpa_operator.sim.cluster.layout import Layout
from vdpa_operator.sim.cluster.processes import descendants, start_time

VDPACTL = [sys.executable, "-m", "vdpa_operator.cli"]


def vdpactl(*args: str, env: dict[str, str] | None = None, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*VDPACTL, *args], capture_output=True, text=True, check=False, timeout=timeout,
                          env={**os.environ, **(env or {})})


def start_up(state: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([*VDPACTL, "sim", "up", "--state", str(state), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})


def netns() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


@dataclass(frozen=True)
class Snapshot:
    netns: frozenset[str]
    links: frozenset[str]

    @classmethod
    def take(cls) -> Snapshot:
        return cls(frozenset(netns()), frozenset(links()))


def recorded_processes(state: Path) -> list[tuple[int, int]]:
    """(pid, start time) of every process the record names, and of their descendants now."""
    path = Layout.at(state).record
    if not path.exists():
        return []
    entries = json.loads(path.read_text())["entries"]
    mine = [(e["pid"], e["start_time"]) for e in entries if e["entry"] == "process"]
    family = descendants(pid for pid, started in mine if start_time(pid) == started)
    return mine + [(p.pid, p.start_time) for p in family]


def alive(processes: list[tuple[int, int]]) -> list[int]:
    return [pid for pid, started in processes if start_time(pid) == started]


def namespaces_of(processes: list[tuple[int, int]]) -> set[str]:
    """The named namespaces these processes are in now (a kubelet's pods')."""
    named = {}
    for name in netns():
        try:
            named[os.stat(f"/var/run/netns/{name}").st_ino] = name
        except OSError:
            continue
    found = set()
    for pid, started in processes:
        try:
            inode = os.stat(f"/proc/{pid}/ns/net").st_ino
        except OSError:
            continue
        if start_time(pid) == started and inode in named:
            found.add(named[inode])
    return found


def leftovers(state: Path, before: Snapshot, processes: list[tuple[int, int]],
              seen: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """What the cluster left: namespaces new since `before` that are the cluster's (named with its tag, or in
    `seen`: where its processes were; other tests on this machine make namespaces too), links new since
    `before` in this netns, living processes, files."""
    layout = Layout.at(state)
    ours = {n for n in netns() - before.netns if n.startswith(layout.netns_prefix) or n in seen}
    found = [f"netns {n}" for n in sorted(ours)]
    found += [f"link {n}" for n in sorted(_new_links(before))]
    found += [f"process {pid}" for pid in alive(processes)]
    found += [f"path {p}" for p in (layout.state, layout.runtime) if p.exists() or p.is_symlink()]
    return found


def _new_links(before: Snapshot) -> set[str]:
    """Links that appeared since `before`, asked twice a second apart: a link another test on this machine makes
    and removes in between is not ours."""
    new = links() - before.links
    if new:
        time.sleep(1)
        new &= links() - before.links
    return new


def interrupt_when(process: subprocess.Popen[str], state: Path, role: str, sig: int, timeout: float = 60) -> None:
    """Send `sig` to `up` once its record names a process of `role` (the stage after it is under way)."""
    wait_for(process, state, role, timeout)
    process.send_signal(sig)


def wait_for(process: subprocess.Popen[str], state: Path, role: str, timeout: float = 60) -> None:
    """Return once `up`'s record names a process of `role`."""
    path = Layout.at(state).record
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if any(e.get("role") == role for e in json.loads(path.read_text())["entries"]):
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    raise AssertionError(f"`up` never started {role} (exit {process.poll()})")


SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM, "SIGKILL": signal.SIGKILL}
