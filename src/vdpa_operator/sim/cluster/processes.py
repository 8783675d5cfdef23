"""The cluster's long-running processes: started detached from `up` (their own session, output to a log file),
recorded with their start time, stopped by PID (SIGTERM, then SIGKILL after a timeout) only while that PID is
still the process that was started.

Stray processes are found the same precise way, never by name: those in the session of a process we started
(the kubelet's pods, unless they left its session) and those in a network namespace of ours.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from vdpa_operator.sim.cluster.record import Process, Record

STOP_TIMEOUT = 10.0
KUBELET_STOP_TIMEOUT = 25.0
"""A kubelet stops its pods before it exits (each container's grace period, at most 10 s, then CNI DEL)."""


def start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (clock ticks after boot), or None when there is no such process (or a
    zombie: it has exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": the comm may hold spaces
    return None if fields[0] == "Z" else int(fields[19])


def _stat_field(pid: int, index: int) -> int | None:
    """A numeric field of /proc/<pid>/stat, counted after "pid (comm) " (0: state, 1: ppid, 3: session)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2:].split()[index])


def session_of(pid: int) -> int | None:
    return _stat_field(pid, 3)


def descendants(pids: Iterable[int]) -> list[Process]:
    """Every living descendant of `pids` (a kubelet's containers, whatever session they took), with start times,
    so they can be stopped after their parent is gone."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            parent = _stat_field(int(entry), 1)
            if parent is not None:
                children.setdefault(parent, []).append(int(entry))
    found: list[Process] = []
    todo = list(pids)
    while todo:
        for child in children.get(todo.pop(), []):
            started = start_time(child)
            if started is not None:
                found.append(Process("descendant", "", child, started, ""))
                todo.append(child)
    return found


def alive(process: Process) -> bool:
    return start_time(process.pid) == process.start_time


def spawn(record: Record, role: str, node: str, argv: Sequence[str], log: Path,
          env: Mapping[str, str] | None = None) -> Process:
    """Start `argv` in a session of its own (a Ctrl-C meant for `up` does not reach it; `up` stops it itself),
    its output appended to `log`, and record it."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        child = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                 env=dict(env) if env is not None else None, start_new_session=True)
    started = start_time(child.pid)
    process = Process(role, node, child.pid, started if started is not None else -1, str(log))
    record.add(process)
    child.returncode = 0  # reaped by exited(), not by Popen (`down` may be another process): no ResourceWarning
    return process


def exited(process: Process) -> bool:
    """Reap the process when it is our child and has exited; True when it is gone."""
    try:
        pid, _ = os.waitpid(process.pid, os.WNOHANG)
    except ChildProcessError:
        pid = 0
    return pid == process.pid or not alive(process)


def stop(processes: Iterable[Process], timeout: float = STOP_TIMEOUT) -> list[str]:
    """SIGTERM each process that is still the one recorded, wait up to `timeout` for all, SIGKILL the rest;
    what had to be killed."""
    running = [p for p in processes if alive(p)]
    for process in running:
        _signal(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while running and time.monotonic() < deadline:
        running = [p for p in running if not exited(p)]
        time.sleep(0.05)
    for process in running:
        if alive(process):
            _signal(process.pid, signal.SIGKILL)
    for process in running:
        _wait_gone(process)
    return [p.describe() for p in running]


def _wait_gone(process: Process) -> None:
    deadline = time.monotonic() + 5
    while not exited(process) and time.monotonic() < deadline:
        time.sleep(0.02)


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def netns_inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def strays(sessions: Iterable[int], netns_inodes: Iterable[int]) -> list[int]:
    """PIDs (not ours) in one of `sessions` or in a network namespace whose inode is in `netns_inodes`."""
    sessions, inodes = set(sessions), set(netns_inodes)
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        pid = int(entry)
        if session_of(pid) in sessions or netns_inode(f"/proc/{pid}/ns/net") in inodes:
            found.append(pid)
    return found


def kill_strays(sessions: Iterable[int], netns_inodes: Iterable[int], timeout: float = STOP_TIMEOUT) -> int:
    """SIGTERM, then SIGKILL after `timeout`, every stray; how many there were."""
    sessions, inodes = list(sessions), list(netns_inodes)
    found = {pid: start_time(pid) for pid in strays(sessions, inodes)}
    stray = [Process("stray", "", pid, started, "") for pid, started in found.items() if started is not None]
    stop(stray, timeout)
    return len(stray)
