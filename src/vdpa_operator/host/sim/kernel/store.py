"""The simulated host on disk: `<root>/state.json`, rewritten atomically after each change under an fcntl lock
held around load-mutate-save, so several processes (a test, the daemon, the CNI server) share one host and a
restarted one finds it as it was; and the sysfs tree under `<root>/sys` and the char devices under `<root>/dev`,
rendered from the state after every change (`tree.py`) and never read back.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vdpa_operator.errors import VdpaOperatorError
from vdpa_operator.host.sim import tree
from vdpa_operator.host.sim.kernel.errors import KernelError
from vdpa_operator.host.sim.state import State, from_json, to_json

STATE_FILE = "state.json"
LOCK_FILE = ".lock"
PENDING_MARKER = ".pending"
"""Present while delayed VFs are due to appear: a read must then let time pass (a change), not just read."""



class DamagedState(VdpaOperatorError):
    """The simulated host's state file is not one this code wrote (truncated, edited, another version)."""

    def __init__(self, root: Path, cause: Exception) -> None:
        super().__init__(f"{root / STATE_FILE}: not a simulated host's state ({type(cause).__name__}: {cause}); "
                         f"delete {root} to start again with a fresh simulated host")

class StateStore:
    """The state file of one root, for one process. `on_open` runs at the start of every outermost
    transaction, before its caller (time passing: delayed VFs appear)."""

    def __init__(self, root: Path, on_open: Callable[[State], None]) -> None:
        self.root = root
        self._on_open = on_open
        self._lock = threading.RLock()
        self._state: State | None = None
        self._loaded: State | None = None
        self._parsed: tuple[str, dict[str, Any], State] | None = None
        self._rendered: tuple[State, dict[str, tree.Entry]] | None = None
        """The tree rendered for a state this process wrote (the next commit's `before`)."""

    def exists(self) -> bool:
        return (self.root / STATE_FILE).exists()

    def create(self, state: State) -> None:
        """Write a new host's state and render its tree."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._write_state(state)
        tree.sync(self.root, state)

    @contextmanager
    def transaction(self) -> Iterator[State]:
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
                    self._on_open(state)
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
    def reading(self) -> Iterator[State]:
        """For queries, which change nothing: the state as the file shows it, shared, without the working copy
        and the commit of `transaction` (a device plugin asks several every 50 ms). Inside a transaction, its
        state; while delayed VFs are pending, a transaction (time passing is a change)."""
        with self._lock:
            if self._state is not None:
                yield self._state
                return
            if self.pending():
                with self.transaction() as state:
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

    def pending(self) -> bool:
        """Whether delayed VFs wait to appear (cheap: one stat)."""
        return (self.root / PENDING_MARKER).exists()

    def _read_state(self, *, copy: bool = True) -> State:
        """A fresh working copy of the state (`copy`), or the shared untouched one. The text is parsed again only
        when it changed."""
        try:
            text = (self.root / STATE_FILE).read_text()
        except UnicodeDecodeError as exc:
            raise DamagedState(self.root, exc) from exc
        if self._parsed is None or self._parsed[0] != text:
            try:
                data = json.loads(text)
                self._parsed = (text, data, from_json(data))
            except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
                raise DamagedState(self.root, exc) from exc
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
