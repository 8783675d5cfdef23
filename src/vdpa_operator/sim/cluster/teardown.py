"""`sim down`: remove what the record says `up` made, in reverse, and nothing else; also what an interrupted `up`
leaves. Idempotent: without a record there is nothing to do, and each removal tolerates a thing already gone.

Order: the recorded processes (kubelets first, given time to stop their pods), then strays: the kubelets'
descendants as they were before (containers a kubelet could not stop, whatever session they took), processes
in a kubelet's session, and processes in a network namespace of ours; then the namespaces: the recorded ones,
every one named with the cluster's tag, and those a kubelet's descendant was in (its pods'); deleting a namespace
deletes its links, and a veth with it its peer; then the recorded files and directories, then the record.
Whatever cannot be removed is reported and the record kept, so a second `down` tries again.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from vdpa_operator.sim.cluster import network, processes
from vdpa_operator.sim.cluster.layout import Layout
from vdpa_operator.sim.cluster.record import STATE_DIR, MadePath, Netns, Process, Record


@dataclass
class Removed:
    stopped: list[str] = field(default_factory=list)
    killed: list[str] = field(default_factory=list)
    strays: int = 0
    netns: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{len(self.stopped)} processes stopped" + (f" ({len(self.killed)} killed)" if self.killed else ""),
                 f"{len(self.netns)} network namespaces", f"{len(self.paths)} files and directories"]
        if self.strays:
            parts.insert(1, f"{self.strays} stray processes")
        return ", ".join(parts)


def teardown(layout: Layout, record: Record) -> Removed:
    removed = Removed()
    recorded = [p for p in record.processes() if processes.alive(p)]
    family = processes.descendants(p.pid for p in recorded)
    names = {e.name for e in record.entries if isinstance(e, Netns)} | set(network.ours(layout))
    names |= _pod_namespaces(family)
    named = network.by_inode()
    inodes = [inode for inode, name in named.items() if name in names]
    _attempt(removed, "stop processes", lambda: _stop(removed, recorded))
    sessions = [p.pid for p in recorded]  # each was started in a session of its own

    def strays() -> None:
        left = [p for p in family if processes.alive(p)]
        processes.stop(left)
        removed.strays = len(left) + processes.kill_strays(sessions, inodes)

    _attempt(removed, "stop stray processes", strays)
    for name in sorted(names, key=lambda n: n.endswith("-wire")):
        _attempt(removed, f"delete netns {name}", _netns_remover(removed, name))
    made = [entry for entry in reversed(record.entries) if isinstance(entry, MadePath)]
    for entry in made:
        if entry.kind != STATE_DIR:
            _attempt(removed, f"remove {entry.path}", _path_remover(removed, entry))
    if not removed.problems:
        record.path.unlink(missing_ok=True)
        for entry in made:  # the state dir itself, when `up` made it and nothing else is left in it
            if entry.kind == STATE_DIR and os.path.isdir(entry.path) and not os.listdir(entry.path):
                os.rmdir(entry.path)
                removed.paths.append(entry.path)
    return removed


def _pod_namespaces(family: list[Process]) -> set[str]:
    """Named namespaces a kubelet's descendant is in (its pods'), never the machine's own."""
    own = {processes.netns_inode("/proc/1/ns/net"), processes.netns_inode("/proc/self/ns/net")}
    named = network.by_inode()
    inodes = {processes.netns_inode(f"/proc/{p.pid}/ns/net") for p in family} - own
    return {named[inode] for inode in inodes if inode in named}


def _netns_remover(removed: Removed, name: str) -> Callable[[], None]:
    def remove() -> None:
        if network.remove_netns(name):
            removed.netns.append(name)
    return remove


def _path_remover(removed: Removed, entry: MadePath) -> Callable[[], None]:
    return lambda: _remove(removed, entry)


def _stop(removed: Removed, recorded: list[Process]) -> None:
    """Kubelets first (they stop their pods), then the rest, newest first."""
    kubelets = [p for p in recorded if p.role == "kubelet"]
    rest = [p for p in reversed(recorded) if p.role != "kubelet"]
    removed.killed = processes.stop(kubelets, processes.KUBELET_STOP_TIMEOUT) + processes.stop(rest)
    removed.stopped = [p.describe() for p in kubelets + rest]


def _remove(removed: Removed, entry: MadePath) -> None:
    path = Path(entry.path)
    if entry.kind == "dir" and path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.is_symlink() or path.exists():
        path.unlink()
    else:
        return
    removed.paths.append(entry.path)


def _attempt(removed: Removed, what: str, action: Callable[[], object]) -> None:
    try:
        action()
    except Exception as err:  # one failed removal must not keep the others from running
        removed.problems.append(f"{what}: {err}")
