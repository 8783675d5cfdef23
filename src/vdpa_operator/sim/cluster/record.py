"""The record of what `up` made: one JSON file, rewritten atomically after every entry, so that `down` (and an
interrupted `up` cleaning after itself) removes exactly that, and nothing it did not make.

A namespace or path is recorded before it is made (removing one that was never made is nothing to do); a process
right after it is started, with its start time, so that a PID the kernel reused for someone else's process is
never signalled.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vdpa_operator.errors import VdpaOperatorError
from vdpa_operator.fileio import write_atomically

VERSION = 1
STATE_DIR = "statedir"


class RecordError(VdpaOperatorError):
    """The record cannot be read, or another command holds it: it says where and what to do."""


@contextlib.contextmanager
def exclusive(state: Path, command: str) -> Iterator[None]:
    """Hold the state dir for `command` (up, down): an flock on the directory itself, so no lock file is left
    behind and a killed holder releases it. Another holder: RecordError at once, not a wait."""
    fd = os.open(state, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RecordError(f"another `vdpactl sim up` or `down` is running on {state}; wait for it, or interrupt "
                              f"it (Ctrl-C: an interrupted `up` removes what it made), then run `{command}` again"
                              ) from None
        yield
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Netns:
    name: str

    def describe(self) -> str:
        return f"netns {self.name}"


@dataclass(frozen=True)
class Process:
    role: str
    """apiserver, forwarder, ovsdb-server, ovs-vswitchd, kubelet."""
    node: str
    pid: int
    start_time: int
    """Field 22 of /proc/<pid>/stat: with the PID, names the process for good."""
    log: str

    def describe(self) -> str:
        return f"{self.role}{f' of {self.node}' if self.node else ''} (pid {self.pid})"


@dataclass(frozen=True)
class MadePath:
    path: str
    kind: str
    """dir (removed with its content), file, symlink, or statedir (removed last, and only when empty)."""

    def describe(self) -> str:
        return f"{self.kind} {self.path}"


Entry = Netns | Process | MadePath
_KINDS: dict[str, type[Entry]] = {"netns": Netns, "process": Process, "path": MadePath}
_NAMES = {cls: name for name, cls in _KINDS.items()}


@dataclass
class Record:
    path: Path
    nodes: int = 0
    settings: dict[str, Any] = field(default_factory=dict)
    """What `status` shows and the kubelets are told: API server URL, ports."""
    entries: list[Entry] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> Record | None:
        """The record at `path`, or None when there is none (nothing was made, or `down` finished)."""
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        try:
            body = json.loads(text)
            entries = [_KINDS[item.pop("entry")](**item) for item in body["entries"]]
            return cls(path, int(body["nodes"]), dict(body["settings"]), entries)
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise RecordError(f"{path}: not a simulated cluster's record ({err}); if no cluster runs from this "
                              "state dir, remove the file and check `ip netns` for leftovers named vsim*") from None

    def add(self, entry: Entry) -> None:
        self.entries.append(entry)
        self.save()

    def set(self, **settings: Any) -> None:
        self.settings.update(settings)
        self.save()

    def save(self) -> None:
        body = {"version": VERSION, "nodes": self.nodes, "settings": self.settings,
                "entries": [{"entry": _NAMES[type(entry)], **asdict(entry)} for entry in self.entries]}
        write_atomically(self.path, (json.dumps(body, indent=1) + "\n").encode(), mode=0o600)

    def processes(self, role: str | None = None, node: str | None = None) -> Iterator[Process]:
        for entry in self.entries:
            if isinstance(entry, Process) and role in (None, entry.role) and node in (None, entry.node):
                yield entry

    def of_kind(self, kind: type[Entry]) -> list[Entry]:
        return [entry for entry in self.entries if isinstance(entry, kind)]
